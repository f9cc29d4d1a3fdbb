//! Flushing: the background thread that turns the oldest frozen memtable
//! into an L0 table, and the table writer recovery uses too.
//!
//! Order, for crash safety (docs/architecture.md, "Flush"): table written and
//! fsynced → directory fsynced → manifest edit (table added, WAL retired)
//! fsynced → new version published → WAL deleted → directory fsynced. A crash
//! before the manifest edit leaves an orphan table (removed at open) and the
//! WAL (replayed); after it, a WAL the manifest no longer names (removed).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use jkv_compaction::{table_meta, CompactionFilter, RangeDelFilter};
use jkv_format::key::{kind_byte_of, seq_of, user_key};
use jkv_format::names::{table_path, wal_path};
use jkv_format::{Error, FileNumber, InternalIterator, Result, ValueKind, ValuePointer};
use jkv_manifest::{TableMeta, VersionEdit};
use jkv_memtable::Memtable;
use jkv_sstable::{TableBuilder, TableOptions};

use crate::db::DbInner;
use crate::manifest_log::live_discards;
use crate::view::{Frozen, NextFlush};

impl DbInner {
    /// Options for the tables this database writes into `level`.
    pub(crate) fn table_options(&self, level: usize) -> TableOptions {
        TableOptions {
            block_size_bytes: self.options().block_size,
            bloom_bits_per_key: self.options().bloom_bits_per_key,
            db_id: self.db_id(),
            compression: self.options().compression_for_level(level),
            ..TableOptions::default()
        }
    }

    /// Writes `mem` into a new, synced table file and syncs the directory.
    /// Versions no snapshot can read, older versions and versions the
    /// memtable's range tombstones delete, are left out (their value-log
    /// bytes are added to `vlog_discards`). Returns the table's metadata for a level-0
    /// manifest entry, or `None` for an empty memtable. The manifest does
    /// not name the table yet.
    pub(crate) fn write_level0_table(
        &self,
        mem: &Arc<Memtable>,
        vlog_discards: &mut BTreeMap<FileNumber, u64>,
    ) -> Result<Option<TableMeta>> {
        if mem.is_empty() {
            return Ok(None);
        }
        let number = self.manifest().allocate_file_number();
        let path = table_path(self.dir(), number);
        let file = self.fs().create(&path)?;
        let mut builder = TableBuilder::new(file, self.table_options(0));
        // Snapshots taken from now on see at least every write in `mem`,
        // so the live ones are all that can need an older version.
        let mut filter = CompactionFilter::new(self.snapshots().all(), false);
        // Versions the memtable's own range tombstones delete for every
        // snapshot go too (the tombstones are written to the same table).
        let range_tombstones = mem.range_tombstones();
        let mut range_dels = RangeDelFilter::new(
            range_tombstones
                .iter()
                .flat_map(|set| set.tombstones().iter().cloned()),
        );
        let mut it = mem.iter();
        it.seek_to_first();
        while it.valid() {
            let key = it.key();
            let keep = filter.keep(key)
                && (range_dels.is_empty()
                    || !range_dels.deletes(user_key(key), seq_of(key), &filter));
            if keep {
                builder.add(it.key(), it.value())?;
            } else if kind_byte_of(it.key()) == ValueKind::ValuePointer as u8 {
                if let Some(pointer) = ValuePointer::decode(it.value()) {
                    *vlog_discards.entry(pointer.file).or_insert(0) += u64::from(pointer.len);
                }
            }
            it.next();
        }
        it.status()?;
        if let Some(set) = range_tombstones {
            for t in set.tombstones() {
                builder.add_range_tombstone(t.clone())?;
            }
        }
        let summary = builder.finish()?;
        self.fs().sync_dir(self.dir())?;
        self.counters()
            .flush_bytes
            .fetch_add(summary.file_size, Ordering::Relaxed);
        Ok(Some(table_meta(number, 0, summary)))
    }

