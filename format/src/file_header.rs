//! The header at the start of every write-ahead log and value-log file
//! (docs/file-header.md): magic, format version, the file's own number,
//! for WALs the database id, and a checksum over all of it.
//!
//! One codec for both kinds, so that both check the same fields in the same
//! order and report problems the same way. [`check`] looks at, in order:
//!
//! 1. **length** — a file shorter than its header never finished being
//!    created ([`HeaderError::Short`]);
//! 2. **magic** — another kind of file is refused; a zeroed magic, or one
//!    that breaks off into zeros, is damage (a torn creation looks so);
//! 3. **version** — before the checksum, so that a file written by a newer
//!    build, whose header may be laid out and checksummed differently, is
//!    refused as newer rather than blamed as damaged; version 0 is damage;
//! 4. **checksum** — over every byte before it;
//! 5. **file number** — a header naming another file means the file was
//!    copied or renamed;
//! 6. **database id** (WALs) — a log of another database is refused.
//!
//! Pure functions over bytes; no I/O, no state.

use crate::coding::{get_u32_le, get_u64_le};
use crate::{checksum, FileNumber};

/// The shape of one kind of header. The fields sit at the same offsets in
/// every kind: magic at 0, version at 8, file number at 12, then the
/// database id at 20 when the kind has one, then the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSpec {
    /// The kind of file, for messages ("WAL", "value log").
    pub kind: &'static str,
    /// The first 8 bytes of every file of this kind.
    pub magic: [u8; 8],
    /// The newest format version this build writes and reads.
    pub version: u32,
    /// Whether the header carries the database id.
    pub with_db_id: bool,
}

/// Offset of the magic in every header.
pub const MAGIC_AT: usize = 0;
/// Offset of the format version (u32 LE).
pub const VERSION_AT: usize = MAGIC_AT + 8;
/// Offset of the file's own number (u64 LE).
pub const FILE_AT: usize = VERSION_AT + 4;
/// Offset of the database id (u64 LE) in headers that carry one.
pub const DB_ID_AT: usize = FILE_AT + 8;
/// Longest header of any kind.
pub const MAX_LEN: usize = DB_ID_AT + 8 + 4;

impl HeaderSpec {
    /// Offset of the checksum (u32 LE, CRC-32 of every byte before it).
    pub const fn crc_at(&self) -> usize {
        if self.with_db_id {
            DB_ID_AT + 8
        } else {
            DB_ID_AT
        }
    }

    /// Length of the header in bytes; the file's contents start here.
    pub const fn header_len(&self) -> usize {
        self.crc_at() + 4
    }

    /// The header of `file` (of database `db_id`, ignored when the kind
    /// carries none), written at this build's format version.
    pub fn encode(&self, file: FileNumber, db_id: u64) -> EncodedHeader {
        let mut bytes = [0u8; MAX_LEN];
        bytes[MAGIC_AT..VERSION_AT].copy_from_slice(&self.magic);
        bytes[VERSION_AT..FILE_AT].copy_from_slice(&self.version.to_le_bytes());
        bytes[FILE_AT..DB_ID_AT].copy_from_slice(&file.0.to_le_bytes());
        if self.with_db_id {
            bytes[DB_ID_AT..DB_ID_AT + 8].copy_from_slice(&db_id.to_le_bytes());
        }
        let crc_at = self.crc_at();
        let crc = checksum(&bytes[..crc_at]);
        bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
        EncodedHeader {
            bytes,
            len: self.header_len(),
        }
    }
}

/// Encoded header bytes (see [`HeaderSpec::encode`]).
#[derive(Clone, Copy, Debug)]
pub struct EncodedHeader {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl EncodedHeader {
    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What an accepted header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Format version the file was written with (1..= the spec's version).
    pub version: u32,
    /// The number the header names.
    pub file: FileNumber,
    /// The database the file belongs to; `None` for kinds without one.
    pub db_id: Option<u64>,
}

/// What the caller expects the header to name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The file's number (from its name); `None`: not checked.
    pub file: Option<FileNumber>,
    /// The database's id; `None`: not checked (unknown, or a kind without).
    pub db_id: Option<u64>,
}

/// Why a header was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The file is shorter than a header: its creation never completed.
    Short {
        /// Length of the file in bytes.
        len: usize,
        /// Length of a header of this kind.
        need: usize,
        /// The kind of file.
        kind: &'static str,
    },
    /// The header's bytes are damaged (zeroed or broken-off magic,
    /// checksum mismatch, version 0). A torn creation looks like this too.
    Damaged {
        /// Offset of the bad field in the file.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The header is intact but not acceptable here: another kind of file,
    /// a newer format, another file's number or another database. Never a
    /// torn write.
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
            HeaderError::Short { len, need, kind } => {
                format!("file of {len} bytes is shorter than the {need}-byte {kind} header")
            }
            HeaderError::Damaged { what, .. } | HeaderError::Refused { what, .. } => what.clone(),
        }
    }
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset(), self.what())
    }
}

