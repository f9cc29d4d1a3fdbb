//! jkv-format: the bottom of the jkv crate stack.
//!
//! Everything two or more storage crates need to agree on lives here and
//! nowhere else: the error type, id newtypes, the internal key encoding and
//! its order, integer coding helpers, the checksummed record framing used by
//! write-ahead logs, the on-disk file names, and the [`fs::FileSystem`] trait
//! through which every byte reaches the disk.
//!
//! This crate has no threads and no global state; every type is `Send + Sync`
//! where that makes sense.

pub mod coding;
pub mod compression;
pub mod error;
pub mod file_header;
pub mod fs;
pub mod ids;
pub mod iter;
pub mod key;
pub mod names;
pub mod pointer;
pub mod range_del;
pub mod record;

pub use compression::Compression;
pub use error::{Error, Result};
pub use fs::{FileSystem, StdFs, WritableFile};
pub use ids::{FileNumber, SeqNo};
pub use iter::InternalIterator;
pub use key::{InternalKey, ValueKind};
pub use pointer::ValuePointer;
pub use range_del::{RangeTombstone, RangeTombstoneSet};

/// Checksum used by every block, record and manifest line: CRC-32 (IEEE),
/// hardware accelerated by `crc32fast` where the CPU allows.
#[inline]
pub fn checksum(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Checksum over several byte slices as if they were concatenated.
#[inline]
pub fn checksum_parts(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}
