//! The storage trait: every byte jkv reads or writes goes through
//! [`FileSystem`], so tests can substitute a simulated disk that drops
//! unsynced bytes, tears writes or fails the k-th call, without a test hook
//! in the engine.
//!
//! [`StdFs`] is the real implementation on `std::fs` and `memmap2`.
//!
//! Contract every implementation keeps:
//! - `append` + `flush` put bytes where a process crash cannot lose them
//!   (the OS page cache); only `sync` makes them survive a machine crash.
//! - A create, rename or remove is durable only after `sync_dir` on the
//!   parent directory.
//! - Every error names the operation and the path.
//!
//! All methods take `&self`; implementations are `Send + Sync`.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};

/// A file opened for appending.
pub trait WritableFile: Send + Sync {
    /// Appends `data` (may be buffered in this process until `flush`).
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Hands buffered bytes to the operating system: they then survive a
    /// crash of this process, not of the machine.
    fn flush(&mut self) -> Result<()>;
    /// Flushes, then makes every appended byte durable (fdatasync).
    fn sync(&mut self) -> Result<()>;
    /// Bytes appended so far, including the file's length when opened.
    fn len(&self) -> u64;
    /// True when nothing was ever written to the file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The file's path (for error messages).
    fn path(&self) -> &Path;
    /// Extends the file with zero bytes to at least `len` bytes, so that
    /// later appends below `len` do not change its size: a `sync` then has
    /// no size to make durable, which makes fdatasync much cheaper on most
    /// file systems. Appends still go to the end of what was appended (not
    /// after the zeros), and `len()` keeps counting appended bytes. Readers
    /// of such a file see zeros after the data; formats that use it treat a
    /// zero tail as the end. Only for files made with `create` (a file
    /// opened with `open_append` may ignore it). [`StdFs`] allocates the
    /// blocks with `fallocate` and maps the region, so later appends into
    /// it are memory stores instead of `write` calls, with the same
    /// guarantees. The default does nothing.
    fn preallocate(&mut self, len: u64) -> Result<()> {
        let _ = len;
        Ok(())
    }
    /// Appends `parts` in order, as `append` of each would, then hands
    /// every appended byte to the operating system, as `flush` does. For
    /// large values written straight from the caller's buffers: [`StdFs`]
    /// writes the buffered bytes and the parts with `writev`, without
    /// copying the parts into its buffer. The default appends each part,
    /// then flushes.
    fn append_parts_and_flush(&mut self, parts: &[&[u8]]) -> Result<()> {
        for part in parts {
            self.append(part)?;
        }
        self.flush()
    }
}

/// Ownership of a database directory; released when dropped.
pub trait DirLock: Send + Sync {}

/// The file operations jkv needs, and no more.
pub trait FileSystem: Send + Sync + std::fmt::Debug + 'static {
    /// Creates `path` empty (truncating an existing file) for appending.
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>>;
    /// A read-only view of the whole file as it is now: a memory map on the
    /// real file system. Cloning and slicing the result is zero-copy.
    fn map(&self, path: &Path) -> Result<Bytes>;
    /// True when every non-empty `map` result is a shared, read-only
    /// mapping of the file, so that [`release_mapped_pages`] may be called
    /// on it. The default is false (in-memory file systems).
    fn maps_are_file_backed(&self) -> bool {
        false
    }
    /// Reads `len` bytes at `offset`; fails with `UnexpectedEof` if the file
    /// is shorter.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Size of the file in bytes.
    fn file_size(&self, path: &Path) -> Result<u64>;
    /// Cuts the file to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> Result<()>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> Result<()>;
    /// Makes creates, renames and removes in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// Names of the entries in `dir` (not paths), in no particular order.
    fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// Creates `dir` and its parents if missing; fails if `dir` is a file.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Takes the exclusive lock file `path` (creating it), or fails with
    /// [`Error::Locked`] when another owner holds it.
    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>>;
}

/// The real file system: `std::fs` for writes, `memmap2` for table reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// Write buffer of [`StdFs`] files: large enough to batch table blocks into
/// few syscalls, small enough not to matter for memory.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

