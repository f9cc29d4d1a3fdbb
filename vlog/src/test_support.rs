//! Helpers for the unit tests of this crate: small files written through
//! the real writer on the real file system, in a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use jkv_format::{FileNumber, FileSystem, SeqNo, StdFs, ValuePointer};

use crate::writer::VlogWriter;

/// One entry to write: key, value, sequence number.
pub(crate) type Spec = (Vec<u8>, Vec<u8>, u64);

/// A temporary directory holding one value log written from `specs`.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub number: FileNumber,
    pub specs: Vec<Spec>,
    pub pointers: Vec<ValuePointer>,
}

impl Fixture {
    pub fn new(number: u64, specs: Vec<Spec>) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let number = FileNumber(number);
        let mut writer = VlogWriter::create(&StdFs, dir.path(), number).expect("create");
        let pointers = specs
            .iter()
            .map(|(k, v, s)| writer.append(k, v, SeqNo(*s)).expect("append"))
            .collect();
        writer.sync().expect("sync");
        Fixture {
            dir,
            number,
            specs,
            pointers,
        }
    }

    /// Three short entries: small enough to damage at every byte.
    pub fn small() -> Fixture {
        Fixture::new(
            3,
            vec![
                (b"apple".to_vec(), b"red".to_vec(), 10),
                (b"banana".to_vec(), b"yellow!".to_vec(), 11),
                (b"cherry".to_vec(), b"dark".to_vec(), 12),
            ],
        )
    }

    pub fn path(&self) -> PathBuf {
        jkv_format::names::vlog_path(self.dir.path(), self.number)
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.path()).expect("read fixture")
    }

    pub fn fs() -> Arc<dyn FileSystem> {
        Arc::new(StdFs)
    }
}

/// Entries `count` long with varied key and value sizes.
pub(crate) fn many(count: usize) -> Vec<Spec> {
    (0..count)
        .map(|i| {
            let key = format!("key{i:06}").into_bytes();
            let value = vec![(i % 251) as u8; (i * 37) % 700];
            (key, value, 100 + i as u64)
        })
        .collect()
}
