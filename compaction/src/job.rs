//! Running one merge task: stream the inputs through the merge and the
//! filter into new tables, cut at the target size on user-key boundaries.
//!
//! Every output is synced by its builder before this returns; the caller
//! syncs the directory and then records the result in the manifest.

use std::collections::BTreeMap;
use std::sync::Arc;

use jkv_format::key::{append_internal_key, kind_byte_of, seq_of, user_key};
use jkv_format::range_del::successor;
use jkv_format::{
    Error, FileNumber, InternalIterator, RangeTombstone, Result, SeqNo, ValueKind, ValuePointer,
    WritableFile,
};
use jkv_manifest::TableMeta;
use jkv_sstable::{Table, TableBuilder, TableOptions, TableSummary};

use crate::merge::{CompactionFilter, MergingIterator, RangeDelFilter};
use crate::picker::CompactionTask;

/// What a job produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobOutput {
    /// The new tables, at the task's output level, in key order.
    pub tables: Vec<TableMeta>,
    /// Bytes of the input tables.
    pub bytes_read: u64,
    /// Bytes of the output tables.
    pub bytes_written: u64,
    /// Versions and tombstones the filter dropped, entries range tombstones
    /// deleted, and the entries of tables deleted unread.
    pub entries_dropped: u64,
    /// Input tables a range tombstone deleted whole, dropped without
    /// reading them.
    pub tables_deleted_unread: u64,
    /// Range tombstones dropped at the bottom.
    pub range_deletions_dropped: u64,
    /// Value-log bytes that dropped value pointers referred to, by value-log
    /// file number: garbage a value-log collection can reclaim.
    pub vlog_discards: BTreeMap<FileNumber, u64>,
}

/// Merges `inputs` (the opened tables of `task.inputs`, same order) into
/// new tables from `new_table`, keeping what `snapshots` may still read.
/// `cancelled` is polled between entries; when it says so the job stops
/// with an error and its outputs are left for the caller to remove.
///
/// When no deeper level holds the task's range (`drop_tombstones`), every
/// kept version that all snapshots see is written with sequence number 0
/// (see [`zero_seq`]): it is the only version of its key those snapshots
/// can read and nothing older is left to order it against, so its number
/// carries no information, and eight bytes of zeros per entry compress
/// better than eight bytes of counter.
pub fn run_job(
    task: &CompactionTask,
    inputs: &[Arc<Table>],
    snapshots: Vec<SeqNo>,
    table_options: &TableOptions,
    target_table_bytes: u64,
    new_table: &mut dyn FnMut() -> Result<(FileNumber, Box<dyn WritableFile>)>,
    cancelled: &dyn Fn() -> bool,
) -> Result<JobOutput> {
    let mut filter = CompactionFilter::new(snapshots, task.drop_tombstones);
    let mut range_dels = RangeDelFilter::new(
        inputs
            .iter()
            .filter_map(|t| t.range_tombstones())
            .flat_map(|set| set.tombstones().iter().cloned()),
    );
    let mut output = JobOutput {
        bytes_read: task.input_bytes(),
        ..JobOutput::default()
    };
    let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
    for table in inputs {
        let p = table.properties();
        // A table without tombstones of its own that one tombstone deletes
        // whole (newer than all its entries, no snapshot in between) is
        // dropped unread; the value-log bytes its pointers refer to (a
        // property) become garbage.
        // Only version 2 tables name the value-log bytes they point to.
        if !range_dels.is_empty()
            && table.footer().version >= 2
            && table.range_tombstones().is_none()
            && p.entry_count > 0
            && range_dels.deletes_table(
                user_key(&p.smallest),
                user_key(&p.largest),
                p.min_seq,
                p.max_seq,
                &filter,
            )
        {
            for &(file, bytes) in &p.vlog_pointer_bytes {
                *output.vlog_discards.entry(FileNumber(file)).or_insert(0) += bytes;
            }
            output.tables_deleted_unread += 1;
            output.entries_dropped += p.entry_count;
            output.bytes_read -= table.file_size().min(output.bytes_read);
            continue;
        }
        children.push(Box::new(table.iter_verifying()));
    }
    let mut merge = MergingIterator::new(children, false);
    merge.seek_to_start();
    let surviving_range_dels = range_dels.survivors(task.drop_tombstones, &filter);
    // Outputs split the tombstones at their boundaries: output i takes the
    // part in [lower, successor(its last key)), so outputs never overlap
    // and together cover every tombstone.
    let mut lower: Vec<u8> = Vec::new();
    let mut current: Option<(FileNumber, TableBuilder)> = None;
    let mut last_user_key: Vec<u8> = Vec::new();
    let mut zeroed_key: Vec<u8> = Vec::new();
    let zero_seqs = task.drop_tombstones && task.output_level > 0;
    let mut entries = 0u64;
    while merge.valid() {
        if entries.is_multiple_of(1024) && cancelled() {
            // The database is closing: the task is abandoned, its outputs
            // are removed by the caller.
            return Err(Error::Closed);
        }
        entries += 1;
        let key = merge.key();
        let keep = filter.keep(key)
            && (range_dels.is_empty() || !range_dels.deletes(user_key(key), seq_of(key), &filter));
        if !keep {
            if kind_byte_of(key) == ValueKind::ValuePointer as u8 {
                if let Some(pointer) = ValuePointer::decode(merge.value()) {
                    *output.vlog_discards.entry(pointer.file).or_insert(0) +=
                        u64::from(pointer.len);
                }
            }
            merge.advance();
            continue;
        }
        let full = current
            .as_ref()
            .is_some_and(|(_, b)| b.estimated_size_bytes() >= target_table_bytes);
        if full && user_key(key) != last_user_key.as_slice() {
            if let Some((number, mut builder)) = current.take() {
                let upper = successor(&last_user_key);
                add_range_dels(&mut builder, &surviving_range_dels, &lower, Some(&upper))?;
                lower = upper;
                output
                    .tables
                    .push(finish(number, builder, task.output_level)?);
            }
        }
        if current.is_none() {
            let (number, file) = new_table()?;
            current = Some((number, TableBuilder::new(file, table_options.clone())));
        }
        if let Some((_, builder)) = current.as_mut() {
            let key = if zero_seqs && zero_seq(key, &filter, &mut zeroed_key) {
                zeroed_key.as_slice()
            } else {
                key
            };
            builder.add(key, merge.value())?;
        }
        last_user_key.clear();
        last_user_key.extend_from_slice(user_key(key));
        merge.advance();
    }
    merge.status()?;
    if current.is_none() && !surviving_range_dels.is_empty() {
        // Every entry went, some tombstones stay: a table of tombstones.
        let (number, file) = new_table()?;
        current = Some((number, TableBuilder::new(file, table_options.clone())));
    }
    if let Some((number, mut builder)) = current.take() {
        add_range_dels(&mut builder, &surviving_range_dels, &lower, None)?;
        output
            .tables
            .push(finish(number, builder, task.output_level)?);
    }
    output.entries_dropped += filter.dropped + range_dels.dropped;
    output.range_deletions_dropped =
        (range_dels.len() - surviving_range_dels.len().min(range_dels.len())) as u64;
    output.bytes_written = output.tables.iter().map(|t| t.size_bytes).sum();
    Ok(output)
}

