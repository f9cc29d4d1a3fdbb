//! A simulated file system for crash and fault tests: an in-memory
//! [`FileSystem`] that keeps apart what a machine crash would keep and what
//! it would lose, records every state-changing operation of a run, and can
//! fail the k-th operation of a kind.
//!
//! Model (docs/durability.md, "What the tests assume of the disk"):
//! - A file is an inode with bytes; a directory maps names to inodes.
//! - [`WritableFile::append`] buffers in the process (like `StdFs`);
//!   `flush` hands the bytes to the "OS" (they survive a process crash);
//!   `sync` makes them durable (they survive a machine crash). Bytes synced
//!   stay synced, also when the name of the file is not durable.
//! - `create`, `rename` and `remove` change the live directory at once, but
//!   are durable only after `sync_dir` of the parent directory; until then
//!   they are *pending*. Directories themselves (`create_dir_all`) are
//!   durable at once.
//! - `truncate` cuts the file and syncs it (like `StdFs`).
//!
//! A run is recorded with [`SimFs::start_recording`] /
//! [`SimFs::take_recording`]; a [`Replayer`] steps through the recording
//! one operation at a time and, at each boundary, produces the crash states
//! of [`CrashState`]: only synced data with pending directory operations
//! undone, everything written, each unsynced tail kept, dropped or torn,
//! and subsets of the pending directory operations. [`SimFs::from_image`]
//! turns a crash state into a file system to reopen the database on.
//!
//! Faults: [`SimFs::inject`] arms a [`Fault`] that fails the k-th
//! operation of a kind with an `io::ErrorKind` (EIO is `Other` with
//! `raw_os_error` 5 in the message; ENOSPC is `StorageFull`), once or for
//! good. A failed operation changes nothing.
//!
//! Threads: all state sits behind one mutex, so operations of the engine's
//! threads are linearised in the order they took it; the recording is that
//! order. Clones of a `SimFs` share the state.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::Rng;

use jkv_format::fs::{DirLock, FileSystem, WritableFile};
use jkv_format::{Error, Result};

/// The kinds of operations, for counting and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `FileSystem::create`.
    Create,
    /// `FileSystem::open_append`.
    OpenAppend,
    /// `WritableFile::append` (into the process buffer).
    Append,
    /// `WritableFile::flush`, and the write-out part of `sync`: bytes handed
    /// to the OS.
    Write,
    /// `WritableFile::sync` (the fsync part).
    Sync,
    /// `FileSystem::map` and `FileSystem::read_at`.
    Read,
    /// `FileSystem::file_size` and `FileSystem::exists`.
    Stat,
    /// `FileSystem::truncate`.
    Truncate,
    /// `FileSystem::rename`.
    Rename,
    /// `FileSystem::remove`.
    Remove,
    /// `FileSystem::sync_dir`.
    SyncDir,
    /// `FileSystem::list`.
    List,
    /// `FileSystem::create_dir_all`.
    CreateDir,
    /// `FileSystem::lock`.
    Lock,
}

impl OpKind {
    /// Every kind.
    pub const ALL: [OpKind; 14] = [
        OpKind::Create,
        OpKind::OpenAppend,
        OpKind::Append,
        OpKind::Write,
        OpKind::Sync,
        OpKind::Read,
        OpKind::Stat,
        OpKind::Truncate,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::SyncDir,
        OpKind::List,
        OpKind::CreateDir,
        OpKind::Lock,
    ];
}

/// An injected failure: the `nth` operation (1-based, counted from when the
/// fault is armed) of `kind` (or of any kind when `None`) fails with
/// `error`; with `sticky`, every later matching operation fails too.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Kind of operation to fail; `None` counts every operation.
    pub kind: Option<OpKind>,
    /// Which matching operation fails first, from 1.
    pub nth: u64,
    /// The error returned.
    pub error: Errno,
    /// Keep failing after the first failure.
    pub sticky: bool,
}

/// The errors a fault injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// EIO (5): input/output error.
    Eio,
    /// ENOSPC (28): no space left on device (`io::ErrorKind::StorageFull`).
    Enospc,
}

impl Errno {
    /// The OS error code.
    pub fn code(self) -> i32 {
        match self {
            Errno::Eio => 5,
            Errno::Enospc => 28,
        }
    }

