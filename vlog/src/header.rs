//! The file header every `NNNNNN.vlog` starts with (docs/vlog-format.md,
//! "File header"): magic, format version, the file's own number and a
//! checksum. It lets an old reader refuse a newer file, and recognises a
//! file copied or renamed from elsewhere (its number differs from its name).
//!
//! The codec is jkv-format's [`file_header`](jkv_format::file_header),
//! shared with the WAL; this module names the value log's kind of header.

use jkv_format::file_header::{self, Expected, HeaderSpec};
use jkv_format::FileNumber;

pub use jkv_format::file_header::HeaderError;

/// Identifies a value log: the first 8 bytes of every `.vlog` file.
pub const MAGIC: [u8; 8] = *b"jkv.vlog";

/// Newest format version this build writes and reads. Version 2 may hold
/// compressed values (flag in `value_len`); version 1 files still read.
pub const FORMAT_VERSION: u32 = 2;

/// The value log's header: no database id.
pub const SPEC: HeaderSpec = HeaderSpec {
    kind: "value log",
    magic: MAGIC,
    version: FORMAT_VERSION,
    with_db_id: false,
};

/// Size of the file header in bytes; the first entry starts here.
pub const HEADER_LEN: usize = SPEC.header_len();
const _: () = assert!(HEADER_LEN == 24);

/// The header of file `number`, checksum included.
pub fn encode(number: FileNumber) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(SPEC.encode(number, 0).as_bytes());
    out
}

/// Checks the header at the start of `data` for file `expected`, in the
/// shared codec's order: length, magic, version, checksum, file number.
pub fn check(data: &[u8], expected: FileNumber) -> Result<(), HeaderError> {
    let expected = Expected {
        file: Some(expected),
        db_id: None,
    };
    file_header::check(&SPEC, data, expected).map(|_| ())
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
    fn short_file_other_number_and_damage() {
        let h = encode(FileNumber(8));
        assert!(matches!(
            check(&h[..HEADER_LEN - 1], FileNumber(8)),
            Err(HeaderError::Short { len: 23, .. })
        ));
        let err = check(&h, FileNumber(9)).unwrap_err();
        assert!(matches!(err, HeaderError::Refused { offset: 12, .. }));
        assert!(err.what().contains("000008"), "{}", err.what());
        let mut damaged = h;
        damaged[12] ^= 1;
        assert!(matches!(
            check(&damaged, FileNumber(8)),
            Err(HeaderError::Damaged { .. })
        ));
    }
}
