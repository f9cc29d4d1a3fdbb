//! Appending to one value-log file.
//!
//! [`VlogWriter`] creates `NNNNNN.vlog` with its header and appends entries
//! back to back, returning a [`ValuePointer`] to each. It owns the write
//! buffer and the file handle; rolling to a new file at `vlog_file_size`,
//! fsyncing the directory after [`VlogWriter::create`], and ordering the
//! vlog's sync before the WAL record that points into it are the engine's
//! job.
//!
//! Threads: one owner (the engine's write leader), `&mut self` throughout.
//! Readers see appended bytes once [`VlogWriter::flush`] returns.
//!
//! A failed append, flush or sync poisons the writer: bytes may have
//! partly reached the file, so later offsets could not be trusted. Every
//! later call returns the first error again.

use std::path::{Path, PathBuf};

use jkv_format::names::vlog_path;
use jkv_format::{
    Compression, Error, FileNumber, FileSystem, Result, SeqNo, ValuePointer, WritableFile,
};

use crate::codec::compress_value;
use crate::entry::{encode_header, entry_len, KEY_LEN_MAX, VALUE_LEN_MAX};
use crate::header;

/// The limits [`VlogWriter::append`] checks, as `InvalidArgument`.
fn check_entry(key: &[u8], value: &[u8], seq: SeqNo) -> Result<()> {
    if key.len() > KEY_LEN_MAX {
        return Err(Error::InvalidArgument(format!(
            "vlog key of {} bytes exceeds the limit of {KEY_LEN_MAX}",
            key.len()
        )));
    }
    if value.len() > VALUE_LEN_MAX {
        return Err(Error::InvalidArgument(format!(
            "vlog value of {} bytes exceeds the limit of {VALUE_LEN_MAX}",
            value.len()
        )));
    }
    if seq > SeqNo::MAX {
        return Err(Error::InvalidArgument(format!(
            "sequence number {seq} exceeds the largest possible"
        )));
    }
    Ok(())
}

/// Writes one `NNNNNN.vlog` file.
pub struct VlogWriter {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    number: FileNumber,
    /// The first failed operation; once set, every call returns it.
    poisoned: Option<Error>,
    /// How values are compressed (none by default).
    compression: Compression,
    /// A compressed value's stored bytes (reused).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for VlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VlogWriter")
            .field("path", &self.path)
            .field("len_bytes", &self.file.len())
            .field("poisoned", &self.poisoned.is_some())
            .finish()
    }
}

impl VlogWriter {
    /// Creates `dir/NNNNNN.vlog` for `number` (truncating any file of that
    /// name), writes its header and syncs the file, so that the header is
    /// durable before any entry. The caller fsyncs `dir` to make the file's
    /// name durable, before naming the file anywhere else.
    pub fn create(fs: &dyn FileSystem, dir: &Path, number: FileNumber) -> Result<VlogWriter> {
        let path = vlog_path(dir, number);
        let mut file = fs.create(&path)?;
        file.append(&header::encode(number))?;
        file.sync()?;
        Ok(VlogWriter {
            file,
            path,
            number,
            poisoned: None,
            compression: Compression::None,
            scratch: Vec::new(),
        })
    }

    /// Compresses the values of later appends with `compression` (a value
    /// that would not shrink by 1/8 is stored raw).
    pub fn with_compression(mut self, compression: Compression) -> VlogWriter {
        self.compression = compression;
        self
    }

    /// Appends an entry holding `key`, `value` and `seq`, and returns its
    /// pointer. The bytes are buffered: readers see them after
    /// [`flush`](Self::flush), a machine crash spares them after
    /// [`sync`](Self::sync).
    ///
    /// Errors: `InvalidArgument` (writer unchanged) for a key over
    /// [`KEY_LEN_MAX`] bytes, a value over [`VALUE_LEN_MAX`] bytes or a
    /// sequence number over `SeqNo::MAX`; an I/O error poisons the writer.
    pub fn append(&mut self, key: &[u8], value: &[u8], seq: SeqNo) -> Result<ValuePointer> {
        self.check_poisoned()?;
        check_entry(key, value, seq)?;
        let offset = self.file.len();
        let compressed = compress_value(value, self.compression, &mut self.scratch);
        let value: &[u8] = if compressed { &self.scratch } else { value };
        // Fits: entry_len <= ENTRY_LEN_MAX <= u32::MAX (asserted in entry.rs);
        // a compressed value is stored only when shorter than the raw one.
        let len = entry_len(key.len(), value.len()) as u32;
        let head = encode_header(seq, key, value, compressed);
        // Three appends, not one copy into a scratch buffer: a large value
        // goes from the caller's slice to the file buffer (or the kernel)
        // directly.
        let result = self
            .file
            .append(&head)
            .and_then(|()| self.file.append(key))
            .and_then(|()| self.file.append(value));
        self.poison_on_err(result)?;
        Ok(ValuePointer {
            file: self.number,
            offset,
            len,
        })
    }

