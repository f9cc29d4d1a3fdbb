//! Table maintenance (the contract, section 1.7): check, create, drop,
//! truncate (`flush`), rename and cluster migration, index rebuild and
//! schema migration.
//!
//! Every operation runs under the global maintenance lock and the commit
//! locks of the (instance, cluster)s it touches, and writes its whole effect
//! — rows, index entries and meta records — in **one** engine `WriteBatch`:
//! a crash at any point leaves the old table or the new one, never a mix
//! (hetu's migration renames, copies and rebuilds in separate steps; jkv
//! does not). A table must therefore fit one batch (the engine holds a
//! batch in memory and in one WAL record).

use std::collections::HashMap;
use std::sync::Arc;

use jkv::{WriteBatch, WriteOptions};
use parking_lot::ReentrantMutexGuard;
use serde::{Deserialize, Serialize};

use crate::error::{Error, RaceKind, Result};
use crate::keys;
use crate::row::Row;
use crate::schema::{Component, DType, VERSION};
use crate::store::Ecs;
use crate::table::{GroupGuard, Table};
use crate::value::{cast, CastMode};

/// What [`Maintenance::check_table`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableStatus {
    /// No meta record for (instance, component).
    NotExists,
    /// The meta record names another cluster (checked first).
    ClusterMismatch,
    /// The stored schema version differs from the component's.
    SchemaMismatch,
    /// Stored and current schema and cluster agree.
    Ok,
}

/// The meta record of (instance, component).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Cluster the table lives in.
    pub cluster_id: u32,
    /// The component's canonical JSON when the table was created or migrated.
    pub json: String,
    /// md5 of `json` (the schema version).
    pub version: String,
}

/// What a schema migration would do (hetu's `prepare()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationPlan {
    /// Same columns and types: only the meta record and indexes change.
    Skip,
    /// Every old value survives the casts.
    Safe,
    /// Data would be lost: the reasons (a column dropped, a narrowing cast).
    Unsafe(Vec<String>),
}

/// Holds the global maintenance lock; released when dropped.
pub struct MaintenanceGuard<'a> {
    _guard: ReentrantMutexGuard<'a, ()>,
}

/// Maintenance operations of one [`Ecs`].
pub struct Maintenance {
    ecs: Ecs,
}

impl Ecs {
    /// The maintenance interface.
    pub fn maintenance(&self) -> Maintenance {
        Maintenance { ecs: self.clone() }
    }

    pub(crate) fn read_meta(&self, instance: &str, component: &str) -> Result<Option<Meta>> {
        let key = keys::meta_key(instance, component);
        match self.db().get(&key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::corruption(&key, format!("meta record is not valid JSON: {e}"))
            }),
        }
    }
}

fn meta_of(component: &Component, cluster: u32) -> Meta {
    Meta {
        cluster_id: cluster,
        json: component.json().to_string(),
        version: component.version().to_string(),
    }
}

fn put_meta(batch: &mut WriteBatch, instance: &str, component: &Component, cluster: u32) {
    let json = serde_json::to_vec(&meta_of(component, cluster)).expect("meta serializes");
    batch.put(keys::meta_key(instance, component.name()), json);
}