    /// Flushes the oldest frozen memtable.
    fn flush_frozen(self: &Arc<Self>, frozen: &Arc<Frozen>) -> Result<()> {
        let mut discards = BTreeMap::new();
        let table = self.write_level0_table(&frozen.mem, &mut discards)?;
        let mut edit = VersionEdit {
            added_tables: table.into_iter().collect(),
            retired_wals: frozen.wal.iter().copied().collect(),
            last_seq: frozen.mem.seq_range().map(|(_, max)| max),
            next_file: Some(self.manifest().next_file()),
            ..VersionEdit::default()
        };
        if edit.added_tables.is_empty() && edit.retired_wals.is_empty() {
            edit.next_file = None;
        }
        {
            let mut manifest = self.manifest().lock();
            edit.vlog_discards = live_discards(manifest.state(), discards);
            if edit != VersionEdit::default() {
                manifest.apply(edit)?;
            }
            self.view().publish_flushed(manifest.state(), frozen);
        }
        self.counters().flushes.fetch_add(1, Ordering::Relaxed);
        self.schedule_compactions();
        self.schedule_vlog_gc();
        if let Some(wal) = frozen.wal {
            // The manifest no longer names the WAL. If removal fails, the
            // orphan is removed at the next open; the data is safe either way.
            if self.fs().remove(&wal_path(self.dir(), wal)).is_ok() {
                let _ = self.fs().sync_dir(self.dir());
            }
        }
        Ok(())
    }

    /// Body of the flush thread: flushes frozen memtables oldest first until
    /// shutdown. A failure is kept as the background error (the database
    /// turns read-only) and ends the thread. Between flushes it wakes every
    /// [`IDLE_TICK`]; a tick with no write and no read since the last one
    /// starts idle work ([`Self::on_idle`]): a database serving reads keeps
    /// its cores for them.
    pub(crate) fn run_flush_thread(self: Arc<Self>) {
        let mut seen = self.activity();
        loop {
            let next = self
                .view()
                .next_flush(|| self.workers().failed(), IDLE_TICK);
            match next {
                NextFlush::Exit => return,
                NextFlush::Flush(frozen) => {
                    if let Err(e) = self.flush_frozen(&frozen) {
                        let _: Error = self.poison(e);
                        return;
                    }
                }
                NextFlush::Idle => {
                    let now = self.activity();
                    if now == seen {
                        self.on_idle();
                    }
                    seen = now;
                }
            }
        }
    }

    /// Work for a database that has seen no write for a while: a memtable
    /// worth it is flushed (its WAL goes, and its versions can meet the
    /// ones they shadow), value-log collection runs (it otherwise waits for
    /// a file to roll or a flush or compaction to count garbage), and
    /// compaction runs with the idle rules of the garbage picker.
    fn on_idle(self: &Arc<Self>) {
        if self.workers().is_closed() {
            return;
        }
        self.mark_idle();
        if let Err(e) = self.freeze_when_idle() {
            if !matches!(e, Error::Closed | Error::ReadOnly(_)) {
                let _: Error = self.poison(e);
            }
            return;
        }
        self.schedule_vlog_gc();
        self.schedule_compactions();
    }

    /// Freezes the active memtable (the flush thread then writes it out)
    /// when it holds at least an eighth of `write_buffer_size`: smaller
    /// ones are left, so that a trickle of writes does not become a trickle
    /// of tiny tables. Never waits: does nothing while the frozen memtables
    /// are at their limit.
    pub(crate) fn freeze_when_idle(&self) -> Result<()> {
        if !self.options().auto_compactions || self.workers().is_closed() {
            return Ok(());
        }
        self.check_writable()?;
        let mut writer = self.writes().lock_writer();
        let worth = writer.mem().approximate_memory_bytes() >= self.options().write_buffer_size / 8;
        if writer.mem().is_empty() || !worth {
            return Ok(());
        }
        if self.view().frozen_count() >= self.options().max_immutable_memtables {
            return Ok(());
        }
        self.freeze(&mut writer)
    }
}

/// How often the flush thread looks for idleness.
pub(crate) const IDLE_TICK: std::time::Duration = std::time::Duration::from_millis(500);
