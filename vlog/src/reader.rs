//! Resolving value pointers: [`VlogReader`] turns a [`ValuePointer`] into the
//! value it points at, as a zero-copy slice of the file's memory map.
//!
//! Every read verifies the entry's checksum, that its length is the
//! pointer's, and that its key is the key the caller looked up; a pointer
//! that does not lead to exactly that entry is `Corruption` at the pointer's
//! offset. Each file's header is checked when the file is mapped.
//!
//! Maps are cached per file. The active file grows while it is read: a
//! pointer past the end of the cached map maps the file again. Deleting a
//! file is the engine's decision; it calls [`VlogReader::forget`] so the
//! cache lets go of the map (slices already handed out keep it alive).
//!
//! Threads: `Send + Sync`, shared by all reader threads. The cache lock is
//! held only to clone or swap a `Bytes` handle, never across I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use jkv_format::names::vlog_path;
use jkv_format::{Error, FileNumber, FileSystem, Result, ValuePointer};

use crate::codec::decompress_value;
use crate::entry::{decode_at, ENTRY_HEADER_LEN, ENTRY_LEN_MAX};
use crate::header::{self, HEADER_LEN};

/// Reads values from the value-log files of one directory.
pub struct VlogReader {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Guards the map of every file read so far, by number. A leaf lock:
    /// nothing else is taken while it is held, and no file I/O happens under
    /// it.
    maps: RwLock<HashMap<FileNumber, Bytes>>,
}

impl std::fmt::Debug for VlogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VlogReader")
            .field("dir", &self.dir)
            .field("cached_files", &self.maps.read().len())
            .finish()
    }
}

