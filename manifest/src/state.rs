//! The manifest state: which tables make up each level, which WALs still
//! hold unflushed writes, and the file and sequence counters
//! (docs/manifest-format.md, "Snapshot record").
//!
//! Plain data; no I/O, no threads. The engine builds its in-memory version
//! from it; the writer ([`crate::Manifest`]) keeps one and moves it forward
//! with [`ManifestState::apply`].

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use jkv_format::key::compare_internal_keys;
use jkv_format::{FileNumber, SeqNo};
use serde::{Deserialize, Serialize};

use crate::edit::{TableMeta, VersionEdit};

/// The manifest format this build writes, and the newest it reads.
///
/// Version history (docs/manifest-format.md, "Version history"):
/// - 1: edit and snapshot records with tables, WALs and counters.
/// - 2: value-log files and their discard counts (`vlogs`, `new_vlogs`,
///   `removed_vlogs`, `vlog_discards`). Version 1 files are read and
///   rewritten as version 2.
pub const FORMAT_VERSION: u32 = 2;

/// What the manifest knows of one value-log file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VlogMeta {
    /// Bytes of entries that compaction found overwritten or deleted
    /// (garbage a collection would reclaim).
    pub discard_bytes: u64,
}

/// Everything the manifest records, as of one point in its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestState {
    /// Format of the manifest file this state was read from or will be
    /// written to; an older reader refuses a file whose first snapshot has a
    /// larger version. Snapshots are always written with [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Tables per level (index = level). Level 0 newest first: higher
    /// `max_seq` first, ties by higher id; levels 1 and up sorted by
    /// smallest key ([`compare_internal_keys`]) and non-overlapping.
    #[serde(default)]
    pub levels: Vec<Vec<TableMeta>>,
    /// WALs whose memtables are not flushed yet, replayed in ascending order
    /// at open.
    #[serde(default)]
    pub live_wals: BTreeSet<FileNumber>,
    /// Next file number to allocate; above every live file's number.
    #[serde(default)]
    pub next_file: FileNumber,
    /// Largest sequence number known to be written.
    #[serde(default)]
    pub last_seq: SeqNo,
    /// Identity of the database, chosen at random when it is created and
    /// written into the header of every WAL, so that a log from another
    /// database is refused (0: a version-1 manifest, which had none).
    #[serde(default)]
    pub db_id: u64,
    /// Live value-log files by file number (a JSON list of
    /// `{"file": n, "discard_bytes": b}`).
    #[serde(default, with = "vlog_list")]
    pub vlogs: BTreeMap<FileNumber, VlogMeta>,
}

/// Serde adapter: the value-log map as a list of objects (JSON object keys
/// would have to be strings).
mod vlog_list {
    use std::collections::BTreeMap;

    use jkv_format::FileNumber;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::VlogMeta;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        file: FileNumber,
        #[serde(default)]
        discard_bytes: u64,
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<FileNumber, VlogMeta>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<Entry> = map
            .iter()
            .map(|(&file, meta)| Entry {
                file,
                discard_bytes: meta.discard_bytes,
            })
            .collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<FileNumber, VlogMeta>, D::Error> {
        let list = Vec::<Entry>::deserialize(d)?;
        Ok(list
            .into_iter()
            .map(|e| {
                (
                    e.file,
                    VlogMeta {
                        discard_bytes: e.discard_bytes,
                    },
                )
            })
            .collect())
    }
}