    /// The `io::Error` the OS would return.
    pub fn to_io(self) -> io::Error {
        io::Error::from_raw_os_error(self.code())
    }

    /// True when `e` is this error (also after `jkv::Error::clone`, which
    /// keeps the kind and the message but not the code).
    pub fn matches(self, e: &io::Error) -> bool {
        e.raw_os_error() == Some(self.code())
            || (e.kind() == self.to_io().kind() && e.to_string() == self.to_io().to_string())
    }
}

/// A recorded state-changing operation. Inodes are numbered in the order
/// the recorded run created them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new empty inode under `path` (replacing what was there).
    Create {
        /// The name.
        path: PathBuf,
        /// The new inode.
        inode: u64,
    },
    /// Bytes handed to the OS at the end of `inode`.
    Write {
        /// The inode.
        inode: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Every byte of `inode` made durable.
    Sync {
        /// The inode.
        inode: u64,
    },
    /// `inode` cut to `len` bytes and synced.
    Truncate {
        /// The inode.
        inode: u64,
        /// New length.
        len: usize,
    },
    /// `from` renamed over `to`.
    Rename {
        /// Old name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
    /// `path` removed.
    Remove {
        /// The name.
        path: PathBuf,
    },
    /// Pending directory operations in `dir` made durable.
    SyncDir {
        /// The directory.
        dir: PathBuf,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create { path, inode } => write!(f, "create {} (inode {inode})", path.display()),
            Op::Write { inode, data } => write!(f, "write {} bytes to inode {inode}", data.len()),
            Op::Sync { inode } => write!(f, "sync inode {inode}"),
            Op::Truncate { inode, len } => write!(f, "truncate inode {inode} to {len}"),
            Op::Rename { from, to } => write!(f, "rename {} -> {}", from.display(), to.display()),
            Op::Remove { path } => write!(f, "remove {}", path.display()),
            Op::SyncDir { dir } => write!(f, "sync dir {}", dir.display()),
        }
    }
}

/// The state changes of one run, from a starting image.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// The disk when recording started (as after a clean shutdown: all of
    /// it durable).
    pub base: Image,
    /// The operations, in the order they happened.
    pub ops: Vec<Op>,
}

/// What a disk holds after a crash: directories and files with their bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Image {
    /// Directories.
    pub dirs: BTreeSet<PathBuf>,
    /// Files and their bytes.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

/// One crash state: a label saying how it was made, and the disk.
#[derive(Clone, Debug)]
pub struct CrashState {
    /// E.g. `"synced"`, `"all"`, `"torn 000005.wal at 4096"`.
    pub label: String,
    /// True for the state a process crash leaves (every byte handed to the
    /// OS and every directory operation kept): there, every acknowledged
    /// write must survive, synced or not.
    pub process_crash: bool,
    /// The disk.
    pub image: Image,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced_len: usize,
}

/// A directory operation not yet made durable.
#[derive(Clone, Debug)]
enum DirOp {
    Link { path: PathBuf, inode: u64 },
    Rename { from: PathBuf, to: PathBuf },
    Unlink { path: PathBuf },
}

impl DirOp {
    fn dir(&self) -> &Path {
        let p = match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => path,
            DirOp::Rename { from, .. } => from,
        };
        p.parent().unwrap_or(Path::new(""))
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Rename { from, to } => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
        }
    }
}

/// The disk model without process state: what [`Replayer`] steps and what
/// the live file system keeps.
#[derive(Clone, Debug, Default)]
struct Disk {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    pending: Vec<DirOp>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
}

