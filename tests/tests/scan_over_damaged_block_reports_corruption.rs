//! Regression: a scan over a table whose data block fails its checksum
//! skipped that block without an error and returned the older versions of
//! its keys from a table below, where `get` of the same keys correctly
//! returns `Corruption`. Found by `fuzz_smoke.rs` (target `db:sst`).
//! Fixed in 7ebf390: merges stop at a child's error.
//!
//! A second bug: backward, a scan met the old version of the first key after
//! a damaged block of a lower table before the new version above it, and
//! returned that old version before `Corruption` (found by `fuzz_smoke.rs`,
//! `db:sst`). Fixed: a backward scan checks the merge's error before
//! returning a key whose versions it may not all have seen.
//!
//! Checked: old values of 40 keys compacted into the last level, new values
//! flushed into L0 (all in the value log); one byte inside a data block of
//! either table is flipped; after reopening, `get` and scans in both
//! directions must return the new value or `Corruption`, never an old
//! value.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, Error, Options};
use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::FileSystem;
use jkv_sstable::Table;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::db_dir;

fn options(fs: &SimFs) -> Options {
    Options::default()
        .write_buffer_size(1 << 20)
        .block_size(256)
        .value_threshold(Some(64))
        .auto_compactions(false)
        .file_system(Arc::new(fs.clone()))
}

fn key(n: usize) -> String {
    format!("key{n:03}")
}

#[test]
fn scan_over_a_damaged_first_block_of_the_newer_table_never_returns_an_older_version() {
    check_with_damaged_block(Which::Newest, 0);
}

#[test]
fn scan_over_a_damaged_middle_block_of_the_newer_table_never_returns_an_older_version() {
    check_with_damaged_block(Which::Newest, 1);
}

/// Backward, a scan meets the old version of the first key after the
/// damaged block (in the lower table) before the new one (in the upper
/// table); stepping back past the old one hits the damaged block. The
/// scan returned that old version, then `Corruption`. Found by
/// `fuzz_smoke.rs` (`db:sst`).
#[test]
fn scan_over_a_damaged_middle_block_of_the_lower_table_never_returns_an_older_version() {
    check_with_damaged_block(Which::Oldest, 1);
}

/// Which table to damage.
enum Which {
    Newest,
    Oldest,
}

/// Writes old values of 40 keys into the last level and new values into
/// L0, flips a byte inside data block `block` of the table `which`, and
/// checks every read.
fn check_with_damaged_block(which: Which, block: usize) {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    for round in ["old", "new"] {
        for n in 0..40 {
            db.put(key(n), format!("{round}-{n}-{}", "x".repeat(80)))
                .unwrap();
        }
        if round == "old" {
            // Into the last level: below, a level of tables.
            db.compact().unwrap();
        } else {
            db.flush().unwrap();
        }
    }
    db.close().unwrap();
    drop(db);
    let tables: Vec<String> = fs
        .list(&db_dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect();
    let name = match which {
        Which::Newest => tables.iter().max(),
        Which::Oldest => tables.iter().min(),
    }
    .expect("two tables were written")
    .clone();
    let path = db_dir().join(&name);
    let number = match parse_file_name(&name) {
        Some(FileKind::Table(n)) => n,
        other => panic!("{name} is not a table name: {other:?}"),
    };
    let handle = {
        let table = Table::open(&fs, &path, number).unwrap();
        let handles: Vec<_> = table.index_entries().map(|(_, h)| h).collect();
        assert!(handles.len() >= 3, "the table needs several data blocks");
        handles[block]
    };
    let mut bytes = fs.read_file(&path).unwrap();
    bytes[handle.offset as usize + handle.size as usize / 2] ^= 0x10;
    fs.overwrite_file(&path, bytes);

    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let mut wrong = Vec::new();
    let mut check = |how: &str, k: &str, got: Result<Option<String>, Error>| match got {
        Ok(Some(v)) if v.starts_with("new-") => {}
        Err(Error::Corruption { .. }) => {}
        other => wrong.push(format!("{how} {k}: {other:?}")),
    };
    for n in 0..40 {
        let got = db
            .get(key(n))
            .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()));
        check("get", &key(n), got);
    }
    let snapshot = db.snapshot();
    for (how, iter) in [
        ("scan", db.scan::<&str>(.., &snapshot)),
        ("scan_rev", db.scan_rev::<&str>(.., &snapshot)),
    ] {
        for item in iter {
            match item {
                Ok((k, v)) => check(
                    how,
                    &String::from_utf8_lossy(&k),
                    Ok(Some(String::from_utf8_lossy(&v).into_owned())),
                ),
                Err(e) => {
                    check(how, "(error)", Err(e));
                    break;
                }
            }
        }
    }
    assert!(wrong.is_empty(), "wrong results: {wrong:#?}");
}
