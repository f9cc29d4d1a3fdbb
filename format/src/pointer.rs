//! Value pointers: where a value stored in the value log lives. The memtable,
//! WAL and tables hold the encoded pointer as the entry's value, under the
//! internal-key kind `ValuePointer` (docs/vlog-format.md, "Value pointer").
//!
//! ```text
//! file u64 LE | offset u64 LE | len u32 LE      (20 bytes)
//! ```

use crate::coding::{get_u32_le, get_u64_le};
use crate::ids::FileNumber;

/// Layout: docs/vlog-format.md, "Value pointer".
const FILE_AT: usize = 0;
const OFFSET_AT: usize = FILE_AT + 8;
const LEN_AT: usize = OFFSET_AT + 8;
/// Encoded size of a pointer.
pub const POINTER_LEN: usize = LEN_AT + 4;
const _: () = assert!(POINTER_LEN == 20);

/// A value's place in the value log: the entry at `offset` of file `file`,
/// `len` bytes long (header, key and value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValuePointer {
    /// The `NNNNNN.vlog` file.
    pub file: FileNumber,
    /// Byte offset of the entry in the file.
    pub offset: u64,
    /// Length of the whole entry in bytes.
    pub len: u32,
}

impl ValuePointer {
    /// The 20-byte encoding.
    pub fn encode(&self) -> [u8; POINTER_LEN] {
        let mut out = [0u8; POINTER_LEN];
        out[FILE_AT..OFFSET_AT].copy_from_slice(&self.file.0.to_le_bytes());
        out[OFFSET_AT..LEN_AT].copy_from_slice(&self.offset.to_le_bytes());
        out[LEN_AT..POINTER_LEN].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes a pointer; `None` unless `bytes` is exactly 20 bytes.
    pub fn decode(bytes: &[u8]) -> Option<ValuePointer> {
        if bytes.len() != POINTER_LEN {
            return None;
        }
        Some(ValuePointer {
            file: FileNumber(get_u64_le(bytes, FILE_AT)?),
            offset: get_u64_le(bytes, OFFSET_AT)?,
            len: get_u32_le(bytes, LEN_AT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_length() {
        let p = ValuePointer {
            file: FileNumber(7),
            offset: 1 << 40,
            len: 4096,
        };
        assert_eq!(ValuePointer::decode(&p.encode()), Some(p));
        assert_eq!(ValuePointer::decode(&p.encode()[..19]), None);
        assert_eq!(ValuePointer::decode(&[0u8; 21]), None);
    }
}
