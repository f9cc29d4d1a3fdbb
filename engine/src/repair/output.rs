//! Writing repair's output: the k-way merge of every source into one sorted
//! run of new last-level tables (duplicates removed, values of value logs
//! that are not kept moved inline, the range tombstones split at the
//! tables' boundaries), each written under a temporary name, synced,
//! renamed, and the directory synced.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use jkv_format::key::{compare_internal_keys, parse_internal_key, InternalKey};
use jkv_format::names;
use jkv_format::range_del::successor;
use jkv_format::{FileNumber, RangeTombstone, Result, SeqNo, ValueKind, ValuePointer};
use jkv_manifest::TableMeta;
use jkv_sstable::TableBuilder;
use jkv_vlog::VlogReader;

use super::inputs::Source;
use super::{Repair, RepairReport};

/// A value log entries may point into.
pub(super) struct VlogSource {
    pub(super) reader: Arc<VlogReader>,
    /// Kept as it is (intact, in the directory, live): pointers into it
    /// stay; pointers into any other are resolved and inlined.
    pub(super) kept: bool,
}

impl Repair {
    /// Merges `sources` into new last-level tables, with `range_tombstones`
    /// split at their boundaries; returns their metadata.
    pub(super) fn write_tables(
        &mut self,
        mut sources: Vec<Source>,
        range_tombstones: Vec<RangeTombstone>,
        vlogs: &HashMap<FileNumber, VlogSource>,
        db_id: u64,
    ) -> Result<Vec<TableMeta>> {
        let range_tombstones = merge_range_tombstones(range_tombstones);
        self.report.range_tombstones_kept = range_tombstones.len() as u64;
        for t in &range_tombstones {
            self.max_seq = self.max_seq.max(t.seq);
        }
        let level = self.options.num_levels - 1;
        let target = self.options.compaction.target_table_bytes;
        let table_options = jkv_sstable::TableOptions {
            block_size_bytes: self.options.block_size,
            bloom_bits_per_key: self.options.bloom_bits_per_key,
            db_id,
            compression: self.options.compression_for_level(level),
            ..jkv_sstable::TableOptions::default()
        };
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some((key, value)) = s.next(&mut self.report) {
                heap.push(HeapEntry {
                    key,
                    value,
                    source: i,
                });
            }
        }
        let mut metas = Vec::new();
        let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut out: Option<(FileNumber, PathBuf, TableBuilder)> = None;
        // Tables split the range tombstones at their boundaries, as
        // compaction outputs do: table i takes the parts in [lower,
        // successor(its last user key)), so the tables never overlap and
        // together cover every tombstone.
        let mut lower: Vec<u8> = Vec::new();
        // User key of the last entry written.
        let mut written_user: Vec<u8> = Vec::new();
        // (user key, seq) of the last entry taken from the heap.
        let mut last_entry: Option<(Vec<u8>, SeqNo)> = None;
        let mut last_user: Option<Vec<u8>> = None;
        while let Some(HeapEntry { key, value, source }) = heap.pop() {
            if let Some(next) = sources[source].next(&mut self.report) {
                heap.push(HeapEntry {
                    key: next.0,
                    value: next.1,
                    source,
                });
            }
            let Some(parsed) = parse_internal_key(&key) else {
                continue; // checked by every source
            };
            let this = (parsed.user_key, parsed.seq);
            if last_entry.as_ref().map(|(k, s)| (k.as_slice(), *s)) == Some(this) {
                // The same write from two files (a WAL and its flush, or a
                // table and its compaction output).
                continue;
            }
            last_entry = Some((parsed.user_key.to_vec(), parsed.seq));
            let newest = last_user.as_deref() != Some(parsed.user_key);
            let (key, value) = match self.resolve(&key, value, vlogs, newest) {
                Some(kv) => kv,
                None => {
                    if newest {
                        last_user = Some(parsed.user_key.to_vec());
                    }
                    continue;
                }
            };
            self.max_seq = self.max_seq.max(parsed.seq);
            if newest {
                // Cut tables between user keys only: every version of a key
                // stays in one table.
                let full = out
                    .as_ref()
                    .is_some_and(|(_, _, b)| b.estimated_size_bytes() >= target);
                if full {
                    if let Some(mut done) = out.take() {
                        let upper = successor(&written_user);
                        add_range_tombstones(&mut done.2, &range_tombstones, &lower, Some(&upper))?;
                        lower = upper;
                        metas.push(self.finish_table(done, level, &mut renames)?);
                    }
                }
                last_user = Some(parsed.user_key.to_vec());
            }
            if out.is_none() {
                out = Some(self.new_table(&table_options)?);
            }
            if let Some((_, _, builder)) = out.as_mut() {
                builder.add(&key, &value)?;
            }
            written_user.clear();
            written_user.extend_from_slice(parsed.user_key);
            self.report.entries_kept += 1;
        }
        for s in &sources {
            if let Source::Table(t) = s {
                if t.damaged && !self.damaged.iter().any(|p| p == t.table.path()) {
                    let path = t.table.path().to_path_buf();
                    self.consumed.retain(|p| *p != path);
                    self.damaged.push(path);
                }
            }
        }
        if out.is_none() && !range_tombstones.is_empty() {
            // No entry survived, some range tombstones did: a table of
            // tombstones only.
            out = Some(self.new_table(&table_options)?);
        }
        if let Some(mut done) = out.take() {
            add_range_tombstones(&mut done.2, &range_tombstones, &lower, None)?;
            metas.push(self.finish_table(done, level, &mut renames)?);
        }
        // Synced tables get their real names; then one directory sync makes
        // both the files and the names durable before the manifest names them.
        for (from, to) in &renames {
            self.fs.rename(from, to)?;
        }
        self.fs.sync_dir(&self.dir)?;
        Ok(metas)
    }

    /// A builder for the next new table, writing `NNNNNN.sst.tmp`.
    fn new_table(
        &mut self,
        table_options: &jkv_sstable::TableOptions,
    ) -> Result<(FileNumber, PathBuf, TableBuilder)> {
        self.max_file += 1;
        let number = FileNumber(self.max_file);
        let path = self.dir.join(format!("{}.tmp", names::table_name(number)));
        let file = self.fs.create(&path)?;
        Ok((number, path, TableBuilder::new(file, table_options.clone())))
    }

    fn finish_table(
        &mut self,
        (number, path, builder): (FileNumber, PathBuf, TableBuilder),
        level: usize,
        renames: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<TableMeta> {
        let summary = builder.finish()?;
        self.report.tables_written += 1;
        self.report.table_bytes_written += summary.file_size;
        renames.push((path, names::table_path(&self.dir, number)));
        Ok(jkv_compaction::table_meta(number, level, summary))
    }

    /// The entry as it goes into the new tables: a pointer into a kept
    /// value log stays; one into any other value log becomes the value
    /// itself; `None` when the value cannot be read (reported when this is
    /// the key's newest version).
    fn resolve(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        vlogs: &HashMap<FileNumber, VlogSource>,
        newest: bool,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let parsed = parse_internal_key(key)?;
        if parsed.kind != ValueKind::ValuePointer {
            return Some((key.to_vec(), value));
        }
        let user_key = parsed.user_key;
        let lost = |r: &mut RepairReport, file: PathBuf, offset: u64, why: String| {
            if newest {
                r.drop_data(
                    &file,
                    Some(offset),
                    format!(
                        "value of key {:?} (seq {}) is lost: {why}",
                        String::from_utf8_lossy(user_key),
                        parsed.seq
                    ),
                );
            } else {
                r.shadowed_versions_dropped += 1;
            }
        };
        let Some(pointer) = ValuePointer::decode(&value) else {
            lost(
                &mut self.report,
                self.dir.clone(),
                0,
                format!("its value pointer is {} bytes long", value.len()),
            );
            return None;
        };
        let path = names::vlog_path(&self.dir, pointer.file);
        let Some(source) = vlogs.get(&pointer.file) else {
            lost(
                &mut self.report,
                path,
                pointer.offset,
                "its value-log file is gone".into(),
            );
            return None;
        };
        match source.reader.read(&pointer, user_key) {
            Ok(_) if source.kept => Some((key.to_vec(), value)),
            Ok(bytes) => {
                self.report.values_inlined += 1;
                let inline = InternalKey::new(user_key, parsed.seq, ValueKind::Value).into_vec();
                Some((inline, bytes.to_vec()))
            }
            Err(e) => {
                lost(&mut self.report, path, pointer.offset, e.to_string());
                None
            }
        }
    }
}

