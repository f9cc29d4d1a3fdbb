//! Internal keys: `user_key ++ trailer`, where the 8-byte trailer is
//! `(sequence << 8) | kind` as a little-endian u64 (docs/sst-format.md,
//! "Internal key").
//!
//! Order: user keys ascending (bytewise), then trailer descending, so the
//! newest version of a key comes first and a seek to `(key, snapshot)` lands
//! on the newest version the snapshot may see.

use std::cmp::Ordering;

use crate::ids::SeqNo;

/// Bytes in the trailer after the user key.
pub const TRAILER_LEN: usize = 8;

/// Largest user key accepted by the engine (64 KiB - 1): keys live in
/// blocks whose entry headers and index entries must stay small.
pub const USER_KEY_LEN_MAX: usize = u16::MAX as usize;

/// What an internal key's entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A tombstone: the key is deleted as of this sequence number.
    Deletion = 0,
    /// The value bytes are stored inline.
    Value = 1,
    /// The value is in the value log; the entry holds a pointer to it.
    ValuePointer = 2,
    /// A range tombstone: every key from this entry's key (included) to its
    /// value (excluded) is deleted as of this sequence number. Only in write
    /// batches and in a table's range-tombstone block, never among a
    /// table's or memtable's point entries (see [`crate::range_del`]).
    RangeDeletion = 3,
}

impl ValueKind {
    /// Kind used in seek keys: the largest trailer byte, so the seek key sorts
    /// before every real entry with the same user key and sequence.
    pub const SEEK: u8 = 0xff;

    /// Decodes a kind byte; `None` for unknown kinds.
    #[inline]
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Deletion),
            1 => Some(ValueKind::Value),
            2 => Some(ValueKind::ValuePointer),
            3 => Some(ValueKind::RangeDeletion),
            _ => None,
        }
    }
}

/// Packs a sequence number and kind byte into a trailer value.
#[inline]
pub fn pack_trailer(seq: SeqNo, kind: u8) -> u64 {
    debug_assert!(seq <= SeqNo::MAX);
    (seq.0 << 8) | kind as u64
}

/// Appends the internal key for (`user_key`, `seq`, `kind`) to `buf`.
#[inline]
pub fn append_internal_key(buf: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: u8) {
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

/// The user-key part of an internal key. Keys shorter than a trailer (only
/// possible with corrupt input that escaped validation) yield themselves.
#[inline]
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// The trailer of an internal key, 0 if the key is too short.
#[inline]
pub fn trailer(ikey: &[u8]) -> u64 {
    if ikey.len() < TRAILER_LEN {
        return 0;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&ikey[ikey.len() - TRAILER_LEN..]);
    u64::from_le_bytes(t)
}

/// Sequence number of an internal key.
#[inline]
pub fn seq_of(ikey: &[u8]) -> SeqNo {
    SeqNo(trailer(ikey) >> 8)
}

/// Kind byte of an internal key.
#[inline]
pub fn kind_byte_of(ikey: &[u8]) -> u8 {
    trailer(ikey) as u8
}

/// Total order on internal keys: user key ascending, trailer descending.
#[inline]
pub fn compare_internal_keys(a: &[u8], b: &[u8]) -> Ordering {
    match user_key(a).cmp(user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        other => other,
    }
}

/// A parsed, borrowed internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The user's key bytes.
    pub user_key: &'a [u8],
    /// Sequence number of the write.
    pub seq: SeqNo,
    /// What the entry holds.
    pub kind: ValueKind,
}

/// Parses an internal key; `None` if it is shorter than a trailer or its kind
/// byte is unknown.
#[inline]
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    if ikey.len() < TRAILER_LEN {
        return None;
    }
    let t = trailer(ikey);
    Some(ParsedKey {
        user_key: user_key(ikey),
        seq: SeqNo(t >> 8),
        kind: ValueKind::from_u8(t as u8)?,
    })
}

/// An owned internal key.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct InternalKey(Vec<u8>);

impl InternalKey {
    /// The internal key for an entry.
    pub fn new(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Self {
        let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
        append_internal_key(&mut v, user_key, seq, kind as u8);
        InternalKey(v)
    }

    /// The key to seek to for the newest version of `user_key` visible at
    /// `snapshot`: sorts before every entry of `user_key` with a sequence
    /// number at or below `snapshot`, and after every newer one.
    pub fn seek(user_key: &[u8], snapshot: SeqNo) -> Self {
        let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
        append_internal_key(&mut v, user_key, snapshot, ValueKind::SEEK);
        InternalKey(v)
    }

    /// Wraps already-encoded internal key bytes.
    pub fn from_encoded(bytes: Vec<u8>) -> Self {
        InternalKey(bytes)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The user-key part.
    pub fn user_key(&self) -> &[u8] {
        user_key(&self.0)
    }

    /// The encoded bytes, consumed.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match parse_internal_key(&self.0) {
            Some(p) => write!(
                f,
                "{}@{}:{:?}",
                String::from_utf8_lossy(p.user_key),
                p.seq,
                p.kind
            ),
            None => write!(f, "raw{:?}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ik(k: &[u8], s: u64, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(k, SeqNo(s), kind).into_vec()
    }

    #[test]
    fn newer_versions_sort_first() {
        let a = ik(b"k", 10, ValueKind::Value);
        let b = ik(b"k", 9, ValueKind::Value);
        assert_eq!(compare_internal_keys(&a, &b), Ordering::Less);
        let seek = InternalKey::seek(b"k", SeqNo(9)).into_vec();
        assert_eq!(compare_internal_keys(&seek, &b), Ordering::Less);
        assert_eq!(compare_internal_keys(&a, &seek), Ordering::Less);
    }

    #[test]
    fn user_key_prefix_orders_before_longer_key() {
        // "a" < "ab" whatever the trailers are, which a plain memcmp of the
        // encoded keys would get wrong.
        let a = ik(b"a", 1, ValueKind::Value);
        let ab = ik(b"ab", u64::from(u32::MAX), ValueKind::Value);
        assert_eq!(compare_internal_keys(&a, &ab), Ordering::Less);
    }

    #[test]
    fn short_keys_do_not_panic() {
        assert_eq!(parse_internal_key(b"abc"), None);
        assert_eq!(user_key(b"abc"), b"");
        assert_eq!(trailer(b"abc"), 0);
        let _ = compare_internal_keys(b"", b"abc");
    }

    proptest! {
        #[test]
        fn round_trip(k in proptest::collection::vec(any::<u8>(), 0..40), s in 0u64..(1<<56), kind in 0u8..3) {
            let kind = ValueKind::from_u8(kind).unwrap();
            let enc = ik(&k, s, kind);
            let p = parse_internal_key(&enc).unwrap();
            prop_assert_eq!(p.user_key, &k[..]);
            prop_assert_eq!(p.seq, SeqNo(s));
            prop_assert_eq!(p.kind, kind);
        }

        #[test]
        fn order_matches_tuple_order(a in proptest::collection::vec(any::<u8>(), 0..6), sa in 0u64..1000,
                                     b in proptest::collection::vec(any::<u8>(), 0..6), sb in 0u64..1000) {
            let ea = ik(&a, sa, ValueKind::Value);
            let eb = ik(&b, sb, ValueKind::Value);
            let expected = a.cmp(&b).then(sb.cmp(&sa));
            prop_assert_eq!(compare_internal_keys(&ea, &eb), expected);
        }
    }
}