/// Writes `key` with sequence number 0 into `out` when the version is one
/// every snapshot sees (the lowest stripe) and returns whether it did.
/// Only for a kept version of a job with nothing deeper (the caller's
/// check): it is then the newest version of its key in the lowest stripe
/// and no version of the key is left below it, so reads at any snapshot
/// find it as before. Range tombstones agree too: one that covers the key
/// and is newer than the version is newer than 0; one older than the
/// version is in the lowest stripe and was dropped by this job (older
/// tombstones sit in this job's inputs or deeper, never above it). Tombstones
/// are not zeroed: those in the lowest stripe are dropped here anyway.
/// RocksDB does the same at its bottommost level.
fn zero_seq(key: &[u8], filter: &CompactionFilter, out: &mut Vec<u8>) -> bool {
    let seq = seq_of(key);
    let kind = kind_byte_of(key);
    if seq == SeqNo::ZERO || kind == ValueKind::Deletion as u8 || filter.stripe(seq) != 0 {
        return false;
    }
    out.clear();
    append_internal_key(out, user_key(key), SeqNo::ZERO, kind);
    true
}

/// Adds the parts of `tombstones` inside `[lower, upper)` to `builder`.
fn add_range_dels(
    builder: &mut TableBuilder,
    tombstones: &[RangeTombstone],
    lower: &[u8],
    upper: Option<&[u8]>,
) -> Result<()> {
    for t in tombstones {
        if let Some(part) = t.clipped(lower, upper) {
            builder.add_range_tombstone(part)?;
        }
    }
    Ok(())
}

fn finish(number: FileNumber, builder: TableBuilder, level: usize) -> Result<TableMeta> {
    Ok(table_meta(number, level, builder.finish()?))
}