impl Maintenance {
    /// Takes the global maintenance lock, waiting while another holder has
    /// it. Operations take it themselves; holding it across several makes
    /// them one exclusive step.
    pub fn lock(&self) -> MaintenanceGuard<'_> {
        MaintenanceGuard {
            _guard: self.ecs.shared.maintenance.lock(),
        }
    }

    /// The table (component, instance, cluster), whatever its status.
    pub fn table(&self, component: &Arc<Component>, instance: &str, cluster: u32) -> Result<Table> {
        self.ecs.table_unchecked(component, instance, cluster)
    }

    /// The status of `table` and the stored meta record.
    pub fn check_table(&self, table: &Table) -> Result<(TableStatus, Option<Meta>)> {
        self.ecs.check_open()?;
        let meta = self
            .ecs
            .read_meta(table.instance(), table.component().name())?;
        let status = match &meta {
            None => TableStatus::NotExists,
            Some(m) if m.cluster_id != table.cluster() => TableStatus::ClusterMismatch,
            Some(m) if m.version != table.component().version() => TableStatus::SchemaMismatch,
            Some(_) => TableStatus::Ok,
        };
        Ok((status, meta))
    }

    fn require(&self, table: &Table, want: TableStatus, op: &str) -> Result<Option<Meta>> {
        let (status, meta) = self.check_table(table)?;
        if status != want {
            return Err(Error::race(
                RaceKind::State,
                format!("{op} {table:?}: status is {status:?}, {op} needs {want:?}"),
            ));
        }
        Ok(meta)
    }

    /// Creates `table` (writes its meta record). A race unless its status
    /// is [`TableStatus::NotExists`].
    pub fn create_table(&self, table: &Table) -> Result<()> {
        let _m = self.lock();
        let _c = table.commit_lock();
        self.require(table, TableStatus::NotExists, "create_table")?;
        let mut batch = WriteBatch::new();
        put_meta(
            &mut batch,
            table.instance(),
            table.component(),
            table.cluster(),
        );
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(())
    }

    /// Deletes every row and index entry of `table` (this cluster only) and
    /// its meta record when the meta names this cluster. Returns the number
    /// of rows removed.
    pub fn drop_table(&self, table: &Table) -> Result<u64> {
        let _m = self.lock();
        let _c = table.commit_lock();
        let mut batch = WriteBatch::new();
        let rows = self.delete_all(table, &mut batch)?;
        if let Some(meta) = self
            .ecs
            .read_meta(table.instance(), table.component().name())?
        {
            if meta.cluster_id == table.cluster() {
                batch.delete(keys::meta_key(table.instance(), table.component().name()));
            }
        }
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(rows)
    }

    /// Empties `table` and recreates it with the component's schema, in one
    /// step. Only for volatile components unless `force`. Returns the rows
    /// removed.
    pub fn flush(&self, table: &Table, force: bool) -> Result<u64> {
        if !table.component().is_volatile() && !force {
            return Err(Error::invalid(format!(
                "flush {table:?}: the component is not volatile; pass force to truncate it"
            )));
        }
        let _m = self.lock();
        let _c = table.commit_lock();
        let mut batch = WriteBatch::new();
        let rows = self.delete_all(table, &mut batch)?;
        put_meta(
            &mut batch,
            table.instance(),
            table.component(),
            table.cluster(),
        );
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(rows)
    }

    /// Adds deletes of every key of `table` to `batch`; returns the rows.
    fn delete_all(&self, table: &Table, batch: &mut WriteBatch) -> Result<u64> {
        let snapshot = self.ecs.snapshot();
        let rows_prefix = keys::rows_prefix(table.prefix());
        let mut rows = 0;
        for item in self.ecs.db().scan_prefix(table.prefix(), &snapshot) {
            let (key, _) = item?;
            if key.starts_with(&rows_prefix) {
                rows += 1;
            }
            batch.delete(&key);
        }
        Ok(rows)
    }

    /// Moves every row and index entry of `from` to `to` (which must be
    /// empty), deletes `from`'s meta record and writes `to`'s, in one step.
    /// Both tables must have the same component layout. Returns the rows moved.
    pub fn rename_table(&self, from: &Table, to: &Table) -> Result<u64> {
        let _m = self.lock();
        let (_a, _b) = lock_pair(from, to);
        self.rename_locked(from, to)
    }

    fn rename_locked(&self, from: &Table, to: &Table) -> Result<u64> {
        if from.component().row_size() != to.component().row_size()
            || from.component().numpy_descr() != to.component().numpy_descr()
        {
            return Err(Error::invalid(format!(
                "rename {from:?} -> {to:?}: the components have different row layouts (migrate the schema instead)"
            )));
        }
        let snapshot = self.ecs.snapshot();
        if self
            .ecs
            .db()
            .scan_prefix(to.prefix(), &snapshot)
            .next()
            .is_some()
        {
            return Err(Error::invalid(format!(
                "rename {from:?} -> {to:?}: the target table is not empty"
            )));
        }
        let rows_prefix = keys::rows_prefix(from.prefix());
        let mut batch = WriteBatch::new();
        let mut rows = 0;
        for item in self.ecs.db().scan_prefix(from.prefix(), &snapshot) {
            let (key, value) = item?;
            if key.starts_with(&rows_prefix) {
                rows += 1;
            }
            batch.delete(&key);
            batch.put([to.prefix(), &key[from.prefix().len()..]].concat(), &value);
        }
        let from_meta = keys::meta_key(from.instance(), from.component().name());
        let to_meta = keys::meta_key(to.instance(), to.component().name());
        if from_meta != to_meta {
            batch.delete(&from_meta);
        }
        put_meta(&mut batch, to.instance(), to.component(), to.cluster());
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(rows)
    }

    /// Moves the table of `table`'s (instance, component) from the cluster
    /// its meta names to `table`'s cluster (hetu's `migration_cluster_id`).
    /// A race unless the status is [`TableStatus::ClusterMismatch`]. The
    /// stored schema is kept; migrate it afterwards if it differs.
    pub fn migrate_cluster(&self, table: &Table) -> Result<u64> {
        let _m = self.lock();
        let meta = self
            .require(table, TableStatus::ClusterMismatch, "migrate_cluster")?
            .expect("a cluster mismatch has a meta record");
        let stored = Component::from_json(&meta.json)?;
        let from = self
            .ecs
            .table_unchecked(&stored, table.instance(), meta.cluster_id)?;
        let to = self
            .ecs
            .table_unchecked(&stored, table.instance(), table.cluster())?;
        let (_a, _b) = lock_pair(&from, &to);
        self.rename_locked(&from, &to)
    }

    /// What migrating `table` from its stored schema to its component would do.
    pub fn plan_migration(&self, table: &Table) -> Result<MigrationPlan> {
        let meta = self
            .require(table, TableStatus::SchemaMismatch, "plan_migration")?
            .expect("mismatch has meta");
        let old = Component::from_json(&meta.json)?;
        Ok(plan(&old, table.component()))
    }

    /// Migrates `table` from its stored schema to its component's: each row
    /// rebuilt with numpy-like casts (common columns), defaults (new
    /// columns), indexes rebuilt, meta rewritten — one atomic write. A race
    /// unless the status is [`TableStatus::SchemaMismatch`]. Returns
    /// `Ok(false)` and changes nothing when the plan is unsafe and `force`
    /// is off; an error mentioning "unique" when the new rows collide on a
    /// unique column.
    pub fn migrate_schema(&self, table: &Table, force: bool) -> Result<bool> {
        let _m = self.lock();
        let _c = table.commit_lock();
        let meta = self
            .require(table, TableStatus::SchemaMismatch, "migrate_schema")?
            .expect("mismatch has meta");
        let old = Component::from_json(&meta.json)?;
        if let MigrationPlan::Unsafe(reasons) = plan(&old, table.component()) {
            if !force {
                eprintln!(
                    "migration of {table:?} refused: data would be discarded ({}); pass force to migrate anyway",
                    reasons.join("; ")
                );
                return Ok(false);
            }
        }
        let old_table = self
            .ecs
            .table_unchecked(&old, table.instance(), table.cluster())?;
        let new_c = table.component();
        let snapshot = self.ecs.snapshot();
        let mut batch = WriteBatch::new();
        let mut new_rows = Vec::new();
        for item in self.ecs.db().scan_prefix(old_table.prefix(), &snapshot) {
            let (key, value) = item?;
            batch.delete(&key);
            if !key.starts_with(&keys::rows_prefix(old_table.prefix())) {
                continue;
            }
            let id = keys::id_from_key(&key)?;
            let old_row = old_table.decode(id, &value)?;
            let mut row = Row::new(new_c);
            for (i, p) in new_c.properties().iter().enumerate() {
                if p.name == VERSION {
                    continue;
                }
                if old.position(&p.name).is_some() {
                    let v = cast(&old_row.get(&p.name)?, p.dtype, CastMode::Migrate, &p.name)?;
                    row.write_at(i, &v);
                }
            }
            row.set_version(old_row.version());
            new_rows.push(row);
        }
        self.index_rows(table, &new_rows, &mut batch)?;
        for row in &new_rows {
            batch.put(table.row_key(row.id()), row.as_bytes());
        }
        put_meta(&mut batch, table.instance(), new_c, table.cluster());
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(true)
    }

    /// Deletes and rebuilds every index of `table` from its rows, in one
    /// step. Returns the row count; an error mentioning "unique" (and no
    /// change) when a unique column holds a value twice.
    pub fn rebuild_index(&self, table: &Table) -> Result<u64> {
        let _m = self.lock();
        let _c = table.commit_lock();
        let snapshot = self.ecs.snapshot();
        let rows_prefix = keys::rows_prefix(table.prefix());
        let mut batch = WriteBatch::new();
        let mut rows = Vec::new();
        for item in self.ecs.db().scan_prefix(table.prefix(), &snapshot) {
            let (key, value) = item?;
            if key.starts_with(&rows_prefix) {
                rows.push(table.decode(keys::id_from_key(&key)?, &value)?);
            } else {
                batch.delete(&key);
            }
        }
        self.index_rows(table, &rows, &mut batch)?;
        self.ecs.db().write(batch, WriteOptions::SYNC)?;
        Ok(rows.len() as u64)
    }

    /// Puts the index entries of `rows` into `batch`, refusing duplicates
    /// on unique columns.
    fn index_rows(&self, table: &Table, rows: &[Row], batch: &mut WriteBatch) -> Result<()> {
        let c = table.component();
        for &i in c.indexed() {
            let p = &c.properties()[i];
            let mut seen: HashMap<Vec<u8>, i64> = HashMap::new();
            for row in rows {
                let v = table.sortable_of(row, i)?;
                if p.unique {
                    if let Some(other) = seen.insert(v.clone(), row.id()) {
                        return Err(Error::invalid(format!(
                            "unique column {:?} of {table:?} holds {} in rows {other} and {}: \
                             the unique index cannot be built",
                            p.name,
                            row.value_at(i)?,
                            row.id()
                        )));
                    }
                }
                if let Some(ix) = table.index_prefix(i) {
                    batch.put(keys::index_key(ix, &v, row.id()), b"");
                }
            }
        }
        Ok(())
    }

    /// Ids of every row of `table`, ascending (a raw accessor for migrations).
    pub fn all_row_ids(&self, table: &Table) -> Result<Vec<i64>> {
        let snapshot = self.ecs.snapshot();
        let mut ids = Vec::new();
        for item in self
            .ecs
            .db()
            .scan_prefix(keys::rows_prefix(table.prefix()), &snapshot)
        {
            ids.push(keys::id_from_key(&item?.0)?);
        }
        Ok(ids)
    }
}