/// Why [`ManifestState::apply`] refused an edit, or
/// [`ManifestState::normalize`] a state. The messages name file numbers
/// as plain decimal numbers, as the manifest's JSON does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    /// The edit names a level the manifest does not have.
    #[error("level {level} out of range: the manifest has {num_levels} levels")]
    LevelOutOfRange {
        /// The level named.
        level: u32,
        /// Levels the manifest has.
        num_levels: usize,
    },
    /// A removed table is not at the level named.
    #[error("cannot remove table {} from level {level}: not there", table.0)]
    TableNotThere {
        /// The table.
        table: FileNumber,
        /// The level named.
        level: u32,
    },
    /// An added table's number is a live table's.
    #[error("cannot add table {}: already live", table.0)]
    TableAlreadyLive {
        /// The table.
        table: FileNumber,
    },
    /// An added table's number is a live WAL's or value log's.
    #[error("cannot add table {}: file number is a live WAL or value log", table.0)]
    TableNumberTaken {
        /// The table.
        table: FileNumber,
    },
    /// A table's smallest key is above its largest.
    #[error("table {}: smallest key is above largest key", table.0)]
    KeyRangeUpsideDown {
        /// The table.
        table: FileNumber,
    },
    /// Two tables of a level above 0 overlap.
    #[error("tables {} and {} overlap in level {level}", first.0, second.0)]
    Overlap {
        /// The table first in the level's order.
        first: FileNumber,
        /// The table after it.
        second: FileNumber,
        /// The level.
        level: usize,
    },
    /// A retired WAL is not live.
    #[error("cannot retire WAL {}: not live", wal.0)]
    WalNotLive {
        /// The WAL.
        wal: FileNumber,
    },
    /// A new WAL's number is a live table's or value log's.
    #[error("cannot add WAL {}: file number is a live table or value log", wal.0)]
    WalNumberTaken {
        /// The WAL.
        wal: FileNumber,
    },
    /// A new WAL is live already.
    #[error("cannot add WAL {}: already live", wal.0)]
    WalAlreadyLive {
        /// The WAL.
        wal: FileNumber,
    },
    /// A new value log's number is a live table's or WAL's.
    #[error("cannot add value log {}: file number is a live table or WAL", file.0)]
    VlogNumberTaken {
        /// The value log.
        file: FileNumber,
    },
    /// A new value log is live already.
    #[error("cannot add value log {}: already live", file.0)]
    VlogAlreadyLive {
        /// The value log.
        file: FileNumber,
    },
    /// Garbage is counted in a value log that is not live.
    #[error("cannot count garbage in value log {}: not live", file.0)]
    DiscardInDeadVlog {
        /// The value log.
        file: FileNumber,
    },
    /// A removed value log is not live.
    #[error("cannot remove value log {}: not live", file.0)]
    VlogNotLive {
        /// The value log.
        file: FileNumber,
    },
    /// A table of a state is listed in another level than its own.
    #[error("table {} says level {level} but is listed in level {listed}", table.0)]
    TableInWrongLevel {
        /// The table.
        table: FileNumber,
        /// The level the table's entry names.
        level: u32,
        /// The level it is listed in.
        listed: usize,
    },
    /// A table of a state is listed twice.
    #[error("table {} listed twice", table.0)]
    TableListedTwice {
        /// The table.
        table: FileNumber,
    },
    /// A live WAL of a state is also a table.
    #[error("file number {} is both a table and a live WAL", wal.0)]
    WalIsTable {
        /// The WAL.
        wal: FileNumber,
    },
    /// A value log of a state is also a table or a live WAL.
    #[error("file number {} is both a value log and a table or WAL", file.0)]
    VlogIsTableOrWal {
        /// The value log.
        file: FileNumber,
    },
}

impl ManifestState {
    /// An empty state with `num_levels` empty levels, file numbers starting
    /// at 1 and no sequence numbers used.
    pub fn new(num_levels: usize) -> Self {
        ManifestState {
            format_version: FORMAT_VERSION,
            levels: vec![Vec::new(); num_levels],
            live_wals: BTreeSet::new(),
            next_file: FileNumber(1),
            last_seq: SeqNo(0),
            db_id: 0,
            vlogs: BTreeMap::new(),
        }
    }

    /// Number of levels.
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// Tables of `level` in the level's order; empty for a level out of
    /// range.
    pub fn tables(&self, level: usize) -> &[TableMeta] {
        self.levels
            .get(level)
            .map_or(&[], |tables| tables.as_slice())
    }

