//! The fixed-size footer at the end of every table (docs/sst-format.md,
//! "Footer"): where the filter, index and properties blocks are, the format
//! version, a checksum and the magic number.
//!
//! Decoding checks, in this order, the file length, the magic, the version
//! (so an older reader refuses a newer table with a message saying so, even
//! if the newer footer is laid out differently before the version field) and
//! the checksum. Pure functions, no state.

use std::path::Path;

use jkv_format::coding::{get_u32_le, get_u64_le};
use jkv_format::{checksum, Error, Result};

use crate::handle::BlockHandle;

/// Layout: docs/sst-format.md, "Footer".
const FILTER_OFFSET_AT: usize = 0;
const FILTER_SIZE_AT: usize = FILTER_OFFSET_AT + 8;
const INDEX_OFFSET_AT: usize = FILTER_SIZE_AT + 8;
const INDEX_SIZE_AT: usize = INDEX_OFFSET_AT + 8;
const PROPERTIES_OFFSET_AT: usize = INDEX_SIZE_AT + 8;
const PROPERTIES_SIZE_AT: usize = PROPERTIES_OFFSET_AT + 8;
const VERSION_AT: usize = PROPERTIES_SIZE_AT + 8;
const CRC_AT: usize = VERSION_AT + 4;
const MAGIC_AT: usize = CRC_AT + 4;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = MAGIC_AT + 8;
const _: () = assert!(FOOTER_LEN == 64);
// Every version keeps the version and magic at these distances from the end
// of the file, so any reader can tell "newer" from "damaged".
const _: () = assert!(FOOTER_LEN - VERSION_AT == 16 && FOOTER_LEN - MAGIC_AT == 8);

/// Last 8 bytes of every table: `89 6A 6B 76 53 53 54 0A` on disk
/// ("\x89jkvSST\n": a high-bit byte and a newline catch text-mode damage).
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"\x89jkvSST\n");

/// The newest table format this build writes and reads. Version 2 added
/// the range-tombstone block (named by the properties), version 3
/// compressed data blocks (LZ4, zstd); version 1 and 2 tables still open.
pub const FORMAT_VERSION: u32 = 3;

/// The decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// The filter block; `None` when the table was built without a filter
    /// (stored as offset 0, size 0).
    pub filter: Option<BlockHandle>,
    /// The index block.
    pub index: BlockHandle,
    /// The properties block.
    pub properties: BlockHandle,
    /// Format version the table was written with.
    pub version: u32,
}

impl Footer {
    /// The 64 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        let filter = self.filter.unwrap_or_default();
        let put = |b: &mut [u8; FOOTER_LEN], at: usize, v: u64| {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(&mut b, FILTER_OFFSET_AT, filter.offset);
        put(&mut b, FILTER_SIZE_AT, filter.size);
        put(&mut b, INDEX_OFFSET_AT, self.index.offset);
        put(&mut b, INDEX_SIZE_AT, self.index.size);
        put(&mut b, PROPERTIES_OFFSET_AT, self.properties.offset);
        put(&mut b, PROPERTIES_SIZE_AT, self.properties.size);
        b[VERSION_AT..CRC_AT].copy_from_slice(&self.version.to_le_bytes());
        let crc = checksum(&b[..CRC_AT]);
        b[CRC_AT..MAGIC_AT].copy_from_slice(&crc.to_le_bytes());
        b[MAGIC_AT..].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        b
    }

