//! `WriteBatch`: a set of puts and deletes applied atomically, in the exact
//! byte form it takes inside a WAL record (docs/wal-format.md, "Write batch"),
//! so the write path frames it without re-encoding.
//!
//! ```text
//! first_seq u64 LE | count u32 LE | entry*
//! entry = kind u8 | key_len varint | key | (value_len varint | value)  -- no value for deletions
//! (a range deletion, kind 3, holds its start as key and its end as value)
//! ```

use jkv_format::coding::{put_varint64, Cursor};
use jkv_format::key::USER_KEY_LEN_MAX;
use jkv_format::{Error, Result, SeqNo, ValueKind};

/// Layout: docs/wal-format.md, "Write batch".
const SEQ_AT: usize = 0;
const COUNT_AT: usize = SEQ_AT + 8;
pub(crate) const BATCH_HEADER_LEN: usize = COUNT_AT + 4;
const _: () = assert!(BATCH_HEADER_LEN == 12);

/// Largest value accepted (256 MiB): values are held in one memtable arena
/// block and framed in one WAL record.
pub const VALUE_LEN_MAX: usize = 256 << 20;

/// Puts and deletes that become visible together, or not at all.
///
/// Later operations on the same key win over earlier ones in the same batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: u32,
    /// Bytes of keys and values, for write-amplification figures.
    user_bytes: u64,
    /// Longest value put, to tell quickly whether any value goes to the
    /// value log.
    value_len_max: usize,
    /// First invalid argument met by `put`/`delete`; reported by `Db::write`.
    invalid: Option<String>,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0; BATCH_HEADER_LEN],
            count: 0,
            user_bytes: 0,
            value_len_max: 0,
            invalid: None,
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        if self.check(key, value.len()) {
            self.rep.push(ValueKind::Value as u8);
            put_varint64(&mut self.rep, key.len() as u64);
            self.rep.extend_from_slice(key);
            put_varint64(&mut self.rep, value.len() as u64);
            self.rep.extend_from_slice(value);
            self.count += 1;
            self.user_bytes += (key.len() + value.len()) as u64;
            self.value_len_max = self.value_len_max.max(value.len());
        }
        self
    }

    /// Adds an entry of any kind (value pointers included), unchecked: for
    /// batches the engine builds from validated ones.
    fn push_raw(&mut self, kind: ValueKind, key: &[u8], value: &[u8]) {
        self.rep.push(kind as u8);
        put_varint64(&mut self.rep, key.len() as u64);
        self.rep.extend_from_slice(key);
        if kind != ValueKind::Deletion {
            put_varint64(&mut self.rep, value.len() as u64);
            self.rep.extend_from_slice(value);
        }
        self.count += 1;
    }

    /// Longest value in the batch.
    pub(crate) fn value_len_max(&self) -> usize {
        self.value_len_max
    }

    /// Every value of at least `threshold` bytes, as `(key, value, seq)`
    /// slices of this batch in order, entry `i` getting sequence
    /// `first_seq + i`: what goes to the value log.
    pub(crate) fn large_values(
        &self,
        threshold: usize,
        first_seq: SeqNo,
    ) -> Vec<(&[u8], &[u8], SeqNo)> {
        self.entries()
            .enumerate()
            .map(|(i, e)| (i, e.expect("a batch built by WriteBatch decodes")))
            .filter(|(_, e)| is_large(e, threshold))
            .map(|(i, e)| (e.key, e.value, first_seq.plus(i as u64)))
            .collect()
    }

    /// The batch with each value of [`large_values`](Self::large_values)
    /// replaced by the next of `pointers`. User-byte figures stay those of
    /// the original batch. Errors if `pointers` runs out.
    pub(crate) fn with_pointers(
        &self,
        threshold: usize,
        mut pointers: impl Iterator<Item = [u8; jkv_format::pointer::POINTER_LEN]>,
    ) -> Result<WriteBatch> {
        let mut out = WriteBatch::new();
        for entry in self.entries() {
            let entry = entry.expect("a batch built by WriteBatch decodes");
            if is_large(&entry, threshold) {
                let pointer = pointers.next().ok_or_else(|| {
                    Error::InvalidArgument("fewer value pointers than large values".into())
                })?;
                out.push_raw(ValueKind::ValuePointer, entry.key, &pointer);
            } else {
                out.push_raw(entry.kind, entry.key, entry.value);
            }
        }
        out.user_bytes = self.user_bytes;
        Ok(out)
    }

    /// Deletes `key` (a no-op if it does not exist).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        if self.check(key, 0) {
            self.rep.push(ValueKind::Deletion as u8);
            put_varint64(&mut self.rep, key.len() as u64);
            self.rep.extend_from_slice(key);
            self.count += 1;
            self.user_bytes += key.len() as u64;
        }
        self
    }

    /// Deletes every key `k` with `range.start <= k < range.end` (a range
    /// tombstone: one operation, whatever the number of keys). An empty
    /// range is a no-op; `start > end` makes the batch invalid
    /// ([`Error::InvalidArgument`] from [`crate::Db::write`]).
    pub fn delete_range<K: AsRef<[u8]>>(&mut self, range: std::ops::Range<K>) -> &mut Self {
        let (start, end) = (range.start.as_ref(), range.end.as_ref());
        if start > end && self.invalid.is_none() {
            self.invalid = Some(format!(
                "range delete start {:?} is after its end {:?}",
                String::from_utf8_lossy(start),
                String::from_utf8_lossy(end)
            ));
        }
        if start < end && self.check(start, 0) && self.check(end, 0) {
            self.rep.push(ValueKind::RangeDeletion as u8);
            put_varint64(&mut self.rep, start.len() as u64);
            self.rep.extend_from_slice(start);
            put_varint64(&mut self.rep, end.len() as u64);
            self.rep.extend_from_slice(end);
            self.count += 1;
            self.user_bytes += (start.len() + end.len()) as u64;
        }
        self
    }

    fn check(&mut self, key: &[u8], value_len: usize) -> bool {
        if self.invalid.is_some() {
            return false;
        }
        if key.len() > USER_KEY_LEN_MAX {
            self.invalid = Some(format!(
                "key of {} bytes exceeds the maximum of {USER_KEY_LEN_MAX}",
                key.len()
            ));
        } else if value_len > VALUE_LEN_MAX {
            self.invalid = Some(format!(
                "value of {value_len} bytes exceeds the maximum of {VALUE_LEN_MAX}"
            ));
        } else if self.count == u32::MAX {
            self.invalid = Some("batch holds too many operations".to_string());
        }
        self.invalid.is_none()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every operation.
    pub fn clear(&mut self) {
        *self = WriteBatch::new();
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        self.rep.len()
    }

    /// The encoded batch (the WAL record payload once sealed).
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.rep
    }

    pub(crate) fn user_bytes(&self) -> u64 {
        self.user_bytes
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match &self.invalid {
            Some(why) => Err(Error::InvalidArgument(why.clone())),
            None => Ok(()),
        }
    }

    /// Stamps the batch with its first sequence number and count; the bytes
    /// are then the WAL record payload.
    pub(crate) fn seal(&mut self, first_seq: SeqNo) -> &[u8] {
        self.rep[SEQ_AT..COUNT_AT].copy_from_slice(&first_seq.0.to_le_bytes());
        self.rep[COUNT_AT..BATCH_HEADER_LEN].copy_from_slice(&self.count.to_le_bytes());
        &self.rep
    }

    /// The operations, with the sequence number each gets when the batch
    /// starts at `first_seq`.
    pub(crate) fn entries(&self) -> BatchEntries<'_> {
        BatchEntries {
            cursor: Cursor::new(&self.rep[BATCH_HEADER_LEN..]),
            left: self.count,
            done: false,
        }
    }
}

