//! The write-ahead log: one file per memtable (`NNNNNN.wal`): a header
//! naming the file and its database, then checksummed records (jkv-format's
//! record framing), each holding one write batch (docs/wal-format.md).
//!
//! Only the write-group leader appends ([`writer`]); [`reader`] replays a
//! log at open.

pub(crate) mod reader;
pub(crate) mod writer;

use jkv_format::file_header::{self, Expected, HeaderError, HeaderSpec};
use jkv_format::FileNumber;

/// Record kind of a write batch.
pub(crate) const RECORD_BATCH: u8 = 1;

/// First bytes of every WAL.
pub(crate) const MAGIC: [u8; 8] = *b"jkv.wal\n";
/// The WAL format this build writes and the newest it reads. Version 2
/// added range deletions (batch entry kind 3); version 1 logs replay as
/// they are.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The WAL's header (docs/wal-format.md, "Header"): jkv-format's shared
/// file-header codec, with the database id.
const SPEC: HeaderSpec = HeaderSpec {
    kind: "WAL",
    magic: MAGIC,
    version: FORMAT_VERSION,
    with_db_id: true,
};
/// Bytes of the header before the first record.
pub(crate) const HEADER_LEN: usize = SPEC.header_len();
const _: () = assert!(HEADER_LEN == 32);

/// The header of WAL `file` of database `db_id`.
pub(crate) fn encode_header(file: FileNumber, db_id: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(SPEC.encode(file, db_id).as_bytes());
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
/// checked) at the start of `data`, in the shared codec's order (length,
/// magic, version, checksum, file number, database id). A damaged header,
/// or one whose magic is wrong, with only zero bytes after it holds no
/// records: a creation that never completed.
pub(crate) fn check_header(data: &[u8], file: FileNumber, db_id: u64) -> HeaderCheck {
    let expected = Expected {
        file: Some(file),
        db_id: (db_id != 0).then_some(db_id),
    };
    match file_header::check(&SPEC, data, expected) {
        Ok(_) => HeaderCheck::Valid,
        Err(HeaderError::Short { .. }) => HeaderCheck::Torn,
        Err(HeaderError::Damaged { .. } | HeaderError::Refused { offset: 0, .. })
            if data[HEADER_LEN..].iter().all(|&b| b == 0) =>
        {
            HeaderCheck::Torn
        }
        Err(bad) => HeaderCheck::Bad(bad.offset(), bad.what()),
    }
}

/// The database a WAL header names, when the header is whole and intact
/// (offline repair picks the database identity from its files when the
/// manifest is gone).
pub(crate) fn header_owner(data: &[u8]) -> Option<u64> {
    file_header::check(&SPEC, data, Expected::default())
        .ok()
        .and_then(|h| h.db_id)
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
            HeaderCheck::Bad(0, _)
        ));
    }

    /// The header with another version number (and a matching checksum).
    fn with_version(version: u32) -> [u8; HEADER_LEN] {
        use jkv_format::file_header::{FILE_AT, VERSION_AT};
        let mut h = encode_header(FileNumber(7), 42);
        h[VERSION_AT..FILE_AT].copy_from_slice(&version.to_le_bytes());
        let crc_at = SPEC.crc_at();
        let crc = jkv_format::checksum(&h[..crc_at]);
        h[crc_at..].copy_from_slice(&crc.to_le_bytes());
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
                assert_eq!(at, jkv_format::file_header::VERSION_AT as u64);
                assert!(why.contains("newer"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