impl Disk {
    fn from_image(image: &Image) -> Disk {
        let mut disk = Disk {
            dirs: image.dirs.clone(),
            ..Disk::default()
        };
        for (path, data) in &image.files {
            let inode = disk.next_inode;
            disk.next_inode += 1;
            disk.inodes.insert(
                inode,
                Inode {
                    data: data.clone(),
                    synced_len: data.len(),
                },
            );
            disk.names.insert(path.clone(), inode);
        }
        disk.durable_names = disk.names.clone();
        disk
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { path, inode } => {
                self.inodes.insert(*inode, Inode::default());
                self.next_inode = self.next_inode.max(inode + 1);
                self.dir_op(DirOp::Link {
                    path: path.clone(),
                    inode: *inode,
                });
            }
            Op::Write { inode, data } => {
                let node = self
                    .inodes
                    .get_mut(inode)
                    .expect("writes go to live inodes");
                node.data.extend_from_slice(data);
            }
            Op::Sync { inode } => {
                let node = self.inodes.get_mut(inode).expect("syncs go to live inodes");
                node.synced_len = node.data.len();
            }
            Op::Truncate { inode, len } => {
                let node = self
                    .inodes
                    .get_mut(inode)
                    .expect("truncates go to live inodes");
                node.data.truncate(*len);
                node.synced_len = node.data.len();
            }
            Op::Rename { from, to } => self.dir_op(DirOp::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            Op::Remove { path } => self.dir_op(DirOp::Unlink { path: path.clone() }),
            Op::SyncDir { dir } => {
                let (now, later): (Vec<DirOp>, Vec<DirOp>) = std::mem::take(&mut self.pending)
                    .into_iter()
                    .partition(|op| op.dir() == dir);
                for op in &now {
                    op.apply(&mut self.durable_names);
                }
                self.pending = later;
            }
        }
    }

    fn dir_op(&mut self, op: DirOp) {
        op.apply(&mut self.names);
        self.pending.push(op);
    }

    fn image(&self, names: &BTreeMap<PathBuf, u64>, len: impl Fn(u64, &Inode) -> Vec<u8>) -> Image {
        Image {
            dirs: self.dirs.clone(),
            files: names
                .iter()
                .map(|(path, &inode)| (path.clone(), len(inode, &self.inodes[&inode])))
                .collect(),
        }
    }

    fn synced(_: u64, node: &Inode) -> Vec<u8> {
        node.data[..node.synced_len].to_vec()
    }

    fn all(_: u64, node: &Inode) -> Vec<u8> {
        node.data.clone()
    }
}

/// Steps through a [`Recording`]; at each operation boundary produces the
/// crash states.
pub struct Replayer<'a> {
    recording: &'a Recording,
    disk: Disk,
    done: usize,
    /// Start offsets of the writes to each inode since its last sync: the
    /// boundaries between appends.
    write_starts: BTreeMap<u64, Vec<usize>>,
}

impl<'a> Replayer<'a> {
    /// At boundary 0: the recording's base image.
    pub fn new(recording: &'a Recording) -> Self {
        Replayer {
            recording,
            disk: Disk::from_image(&recording.base),
            done: 0,
            write_starts: BTreeMap::new(),
        }
    }

    /// Operations applied so far (the boundary this replayer stands at).
    pub fn position(&self) -> usize {
        self.done
    }

    /// The operation just applied, if any.
    pub fn last_op(&self) -> Option<&Op> {
        self.done.checked_sub(1).map(|i| &self.recording.ops[i])
    }

    /// Applies the next operation; false at the end of the recording.
    pub fn step(&mut self) -> bool {
        let Some(op) = self.recording.ops.get(self.done) else {
            return false;
        };
        match op {
            Op::Write { inode, .. } => {
                let len = self.disk.inodes.get(inode).map_or(0, |n| n.data.len());
                self.write_starts.entry(*inode).or_default().push(len);
            }
            Op::Sync { inode } | Op::Truncate { inode, .. } => {
                self.write_starts.remove(inode);
            }
            _ => {}
        }
        self.disk.apply(op);
        self.done += 1;
        true
    }