/// A put whose value goes to the value log at `threshold`.
fn is_large(entry: &BatchEntry<'_>, threshold: usize) -> bool {
    entry.kind == ValueKind::Value && entry.value.len() >= threshold
}

/// One decoded operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchEntry<'a> {
    pub kind: ValueKind,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Iterates a batch's operations in order.
pub(crate) struct BatchEntries<'a> {
    cursor: Cursor<'a>,
    left: u32,
    done: bool,
}

impl<'a> Iterator for BatchEntries<'a> {
    type Item = std::result::Result<BatchEntry<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            return (!self.cursor.is_empty()).then_some(Err("bytes after the last batch entry"));
        }
        self.left -= 1;
        match decode_entry(&mut self.cursor) {
            Some(entry) => Some(Ok(entry)),
            None => {
                self.done = true;
                Some(Err("truncated or malformed batch entry"))
            }
        }
    }
}

fn decode_entry<'a>(c: &mut Cursor<'a>) -> Option<BatchEntry<'a>> {
    let kind = ValueKind::from_u8(c.u8()?)?;
    let key = c.length_prefixed()?;
    if key.len() > USER_KEY_LEN_MAX {
        return None;
    }
    let value = match kind {
        ValueKind::Deletion => &[][..],
        ValueKind::Value | ValueKind::ValuePointer => c.length_prefixed()?,
        // The end key: a key, and after the start.
        ValueKind::RangeDeletion => {
            let end = c.length_prefixed()?;
            if end.len() > USER_KEY_LEN_MAX || end <= key {
                return None;
            }
            end
        }
    };
    Some(BatchEntry { kind, key, value })
}

/// A batch decoded from a WAL record payload.
pub(crate) struct DecodedBatch<'a> {
    pub first_seq: SeqNo,
    pub count: u32,
    pub body: &'a [u8],
}

