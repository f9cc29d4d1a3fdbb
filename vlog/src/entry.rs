//! One value-log entry (docs/vlog-format.md, "Entry"): its layout, its
//! encoding, and the checked decode that the reader, the iterator and
//! `verify` share.
//!
//! The decoder trusts nothing it reads: lengths are checked against the
//! limits and against the bytes actually there before anything is sliced or
//! allocated, so damaged or hostile bytes give a damage report, never a panic or
//! a huge allocation. Pure functions; no I/O, no state.

use std::fmt;
use std::ops::Range;

use jkv_format::coding::{get_u32_le, get_u64_le};
use jkv_format::{checksum, checksum_parts, SeqNo};

/// Layout: docs/vlog-format.md, "Entry".
const CRC_AT: usize = 0;
const SEQ_AT: usize = CRC_AT + 4;
const KEY_LEN_AT: usize = SEQ_AT + 8;
const VALUE_LEN_AT: usize = KEY_LEN_AT + 4;
/// Bytes before an entry's key: crc, seq, key_len, value_len.
pub const ENTRY_HEADER_LEN: usize = VALUE_LEN_AT + 4;
const _: () = assert!(ENTRY_HEADER_LEN == 20);

/// Longest key an entry may hold, in bytes (the engine's key limit).
pub const KEY_LEN_MAX: usize = 65_535;
/// Longest value an entry may hold, in bytes (256 MiB).
pub const VALUE_LEN_MAX: usize = 256 << 20;
/// Top bit of the stored `value_len` (format version 2): the value is
/// stored compressed (`codec.rs`); the other bits are the stored length.
pub const VALUE_COMPRESSED_FLAG: u32 = 1 << 31;
/// Longest entry, in bytes; it fits the `u32` length of a pointer.
pub const ENTRY_LEN_MAX: usize = ENTRY_HEADER_LEN + KEY_LEN_MAX + VALUE_LEN_MAX;
const _: () = assert!(ENTRY_LEN_MAX <= u32::MAX as usize);

/// Length in bytes of the entry for a key and a value of these lengths.
#[inline]
pub fn entry_len(key_len: usize, value_len: usize) -> usize {
    ENTRY_HEADER_LEN + key_len + value_len
}

/// The 20 bytes before `key` and `value` in their entry, checksum included;
/// `compressed` sets the flag saying `value` holds a compressed value's
/// stored bytes. The caller has checked the lengths against the limits.
pub(crate) fn encode_header(
    seq: SeqNo,
    key: &[u8],
    value: &[u8],
    compressed: bool,
) -> [u8; ENTRY_HEADER_LEN] {
    let mut out = [0u8; ENTRY_HEADER_LEN];
    out[SEQ_AT..KEY_LEN_AT].copy_from_slice(&seq.0.to_le_bytes());
    out[KEY_LEN_AT..VALUE_LEN_AT].copy_from_slice(&(key.len() as u32).to_le_bytes());
    let flag = if compressed { VALUE_COMPRESSED_FLAG } else { 0 };
    let value_len = value.len() as u32 | flag;
    out[VALUE_LEN_AT..ENTRY_HEADER_LEN].copy_from_slice(&value_len.to_le_bytes());
    let crc = checksum_parts(&[&out[SEQ_AT..], key, value]);
    out[CRC_AT..SEQ_AT].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A decoded entry: positions in the data it was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryView {
    /// The entry's sequence number.
    pub seq: SeqNo,
    /// Where the key is.
    pub key: Range<usize>,
    /// Where the value is (its stored bytes).
    pub value: Range<usize>,
    /// The stored bytes are a compressed value (decode with
    /// `codec::decompress_value`).
    pub compressed: bool,
    /// Length of the whole entry in bytes.
    pub len: usize,
}

/// Why the bytes at an offset are not a valid entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Fewer than [`ENTRY_HEADER_LEN`] bytes are left.
    ShortHeader { left: usize },
    /// `key_len` exceeds [`KEY_LEN_MAX`].
    KeyTooLong { key_len: u32 },
    /// `value_len` exceeds [`VALUE_LEN_MAX`].
    ValueTooLong { value_len: u32 },
    /// The entry, as its lengths describe it, ends past the available bytes.
    PastEnd { len: usize, left: usize },
    /// The checksum does not match the bytes.
    Checksum { stored: u32, computed: u32 },
    /// A sequence number above `SeqNo::MAX`, which no writer produces.
    SeqTooLarge { seq: u64 },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Damage::ShortHeader { left } => write!(
                f,
                "entry header needs {ENTRY_HEADER_LEN} bytes, only {left} left in the file"
            ),
            Damage::KeyTooLong { key_len } => {
                write!(f, "key length {key_len} exceeds the limit {KEY_LEN_MAX}")
            }
            Damage::ValueTooLong { value_len } => {
                write!(
                    f,
                    "value length {value_len} exceeds the limit {VALUE_LEN_MAX}"
                )
            }
            Damage::PastEnd { len, left } => write!(
                f,
                "entry of {len} bytes runs past the end of the data ({left} bytes left)"
            ),
            Damage::Checksum { stored, computed } => write!(
                f,
                "entry checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Damage::SeqTooLarge { seq } => {
                write!(f, "sequence number {seq} exceeds the largest possible")
            }
        }
    }
}