struct StdWritableFile {
    file: File,
    path: PathBuf,
    /// Appended bytes not yet handed to the OS (always empty while `tail`
    /// is mapped).
    buf: Vec<u8>,
    /// Bytes appended so far; the file's cursor is at `len - buf.len()`
    /// except while `tail` is mapped (then appends bypass the cursor).
    len: u64,
    /// Opened with `O_APPEND`: every `write` lands at the file's end, so
    /// `preallocate` must not put zeros there.
    append_mode: bool,
    /// The pre-allocated region after `len`, mapped writable; see
    /// [`WritableFile::preallocate`].
    tail: Option<MappedTail>,
}

/// A writable shared mapping of `[start, start + map.len())` of a file
/// whose blocks were allocated with `fallocate`, so a store into it can
/// never fault for lack of space. Stores land in the page cache exactly
/// like `write(2)` does: they survive a crash of this process, and
/// `fdatasync` on the file writes them back (Linux syncs pages dirtied
/// through shared mappings with the file).
struct MappedTail {
    map: memmap2::MmapMut,
    start: u64,
}

impl StdWritableFile {
    fn write_out(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .map_err(|e| Error::io("writing", &self.path, e))?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl WritableFile for StdWritableFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        if let Some(tail) = self.tail.as_mut() {
            // `len >= start` by construction (the map starts at or before
            // the appended length, page-aligned).
            let from = (self.len - tail.start) as usize;
            if let Some(dest) = tail.map.get_mut(from..from + data.len()) {
                dest.copy_from_slice(data);
                self.len += data.len() as u64;
                return Ok(());
            }
            // Past the pre-allocated region: back to `write(2)` at `len`.
            self.tail = None;
            self.file
                .seek(SeekFrom::Start(self.len))
                .map_err(|e| Error::io("seeking in", &self.path, e))?;
        }
        if data.len() >= DIRECT_WRITE_BYTES {
            // Large: the buffered bytes and `data` in one `writev`, without
            // copying `data` into the buffer first.
            write_all_parts(&mut self.file, &[&self.buf, data])
                .map_err(|e| Error::io("writing", &self.path, e))?;
            self.buf.clear();
        } else {
            if self.buf.len() + data.len() > WRITE_BUFFER_BYTES {
                self.write_out()?;
            }
            self.buf.extend_from_slice(data);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()
    }

    fn append_parts_and_flush(&mut self, parts: &[&[u8]]) -> Result<()> {
        if self.tail.is_some() {
            // Appends into the mapped region are memory stores already.
            for part in parts {
                self.append(part)?;
            }
            return self.write_out();
        }
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(&self.buf[..]);
        all.extend_from_slice(parts);
        write_all_parts(&mut self.file, &all).map_err(|e| Error::io("writing", &self.path, e))?;
        self.buf.clear();
        self.len += parts.iter().map(|p| p.len() as u64).sum::<u64>();
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.write_out()?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing", &self.path, e))
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn preallocate(&mut self, len: u64) -> Result<()> {
        self.write_out()?;
        if self.append_mode {
            // Writes would land after the zeros: pre-allocation is for files
            // this process created.
            return Ok(());
        }
        let current = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.path, e))?
            .len();
        if len <= current {
            return Ok(());
        }
        if !allocate_blocks(&self.file, current, len - current) {
            // No fallocate here (another OS or file system): size the file
            // sparsely and keep appending with `write(2)`.
            self.tail = None;
            return self
                .file
                .set_len(len)
                .map_err(|e| Error::io("extending", &self.path, e));
        }
        // Map from the page holding the append position to the new end; the
        // cursor stays where it is (at `len`), which `append` relies on if
        // it ever falls back to `write(2)`.
        let start = self.len - self.len % PAGE_BYTES;
        let map_len = usize::try_from(len - start)
            .map_err(|_| Error::io("mapping", &self.path, io::Error::other("region too large")))?;
        // SAFETY: the mapping covers blocks allocated above, inside the
        // file's size; only this writer stores into it, and only past the
        // bytes already appended (readers map or read the file, never this
        // region's future bytes, and treat a zero tail as the end).
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len(map_len)
                .map_mut(&self.file)
        }
        .map_err(|e| Error::io("mapping", &self.path, e))?;
        self.tail = Some(MappedTail { map, start });
        Ok(())
    }
}

