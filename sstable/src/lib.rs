//! jkv-sstable: block-based sorted tables (docs/sst-format.md).
//!
//! A table is an immutable file of internal-key-ordered entries: data blocks
//! with prefix-compressed keys and restart points, one bloom filter over the
//! user keys, an index with one entry per data block, a properties block and
//! a fixed-size footer; every block carries a crc32 trailer.
//!
//! - [`TableBuilder`] writes a table from sorted entries and syncs it.
//! - [`Table`] maps a finished file, checks its metadata, answers point
//!   lookups ([`Table::get`]) and gives cursors ([`TableIter`]).
//! - [`SalvagedTable`] reads the data blocks that survive in a damaged
//!   table (offline repair).
//! - [`TableCache`] keeps tables open by file number. Data blocks are read
//!   straight from the map; each table remembers which blocks passed their
//!   checksum (`verified.rs`), so only a block's first read pays for it.
//!
//! Everything read from disk is checked before use; damage surfaces as
//! [`Error::Corruption`] naming the file and byte offset, never as a panic.
//! Tables, caches and filters are `Send + Sync`; builders and cursors belong
//! to one thread at a time.

#![warn(missing_docs)]

pub mod block;
pub mod block_cache;
pub mod builder;
pub mod codec;
pub mod dump;
pub mod error;
pub mod filter;
pub mod footer;
pub mod handle;
pub mod index;
pub mod properties;
pub mod range_del;
pub mod salvage;
pub mod table;
pub mod table_cache;
pub mod table_iter;
mod verified;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use block_cache::{BlockCache, BlockCacheStats, CachePolicy};
pub use builder::{TableBuilder, TableOptions, TableSummary};
pub use error::{Error, Result};
pub use handle::BlockHandle;
pub use jkv_format::Compression;
pub use properties::TableProperties;
pub use salvage::SalvagedTable;
pub use table::Table;
pub use table_cache::TableCache;
pub use table_iter::TableIter;
pub use verify::VerifyReport;