    /// Decodes the footer at the end of `file` (the whole table).
    pub fn decode(file: &[u8], path: &Path) -> Result<Footer> {
        let len = file.len();
        let Some(start) = len.checked_sub(FOOTER_LEN) else {
            return Err(Error::corruption(
                path,
                0,
                format!("file is {len} bytes, shorter than the {FOOTER_LEN}-byte table footer"),
            ));
        };
        let f = &file[start..];
        let at = |field: usize| (start + field) as u64;
        let u64_at = |field: usize| get_u64_le(f, field).unwrap_or_default();
        let magic = u64_at(MAGIC_AT);
        if magic != TABLE_MAGIC {
            return Err(Error::corruption(
                path,
                at(MAGIC_AT),
                format!(
                    "bad table magic {magic:#018x} (expected {TABLE_MAGIC:#018x}): not a jkv table"
                ),
            ));
        }
        let version = get_u32_le(f, VERSION_AT).unwrap_or_default();
        if version > FORMAT_VERSION {
            return Err(Error::corruption(
                path,
                at(VERSION_AT),
                format!(
                    "table format version {version} is newer than this build reads (up to {FORMAT_VERSION}); upgrade jkv"
                ),
            ));
        }
        if version == 0 {
            return Err(Error::corruption(
                path,
                at(VERSION_AT),
                "table format version 0 does not exist",
            ));
        }
        let stored = get_u32_le(f, CRC_AT).unwrap_or_default();
        let computed = checksum(&f[..CRC_AT]);
        if stored != computed {
            return Err(Error::corruption(
                path,
                start as u64,
                format!(
                    "footer checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        let handle = |o: usize, s: usize| BlockHandle {
            offset: u64_at(o),
            size: u64_at(s),
        };
        let filter = handle(FILTER_OFFSET_AT, FILTER_SIZE_AT);
        Ok(Footer {
            filter: (filter != BlockHandle::default()).then_some(filter),
            index: handle(INDEX_OFFSET_AT, INDEX_SIZE_AT),
            properties: handle(PROPERTIES_OFFSET_AT, PROPERTIES_SIZE_AT),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Footer {
        Footer {
            filter: Some(BlockHandle {
                offset: 100,
                size: 20,
            }),
            index: BlockHandle {
                offset: 125,
                size: 30,
            },
            properties: BlockHandle {
                offset: 160,
                size: 40,
            },
            version: FORMAT_VERSION,
        }
    }

    #[test]
    fn round_trip_with_and_without_filter() {
        let p = Path::new("t.sst");
        let f = sample();
        let mut file = vec![7u8; 10];
        file.extend_from_slice(&f.encode());
        assert_eq!(Footer::decode(&file, p).unwrap(), f);
        let nf = Footer {
            filter: None,
            ..sample()
        };
        assert_eq!(Footer::decode(&nf.encode(), p).unwrap(), nf);
        assert_eq!(&nf.encode()[FOOTER_LEN - 8..], b"\x89jkvSST\n");
    }

    fn corruption_offset(file: &[u8]) -> (u64, String) {
        match Footer::decode(file, Path::new("d/000009.sst")) {
            Err(Error::Corruption { file, offset, what }) => {
                assert_eq!(file, Path::new("d/000009.sst"));
                (offset, what)
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn short_file_bad_magic_version_and_crc() {
        assert_eq!(corruption_offset(&[0u8; 63]).0, 0);
        let good = sample().encode();
        let mut bad = good;
        bad[FOOTER_LEN - 1] ^= 1;
        assert_eq!(corruption_offset(&bad).0, MAGIC_AT as u64);
        let mut newer = sample();
        newer.version = FORMAT_VERSION + 1;
        let (offset, what) = corruption_offset(&newer.encode());
        assert_eq!(offset, VERSION_AT as u64);
        assert!(what.contains("newer"), "{what}");
        newer.version = 0;
        assert_eq!(corruption_offset(&newer.encode()).0, VERSION_AT as u64);
        for i in 0..CRC_AT {
            let mut bad = good;
            bad[i] ^= 0x40;
            let (offset, what) = corruption_offset(&bad);
            if (VERSION_AT..CRC_AT).contains(&i) {
                assert_eq!(offset, VERSION_AT as u64, "byte {i}: {what}");
            } else {
                assert_eq!(offset, 0, "byte {i}: {what}");
            }
        }
    }
}
