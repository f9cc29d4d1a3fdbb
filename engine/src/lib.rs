//! jkv: an embedded LSM-tree key-value storage engine.
//!
//! ```no_run
//! use jkv::{Db, Options, WriteBatch, WriteOptions};
//! # fn main() -> jkv::Result<()> {
//! let db = Db::open("/tmp/jkv-example", Options::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"k1", b"v1");
//! batch.delete(b"k0");
//! db.write(batch, WriteOptions { sync: true })?;
//! let snapshot = db.snapshot();
//! for item in db.scan(b"k".as_slice().., &snapshot) {
//!     let (key, value) = item?;
//!     println!("{key:?} = {value:?}");
//! }
//! // The whole key space; an iterator seeks either way without being rebuilt.
//! let mut all = db.iter(&snapshot);
//! all.seek_for_prev(b"k1");
//! let last_at_or_before_k1 = all.next().transpose()?;
//! # let _ = last_at_or_before_k1;
//! db.close()?;
//! # Ok(()) }
//! ```
//!
//! Writes go to a write-ahead log and an in-memory table, which is flushed
//! to sorted tables on disk in the background. See docs/architecture.md.
#![forbid(unsafe_code)]

mod batch;
mod check;
mod compaction;
mod db;
mod flush;
mod iter;
mod manifest_log;
mod options;
mod range_del;
mod read;
mod recovery;
mod repair;
mod snapshot;
mod stats;
mod version;
mod view;
mod vlog;
mod wal;
mod workers;
mod write;

pub use batch::{WriteBatch, VALUE_LEN_MAX};
pub use bytes::Bytes;
pub use check::{check, check_with, CheckReport, Problem};
pub use db::Db;
pub use iter::{DbIterator, DbKeys};
pub use jkv_format::fs::DirLock;
pub use jkv_format::key::USER_KEY_LEN_MAX as KEY_LEN_MAX;
pub use jkv_format::{
    Compression, Error, FileNumber, FileSystem, Result, SeqNo, StdFs, WritableFile,
};
pub use options::{
    Options, WriteOptions, DEFAULT_BLOCK_CACHE_BYTES, DEFAULT_COMPRESSION_PER_LEVEL,
};
pub use repair::{repair, RepairReport};
pub use snapshot::Snapshot;
pub use stats::{LevelStats, Stats, VlogFileStats};
pub use vlog::VlogGcReport;