    /// Appends one entry per `(key, value, seq)`, back to back in that
    /// order, and flushes: the values go from the caller's slices to the
    /// operating system (one `writev` on the real file system), never
    /// copied into a buffer of this process. Returns the pointers in order.
    ///
    /// Errors as [`append`](Self::append); an invalid entry is reported
    /// before anything is written.
    pub fn append_all_and_flush(
        &mut self,
        entries: &[(&[u8], &[u8], SeqNo)],
    ) -> Result<Vec<ValuePointer>> {
        self.check_poisoned()?;
        for &(key, value, seq) in entries {
            check_entry(key, value, seq)?;
        }
        // With compression on, the values that shrink by 1/8 are stored
        // compressed (owned here); the others still go out from the
        // caller's slices.
        let compressed: Vec<Option<Vec<u8>>> = entries
            .iter()
            .map(|&(_, value, _)| {
                let mut out = Vec::new();
                compress_value(value, self.compression, &mut out).then_some(out)
            })
            .collect();
        let stored: Vec<&[u8]> = entries
            .iter()
            .zip(&compressed)
            .map(|(&(_, value, _), c)| c.as_deref().unwrap_or(value))
            .collect();
        let heads: Vec<_> = entries
            .iter()
            .zip(&stored)
            .zip(&compressed)
            .map(|((&(key, _, seq), value), c)| encode_header(seq, key, value, c.is_some()))
            .collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(3 * entries.len());
        let mut pointers = Vec::with_capacity(entries.len());
        let mut offset = self.file.len();
        for ((head, &(key, _, _)), &value) in heads.iter().zip(entries).zip(&stored) {
            let len = entry_len(key.len(), value.len()) as u32;
            pointers.push(ValuePointer {
                file: self.number,
                offset,
                len,
            });
            offset += u64::from(len);
            parts.extend([&head[..], key, value]);
        }
        let result = self.file.append_parts_and_flush(&parts);
        self.poison_on_err(result)?;
        Ok(pointers)
    }

    /// Hands buffered entries to the operating system: readers (and a new
    /// process after a crash of this one) then see them.
    pub fn flush(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.file.flush();
        self.poison_on_err(result)
    }