    /// The crash states at this boundary (duplicates removed):
    /// - `synced`: durable names, synced bytes only;
    /// - `all`: live names, every byte (what a process crash leaves);
    /// - for each file with unsynced bytes, on live names with every other
    ///   file at its synced length: the tail cut at each write boundary
    ///   (writes kept or dropped), torn at each 4 KiB boundary and at one
    ///   random byte inside each write, and the last write's bytes zeroed
    ///   (size extended, data never landed);
    /// - subsets of the pending directory operations over the durable
    ///   names with synced bytes: all of them when at most 4 are pending,
    ///   else each alone, each left out, and each prefix.
    pub fn crash_states(&self, rng: &mut impl Rng) -> Vec<CrashState> {
        let disk = &self.disk;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |label: String, process_crash: bool, image: Image| {
            if seen.insert(image.clone()) {
                out.push(CrashState {
                    label,
                    process_crash,
                    image,
                });
            } else if process_crash {
                // Keep the stricter check for a duplicate image.
                if let Some(s) = out.iter_mut().find(|s| s.image == image) {
                    s.process_crash = true;
                }
            }
        };
        push("all".into(), true, disk.image(&disk.names, Disk::all));
        push(
            "synced".into(),
            false,
            disk.image(&disk.durable_names, Disk::synced),
        );

        // Unsynced tails, one file at a time.
        let live_synced = disk.image(&disk.names, Disk::synced);
        for (path, &inode) in &disk.names {
            let node = &disk.inodes[&inode];
            if node.data.len() == node.synced_len {
                continue;
            }
            let starts = self.write_starts.get(&inode).cloned().unwrap_or_default();
            let mut cuts = BTreeSet::new();
            for (i, &start) in starts.iter().enumerate() {
                let end = starts.get(i + 1).copied().unwrap_or(node.data.len());
                cuts.insert(start);
                cuts.insert(end);
                let mut page = (start / 4096 + 1) * 4096;
                while page < end {
                    cuts.insert(page);
                    page += 4096;
                }
                if end > start + 1 {
                    cuts.insert(rng.gen_range(start + 1..end));
                }
            }
            for cut in cuts {
                if cut < node.synced_len || cut > node.data.len() {
                    continue;
                }
                let mut image = live_synced.clone();
                image.files.insert(path.clone(), node.data[..cut].to_vec());
                push(format!("{} cut at {cut}", path.display()), false, image);
            }
            if let Some(&last) = starts.last() {
                let mut data = node.data.clone();
                data[last..].fill(0);
                let mut image = live_synced.clone();
                image.files.insert(path.clone(), data);
                push(
                    format!("{} zeroed from {last}", path.display()),
                    false,
                    image,
                );
            }
        }

        // Subsets of pending directory operations.
        let n = disk.pending.len();
        let mut subsets: Vec<Vec<usize>> = Vec::new();
        if n <= 4 {
            for mask in 1..(1u32 << n) {
                subsets.push((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        } else {
            for i in 0..n {
                subsets.push(vec![i]);
                subsets.push((0..n).filter(|&j| j != i).collect());
                subsets.push((0..=i).collect());
            }
        }
        for subset in subsets {
            let mut names = disk.durable_names.clone();
            for &i in &subset {
                disk.pending[i].apply(&mut names);
            }
            push(
                format!("pending dir ops {subset:?} of {n}"),
                false,
                disk.image(&names, Disk::synced),
            );
        }
        out
    }
}

/// Live state: the disk plus process-side state (locks, fault counters,
/// the recording).
#[derive(Default)]
struct State {
    disk: Disk,
    locks: HashSet<PathBuf>,
    recording: Option<Recording>,
    faults: Vec<(Fault, u64)>,
    counts: BTreeMap<OpKind, u64>,
    failures: u64,
    failed: Vec<(OpKind, PathBuf)>,
}

impl State {
    fn record(&mut self, op: Op) {
        self.disk.apply(&op);
        if let Some(r) = self.recording.as_mut() {
            r.ops.push(op);
        }
    }

    /// Counts an operation and fails it when an armed fault says so.
    fn check(&mut self, kind: OpKind, op: &'static str, path: &Path) -> Result<()> {
        *self.counts.entry(kind).or_default() += 1;
        let mut fail = None;
        for (fault, seen) in &mut self.faults {
            if fault.kind.is_none() || fault.kind == Some(kind) {
                *seen += 1;
                if *seen == fault.nth || (fault.sticky && *seen > fault.nth) {
                    fail.get_or_insert(fault.error);
                }
            }
        }
        match fail {
            Some(errno) => {
                self.failures += 1;
                if self.failed.len() < 64 {
                    self.failed.push((kind, path.to_path_buf()));
                }
                Err(Error::io(op, path, errno.to_io()))
            }
            None => Ok(()),
        }
    }

    fn inode(&self, path: &Path, op: &'static str) -> Result<u64> {
        self.disk.names.get(path).copied().ok_or_else(|| {
            Error::io(
                op,
                path,
                io::Error::new(io::ErrorKind::NotFound, "no such file"),
            )
        })
    }

    fn check_parent(&self, path: &Path, op: &'static str) -> Result<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        if self.disk.dirs.contains(parent) {
            Ok(())
        } else {
            Err(Error::io(
                op,
                path,
                io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            ))
        }
    }
}

/// The simulated file system; see the module docs. Clones share state.
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SimFs")
            .field("files", &s.disk.names.len())
            .field("pending_dir_ops", &s.disk.pending.len())
            .finish()
    }
}

