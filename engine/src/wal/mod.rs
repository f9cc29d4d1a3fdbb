//! The write-ahead log: one file per memtable (`NNNNNN.wal`), a sequence of
//! checksummed records (jkv-format's record framing), each holding one
//! write batch (docs/wal-format.md).
//!
//! Only the write-group leader appends ([`writer`]); [`reader`] replays a
//! log at open.

pub(crate) mod reader;
pub(crate) mod writer;

/// Record kind of a write batch.
pub(crate) const RECORD_BATCH: u8 = 1;
