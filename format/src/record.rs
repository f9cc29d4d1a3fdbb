//! Checksummed record framing for append-only logs (docs/wal-format.md).
//!
//! ```text
//! +--------------+---------+--------+---------------+-----------------+
//! | header_crc   | len     | kind   | payload_crc   | payload         |
//! | u32 LE       | u32 LE  | u8     | u32 LE        | len bytes       |
//! +--------------+---------+--------+---------------+-----------------+
//!  header_crc  = crc32(len bytes ++ kind byte)
//!  payload_crc = crc32(payload)
//! ```
//!
//! The header has its own checksum so that a damaged length is recognised as
//! damage, not trusted to skip over (or claim) the rest of the file.
//!
//! Reading tells a torn tail from corruption: damage after which no valid
//! record follows is a torn tail (an append that never completed, so never
//! acknowledged as durable) and ends the log; damage followed by a valid
//! record is corruption. A tail of zero bytes (a file extended but not
//! written) is a torn tail too.

use crate::coding::get_u32_le;
use crate::{checksum, checksum_parts};

/// Layout: docs/wal-format.md, "Record".
const HEADER_CRC_AT: usize = 0;
const LEN_AT: usize = HEADER_CRC_AT + 4;
const KIND_AT: usize = LEN_AT + 4;
const PAYLOAD_CRC_AT: usize = KIND_AT + 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = PAYLOAD_CRC_AT + 4;
const _: () = assert!(HEADER_LEN == 13);

/// Largest payload a record may carry (1 GiB): longer lengths are damage.
pub const PAYLOAD_LEN_MAX: usize = 1 << 30;

/// Appends one framed record to `buf`.
///
/// # Panics
/// If `payload` is longer than [`PAYLOAD_LEN_MAX`]; callers bound their
/// batches well below that.
pub fn append_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    buf.extend_from_slice(&record_header(kind, payload));
    buf.extend_from_slice(payload);
}

/// The header of the record framing `payload`: the bytes [`append_record`]
/// puts before it. Writers of large payloads append this and then the
/// payload from where it lies, instead of copying it into a frame buffer.
///
/// # Panics
/// If `payload` is longer than [`PAYLOAD_LEN_MAX`].
pub fn record_header(kind: u8, payload: &[u8]) -> [u8; HEADER_LEN] {
    assert!(
        payload.len() <= PAYLOAD_LEN_MAX,
        "record payload must be at most PAYLOAD_LEN_MAX bytes"
    );
    let len = (payload.len() as u32).to_le_bytes();
    let header_crc = checksum_parts(&[&len, &[kind]]);
    let mut out = [0u8; HEADER_LEN];
    out[HEADER_CRC_AT..LEN_AT].copy_from_slice(&header_crc.to_le_bytes());
    out[LEN_AT..KIND_AT].copy_from_slice(&len);
    out[KIND_AT] = kind;
    out[PAYLOAD_CRC_AT..HEADER_LEN].copy_from_slice(&checksum(payload).to_le_bytes());
    out
}

/// One record read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record's header in the log.
    pub offset: u64,
    /// The kind byte the writer gave.
    pub kind: u8,
    /// The payload, checksum verified.
    pub payload: &'a [u8],
}

/// Why reading stopped before the end of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadStop {
    /// The log ends with an incomplete or damaged record and nothing valid
    /// after it: the valid log is `..offset`.
    TornTail {
        /// Where the torn record starts.
        offset: u64,
    },
    /// A damaged record with valid records after it.
    Corrupt {
        /// Where the damaged record starts.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
}

/// Iterates the records of a log held in memory.
#[derive(Clone, Debug)]
pub struct RecordReader<'a> {
    data: &'a [u8],
    pos: usize,
    stopped: bool,
}