impl<'a> DecodedBatch<'a> {
    /// Parses the header; `Err(what)` if the payload is malformed.
    pub fn parse(payload: &'a [u8]) -> std::result::Result<Self, &'static str> {
        let mut c = Cursor::new(payload);
        let first_seq = c.u64_le().ok_or("batch header truncated")?;
        let count = c.u32_le().ok_or("batch header truncated")?;
        if first_seq == 0 || SeqNo(first_seq).plus(u64::from(count)) > SeqNo::MAX {
            return Err("batch sequence number out of range");
        }
        Ok(DecodedBatch {
            first_seq: SeqNo(first_seq),
            count,
            body: &payload[BATCH_HEADER_LEN..],
        })
    }

    /// The operations; the i-th gets sequence `first_seq + i`.
    pub fn entries(&self) -> BatchEntries<'a> {
        BatchEntries {
            cursor: Cursor::new(self.body),
            left: self.count,
            done: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1").delete(b"k0").put(b"", b"");
        assert_eq!(b.len(), 3);
        let payload = b.seal(SeqNo(7)).to_vec();
        let d = DecodedBatch::parse(&payload).unwrap();
        assert_eq!(d.first_seq, SeqNo(7));
        let entries: Vec<_> = d.entries().map(|e| e.unwrap()).collect();
        assert_eq!(
            entries,
            vec![
                BatchEntry {
                    kind: ValueKind::Value,
                    key: b"k1",
                    value: b"v1"
                },
                BatchEntry {
                    kind: ValueKind::Deletion,
                    key: b"k0",
                    value: b""
                },
                BatchEntry {
                    kind: ValueKind::Value,
                    key: b"",
                    value: b""
                },
            ]
        );
    }

    #[test]
    fn range_deletes_encode_start_and_end() {
        let mut b = WriteBatch::new();
        b.put(b"a", b"1")
            .delete_range(b"b".as_slice()..b"d".as_slice());
        // Empty: nothing recorded.
        b.delete_range(b"x".as_slice()..b"x".as_slice());
        assert_eq!(b.len(), 2);
        let payload = b.seal(SeqNo(3)).to_vec();
        let d = DecodedBatch::parse(&payload).unwrap();
        let entries: Vec<_> = d.entries().map(|e| e.unwrap()).collect();
        assert_eq!(
            entries[1],
            BatchEntry {
                kind: ValueKind::RangeDeletion,
                key: b"b",
                value: b"d"
            }
        );
        b.validate().unwrap();
        // A logged range that ends at or before its start is malformed.
        let mut raw = WriteBatch::new();
        raw.push_raw(ValueKind::RangeDeletion, b"m", b"c");
        let payload = raw.seal(SeqNo(9)).to_vec();
        let d = DecodedBatch::parse(&payload).unwrap();
        assert!(d.entries().any(|e| e.is_err()));
        let mut bad = WriteBatch::new();
        bad.delete_range(b"z".as_slice()..b"a".as_slice());
        assert!(matches!(bad.validate(), Err(Error::InvalidArgument(_))));
        assert!(bad.is_empty());
    }

    #[test]
    fn large_values_then_pointers_in_their_place() {
        let big = vec![5u8; 100];
        let mut b = WriteBatch::new();
        b.put(b"a", b"small")
            .put(b"b", &big)
            .delete(b"c")
            .put(b"d", &big);
        let large: Vec<_> = b
            .large_values(50, SeqNo(10))
            .into_iter()
            .map(|(k, v, s)| (k.to_vec(), v.len(), s))
            .collect();
        assert_eq!(
            large,
            vec![
                (b"b".to_vec(), 100, SeqNo(11)),
                (b"d".to_vec(), 100, SeqNo(13))
            ]
        );
        let p = |c: u8| [c; jkv_format::pointer::POINTER_LEN];
        let out = b.with_pointers(50, [p(1), p(2)].into_iter()).unwrap();
        let kinds: Vec<_> = out
            .entries()
            .map(|e| e.unwrap())
            .map(|e| (e.kind, e.key.to_vec(), e.value.to_vec()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ValueKind::Value, b"a".to_vec(), b"small".to_vec()),
                (ValueKind::ValuePointer, b"b".to_vec(), p(1).to_vec()),
                (ValueKind::Deletion, b"c".to_vec(), vec![]),
                (ValueKind::ValuePointer, b"d".to_vec(), p(2).to_vec()),
            ]
        );
        assert_eq!(out.user_bytes(), b.user_bytes());
        // Too few pointers is an error, not a batch missing a value.
        assert!(b.with_pointers(50, [p(1)].into_iter()).is_err());
    }

    #[test]
    fn oversized_key_is_invalid_argument() {
        let mut b = WriteBatch::new();
        b.put(vec![0u8; USER_KEY_LEN_MAX + 1], b"v");
        assert!(matches!(b.validate(), Err(Error::InvalidArgument(_))));
        assert!(b.is_empty());
    }

    #[test]
    fn truncated_payload_is_an_error_not_a_panic() {
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        let payload = b.seal(SeqNo(1)).to_vec();
        for cut in 0..payload.len() {
            if let Ok(d) = DecodedBatch::parse(&payload[..cut]) {
                assert!(d.entries().any(|e| e.is_err()), "cut {cut}");
            }
        }
    }
}