/// The manifest entry of a finished table `number` at `level`.
pub fn table_meta(number: FileNumber, level: usize, summary: TableSummary) -> TableMeta {
    TableMeta {
        id: number,
        level: level as u32,
        size_bytes: summary.file_size,
        entries: summary.entry_count,
        smallest: summary.smallest,
        largest: summary.largest,
        min_seq: summary.min_seq,
        max_seq: summary.max_seq,
        range_deletions: summary.range_deletions,
        deletions: summary.deletion_count,
        older_versions: summary.older_version_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picker::{TaskKind, TaskReason};
    use jkv_format::key::parse_internal_key;
    use jkv_format::{FileSystem, InternalKey, StdFs};
    use jkv_sstable::TableOptions;

    /// Writes `entries` (already in internal-key order) as table `number`
    /// of `level` in `dir`.
    fn table(
        dir: &std::path::Path,
        number: u64,
        level: u32,
        entries: &[(&str, u64, ValueKind)],
    ) -> (TableMeta, Arc<Table>) {
        let path = jkv_format::names::table_path(dir, FileNumber(number));
        let mut builder = TableBuilder::new(StdFs.create(&path).unwrap(), TableOptions::default());
        for (k, seq, kind) in entries {
            let key = InternalKey::new(k.as_bytes(), SeqNo(*seq), *kind);
            builder.add(key.as_bytes(), k.as_bytes()).unwrap();
        }
        let meta = table_meta(
            FileNumber(number),
            level as usize,
            builder.finish().unwrap(),
        );
        (
            meta,
            Table::open(&StdFs, &path, FileNumber(number)).unwrap(),
        )
    }

    /// Runs a merge of an L1 and an L2 table into L2 and returns the
    /// outputs' entries as (key, seq, kind).
    fn merge_into_l2(snapshots: &[u64], drop_tombstones: bool) -> Vec<(String, u64, ValueKind)> {
        use ValueKind::{Deletion as D, Value as V};
        let dir = tempfile::tempdir().unwrap();
        let upper = table(
            dir.path(),
            1,
            1,
            &[("a", 20, V), ("b", 21, D), ("c", 22, V)],
        );
        let lower = table(dir.path(), 2, 2, &[("a", 5, V), ("b", 6, V), ("d", 7, V)]);
        let task = CompactionTask {
            inputs: vec![upper.0, lower.0],
            output_level: 2,
            drop_tombstones,
            kind: TaskKind::Merge,
            score: 0.0,
            reason: TaskReason::Manual,
        };
        let mut next = 10;
        let mut new_table = || {
            next += 1;
            let path = jkv_format::names::table_path(dir.path(), FileNumber(next));
            Ok((FileNumber(next), StdFs.create(&path)?))
        };
        let out = run_job(
            &task,
            &[upper.1, lower.1],
            snapshots.iter().map(|&s| SeqNo(s)).collect(),
            &TableOptions::default(),
            u64::MAX,
            &mut new_table,
            &|| false,
        )
        .unwrap();
        let mut got = Vec::new();
        for meta in &out.tables {
            let path = jkv_format::names::table_path(dir.path(), meta.id);
            let t = Table::open(&StdFs, &path, meta.id).unwrap();
            let mut it = t.iter_verifying();
            it.seek_to_first();
            while it.valid() {
                let p = parse_internal_key(it.key()).unwrap();
                let k = String::from_utf8(p.user_key.to_vec()).unwrap();
                assert_eq!(it.value(), k.as_bytes(), "values travel with their keys");
                got.push((k, p.seq.0, p.kind));
                it.next();
            }
            it.status().unwrap();
            assert_eq!(meta.max_seq, got.iter().map(|e| SeqNo(e.1)).max().unwrap());
        }
        got
    }

    #[test]
    fn at_the_bottom_versions_every_snapshot_sees_get_sequence_number_zero() {
        use ValueKind::Value as V;
        let got = merge_into_l2(&[], true);
        assert_eq!(
            got,
            vec![("a".into(), 0, V), ("c".into(), 0, V), ("d".into(), 0, V)]
        );
    }

    #[test]
    fn versions_newer_than_the_oldest_snapshot_keep_their_numbers() {
        use ValueKind::{Deletion as D, Value as V};
        // A snapshot at 10 reads a@5, b@6 and d@7; the newer versions are
        // above it and keep their numbers, the tombstone included.
        let got = merge_into_l2(&[10], true);
        assert_eq!(
            got,
            vec![
                ("a".into(), 20, V),
                ("a".into(), 0, V),
                ("b".into(), 21, D),
                ("b".into(), 0, V),
                ("c".into(), 22, V),
                ("d".into(), 0, V),
            ]
        );
    }

    #[test]
    fn with_a_deeper_level_holding_the_range_numbers_stay() {
        use ValueKind::{Deletion as D, Value as V};
        let got = merge_into_l2(&[], false);
        assert_eq!(
            got,
            vec![
                ("a".into(), 20, V),
                ("b".into(), 21, D),
                ("c".into(), 22, V),
                ("d".into(), 7, V),
            ]
        );
    }
}