/// The range tombstones, one per delete where its parts meet: parts with
/// the same sequence number (one delete, split by compactions, or read from
/// a WAL and from a table) that overlap or touch become one; sorted by
/// (start, end, seq). Deletes exactly what the parts delete: a tombstone
/// hides the versions below its sequence number in its range, so the union
/// of ranges with one sequence number hides the same versions.
fn merge_range_tombstones(mut tombstones: Vec<RangeTombstone>) -> Vec<RangeTombstone> {
    tombstones.sort_by(|a, b| (a.seq, &a.start, &a.end).cmp(&(b.seq, &b.start, &b.end)));
    let mut out: Vec<RangeTombstone> = Vec::new();
    for t in tombstones {
        match out.last_mut() {
            Some(last) if last.seq == t.seq && t.start <= last.end => {
                if t.end > last.end {
                    last.end = t.end;
                }
            }
            _ => out.push(t),
        }
    }
    out.sort();
    out
}

/// Adds the parts of `tombstones` inside `[lower, upper)` to `builder`.
fn add_range_tombstones(
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

/// An entry in the merge heap: smallest internal key on top, then the
/// lower source index.
struct HeapEntry {
    key: Vec<u8>,
    value: Vec<u8>,
    source: usize,
}

impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(&other.key, &self.key).then(other.source.cmp(&self.source))
    }
}

impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for HeapEntry {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(start: &str, end: &str, seq: u64) -> RangeTombstone {
        RangeTombstone {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seq: SeqNo(seq),
        }
    }

    #[test]
    fn parts_of_one_delete_are_merged_and_others_kept() {
        let got = merge_range_tombstones(vec![
            // One delete split by a compaction at "f\0", read from two
            // tables and (whole) from a WAL.
            rt("f\0", "k", 7),
            rt("a", "f\0", 7),
            rt("a", "k", 7),
            // Another delete over the same keys, and one of the same
            // sequence number that neither overlaps nor touches.
            rt("b", "c", 9),
            rt("m", "p", 7),
            rt("b", "c", 9),
        ]);
        assert_eq!(got, vec![rt("a", "k", 7), rt("b", "c", 9), rt("m", "p", 7)]);
        assert!(merge_range_tombstones(Vec::new()).is_empty());
    }
}
