//! jkv-compaction: keeps a leveled LSM tree in shape.
//!
//! - [`config`]: level count, size targets, L0 triggers.
//! - [`levels`]: the level model — dynamic targets computed from the size
//!   of the last level, the base level L0 compacts into, and each level's
//!   score.
//! - [`picker`]: a pure function from table metadata and the running tasks
//!   to the next task; testable without a disk.
//! - [`garbage`]: the same for tasks that only drop garbage (bottom-level
//!   self-compaction, shadowed versions of an idle database).
//! - [`status`]: which tables and key ranges running tasks hold (conflict
//!   tracking).
//! - [`merge`]: the streaming k-way merge that decides which versions
//!   survive, and [`job`]: running a task into new table files.
//!
//! The engine owns threads and the manifest; this crate owns no threads and
//! does no manifest I/O.
#![forbid(unsafe_code)]

pub mod config;
pub mod garbage;
pub mod job;
pub mod levels;
pub mod merge;
pub mod picker;
pub mod status;

pub use config::CompactionConfig;
pub use garbage::{pick_garbage, GarbageContext};
pub use job::{run_job, table_meta, JobOutput};
pub use levels::LevelTargets;
pub use merge::{CompactionFilter, MergingIterator, RangeDelFilter};
pub use picker::{pick, CompactionTask, TaskKind, TaskReason};
pub use status::CompactionStatus;

use jkv_format::key::user_key;
use jkv_manifest::TableMeta;

/// User-key range `[smallest, largest]` covered by `tables`; `None` if empty.
pub fn user_key_range(tables: &[&TableMeta]) -> Option<(Vec<u8>, Vec<u8>)> {
    let smallest = tables.iter().map(|t| user_key(&t.smallest)).min()?;
    let largest = tables.iter().map(|t| user_key(&t.largest)).max()?;
    Some((smallest.to_vec(), largest.to_vec()))
}

/// Whether a table's user-key range meets `[lo, hi]`.
pub fn overlaps(table: &TableMeta, lo: &[u8], hi: &[u8]) -> bool {
    user_key(&table.smallest) <= hi && user_key(&table.largest) >= lo
}
