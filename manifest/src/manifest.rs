//! The manifest writer: creates `DIR/MANIFEST`, reopens it after a restart,
//! appends one synced line per edit, and rewrites the file as a single
//! snapshot once it grows past a threshold (docs/manifest-format.md,
//! "Rewrite").
//!
//! What it owns: the open manifest file and the state it describes. What it
//! leaves to others: choosing edits (engine, compaction), deleting the files
//! an edit retires (the engine, after `apply` returns), and serialising
//! callers (it takes `&mut self`; the engine keeps it behind its manifest
//! lock).
//!
//! A failed append, sync or rewrite poisons the writer: fsync failure leaves
//! the file's durable contents unknown, so every later edit is refused with
//! [`Error::ReadOnly`] until the database is reopened and replays what
//! actually reached the disk.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::names::{MANIFEST, MANIFEST_TMP};
use jkv_format::{Error, FileSystem, Result, WritableFile};

use crate::edit::VersionEdit;
use crate::reader::{read_file, replay};
use crate::record::{encode_line, RecordRef};
use crate::state::{ManifestState, FORMAT_VERSION};

/// Default [`ManifestOptions::rewrite_threshold_bytes`]: 4 MiB.
pub const REWRITE_THRESHOLD_BYTES_DEFAULT: u64 = 4 << 20;

/// Tuning of the manifest writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestOptions {
    /// Rewrite the manifest as one snapshot once the file is larger than
    /// this many bytes (and at least twice the size of the snapshot it
    /// started with, so a state larger than the threshold is not rewritten
    /// after every edit). Default [`REWRITE_THRESHOLD_BYTES_DEFAULT`].
    pub rewrite_threshold_bytes: u64,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            rewrite_threshold_bytes: REWRITE_THRESHOLD_BYTES_DEFAULT,
        }
    }
}

impl ManifestOptions {
    /// Options with every default.
    pub fn new() -> Self {
        ManifestOptions::default()
    }

    /// Sets [`ManifestOptions::rewrite_threshold_bytes`].
    pub fn rewrite_threshold_bytes(mut self, bytes: u64) -> Self {
        self.rewrite_threshold_bytes = bytes;
        self
    }
}

/// The open manifest of one database directory; see the module docs.
pub struct Manifest {
    /// Where a torn last line was cut off at open, if there was one.
    torn_tail_cut: Option<u64>,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// `dir/MANIFEST`.
    path: PathBuf,
    /// Open for appending; `None` only after a failed rewrite left no usable
    /// handle (the writer is then poisoned).
    file: Option<Box<dyn WritableFile>>,
    /// Bytes in the file as far as this writer knows.
    file_size_bytes: u64,
    /// Length of the snapshot line the current file starts with.
    snapshot_len_bytes: u64,
    state: ManifestState,
    options: ManifestOptions,
    /// The failure that stopped this writer, returned (wrapped) to every
    /// later `apply`.
    poisoned: Option<Arc<Error>>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("path", &self.path)
            .field("file_size_bytes", &self.file_size_bytes)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// True when `dir` has a `MANIFEST`: the engine opens an existing
    /// database when it does and creates one (if allowed) when it does not.
    pub fn exists(fs: &dyn FileSystem, dir: &Path) -> Result<bool> {
        fs.exists(&dir.join(MANIFEST))
    }

    /// Writes a new manifest holding `state` and opens it for edits with
    /// `options`, replacing any `MANIFEST` in `dir`: the snapshot goes to
    /// `MANIFEST.tmp`, which is synced, renamed over `MANIFEST`, and the
    /// directory synced. The state is stamped with [`FORMAT_VERSION`], its
    /// levels put in order and `next_file` raised above every live file; an
    /// inconsistent state (see [`ManifestState::normalize`]) is
    /// [`Error::InvalidArgument`]. Use [`Manifest::state`] afterwards, not
    /// the state passed in.
    pub fn create(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        mut state: ManifestState,
        options: ManifestOptions,
    ) -> Result<Manifest> {
        state.format_version = FORMAT_VERSION;
        state
            .normalize()
            .map_err(|what| Error::InvalidArgument(format!("manifest state rejected: {what}")))?;
        let snapshot_len_bytes = write_snapshot(&*fs, dir, &state)?;
        let path = dir.join(MANIFEST);
        let file = fs.open_append(&path)?;
        Ok(Manifest {
            torn_tail_cut: None,
            file_size_bytes: file.len(),
            file: Some(file),
            fs,
            dir: dir.to_path_buf(),
            path,
            snapshot_len_bytes,
            state,
            options,
            poisoned: None,
        })
    }

