//! The engines under test behind one small trait, so every workload runs the
//! same code against each. `jkv` is always built; `fjall`, `redb` and `rocksdb`
//! (a release build of RocksDB's C++ library) only with the cargo features of
//! those names. Implementations are `Send + Sync`: the
//! workloads share one store between their threads.

use std::path::Path;

use crate::error::{Error, Result};
use crate::flags::{EngineKind, Flags};

#[cfg(feature = "fjall")]
mod fjall_store;
mod jkv_store;
#[cfg(feature = "redb")]
mod redb_store;
#[cfg(feature = "rocksdb")]
mod rocksdb_store;

/// What the workloads need of an engine.
pub trait Store: Send + Sync {
    /// Sets `key` to `value`; with `sync`, returns once it is durable.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;
    /// Deletes `key`; with `sync`, returns once it is durable.
    fn delete(&self, key: &[u8], sync: bool) -> Result<()>;
    /// Deletes every key in `[start, end)` with one range tombstone; with
    /// `sync`, returns once it is durable. Default: the engine has none.
    fn delete_range(&self, start: &[u8], end: &[u8], sync: bool) -> Result<()> {
        let _ = (start, end, sync);
        Err(Error::Flag(
            "deleterange: this engine has no range deletes in jkv-bench".into(),
        ))
    }
    /// The length of `key`'s value, or `None` when absent.
    fn get(&self, key: &[u8]) -> Result<Option<usize>>;
    /// Reads up to `limit` entries from the first key (the last with
    /// `reverse`); returns (entries, key + value bytes).
    fn scan(&self, reverse: bool, limit: u64) -> Result<(u64, u64)>;
    /// Positions at the first key `>= key` and reads up to `nexts` entries
    /// from there; returns (whether `key` itself is there, key + value bytes).
    fn seek(&self, key: &[u8], nexts: usize) -> Result<(bool, u64)>;
    /// Makes every write of the finished benchmark visible to readers
    /// (engines that batch writes commit the open batch here). Default: nothing.
    fn settle(&self) -> Result<()> {
        Ok(())
    }
    /// Writes every memtable out to tables (or the engine's equivalent).
    fn flush(&self) -> Result<()>;
    /// Compacts the whole key range; what that means here is in [`Store::compact_note`].
    fn compact(&self) -> Result<()>;
    /// Printed after `compact` when the engine does something other than a
    /// full compaction.
    fn compact_note(&self) -> Option<&'static str> {
        None
    }
    /// Waits until the engine's background compaction has nothing left to
    /// do (db_bench's `waitforcompaction`). Default: returns at once, with
    /// [`Store::wait_note`] saying so.
    fn wait_for_compaction(&self) -> Result<()> {
        Ok(())
    }
    /// Printed after `waitforcompaction` when the engine did not wait.
    fn wait_note(&self) -> Option<&'static str> {
        Some("note: jkv-bench knows no way to wait for this engine's background compaction; it did not wait")
    }
    /// The engine's own figures, for the `stats` benchmark.
    fn stats_text(&self) -> String;
    /// (user bytes, bytes the engine wrote to disk) as the engine counts
    /// them, where it does; used for a second write-amplification figure.
    fn engine_write_counters(&self) -> Option<(u64, u64)> {
        None
    }
    /// Closes the engine, reporting errors that dropping it would hide.
    fn close(&self) -> Result<()>;
}

/// Marker file in every database directory jkv-bench makes; a fresh start
/// deletes only directories that hold it (or are empty).
const MARKER: &str = "JKV_BENCH_DB";

/// Empties `dir` for a fresh database, refusing directories jkv-bench did not make.
pub fn destroy(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let empty = entries.count() == 0;
    if !empty && !dir.join(MARKER).exists() {
        return Err(Error::Flag(format!(
            "refusing to delete {}: it is not empty and was not made by jkv-bench",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::io("deleting", dir, e))
}

/// Creates `dir` (if needed) and marks it as jkv-bench's.
pub fn prepare(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let marker = dir.join(MARKER);
    if !marker.exists() {
        std::fs::write(
            &marker,
            b"made by jkv-bench; a fresh run deletes this directory\n",
        )
        .map_err(|e| Error::io("writing", &marker, e))?;
    }
    Ok(())
}

/// Opens the engine named by `flags.engine` in `flags.db`.
pub fn open(flags: &Flags) -> Result<Box<dyn Store>> {
    prepare(&flags.db)?;
    match flags.engine {
        EngineKind::Jkv => Ok(Box::new(jkv_store::JkvStore::open(flags)?)),
        #[cfg(feature = "fjall")]
        EngineKind::Fjall => Ok(Box::new(fjall_store::FjallStore::open(flags)?)),
        #[cfg(feature = "redb")]
        EngineKind::Redb => Ok(Box::new(redb_store::RedbStore::open(flags)?)),
        #[cfg(feature = "rocksdb")]
        EngineKind::Rocksdb => Ok(Box::new(rocksdb_store::RocksStore::open(flags)?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::Flag(format!(
            "--engine={} is not in this build; rebuild with `--features {}`",
            other.name(),
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_refuses_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), b"x").unwrap();
        assert!(matches!(destroy(dir.path()), Err(Error::Flag(_))));
        assert!(dir.path().join("precious").exists());

        let ours = dir.path().join("db");
        prepare(&ours).unwrap();
        std::fs::write(ours.join("000001.sst"), b"x").unwrap();
        destroy(&ours).unwrap();
        assert!(!ours.exists());
    }

    #[test]
    fn jkv_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let flags = Flags {
            db: dir.path().join("db"),
            ..Flags::default()
        };
        let store = open(&flags).unwrap();
        store.put(b"0000000000000002", b"two", false).unwrap();
        store.put(b"0000000000000001", b"one!", true).unwrap();
        assert_eq!(store.get(b"0000000000000001").unwrap(), Some(4));
        assert_eq!(store.get(b"0000000000000003").unwrap(), None);
        assert_eq!(store.scan(false, 10).unwrap(), (2, 32 + 7));
        assert_eq!(store.scan(true, 1).unwrap(), (1, 16 + 3));
        assert_eq!(store.seek(b"0000000000000001", 2).unwrap(), (true, 32 + 7));
        assert_eq!(store.seek(b"0000000000000000", 1).unwrap(), (false, 16 + 4));
        store.delete(b"0000000000000002", false).unwrap();
        store.compact().unwrap();
        assert_eq!(store.get(b"0000000000000002").unwrap(), None);
        store
            .delete_range(b"0000000000000001", b"0000000000000002", false)
            .unwrap();
        assert_eq!(store.get(b"0000000000000001").unwrap(), None);
        let (user, written) = store.engine_write_counters().unwrap();
        assert!(user > 0 && written > 0);
        store.close().unwrap();
    }
}
