//! RocksDB under test (cargo feature `rocksdb`): the crates.io `rocksdb`
//! crate, whose C++ library cargo builds from source in release (assertions
//! off), unlike Debian's db_bench. Options follow db_bench's defaults where
//! the flags say nothing: compression from `--compression_type` (none by
//! default), bloom filters of `--bloom_bits` bits per key (full filters),
//! an LRU block cache of `--cache_size` bytes, `--write_buffer_size`
//! memtables, and with `--value_threshold=B` blob files for values of at
//! least B bytes (`enable_blob_files`, `min_blob_size`, as db_bench's flags
//! of those names).

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, Options, WaitForCompactOptions, WriteBatch,
    WriteOptions, DB,
};

use super::Store;
use crate::error::{Error, Result};
use crate::flags::Flags;

const NAME: &str = "rocksdb";

/// An open RocksDB database (its default column family).
pub struct RocksStore {
    db: DB,
    sync: WriteOptions,
    nosync: WriteOptions,
}

fn err(op: &'static str) -> impl Fn(rocksdb::Error) -> Error {
    move |e| Error::engine(NAME, op, e)
}

/// The RocksDB compression named by db_bench's `--compression_type` (a
/// zstd level other than RocksDB's default is not passed on).
fn compression(c: jkv::Compression) -> DBCompressionType {
    match c {
        jkv::Compression::None => DBCompressionType::None,
        jkv::Compression::Lz4 => DBCompressionType::Lz4,
        jkv::Compression::Zstd { .. } => DBCompressionType::Zstd,
    }
}

impl RocksStore {
    /// Opens (or creates) the database in `flags.db`.
    pub fn open(flags: &Flags) -> Result<RocksStore> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_write_buffer_size(flags.write_buffer_size);
        options.set_compression_type(compression(flags.compression_type));
        if let Some(n) = flags.max_background_compactions {
            // db_bench's --max_background_compactions; one more job for flushes.
            options.set_max_background_jobs(n as i32 + 1);
        }
        let mut table = BlockBasedOptions::default();
        table.set_block_size(4096);
        table.set_block_cache(&Cache::new_lru_cache(flags.cache_size));
        if flags.bloom_bits > 0 {
            table.set_bloom_filter(flags.bloom_bits as f64, false);
        }
        options.set_block_based_table_factory(&table);
        if let Some(threshold) = flags.value_threshold {
            options.set_enable_blob_files(true);
            options.set_min_blob_size(threshold as u64);
            options.set_blob_compression_type(compression(flags.compression_type));
        }
        let db = DB::open(&options, &flags.db).map_err(err("opening"))?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        sync.disable_wal(flags.disable_wal);
        let mut nosync = WriteOptions::default();
        nosync.disable_wal(flags.disable_wal);
        Ok(RocksStore { db, sync, nosync })
    }

    fn write_options(&self, sync: bool) -> &WriteOptions {
        if sync {
            &self.sync
        } else {
            &self.nosync
        }
    }
}

impl Store for RocksStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.db
            .put_opt(key, value, self.write_options(sync))
            .map_err(err("writing"))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.db
            .delete_opt(key, self.write_options(sync))
            .map_err(err("deleting"))
    }

    fn delete_range(&self, start: &[u8], end: &[u8], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range(start, end);
        self.db
            .write_opt(batch, self.write_options(sync))
            .map_err(err("deleting a range"))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self
            .db
            .get_pinned(key)
            .map_err(err("reading"))?
            .map(|v| v.len()))
    }

    fn scan(&self, reverse: bool, limit: u64) -> Result<(u64, u64)> {
        let mut iter = self.db.raw_iterator();
        if reverse {
            iter.seek_to_last();
        } else {
            iter.seek_to_first();
        }
        let (mut n, mut bytes) = (0u64, 0u64);
        while n < limit && iter.valid() {
            let (k, v) = (iter.key().unwrap_or(&[]), iter.value().unwrap_or(&[]));
            n += 1;
            bytes += (k.len() + v.len()) as u64;
            if reverse {
                iter.prev();
            } else {
                iter.next();
            }
        }
        iter.status().map_err(err("scanning"))?;
        Ok((n, bytes))
    }

    fn seek(&self, key: &[u8], nexts: usize) -> Result<(bool, u64)> {
        let mut iter = self.db.raw_iterator();
        iter.seek(key);
        let (mut exact, mut bytes) = (false, 0u64);
        for i in 0..nexts.max(1) {
            if !iter.valid() {
                break;
            }
            let (k, v) = (iter.key().unwrap_or(&[]), iter.value().unwrap_or(&[]));
            if i == 0 {
                exact = k == key;
            }
            if i < nexts {
                bytes += (k.len() + v.len()) as u64;
            }
            iter.next();
        }
        iter.status().map_err(err("seeking"))?;
        Ok((exact, bytes))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(err("flushing"))
    }

    fn compact(&self) -> Result<()> {
        // db_bench's `compact`: CompactRange over the whole key space.
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(())
    }

    fn wait_for_compaction(&self) -> Result<()> {
        let mut opts = WaitForCompactOptions::default();
        opts.set_flush(true);
        self.db
            .wait_for_compact(&opts)
            .map_err(err("waiting for compactions"))
    }

    fn wait_note(&self) -> Option<&'static str> {
        None
    }

    fn stats_text(&self) -> String {
        match self.db.property_value("rocksdb.stats") {
            Ok(Some(s)) => s,
            Ok(None) => "rocksdb: no rocksdb.stats property".into(),
            Err(e) => format!("rocksdb: reading rocksdb.stats failed: {e}"),
        }
    }

    fn close(&self) -> Result<()> {
        self.db.flush_wal(true).map_err(err("closing"))
    }
}