/// Takes the commit locks of two tables in a fixed order (the second only
/// when it is another group).
fn lock_pair<'a>(a: &'a Table, b: &'a Table) -> (GroupGuard<'a>, Option<GroupGuard<'a>>) {
    if a.same_group(b) {
        return (a.commit_lock(), None);
    }
    let (first, second) = if (a.instance(), a.cluster()) <= (b.instance(), b.cluster()) {
        (a, b)
    } else {
        (b, a)
    };
    let g1 = first.commit_lock();
    let g2 = second.commit_lock();
    (g1, Some(g2))
}

/// hetu's `prepare()`: skip, safe, or unsafe with reasons (numpy's
/// `can_cast(old, new, "safe")` per common column; a dropped column).
pub(crate) fn plan(old: &Component, new: &Component) -> MigrationPlan {
    let mut reasons = Vec::new();
    let mut same = old.properties().len() == new.properties().len();
    for p in old.properties() {
        match new.property(&p.name) {
            Err(_) => {
                reasons.push(format!("column {:?} would be dropped", p.name));
                same = false;
            }
            Ok(q) => {
                if q.dtype != p.dtype {
                    same = false;
                    if !safe_cast(p.dtype, q.dtype) {
                        reasons.push(format!(
                            "column {:?} {} -> {} loses values",
                            p.name,
                            p.dtype.numpy_str(),
                            q.dtype.numpy_str()
                        ));
                    }
                }
            }
        }
    }
    if !reasons.is_empty() {
        MigrationPlan::Unsafe(reasons)
    } else if same {
        MigrationPlan::Skip
    } else {
        MigrationPlan::Safe
    }
}

