//! The file header every `NNNNNN.vlog` starts with (docs/vlog-format.md,
//! "File header"): magic, format version, the file's own number and a
//! checksum. It lets an old reader refuse a newer file, and recognises a
//! file copied or renamed from elsewhere (its number differs from its name).
//!
//! Pure functions over bytes; no I/O, no state.

use jkv_format::coding::{get_u32_le, get_u64_le};
use jkv_format::{checksum, FileNumber};

/// Identifies a value log: the first 8 bytes of every `.vlog` file.
pub const MAGIC: [u8; 8] = *b"jkv.vlog";

/// Newest format version this build writes and reads. Version 2 may hold
/// compressed values (flag in `value_len`); version 1 files still read.
pub const FORMAT_VERSION: u32 = 2;

/// Layout: docs/vlog-format.md, "File header". Every version keeps `magic`
/// and `version` where they are, so any reader can tell a newer file apart
/// from a damaged one.
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const NUMBER_AT: usize = VERSION_AT + 4;
const CRC_AT: usize = NUMBER_AT + 8;
/// Size of the file header in bytes; the first entry starts here.
pub const HEADER_LEN: usize = CRC_AT + 4;
const _: () = assert!(HEADER_LEN == 24);

/// The header of file `number`, checksum included.
pub fn encode(number: FileNumber) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
    out[VERSION_AT..NUMBER_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[NUMBER_AT..CRC_AT].copy_from_slice(&number.0.to_le_bytes());
    let crc = checksum(&out[..CRC_AT]);
    out[CRC_AT..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Why a header was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is shorter than a header: its creation never completed.
    Short {
        /// Length of the file in bytes.
        len: usize,
    },
    /// The header's bytes are damaged (zeroed magic, checksum mismatch, a
    /// version that does not exist). A torn creation looks like this too.
    Damaged {
        /// Offset of the bad field in the file.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The header is intact but not acceptable here: another kind of file,
    /// a newer format, or another file's number. Never a torn write.
    Refused {
        /// Offset of the field that was refused.
        offset: u64,
        /// What was wrong.
        what: String,
    },
}

impl HeaderError {
    /// Byte offset of the problem in the file.
    pub fn offset(&self) -> u64 {
        match self {
            HeaderError::Short { .. } => 0,
            HeaderError::Damaged { offset, .. } | HeaderError::Refused { offset, .. } => *offset,
        }
    }

    /// What was wrong, for an error message.
    pub fn what(&self) -> String {
        match self {
            HeaderError::Short { len } => {
                format!("file of {len} bytes is shorter than the {HEADER_LEN}-byte vlog header")
            }
            HeaderError::Damaged { what, .. } | HeaderError::Refused { what, .. } => what.clone(),
        }
    }
}

/// Checks the header at the start of `data` for file `expected`. Fields are
/// checked in this order: length, magic, version (before the checksum, so a
/// newer layout is refused as newer rather than blamed as damage), checksum,
/// file number.
pub fn check(data: &[u8], expected: FileNumber) -> Result<(), HeaderError> {
    if data.len() < HEADER_LEN {
        return Err(HeaderError::Short { len: data.len() });
    }
    let magic = &data[MAGIC_AT..VERSION_AT];
    if magic != MAGIC {
        let what = format!("bad magic {magic:02x?}: not a value log");
        return Err(if magic.iter().all(|&b| b == 0) {
            HeaderError::Damaged {
                offset: MAGIC_AT as u64,
                what,
            }
        } else {
            HeaderError::Refused {
                offset: MAGIC_AT as u64,
                what,
            }
        });
    }
    let version = get_u32_le(data, VERSION_AT).unwrap_or_default();
    if version > FORMAT_VERSION {
        return Err(HeaderError::Refused {
            offset: VERSION_AT as u64,
            what: format!(
                "vlog format version {version} is newer than this build reads \
                 (up to {FORMAT_VERSION}); open it with a newer jkv"
            ),
        });
    }
    if version == 0 {
        return Err(HeaderError::Damaged {
            offset: VERSION_AT as u64,
            what: "vlog format version 0 does not exist".to_string(),
        });
    }
    let stored = get_u32_le(data, CRC_AT).unwrap_or_default();
    let actual = checksum(&data[..CRC_AT]);
    if stored != actual {
        // Reported at the header's first byte: the checksum covers it all.
        return Err(HeaderError::Damaged {
            offset: 0,
            what: format!(
                "header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ),
        });
    }
    let number = FileNumber(get_u64_le(data, NUMBER_AT).unwrap_or_default());
    if number != expected {
        return Err(HeaderError::Refused {
            offset: NUMBER_AT as u64,
            what: format!(
                "header names file {number}, expected {expected}: the file was copied or renamed"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = encode(FileNumber(7));
        assert_eq!(check(&h, FileNumber(7)), Ok(()));
        assert_eq!(&h[..8], b"jkv.vlog");
        assert_eq!(h[8..12], FORMAT_VERSION.to_le_bytes());
    }

    #[test]
    fn short_file() {
        let h = encode(FileNumber(1));
        assert_eq!(
            check(&h[..HEADER_LEN - 1], FileNumber(1)),
            Err(HeaderError::Short {
                len: HEADER_LEN - 1
            })
        );
        assert_eq!(
            check(&[], FileNumber(1)),
            Err(HeaderError::Short { len: 0 })
        );
    }

    #[test]
    fn other_number_is_refused() {
        let h = encode(FileNumber(8));
        let err = check(&h, FileNumber(9)).unwrap_err();
        assert!(matches!(err, HeaderError::Refused { offset, .. } if offset == NUMBER_AT as u64));
        assert!(err.what().contains("000008"), "{}", err.what());
    }

    #[test]
    fn newer_version_is_refused_even_with_other_layout() {
        let mut h = encode(FileNumber(1));
        h[VERSION_AT..NUMBER_AT].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        // A newer version may compute its checksum differently: the version
        // check comes first.
        let err = check(&h, FileNumber(1)).unwrap_err();
        assert!(matches!(err, HeaderError::Refused { .. }));
        assert!(err.what().contains("newer"), "{}", err.what());
    }

    #[test]
    fn damage_is_damage() {
        let mut h = encode(FileNumber(1));
        h[NUMBER_AT] ^= 1;
        assert!(matches!(
            check(&h, FileNumber(1)),
            Err(HeaderError::Damaged { .. })
        ));
        let zeros = [0u8; HEADER_LEN];
        assert!(matches!(
            check(&zeros, FileNumber(1)),
            Err(HeaderError::Damaged { .. })
        ));
        let mut other = encode(FileNumber(1));
        other[0] = b'J';
        assert!(matches!(
            check(&other, FileNumber(1)),
            Err(HeaderError::Refused { .. })
        ));
    }
}
