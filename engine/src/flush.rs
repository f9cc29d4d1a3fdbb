//! Flushing: the background thread that turns the oldest frozen memtable
//! into an L0 table, and the table writer recovery uses too.
//!
//! Order, for crash safety (docs/architecture.md, "Flush"): table written and
//! fsynced → directory fsynced → manifest edit (table added, WAL retired)
//! fsynced → new version published → WAL deleted → directory fsynced. A crash
//! before the manifest edit leaves an orphan table (removed at open) and the
//! WAL (replayed); after it, a WAL the manifest no longer names (removed).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use jkv_format::names::{table_path, wal_path};
use jkv_format::{Error, InternalIterator, Result};
use jkv_manifest::{TableMeta, VersionEdit};
use jkv_memtable::Memtable;
use jkv_sstable::{TableBuilder, TableOptions};

use crate::db::DbInner;
use crate::version::{Frozen, Version};

impl DbInner {
    /// Options for every table this database writes.
    pub(crate) fn table_options(&self) -> TableOptions {
        TableOptions {
            block_size_bytes: self.options.block_size,
            bloom_bits_per_key: self.options.bloom_bits_per_key,
            db_id: self.db_id,
            ..TableOptions::default()
        }
    }

    /// Writes `mem` into a new, synced table file and syncs the directory.
    /// Returns its metadata for a level-0 manifest entry, or `None` for an
    /// empty memtable. The manifest does not name the table yet.
    pub(crate) fn write_level0_table(&self, mem: &Arc<Memtable>) -> Result<Option<TableMeta>> {
        if mem.is_empty() {
            return Ok(None);
        }
        let number = self.allocate_file_number();
        let path = table_path(&self.dir, number);
        let file = self.fs.create(&path)?;
        let mut builder = TableBuilder::new(file, self.table_options());
        let mut it = mem.iter();
        it.seek_to_first();
        while it.valid() {
            builder.add(it.key(), it.value())?;
            it.next();
        }
        it.status()?;
        let summary = builder.finish()?;
        self.fs.sync_dir(&self.dir)?;
        self.counters
            .flush_bytes
            .fetch_add(summary.file_size, Ordering::Relaxed);
        Ok(Some(TableMeta {
            id: number.0,
            level: 0,
            size_bytes: summary.file_size,
            entries: summary.entry_count,
            smallest: summary.smallest,
            largest: summary.largest,
            min_seq: summary.min_seq.0,
            max_seq: summary.max_seq.0,
        }))
    }

    /// Flushes the oldest frozen memtable.
    fn flush_frozen(self: &Arc<Self>, frozen: &Arc<Frozen>) -> Result<()> {
        let table = self.write_level0_table(&frozen.mem)?;
        let mut edit = VersionEdit {
            added_tables: table.into_iter().collect(),
            retired_wals: frozen.wal.iter().map(|n| n.0).collect(),
            last_seq: frozen.mem.seq_range().map(|(_, max)| max.0),
            next_file: Some(self.next_file.load(Ordering::SeqCst)),
            ..VersionEdit::default()
        };
        if edit.added_tables.is_empty() && edit.retired_wals.is_empty() {
            edit.next_file = None;
        }
        {
            let mut manifest = self.manifest.lock();
            if edit != VersionEdit::default() {
                manifest.apply(edit)?;
            }
            let mut state = self.state.lock();
            let version = Arc::new(Version::from_state(
                manifest.state(),
                &state.version,
                &self.deleter,
            ));
            let position = state.imms.iter().position(|f| Arc::ptr_eq(f, frozen));
            let position = position.expect("only the flush thread removes frozen memtables");
            state.imms.remove(position);
            state.version = version;
            let mem = self.super_version().mem.clone();
            self.install(&state, mem);
        }
        self.state_changed.notify_all();
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.schedule_compactions();
        if let Some(wal) = frozen.wal {
            // The manifest no longer names the WAL. If removal fails, the
            // orphan is removed at the next open; the data is safe either way.
            if self.fs.remove(&wal_path(&self.dir, wal)).is_ok() {
                let _ = self.fs.sync_dir(&self.dir);
            }
        }
        Ok(())
    }

    /// Body of the flush thread: flushes frozen memtables oldest first until
    /// shutdown. A failure is kept as the background error (the database
    /// turns read-only) and ends the thread.
    pub(crate) fn run_flush_thread(self: Arc<Self>) {
        loop {
            let job = {
                let mut state = self.state.lock();
                loop {
                    if self.bg_error.lock().is_some() {
                        return;
                    }
                    if let Some(oldest) = state.imms.last() {
                        break oldest.clone();
                    }
                    if state.shutting_down {
                        return;
                    }
                    self.state_changed.wait(&mut state);
                }
            };
            if let Err(e) = self.flush_frozen(&job) {
                let _: Error = self.poison(e);
                return;
            }
        }
    }
}