impl VlogReader {
    /// A reader of the `.vlog` files in `dir`; maps nothing until the first
    /// read.
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf) -> VlogReader {
        VlogReader {
            fs,
            dir,
            maps: RwLock::new(HashMap::new()),
        }
    }

    /// The directory the files are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value of the entry `pointer` points at, which must be stored
    /// under `expected_key`. Zero-copy: the result is a slice of the file's
    /// map.
    ///
    /// Errors: `Corruption { file, offset: pointer.offset, .. }` when the
    /// entry fails its checksum, its length differs from the pointer's, its
    /// key differs from `expected_key`, or it lies (even after remapping)
    /// past the end of the file; `Corruption` at the header field when the
    /// file's header is bad; `Io` when the file cannot be mapped (e.g. it
    /// was deleted).
    pub fn read(&self, pointer: &ValuePointer, expected_key: &[u8]) -> Result<Bytes> {
        let corrupt = |what: String| {
            Error::corruption(vlog_path(&self.dir, pointer.file), pointer.offset, what)
        };
        let len = pointer.len as usize;
        if !(ENTRY_HEADER_LEN..=ENTRY_LEN_MAX).contains(&len) {
            return Err(corrupt(format!(
                "pointer length {len} is outside the possible entry lengths \
                 {ENTRY_HEADER_LEN}..={ENTRY_LEN_MAX}"
            )));
        }
        if pointer.offset < HEADER_LEN as u64 {
            return Err(corrupt("pointer points into the file header".to_string()));
        }
        let end = pointer
            .offset
            .checked_add(u64::from(pointer.len))
            .ok_or_else(|| corrupt("pointer offset + length overflows".to_string()))?;

        let map = match self.cached(pointer.file) {
            Some(map) if map.len() as u64 >= end => map,
            _ => self.remap(pointer.file)?,
        };
        if (map.len() as u64) < end {
            return Err(corrupt(format!(
                "entry ends at byte {end}, past the end of the {}-byte file",
                map.len()
            )));
        }
        // Both fit in usize: end <= map.len().
        let (at, end) = (pointer.offset as usize, end as usize);
        let view = decode_at(&map[..end], at).map_err(|damage| corrupt(damage.to_string()))?;
        if view.len != len {
            return Err(corrupt(format!(
                "entry is {} bytes, the pointer says {len}",
                view.len
            )));
        }
        if map[view.key.clone()] != *expected_key {
            return Err(corrupt(
                "entry holds another key: the pointer does not point where it should".to_string(),
            ));
        }
        if view.compressed {
            return decompress_value(&map[view.value])
                .map(Bytes::from)
                .map_err(corrupt);
        }
        Ok(map.slice(view.value))
    }

    /// Drops the cached map of `file` (call it when the file is deleted).
    /// Values already returned stay valid: they hold the map.
    pub fn forget(&self, file: FileNumber) {
        self.maps.write().remove(&file);
    }

    fn cached(&self, file: FileNumber) -> Option<Bytes> {
        self.maps.read().get(&file).cloned()
    }

    /// Maps `file` as it is now, checks its header and caches the map
    /// (unless another thread cached a longer one meanwhile).
    fn remap(&self, file: FileNumber) -> Result<Bytes> {
        let path = vlog_path(&self.dir, file);
        let map = self.fs.map(&path)?;
        header::check(&map, file)
            .map_err(|bad| Error::corruption(&path, bad.offset(), bad.what()))?;
        let mut maps = self.maps.write();
        let cached = maps.entry(file).or_insert_with(|| map.clone());
        if cached.len() < map.len() {
            *cached = map;
        }
        Ok(cached.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use jkv_format::{SeqNo, StdFs};

    use super::*;
    use crate::test_support::{many, Fixture};
    use crate::writer::VlogWriter;

    fn reader(f: &Fixture) -> VlogReader {
        VlogReader::new(Fixture::fs(), f.dir.path().to_path_buf())
    }

    fn assert_corrupt_at(result: Result<Bytes>, offset: u64) {
        match result {
            Err(Error::Corruption {
                file, offset: at, ..
            }) => {
                assert_eq!(at, offset);
                assert!(file.to_string_lossy().ends_with(".vlog"), "{file:?}");
            }
            other => panic!("expected Corruption at {offset}, got {other:?}"),
        }
    }

    #[test]
    fn reader_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<VlogReader>();
    }

    #[test]
    fn pointers_read_back_with_their_key() {
        let mut specs = many(200);
        specs.push((b"empty".to_vec(), Vec::new(), 7));
        specs.push((b"big".to_vec(), vec![0x5A; 1 << 20], 8));
        let f = Fixture::new(9, specs);
        let r = reader(&f);
        for (p, (k, v, _)) in f.pointers.iter().zip(&f.specs) {
            assert_eq!(&r.read(p, k).unwrap()[..], &v[..]);
        }
    }

    #[test]
    fn wrong_key_is_corruption() {
        let f = Fixture::small();
        let r = reader(&f);
        let p = f.pointers[1];
        assert_corrupt_at(r.read(&p, b"apple"), p.offset);
        assert_corrupt_at(r.read(&p, b"banan"), p.offset);
        assert_corrupt_at(r.read(&p, b""), p.offset);
        assert_eq!(&r.read(&p, b"banana").unwrap()[..], b"yellow!");
    }

    #[test]
    fn bad_pointers_are_corruption() {
        let f = Fixture::small();
        let r = reader(&f);
        let good = f.pointers[1];
        let last = f.pointers[2];
        let cases = [
            // Into the middle of an entry.
            ValuePointer {
                offset: good.offset + 1,
                ..good
            },
            // Too long, too short, impossible lengths.
            ValuePointer {
                len: good.len + 1,
                ..good
            },
            ValuePointer {
                len: good.len - 1,
                ..good
            },
            ValuePointer { len: 0, ..good },
            ValuePointer {
                len: u32::MAX,
                ..good
            },
            // Into the header, past the end, overflowing.
            ValuePointer { offset: 0, ..good },
            ValuePointer {
                offset: last.offset + u64::from(last.len),
                ..good
            },
            ValuePointer {
                offset: u64::MAX - 3,
                ..good
            },
        ];
        for p in cases {
            assert_corrupt_at(r.read(&p, b"banana"), p.offset);
        }
    }

    #[test]
    fn missing_file_is_io_error() {
        let f = Fixture::small();
        let r = reader(&f);
        let p = ValuePointer {
            file: FileNumber(77),
            ..f.pointers[0]
        };
        assert!(matches!(r.read(&p, b"apple"), Err(Error::Io { .. })));
    }

    #[test]
    fn header_of_another_file_is_refused() {
        let f = Fixture::small();
        let moved = vlog_path(f.dir.path(), FileNumber(4));
        std::fs::rename(f.path(), &moved).unwrap();
        let r = reader(&f);
        let p = ValuePointer {
            file: FileNumber(4),
            ..f.pointers[0]
        };
        match r.read(&p, b"apple") {
            Err(Error::Corruption { file, what, .. }) => {
                assert_eq!(file, moved);
                assert!(what.contains("000003"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let f = Fixture::small();
        let mut data = f.bytes();
        data[8..12].copy_from_slice(&(crate::FORMAT_VERSION + 1).to_le_bytes());
        std::fs::write(f.path(), &data).unwrap();
        match reader(&f).read(&f.pointers[0], b"apple") {
            Err(Error::Corruption {
                offset: 8, what, ..
            }) => assert!(what.contains("newer")),
            other => panic!("{other:?}"),
        }
    }

    /// A flipped bit anywhere gives the right value or `Corruption`, never a
    /// wrong value or a panic; a flip inside an entry (or the header) always
    /// makes reading that entry fail.
    #[test]
    fn bit_flip_at_every_byte_is_detected() {
        let f = Fixture::small();
        let clean = f.bytes();
        for i in 0..clean.len() {
            for bit in 0..8 {
                let mut data = clean.clone();
                data[i] ^= 1 << bit;
                std::fs::write(f.path(), &data).unwrap();
                let r = reader(&f);
                for (p, (k, v, _)) in f.pointers.iter().zip(&f.specs) {
                    let inside = (p.offset..p.offset + u64::from(p.len)).contains(&(i as u64));
                    match r.read(p, k) {
                        Ok(value) => {
                            assert!(!inside && i >= HEADER_LEN, "flip at {i} bit {bit} unseen");
                            assert_eq!(&value[..], &v[..]);
                        }
                        Err(e) => {
                            assert!(e.is_corruption(), "{e:?}");
                            assert!(inside || i < HEADER_LEN, "flip at {i} blamed {p:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn active_file_is_read_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(2)).unwrap();
        let r = VlogReader::new(Fixture::fs(), dir.path().to_path_buf());
        let p1 = w.append(b"one", b"first value", SeqNo(1)).unwrap();
        w.flush().unwrap();
        assert_eq!(&r.read(&p1, b"one").unwrap()[..], b"first value");
        let mut later = Vec::new();
        for i in 0..50u64 {
            let key = format!("k{i}");
            let value = vec![i as u8; 100 + i as usize * 50];
            let p = w.append(key.as_bytes(), &value, SeqNo(2 + i)).unwrap();
            w.flush().unwrap();
            // Remaps: the pointer is past the end of the cached map.
            assert_eq!(&r.read(&p, key.as_bytes()).unwrap()[..], &value[..]);
            later.push((p, key, value));
        }
        assert_eq!(&r.read(&p1, b"one").unwrap()[..], b"first value");
        for (p, k, v) in &later {
            assert_eq!(&r.read(p, k.as_bytes()).unwrap()[..], &v[..]);
        }
    }

    #[test]
    fn forget_drops_the_map_and_values_outlive_it() {
        let f = Fixture::small();
        let r = reader(&f);
        let v = r.read(&f.pointers[0], b"apple").unwrap();
        r.forget(f.number);
        assert!(format!("{r:?}").contains("cached_files: 0"));
        std::fs::remove_file(f.path()).unwrap();
        assert_eq!(&v[..], b"red");
        assert!(matches!(
            r.read(&f.pointers[0], b"apple"),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn concurrent_readers() {
        let f = Fixture::new(6, many(300));
        let r = reader(&f);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (r, f) = (&r, &f);
                s.spawn(move || {
                    for round in 0..5 {
                        for (i, (p, (k, v, _))) in f.pointers.iter().zip(&f.specs).enumerate() {
                            if (i + t + round) % 3 == 0 {
                                assert_eq!(&r.read(p, k).unwrap()[..], &v[..]);
                            }
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn concurrent_readers_while_the_writer_appends() {
        let dir = tempfile::tempdir().unwrap();
        let r = VlogReader::new(Fixture::fs(), dir.path().to_path_buf());
        let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(1)).unwrap();
        let (tx, rx) = mpsc::channel::<(ValuePointer, Vec<u8>, Vec<u8>)>();
        let rx = parking_lot::Mutex::new(rx);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let (r, rx) = (&r, &rx);
                s.spawn(move || loop {
                    let next = rx.lock().recv();
                    let Ok((p, k, v)) = next else { break };
                    assert_eq!(&r.read(&p, &k).unwrap()[..], &v[..]);
                });
            }
            for i in 0..500u64 {
                let k = format!("key{i}").into_bytes();
                let v = vec![(i % 256) as u8; 10 + (i as usize % 300)];
                let p = w.append(&k, &v, SeqNo(i + 1)).unwrap();
                // The engine publishes a pointer only after the flush.
                w.flush().unwrap();
                tx.send((p, k, v)).unwrap();
            }
            drop(tx);
        });
    }
}
