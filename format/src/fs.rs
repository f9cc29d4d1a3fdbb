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
use std::io::{self, Write};
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
    /// zero tail as the end. The default does nothing.
    fn preallocate(&mut self, len: u64) -> Result<()> {
        let _ = len;
        Ok(())
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
    buf: Vec<u8>,
    len: u64,
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
        if self.buf.len() + data.len() > WRITE_BUFFER_BYTES {
            self.write_out()?;
        }
        if data.len() >= WRITE_BUFFER_BYTES {
            self.file
                .write_all(data)
                .map_err(|e| Error::io("writing", &self.path, e))?;
        } else {
            self.buf.extend_from_slice(data);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()
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
        // The write position is the appended length: the file is not open
        // in append mode, so `set_len` leaves the position where it is.
        self.write_out()?;
        let current = self
            .file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &self.path, e))?
            .len();
        if len > current {
            self.file
                .set_len(len)
                .map_err(|e| Error::io("extending", &self.path, e))?;
        }
        Ok(())
    }
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

impl FileSystem for StdFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
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