impl SimFs {
    /// An empty disk.
    pub fn new() -> Self {
        SimFs::default()
    }

    /// A disk holding `image`, all of it durable (as after a reboot).
    pub fn from_image(image: &Image) -> Self {
        let fs = SimFs::default();
        fs.state.lock().disk = Disk::from_image(image);
        fs
    }

    /// The crash state "only synced data": durable names, synced bytes.
    pub fn synced_image(&self) -> Image {
        let s = self.state.lock();
        s.disk.image(&s.disk.durable_names, Disk::synced)
    }

    /// What a process crash leaves: live names, every byte handed to the OS.
    pub fn full_image(&self) -> Image {
        let s = self.state.lock();
        s.disk.image(&s.disk.names, Disk::all)
    }

    /// Starts recording state changes; the base is the current full image.
    pub fn start_recording(&self) {
        let mut s = self.state.lock();
        let base = s.disk.image(&s.disk.names, Disk::all);
        s.recording = Some(Recording {
            base,
            ops: Vec::new(),
        });
    }

    /// Operations recorded so far (a boundary index for the run).
    pub fn recorded_ops(&self) -> usize {
        self.state
            .lock()
            .recording
            .as_ref()
            .map_or(0, |r| r.ops.len())
    }

    /// Stops recording and returns the run.
    pub fn take_recording(&self) -> Recording {
        self.state.lock().recording.take().unwrap_or_default()
    }

    /// Arms a fault; counting starts now.
    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push((fault, 0));
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Operations failed by injected faults so far.
    pub fn failures(&self) -> u64 {
        self.state.lock().failures
    }

    /// The first (up to 64) operations failed by faults: kind and path.
    pub fn failed_ops(&self) -> Vec<(OpKind, PathBuf)> {
        self.state.lock().failed.clone()
    }

    /// Operations of `kind` so far (including failed ones).
    pub fn count(&self, kind: OpKind) -> u64 {
        self.state.lock().counts.get(&kind).copied().unwrap_or(0)
    }

    /// Operations of every kind so far.
    pub fn count_all(&self) -> u64 {
        self.state.lock().counts.values().sum()
    }

    /// Live contents of `path` (what a reader sees now), if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.lock();
        let inode = s.disk.names.get(path)?;
        Some(s.disk.inodes[inode].data.clone())
    }

    /// Replaces the contents of `path` (durably, unrecorded): for damaging
    /// files in corruption tests.
    pub fn overwrite_file(&self, path: &Path, data: Vec<u8>) {
        let mut s = self.state.lock();
        let inode = *s.disk.names.get(path).expect("file to overwrite exists");
        let node = s.disk.inodes.get_mut(&inode).expect("named inodes exist");
        node.synced_len = data.len();
        node.data = data;
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    inode: u64,
    buf: Vec<u8>,
    len: u64,
}

impl SimFile {
    fn write_out(&mut self, s: &mut State) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        s.check(OpKind::Write, "writing", &self.path)?;
        s.record(Op::Write {
            inode: self.inode,
            data: std::mem::take(&mut self.buf),
        });
        Ok(())
    }
}

impl WritableFile for SimFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.state
            .lock()
            .check(OpKind::Append, "appending to", &self.path)?;
        self.buf.extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let state = self.state.clone();
        let mut s = state.lock();
        self.write_out(&mut s)
    }

    fn sync(&mut self) -> Result<()> {
        let state = self.state.clone();
        let mut s = state.lock();
        self.write_out(&mut s)?;
        s.check(OpKind::Sync, "syncing", &self.path)?;
        s.record(Op::Sync { inode: self.inode });
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        // Like StdFs: a dropped file still hands its bytes to the OS.
        if !self.buf.is_empty() {
            let state = self.state.clone();
            let mut s = state.lock();
            if s.disk.inodes.contains_key(&self.inode) {
                let data = std::mem::take(&mut self.buf);
                s.record(Op::Write {
                    inode: self.inode,
                    data,
                });
            }
        }
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl DirLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.path);
    }
}

