//! redb 3 under test (cargo feature `redb`): a copy-on-write B-tree in one
//! file. A synced write commits at once with `Durability::Immediate`. Other
//! writes go into a shared open transaction committed with
//! `Durability::None` every [`BATCH`] writes and at the end of each
//! benchmark (one redb commit per write measures redb's commit cost, not its
//! B-tree); readers see them once committed. Reads open a read transaction
//! each.

use parking_lot::{Mutex, RwLock};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::Store;
use crate::error::{Error, Result};
use crate::flags::Flags;

const NAME: &str = "redb";
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

/// Unsynced writes per redb transaction.
pub const BATCH: usize = 1000;

/// An open redb file. The lock is shared by every operation and taken
/// exclusively only by `compact`, which needs `&mut Database`.
pub struct RedbStore {
    db: RwLock<Database>,
    /// The open batch of unsynced writes and its size; taken inside `db`.
    pending: Mutex<Option<(WriteTransaction, usize)>>,
}

fn err<E: std::fmt::Display>(op: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::engine(NAME, op, e)
}

impl RedbStore {
    /// Opens (or creates) `flags.db/data.redb`.
    pub fn open(flags: &Flags) -> Result<RedbStore> {
        if flags.disable_wal {
            eprintln!("note: redb has no write-ahead log; --disable_wal changes nothing");
        }
        if flags.value_threshold.is_some() {
            eprintln!("note: redb has no key-value separation; --value_threshold is ignored");
        }
        let db = Database::builder()
            .set_cache_size(flags.cache_size)
            .create(flags.db.join("data.redb"))
            .map_err(err("opening"))?;
        let txn = db.begin_write().map_err(err("opening"))?;
        txn.open_table(TABLE).map_err(err("creating the table"))?;
        txn.commit().map_err(err("creating the table"))?;
        Ok(RedbStore {
            db: RwLock::new(db),
            pending: Mutex::new(None),
        })
    }

    /// Applies `op` in the open batch (unsynced) or commits it at once,
    /// together with the open batch, with `Durability::Immediate` (synced).
    fn write(
        &self,
        sync: bool,
        op: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> std::result::Result<(), redb::StorageError>,
    ) -> Result<()> {
        let db = self.db.read();
        let mut pending = self.pending.lock();
        let (txn, count) = match pending.take() {
            Some(p) => p,
            None => {
                let mut txn = db.begin_write().map_err(err("writing"))?;
                txn.set_durability(Durability::None)
                    .map_err(err("writing"))?;
                (txn, 0)
            }
        };
        {
            let mut table = txn.open_table(TABLE).map_err(err("writing"))?;
            op(&mut table).map_err(err("writing"))?;
        }
        if sync || count + 1 >= BATCH {
            Self::commit(txn, sync)
        } else {
            *pending = Some((txn, count + 1));
            Ok(())
        }
    }

    fn commit(mut txn: WriteTransaction, durable: bool) -> Result<()> {
        if durable {
            txn.set_durability(Durability::Immediate)
                .map_err(err("committing"))?;
        }
        txn.commit().map_err(err("committing"))
    }

    /// Commits the open batch, durably when `durable`.
    fn commit_pending(&self, durable: bool) -> Result<()> {
        let db = self.db.read();
        let mut pending = self.pending.lock();
        match pending.take() {
            Some((txn, _)) => Self::commit(txn, durable),
            None if durable => {
                // An empty immediate commit makes every earlier commit durable.
                let txn = db.begin_write().map_err(err("syncing"))?;
                txn.commit().map_err(err("syncing"))
            }
            None => Ok(()),
        }
    }
}

impl Store for RedbStore {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        self.write(sync, |t| t.insert(key, value).map(|_| ()))
    }

    fn delete(&self, key: &[u8], sync: bool) -> Result<()> {
        self.write(sync, |t| t.remove(key).map(|_| ()))
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>> {
        let db = self.db.read();
        let txn = db.begin_read().map_err(err("reading"))?;
        let table = txn.open_table(TABLE).map_err(err("reading"))?;
        let value = table.get(key).map_err(err("reading"))?;
        Ok(value.map(|v| v.value().len()))
    }

    fn scan(&self, reverse: bool, limit: u64) -> Result<(u64, u64)> {
        let db = self.db.read();
        let txn = db.begin_read().map_err(err("scanning"))?;
        let table = txn.open_table(TABLE).map_err(err("scanning"))?;
        let range = table.iter().map_err(err("scanning"))?;
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut visit = |item: std::result::Result<_, redb::StorageError>| -> Result<()> {
            let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
                item.map_err(err("scanning"))?;
            n += 1;
            bytes += (k.value().len() + v.value().len()) as u64;
            Ok(())
        };
        if reverse {
            for item in range.rev().take(limit as usize) {
                visit(item)?;
            }
        } else {
            for item in range.take(limit as usize) {
                visit(item)?;
            }
        }
        Ok((n, bytes))
    }

    fn seek(&self, key: &[u8], nexts: usize) -> Result<(bool, u64)> {
        let db = self.db.read();
        let txn = db.begin_read().map_err(err("seeking"))?;
        let table = txn.open_table(TABLE).map_err(err("seeking"))?;
        let range = table.range::<&[u8]>(key..).map_err(err("seeking"))?;
        let (mut exact, mut bytes) = (false, 0);
        for (i, item) in range.take(nexts.max(1)).enumerate() {
            let (k, v) = item.map_err(err("seeking"))?;
            if i == 0 {
                exact = k.value() == key;
            }
            if i < nexts {
                bytes += (k.value().len() + v.value().len()) as u64;
            }
        }
        Ok((exact, bytes))
    }

    fn flush(&self) -> Result<()> {
        self.commit_pending(true)
    }

    fn settle(&self) -> Result<()> {
        self.commit_pending(false)
    }

    fn compact(&self) -> Result<()> {
        self.flush()?;
        let mut db = self.db.write();
        db.compact().map_err(err("compacting"))?;
        Ok(())
    }

    fn compact_note(&self) -> Option<&'static str> {
        Some("note: redb's compact only returns free pages of its file; a B-tree has no levels to merge")
    }

    fn stats_text(&self) -> String {
        let db = self.db.read();
        let entries = db
            .begin_read()
            .ok()
            .and_then(|t| t.open_table(TABLE).ok())
            .and_then(|t| t.len().ok());
        format!("redb: entries {entries:?}")
    }

    fn close(&self) -> Result<()> {
        self.flush()
    }
}