impl std::error::Error for HeaderError {}

/// Checks the header of kind `spec` at the start of `data` against
/// `expected`, in the order of this module's documentation, and returns
/// what it says.
pub fn check(
    spec: &HeaderSpec,
    data: &[u8],
    expected: Expected,
) -> Result<FileHeader, HeaderError> {
    let kind = spec.kind;
    let need = spec.header_len();
    if data.len() < need {
        return Err(HeaderError::Short {
            len: data.len(),
            need,
            kind,
        });
    }
    let magic = &data[MAGIC_AT..VERSION_AT];
    if magic != spec.magic {
        let what = format!("bad magic {magic:02x?}: not a {kind} file");
        return Err(if is_broken_off(magic, &spec.magic) {
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
    if version > spec.version {
        return Err(HeaderError::Refused {
            offset: VERSION_AT as u64,
            what: format!(
                "{kind} format version {version} is newer than this build reads \
                 (up to {}); open it with a newer jkv",
                spec.version
            ),
        });
    }
    if version == 0 {
        return Err(HeaderError::Damaged {
            offset: VERSION_AT as u64,
            what: format!("{kind} format version 0 does not exist"),
        });
    }
    let crc_at = spec.crc_at();
    let stored = get_u32_le(data, crc_at).unwrap_or_default();
    let actual = checksum(&data[..crc_at]);
    if stored != actual {
        // Reported at the header's first byte: the checksum covers it all.
        return Err(HeaderError::Damaged {
            offset: 0,
            what: format!(
                "{kind} header checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ),
        });
    }
    let file = FileNumber(get_u64_le(data, FILE_AT).unwrap_or_default());
    if let Some(want) = expected.file {
        if file != want {
            return Err(HeaderError::Refused {
                offset: FILE_AT as u64,
                what: format!(
                    "{kind} header names file {file}, expected {want}: \
                     the file was copied or renamed"
                ),
            });
        }
    }
    let db_id = spec
        .with_db_id
        .then(|| get_u64_le(data, DB_ID_AT).unwrap_or_default());
    if let (Some(owner), Some(want)) = (db_id, expected.db_id) {
        if owner != want {
            return Err(HeaderError::Refused {
                offset: DB_ID_AT as u64,
                what: format!(
                    "the {kind} belongs to database {owner:#x}, not to this one ({want:#x})"
                ),
            });
        }
    }
    Ok(FileHeader {
        version,
        file,
        db_id,
    })
}

/// A magic that is a prefix of the right one followed by zeros (all zeros
/// included): what a creation torn inside the first bytes leaves.
fn is_broken_off(found: &[u8], magic: &[u8; 8]) -> bool {
    let kept = found.iter().zip(magic).take_while(|(a, b)| a == b).count();
    found[kept..].iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_DB: HeaderSpec = HeaderSpec {
        kind: "WAL",
        magic: *b"jkv.wal\n",
        version: 2,
        with_db_id: true,
    };
    const WITHOUT_DB: HeaderSpec = HeaderSpec {
        kind: "value log",
        magic: *b"jkv.vlog",
        version: 1,
        with_db_id: false,
    };

    fn expect(file: u64, db_id: Option<u64>) -> Expected {
        Expected {
            file: Some(FileNumber(file)),
            db_id,
        }
    }

    /// `h` with another version and a checksum that matches it.
    fn reversioned(spec: &HeaderSpec, h: &[u8], version: u32) -> Vec<u8> {
        let mut h = h.to_vec();
        h[VERSION_AT..FILE_AT].copy_from_slice(&version.to_le_bytes());
        let crc = checksum(&h[..spec.crc_at()]);
        h[spec.crc_at()..spec.header_len()].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn lengths_and_byte_layout() {
        assert_eq!((WITH_DB.header_len(), WITHOUT_DB.header_len()), (32, 24));
        let h = WITH_DB.encode(FileNumber(7), 0x1122);
        let b = h.as_bytes();
        assert_eq!(&b[..8], b"jkv.wal\n");
        assert_eq!(b[8..12], 2u32.to_le_bytes());
        assert_eq!(b[12..20], 7u64.to_le_bytes());
        assert_eq!(b[20..28], 0x1122u64.to_le_bytes());
        assert_eq!(b[28..32], checksum(&b[..28]).to_le_bytes());
        let v = WITHOUT_DB.encode(FileNumber(9), 0x1122);
        let v = v.as_bytes();
        assert_eq!(v.len(), 24);
        assert_eq!(v[12..20], 9u64.to_le_bytes());
        assert_eq!(v[20..24], checksum(&v[..20]).to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let h = WITH_DB.encode(FileNumber(7), 42);
        let got = check(&WITH_DB, h.as_bytes(), expect(7, Some(42)));
        assert_eq!(
            got,
            Ok(FileHeader {
                version: 2,
                file: FileNumber(7),
                db_id: Some(42)
            })
        );
        // Nothing expected: the header is only read.
        assert!(check(&WITH_DB, h.as_bytes(), Expected::default()).is_ok());
        let v = WITHOUT_DB.encode(FileNumber(3), 42);
        let got = check(&WITHOUT_DB, v.as_bytes(), expect(3, Some(42)));
        assert_eq!(got.map(|h| h.db_id), Ok(None));
        // Older versions still read.
        let old = reversioned(&WITH_DB, h.as_bytes(), 1);
        assert_eq!(
            check(&WITH_DB, &old, expect(7, Some(42))).map(|h| h.version),
            Ok(1)
        );
    }

    #[test]
    fn short_files() {
        let h = WITH_DB.encode(FileNumber(1), 1);
        for len in [0, 10, 31] {
            let err = check(&WITH_DB, &h.as_bytes()[..len], expect(1, Some(1))).unwrap_err();
            assert_eq!(
                err,
                HeaderError::Short {
                    len,
                    need: 32,
                    kind: "WAL"
                }
            );
            assert!(err.what().contains("32-byte WAL header"), "{err}");
        }
    }

    #[test]
    fn each_refusal_names_its_field() {
        let h = WITH_DB.encode(FileNumber(8), 42);
        let h = h.as_bytes();
        let err = check(&WITH_DB, h, expect(9, Some(42))).unwrap_err();
        assert!(
            matches!(err, HeaderError::Refused { offset: 12, .. }),
            "{err}"
        );
        assert!(err.what().contains("000008"), "{err}");
        let err = check(&WITH_DB, h, expect(8, Some(43))).unwrap_err();
        assert!(
            matches!(err, HeaderError::Refused { offset: 20, .. }),
            "{err}"
        );
        // A value log is not a WAL.
        let v = WITHOUT_DB.encode(FileNumber(8), 0);
        let err = check(&WITH_DB, &[v.as_bytes(), &[0; 8]].concat(), expect(8, None)).unwrap_err();
        assert!(
            matches!(err, HeaderError::Refused { offset: 0, .. }),
            "{err}"
        );
        assert!(err.what().contains("not a WAL file"), "{err}");
    }

    #[test]
    fn newer_version_is_refused_before_the_checksum_is_looked_at() {
        let h = WITH_DB.encode(FileNumber(1), 1);
        let mut newer = reversioned(&WITH_DB, h.as_bytes(), 3);
        // A newer version may checksum differently: still "newer".
        newer[WITH_DB.crc_at()] ^= 0xff;
        let err = check(&WITH_DB, &newer, expect(1, Some(1))).unwrap_err();
        assert!(
            matches!(err, HeaderError::Refused { offset: 8, .. }),
            "{err}"
        );
        assert!(err.what().contains("newer"), "{err}");
    }

    #[test]
    fn damage_is_damage() {
        let h = WITHOUT_DB.encode(FileNumber(1), 0);
        let h = h.as_bytes();
        let mut flipped = h.to_vec();
        flipped[FILE_AT] ^= 1;
        let err = check(&WITHOUT_DB, &flipped, expect(1, None)).unwrap_err();
        assert!(
            matches!(err, HeaderError::Damaged { offset: 0, .. }),
            "{err}"
        );
        assert!(err.what().contains("checksum mismatch"), "{err}");
        let zeros = [0u8; 24];
        assert!(matches!(
            check(&WITHOUT_DB, &zeros, expect(1, None)),
            Err(HeaderError::Damaged { offset: 0, .. })
        ));
        // A magic broken off into zeros is a torn creation, not another kind.
        let mut torn = [0u8; 24];
        torn[..3].copy_from_slice(b"jkv");
        assert!(matches!(
            check(&WITHOUT_DB, &torn, expect(1, None)),
            Err(HeaderError::Damaged { .. })
        ));
        let v0 = reversioned(&WITHOUT_DB, h, 0);
        assert!(matches!(
            check(&WITHOUT_DB, &v0, expect(1, None)),
            Err(HeaderError::Damaged { offset: 8, .. })
        ));
        let mut other = h.to_vec();
        other[0] = b'J';
        assert!(matches!(
            check(&WITHOUT_DB, &other, expect(1, None)),
            Err(HeaderError::Refused { .. })
        ));
    }
}
