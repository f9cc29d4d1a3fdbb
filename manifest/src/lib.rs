//! jkv-manifest: the durable record of which files make up the database.
//!
//! `DIR/MANIFEST` is an append-only file of JSON records, one per line, each
//! with its own checksum (docs/manifest-format.md). It starts with a
//! [`Record::Snapshot`] of the whole [`ManifestState`]; each later
//! [`Record::Edit`] carries one [`VersionEdit`] (a new WAL, a flushed table,
//! a compaction's result, counters). [`Manifest`] writes it: one synced line
//! per edit, and a rewrite as a single snapshot past a size threshold.
//! [`read_records`] and [`verify`] read it for the command-line tools.
//!
//! This crate knows nothing of the engine: it takes plain table metadata and
//! file numbers, and leaves deleting files to its caller.
#![forbid(unsafe_code)]

pub mod edit;
pub mod error;
pub mod manifest;
pub mod reader;
pub mod record;
pub mod state;

pub use edit::{TableId, TableMeta, VersionEdit, VlogDiscard};
pub use error::{Error, Result};
pub use manifest::{Manifest, ManifestOptions, REWRITE_THRESHOLD_BYTES_DEFAULT};
pub use reader::{read_records, verify, verify_file, BadLine, VerifyReport};
pub use record::Record;
pub use state::{ManifestState, Rejected, VlogMeta, FORMAT_VERSION};
