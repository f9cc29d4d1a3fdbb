//! Replaying a WAL at open.
//!
//! A torn last record (an append that never completed) ends the log and is
//! cut off the file; damage followed by valid records is `Corruption` naming
//! the file and offset — never silently skipped.

use std::path::Path;

use jkv_format::record::{ReadStop, Record, RecordReader};
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo};

use super::{check_header, HeaderCheck, HEADER_LEN, RECORD_BATCH};
use crate::batch::DecodedBatch;

/// What replaying one log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplaySummary {
    /// Write batches replayed.
    pub batches: u64,
    /// Highest sequence number replayed.
    pub max_seq: SeqNo,
    /// Where a torn tail started, if the log had one (it was cut there).
    pub torn_at: Option<u64>,
}

/// What `replay`'s callback decides for a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Applied; go on.
    Continue,
    /// Not applied: the log ends before this batch (it is cut there, like a
    /// torn tail).
    StopHere,
}

/// Calls `apply` with every batch of WAL `number` of database `db_id`, at
/// `path`, in order.
pub(crate) fn replay(
    fs: &dyn FileSystem,
    path: &Path,
    number: FileNumber,
    db_id: u64,
    mut apply: impl FnMut(&DecodedBatch<'_>) -> Result<Replay>,
) -> Result<ReplaySummary> {
    let data = fs.map(path)?;
    match check_header(&data, number, db_id) {
        HeaderCheck::Valid => {}
        HeaderCheck::Torn => return Ok(ReplaySummary::default()),
        HeaderCheck::Bad(offset, what) => return Err(Error::corruption(path, offset, what)),
    }
    let base = HEADER_LEN as u64;
    let mut reader = RecordReader::new(&data[HEADER_LEN..]);
    let mut summary = ReplaySummary::default();
    let mut last_seq: Option<SeqNo> = None;
    while let Some(item) = reader.next() {
        match item {
            Ok(record) => {
                let record = Record {
                    offset: base + record.offset,
                    ..record
                };
                if record.kind != RECORD_BATCH {
                    return Err(Error::corruption(
                        path,
                        record.offset,
                        format!("unknown WAL record kind {}", record.kind),
                    ));
                }
                let batch = DecodedBatch::parse(record.payload)
                    .map_err(|what| Error::corruption(path, record.offset, what))?;
                if let Some(prev) = last_seq {
                    if batch.first_seq <= prev {
                        return Err(Error::corruption(
                            path,
                            record.offset,
                            format!("batch sequence {} does not follow {prev}", batch.first_seq),
                        ));
                    }
                }
                for entry in batch.entries() {
                    entry.map_err(|what| Error::corruption(path, record.offset, what))?;
                }
                if apply(&batch)? == Replay::StopHere {
                    summary.torn_at = Some(record.offset);
                    break;
                }
                let end = batch
                    .first_seq
                    .plus(u64::from(batch.count).saturating_sub(1));
                last_seq = Some(end);
                summary.max_seq = summary.max_seq.max(end);
                summary.batches += 1;
            }
            Err(ReadStop::TornTail { offset }) => {
                summary.torn_at = Some(base + offset);
            }
            Err(ReadStop::Corrupt { offset, what }) => {
                return Err(Error::corruption(path, base + offset, what));
            }
        }
    }
    drop(data);
    if let Some(offset) = summary.torn_at {
        fs.truncate(path, offset)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::WriteBatch;
    use crate::wal::writer::WalWriter;
    use jkv_format::StdFs;

    fn write_log(dir: &Path, batches: &[(u64, &[(&str, &str)])]) -> std::path::PathBuf {
        let mut w = WalWriter::create(&StdFs, dir, FileNumber(1), 9).unwrap();
        for (seq, puts) in batches {
            let mut b = WriteBatch::new();
            for (k, v) in *puts {
                b.put(k, v);
            }
            w.append_batches(std::iter::once(b.seal(SeqNo(*seq))))
                .unwrap();
        }
        w.sync().unwrap();
        dir.join("000001.wal")
    }

    fn keys(fs: &dyn FileSystem, path: &Path) -> Result<Vec<String>> {
        let mut out = Vec::new();
        replay(fs, path, FileNumber(1), 9, |b| {
            for e in b.entries() {
                let e = e.expect("validated");
                out.push(String::from_utf8_lossy(e.key).into_owned());
            }
            Ok(Replay::Continue)
        })?;
        Ok(out)
    }

    #[test]
    fn replays_in_order_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(
            dir.path(),
            &[(1, &[("a", "1"), ("b", "2")]), (3, &[("c", "3")])],
        );
        let full = std::fs::read(&path).unwrap();
        assert_eq!(keys(&StdFs, &path).unwrap(), ["a", "b", "c"]);
        // The writer pre-allocates zeros after the records: they read as
        // the end of the log.
        let end = full.iter().rposition(|&b| b != 0).unwrap() + 1;
        assert!(end < full.len(), "the log was pre-allocated");
        std::fs::write(&path, &full[..end - 2]).unwrap();
        assert_eq!(keys(&StdFs, &path).unwrap(), ["a", "b"]);
        // The tail was cut, so the log is clean now.
        let cut = std::fs::read(&path).unwrap();
        assert!(cut.len() < end - 2);
        assert_eq!(keys(&StdFs, &path).unwrap(), ["a", "b"]);
    }

    #[test]
    fn large_and_small_records_of_one_group_replay_in_order() {
        // A group mixing payloads framed in the buffer and payloads appended
        // from the batch's own bytes (at least DIRECT_PAYLOAD_BYTES), across
        // the pre-allocation step and the page-sized direct writes.
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::create(&StdFs, dir.path(), FileNumber(1), 9).unwrap();
        let big = "v".repeat(crate::wal::writer::DIRECT_PAYLOAD_BYTES * 3 + 17);
        let mut seq = 1;
        let mut want = Vec::new();
        for round in 0..200 {
            let mut batches = Vec::new();
            for j in 0..3 {
                let mut b = WriteBatch::new();
                let key = format!("k{round:03}-{j}");
                b.put(
                    &key,
                    if (round + j) % 2 == 0 {
                        big.as_str()
                    } else {
                        "s"
                    },
                );
                b.seal(SeqNo(seq));
                seq += 1;
                want.push(key);
                batches.push(b);
            }
            let written = w
                .append_batches(batches.iter().map(|b| b.encoded()))
                .unwrap();
            let framed: usize = batches.iter().map(|b| b.encoded_len() + 13).sum();
            assert_eq!(written, framed as u64);
        }
        w.sync().unwrap();
        let path = dir.path().join("000001.wal");
        assert_eq!(keys(&StdFs, &path).unwrap(), want);
    }

    #[test]
    fn middle_damage_is_corruption_with_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_log(
            dir.path(),
            &[(1, &[("a", "1")]), (2, &[("b", "2")]), (3, &[("c", "3")])],
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_LEN + 20] ^= 0x40; // inside the first record's payload
        std::fs::write(&path, &bytes).unwrap();
        match keys(&StdFs, &path) {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, path);
                assert_eq!(offset, HEADER_LEN as u64);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
