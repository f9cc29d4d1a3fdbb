//! The manifest part of the database: the open manifest (appends are file
//! I/O) and the counter that hands out file numbers.
//!
//! Lock: `manifest` is lock order 2 (after the writer lock, before the
//! conflict tracker and the published view); it guards the manifest file
//! and the state it replays to. An edit that changes the table or
//! value-log sets is published (`View::publish*`) before the lock is let
//! go, so views are published in the order of the edits.
//! `next_file` is an atomic: numbers are handed out without the lock and
//! recorded in the next edit (`VersionEdit::next_file`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use jkv_format::FileNumber;
use jkv_manifest::{Manifest, ManifestState, VlogDiscard};

/// The manifest and the file-number counter (lock order 2).
pub(crate) struct ManifestLog {
    manifest: Mutex<Manifest>,
    /// Next file number to hand out.
    next_file: AtomicU64,
}

impl ManifestLog {
    /// The manifest as opened, handing out numbers from `next_file` (at
    /// least 1).
    pub fn new(manifest: Manifest, next_file: FileNumber) -> ManifestLog {
        ManifestLog {
            manifest: Mutex::new(manifest),
            next_file: AtomicU64::new(next_file.0.max(1)),
        }
    }

    /// Locks the manifest (lock order 2) to read its state or apply edits.
    pub fn lock(&self) -> MutexGuard<'_, Manifest> {
        self.manifest.lock()
    }

    /// Hands out a new file number.
    pub fn allocate_file_number(&self) -> FileNumber {
        FileNumber(self.next_file.fetch_add(1, Ordering::SeqCst))
    }

    /// The next number to hand out, for `VersionEdit::next_file`.
    pub fn next_file(&self) -> FileNumber {
        FileNumber(self.next_file.load(Ordering::SeqCst))
    }
}

/// The discards that concern value logs the manifest still names.
pub(crate) fn live_discards(
    state: &ManifestState,
    discards: BTreeMap<FileNumber, u64>,
) -> Vec<VlogDiscard> {
    discards
        .into_iter()
        .filter(|(file, bytes)| *bytes > 0 && state.vlogs.contains_key(file))
        .map(|(file, bytes)| VlogDiscard { file, bytes })
        .collect()
}
