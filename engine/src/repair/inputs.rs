//! Reading repair's inputs: WALs record by record (resuming after a damaged
//! record; range deletions apart from point entries), tables block by block
//! ([`SalvagedTable`]), and the highest sequence number of an orphan, which
//! tells whether the manifest saw it.

use std::cmp::Ordering;
use std::path::Path;

use jkv_format::key::{compare_internal_keys, parse_internal_key, user_key, InternalKey};
use jkv_format::record::{ReadStop, RecordReader};
use jkv_format::{FileNumber, FileSystem, RangeTombstone, SeqNo, ValueKind};
use jkv_sstable::dump::escape_bytes;
use jkv_sstable::SalvagedTable;

use super::report::problem_of;
use super::{Repair, RepairReport};
use crate::batch::DecodedBatch;
use crate::check::Problem;
use crate::wal::{check_header, HeaderCheck, HEADER_LEN, RECORD_BATCH};

/// What the WALs' intact records hold.
#[derive(Default)]
pub(super) struct WalContents {
    /// Point entries (values, pointers, deletions): (internal key, value).
    pub(super) entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Range deletions, with the sequence number of their batch entry.
    pub(super) range_tombstones: Vec<RangeTombstone>,
}

impl Repair {
    /// Appends every entry of the WAL's intact records to `out`, skipping
    /// and reporting damaged ones.
    pub(super) fn read_wal(
        &mut self,
        path: &Path,
        number: FileNumber,
        db_id: u64,
        out: &mut WalContents,
    ) {
        let data = match self.fs.map(path) {
            Ok(d) => d,
            Err(e) => {
                self.report.drop_error(path, &e);
                self.damaged.push(path.to_path_buf());
                return;
            }
        };
        match check_header(&data, number, db_id) {
            HeaderCheck::Valid => {}
            HeaderCheck::Torn => {
                self.consumed.push(path.to_path_buf());
                return;
            }
            HeaderCheck::Bad(offset, what) => {
                self.report
                    .drop_data(path, Some(offset), format!("{what}; the WAL is not read"));
                self.damaged.push(path.to_path_buf());
                return;
            }
        }
        let base = HEADER_LEN as u64;
        let mut reader = RecordReader::new(&data[HEADER_LEN..]);
        let mut damaged = false;
        while let Some(item) = reader.next() {
            match item {
                Ok(record) => {
                    let at = base + record.offset;
                    if record.kind != RECORD_BATCH {
                        self.report.drop_data(
                            path,
                            Some(at),
                            format!("unknown record kind {}", record.kind),
                        );
                        damaged = true;
                        continue;
                    }
                    let batch = match DecodedBatch::parse(record.payload) {
                        Ok(b) => b,
                        Err(what) => {
                            self.report.drop_data(path, Some(at), what);
                            damaged = true;
                            continue;
                        }
                    };
                    let mut entries = Vec::new();
                    let mut range_tombstones = Vec::new();
                    let mut seq = batch.first_seq;
                    let mut bad = None;
                    for entry in batch.entries() {
                        match entry {
                            // A range deletion holds its start as key and
                            // its end as value; the decoder checked start < end.
                            Ok(e) if e.kind == ValueKind::RangeDeletion => {
                                range_tombstones.push(RangeTombstone {
                                    start: e.key.to_vec(),
                                    end: e.value.to_vec(),
                                    seq,
                                });
                                seq = seq.plus(1);
                            }
                            Ok(e) => {
                                entries.push((
                                    InternalKey::new(e.key, seq, e.kind).into_vec(),
                                    e.value.to_vec(),
                                ));
                                seq = seq.plus(1);
                            }
                            Err(what) => {
                                bad = Some(what);
                                break;
                            }
                        }
                    }
                    if let Some(what) = bad {
                        self.report.drop_data(path, Some(at), what);
                        damaged = true;
                        continue;
                    }
                    let last = batch
                        .first_seq
                        .plus(u64::from(batch.count).saturating_sub(1));
                    self.max_seq = self.max_seq.max(last);
                    self.report.wal_batches += 1;
                    out.entries.extend(entries);
                    out.range_tombstones.extend(range_tombstones);
                }
                Err(ReadStop::TornTail { offset }) => {
                    let at = base + offset;
                    let zeros = data[at as usize..].iter().all(|&b| b == 0);
                    if !zeros {
                        self.report.torn.push(Problem {
                            file: path.to_path_buf(),
                            offset: Some(at),
                            what: format!(
                                "{} bytes of an unfinished write",
                                data.len() as u64 - at
                            ),
                        });
                    }
                }
                Err(ReadStop::Corrupt { offset, what }) => {
                    damaged = true;
                    let at = base + offset;
                    match reader.resume_after_damage() {
                        Some(next) => self.report.drop_data(
                            path,
                            Some(at),
                            format!(
                                "{what}; bytes {at}..{} skipped, reading resumes at the next intact record",
                                base + next
                            ),
                        ),
                        None => self.report.drop_data(
                            path,
                            Some(at),
                            format!("{what}; no intact record follows"),
                        ),
                    }
                }
            }
        }
        if damaged {
            self.damaged.push(path.to_path_buf());
        } else {
            self.consumed.push(path.to_path_buf());
        }
    }
}