impl FileSystem for SimFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let mut s = self.state.lock();
        s.check(OpKind::Create, "creating", path)?;
        s.check_parent(path, "creating")?;
        let inode = s.disk.next_inode;
        s.record(Op::Create {
            path: path.to_path_buf(),
            inode,
        });
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            path: path.to_path_buf(),
            inode,
            buf: Vec::new(),
            len: 0,
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let mut s = self.state.lock();
        s.check(OpKind::OpenAppend, "opening for append", path)?;
        let inode = s.inode(path, "opening for append")?;
        let len = s.disk.inodes[&inode].data.len() as u64;
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            path: path.to_path_buf(),
            inode,
            buf: Vec::new(),
            len,
        }))
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let mut s = self.state.lock();
        s.check(OpKind::Read, "mapping", path)?;
        let inode = s.inode(path, "opening")?;
        Ok(Bytes::from(s.disk.inodes[&inode].data.clone()))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut s = self.state.lock();
        s.check(OpKind::Read, "reading", path)?;
        let inode = s.inode(path, "opening")?;
        let data = &s.disk.inodes[&inode].data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start.checked_add(len) {
            Some(end) if end <= data.len() => Ok(data[start..end].to_vec()),
            _ => Err(Error::io(
                "reading",
                path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the file",
                ),
            )),
        }
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        let mut s = self.state.lock();
        s.check(OpKind::Stat, "reading metadata of", path)?;
        let inode = s.inode(path, "reading metadata of")?;
        Ok(s.disk.inodes[&inode].data.len() as u64)
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut s = self.state.lock();
        s.check(OpKind::Truncate, "truncating", path)?;
        let inode = s.inode(path, "opening for truncate")?;
        let cur = s.disk.inodes[&inode].data.len();
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > cur {
            // Extending with zeros: write them, then the sync below.
            s.record(Op::Write {
                inode,
                data: vec![0; len - cur],
            });
        }
        s.record(Op::Truncate { inode, len });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check(OpKind::Rename, "renaming", from)?;
        s.inode(from, "renaming")?;
        s.check_parent(to, "renaming")?;
        s.record(Op::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check(OpKind::Remove, "removing", path)?;
        s.inode(path, "removing")?;
        s.record(Op::Remove {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check(OpKind::SyncDir, "syncing directory", dir)?;
        if !s.disk.dirs.contains(dir) {
            return Err(Error::io(
                "opening directory",
                dir,
                io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            ));
        }
        s.record(Op::SyncDir {
            dir: dir.to_path_buf(),
        });
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut s = self.state.lock();
        s.check(OpKind::List, "listing", dir)?;
        if !s.disk.dirs.contains(dir) {
            return Err(Error::io(
                "listing",
                dir,
                io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            ));
        }
        let mut names: Vec<String> = s
            .disk
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        names.extend(
            s.disk
                .dirs
                .iter()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string)),
        );
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        let mut s = self.state.lock();
        s.check(OpKind::Stat, "checking existence of", path)?;
        Ok(s.disk.names.contains_key(path) || s.disk.dirs.contains(path))
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let mut s = self.state.lock();
        s.check(OpKind::CreateDir, "creating directory", dir)?;
        if s.disk.names.contains_key(dir) {
            return Err(Error::InvalidArgument(format!(
                "{} exists and is not a directory",
                dir.display()
            )));
        }
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() {
                s.disk.dirs.insert(d.to_path_buf());
            }
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>> {
        let mut s = self.state.lock();
        s.check(OpKind::Lock, "opening lock file", path)?;
        s.check_parent(path, "opening lock file")?;
        if !s.locks.insert(path.to_path_buf()) {
            return Err(Error::Locked {
                path: path.to_path_buf(),
            });
        }
        if !s.disk.names.contains_key(path) {
            let inode = s.disk.next_inode;
            s.record(Op::Create {
                path: path.to_path_buf(),
                inode,
            });
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn dir() -> PathBuf {
        PathBuf::from("/db")
    }

    #[test]
    fn unsynced_bytes_and_names_are_lost_in_synced_image() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let p = dir().join("a");
        let mut f = fs.create(&p).unwrap();
        f.append(b"hello").unwrap();
        f.sync().unwrap();
        f.append(b" world").unwrap();
        f.flush().unwrap();
        assert_eq!(fs.map(&p).unwrap(), Bytes::from_static(b"hello world"));
        // The name is not durable yet.
        assert!(fs.synced_image().files.is_empty());
        fs.sync_dir(&dir()).unwrap();
        assert_eq!(fs.synced_image().files[&p], b"hello");
        assert_eq!(fs.full_image().files[&p], b"hello world");
    }

    #[test]
    fn unflushed_appends_are_not_in_the_full_image() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let p = dir().join("a");
        let mut f = fs.create(&p).unwrap();
        f.append(b"buffered").unwrap();
        assert_eq!(f.len(), 8);
        assert_eq!(fs.full_image().files[&p], b"");
        drop(f);
        assert_eq!(fs.full_image().files[&p], b"buffered");
    }

    #[test]
    fn rename_and_remove_are_pending_until_sync_dir() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let (a, b) = (dir().join("a"), dir().join("b"));
        let mut f = fs.create(&a).unwrap();
        f.append(b"x").unwrap();
        f.sync().unwrap();
        fs.sync_dir(&dir()).unwrap();
        fs.rename(&a, &b).unwrap();
        assert!(fs.synced_image().files.contains_key(&a));
        fs.sync_dir(&dir()).unwrap();
        let img = fs.synced_image();
        assert!(!img.files.contains_key(&a));
        assert_eq!(img.files[&b], b"x");
        fs.remove(&b).unwrap();
        assert!(fs.synced_image().files.contains_key(&b));
        assert!(!fs.full_image().files.contains_key(&b));
    }

    #[test]
    fn replayer_produces_torn_and_subset_states() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        fs.start_recording();
        let p = dir().join("w");
        let mut f = fs.create(&p).unwrap();
        fs.sync_dir(&dir()).unwrap();
        f.append(&vec![1u8; 5000]).unwrap();
        f.flush().unwrap();
        f.append(&[2u8; 100]).unwrap();
        f.flush().unwrap();
        fs.create(&dir().join("x")).unwrap();
        let rec = fs.take_recording();
        assert_eq!(rec.ops.len(), 5);
        let mut r = Replayer::new(&rec);
        while r.step() {}
        let states = r.crash_states(&mut StdRng::seed_from_u64(1));
        let lens: BTreeSet<usize> = states
            .iter()
            .filter_map(|s| s.image.files.get(&p).map(Vec::len))
            .collect();
        for cut in [0, 4096, 5000, 5100] {
            assert!(lens.contains(&cut), "{lens:?}");
        }
        assert!(lens.len() >= 6, "random tears too: {lens:?}");
        assert!(states.iter().any(|s| s.label.contains("zeroed")));
        // The pending create of x: in some states, not in others.
        assert!(states
            .iter()
            .any(|s| s.image.files.contains_key(&dir().join("x"))));
        assert!(states
            .iter()
            .any(|s| !s.image.files.contains_key(&dir().join("x"))));
        assert!(states.iter().filter(|s| s.process_crash).count() == 1);
    }

    #[test]
    fn faults_fail_the_nth_operation_once_or_for_good() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        fs.inject(Fault {
            kind: Some(OpKind::Sync),
            nth: 2,
            error: Errno::Enospc,
            sticky: false,
        });
        let mut f = fs.create(&dir().join("a")).unwrap();
        f.sync().unwrap();
        let e = f.sync().unwrap_err();
        assert!(jkv_format::fs::is_io_kind(&e, io::ErrorKind::StorageFull));
        assert!(e.to_string().contains("syncing"), "{e}");
        f.sync().unwrap();
        fs.inject(Fault {
            kind: None,
            nth: 1,
            error: Errno::Eio,
            sticky: true,
        });
        assert!(fs.list(&dir()).is_err());
        assert!(fs.exists(&dir()).is_err());
        fs.clear_faults();
        assert!(fs.exists(&dir()).unwrap());
        assert_eq!(fs.failures(), 3);
    }

    #[test]
    fn second_lock_is_locked_until_released() {
        let fs = SimFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let l = fs.lock(&dir().join("LOCK")).unwrap();
        assert!(matches!(
            fs.lock(&dir().join("LOCK")),
            Err(Error::Locked { .. })
        ));
        drop(l);
        fs.lock(&dir().join("LOCK")).unwrap();
    }
}
