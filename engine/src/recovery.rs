//! Opening a database: lock, manifest, WAL replay, orphan cleanup, fresh WAL.
//!
//! Recovery replays every WAL the manifest names as live, in order, into
//! memtables and writes them out as L0 tables; one manifest edit then adds
//! those tables, retires the replayed WALs and names a new WAL. Only after
//! that edit is durable are the old WALs (and any file the manifest does not
//! name: leftovers of a crash) deleted. A crash anywhere in between reopens
//! to the same data: the edit either happened or not.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use jkv_format::names::vlog_path;
use jkv_format::names::{self, parse_file_name, FileKind};
use jkv_format::ValuePointer;
use jkv_format::{Error, FileNumber, FileSystem, Result, ValueKind};
use jkv_manifest::{Manifest, ManifestOptions, ManifestState, TableMeta, VersionEdit};
use jkv_memtable::Memtable;
use jkv_sstable::TableCache;
use jkv_vlog::VlogIter;

use crate::compaction::Compactions;
use crate::db::{Db, DbInner, Parts};
use crate::manifest_log::ManifestLog;
use crate::options::Options;
use crate::version::TableDeleter;
use crate::view::View;
use crate::vlog::ValueLog;
use crate::wal::reader::{replay, Replay};
use crate::wal::writer::WalWriter;
use crate::workers::Workers;
use crate::write::WritePath;

pub(crate) fn open(dir: &Path, options: Options) -> Result<Db> {
    options.validate()?;
    let fs = options.fs.clone();
    fs.create_dir_all(dir)?;
    let lock = fs.lock(&dir.join(names::LOCK))?;
    let manifest_options =
        ManifestOptions::new().rewrite_threshold_bytes(options.manifest_rewrite_threshold_bytes);
    let (manifest, state) = if fs.exists(&dir.join(names::MANIFEST))? {
        if options.error_if_exists {
            return Err(Error::InvalidArgument(format!(
                "a database already exists in {}",
                dir.display()
            )));
        }
        Manifest::open(fs.clone(), dir, manifest_options)?
    } else {
        if !options.create_if_missing {
            return Err(Error::InvalidArgument(format!(
                "no database in {} and create_if_missing is off",
                dir.display()
            )));
        }
        refuse_data_without_manifest(&*fs, dir)?;
        let mut initial = ManifestState::new(options.num_levels);
        initial.db_id = random_db_id();
        let manifest = Manifest::create(fs.clone(), dir, initial, manifest_options)?;
        let state = manifest.state().clone();
        (manifest, state)
    };
    if state.levels.len() > options.num_levels {
        return Err(Error::InvalidArgument(format!(
            "the database has {} levels but num_levels is {}",
            state.levels.len(),
            options.num_levels
        )));
    }
    check_files_present(&*fs, dir, &state)?;

    let table_cache = TableCache::with_block_cache(
        fs.clone(),
        dir.to_path_buf(),
        options.max_open_tables,
        jkv_sstable::BlockCache::new(options.block_cache_bytes),
    );
    let deleter = Arc::new(TableDeleter::new(
        fs.clone(),
        dir.to_path_buf(),
        table_cache.clone(),
    ));
    let pool = if options.auto_compactions {
        Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(options.compaction_threads)
                .thread_name(|i| format!("jkv-compact-{i}"))
                .build()
                .map_err(|e| {
                    Error::io(
                        "starting the compaction pool for",
                        dir,
                        std::io::Error::other(e.to_string()),
                    )
                })?,
        )
    } else {
        None
    };
    let vlog = ValueLog::new(fs.clone(), dir, options.value_threshold.is_some());
    let view = View::new(
        &state,
        deleter,
        vlog.handle_source(fs.clone(), dir),
        Arc::new(options.new_memtable()),
    );
    let inner = DbInner::new(Parts {
        dir: dir.to_path_buf(),
        db_id: state.db_id,
        fs: fs.clone(),
        writes: WritePath::new(Arc::new(options.new_memtable()), state.last_seq),
        manifest: ManifestLog::new(manifest, state.next_file),
        compactions: Compactions::new(options.num_levels),
        view,
        vlog,
        workers: Workers::new(pool),
        table_cache,
        options,
        lock,
    });
    recover_wals(&inner, &state)?;
    remove_orphans(&inner)?;
    let flush_thread = {
        let inner = inner.clone();
        std::thread::Builder::new()
            .name("jkv-flush".into())
            .spawn(move || inner.run_flush_thread())
            .map_err(|e| Error::io("spawning the flush thread for", dir, e))?
    };
    inner.schedule_compactions();
    inner.schedule_vlog_gc();
    Ok(Db {
        inner,
        flush_thread: Mutex::new(Some(flush_thread)),
    })
}

