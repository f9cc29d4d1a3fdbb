//! Large values written by several threads at once: the commit groups that
//! form put many batches' values into the value log with one vectored write
//! each (and large WAL payloads after their headers). Every value reads
//! back, before and after reopening, with and without separation, whatever
//! mix of small, 4 KiB and 64 KiB values and synced and unsynced writes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, Options, WriteBatch, WriteOptions};

const THREADS: u64 = 4;
const WRITES: u64 = 150;

fn value(thread: u64, i: u64) -> Vec<u8> {
    let len = match (thread + i) % 4 {
        0 => 10,
        1 => 4096,
        2 => 65_536 + 3,
        _ => 1500,
    };
    let mut v = format!("{thread}/{i}/").into_bytes();
    v.resize(len, (thread * 31 + i) as u8);
    v
}

fn key(thread: u64, i: u64) -> String {
    format!("t{thread}-{i:05}")
}

fn run(threshold: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .write_buffer_size(1 << 20)
            .value_threshold(threshold)
            .vlog_file_size(2 << 20)
    };
    {
        let db = Arc::new(Db::open(dir.path(), options()).unwrap());
        let writers: Vec<_> = (0..THREADS)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    for i in 0..WRITES {
                        let mut batch = WriteBatch::new();
                        batch.put(key(t, i), value(t, i));
                        if i % 3 == 0 {
                            // Two values in one batch.
                            batch.put(format!("{}-b", key(t, i)), value(t, i + 1));
                        }
                        db.write(batch, WriteOptions { sync: i % 10 == 0 }).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        check_all(&db);
        let db = Arc::try_unwrap(db).ok().unwrap();
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    check_all(&db);
    db.close().unwrap();
}

fn check_all(db: &Db) {
    for t in 0..THREADS {
        for i in 0..WRITES {
            let got = db.get(key(t, i)).unwrap().unwrap();
            assert!(got.as_ref() == value(t, i), "{} differs", key(t, i));
            if i % 3 == 0 {
                let got = db.get(format!("{}-b", key(t, i))).unwrap().unwrap();
                assert!(got.as_ref() == value(t, i + 1), "{}-b differs", key(t, i));
            }
        }
    }
}

#[test]
fn concurrent_large_values_read_back_with_separation() {
    run(Some(1024));
}

#[test]
fn concurrent_large_values_read_back_without_separation() {
    run(None);
}
