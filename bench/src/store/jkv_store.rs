//! jkv under test, through its public API only.

use jkv::{Db, Options, WriteBatch, WriteOptions};

use super::Store;
use crate::error::{Error, Result};
use crate::flags::Flags;

const NAME: &str = "jkv";

/// An open jkv database.
pub struct JkvStore {
    db: Db,
}

impl JkvStore {
    /// Opens (or creates) the database in `flags.db` with the flags' sizes.
    pub fn open(flags: &Flags) -> Result<JkvStore> {
        let mut options = Options::default()
            .write_buffer_size(flags.write_buffer_size)
            .bloom_bits_per_key(flags.bloom_bits)
            .wal(!flags.disable_wal)
            // Without --value_threshold every value stays in the tree, as in
            // the other engines with separation off.
            .value_threshold(flags.value_threshold)
            // As db_bench's --compression_type: every level alike; the
            // value log's entries too.
            .compression(flags.compression_type)
            .vlog_compression(flags.compression_type)
            .block_cache_bytes(flags.cache_size as u64);
        if let Some(per_level) = &flags.compression_per_level {
            options = options.compression_per_level(per_level.clone());
        }
        if let Some(n) = flags.max_background_compactions {
            options = options.compaction_threads(n);
        }
        let db = Db::open(&flags.db, options).map_err(|e| Error::engine(NAME, "opening", e))?;
        Ok(JkvStore { db })
    }
}

fn err(op: &'static str) -> impl Fn(jkv::Error) -> Error {
    move |e| Error::engine(NAME, op, e)
}

impl Store for JkvStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.db
            .write(batch, WriteOptions { sync })
            .map(drop)
            .map_err(err("writing"))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.db
            .write(batch, WriteOptions { sync })
            .map(drop)
            .map_err(err("deleting"))
    }

    fn delete_range(&self, start: &[u8], end: &[u8], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(start..end);
        self.db
            .write(batch, WriteOptions { sync })
            .map(drop)
            .map_err(err("deleting a range"))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.db.get(key).map_err(err("reading"))?.map(|v| v.len()))
    }

    fn scan(&self, reverse: bool, limit: u64) -> Result<(u64, u64)> {
        let snapshot = self.db.snapshot();
        let iter = if reverse {
            self.db.scan_rev::<&[u8]>(.., &snapshot)
        } else {
            self.db.scan::<&[u8]>(.., &snapshot)
        };
        let (mut n, mut bytes) = (0, 0);
        for item in iter.take(limit as usize) {
            let (k, v) = item.map_err(err("scanning"))?;
            n += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        Ok((n, bytes))
    }

    fn seek(&self, key: &[u8], nexts: usize) -> Result<(bool, u64)> {
        let snapshot = self.db.snapshot();
        let mut iter = self.db.scan(key.., &snapshot);
        let (mut exact, mut bytes) = (false, 0);
        for i in 0..nexts.max(1) {
            let Some(item) = iter.next() else { break };
            let (k, v) = item.map_err(err("seeking"))?;
            if i == 0 {
                exact = k.as_ref() == key;
            }
            if i < nexts {
                bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok((exact, bytes))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(err("flushing"))
    }

    fn compact(&self) -> Result<()> {
        self.db
            .compact_range::<&[u8]>(..)
            .map_err(err("compacting"))
    }

    fn wait_for_compaction(&self) -> Result<()> {
        self.db
            .wait_for_compactions()
            .map_err(err("waiting for compactions"))
    }

    fn wait_note(&self) -> Option<&'static str> {
        None
    }

    fn stats_text(&self) -> String {
        self.db.stats().to_string()
    }

    fn engine_write_counters(&self) -> Option<(u64, u64)> {
        // Bytes written as the engine defines them in its write amplification
        // (WAL, flushed and compacted tables, and whatever else it counts).
        let s = self.db.stats();
        let written = s.write_amplification().unwrap_or(0.0) * s.user_bytes_written as f64;
        Some((s.user_bytes_written, written.round() as u64))
    }

    fn close(&self) -> Result<()> {
        self.db.close().map_err(err("closing"))
    }
}
