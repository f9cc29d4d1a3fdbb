//! An in-memory file system for this crate's integration tests: tables are
//! written and mapped without touching the disk, so a test can damage a
//! table's bytes thousands of times quickly.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jkv_format::fs::DirLock;
use jkv_format::key::InternalKey;
use jkv_format::{Error, FileSystem, Result, SeqNo, ValueKind, WritableFile};
use jkv_sstable::{TableBuilder, TableOptions};

/// Files as byte vectors in a shared map.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    files: Arc<Mutex<HashMap<PathBuf, Vec<u8>>>>,
}

impl MemFs {
    /// Replaces the contents of `path`.
    pub fn put(&self, path: &Path, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_path_buf(), bytes);
    }

    /// The contents of `path`.
    pub fn bytes(&self, path: &Path) -> Vec<u8> {
        self.files.lock().unwrap()[path].clone()
    }

    fn missing(path: &Path) -> Error {
        Error::io(
            "opening",
            path,
            io::Error::new(io::ErrorKind::NotFound, "no such file"),
        )
    }
}

struct MemFile {
    fs: MemFs,
    path: PathBuf,
    len: u64,
}

impl WritableFile for MemFile {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        let mut files = self.fs.files.lock().unwrap();
        files
            .entry(self.path.clone())
            .or_default()
            .extend_from_slice(data);
        self.len += data.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

impl FileSystem for MemFs {
    fn create(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        self.put(path, Vec::new());
        Ok(Box::new(MemFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            len: 0,
        }))
    }
    fn open_append(&self, path: &Path) -> Result<Box<dyn WritableFile>> {
        let len = self.file_size(path)?;
        Ok(Box::new(MemFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            len,
        }))
    }
    fn map(&self, path: &Path) -> Result<Bytes> {
        let files = self.files.lock().unwrap();
        let data = files.get(path).ok_or_else(|| Self::missing(path))?;
        Ok(Bytes::copy_from_slice(data))
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        let data = files.get(path).ok_or_else(|| Self::missing(path))?;
        let start = offset as usize;
        data.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::io(
                    "reading",
                    path,
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                )
            })
    }
    fn file_size(&self, path: &Path) -> Result<u64> {
        let files = self.files.lock().unwrap();
        Ok(files.get(path).ok_or_else(|| Self::missing(path))?.len() as u64)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        files
            .get_mut(path)
            .ok_or_else(|| Self::missing(path))?
            .truncate(len as usize);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        let data = files.remove(from).ok_or_else(|| Self::missing(from))?;
        files.insert(to.to_path_buf(), data);
        Ok(())
    }
    fn remove(&self, path: &Path) -> Result<()> {
        let mut files = self.files.lock().unwrap();
        files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| Self::missing(path))
    }
    fn sync_dir(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let files = self.files.lock().unwrap();
        Ok(files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn exists(&self, path: &Path) -> Result<bool> {
        Ok(self.files.lock().unwrap().contains_key(path))
    }
    fn create_dir_all(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
    fn lock(&self, path: &Path) -> Result<Box<dyn DirLock>> {
        Err(Error::InvalidArgument(format!(
            "MemFs does not lock {}",
            path.display()
        )))
    }
}

/// The internal key (`user_key`, `seq`, `kind`).
pub fn ikey(user_key: &[u8], seq: u64, kind: ValueKind) -> Vec<u8> {
    InternalKey::new(user_key, SeqNo(seq), kind).into_vec()
}

/// Builds a table of `entries` (sorted) at `path` in `fs`; returns its bytes.
pub fn build(
    fs: &MemFs,
    path: &Path,
    entries: &[(Vec<u8>, Vec<u8>)],
    options: TableOptions,
) -> Vec<u8> {
    let mut b = TableBuilder::new(fs.create(path).unwrap(), options);
    for (k, v) in entries {
        b.add(k, v).unwrap();
    }
    b.finish().unwrap();
    fs.bytes(path)
}
