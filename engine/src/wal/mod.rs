//! The write-ahead log: one file per memtable (`NNNNNN.wal`): a header
//! naming the file and its database, then checksummed records (jkv-format's
//! record framing), each holding one write batch (docs/wal-format.md).
//!
//! Only the write-group leader appends ([`writer`]); [`reader`] replays a
//! log at open.

pub(crate) mod reader;
pub(crate) mod writer;

use jkv_format::coding::{get_u32_le, get_u64_le};
use jkv_format::{checksum, FileNumber};

/// Record kind of a write batch.
pub(crate) const RECORD_BATCH: u8 = 1;

/// Layout: docs/wal-format.md, "Header".
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const FILE_AT: usize = VERSION_AT + 4;
const DB_ID_AT: usize = FILE_AT + 8;
const CRC_AT: usize = DB_ID_AT + 8;
/// Bytes of the header before the first record.
pub(crate) const HEADER_LEN: usize = CRC_AT + 4;
const _: () = assert!(HEADER_LEN == 32);

/// First bytes of every WAL.
pub(crate) const MAGIC: [u8; 8] = *b"jkv.wal\n";
/// The WAL format this build writes and the newest it reads. Version 2
/// added range deletions (batch entry kind 3); version 1 logs replay as
/// they are.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The header of WAL `file` of database `db_id`.
pub(crate) fn encode_header(file: FileNumber, db_id: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
    h[VERSION_AT..FILE_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[FILE_AT..DB_ID_AT].copy_from_slice(&file.0.to_le_bytes());
    h[DB_ID_AT..CRC_AT].copy_from_slice(&db_id.to_le_bytes());
    let crc = checksum(&h[..CRC_AT]);
    h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What the start of a WAL says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A valid header for this file and database: records follow.
    Valid,
    /// The file ends before or inside a header that never completed (a
    /// crash right after the file was created): it holds no records.
    Torn,
    /// Not this database's WAL, or damaged: (offset, what).
    Bad(u64, String),
}

/// Checks the header of WAL `file` of database `db_id` (0: unknown, not
/// checked) at the start of `data`.
pub(crate) fn check_header(data: &[u8], file: FileNumber, db_id: u64) -> HeaderCheck {
    if data.len() < HEADER_LEN {
        return HeaderCheck::Torn;
    }
    let crc = get_u32_le(data, CRC_AT).unwrap_or(0);
    if checksum(&data[..CRC_AT]) != crc {
        return if data[HEADER_LEN..].iter().all(|&b| b == 0) {
            HeaderCheck::Torn
        } else {
            HeaderCheck::Bad(CRC_AT as u64, "WAL header checksum mismatch".into())
        };
    }
    if data[MAGIC_AT..VERSION_AT] != MAGIC {
        return HeaderCheck::Bad(MAGIC_AT as u64, "not a jkv WAL (bad magic)".into());
    }
    let version = get_u32_le(data, VERSION_AT).unwrap_or(0);
    if version > FORMAT_VERSION {
        return HeaderCheck::Bad(
            VERSION_AT as u64,
            format!(
                "WAL format version {version} is newer than this build reads ({FORMAT_VERSION})"
            ),
        );
    }
    let named = get_u64_le(data, FILE_AT).unwrap_or(0);
    if named != file.0 {
        return HeaderCheck::Bad(
            FILE_AT as u64,
            format!(
                "the header names WAL {named}, but the file is WAL {}",
                file.0
            ),
        );
    }
    let owner = get_u64_le(data, DB_ID_AT).unwrap_or(0);
    if db_id != 0 && owner != db_id {
        return HeaderCheck::Bad(
            DB_ID_AT as u64,
            format!("the WAL belongs to database {owner:#x}, not to this one ({db_id:#x})"),
        );
    }
    HeaderCheck::Valid
}

/// The database a WAL header names, when the header is whole and its
/// checksum and magic hold (offline repair picks the database identity from
/// its files when the manifest is gone).
pub(crate) fn header_owner(data: &[u8]) -> Option<u64> {
    if data.len() < HEADER_LEN
        || checksum(&data[..CRC_AT]) != get_u32_le(data, CRC_AT)?
        || data[MAGIC_AT..VERSION_AT] != MAGIC
    {
        return None;
    }
    get_u64_le(data, DB_ID_AT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let h = encode_header(FileNumber(7), 42);
        assert_eq!(check_header(&h, FileNumber(7), 42), HeaderCheck::Valid);
        assert_eq!(check_header(&h, FileNumber(7), 0), HeaderCheck::Valid);
        assert!(matches!(
            check_header(&h, FileNumber(8), 42),
            HeaderCheck::Bad(12, _)
        ));
        assert!(matches!(
            check_header(&h, FileNumber(7), 43),
            HeaderCheck::Bad(20, _)
        ));
        assert_eq!(check_header(&h[..10], FileNumber(7), 42), HeaderCheck::Torn);
        let mut damaged = h.to_vec();
        damaged[3] ^= 1;
        assert_eq!(check_header(&damaged, FileNumber(7), 42), HeaderCheck::Torn);
        damaged.extend_from_slice(b"records");
        assert!(matches!(
            check_header(&damaged, FileNumber(7), 42),
            HeaderCheck::Bad(28, _)
        ));
    }

    /// The header with another version number (and a matching checksum).
    fn with_version(version: u32) -> [u8; HEADER_LEN] {
        let mut h = encode_header(FileNumber(7), 42);
        h[VERSION_AT..FILE_AT].copy_from_slice(&version.to_le_bytes());
        let crc = checksum(&h[..CRC_AT]);
        h[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn version_1_logs_still_read_and_newer_ones_are_refused() {
        assert_eq!(FORMAT_VERSION, 2);
        assert_eq!(
            check_header(&with_version(1), FileNumber(7), 42),
            HeaderCheck::Valid
        );
        match check_header(&with_version(3), FileNumber(7), 42) {
            HeaderCheck::Bad(at, why) => {
                assert_eq!(at, VERSION_AT as u64);
                assert!(why.contains("newer"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
