//! The manifest writer under failing storage: a failed append, sync,
//! rename or directory sync poisons the writer (a failed fsync is never
//! retried and trusted), and what reached the disk still opens to a state
//! the writer had acknowledged or was writing.
#![allow(clippy::unwrap_used)]

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jkv_format::fs::DirLock;
use jkv_format::{Error, FileNumber, FileSystem, Result, StdFs, WritableFile};
use jkv_manifest::{Manifest, ManifestOptions, ManifestState, VersionEdit};

/// Which calls count towards the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Append,
    Sync,
    Rename,
    SyncDir,
    OpenAppend,
}

/// Wraps [`StdFs`] and fails the `fail_at`-th counted call (1-based) with
/// EIO; calls of kinds not in `counted` pass through uncounted.
#[derive(Debug)]
struct FailingFs {
    counted: Vec<Op>,
    calls: AtomicUsize,
    fail_at: AtomicUsize,
}

impl FailingFs {
    fn new(counted: &[Op]) -> Arc<FailingFs> {
        Arc::new(FailingFs {
            counted: counted.to_vec(),
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(usize::MAX),
        })
    }

    /// Fails the `k`-th counted call from now on (1 = the next one).
    fn arm(&self, k: usize) {
        self.calls.store(0, Ordering::SeqCst);
        self.fail_at.store(k, Ordering::SeqCst);
    }

    fn check(&self, op: Op, path: &Path) -> Result<()> {
        if !self.counted.contains(&op) {
            return Ok(());
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(Error::io(
                "injected failure of",
                path,
                io::Error::other(format!("{op:?} #{n} fails")),
            ));
        }
        Ok(())
    }
}

struct FailingFile {
    inner: Box<dyn WritableFile>,
    fs: Arc<FailingFs>,
}

impl WritableFile for FailingFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.fs.check(Op::Append, self.inner.path())?;
        self.inner.append(data)
    }
    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
    fn sync(&mut self) -> Result<()> {
        self.fs.check(Op::Sync, self.inner.path())?;
        self.inner.sync()
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
}

/// The handle the manifest gets: shares the counters with the test.
#[derive(Debug)]
struct Handle(Arc<FailingFs>);