/// numpy's safe casting between column types.
fn safe_cast(from: DType, to: DType) -> bool {
    use DType::*;
    if from == to {
        return true;
    }
    let signed_bits = |t: DType| match t {
        I8 => Some(8),
        I16 => Some(16),
        I32 => Some(32),
        I64 => Some(64),
        _ => None,
    };
    let unsigned_bits = |t: DType| match t {
        U8 => Some(8),
        U16 => Some(16),
        U32 => Some(32),
        U64 => Some(64),
        _ => None,
    };
    let mantissa = |t: DType| match t {
        F32 => Some(24),
        F64 => Some(53),
        _ => None,
    };
    match (from, to) {
        (Unicode(a), Unicode(b)) | (Bytes(a), Bytes(b)) => a <= b,
        (Bytes(a), Unicode(b)) => a <= b,
        _ => {
            if let (Some(a), Some(b)) = (signed_bits(from), signed_bits(to)) {
                a <= b
            } else if let (Some(a), Some(b)) = (unsigned_bits(from), unsigned_bits(to)) {
                a <= b
            } else if let (Some(a), Some(b)) = (unsigned_bits(from), signed_bits(to)) {
                a < b
            } else if let (Some(a), Some(m)) =
                (signed_bits(from).or(unsigned_bits(from)), mantissa(to))
            {
                a < m
            } else if let (Some(a), Some(b)) = (mantissa(from), mantissa(to)) {
                a <= b
            } else {
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Property;

    #[test]
    fn plans_follow_numpy_safe_casting() {
        let c = |props: Vec<Property>| {
            let mut b = Component::builder("t", "T");
            for p in props {
                b = b.property(p);
            }
            b.build().unwrap()
        };
        let old = c(vec![
            Property::new("a", DType::I16),
            Property::new("s", DType::Unicode(8)),
        ]);
        assert_eq!(plan(&old, &old), MigrationPlan::Skip);
        let wider = c(vec![
            Property::new("a", DType::I64),
            Property::new("s", DType::Unicode(9)),
            Property::new("n", DType::I8),
        ]);
        assert_eq!(plan(&old, &wider), MigrationPlan::Safe);
        let narrower = c(vec![
            Property::new("a", DType::I16),
            Property::new("s", DType::Unicode(4)),
        ]);
        assert!(matches!(plan(&old, &narrower), MigrationPlan::Unsafe(r) if r.len() == 1));
        let dropped = c(vec![Property::new("s", DType::Unicode(8))]);
        assert!(matches!(plan(&old, &dropped), MigrationPlan::Unsafe(_)));
        assert!(safe_cast(DType::I16, DType::F32));
        assert!(!safe_cast(DType::I32, DType::F32));
        assert!(!safe_cast(DType::F32, DType::I32));
    }
}