/// Checks the record starting at `at`: `Ok(end)` when it is whole and
/// valid, else what is wrong.
fn check_record(data: &[u8], at: usize) -> Result<(usize, u8), Damage> {
    let rest = &data[at..];
    if rest.len() < HEADER_LEN {
        return Err(Damage::Short);
    }
    let header_crc = get_u32_le(rest, HEADER_CRC_AT).ok_or(Damage::Short)?;
    if checksum(&rest[LEN_AT..PAYLOAD_CRC_AT]) != header_crc {
        return Err(Damage::Header);
    }
    let len = get_u32_le(rest, LEN_AT).ok_or(Damage::Short)? as usize;
    if len > PAYLOAD_LEN_MAX {
        return Err(Damage::Header);
    }
    let kind = rest[KIND_AT];
    let payload_crc = get_u32_le(rest, PAYLOAD_CRC_AT).ok_or(Damage::Short)?;
    let end = HEADER_LEN + len;
    if rest.len() < end {
        return Err(Damage::Short);
    }
    if checksum(&rest[HEADER_LEN..end]) != payload_crc {
        return Err(Damage::Payload);
    }
    Ok((at + end, kind))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    Short,
    Header,
    Payload,
}

impl<'a> RecordReader<'a> {
    /// A reader over a whole log.
    pub fn new(data: &'a [u8]) -> Self {
        RecordReader {
            data,
            pos: 0,
            stopped: false,
        }
    }

    /// Offset just past the last record returned: the valid length of the
    /// log once iteration ended with `None` or a torn tail.
    pub fn valid_len(&self) -> u64 {
        self.pos as u64
    }

    /// Whether any whole, valid record starts after `from`.
    fn valid_record_after(&self, from: usize) -> bool {
        (from + 1..self.data.len().saturating_sub(HEADER_LEN - 1))
            .any(|at| check_record(self.data, at).is_ok())
    }

    /// After [`ReadStop::Corrupt`], moves to the next whole, valid record
    /// after the damaged one and lets reading go on from there (offline
    /// salvage, `jkv repair`). Returns that record's offset, or `None` when
    /// no valid record follows (the reader then stays stopped).
    pub fn resume_after_damage(&mut self) -> Option<u64> {
        let from = self.pos;
        let at = (from + 1..self.data.len().saturating_sub(HEADER_LEN - 1))
            .find(|&at| check_record(self.data, at).is_ok())?;
        self.pos = at;
        self.stopped = false;
        Some(at as u64)
    }