    /// Opens the manifest of `dir`, replays it, and returns the writer with
    /// the state it reached (the same as [`Manifest::state`]).
    ///
    /// A torn last line is ignored and cut off, so later appends do not
    /// follow garbage. A `MANIFEST.tmp` left by a crashed rewrite is removed.
    /// A file of an older format version is rewritten in the current one.
    ///
    /// Errors: no `MANIFEST` → [`Error::Io`] of kind `NotFound` (see also
    /// [`Manifest::exists`]); any other bad line, an unknown record type, a
    /// newer format version, a first record that is not a snapshot, or an
    /// edit the state rejects → [`Error::Corruption`] with the offset of the
    /// line's start.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        options: ManifestOptions,
    ) -> Result<(Manifest, ManifestState)> {
        let path = dir.join(MANIFEST);
        if !fs.exists(&path)? {
            return Err(Error::io(
                "opening",
                &path,
                io::Error::new(io::ErrorKind::NotFound, "the directory has no MANIFEST"),
            ));
        }
        let tmp = dir.join(MANIFEST_TMP);
        if fs.exists(&tmp)? {
            // An unfinished rewrite: MANIFEST is still the complete file.
            fs.remove(&tmp)?;
            fs.sync_dir(dir)?;
        }
        let data = read_file(&*fs, &path)?;
        let replayed = replay(&path, &data)?;
        drop(data);
        if replayed.end.torn_at.is_some() {
            fs.truncate(&path, replayed.end.valid_len)?;
        }
        let file = fs.open_append(&path)?;
        let mut manifest = Manifest {
            file_size_bytes: file.len(),
            file: Some(file),
            fs,
            dir: dir.to_path_buf(),
            path,
            snapshot_len_bytes: replayed.snapshot_len_bytes,
            state: replayed.state,
            options,
            poisoned: None,
            torn_tail_cut: replayed.end.torn_at.map(|_| replayed.end.valid_len),
        };
        if manifest.state.format_version < FORMAT_VERSION {
            // An older file: rewrite it in this build's format before any
            // record of that format is appended to it.
            manifest.state.format_version = FORMAT_VERSION;
            manifest.rewrite()?;
        }
        let state = manifest.state.clone();
        Ok((manifest, state))
    }

    /// The length the file was cut to at open because its last line was
    /// torn, or `None` when it ended cleanly. A torn tail is what a crash
    /// during an append leaves, but also what a file truncated by damage
    /// looks like: the engine keeps files the manifest does not name
    /// instead of deleting them when this is set.
    pub fn torn_tail_cut(&self) -> Option<u64> {
        self.torn_tail_cut
    }

    /// Records `edit` durably and applies it to [`Manifest::state`].
    ///
    /// The edit is first applied to a copy of the state; a rejected edit is
    /// [`Error::InvalidArgument`] and nothing is written. Then one line is
    /// appended and the file synced; only then does the state change. Past
    /// the rewrite threshold the file is then rewritten as one snapshot.
    ///
    /// Any other error poisons the writer: this and every later call fail
    /// (later ones with [`Error::ReadOnly`]) until the database is reopened.
    /// After such an error the edit may or may not be durable, so the caller
    /// must not delete files the edit added, nor those it removed. If the
    /// failure came from the rewrite, the edit was already synced and
    /// [`Manifest::state`] includes it.
    pub fn apply(&mut self, edit: VersionEdit) -> Result<()> {
        if let Some(cause) = &self.poisoned {
            return Err(Error::ReadOnly(Arc::clone(cause)));
        }
        let mut next = self.state.clone();
        next.apply(&edit)
            .map_err(|what| Error::InvalidArgument(format!("manifest edit rejected: {what}")))?;
        let line = encode_line(RecordRef::Edit(&edit));
        if let Err(e) = self.append_synced(&line) {
            return Err(self.poison(e));
        }
        self.state = next;
        if self.should_rewrite() {
            if let Err(e) = self.rewrite() {
                return Err(self.poison(e));
            }
        }
        Ok(())
    }

    /// The state after every applied edit.
    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Size of the manifest file in bytes.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// The manifest file, `dir/MANIFEST`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the writer runs with.
    pub fn options(&self) -> &ManifestOptions {
        &self.options
    }

    /// The failure that poisoned the writer, if one did.
    pub fn poisoned(&self) -> Option<&Error> {
        self.poisoned.as_deref()
    }

    fn append_synced(&mut self, line: &[u8]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| {
            // Unreachable while unpoisoned: `file` is only cleared by a
            // rewrite, which poisons on failure.
            Error::io(
                "appending to",
                &self.path,
                io::Error::other("manifest file handle lost after a failed rewrite"),
            )
        })?;
        file.append(line)?;
        file.sync()?;
        self.file_size_bytes = file.len();
        Ok(())
    }

    fn should_rewrite(&self) -> bool {
        self.file_size_bytes > self.options.rewrite_threshold_bytes
            && self.file_size_bytes >= self.snapshot_len_bytes.saturating_mul(2)
    }

    /// Replaces the file with one snapshot of the current state. At every
    /// step either the old or the new `MANIFEST` is complete on disk.
    fn rewrite(&mut self) -> Result<()> {
        let snapshot_len_bytes = write_snapshot(&*self.fs, &self.dir, &self.state)?;
        // The old handle refers to the replaced file; never append to it.
        self.file = None;
        let file = self.fs.open_append(&self.path)?;
        self.file_size_bytes = file.len();
        self.snapshot_len_bytes = snapshot_len_bytes;
        self.file = Some(file);
        Ok(())
    }

    fn poison(&mut self, error: Error) -> Error {
        self.poisoned = Some(Arc::new(error.clone()));
        error
    }
}

/// Writes `state` as the only record of a new `dir/MANIFEST`: into
/// `MANIFEST.tmp`, synced, renamed over `MANIFEST`, directory synced.
/// Returns the length of the file.
fn write_snapshot(fs: &dyn FileSystem, dir: &Path, state: &ManifestState) -> Result<u64> {
    debug_assert_eq!(state.format_version, FORMAT_VERSION);
    let tmp = dir.join(MANIFEST_TMP);
    let line = encode_line(RecordRef::Snapshot(state));
    let mut file = fs.create(&tmp)?;
    file.append(&line)?;
    file.sync()?;
    drop(file);
    fs.rename(&tmp, &dir.join(MANIFEST))?;
    fs.sync_dir(dir)?;
    Ok(line.len() as u64)
}