    /// Every table, level by level, each level in its order.
    pub fn all_tables(&self) -> impl Iterator<Item = &TableMeta> + '_ {
        self.levels.iter().flatten()
    }

    /// The table with file number `id`, if it is live.
    pub fn table(&self, id: FileNumber) -> Option<&TableMeta> {
        self.all_tables().find(|t| t.id == id)
    }

    /// Sum of the sizes of the tables in `level`, in bytes.
    pub fn level_size_bytes(&self, level: usize) -> u64 {
        self.tables(level).iter().map(|t| t.size_bytes).sum()
    }

    /// File numbers the state refers to (tables and live WALs): any other
    /// numbered file below `next_file` in the directory is an orphan.
    pub fn live_file_numbers(&self) -> BTreeSet<FileNumber> {
        let mut live: BTreeSet<FileNumber> = self.all_tables().map(|t| t.id).collect();
        live.extend(self.live_wals.iter().copied());
        live.extend(self.vlogs.keys().copied());
        live
    }

    /// Applies `edit`, or leaves the state unchanged and says why not.
    ///
    /// Rejected: a level out of range; removing a table that is not at the
    /// named level; adding a table whose id is live (after this edit's
    /// removals, so a table can move between levels) or is a live WAL, or
    /// whose smallest key is above its largest; tables that would overlap in
    /// a level above 0; retiring a WAL that is not live; adding a WAL that is
    /// live or is a live table. Counters only move forward (the larger value
    /// wins), and `next_file` is raised above every file number the edit
    /// adds.
    pub fn apply(&mut self, edit: &VersionEdit) -> Result<(), Rejected> {
        let num_levels = self.levels.len();
        let level_index = |level: u32| -> Result<usize, Rejected> {
            let index = level as usize;
            if index < num_levels {
                Ok(index)
            } else {
                Err(Rejected::LevelOutOfRange { level, num_levels })
            }
        };

        // New contents of each level the edit touches, built aside so a
        // rejected edit leaves `self` as it was.
        let mut touched: BTreeMap<usize, Vec<TableMeta>> = BTreeMap::new();
        let mut removed_ids = BTreeSet::new();
        for removed in &edit.removed_tables {
            let index = level_index(removed.level)?;
            let tables = touched
                .entry(index)
                .or_insert_with(|| self.levels[index].clone());
            let pos =
                tables
                    .iter()
                    .position(|t| t.id == removed.id)
                    .ok_or(Rejected::TableNotThere {
                        table: removed.id,
                        level: removed.level,
                    })?;
            tables.remove(pos);
            removed_ids.insert(removed.id);
        }

        let mut live_ids: BTreeSet<FileNumber> = self
            .all_tables()
            .map(|t| t.id)
            .filter(|id| !removed_ids.contains(id))
            .collect();
        for added in &edit.added_tables {
            let index = level_index(added.level)?;
            if !live_ids.insert(added.id) {
                return Err(Rejected::TableAlreadyLive { table: added.id });
            }
            if self.live_wals.contains(&added.id) || self.vlogs.contains_key(&added.id) {
                return Err(Rejected::TableNumberTaken { table: added.id });
            }
            check_key_range(added)?;
            touched
                .entry(index)
                .or_insert_with(|| self.levels[index].clone())
                .push(added.clone());
        }
        for (&index, tables) in touched.iter_mut() {
            sort_level(index, tables);
            check_level(index, tables)?;
        }

        let mut live_wals = self.live_wals.clone();
        for wal in &edit.retired_wals {
            if !live_wals.remove(wal) {
                return Err(Rejected::WalNotLive { wal: *wal });
            }
        }
        for &wal in &edit.new_wals {
            if live_ids.contains(&wal) || self.vlogs.contains_key(&wal) {
                return Err(Rejected::WalNumberTaken { wal });
            }
            if !live_wals.insert(wal) {
                return Err(Rejected::WalAlreadyLive { wal });
            }
        }

        let mut vlogs = self.vlogs.clone();
        for &file in &edit.new_vlogs {
            if live_ids.contains(&file) || live_wals.contains(&file) {
                return Err(Rejected::VlogNumberTaken { file });
            }
            if vlogs.insert(file, VlogMeta::default()).is_some() {
                return Err(Rejected::VlogAlreadyLive { file });
            }
        }
        for discard in &edit.vlog_discards {
            let meta = vlogs
                .get_mut(&discard.file)
                .ok_or(Rejected::DiscardInDeadVlog { file: discard.file })?;
            meta.discard_bytes = meta.discard_bytes.saturating_add(discard.bytes);
        }
        for &file in &edit.removed_vlogs {
            if vlogs.remove(&file).is_none() {
                return Err(Rejected::VlogNotLive { file });
            }
        }

        let highest_added = edit
            .added_tables
            .iter()
            .map(|t| t.id)
            .chain(edit.new_wals.iter().copied())
            .chain(edit.new_vlogs.iter().copied())
            .max();

        // Checks passed: commit.
        for (index, tables) in touched {
            self.levels[index] = tables;
        }
        self.live_wals = live_wals;
        self.vlogs = vlogs;
        if let Some(next_file) = edit.next_file {
            self.next_file = self.next_file.max(next_file);
        }
        if let Some(id) = highest_added {
            self.next_file = self.next_file.max(FileNumber(id.0.saturating_add(1)));
        }
        if let Some(last_seq) = edit.last_seq {
            self.last_seq = self.last_seq.max(last_seq);
        }
        Ok(())
    }

    /// Checks a whole state (a snapshot being written or read) and puts each
    /// level in its order. Errors: a table in the wrong level's list, a file
    /// number used twice, a key range upside down, or overlap above level 0.
    /// `next_file` is raised above every live file number.
    pub fn normalize(&mut self) -> Result<(), Rejected> {
        let mut ids = BTreeSet::new();
        for (index, tables) in self.levels.iter_mut().enumerate() {
            for t in tables.iter() {
                if t.level as usize != index {
                    return Err(Rejected::TableInWrongLevel {
                        table: t.id,
                        level: t.level,
                        listed: index,
                    });
                }
                if !ids.insert(t.id) {
                    return Err(Rejected::TableListedTwice { table: t.id });
                }
                check_key_range(t)?;
            }
            sort_level(index, tables);
            check_level(index, tables)?;
        }
        if let Some(&wal) = self.live_wals.iter().find(|w| ids.contains(w)) {
            return Err(Rejected::WalIsTable { wal });
        }
        if let Some(&file) = self
            .vlogs
            .keys()
            .find(|v| ids.contains(v) || self.live_wals.contains(v))
        {
            return Err(Rejected::VlogIsTableOrWal { file });
        }
        // A counter behind a live file would hand its number out again.
        let highest = ids
            .last()
            .into_iter()
            .chain(self.live_wals.last())
            .chain(self.vlogs.keys().last())
            .max();
        if let Some(&highest) = highest {
            self.next_file = self.next_file.max(FileNumber(highest.0.saturating_add(1)));
        }
        Ok(())
    }
}