/// Appends at least this long skip the write buffer: copying them into it
/// would cost more than the system call it saves.
const DIRECT_WRITE_BYTES: usize = 32 * 1024;

/// Slices handed to one `writev` at most (Linux's `IOV_MAX` is 1024).
const IOV_CHUNK: usize = 512;

/// Writes every byte of `parts`, in order, at the file's cursor, with as
/// few `writev` calls as partial writes allow.
fn write_all_parts(file: &mut File, parts: &[&[u8]]) -> io::Result<()> {
    for chunk in parts.chunks(IOV_CHUNK) {
        let mut slices: Vec<io::IoSlice<'_>> = chunk
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| io::IoSlice::new(p))
            .collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let n = match file.write_vectored(left) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            io::IoSlice::advance_slices(&mut left, n);
        }
    }
    Ok(())
}

/// Page size assumed for mapping offsets (mmap offsets must be multiples of
/// the page size; 4 KiB divides every page size Linux uses).
const PAGE_BYTES: u64 = 4096;

/// Allocates `len` bytes of disk blocks at `offset` (extending the file's
/// size), so that later stores through a mapping cannot run out of space.
/// False when the platform or file system cannot, and nothing was changed.
#[cfg(target_os = "linux")]
fn allocate_blocks(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return false;
    };
    // SAFETY: plain syscall on a file descriptor this struct owns.
    unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn allocate_blocks(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}

impl Drop for StdWritableFile {
    fn drop(&mut self) {
        // Best effort: a file dropped without flush (error paths) still hands
        // its bytes to the OS; durability was never promised without sync.
        let _ = self.write_out();
    }
}

struct StdDirLock {
    _file: File,
}

impl DirLock for StdDirLock {}

/// Drops this process's page mappings of the whole pages inside `data`
/// (`madvise(MADV_DONTNEED)`): the bytes stay in the OS page cache and the
/// next access maps them back in, but until then they no longer count as
/// this process's resident memory. For scans that read a mapped file once
/// (compaction inputs), so that a large compaction does not show as
/// hundreds of MiB of resident memory. Does nothing elsewhere than Linux.
///
/// # Safety
///
/// `data` must lie inside a [`Bytes`] returned by `map` of a file system
/// whose [`FileSystem::maps_are_file_backed`] is true. On anonymous memory
/// (a heap buffer) the call would replace the pages with zeros.
pub unsafe fn release_mapped_pages(data: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        let page = PAGE_BYTES as usize;
        let start = data.as_ptr() as usize;
        let first = start.div_ceil(page) * page;
        let end = (start + data.len()) / page * page;
        if end > first {
            // SAFETY: by the caller's contract the range is part of a
            // shared file mapping; dropping its page mappings loses
            // nothing. Failure only means the pages stay resident.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = data;
}

impl FileSystem for StdFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            // Readable too: `preallocate` maps the tail for writing, which
            // needs a read-write descriptor.
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("creating", path, e))?;
        Ok(Box::new(StdWritableFile {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            len: 0,
            append_mode: false,
            tail: None,
        }))
    }

    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("opening for append", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        Ok(Box::new(StdWritableFile {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(WRITE_BUFFER_BYTES),
            len,
            append_mode: true,
            tail: None,
        }))
    }

    fn map(&self, path: &Path) -> Result<Bytes> {
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        if len == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: jkv never modifies a file after it is complete (tables and
        // sealed logs are immutable, and are removed only when no reader
        // holds them); the map is read-only.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io("mapping", path, e))?;
        Ok(Bytes::from_owner(map))
    }

    fn maps_are_file_backed(&self) -> bool {
        // `memmap2::Mmap::map` is a shared, read-only file mapping.
        true
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io("reading", path, e))?;
        Ok(buf)
    }

    fn file_size(&self, path: &Path) -> Result<u64> {
        std::fs::metadata(path)
            .map(|m| m.len())
            .map_err(|e| Error::io("reading metadata of", path, e))
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io("opening for truncate", path, e))?;
        file.set_len(len)
            .map_err(|e| Error::io("truncating", path, e))?;
        file.sync_all().map_err(|e| Error::io("syncing", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io("renaming", from, e))
    }

    fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("removing", path, e))
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = File::open(dir).map_err(|e| Error::io("opening directory", dir, e))?;
        d.sync_all()
            .map_err(|e| Error::io("syncing directory", dir, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists()
            .map_err(|e| Error::io("checking existence of", path, e))
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "{} exists and is not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("opening lock file", path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdDirLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", path, e)),
        }
    }
}