    /// Flushes, then makes every appended entry durable (fdatasync). A
    /// failure is never retried: it poisons the writer.
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        let result = self.file.sync();
        self.poison_on_err(result)
    }

    /// Size of the file in bytes, header and buffered entries included: the
    /// offset the next entry will get.
    pub fn len_bytes(&self) -> u64 {
        self.file.len()
    }

    /// The file's number.
    pub fn number(&self) -> FileNumber {
        self.number
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn poison_on_err(&mut self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            self.poisoned = Some(e.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use jkv_format::fs::DirLock;
    use jkv_format::StdFs;

    use super::*;
    use crate::entry::ENTRY_HEADER_LEN;
    use crate::header::HEADER_LEN;
    use crate::test_support::Fixture;

    #[test]
    fn header_then_entries_back_to_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(5)).unwrap();
        assert_eq!(w.len_bytes(), HEADER_LEN as u64);
        assert_eq!(w.number(), FileNumber(5));
        assert!(w.path().ends_with("000005.vlog"));
        let p1 = w.append(b"k", b"", SeqNo(1)).unwrap();
        let p2 = w.append(b"key2", b"value", SeqNo(2)).unwrap();
        assert_eq!(p1.file, FileNumber(5));
        assert_eq!(p1.offset, HEADER_LEN as u64);
        assert_eq!(p1.len as usize, ENTRY_HEADER_LEN + 1);
        assert_eq!(p2.offset, p1.offset + u64::from(p1.len));
        assert_eq!(p2.len as usize, ENTRY_HEADER_LEN + 4 + 5);
        assert_eq!(w.len_bytes(), p2.offset + u64::from(p2.len));
        // The header is durable at create; entries reach the file at flush.
        let path = w.path().to_path_buf();
        assert_eq!(std::fs::read(&path).unwrap().len(), HEADER_LEN);
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len() as u64, w.len_bytes());
    }

    #[test]
    fn append_all_lays_entries_out_as_single_appends_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut one = VlogWriter::create(&StdFs, dir.path(), FileNumber(1)).unwrap();
        let mut all = VlogWriter::create(&StdFs, dir.path(), FileNumber(2)).unwrap();
        let big = vec![9u8; 70_000];
        let entries: Vec<(&[u8], &[u8], SeqNo)> = vec![
            (b"a", b"", SeqNo(1)),
            (b"bb", &big, SeqNo(2)),
            (b"c", b"small", SeqNo(3)),
        ];
        let singles: Vec<_> = entries
            .iter()
            .map(|&(k, v, s)| one.append(k, v, s).unwrap())
            .collect();
        one.flush().unwrap();
        let pointers = all.append_all_and_flush(&entries).unwrap();
        assert_eq!(pointers.len(), 3);
        for (p, s) in pointers.iter().zip(&singles) {
            assert_eq!((p.file, p.offset, p.len), (FileNumber(2), s.offset, s.len));
        }
        assert_eq!(all.len_bytes(), one.len_bytes());
        // Flushed: on disk byte for byte like the single appends, headers
        // aside (they name their file).
        let (a, b) = (
            std::fs::read(one.path()).unwrap(),
            std::fs::read(all.path()).unwrap(),
        );
        assert_eq!(a[HEADER_LEN..], b[HEADER_LEN..]);
        // An invalid entry writes nothing.
        let long_key = vec![b'k'; KEY_LEN_MAX + 1];
        let bad: Vec<(&[u8], &[u8], SeqNo)> =
            vec![(b"ok", b"v", SeqNo(4)), (&long_key, b"v", SeqNo(5))];
        assert!(matches!(
            all.append_all_and_flush(&bad),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(all.len_bytes(), one.len_bytes());
    }

    #[test]
    fn limits_are_invalid_arguments_and_leave_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(1)).unwrap();
        let long_key = vec![b'k'; KEY_LEN_MAX + 1];
        assert!(matches!(
            w.append(&long_key, b"v", SeqNo(1)),
            Err(Error::InvalidArgument(_))
        ));
        // Zeroed pages from the allocator: never touched, so cheap.
        let huge = vec![0u8; VALUE_LEN_MAX + 1];
        assert!(matches!(
            w.append(b"k", &huge, SeqNo(1)),
            Err(Error::InvalidArgument(_))
        ));
        drop(huge);
        assert!(matches!(
            w.append(b"k", b"v", SeqNo(SeqNo::MAX.0 + 1)),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(w.len_bytes(), HEADER_LEN as u64);
        let max_key = vec![b'k'; KEY_LEN_MAX];
        let p = w.append(&max_key, b"v", SeqNo::MAX).unwrap();
        assert_eq!(p.offset, HEADER_LEN as u64);
        w.sync().unwrap();
    }

    #[test]
    fn create_truncates_an_old_file() {
        let f = Fixture::small();
        let w = VlogWriter::create(&StdFs, f.dir.path(), f.number).unwrap();
        drop(w);
        assert_eq!(f.bytes().len(), HEADER_LEN);
    }

    /// A file system whose files fail every append after the first `ok`.
    #[derive(Debug)]
    struct FailingFs {
        ok: usize,
        appends: Arc<AtomicUsize>,
    }

    struct FailingFile {
        inner: Box<dyn WritableFile>,
        ok: usize,
        appends: Arc<AtomicUsize>,
    }

    impl WritableFile for FailingFile {
        fn append(&mut self, data: &[u8]) -> Result<()> {
            if self.appends.fetch_add(1, Ordering::SeqCst) >= self.ok {
                return Err(Error::io(
                    "appending to",
                    self.inner.path(),
                    std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"),
                ));
            }
            self.inner.append(data)
        }
        fn flush(&mut self) -> Result<()> {
            self.inner.flush()
        }
        fn sync(&mut self) -> Result<()> {
            self.inner.sync()
        }
        fn len(&self) -> u64 {
            self.inner.len()
        }
        fn path(&self) -> &Path {
            self.inner.path()
        }
    }

    impl FileSystem for FailingFs {
        fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
            Ok(Box::new(FailingFile {
                inner: StdFs.create(path)?,
                ok: self.ok,
                appends: self.appends.clone(),
            }))
        }
        fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
            StdFs.open_append(path)
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
            StdFs.rename(from, to)
        }
        fn remove(&self, path: &Path) -> Result<()> {
            StdFs.remove(path)
        }
        fn sync_dir(&self, dir: &Path) -> Result<()> {
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

    #[test]
    fn a_failed_append_poisons_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        // Header, then the first entry's header and key succeed; its value fails.
        let fs = FailingFs {
            ok: 3,
            appends: Arc::new(AtomicUsize::new(0)),
        };
        let mut w = VlogWriter::create(&fs, dir.path(), FileNumber(1)).unwrap();
        let err = w.append(b"k", b"v", SeqNo(1)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        for result in [
            w.append(b"k", b"v", SeqNo(2)).map(|_| ()),
            w.flush(),
            w.sync(),
        ] {
            assert!(
                matches!(&result, Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull),
                "{result:?}"
            );
        }
        assert!(format!("{w:?}").contains("poisoned: true"));
    }
}
