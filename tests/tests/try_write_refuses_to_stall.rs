//! `Db::try_write` returns `Error::WouldStall`, writing nothing, where
//! `Db::write` would wait: while the memtable is full and the frozen one
//! waits for its flush, and while level 0 is past its slowdown trigger
//! because compaction has not caught up. Flushes and compactions are held
//! back by a file system (built on the re-exported `jkv::FileSystem`) that
//! makes table creation wait for a permit.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use jkv::{
    Bytes, Db, DirLock, Error, FileSystem, Options, StdFs, WritableFile, WriteBatch, WriteOptions,
};

/// `StdFs`, but creating a table (`*.sst`) takes a permit and waits for
/// one while there is none.
#[derive(Debug, Default)]
struct GatedFs {
    permits: Mutex<usize>,
    changed: Condvar,
}

impl GatedFs {
    fn set_permits(&self, n: usize) {
        *self.permits.lock() = n;
        self.changed.notify_all();
    }
}

impl FileSystem for GatedFs {
    fn create(&self, path: &Path) -> jkv::Result<Box<dyn WritableFile>> {
        if path.extension().is_some_and(|e| e == "sst") {
            let mut permits = self.permits.lock();
            while *permits == 0 {
                self.changed.wait(&mut permits);
            }
            *permits -= 1;
        }
        StdFs.create(path)
    }
    fn open_append(&self, path: &Path) -> jkv::Result<Box<dyn WritableFile>> {
        StdFs.open_append(path)
    }
    fn map(&self, path: &Path) -> jkv::Result<Bytes> {
        StdFs.map(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> jkv::Result<Vec<u8>> {
        StdFs.read_at(path, offset, len)
    }
    fn file_size(&self, path: &Path) -> jkv::Result<u64> {
        StdFs.file_size(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> jkv::Result<()> {
        StdFs.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> jkv::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> jkv::Result<()> {
        StdFs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> jkv::Result<()> {
        StdFs.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> jkv::Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn exists(&self, path: &Path) -> jkv::Result<bool> {
        StdFs.exists(path)
    }
    fn create_dir_all(&self, dir: &Path) -> jkv::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn lock(&self, path: &Path) -> jkv::Result<Box<dyn DirLock>> {
        StdFs.lock(path)
    }
}

fn batch(key: &str) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key, vec![7u8; 1000]);
    b
}

/// Retries `try_write` until it succeeds (the background work it waited
/// for has caught up), for at most 20 s.
fn try_until_written(db: &Db, key: &str) {
    let start = Instant::now();
    loop {
        match db.try_write(batch(key), WriteOptions::default()) {
            Ok(_) => return,
            Err(Error::WouldStall { .. }) => {
                assert!(start.elapsed() < Duration::from_secs(20), "still stalled");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn full_memtables_make_try_write_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(GatedFs::default());
    let options = Options::default()
        .file_system(fs.clone())
        .write_buffer_size(64 << 10)
        .max_immutable_memtables(1);
    let db = Arc::new(Db::open(dir.path(), options).unwrap());
    // Flushes wait from now on: fill the memtable, freeze it, fill the next.
    let mut i = 0;
    let refused = loop {
        assert!(i < 10_000, "the write path never filled up");
        match db.try_write(batch(&format!("k{i:05}")), WriteOptions::default()) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(refused, Error::WouldStall { what } if what.contains("memtable")),
        "{refused:?}"
    );
    let stats = db.stats();
    assert_eq!(stats.frozen_memtables, 1, "{stats}");
    assert!(i > 64, "a whole memtable and more went in first: {i}");
    assert_eq!(db.get(format!("k{i:05}")).unwrap(), None, "nothing written");

    // A plain write waits instead, until the flush may go on.
    let (done_tx, done_rx) = mpsc::channel();
    let writer = {
        let db = db.clone();
        let key = format!("k{i:05}");
        std::thread::spawn(move || {
            let r = db.write(batch(&key), WriteOptions::default());
            done_tx.send(()).unwrap();
            r
        })
    };
    assert!(
        done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "write did not wait for the flush"
    );
    fs.set_permits(usize::MAX);
    writer.join().unwrap().unwrap();
    assert!(db.get(format!("k{i:05}")).unwrap().is_some());
    try_until_written(&db, "after");
    db.close().unwrap();
}

#[test]
fn level0_past_its_slowdown_trigger_makes_try_write_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(GatedFs::default());
    fs.set_permits(2); // two flushes; the compaction they start waits
    let options = Options::default()
        .file_system(fs.clone())
        .l0_compaction_trigger(2)
        .l0_slowdown_writes_trigger(2)
        .l0_stop_writes_trigger(3);
    let db = Db::open(dir.path(), options).unwrap();
    for round in 0..2 {
        // Overlapping tables: compaction must merge them (a new table),
        // not move them down.
        for key in [format!("a{round}"), format!("z{round}")] {
            db.try_write(batch(&key), WriteOptions::default()).unwrap();
        }
        db.flush().unwrap();
    }
    assert_eq!(db.stats().levels[0].tables, 2);
    let refused = db
        .try_write(batch("refused"), WriteOptions::default())
        .unwrap_err();
    assert!(
        matches!(refused, Error::WouldStall { what } if what.contains("level 0")),
        "{refused:?}"
    );
    assert_eq!(db.get("refused").unwrap(), None, "nothing written");
    fs.set_permits(usize::MAX);
    try_until_written(&db, "after compaction");
    assert!(db.stats().levels[0].tables < 2);
    db.close().unwrap();
}
