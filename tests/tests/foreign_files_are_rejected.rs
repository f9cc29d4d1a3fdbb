//! A table or WAL copied in from another database (same file name, valid
//! checksums) must not be read as this database's data: opening or
//! reading should fail with `Corruption`. Today neither format carries a
//! database identity, and the manifest's table metadata (size, key range,
//! sequence range) is not compared with the table, so the foreign file's
//! values are returned as if they were ours.
#![allow(clippy::unwrap_used)]

use jkv::{check_with, Db, Error, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::{Image, SimFs};
use jkv_tests::workload::{crash_options, db_dir};

/// One table with `k0..k9`, then `w` in the WAL; values carry `tag`.
fn build(tag: &str) -> Image {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    for i in 0..10 {
        db.put(format!("k{i}"), format!("{tag}{i}")).unwrap();
    }
    db.flush().unwrap();
    let mut batch = WriteBatch::new();
    batch.put("w", tag);
    db.write(batch, WriteOptions { sync: true }).unwrap();
    db.close().unwrap();
    fs.full_image()
}

fn swap_in(ours: &Image, theirs: &Image, ext: &str) -> SimFs {
    let pick = |img: &Image| {
        img.files
            .iter()
            .filter(|(p, d)| p.extension().is_some_and(|e| e == ext) && !d.is_empty())
            .map(|(p, d)| (p.clone(), d.clone()))
            .max()
            .unwrap()
    };
    let (path, _) = pick(ours);
    let (_, data) = pick(theirs);
    let mut image = ours.clone();
    image.files.insert(path, data);
    SimFs::from_image(&image)
}

#[test]
fn table_from_another_database_is_corruption() {
    let (ours, theirs) = (build("ours"), build("theirs"));
    let fs = swap_in(&ours, &theirs, "sst");
    assert!(
        !check_with(&fs, &db_dir()).unwrap().is_ok(),
        "check accepts it"
    );
    match Db::open(db_dir(), crash_options(&fs)) {
        Err(e) => assert!(e.is_corruption(), "{e}"),
        Ok(db) => {
            let got = db.get("k1");
            assert!(
                matches!(got, Err(Error::Corruption { .. })),
                "get k1 = {got:?}"
            );
        }
    }
}

#[test]
fn wal_from_another_database_is_corruption() {
    let (ours, theirs) = (build("ours"), build("theirs"));
    let fs = swap_in(&ours, &theirs, "wal");
    match Db::open(db_dir(), crash_options(&fs)) {
        Err(e) => assert!(e.is_corruption(), "{e}"),
        Ok(db) => {
            let got = db.get("w").unwrap();
            assert_eq!(
                got.as_deref(),
                Some(b"ours".as_slice()),
                "replayed a foreign WAL"
            );
        }
    }
}