/// Decodes and verifies the entry starting at `at` in `data`, which must lie
/// wholly inside `data`.
pub(crate) fn decode_at(data: &[u8], at: usize) -> Result<EntryView, Damage> {
    let left = data.len().saturating_sub(at);
    if left < ENTRY_HEADER_LEN {
        return Err(Damage::ShortHeader { left });
    }
    let entry = &data[at..];
    let field = |pos: usize| get_u32_le(entry, pos).unwrap_or_default();
    let key_len = field(KEY_LEN_AT);
    if key_len as usize > KEY_LEN_MAX {
        return Err(Damage::KeyTooLong { key_len });
    }
    let value_field = field(VALUE_LEN_AT);
    let compressed = value_field & VALUE_COMPRESSED_FLAG != 0;
    let value_len = value_field & !VALUE_COMPRESSED_FLAG;
    if value_len as usize > VALUE_LEN_MAX {
        return Err(Damage::ValueTooLong { value_len });
    }
    let len = entry_len(key_len as usize, value_len as usize);
    if len > left {
        return Err(Damage::PastEnd { len, left });
    }
    let stored = field(CRC_AT);
    let computed = checksum(&entry[SEQ_AT..len]);
    if stored != computed {
        return Err(Damage::Checksum { stored, computed });
    }
    let seq = get_u64_le(entry, SEQ_AT).unwrap_or_default();
    if seq > SeqNo::MAX.0 {
        return Err(Damage::SeqTooLarge { seq });
    }
    let key_at = at + ENTRY_HEADER_LEN;
    let value_at = key_at + key_len as usize;
    Ok(EntryView {
        seq: SeqNo(seq),
        key: key_at..value_at,
        value: value_at..at + len,
        compressed,
        len,
    })
}

/// True when a valid entry starts anywhere in `data[from..]`. Decides
/// between a torn tail (nothing valid follows the damage) and corruption
/// (something does); see docs/vlog-format.md, "Reading, torn tails and
/// corruption". Candidates are rejected by their lengths before any
/// checksum is computed, and an all-zero rest is answered without a scan.
pub(crate) fn valid_entry_from(data: &[u8], from: usize) -> bool {
    let Some(rest) = data.get(from..) else {
        return false;
    };
    if rest.iter().all(|&b| b == 0) {
        // The checksum of an all-zero entry header is not zero, so zeros hold
        // no entry (checked in the tests below).
        return false;
    }
    let last = data.len().saturating_sub(ENTRY_HEADER_LEN);
    (from..=last).any(|at| decode_at(data, at).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(seq: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = encode_header(SeqNo(seq), key, value, false).to_vec();
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn round_trip_with_prefix() {
        let mut data = vec![9u8; 5];
        data.extend(encode(42, b"key", b"value"));
        let view = decode_at(&data, 5).unwrap();
        assert_eq!(view.seq, SeqNo(42));
        assert_eq!(&data[view.key.clone()], b"key");
        assert_eq!(&data[view.value.clone()], b"value");
        assert_eq!(view.len, entry_len(3, 5));
        assert_eq!(view.value.end, data.len());
    }

    #[test]
    fn empty_key_and_value() {
        let data = encode(1, b"", b"");
        let view = decode_at(&data, 0).unwrap();
        assert_eq!(view.len, ENTRY_HEADER_LEN);
        assert!(view.key.is_empty() && view.value.is_empty());
    }

    #[test]
    fn crc_covers_everything_after_it() {
        let data = encode(3, b"k", b"v");
        for i in CRC_AT..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x10;
            assert!(decode_at(&bad, 0).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn lengths_are_checked_before_use() {
        let mut data = encode(3, b"k", b"v");
        data[KEY_LEN_AT..VALUE_LEN_AT].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_at(&data, 0),
            Err(Damage::KeyTooLong { .. })
        ));
        let mut data = encode(3, b"k", b"v");
        data[VALUE_LEN_AT..ENTRY_HEADER_LEN].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_at(&data, 0),
            Err(Damage::ValueTooLong { .. })
        ));
        let data = encode(3, b"k", b"v");
        assert!(matches!(
            decode_at(&data[..data.len() - 1], 0),
            Err(Damage::PastEnd { .. })
        ));
        assert!(matches!(
            decode_at(&data, data.len()),
            Err(Damage::ShortHeader { left: 0 })
        ));
        assert!(matches!(
            decode_at(&data, usize::MAX),
            Err(Damage::ShortHeader { left: 0 })
        ));
    }

    #[test]
    fn zeros_hold_no_entry() {
        assert_ne!(checksum(&[0u8; ENTRY_HEADER_LEN - 4]), 0);
        assert!(decode_at(&[0u8; 64], 0).is_err());
        assert!(!valid_entry_from(&[0u8; 64], 0));
    }

    #[test]
    fn finds_a_valid_entry_after_garbage() {
        let mut data = vec![0xAB; 7];
        data.extend(encode(5, b"a", b"b"));
        assert!(valid_entry_from(&data, 0));
        assert!(valid_entry_from(&data, 7));
        assert!(!valid_entry_from(&data, 8));
        assert!(!valid_entry_from(&data, data.len() + 3));
    }
}