fn check_key_range(t: &TableMeta) -> Result<(), Rejected> {
    if compare_internal_keys(&t.smallest, &t.largest) == Ordering::Greater {
        return Err(Rejected::KeyRangeUpsideDown { table: t.id });
    }
    Ok(())
}

/// Puts a level in its order: level 0 newest first, others by smallest key.
fn sort_level(level: usize, tables: &mut [TableMeta]) {
    if level == 0 {
        tables.sort_by(|a, b| b.max_seq.cmp(&a.max_seq).then(b.id.cmp(&a.id)));
    } else {
        tables
            .sort_by(|a, b| compare_internal_keys(&a.smallest, &b.smallest).then(a.id.cmp(&b.id)));
    }
}

/// Levels above 0 hold disjoint key ranges; `tables` must be sorted.
fn check_level(level: usize, tables: &[TableMeta]) -> Result<(), Rejected> {
    if level == 0 {
        return Ok(());
    }
    for pair in tables.windows(2) {
        if compare_internal_keys(&pair[0].largest, &pair[1].smallest) != Ordering::Less {
            return Err(Rejected::Overlap {
                first: pair[0].id,
                second: pair[1].id,
                level,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn value_logs_are_added_counted_and_removed() {
        use crate::edit::VlogDiscard;
        let mut state = ManifestState::new(2);
        let add = VersionEdit {
            new_vlogs: vec![FileNumber(5)],
            ..VersionEdit::default()
        };
        state.apply(&add).unwrap();
        assert!(state.live_file_numbers().contains(&FileNumber(5)));
        assert_eq!(state.next_file.0, 6);
        assert!(state.apply(&add).is_err(), "added twice");
        let count = VersionEdit {
            vlog_discards: vec![VlogDiscard {
                file: FileNumber(5),
                bytes: 100,
            }],
            ..VersionEdit::default()
        };
        state.apply(&count).unwrap();
        state.apply(&count).unwrap();
        assert_eq!(state.vlogs[&FileNumber(5)].discard_bytes, 200);
        let unknown = VersionEdit {
            vlog_discards: vec![VlogDiscard {
                file: FileNumber(6),
                bytes: 1,
            }],
            ..VersionEdit::default()
        };
        assert!(state.apply(&unknown).is_err());
        let wal_clash = VersionEdit {
            new_wals: vec![FileNumber(5)],
            ..VersionEdit::default()
        };
        assert!(state.apply(&wal_clash).is_err());
        let remove = VersionEdit {
            removed_vlogs: vec![FileNumber(5)],
            ..VersionEdit::default()
        };
        state.apply(&remove).unwrap();
        assert!(state.vlogs.is_empty());
        assert!(state.apply(&remove).is_err(), "removed twice");
    }

    use super::*;
    use crate::edit::TableId;
    use jkv_format::{InternalKey, ValueKind};

    fn ik(k: &str, s: u64) -> Vec<u8> {
        InternalKey::new(k.as_bytes(), SeqNo(s), ValueKind::Value).into_vec()
    }

    pub(crate) fn table(id: u64, level: u32, lo: &str, hi: &str, seq: u64) -> TableMeta {
        TableMeta {
            id: FileNumber(id),
            level,
            size_bytes: 1000 * id,
            entries: 10,
            smallest: ik(lo, seq),
            largest: ik(hi, seq),
            min_seq: SeqNo(seq),
            max_seq: SeqNo(seq),
            range_deletions: 0,
            deletions: 0,
            older_versions: 0,
        }
    }

    #[test]
    fn flush_then_compaction() {
        let mut s = ManifestState::new(3);
        s.apply(&VersionEdit {
            new_wals: vec![FileNumber(1)],
            next_file: Some(FileNumber(2)),
            ..VersionEdit::default()
        })
        .expect("new wal");
        s.apply(&VersionEdit {
            new_wals: vec![FileNumber(2)],
            next_file: Some(FileNumber(3)),
            ..VersionEdit::default()
        })
        .expect("second wal");
        s.apply(&VersionEdit {
            added_tables: vec![table(3, 0, "a", "m", 10)],
            retired_wals: vec![FileNumber(1)],
            last_seq: Some(SeqNo(10)),
            ..VersionEdit::default()
        })
        .expect("flush");
        s.apply(&VersionEdit {
            added_tables: vec![table(4, 0, "b", "z", 20)],
            retired_wals: vec![FileNumber(2)],
            last_seq: Some(SeqNo(20)),
            ..VersionEdit::default()
        })
        .expect("flush");
        // Newest first in level 0.
        let ids: Vec<u64> = s.tables(0).iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![4, 3]);
        assert_eq!(s.next_file.0, 5, "raised past added table 4");
        assert_eq!(s.last_seq.0, 20);
        assert!(s.live_wals.is_empty());

        s.apply(&VersionEdit {
            removed_tables: vec![
                TableId {
                    level: 0,
                    id: FileNumber(3),
                },
                TableId {
                    level: 0,
                    id: FileNumber(4),
                },
            ],
            added_tables: vec![table(6, 1, "n", "z", 20), table(5, 1, "a", "m", 20)],
            next_file: Some(FileNumber(7)),
            ..VersionEdit::default()
        })
        .expect("compaction");
        assert!(s.tables(0).is_empty());
        let ids: Vec<u64> = s.tables(1).iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![5, 6], "level 1 sorted by smallest key");
        assert_eq!(s.level_size_bytes(1), 11_000);
        assert_eq!(
            s.live_file_numbers(),
            BTreeSet::from([FileNumber(5), FileNumber(6)])
        );
        assert_eq!(s.table(FileNumber(6)).map(|t| t.level), Some(1));
        assert_eq!(s.all_tables().count(), 2);
        assert!(s.tables(9).is_empty());
        assert_eq!(s.level_size_bytes(9), 0);

        // Counters never move back.
        s.apply(&VersionEdit {
            next_file: Some(FileNumber(2)),
            last_seq: Some(SeqNo(1)),
            ..VersionEdit::default()
        })
        .expect("counters");
        assert_eq!((s.next_file.0, s.last_seq.0), (7, 20));
    }

    #[test]
    fn l0_ties_broken_by_higher_id() {
        let mut s = ManifestState::new(2);
        s.apply(&VersionEdit {
            added_tables: vec![
                table(7, 0, "a", "b", 5),
                table(9, 0, "a", "b", 5),
                table(8, 0, "a", "b", 6),
            ],
            ..VersionEdit::default()
        })
        .expect("add");
        let ids: Vec<u64> = s.tables(0).iter().map(|t| t.id.0).collect();
        assert_eq!(ids, vec![8, 9, 7]);
    }

    #[test]
    fn table_can_move_between_levels() {
        let mut s = ManifestState::new(3);
        s.apply(&VersionEdit {
            added_tables: vec![table(4, 1, "a", "c", 1)],
            ..VersionEdit::default()
        })
        .expect("add");
        s.apply(&VersionEdit {
            removed_tables: vec![TableId {
                level: 1,
                id: FileNumber(4),
            }],
            added_tables: vec![table(4, 2, "a", "c", 1)],
            ..VersionEdit::default()
        })
        .expect("move");
        assert!(s.tables(1).is_empty());
        assert_eq!(s.tables(2).len(), 1);
    }

    #[test]
    fn rejected_edits_change_nothing() {
        let mut s = ManifestState::new(2);
        s.apply(&VersionEdit {
            new_wals: vec![FileNumber(1)],
            added_tables: vec![table(2, 1, "a", "c", 1)],
            ..VersionEdit::default()
        })
        .expect("setup");
        let before = s.clone();
        let bad = [
            (
                VersionEdit {
                    added_tables: vec![table(2, 0, "a", "c", 1)],
                    ..VersionEdit::default()
                },
                "already live",
            ),
            (
                VersionEdit {
                    removed_tables: vec![TableId {
                        level: 0,
                        id: FileNumber(2),
                    }],
                    ..VersionEdit::default()
                },
                "not there",
            ),
            (
                VersionEdit {
                    retired_wals: vec![FileNumber(5)],
                    ..VersionEdit::default()
                },
                "not live",
            ),
            (
                VersionEdit {
                    new_wals: vec![FileNumber(1)],
                    ..VersionEdit::default()
                },
                "already live",
            ),
            (
                VersionEdit {
                    new_wals: vec![FileNumber(2)],
                    ..VersionEdit::default()
                },
                "live table",
            ),
            (
                VersionEdit {
                    added_tables: vec![table(1, 0, "a", "c", 1)],
                    ..VersionEdit::default()
                },
                "live WAL",
            ),
            (
                VersionEdit {
                    added_tables: vec![table(3, 2, "a", "c", 1)],
                    ..VersionEdit::default()
                },
                "out of range",
            ),
            (
                VersionEdit {
                    removed_tables: vec![TableId {
                        level: 7,
                        id: FileNumber(2),
                    }],
                    ..VersionEdit::default()
                },
                "out of range",
            ),
            (
                VersionEdit {
                    added_tables: vec![table(3, 1, "b", "d", 1)],
                    ..VersionEdit::default()
                },
                "overlap",
            ),
            (
                VersionEdit {
                    added_tables: vec![table(3, 0, "z", "a", 1)],
                    ..VersionEdit::default()
                },
                "smallest key is above",
            ),
            (
                // A valid part first, then a bad one: nothing may stick.
                VersionEdit {
                    retired_wals: vec![FileNumber(1)],
                    added_tables: vec![table(3, 0, "x", "y", 1), table(3, 0, "x", "y", 1)],
                    next_file: Some(FileNumber(100)),
                    ..VersionEdit::default()
                },
                "already live",
            ),
        ];
        assert!(matches!(
            s.apply(&bad[0].0),
            Err(Rejected::TableAlreadyLive {
                table: FileNumber(2)
            })
        ));
        assert!(matches!(
            s.apply(&bad[2].0),
            Err(Rejected::WalNotLive { wal: FileNumber(5) })
        ));
        assert!(matches!(
            s.apply(&bad[8].0),
            Err(Rejected::Overlap { level: 1, .. })
        ));
        for (edit, expected) in bad {
            let err = s.apply(&edit).expect_err("edit must be rejected");
            assert!(
                err.to_string().contains(expected),
                "{err:?} should mention {expected:?}"
            );
            assert_eq!(s, before, "rejected edit changed the state: {edit:?}");
        }
    }

    #[test]
    fn normalize_sorts_and_checks() {
        let mut s = ManifestState::new(2);
        s.levels[1] = vec![table(5, 1, "m", "z", 1), table(4, 1, "a", "c", 1)];
        s.levels[0] = vec![table(2, 0, "a", "z", 1), table(3, 0, "a", "z", 2)];
        s.next_file = FileNumber(6);
        s.normalize().expect("valid state");
        assert_eq!(s.tables(1)[0].id.0, 4);
        assert_eq!(s.tables(0)[0].id.0, 3);

        let mut wrong_level = s.clone();
        wrong_level.levels[0].push(table(9, 1, "a", "b", 1));
        wrong_level.next_file = FileNumber(10);
        assert!(wrong_level.normalize().is_err());

        let mut counter_behind = s.clone();
        counter_behind.next_file = FileNumber(5);
        counter_behind.live_wals.insert(FileNumber(7));
        counter_behind
            .normalize()
            .expect("a lagging counter is raised");
        assert_eq!(counter_behind.next_file.0, 8);

        let mut wal_is_table = s.clone();
        wal_is_table.live_wals.insert(FileNumber(4));
        assert!(wal_is_table.normalize().is_err());

        let mut overlap = s.clone();
        overlap.levels[1].push(table(1, 1, "b", "e", 1));
        assert!(overlap.normalize().is_err());
    }
}
