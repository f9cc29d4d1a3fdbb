//! Running one merge task: stream the inputs through the merge and the
//! filter into new tables, cut at the target size on user-key boundaries.
//!
//! Every output is synced by its builder before this returns; the caller
//! syncs the directory and then records the result in the manifest.

use std::collections::BTreeMap;
use std::sync::Arc;

use jkv_format::key::{kind_byte_of, seq_of, user_key};
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
