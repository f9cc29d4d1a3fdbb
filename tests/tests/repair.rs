//! `jkv::repair` on the damage of the corruption matrix that open refuses
//! (or that makes reads fail): the manifest truncated, bit-flipped or
//! missing, a table's block flipped (data, filter, index, properties,
//! footer), a WAL record flipped, a value-log entry or header flipped; and
//! a manifest cut to its snapshot line that open already moved the tables
//! of into `lost/`. After repair, open
//! must succeed and yield every key whose newest version sits in an
//! undamaged place with exactly that value (a key whose newest version was
//! damaged may be missing or show an older value), scans must agree with
//! gets, `jkv::check` must report no problem, and the report must say
//! whether data was dropped.
//!
//! A manifest cut at a line boundary (sound, but older than the files)
//! loses nothing; a stale compaction input beside an intact manifest does
//! not bring a deleted key back. A crash at any file-system operation of a
//! repair (every crash state of the simulated disk) must leave a directory
//! that repair can be run on again, to the same contents as the
//! uninterrupted repair.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::SeedableRng;

use jkv::{check_with, repair, Db, Options, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_sstable::footer::Footer;
use jkv_sstable::SalvagedTable;
use jkv_tests::simfs::{Image, Replayer, SimFs};
use jkv_tests::workload::{crash_options, db_dir};
use jkv_vlog::VlogIter;

const TABLE_KEYS: usize = 40;
const WAL_WRITES: usize = 12;

type State = BTreeMap<String, String>;

fn key(i: usize) -> String {
    format!("key{i:03}")
}

fn options(fs: &SimFs) -> Options {
    // Values of 64 bytes and more go to the value log, so tables and the
    // WAL hold pointers too.
    crash_options(fs)
        .write_buffer_size(1 << 20)
        .value_threshold(Some(64))
}

/// A closed database: `TABLE_KEYS` puts flushed to one table of several
/// blocks, then `WAL_WRITES` synced writes (overwrites and new keys) in the
/// WAL; some values in the value log.
struct Instance {
    image: Image,
    /// What every key reads.
    state: State,
    /// Every value each key ever had, oldest first.
    history: BTreeMap<String, Vec<String>>,
    table: PathBuf,
    /// User keys of each data block: (block start, end with trailer, keys).
    blocks: Vec<(usize, usize, Vec<String>)>,
    wal: PathBuf,
    /// Each WAL record: (start, end, key written).
    records: Vec<(usize, usize, String)>,
}

fn build() -> Instance {
    build_with(options)
}

fn build_with(options: fn(&SimFs) -> Options) -> Instance {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let mut state = State::new();
    let mut history: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..TABLE_KEYS {
        let v = format!("table-{i}-{}", "v".repeat(i % 7 * 12));
        db.put(key(i), &v).unwrap();
        state.insert(key(i), v.clone());
        history.entry(key(i)).or_default().push(v);
    }
    db.flush().unwrap();
    let mut records = Vec::new();
    let mut wal = PathBuf::new();
    for j in 0..WAL_WRITES {
        let k = if j % 2 == 0 {
            key(j)
        } else {
            key(TABLE_KEYS + j)
        };
        let v = format!("wal-{j}-{}", "w".repeat(j % 3 * 40));
        let before = newest_wal(&fs.full_image());
        let start = before.as_ref().map_or(0, |(_, len)| *len);
        let mut batch = WriteBatch::new();
        batch.put(&k, &v);
        db.write(batch, WriteOptions { sync: true }).unwrap();
        let (path, end) = newest_wal(&fs.full_image()).expect("a WAL");
        // The first record starts after the 32-byte header.
        let start = if before.as_ref().is_some_and(|(p, _)| *p == path) {
            start.max(32)
        } else {
            32
        };
        wal = path;
        records.push((start, end, k.clone()));
        state.insert(k.clone(), v.clone());
        history.entry(k).or_default().push(v);
    }
    db.close().unwrap();
    let image = fs.full_image();
    let table = image
        .files
        .keys()
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .expect("a table")
        .clone();
    let salvaged = SalvagedTable::open(&fs, &table).unwrap();
    let blocks = salvaged
        .data_blocks()
        .iter()
        .map(|h| {
            let keys = salvaged
                .block_entries(*h)
                .unwrap()
                .into_iter()
                .map(|(k, _)| String::from_utf8_lossy(&k[..k.len() - 8]).into_owned())
                .collect();
            (h.offset as usize, (h.offset + h.size) as usize + 5, keys)
        })
        .collect::<Vec<_>>();
    assert!(blocks.len() >= 3, "the table has {} blocks", blocks.len());
    assert!(
        image
            .files
            .keys()
            .any(|p| p.extension().is_some_and(|e| e == "vlog")),
        "some values are in the value log"
    );
    Instance {
        image,
        state,
        history,
        table,
        blocks,
        wal,
        records,
    }
}

/// The newest non-empty WAL and its length.
fn newest_wal(image: &Image) -> Option<(PathBuf, usize)> {
    image
        .files
        .iter()
        .filter(|(p, d)| p.extension().is_some_and(|e| e == "wal") && !d.is_empty())
        .map(|(p, d)| (p.clone(), d.len()))
        .max()
}

/// One damage: the changed image and the keys whose newest version it hit.
struct Damage {
    what: String,
    image: Image,
    damaged_keys: BTreeSet<String>,
    /// Whether the report must say data was dropped.
    drops_data: bool,
}

fn flip(image: &Image, file: &Path, at: usize) -> Image {
    let mut image = image.clone();
    let data = image.files.get_mut(file).expect("file in image");
    data[at] ^= 1 << (at % 8);
    image
}

fn manifest() -> PathBuf {
    db_dir().join("MANIFEST")
}

fn damages(base: &Instance) -> Vec<Damage> {
    let mut out = Vec::new();
    let none = BTreeSet::new;
    // The manifest: missing, truncated, flipped. No data is hit.
    let mut missing = base.image.clone();
    missing.files.remove(&manifest());
    out.push(Damage {
        what: "manifest missing".into(),
        image: missing,
        damaged_keys: none(),
        drops_data: false,
    });
    let m = base.image.files[&manifest()].clone();
    for cut in (0..m.len()).step_by(5) {
        let mut image = base.image.clone();
        image.files.insert(manifest(), m[..cut].to_vec());
        out.push(Damage {
            what: format!("manifest truncated to {cut} bytes"),
            image,
            damaged_keys: none(),
            drops_data: false,
        });
    }
    for at in (0..m.len()).step_by(3) {
        out.push(Damage {
            what: format!("manifest byte {at} flipped"),
            image: flip(&base.image, &manifest(), at),
            damaged_keys: none(),
            drops_data: false,
        });
    }
    // The table: each data block at its start, middle and checksum; the
    // metadata blocks and footer cost no data.
    for (start, end, keys) in &base.blocks {
        // Keys overwritten in the WAL have their newest version there.
        let newest_here: BTreeSet<String> = keys
            .iter()
            .filter(|k| base.state[*k].starts_with("table-"))
            .cloned()
            .collect();
        for at in [*start, (start + end) / 2, end - 2] {
            out.push(Damage {
                what: format!("table data block at {start}: byte {at} flipped"),
                image: flip(&base.image, &base.table, at),
                damaged_keys: newest_here.clone(),
                drops_data: true,
            });
        }
    }
    let t = &base.image.files[&base.table];
    let footer = Footer::decode(t, &base.table).unwrap();
    let filter = footer.filter.expect("a filter").offset as usize;
    let index = footer.index.offset as usize;
    let props = footer.properties.offset as usize;
    for (region, at) in [
        ("filter", filter + 1),
        ("index", index + 1),
        ("properties", props + 1),
        ("footer", t.len() - 40),
        ("footer magic", t.len() - 3),
    ] {
        out.push(Damage {
            what: format!("table {region}: byte {at} flipped"),
            image: flip(&base.image, &base.table, at),
            damaged_keys: none(),
            drops_data: false,
        });
    }
    // The WAL: each record's header and payload; the file header.
    let last = base.records.len() - 1;
    for (i, (start, end, k)) in base.records.iter().enumerate() {
        for at in [start + 2, (start + end) / 2] {
            out.push(Damage {
                what: format!("WAL record {i} at {start}: byte {at} flipped"),
                image: flip(&base.image, &base.wal, at),
                damaged_keys: [k.clone()].into(),
                // Damage in the last record reads as a torn tail.
                drops_data: i != last,
            });
        }
    }
    // Value logs: each entry flipped in its middle, and the file header.
    // Only the entry's own value is lost; repair moves the others inline.
    for (path, data) in &base.image.files {
        if path.extension().is_none_or(|e| e != "vlog") {
            continue;
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let number = match jkv_format::names::parse_file_name(name) {
            Some(jkv_format::names::FileKind::ValueLog(n)) => n,
            _ => continue,
        };
        let iter = VlogIter::new(path.clone(), number, bytes::Bytes::from(data.clone()));
        let mut in_file = BTreeSet::new();
        for entry in iter {
            let entry = entry.expect("intact value log");
            let k = String::from_utf8_lossy(&entry.key).into_owned();
            let newest = base.state[&k].as_bytes() == entry.value.as_ref();
            if newest {
                in_file.insert(k.clone());
            }
            let at = (entry.pointer.offset + u64::from(entry.pointer.len) / 2) as usize;
            out.push(Damage {
                what: format!("value log {name}: entry of {k} flipped at byte {at}"),
                image: flip(&base.image, path, at),
                damaged_keys: if newest { [k].into() } else { none() },
                drops_data: newest,
            });
        }
        out.push(Damage {
            what: format!("value log {name}: header flipped"),
            image: flip(&base.image, path, 3),
            drops_data: !in_file.is_empty(),
            damaged_keys: in_file,
        });
    }
    out.push(Damage {
        what: "WAL header flipped".into(),
        image: flip(&base.image, &base.wal, 9),
        damaged_keys: base.records.iter().map(|r| r.2.clone()).collect(),
        drops_data: true,
    });
    out
}

/// Every key and value, by get and by scan (which must agree).
fn contents(db: &Db, keys: impl Iterator<Item = String>) -> Result<State, String> {
    let mut got = State::new();
    for k in keys {
        match db.get(&k) {
            Ok(Some(v)) => {
                got.insert(k, String::from_utf8_lossy(&v).into_owned());
            }
            Ok(None) => {}
            Err(e) => return Err(format!("get {k}: {e}")),
        }
    }
    let mut scanned = State::new();
    for item in db.scan::<Vec<u8>>(.., &db.snapshot()) {
        let (k, v) = item.map_err(|e| format!("scan: {e}"))?;
        scanned.insert(
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    if scanned != got {
        return Err(format!("scan {scanned:?} differs from gets {got:?}"));
    }
    Ok(got)
}

/// Repairs `image`, opens the result and checks it against `base`.
fn repair_and_check(base: &Instance, d: &Damage) -> Result<jkv::RepairReport, String> {
    let fs = SimFs::from_image(&d.image);
    let report = repair(db_dir(), options(&fs)).map_err(|e| format!("repair failed: {e}"))?;
    if report.data_dropped() != d.drops_data {
        return Err(format!(
            "report says data dropped: {}, expected {}:\n{report}",
            report.data_dropped(),
            d.drops_data
        ));
    }
    if report.old_manifest.is_some() != d.image.files.contains_key(&manifest()) {
        return Err(format!("old manifest not kept as it should be:\n{report}"));
    }
    let check = check_with(&fs, &db_dir()).map_err(|e| format!("check failed: {e}"))?;
    if !check.is_ok() {
        return Err(format!(
            "check after repair: {check}\nrepair said:\n{report}"
        ));
    }
    let db = Db::open(db_dir(), options(&fs)).map_err(|e| format!("open after repair: {e}"))?;
    let got = contents(&db, base.history.keys().cloned())?;
    drop(db);
    for (k, want) in &base.state {
        let got = got.get(k);
        if d.damaged_keys.contains(k) {
            // Missing, or an older version of the key.
            let older = &base.history[k];
            if let Some(g) = got {
                if !older[..older.len() - 1].contains(g) {
                    return Err(format!(
                        "damaged key {k} reads {g:?}, never one of its values"
                    ));
                }
            }
        } else if got != Some(want) {
            return Err(format!(
                "{k}: want {want:?}, got {got:?}\nrepair said:\n{report}"
            ));
        }
    }
    Ok(report)
}

#[test]
fn repair_keeps_every_undamaged_newest_version() {
    repair_every_damage(&build());
}

/// The same with LZ4 table blocks and zstd value-log entries: repair
/// salvages compressed blocks and entries like raw ones.
#[test]
fn repair_keeps_every_undamaged_newest_version_with_compression() {
    let base = build_with(|fs| {
        options(fs)
            .compression(jkv::Compression::Lz4)
            .vlog_compression(jkv::Compression::ZSTD)
    });
    let fs = SimFs::from_image(&base.image);
    let report = check_with(&fs, &db_dir()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(report.compressed_blocks > 0, "{report}");
    // Repair writes its last-level tables compressed as the options say.
    for (compression, compressed) in [
        (jkv::Compression::Lz4, true),
        (jkv::Compression::None, false),
    ] {
        let fs = SimFs::from_image(&base.image);
        repair(db_dir(), options(&fs).compression(compression)).unwrap();
        let after = check_with(&fs, &db_dir()).unwrap();
        assert!(after.is_ok(), "{after}");
        assert_eq!(
            after.compressed_blocks > 0,
            compressed,
            "{compression:?}: {after}"
        );
    }
    repair_every_damage(&base);
}

fn repair_every_damage(base: &Instance) {
    let mut failures = Vec::new();
    let list = damages(base);
    let total = list.len();
    let mut inlined = 0;
    for d in &list {
        match repair_and_check(base, d) {
            Ok(report) if d.what.starts_with("value log") => inlined += report.values_inlined,
            Ok(_) => {}
            Err(why) => failures.push(format!("{}: {why}", d.what)),
        }
    }
    println!(
        "damages={total} failures={} values moved inline from damaged value logs={inlined}",
        failures.len()
    );
    assert!(
        inlined > 0,
        "no damaged value log had a value left to salvage"
    );
    for f in failures.iter().take(10) {
        println!("FAILED {f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {total} damages failed",
        failures.len()
    );
}

#[test]
fn open_refuses_or_misreads_each_damage_before_repair() {
    // The damages above are ones a plain open cannot live with: it refuses
    // them, a read fails, or `check` reports them.
    let base = build();
    for d in damages(&base) {
        let fs = SimFs::from_image(&d.image);
        let report = check_with(&fs, &db_dir()).unwrap();
        let visible = !report.is_ok() || Db::open(db_dir(), options(&fs)).is_err();
        if !visible {
            // A flip inside the WAL's last record (or a value log's last
            // entry) reads as a torn write: open drops it (a read of that
            // value fails), which is all repair can do too. A manifest cut
            // at a line boundary reads as an older manifest.
            assert!(
                d.what.starts_with("WAL record")
                    || d.what.starts_with("value log")
                    || d.what.starts_with("manifest truncated"),
                "{}: neither check nor open notices it",
                d.what
            );
        }
    }
}

#[test]
fn tables_open_moved_to_lost_come_back() {
    // A manifest cut to its snapshot line looks like a crash in its first
    // edit: open keeps the tables it does not name in lost/ and opens
    // without them. Repair brings them back.
    let base = build_with(|fs| options(fs).manifest_rewrite_threshold_bytes(1 << 20));
    let m = &base.image.files[&manifest()];
    let lines = m.iter().filter(|&&b| b == b'\n').count();
    assert!(lines > 2, "the manifest was rewritten: {lines} lines");
    // Cut inside the second line: a torn first edit.
    let first_line = m.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut image = base.image.clone();
    image
        .files
        .insert(manifest(), m[..first_line + 10].to_vec());
    let fs = SimFs::from_image(&image);
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(db.get(key(1)).unwrap(), None, "open lost the table's data");
    db.put("after-open", "new").unwrap();
    db.close().unwrap();
    let lost = fs.list(&db_dir().join("lost")).unwrap();
    assert!(lost.iter().any(|n| n.ends_with(".sst")), "{lost:?}");

    let report = repair(db_dir(), options(&fs)).unwrap();
    assert!(!report.data_dropped(), "{report}");
    assert!(check_with(&fs, &db_dir()).unwrap().is_ok());
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let got = contents(
        &db,
        base.history.keys().cloned().chain(["after-open".into()]),
    )
    .unwrap();
    let mut want = base.state.clone();
    want.insert("after-open".into(), "new".into());
    assert_eq!(got, want, "{report}");
    // It takes writes and keeps them across a reopen.
    db.put("after-repair", "yes").unwrap();
    db.close().unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(
        db.get("after-repair").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert!(fs.list(&db_dir().join("lost")).unwrap().is_empty());
}

#[test]
fn repair_twice_changes_nothing_the_second_time() {
    let base = build();
    let d = damages(&base)
        .into_iter()
        .find(|d| d.what.starts_with("table data block"))
        .unwrap();
    let fs = SimFs::from_image(&d.image);
    let first = repair(db_dir(), options(&fs)).unwrap();
    assert!(first.data_dropped());
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let after_first = contents(&db, base.history.keys().cloned()).unwrap();
    db.close().unwrap();
    let second = repair(db_dir(), options(&fs)).unwrap();
    assert!(!second.data_dropped(), "{second}");
    assert!(second.repaired.is_empty(), "{second}");
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(
        contents(&db, base.history.keys().cloned()).unwrap(),
        after_first
    );
}

#[test]
fn a_crash_during_repair_leaves_a_directory_repair_can_run_on_again() {
    let base = build();
    let list = damages(&base);
    let mut states = 0;
    let mut failures = Vec::new();
    for what in ["manifest missing", "table data block", "WAL record 3"] {
        let d = list
            .iter()
            .find(|d| d.what.starts_with(what))
            .expect("damage");
        // The uninterrupted repair, recorded.
        let fs = SimFs::from_image(&d.image);
        fs.start_recording();
        repair(db_dir(), options(&fs)).unwrap();
        let recording = fs.take_recording();
        let db = Db::open(db_dir(), options(&fs)).unwrap();
        let want = contents(&db, base.history.keys().cloned()).unwrap();
        drop(db);

        let mut rng = StdRng::seed_from_u64(7);
        let mut replayer = Replayer::new(&recording);
        loop {
            for state in replayer.crash_states(&mut rng) {
                states += 1;
                let fs = SimFs::from_image(&state.image);
                let outcome = repair(db_dir(), options(&fs))
                    .map_err(|e| format!("repair again: {e}"))
                    .and_then(|_| {
                        let check = check_with(&fs, &db_dir()).map_err(|e| e.to_string())?;
                        if !check.is_ok() {
                            return Err(format!("check: {check}"));
                        }
                        let db =
                            Db::open(db_dir(), options(&fs)).map_err(|e| format!("open: {e}"))?;
                        contents(&db, base.history.keys().cloned())
                    });
                match outcome {
                    Ok(got) if got == want => {}
                    Ok(got) => failures.push(format!(
                        "{what}, op {} ({}), {}: contents differ: {}",
                        replayer.position(),
                        replayer.last_op().map_or("start".into(), |o| o.to_string()),
                        state.label,
                        difference(&want, &got)
                    )),
                    Err(why) => failures.push(format!(
                        "{what}, op {} ({}), {}: {why}",
                        replayer.position(),
                        replayer.last_op().map_or("start".into(), |o| o.to_string()),
                        state.label
                    )),
                }
            }
            if !replayer.step() {
                break;
            }
        }
    }
    println!("crash states={states} failures={}", failures.len());
    for f in failures.iter().take(10) {
        println!("FAILED {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}

/// The keys on which two contents differ, briefly.
fn difference(want: &State, got: &State) -> String {
    let keys: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .take(5)
        .map(|k| format!("{k}: want {:?}, got {:?}", want.get(k), got.get(k)))
        .collect();
    diff.join("; ")
}

#[test]
fn a_manifest_cut_at_a_line_boundary_loses_nothing() {
    // A cut at a line boundary is no torn tail: the manifest reads as an
    // older, sound one. Repair must still find the files it lost track of:
    // a named file is missing (then every file is read), or the orphans
    // hold writes newer than the manifest knows.
    let base = build_with(|fs| options(fs).manifest_rewrite_threshold_bytes(1 << 20));
    let m = &base.image.files[&manifest()];
    let cuts: Vec<usize> = m
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && i + 1 < m.len())
        .map(|(i, _)| i + 1)
        .collect();
    assert!(cuts.len() >= 2, "{} lines", cuts.len() + 1);
    for cut in cuts {
        let mut image = base.image.clone();
        image.files.insert(manifest(), m[..cut].to_vec());
        let d = Damage {
            what: format!("manifest cut at the line boundary at byte {cut}"),
            image,
            damaged_keys: BTreeSet::new(),
            drops_data: false,
        };
        if let Err(why) = repair_and_check(&base, &d) {
            panic!("{}: {why}", d.what);
        }
    }
}

#[test]
fn a_stale_orphan_does_not_bring_back_a_deleted_key() {
    // A compaction input left behind after the compaction that replaced it
    // (a crash before its removal): with an intact manifest repair ignores
    // it, since its writes are older than the manifest's last sequence.
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    db.put("gone", "old").unwrap();
    db.put("kept", "v").unwrap();
    db.flush().unwrap();
    let image = fs.full_image();
    let (stale, bytes) = image
        .files
        .iter()
        .find(|(p, _)| p.extension().is_some_and(|e| e == "sst"))
        .map(|(p, d)| (p.clone(), d.clone()))
        .expect("a table");
    db.delete("gone").unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    db.close().unwrap();
    let mut image = fs.full_image();
    assert!(!image.files.contains_key(&stale), "the input was removed");
    image.files.insert(stale.clone(), bytes);

    let fs = SimFs::from_image(&image);
    let report = repair(db_dir(), options(&fs)).unwrap();
    assert!(!report.data_dropped(), "{report}");
    assert_eq!(
        report.orphans_ignored,
        std::slice::from_ref(&stale),
        "{report}"
    );
    assert!(check_with(&fs, &db_dir()).unwrap().is_ok());
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(db.get("gone").unwrap(), None);
    assert_eq!(db.get("kept").unwrap().as_deref(), Some(&b"v"[..]));
    drop(db);

    // Without a manifest nothing tells the orphan is stale: it is read and
    // the deleted key comes back (the limit docs/durability.md states).
    image.files.remove(&manifest());
    let fs = SimFs::from_image(&image);
    repair(db_dir(), options(&fs)).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(db.get("gone").unwrap().as_deref(), Some(&b"old"[..]));
}

// Range deletes. A workload writes range tombstones into every place they
// can sit: a table compacted while a snapshot kept them, a flushed L0
// table, and WAL records. Each write's places (the data or range-tombstone
// block, WAL record and value-log entry holding it) are read from the
// intact files, so for each damage the writes it may cost are known; a key
// must then read as the writes that survive make it read: a range-deleted
// key stays deleted unless the damage hit its tombstone, and a key no
// damaged write touches reads exactly as before, by get, scan and scan_rev.

/// One write of the range-delete workload.
#[derive(Clone, Debug)]
enum Op {
    Put(String, String),
    Delete(String),
    DeleteRange(String, String),
}

/// A closed database built by [`build_range`], with its writes by
/// sequence number and where each one sits.
struct RangeInstance {
    image: Image,
    ops: BTreeMap<u64, Op>,
    places: Vec<Place>,
    /// Every key written.
    keys: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum PlaceKind {
    DataBlock,
    RangeDelBlock,
    WalRecord { last: bool },
    VlogEntry,
}

/// Bytes `start..end` of `file` hold the writes `seqs`.
struct Place {
    kind: PlaceKind,
    file: PathBuf,
    start: usize,
    end: usize,
    seqs: BTreeSet<u64>,
}

/// The write a last-level entry with sequence number 0 stands for: the
/// newest put or delete of `user_key` at or below `zeroed_through` (the
/// oldest snapshot of the compaction that zeroed it).
fn newest_write_of(ops: &BTreeMap<u64, Op>, user_key: &[u8], zeroed_through: u64) -> u64 {
    ops.range(..=zeroed_through)
        .rev()
        .find(|(_, op)| matches!(op, Op::Put(k, _) | Op::Delete(k) if k.as_bytes() == user_key))
        .map(|(&seq, _)| seq)
        .expect("a zeroed entry stands for a write before the snapshot")
}

fn seq_of(ikey: &[u8]) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&ikey[ikey.len() - 8..]);
    u64::from_le_bytes(t) >> 8
}

fn build_range() -> RangeInstance {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    // No background work: the tables are exactly the ones written below.
    let db = Db::open(db_dir(), options(&fs).auto_compactions(false)).unwrap();
    let mut ops = BTreeMap::new();
    let mut wal_records: Vec<(PathBuf, usize, usize, u64)> = Vec::new();
    let mut apply = |db: &Db, op: Op, sync: bool| {
        let before = newest_wal(&fs.full_image());
        let mut batch = WriteBatch::new();
        match &op {
            Op::Put(k, v) => batch.put(k, v),
            Op::Delete(k) => batch.delete(k),
            Op::DeleteRange(s, e) => batch.delete_range(s.as_str()..e.as_str()),
        };
        db.write(batch, WriteOptions { sync }).unwrap();
        let seq = db.snapshot().seq().0;
        if sync {
            let (path, end) = newest_wal(&fs.full_image()).expect("a WAL");
            let start = match before {
                Some((p, len)) if p == path => len.max(32),
                _ => 32,
            };
            wal_records.push((path, start, end, seq));
        }
        ops.insert(seq, op);
    };
    let put = |i: usize, tag: &str, long: bool| {
        let pad = if long { "p".repeat(70) } else { String::new() };
        Op::Put(key(i), format!("{tag}-{i}-{pad}"))
    };
    let range = |a: usize, b: usize| Op::DeleteRange(key(a), key(b));
    // A table, then a range delete kept by a snapshot through the
    // compaction that merges both.
    for i in 0..40 {
        apply(&db, put(i, "t1", i % 3 == 0), false);
    }
    db.flush().unwrap();
    let snapshot = db.snapshot();
    apply(&db, range(5, 12), false);
    apply(&db, put(7, "t2", false), false);
    apply(&db, Op::Delete(key(3)), false);
    apply(&db, put(45, "t2", true), false);
    db.flush().unwrap();
    db.compact().unwrap();
    // The compaction wrote what the snapshot sees with sequence number 0.
    let zeroed_through = snapshot.seq().0;
    drop(snapshot);
    // A flushed L0 table with a range delete over the compacted data.
    for i in 50..56 {
        apply(&db, put(i, "t3", i % 2 == 0), false);
    }
    apply(&db, range(20, 26), false);
    apply(&db, put(22, "t3", true), false);
    db.flush().unwrap();
    // Synced WAL records: range deletes over the L0 and compacted tables
    // and over the WAL's own writes, and writes after them.
    apply(&db, put(30, "wal", true), true);
    apply(&db, range(30, 34), true);
    apply(&db, put(32, "wal", false), true);
    apply(&db, range(50, 53), true);
    apply(&db, put(60, "wal", true), true);
    apply(&db, range(38, 41), true);
    apply(&db, put(39, "wal", false), true);
    apply(&db, put(61, "wal", false), true);
    db.close().unwrap();

    let image = fs.full_image();
    let mut places = Vec::new();
    let mut tables_with_tombstones = 0;
    for path in image.files.keys() {
        if path.extension().is_none_or(|e| e != "sst") {
            continue;
        }
        let t = SalvagedTable::open(&fs, path).unwrap();
        assert!(t.problems().is_empty() && t.lost_data().is_none());
        for h in t.data_blocks() {
            let seqs = t
                .block_entries(*h)
                .unwrap()
                .iter()
                .map(|(k, _)| match seq_of(k) {
                    0 => newest_write_of(&ops, &k[..k.len() - 8], zeroed_through),
                    seq => seq,
                })
                .collect();
            places.push(Place {
                kind: PlaceKind::DataBlock,
                file: path.clone(),
                start: h.offset as usize,
                end: (h.offset + h.size) as usize + 5,
                seqs,
            });
        }
        let table = jkv_sstable::Table::open(&fs, path, jkv_format::FileNumber(0)).unwrap();
        if let Some(h) = table.properties().range_deletion_block {
            tables_with_tombstones += 1;
            places.push(Place {
                kind: PlaceKind::RangeDelBlock,
                file: path.clone(),
                start: h.offset as usize,
                end: (h.offset + h.size) as usize + 5,
                seqs: t.range_tombstones().iter().map(|r| r.seq.0).collect(),
            });
        }
    }
    assert!(
        tables_with_tombstones >= 2,
        "the compacted and the flushed table hold range tombstones"
    );
    let last = wal_records.len() - 1;
    for (i, (path, start, end, seq)) in wal_records.into_iter().enumerate() {
        assert!(image.files.contains_key(&path), "the WAL survives close");
        places.push(Place {
            kind: PlaceKind::WalRecord { last: i == last },
            file: path,
            start,
            end,
            seqs: [seq].into(),
        });
    }
    for (path, data) in &image.files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(jkv_format::names::FileKind::ValueLog(number)) =
            jkv_format::names::parse_file_name(name)
        else {
            continue;
        };
        for entry in VlogIter::new(path.clone(), number, bytes::Bytes::from(data.clone())) {
            let entry = entry.expect("intact value log");
            let start = entry.pointer.offset as usize;
            places.push(Place {
                kind: PlaceKind::VlogEntry,
                file: path.clone(),
                start,
                end: start + entry.pointer.len as usize,
                seqs: [entry.seq.0].into(),
            });
        }
    }
    let keys = ops
        .values()
        .flat_map(|op| match op {
            Op::Put(k, _) | Op::Delete(k) => vec![k.clone()],
            Op::DeleteRange(s, _) => vec![s.clone()],
        })
        .chain((0..70).map(key))
        .collect();
    RangeInstance {
        image,
        ops,
        places,
        keys,
    }
}

/// What `k` reads when the writes `lost` are gone.
fn read_model(ops: &BTreeMap<u64, Op>, lost: &BTreeSet<u64>, k: &str) -> Option<String> {
    let live = || ops.iter().filter(|(s, _)| !lost.contains(s));
    let (seq, value) = live()
        .filter_map(|(s, op)| match op {
            Op::Put(key, v) if key == k => Some((*s, Some(v.clone()))),
            Op::Delete(key) if key == k => Some((*s, None)),
            _ => None,
        })
        .next_back()?;
    let deleted = live().any(|(s, op)| {
        matches!(op, Op::DeleteRange(a, b) if a.as_str() <= k && k < b.as_str() && *s > seq)
    });
    if deleted {
        None
    } else {
        value
    }
}

/// Whether `op` bears on what `k` reads.
fn touches(op: &Op, k: &str) -> bool {
    match op {
        Op::Put(key, _) | Op::Delete(key) => key == k,
        Op::DeleteRange(a, b) => a.as_str() <= k && k < b.as_str(),
    }
}

/// One damage: the image, the writes it may cost, and whether the report
/// must say data was dropped (`None`: either may be right).
struct RangeDamage {
    what: String,
    image: Image,
    may_lose: BTreeSet<u64>,
    drops_data: Option<bool>,
}

fn range_damages(base: &RangeInstance) -> Vec<RangeDamage> {
    let mut out = Vec::new();
    let none = BTreeSet::new;
    let mut missing = base.image.clone();
    missing.files.remove(&manifest());
    out.push(RangeDamage {
        what: "manifest missing".into(),
        image: missing,
        may_lose: none(),
        drops_data: Some(false),
    });
    let m = base.image.files[&manifest()].clone();
    for cut in (0..m.len()).step_by(13) {
        let mut image = base.image.clone();
        image.files.insert(manifest(), m[..cut].to_vec());
        out.push(RangeDamage {
            what: format!("manifest truncated to {cut} bytes"),
            image,
            may_lose: none(),
            drops_data: Some(false),
        });
    }
    for at in (0..m.len()).step_by(11) {
        out.push(RangeDamage {
            what: format!("manifest byte {at} flipped"),
            image: flip(&base.image, &manifest(), at),
            may_lose: none(),
            drops_data: Some(false),
        });
    }
    for p in &base.places {
        let name = p.file.file_name().unwrap().to_string_lossy();
        let ats: Vec<usize> = match p.kind {
            PlaceKind::DataBlock | PlaceKind::RangeDelBlock => {
                vec![p.start, (p.start + p.end) / 2, p.end - 2]
            }
            PlaceKind::WalRecord { .. } => vec![p.start + 2, (p.start + p.end) / 2],
            PlaceKind::VlogEntry => vec![(p.start + p.end) / 2],
        };
        let drops_data = match p.kind {
            PlaceKind::DataBlock | PlaceKind::RangeDelBlock => Some(true),
            // Damage in the last record reads as a torn tail.
            PlaceKind::WalRecord { last } => Some(!last),
            // Dropped only when the value was its key's newest version.
            PlaceKind::VlogEntry => None,
        };
        for at in ats {
            out.push(RangeDamage {
                what: format!("{name} {:?} at {}: byte {at} flipped", p.kind, p.start),
                image: flip(&base.image, &p.file, at),
                may_lose: p.seqs.clone(),
                drops_data,
            });
        }
    }
    // Table metadata and footers cost nothing; WAL and value-log headers
    // cost their files' writes.
    for (path, data) in &base.image.files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let in_file: BTreeSet<u64> = base
            .places
            .iter()
            .filter(|p| p.file == *path)
            .flat_map(|p| p.seqs.iter().copied())
            .collect();
        match path.extension().and_then(|e| e.to_str()) {
            Some("sst") => {
                let footer = Footer::decode(data, path).unwrap();
                let mut regions = vec![
                    ("index", footer.index.offset as usize + 1),
                    ("properties", footer.properties.offset as usize + 1),
                    ("footer", data.len() - 40),
                    ("footer magic", data.len() - 3),
                ];
                if let Some(f) = footer.filter {
                    regions.push(("filter", f.offset as usize + 1));
                }
                for (region, at) in regions {
                    out.push(RangeDamage {
                        what: format!("{name} {region}: byte {at} flipped"),
                        image: flip(&base.image, path, at),
                        may_lose: none(),
                        drops_data: Some(false),
                    });
                }
            }
            Some("wal") => out.push(RangeDamage {
                what: format!("{name} header flipped"),
                image: flip(&base.image, path, 9),
                may_lose: in_file,
                drops_data: Some(true),
            }),
            Some("vlog") => out.push(RangeDamage {
                what: format!("{name} header flipped"),
                image: flip(&base.image, path, 3),
                may_lose: in_file,
                drops_data: None,
            }),
            _ => {}
        }
    }
    out
}

/// Every key and value by get; scan and scan_rev must agree with the gets.
fn contents_every_way(db: &Db, keys: &BTreeSet<String>) -> Result<State, String> {
    let got = contents(db, keys.iter().cloned())?;
    let mut rev = Vec::new();
    for item in db.scan_rev::<Vec<u8>>(.., &db.snapshot()) {
        let (k, v) = item.map_err(|e| format!("scan_rev: {e}"))?;
        rev.push((
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
    rev.reverse();
    let forward: Vec<(String, String)> = got.clone().into_iter().collect();
    if rev != forward {
        return Err(format!("scan_rev {rev:?} differs from gets {forward:?}"));
    }
    Ok(got)
}

/// Repairs the damaged image and checks every key against the writes the
/// damage may have cost.
fn repair_and_check_range(
    base: &RangeInstance,
    d: &RangeDamage,
) -> Result<jkv::RepairReport, String> {
    let fs = SimFs::from_image(&d.image);
    let report = repair(db_dir(), options(&fs)).map_err(|e| format!("repair failed: {e}"))?;
    if d.drops_data
        .is_some_and(|want| want != report.data_dropped())
    {
        return Err(format!(
            "report says data dropped: {}, expected {:?}:\n{report}",
            report.data_dropped(),
            d.drops_data
        ));
    }
    let check = check_with(&fs, &db_dir()).map_err(|e| format!("check failed: {e}"))?;
    if !check.is_ok() {
        return Err(format!(
            "check after repair: {check}\nrepair said:\n{report}"
        ));
    }
    let db = Db::open(db_dir(), options(&fs)).map_err(|e| format!("open after repair: {e}"))?;
    let got = contents_every_way(&db, &base.keys)?;
    drop(db);
    for k in &base.keys {
        // The damaged writes that bear on k: each may be lost or not.
        let uncertain: Vec<u64> = d
            .may_lose
            .iter()
            .copied()
            .filter(|s| base.ops.get(s).is_some_and(|op| touches(op, k)))
            .collect();
        assert!(
            uncertain.len() < 12,
            "{k}: {} damaged writes",
            uncertain.len()
        );
        let possible: BTreeSet<Option<String>> = (0..1u32 << uncertain.len())
            .map(|mask| {
                let lost = uncertain
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, s)| *s)
                    .collect();
                read_model(&base.ops, &lost, k)
            })
            .collect();
        let g = got.get(k).cloned();
        if !possible.contains(&g) {
            return Err(format!(
                "{k} reads {g:?}, not one of {possible:?}\nrepair said:\n{report}"
            ));
        }
    }
    Ok(report)
}

#[test]
fn repair_keeps_range_deletes_from_tables_and_wals_through_each_damage() {
    let base = build_range();
    let intact = &base.ops;
    // The workload deletes keys in every place: sanity of the model.
    let none = BTreeSet::new();
    for (k, deleted) in [
        (6, true),
        (7, false),
        (21, true),
        (22, false),
        (31, true),
        (32, false),
        (51, true),
        (40, true),
        (39, false),
    ] {
        assert_eq!(read_model(intact, &none, &key(k)).is_none(), deleted, "{k}");
    }
    let deletes = intact
        .values()
        .filter(|op| matches!(op, Op::DeleteRange(..)))
        .count() as u64;
    let list = range_damages(&base);
    let total = list.len();
    let mut failures = Vec::new();
    let mut range_del_blocks = 0;
    for d in &list {
        match repair_and_check_range(&base, d) {
            Ok(report) => {
                if d.what.contains("RangeDelBlock") {
                    range_del_blocks += 1;
                    let named = report.dropped.iter().any(|p| {
                        p.what.contains("range-tombstone block")
                            && d.image.files.contains_key(&p.file)
                    });
                    if !named {
                        failures.push(format!("{}: not reported:\n{report}", d.what));
                    }
                } else if d.what == "manifest missing" && report.range_tombstones_kept != deletes {
                    // Nothing lost: every delete kept, once.
                    failures.push(format!(
                        "kept {} range tombstones, want {deletes}:\n{report}",
                        report.range_tombstones_kept
                    ));
                }
            }
            Err(why) => failures.push(format!("{}: {why}", d.what)),
        }
    }
    println!(
        "damages={total} (range-tombstone blocks: {range_del_blocks}) failures={}",
        failures.len()
    );
    for f in failures.iter().take(10) {
        println!("FAILED {f}");
    }
    assert!(
        range_del_blocks >= 6,
        "{range_del_blocks} range-tombstone block damages"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} damages failed",
        failures.len()
    );
}

/// Every key `get` finds, checked against scan and scan_rev.
fn live_keys(db: &Db, keys: &BTreeSet<String>) -> Vec<String> {
    let got = contents_every_way(db, keys).unwrap();
    got.into_keys().collect()
}

#[test]
fn a_range_delete_only_in_a_wal_survives_repair_split_across_the_new_tables() {
    // The delete was never flushed: its only copy is a WAL record. Repair
    // writes small tables (several), so the tombstone is split at their
    // boundaries; each part keeps the delete's sequence number.
    let small = |fs: &SimFs| options(fs).target_table_size(2048);
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), small(&fs)).unwrap();
    let keys: BTreeSet<String> = (0..200).map(key).collect();
    for k in &keys {
        db.put(k, format!("value of {k}")).unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let mut batch = WriteBatch::new();
    batch.delete_range(key(50).as_str()..key(150).as_str());
    db.write(batch, WriteOptions { sync: true }).unwrap();
    let delete_seq = db.snapshot().seq();
    db.close().unwrap();
    let image = fs.full_image();
    for (path, _) in image
        .files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "sst"))
    {
        let t = SalvagedTable::open(&fs, path).unwrap();
        assert!(
            t.range_tombstones().is_empty(),
            "the delete is only in the WAL"
        );
    }
    let want: Vec<String> = (0..50).chain(150..200).map(key).collect();

    for manifest_missing in [false, true] {
        let mut image = image.clone();
        if manifest_missing {
            image.files.remove(&manifest());
        }
        let fs = SimFs::from_image(&image);
        // Raw tables: the 200 entries fill at least three of them, so the
        // delete is split across tables.
        let report = repair(db_dir(), small(&fs).compression(jkv::Compression::None)).unwrap();
        assert!(!report.data_dropped(), "{report}");
        assert_eq!(report.range_tombstones_from_wals, 1, "{report}");
        assert_eq!(report.range_tombstones_from_tables, 0, "{report}");
        assert_eq!(report.range_tombstones_kept, 1, "{report}");
        assert!(report.tables_written >= 3, "{report}");
        assert!(
            report.to_string().contains("and 1 range tombstones in"),
            "{report}"
        );
        let check = check_with(&fs, &db_dir()).unwrap();
        assert!(check.is_ok(), "{check}");

        // The new tables hold the parts: each inside its table, together
        // exactly the delete, all with its sequence number.
        let mut parts = Vec::new();
        let mut holders = 0;
        for name in fs.list(&db_dir()).unwrap() {
            if !name.ends_with(".sst") {
                continue;
            }
            let t = SalvagedTable::open(&fs, &db_dir().join(&name)).unwrap();
            holders += usize::from(!t.range_tombstones().is_empty());
            parts.extend(t.range_tombstones().iter().cloned());
        }
        assert!(holders >= 2, "{holders} tables hold a part of the delete");
        parts.sort();
        assert!(parts.iter().all(|p| p.seq == delete_seq), "{parts:?}");
        assert_eq!(parts.first().unwrap().start, key(50).into_bytes());
        assert_eq!(parts.last().unwrap().end, key(150).into_bytes());
        assert!(
            parts.windows(2).all(|w| w[0].end == w[1].start),
            "{parts:?}"
        );

        let db = Db::open(db_dir(), small(&fs)).unwrap();
        assert_eq!(live_keys(&db, &keys), want);
        // Writes after the repair are newer than the delete.
        db.put(key(60), "after repair").unwrap();
        db.close().unwrap();
        let db = Db::open(db_dir(), small(&fs)).unwrap();
        assert_eq!(
            db.get(key(60)).unwrap().as_deref(),
            Some(&b"after repair"[..])
        );
        assert_eq!(db.get(key(61)).unwrap(), None);
        drop(db);
        // A second repair reads the tombstone from the new tables.
        let again = repair(db_dir(), small(&fs)).unwrap();
        assert!(!again.data_dropped(), "{again}");
        assert_eq!(again.range_tombstones_kept, 1, "{again}");
        assert!(again.range_tombstones_from_tables >= 2, "{again}");
        let db = Db::open(db_dir(), small(&fs)).unwrap();
        let mut want_again = want.clone();
        want_again.push(key(60));
        want_again.sort();
        assert_eq!(live_keys(&db, &keys), want_again);
    }
}

#[test]
fn a_damaged_range_tombstone_block_is_reported_with_file_and_offset() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let keys: BTreeSet<String> = (0..30).map(key).collect();
    for k in &keys {
        db.put(k, "v").unwrap();
    }
    db.flush().unwrap();
    db.delete_range(key(10), key(20)).unwrap();
    db.put(key(25), "newer").unwrap();
    db.flush().unwrap();
    db.close().unwrap();
    let image = fs.full_image();
    let (table, block) = image
        .files
        .keys()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .find_map(|p| {
            let t = jkv_sstable::Table::open(&fs, p, jkv_format::FileNumber(0)).unwrap();
            Some((p.clone(), t.properties().range_deletion_block?))
        })
        .expect("a table with a range-tombstone block");
    let fs = SimFs::from_image(&flip(&image, &table, block.offset as usize + 2));

    // Check finds the damage (reads would fail on the table): repair is
    // the way out.
    assert!(!check_with(&fs, &db_dir()).unwrap().is_ok());
    let report = repair(db_dir(), options(&fs)).unwrap();
    assert!(report.data_dropped(), "{report}");
    let p = report
        .dropped
        .iter()
        .find(|p| p.what.contains("range-tombstone block"))
        .unwrap_or_else(|| panic!("not reported:\n{report}"));
    assert_eq!(
        (&p.file, p.offset),
        (&table, Some(block.offset)),
        "{report}"
    );
    let line = format!(
        "DROPPED {} at byte {}: range-tombstone block: ",
        table.display(),
        block.offset
    );
    assert!(report.to_string().contains(&line), "{report}");
    assert_eq!(report.range_tombstones_kept, 0, "{report}");
    assert!(report.damaged_dir.is_some(), "{report}");
    // The database is consistent without the lost delete: its keys show
    // again (what a lost tombstone means), the rest as before.
    assert!(check_with(&fs, &db_dir()).unwrap().is_ok());
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    assert_eq!(
        live_keys(&db, &keys),
        keys.iter().cloned().collect::<Vec<_>>()
    );
    assert_eq!(db.get(key(25)).unwrap().as_deref(), Some(&b"newer"[..]));
}

#[test]
fn a_crash_during_repair_of_range_deletes_leaves_a_directory_repair_can_run_on_again() {
    // A rerun reads the inputs again and the new tables, whose tombstones
    // it merges with the inputs' parts of the same deletes.
    let base = build_range();
    let list = range_damages(&base);
    let mut states = 0;
    let mut failures = Vec::new();
    for what in ["manifest missing", "RangeDelBlock"] {
        let d = list.iter().find(|d| d.what.contains(what)).expect("damage");
        let fs = SimFs::from_image(&d.image);
        fs.start_recording();
        let first = repair(db_dir(), options(&fs)).unwrap();
        let recording = fs.take_recording();
        let db = Db::open(db_dir(), options(&fs)).unwrap();
        let want = contents_every_way(&db, &base.keys).unwrap();
        drop(db);
        let mut rng = StdRng::seed_from_u64(11);
        let mut replayer = Replayer::new(&recording);
        loop {
            for state in replayer.crash_states(&mut rng) {
                states += 1;
                let fs = SimFs::from_image(&state.image);
                let outcome = repair(db_dir(), options(&fs))
                    .map_err(|e| format!("repair again: {e}"))
                    .and_then(|again| {
                        if again.range_tombstones_kept > first.range_tombstones_kept {
                            return Err(format!("more tombstones than the first repair:\n{again}"));
                        }
                        let check = check_with(&fs, &db_dir()).map_err(|e| e.to_string())?;
                        if !check.is_ok() {
                            return Err(format!("check: {check}"));
                        }
                        let db =
                            Db::open(db_dir(), options(&fs)).map_err(|e| format!("open: {e}"))?;
                        contents_every_way(&db, &base.keys)
                    });
                match outcome {
                    Ok(got) if got == want => {}
                    Ok(got) => failures.push(format!(
                        "{what}, op {}, {}: contents differ: {}",
                        replayer.position(),
                        state.label,
                        difference(&want, &got)
                    )),
                    Err(why) => failures.push(format!(
                        "{what}, op {}, {}: {why}",
                        replayer.position(),
                        state.label
                    )),
                }
            }
            if !replayer.step() {
                break;
            }
        }
    }
    println!("crash states={states} failures={}", failures.len());
    for f in failures.iter().take(10) {
        println!("FAILED {f}");
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}