/// Bytes of a value log that hold whole, valid entries: up to its torn
/// tail, or all of it (damage inside is left for reads to report). 0 when
/// the file is missing.
fn vlog_valid_len_of(inner: &DbInner, file: FileNumber) -> u64 {
    let Ok(mut iter) = VlogIter::open(&**inner.fs(), inner.dir(), file) else {
        return 0;
    };
    let mut damaged = false;
    for entry in iter.by_ref() {
        if entry.is_err() {
            damaged = true;
        }
    }
    match iter.torn_tail_at() {
        Some(at) if !damaged => at,
        _ => iter.data_len(),
    }
}

/// A random identity for a new database (not cryptographic: it tells this
/// database's files from another's).
pub(crate) fn random_db_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// A directory with tables or logs but no manifest lost its manifest:
/// creating a fresh database there would hide (and later delete) that data.
fn refuse_data_without_manifest(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for name in fs.list(dir)? {
        if matches!(
            parse_file_name(&name),
            Some(FileKind::Table(_) | FileKind::Wal(_) | FileKind::ValueLog(_))
        ) {
            return Err(Error::corruption(
                dir.join(names::MANIFEST),
                0,
                format!("MANIFEST is missing but data file {name} is present"),
            ));
        }
    }
    Ok(())
}

/// Every table and WAL the manifest names must exist.
fn check_files_present(fs: &dyn FileSystem, dir: &Path, state: &ManifestState) -> Result<()> {
    let present: HashSet<String> = fs.list(dir)?.into_iter().collect();
    let tables = state
        .levels
        .iter()
        .flatten()
        .map(|t| names::table_name(t.id));
    let wals = state.live_wals.iter().map(|&n| names::wal_name(n));
    for name in tables.chain(wals) {
        if !present.contains(&name) {
            return Err(Error::corruption(
                dir.join(names::MANIFEST),
                0,
                format!("the manifest names {name}, which is missing"),
            ));
        }
    }
    Ok(())
}

