//! fjall 3 under test (cargo feature `fjall`): one keyspace, data and index
//! block compression from `--compression_type` (none or lz4), bloom filters and memtable size from the flags, key-value separation
//! when `--value_threshold` is set. Sync writes insert and then persist the
//! journal with `fdatasync` (fjall's durable write).

use fjall::config::{BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};

use super::Store;
use crate::error::{Error, Result};
use crate::flags::Flags;

const NAME: &str = "fjall";

/// An open fjall database with the benchmark's keyspace.
pub struct FjallStore {
    db: Database,
    ks: Keyspace,
}

fn err(op: &'static str) -> impl Fn(fjall::Error) -> Error {
    move |e| Error::engine(NAME, op, e)
}

impl FjallStore {
    /// Opens (or creates) the database in `flags.db`.
    pub fn open(flags: &Flags) -> Result<FjallStore> {
        if flags.disable_wal {
            eprintln!("note: fjall always writes its journal; --disable_wal is ignored");
        }
        let db = Database::builder(&flags.db)
            .cache_size(flags.cache_size as u64)
            .open()
            .map_err(err("opening"))?;
        let memtable_bytes = flags.write_buffer_size as u64;
        let bloom_bits = flags.bloom_bits;
        let threshold = flags.value_threshold;
        let compression = match flags.compression_type {
            jkv::Compression::None => CompressionPolicy::disabled(),
            jkv::Compression::Lz4 => CompressionPolicy::all(fjall::CompressionType::Lz4),
            other => {
                return Err(Error::Flag(format!(
                    "--compression_type={other}: fjall offers none and lz4"
                )))
            }
        };
        let ks = db
            .keyspace("bench", move || {
                let filter = if bloom_bits == 0 {
                    FilterPolicy::disabled()
                } else {
                    FilterPolicy::all(FilterPolicyEntry::Bloom(
                        BloomConstructionPolicy::BitsPerKey(bloom_bits as f32),
                    ))
                };
                let options = KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_bytes)
                    .data_block_compression_policy(compression.clone())
                    .index_block_compression_policy(compression.clone())
                    .filter_policy(filter);
                match threshold {
                    Some(t) => options.with_kv_separation(Some(
                        KvSeparationOptions::default().separation_threshold(t as u32),
                    )),
                    None => options,
                }
            })
            .map_err(err("opening the keyspace"))?;
        Ok(FjallStore { db, ks })
    }
}

impl Store for FjallStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.ks.insert(key, value).map_err(err("writing"))?;
        if sync {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(err("syncing"))?;
        }
        Ok(())
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.ks.remove(key).map_err(err("deleting"))?;
        if sync {
            self.db
                .persist(PersistMode::SyncData)
                .map_err(err("syncing"))?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.ks.get(key).map_err(err("reading"))?.map(|v| v.len()))
    }

    fn scan(&self, reverse: bool, limit: u64) -> Result<(u64, u64)> {
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut visit = |guard: fjall::Guard| -> Result<bool> {
            let (k, v) = guard.into_inner().map_err(err("scanning"))?;
            n += 1;
            bytes += (k.len() + v.len()) as u64;
            Ok(n < limit)
        };
        if limit == 0 {
            return Ok((0, 0));
        }
        if reverse {
            for g in self.ks.iter().rev() {
                if !visit(g)? {
                    break;
                }
            }
        } else {
            for g in self.ks.iter() {
                if !visit(g)? {
                    break;
                }
            }
        }
        Ok((n, bytes))
    }

    fn seek(&self, key: &[u8], nexts: usize) -> Result<(bool, u64)> {
        let (mut exact, mut bytes) = (false, 0);
        for (i, guard) in self.ks.range(key..).take(nexts.max(1)).enumerate() {
            let (k, v) = guard.into_inner().map_err(err("seeking"))?;
            if i == 0 {
                exact = &*k == key;
            }
            if i < nexts {
                bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok((exact, bytes))
    }

    fn flush(&self) -> Result<()> {
        self.ks.rotate_memtable_and_wait().map_err(err("flushing"))
    }

    fn compact(&self) -> Result<()> {
        self.flush()?;
        self.ks.major_compact().map_err(err("compacting"))
    }

    fn stats_text(&self) -> String {
        format!(
            "fjall: tables {} (L0 {}), blob files {}, disk {} bytes, write buffer {} bytes, journals {}",
            self.ks.table_count(),
            self.ks.l0_table_count(),
            self.ks.blob_file_count(),
            self.ks.disk_space(),
            self.db.write_buffer_size(),
            self.db.journal_count()
        )
    }

    fn close(&self) -> Result<()> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(err("closing"))
    }
}