    /// The next record, `None` at the clean end, or why reading stopped.
    /// After an `Err` the reader yields `None`.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Record<'a>, ReadStop>> {
        if self.stopped || self.pos >= self.data.len() {
            return None;
        }
        let at = self.pos;
        match check_record(self.data, at) {
            Ok((end, kind)) => {
                self.pos = end;
                Some(Ok(Record {
                    offset: at as u64,
                    kind,
                    payload: &self.data[at + HEADER_LEN..end],
                }))
            }
            Err(damage) => {
                self.stopped = true;
                let tail_is_zero = self.data[at..].iter().all(|&b| b == 0);
                if tail_is_zero || !self.valid_record_after(at) {
                    return Some(Err(ReadStop::TornTail { offset: at as u64 }));
                }
                let what = match damage {
                    Damage::Short => "record runs past a later valid record",
                    Damage::Header => "record header checksum mismatch",
                    Damage::Payload => "record payload checksum mismatch",
                };
                Some(Err(ReadStop::Corrupt {
                    offset: at as u64,
                    what,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log(payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            append_record(&mut buf, 1, p);
        }
        buf
    }

    fn read_all(data: &[u8]) -> (Vec<Vec<u8>>, Option<ReadStop>) {
        let mut r = RecordReader::new(data);
        let mut out = Vec::new();
        while let Some(item) = r.next() {
            match item {
                Ok(rec) => out.push(rec.payload.to_vec()),
                Err(stop) => return (out, Some(stop)),
            }
        }
        (out, None)
    }

    #[test]
    fn header_then_payload_reads_as_one_record() {
        let payload = vec![7u8; 10_000];
        let mut split = record_header(2, &payload).to_vec();
        split.extend_from_slice(&payload);
        let mut whole = Vec::new();
        append_record(&mut whole, 2, &payload);
        assert_eq!(split, whole);
        let (recs, stop) = read_all(&split);
        assert_eq!((recs, stop), (vec![payload], None));
    }

    #[test]
    fn round_trip_including_empty_payload() {
        let data = log(&[b"a", b"", b"hello"]);
        let (recs, stop) = read_all(&data);
        assert_eq!(recs, vec![b"a".to_vec(), vec![], b"hello".to_vec()]);
        assert_eq!(stop, None);
    }

    #[test]
    fn truncated_last_record_is_torn_tail() {
        let data = log(&[b"first", b"second record"]);
        for cut in (HEADER_LEN + 6)..data.len() {
            let (recs, stop) = read_all(&data[..cut]);
            assert_eq!(recs, vec![b"first".to_vec()], "cut {cut}");
            assert_eq!(
                stop,
                Some(ReadStop::TornTail {
                    offset: (HEADER_LEN + 5) as u64
                })
            );
        }
    }

    #[test]
    fn zero_tail_is_torn() {
        let mut data = log(&[b"x"]);
        data.extend_from_slice(&[0u8; 4096]);
        let (recs, stop) = read_all(&data);
        assert_eq!(recs.len(), 1);
        assert!(matches!(stop, Some(ReadStop::TornTail { .. })));
    }

    #[test]
    fn damage_followed_by_valid_record_is_corruption() {
        let data = log(&[b"one", b"two", b"three"]);
        let second = HEADER_LEN + 3;
        for i in second..second + HEADER_LEN + 3 {
            let mut d = data.clone();
            d[i] ^= 0x10;
            let (recs, stop) = read_all(&d);
            assert_eq!(recs, vec![b"one".to_vec()], "byte {i}");
            assert!(
                matches!(stop, Some(ReadStop::Corrupt { offset, .. }) if offset == second as u64),
                "byte {i}: {stop:?}"
            );
        }
    }

    #[test]
    fn salvage_resumes_after_a_damaged_record() {
        let data = log(&[b"one", b"two", b"three"]);
        let second = HEADER_LEN + 3;
        let mut d = data.clone();
        d[second + HEADER_LEN] ^= 0x01;
        let mut reader = RecordReader::new(&d);
        assert_eq!(reader.next().unwrap().unwrap().payload, b"one");
        assert!(matches!(
            reader.next(),
            Some(Err(ReadStop::Corrupt { offset, .. })) if offset == second as u64
        ));
        let third = (2 * HEADER_LEN + 6) as u64;
        assert_eq!(reader.resume_after_damage(), Some(third));
        let rec = reader.next().unwrap().unwrap();
        assert_eq!((rec.offset, rec.payload), (third, &b"three"[..]));
        assert!(reader.next().is_none());
        // Nothing valid after the damage: the reader stays stopped.
        let mut cut = data.clone();
        cut.truncate(second + 5);
        let mut reader = RecordReader::new(&cut);
        reader.next();
        assert!(reader.next().unwrap().is_err());
        assert_eq!(reader.resume_after_damage(), None);
        assert!(reader.next().is_none());
    }

    #[test]
    fn damaged_length_cannot_swallow_the_log() {
        let mut data = log(&[b"one", b"two", b"three"]);
        // Claim a huge length in the first record: the header checksum
        // refuses it, and the valid records after it make it corruption.
        data[LEN_AT + 3] = 0x7f;
        let (_, stop) = read_all(&data);
        assert!(matches!(stop, Some(ReadStop::Corrupt { offset: 0, .. })));
    }

    proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_all(&data);
        }

        #[test]
        fn any_single_flip_is_detected(flip in 0usize..60, bit in 0u8..8) {
            let data = log(&[b"alpha", b"beta", b"gamma"]);
            let mut d = data.clone();
            let i = flip % d.len();
            d[i] ^= 1 << bit;
            let (recs, stop) = read_all(&d);
            // Either an error is reported, or (never) all records are intact.
            prop_assert!(stop.is_some());
            prop_assert!(recs.len() < 3);
        }
    }
}