/// Replays live WALs into L0 tables and starts a new WAL, in one manifest
/// edit; then publishes the recovered state.
fn recover_wals(inner: &Arc<DbInner>, state: &ManifestState) -> Result<()> {
    let mut last_seq = state.last_seq;
    for t in state.levels.iter().flatten() {
        last_seq = last_seq.max(t.max_seq);
    }
    let mut tables: Vec<TableMeta> = Vec::new();
    let mut discards = std::collections::BTreeMap::new();
    let mut mem = Arc::new(Memtable::new());
    let last_wal = state.live_wals.iter().next_back().copied();
    let mut vlog_valid_len: std::collections::HashMap<FileNumber, u64> = Default::default();
    for &wal in &state.live_wals {
        let path = names::wal_path(inner.dir(), wal);
        let summary = replay(&**inner.fs(), &path, wal, inner.db_id(), |batch| {
            // A pointer whose value did not reach the disk: in the last WAL
            // that is the unsynced tail of a crash (the value log is synced
            // before any WAL sync), so replay stops there; in an earlier
            // WAL the value log was synced at the freeze, so it is damage.
            // A value damaged in place is left for reads to report; only a
            // value missing from the end of its file stops the replay.
            for entry in batch.entries() {
                let entry = entry.map_err(|what| Error::corruption(&path, 0, what))?;
                if entry.kind != ValueKind::ValuePointer
                    || inner.resolve_pointer(entry.key, entry.value).is_ok()
                {
                    continue;
                }
                let Some(pointer) = ValuePointer::decode(entry.value) else {
                    continue;
                };
                if !state.vlogs.contains_key(&pointer.file) {
                    // Garbage collection retired the file: it did so only
                    // after rewriting every entry the tree still pointed
                    // to (synced, in a later WAL record), so this version
                    // is shadowed and never read.
                    continue;
                }
                let valid = *vlog_valid_len
                    .entry(pointer.file)
                    .or_insert_with(|| vlog_valid_len_of(inner, pointer.file));
                if pointer.offset + u64::from(pointer.len) > valid {
                    return if Some(wal) == last_wal {
                        Ok(Replay::StopHere)
                    } else {
                        Err(Error::corruption(
                            vlog_path(inner.dir(), pointer.file),
                            pointer.offset,
                            format!(
                                "value of a write in {} is missing: the value log ends at byte {valid}",
                                path.display()
                            ),
                        ))
                    };
                }
            }
            let mut seq = batch.first_seq;
            for entry in batch.entries() {
                let entry = entry.map_err(|what| Error::corruption(&path, 0, what))?;
                if entry.kind == ValueKind::RangeDeletion {
                    mem.insert_range_tombstone(entry.key, entry.value, seq);
                } else {
                    mem.insert(entry.key, seq, entry.kind, entry.value);
                }
                seq = seq.plus(1);
            }
            Ok(Replay::Continue)
        })?;
        last_seq = last_seq.max(summary.max_seq);
        if mem.approximate_memory_bytes() >= inner.options().write_buffer_size {
            tables.extend(inner.write_level0_table(&mem, &mut discards)?);
            mem = Arc::new(Memtable::new());
        }
    }
    tables.extend(inner.write_level0_table(&mem, &mut discards)?);

    let mut writer = inner.writes().lock_writer();
    let mut edit = VersionEdit {
        vlog_discards: crate::manifest_log::live_discards(state, discards),
        added_tables: tables,
        retired_wals: state.live_wals.iter().copied().collect(),
        last_seq: Some(last_seq),
        ..VersionEdit::default()
    };
    let wal = if inner.options().wal {
        let number = inner.manifest().allocate_file_number();
        let wal = WalWriter::create(&**inner.fs(), inner.dir(), number, inner.db_id())?;
        inner.fs().sync_dir(inner.dir())?;
        edit.new_wals.push(number);
        Some(wal)
    } else {
        None
    };
    writer.recovered(last_seq, wal);
    edit.next_file = Some(inner.manifest().next_file());
    let mut manifest = inner.manifest().lock();
    manifest.apply(edit)?;
    inner.view().set_visible_seq(last_seq);
    inner
        .view()
        .publish(manifest.state(), Some(writer.mem().clone()));
    Ok(())
}

/// Directory (inside the database directory) where files the manifest does
/// not name are kept, instead of deleted, after the manifest's last line
/// had to be cut off.
pub(crate) const LOST_DIR: &str = "lost";

/// Removes files the manifest does not name: replayed WALs, tables and WALs
/// of an interrupted flush or recovery, outputs of an interrupted compaction,
/// unfinished temporary files.
///
/// If the manifest's last line was torn, that is what a crash during an
/// append leaves — but also what a truncated manifest looks like, and then
/// the unnamed files may be the only copy of data. They are moved into
/// `lost/` rather than deleted; `jkv check` lists them.
fn remove_orphans(inner: &DbInner) -> Result<()> {
    let manifest = inner.manifest().lock();
    let quarantine = manifest.torn_tail_cut().is_some();
    let state = manifest.state();
    let live_tables: HashSet<FileNumber> = state.levels.iter().flatten().map(|t| t.id).collect();
    let lost = inner.dir().join(LOST_DIR);
    let mut changed = false;
    for name in inner.fs().list(inner.dir())? {
        let data_file = match parse_file_name(&name) {
            Some(FileKind::Table(n)) => !live_tables.contains(&n),
            Some(FileKind::Wal(n)) => !state.live_wals.contains(&n),
            Some(FileKind::ValueLog(n)) => !state.vlogs.contains_key(&n),
            Some(FileKind::Temp) | Some(FileKind::ManifestTmp) => {
                inner.fs().remove(&inner.dir().join(&name))?;
                changed = true;
                continue;
            }
            _ => false,
        };
        if !data_file {
            continue;
        }
        if quarantine {
            inner.fs().create_dir_all(&lost)?;
            inner
                .fs()
                .rename(&inner.dir().join(&name), &lost.join(&name))?;
            inner.fs().sync_dir(&lost)?;
        } else {
            inner.fs().remove(&inner.dir().join(&name))?;
        }
        changed = true;
    }
    if changed {
        inner.fs().sync_dir(inner.dir())?;
    }
    Ok(())
}