impl FileSystem for Handle {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        Ok(Box::new(FailingFile {
            inner: StdFs.create(path)?,
            fs: Arc::clone(&self.0),
        }))
    }
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.0.check(Op::OpenAppend, path)?;
        Ok(Box::new(FailingFile {
            inner: StdFs.open_append(path)?,
            fs: Arc::clone(&self.0),
        }))
    }
    fn map(&self, path: &Path) -> Result<Bytes> {
        StdFs.map(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        StdFs.read_at(path, offset, len)
    }
    fn file_size(&self, path: &Path) -> Result<u64> {
        StdFs.file_size(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        StdFs.truncate(path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.0.check(Op::Rename, from)?;
        StdFs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<()> {
        StdFs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.0.check(Op::SyncDir, dir)?;
        StdFs.sync_dir(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        StdFs.list(dir)
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        StdFs.exists(path)
    }
    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>> {
        StdFs.lock(path)
    }
}

fn wal_edit(state: &ManifestState) -> VersionEdit {
    VersionEdit {
        new_wals: vec![state.next_file],
        next_file: Some(FileNumber(state.next_file.0 + 1)),
        last_seq: Some(state.last_seq.plus(10)),
        ..VersionEdit::default()
    }
}

fn reopen(dir: &Path) -> ManifestState {
    Manifest::open(Arc::new(StdFs), dir, ManifestOptions::default())
        .expect("reopen on the real file system")
        .1
}

#[test]
fn failed_append_poisons_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let failing = FailingFs::new(&[Op::Append]);
    let mut m = Manifest::create(
        Arc::new(Handle(Arc::clone(&failing))),
        dir.path(),
        ManifestState::new(2),
        ManifestOptions::default(),
    )
    .expect("create");
    m.apply(wal_edit(m.state())).expect("first edit");
    let acknowledged = m.state().clone();

    failing.arm(1);
    let err = m.apply(wal_edit(m.state())).expect_err("append fails");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(m.state(), &acknowledged);
    assert!(m.poisoned().is_some());

    // The storage works again, but the writer does not trust it.
    let err = m.apply(wal_edit(m.state())).expect_err("poisoned");
    assert!(
        matches!(&err, Error::ReadOnly(cause) if matches!(**cause, Error::Io { .. })),
        "{err:?}"
    );
    drop(m);
    assert_eq!(reopen(dir.path()), acknowledged);
}

#[test]
fn failed_sync_poisons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let failing = FailingFs::new(&[Op::Sync]);
    let mut m = Manifest::create(
        Arc::new(Handle(Arc::clone(&failing))),
        dir.path(),
        ManifestState::new(2),
        ManifestOptions::default(),
    )
    .expect("create");
    m.apply(wal_edit(m.state())).expect("first edit");
    let acknowledged = m.state().clone();
    let mut attempted = acknowledged.clone();
    let edit = wal_edit(&attempted);
    attempted.apply(&edit).expect("valid edit");

    failing.arm(1);
    m.apply(edit).expect_err("sync fails");
    assert_eq!(m.state(), &acknowledged, "an unsynced edit is not applied");
    assert!(matches!(
        m.apply(wal_edit(m.state())),
        Err(Error::ReadOnly(_))
    ));
    assert!(matches!(
        m.apply(VersionEdit::default()),
        Err(Error::ReadOnly(_))
    ));
    drop(m);
    // The bytes may or may not have reached the disk.
    let state = reopen(dir.path());
    assert!(state == acknowledged || state == attempted, "{state:?}");
}

#[test]
fn failure_at_each_step_of_a_rewrite_poisons_but_keeps_a_complete_manifest() {
    for op in [
        Op::Append,
        Op::Sync,
        Op::Rename,
        Op::SyncDir,
        Op::OpenAppend,
    ] {
        // Each edit appends and syncs; the rewrite then appends and syncs the
        // snapshot, renames, syncs the directory and reopens. Fail the
        // rewrite's own call of kind `op`.
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = FailingFs::new(&[op]);
        let options = ManifestOptions::new().rewrite_threshold_bytes(400);
        let mut m = Manifest::create(
            Arc::new(Handle(Arc::clone(&failing))),
            dir.path(),
            ManifestState::new(2),
            options,
        )
        .expect("create");
        // Apply edits until the next one would trigger a rewrite.
        let line_len = {
            let before = m.file_size_bytes();
            m.apply(wal_edit(m.state())).expect("edit");
            m.file_size_bytes() - before
        };
        while m.file_size_bytes() + line_len <= 400 {
            m.apply(wal_edit(m.state())).expect("edit");
        }
        let mut expected = m.state().clone();
        let edit = wal_edit(&expected);
        expected.apply(&edit).expect("valid");
        let per_edit = match op {
            Op::Append | Op::Sync => 1,
            _ => 0,
        };
        failing.arm(per_edit + 1);
        let err = m.apply(edit).expect_err("rewrite step fails");
        assert!(matches!(err, Error::Io { .. }), "{op:?}: {err:?}");
        assert_eq!(m.state(), &expected, "{op:?}: the edit itself was synced");
        assert!(
            matches!(m.apply(wal_edit(m.state())), Err(Error::ReadOnly(_))),
            "{op:?}: writer must stay poisoned"
        );
        drop(m);
        assert_eq!(reopen(dir.path()), expected, "{op:?}");
        assert!(!dir.path().join(jkv_format::names::MANIFEST_TMP).exists());
    }
}

#[test]
fn every_failure_point_leaves_an_acknowledged_or_attempted_state() {
    let counted = [
        Op::Append,
        Op::Sync,
        Op::Rename,
        Op::SyncDir,
        Op::OpenAppend,
    ];
    for k in 1..80 {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = FailingFs::new(&counted);
        let options = ManifestOptions::new().rewrite_threshold_bytes(600);
        let mut m = Manifest::create(
            Arc::new(Handle(Arc::clone(&failing))),
            dir.path(),
            ManifestState::new(2),
            options,
        )
        .expect("create");
        failing.arm(k);
        let mut acknowledged = m.state().clone();
        let mut attempted = None;
        for _ in 0..30 {
            let edit = wal_edit(m.state());
            let mut next = m.state().clone();
            next.apply(&edit).expect("valid");
            match m.apply(edit) {
                Ok(()) => acknowledged = next,
                Err(_) => {
                    attempted = Some(next);
                    break;
                }
            }
        }
        drop(m);
        let state = reopen(dir.path());
        assert!(
            state == acknowledged || Some(&state) == attempted.as_ref(),
            "failure at call {k}: reopened {state:?}, acknowledged {acknowledged:?}"
        );
    }
}
