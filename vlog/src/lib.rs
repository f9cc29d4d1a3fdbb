//! jkv-vlog: the value-log files `NNNNNN.vlog` (docs/vlog-format.md).
//!
//! Values at or above the engine's `value_threshold` are appended to a value
//! log instead of being stored in the memtable, WAL and tables; those hold a
//! 20-byte [`ValuePointer`] to the entry instead. This crate owns the file
//! layer only:
//!
//! - [`VlogWriter`] creates a file and appends entries (one owner, the
//!   engine's write leader);
//! - [`VlogReader`] resolves pointers to values as zero-copy slices of cached
//!   memory maps, from any number of threads;
//! - [`VlogIter`] walks every entry of one file in order (garbage collection,
//!   `jkv check`), telling a torn tail apart from corruption;
//! - [`verify()`] checks a whole file for `jkv check`;
//! - [`gc::pick`] decides which files garbage collection takes next, as a
//!   pure function of facts about each file.
//!
//! Rolling files, discard statistics and carrying out a collection belong to
//! the engine: this crate knows nothing of which entries are live.
#![forbid(unsafe_code)]

pub mod codec;
pub mod entry;
pub mod error;
pub mod gc;
pub mod header;
pub mod iter;
pub mod reader;
pub mod verify;
pub mod writer;

#[cfg(test)]
mod test_support;

pub use entry::{ENTRY_HEADER_LEN, ENTRY_LEN_MAX, KEY_LEN_MAX, VALUE_LEN_MAX};
pub use error::{Error, Result};
pub use gc::{GcPolicy, VlogFileFacts};
pub use header::{FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use iter::{scan, VlogEntry, VlogIter, VlogScan};
pub use jkv_format::ValuePointer;
pub use reader::VlogReader;
pub use verify::{verify, VerifyReport};
pub use writer::VlogWriter;