/// Maps an `io::ErrorKind` check over a jkv error: true when `e` is an I/O
/// error of `kind`.
pub fn is_io_kind(e: &Error, kind: io::ErrorKind) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_flush_sync_map() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let fs = StdFs;
        let mut f = fs.create(&p).unwrap();
        f.append(b"hello ").unwrap();
        f.append(&vec![b'x'; WRITE_BUFFER_BYTES + 10]).unwrap();
        f.append(b"end").unwrap();
        f.sync().unwrap();
        assert_eq!(f.len(), 6 + WRITE_BUFFER_BYTES as u64 + 10 + 3);
        let m = fs.map(&p).unwrap();
        assert_eq!(&m[..6], b"hello ");
        assert_eq!(&m[m.len() - 3..], b"end");
        assert_eq!(fs.read_at(&p, 0, 5).unwrap(), b"hello");
        assert!(fs.read_at(&p, m.len() as u64 - 1, 5).is_err());
        drop(f);
        let mut f = fs.open_append(&p).unwrap();
        assert_eq!(f.len(), m.len() as u64);
        // Pre-allocation is for files opened by `create`; on an append-mode
        // file it would move the end, so it is exercised below instead.
        f.append(b"!").unwrap();
        f.flush().unwrap();
        assert_eq!(fs.file_size(&p).unwrap(), m.len() as u64 + 1);
        fs.truncate(&p, 3).unwrap();
        assert_eq!(fs.file_size(&p).unwrap(), 3);
    }

    #[test]
    fn preallocated_file_keeps_appending_at_the_data_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pre");
        let mut f = StdFs.create(&p).unwrap();
        f.append(b"abc").unwrap();
        f.preallocate(4096).unwrap();
        f.append(b"def").unwrap();
        f.sync().unwrap();
        assert_eq!(f.len(), 6);
        let m = StdFs.map(&p).unwrap();
        assert_eq!(m.len(), 4096);
        assert_eq!(&m[..6], b"abcdef");
        assert!(m[6..].iter().all(|&b| b == 0));
        // Appending past the allocation grows the file as usual.
        f.append(&vec![7u8; 5000]).unwrap();
        f.sync().unwrap();
        assert_eq!(StdFs.file_size(&p).unwrap(), 5006);
    }

    #[test]
    fn appends_into_successive_preallocations_read_back_before_sync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("steps");
        let mut f = StdFs.create(&p).unwrap();
        let mut expected = Vec::new();
        let mut allocated = 0u64;
        for i in 0..3000u32 {
            let record = vec![(i % 251) as u8 + 1; 1 + (i as usize * 7) % 90];
            let end = f.len() + record.len() as u64;
            if end > allocated {
                // Odd steps, so maps start mid-page.
                allocated = end + 10_000;
                f.preallocate(allocated).unwrap();
            }
            f.append(&record).unwrap();
            f.flush().unwrap();
            expected.extend_from_slice(&record);
            if i % 500 == 0 {
                // Visible to readers through the page cache without a sync.
                let got = StdFs.read_at(&p, 0, expected.len()).unwrap();
                assert!(got == expected, "mismatch after record {i}");
            }
        }
        drop(f);
        let m = StdFs.map(&p).unwrap();
        assert_eq!(m.len() as u64, allocated);
        assert_eq!(&m[..expected.len()], &expected[..]);
        assert!(m[expected.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn small_and_large_appends_mix_in_order_mapped_or_not() {
        // Large appends skip the buffer (writev) unless the region is
        // mapped, and parts go out with writev; bytes land in order.
        let dir = tempfile::tempdir().unwrap();
        for mapped in [false, true] {
            let p = dir.path().join(format!("mix-{mapped}"));
            let mut f = StdFs.create(&p).unwrap();
            let mut expected = Vec::new();
            let mut allocated = 0u64;
            for i in 0..400u32 {
                let len = match i % 5 {
                    0 => 4096,
                    1 => DIRECT_WRITE_BYTES + 123,
                    2 => 5000 + i as usize,
                    _ => 1 + (i as usize * 13) % 300,
                };
                let record: Vec<u8> = (0..len)
                    .map(|j| ((i as usize + j) % 251) as u8 + 1)
                    .collect();
                let end = f.len() + record.len() as u64;
                if mapped && end > allocated {
                    allocated = end + 50_000;
                    f.preallocate(allocated).unwrap();
                }
                if i % 7 == 6 {
                    // Split in three parts, one of them empty.
                    let (a, b) = record.split_at(record.len() / 2);
                    f.append_parts_and_flush(&[a, &[], b]).unwrap();
                } else {
                    f.append(&record).unwrap();
                }
                expected.extend_from_slice(&record);
                if i % 3 == 0 {
                    f.flush().unwrap();
                }
                assert_eq!(f.len(), expected.len() as u64);
            }
            f.sync().unwrap();
            let got = StdFs.read_at(&p, 0, expected.len()).unwrap();
            assert!(got == expected, "mapped {mapped}: bytes differ");
            let size = StdFs.file_size(&p).unwrap();
            assert_eq!(
                size,
                if mapped {
                    allocated
                } else {
                    expected.len() as u64
                }
            );
        }
    }

    #[test]
    fn many_parts_go_out_in_chunks_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("parts");
        let mut f = StdFs.create(&p).unwrap();
        f.append(b"head").unwrap();
        let owned: Vec<Vec<u8>> = (0..3 * IOV_CHUNK)
            .map(|i| vec![(i % 250) as u8; 1 + i % 7])
            .collect();
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        f.append_parts_and_flush(&parts).unwrap();
        let mut expected = b"head".to_vec();
        expected.extend(owned.iter().flatten());
        assert_eq!(f.len(), expected.len() as u64);
        // Flushed: readable before sync.
        assert_eq!(std::fs::read(&p).unwrap(), expected);
    }

    #[test]
    fn released_mapped_pages_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 253) as u8).collect();
        let mut f = StdFs.create(&p).unwrap();
        f.append(&data).unwrap();
        f.sync().unwrap();
        assert!(StdFs.maps_are_file_backed());
        let m = StdFs.map(&p).unwrap();
        assert_eq!(&m[..], &data[..]);
        // An unaligned range: only the whole pages inside are released.
        // SAFETY: `m` is a StdFs map, which is file-backed.
        unsafe { release_mapped_pages(&m[10..m.len() - 10]) };
        unsafe { release_mapped_pages(&m[..]) };
        assert_eq!(&m[..], &data[..]);
    }

    #[test]
    fn empty_file_maps_to_empty_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        StdFs.create(&p).unwrap();
        assert!(StdFs.map(&p).unwrap().is_empty());
    }

    #[test]
    fn second_lock_fails_with_locked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("LOCK");
        let held = StdFs.lock(&p).unwrap();
        assert!(matches!(StdFs.lock(&p), Err(Error::Locked { .. })));
        drop(held);
        assert!(StdFs.lock(&p).is_ok());
    }

    #[test]
    fn create_dir_over_file_is_invalid_argument() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("file");
        std::fs::write(&p, b"x").unwrap();
        assert!(matches!(
            StdFs.create_dir_all(&p),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn errors_name_path() {
        let err = StdFs.map(Path::new("/nonexistent/jkv/file")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/jkv/file"));
        assert!(is_io_kind(&err, io::ErrorKind::NotFound));
    }
}