/// Largest sequence number in the table's readable blocks and range
/// tombstones.
pub(super) fn table_max_seq(fs: &dyn FileSystem, path: &Path) -> SeqNo {
    let Ok(table) = SalvagedTable::open(fs, path) else {
        return SeqNo::ZERO;
    };
    let mut max = table
        .range_tombstones()
        .iter()
        .map(|t| t.seq)
        .max()
        .unwrap_or(SeqNo::ZERO);
    for h in table.data_blocks() {
        for (key, _) in table.block_entries(*h).unwrap_or_default() {
            if let Some(p) = parse_internal_key(&key) {
                max = max.max(p.seq);
            }
        }
    }
    max
}

/// Largest sequence number in the WAL's records up to the first damage.
pub(super) fn wal_max_seq(
    fs: &dyn FileSystem,
    path: &Path,
    number: FileNumber,
    db_id: u64,
) -> SeqNo {
    let Ok(data) = fs.map(path) else {
        return SeqNo::ZERO;
    };
    if check_header(&data, number, db_id) != HeaderCheck::Valid {
        return SeqNo::ZERO;
    }
    let mut reader = RecordReader::new(&data[HEADER_LEN..]);
    let mut max = SeqNo::ZERO;
    while let Some(Ok(record)) = reader.next() {
        if let Ok(batch) = DecodedBatch::parse(record.payload) {
            let last = batch
                .first_seq
                .plus(u64::from(batch.count).saturating_sub(1));
            max = max.max(last);
        }
    }
    max
}

/// Where merged entries come from.
pub(super) enum Source {
    /// A table, block by block.
    Table(Box<TableSource>),
    /// Entries already in internal-key order (the WALs').
    Sorted(std::vec::IntoIter<(Vec<u8>, Vec<u8>)>),
}

impl Source {
    pub(super) fn next(&mut self, report: &mut RepairReport) -> Option<(Vec<u8>, Vec<u8>)> {
        match self {
            Source::Table(t) => t.next(report),
            Source::Sorted(it) => it.next(),
        }
    }
}

/// The intact blocks of one table, in order.
pub(super) struct TableSource {
    pub(super) table: SalvagedTable,
    pub(super) next_block: usize,
    pub(super) buf: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    /// Last key handed out: a block that does not follow it is refused.
    pub(super) last_key: Option<Vec<u8>>,
    /// A block failed to read.
    pub(super) damaged: bool,
}

impl TableSource {
    pub(super) fn next(&mut self, report: &mut RepairReport) -> Option<(Vec<u8>, Vec<u8>)> {
        loop {
            if let Some(kv) = self.buf.next() {
                self.last_key = Some(kv.0.clone());
                return Some(kv);
            }
            let i = self.next_block;
            let handle = *self.table.data_blocks().get(i)?;
            self.next_block += 1;
            match self.table.block_entries(handle) {
                Ok(entries) => {
                    let follows = match (&self.last_key, entries.first()) {
                        (Some(prev), Some((first, _))) => {
                            compare_internal_keys(prev, first) == Ordering::Less
                        }
                        _ => true,
                    };
                    if follows {
                        self.buf = entries.into_iter();
                    } else {
                        report.drop_data(
                            self.table.path(),
                            Some(handle.offset),
                            "data block does not follow the previous one in key order; not read",
                        );
                        self.damaged = true;
                    }
                }
                Err(e) => {
                    let mut problem = problem_of(self.table.path(), &e);
                    if let Some((after, upto)) = self.table.block_key_bounds(i) {
                        let user = |k: &[u8]| escape_bytes(user_key(k), 64);
                        problem.what = match after {
                            Some(a) => format!(
                                "{}; the block held keys after {} up to {}",
                                problem.what,
                                user(a),
                                user(upto)
                            ),
                            None => format!(
                                "{}; the block held keys up to {}",
                                problem.what,
                                user(upto)
                            ),
                        };
                    }
                    report.dropped.push(problem);
                    self.damaged = true;
                }
            }
        }
    }
}
