//! The picker: a pure function from table metadata and running tasks to the
//! next compaction task.
//!
//! Policy (docs/compaction.md):
//! - Levels are ranked by score ([`LevelTargets`]); the best level with a
//!   score of at least 1 whose task does not conflict with a running one
//!   wins.
//! - L0 compacts all its tables at once into the base level (L0 tables
//!   overlap and are ordered by age; moving only some of them could put
//!   newer data below older data).
//! - Deeper levels compact one table, chosen round robin after the last one
//!   compacted, into the next level together with the tables it overlaps.
//! - Inputs that do not overlap each other nor anything in the output level
//!   are moved, not rewritten.
//! - Tombstones may be dropped when no level below the output holds the
//!   task's key range.

use jkv_format::key::user_key;
use jkv_manifest::TableMeta;

use crate::config::CompactionConfig;
use crate::levels::LevelTargets;
use crate::status::CompactionStatus;
use crate::{overlaps, user_key_range};

/// How a task changes the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Merge the inputs into new tables.
    Merge,
    /// Re-level the inputs unchanged (a manifest edit, no I/O on tables).
    Move,
}

/// Why a task was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskReason {
    /// A level over its target (or L0 over its trigger): [`pick`].
    Score,
    /// Garbage to drop: [`crate::garbage::pick_garbage`].
    Garbage,
    /// `compact_range`: [`manual_task`].
    Manual,
}

/// One compaction: inputs (each with its level) become tables of
/// `output_level`.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactionTask {
    /// Every input table, from the input level(s) and the output level.
    pub inputs: Vec<TableMeta>,
    /// The level the outputs go to.
    pub output_level: usize,
    /// No deeper level holds any key of the task's range: versions hidden
    /// from every snapshot and tombstones visible to all can go.
    pub drop_tombstones: bool,
    /// Merge or move.
    pub kind: TaskKind,
    /// The score that chose the task (0 for manual tasks; the garbage
    /// share or estimate for garbage tasks).
    pub score: f64,
    /// Which picker chose it.
    pub reason: TaskReason,
}

impl CompactionTask {
    /// User-key range `[smallest, largest]` of all inputs.
    pub fn user_key_range(&self) -> (Vec<u8>, Vec<u8>) {
        let refs: Vec<&TableMeta> = self.inputs.iter().collect();
        user_key_range(&refs).unwrap_or_default()
    }

    /// Bytes of all inputs.
    pub fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|t| t.size_bytes).sum()
    }

    /// The lowest level an input comes from.
    pub fn input_level(&self) -> usize {
        self.inputs
            .iter()
            .map(|t| t.level as usize)
            .min()
            .unwrap_or(0)
    }
}

/// Tables of `level` whose user-key range meets `[lo, hi]`.
fn overlapping<'a>(
    levels: &'a [Vec<TableMeta>],
    level: usize,
    lo: &[u8],
    hi: &[u8],
) -> Vec<&'a TableMeta> {
    levels[level]
        .iter()
        .filter(|t| overlaps(t, lo, hi))
        .collect()
}

/// Whether any level below `level` holds a key in `[lo, hi]`.
fn deeper_levels_hold(levels: &[Vec<TableMeta>], level: usize, lo: &[u8], hi: &[u8]) -> bool {
    levels
        .iter()
        .skip(level + 1)
        .any(|tables| tables.iter().any(|t| overlaps(t, lo, hi)))
}

/// Whether the tables' user-key ranges are pairwise disjoint.
fn pairwise_disjoint(tables: &[&TableMeta]) -> bool {
    let mut ranges: Vec<(&[u8], &[u8])> = tables
        .iter()
        .map(|t| (user_key(&t.smallest), user_key(&t.largest)))
        .collect();
    ranges.sort();
    ranges.windows(2).all(|w| w[0].1 < w[1].0)
}

/// Builds the task for `inputs` (from `input_level`) into `output_level`,
/// or `None` if it conflicts with a running task.
pub(crate) fn build(
    levels: &[Vec<TableMeta>],
    inputs: Vec<&TableMeta>,
    output_level: usize,
    status: &CompactionStatus,
    score: f64,
) -> Option<CompactionTask> {
    let (lo, hi) = user_key_range(&inputs)?;
    let below = overlapping(levels, output_level, &lo, &hi);
    let kind = if below.is_empty() && pairwise_disjoint(&inputs) {
        TaskKind::Move
    } else {
        TaskKind::Merge
    };
    let mut all: Vec<TableMeta> = inputs.into_iter().cloned().collect();
    all.extend(below.into_iter().cloned());
    let refs: Vec<&TableMeta> = all.iter().collect();
    let (lo, hi) = user_key_range(&refs)?;
    let task = CompactionTask {
        drop_tombstones: !deeper_levels_hold(levels, output_level, &lo, &hi),
        inputs: all,
        output_level,
        kind,
        score,
        reason: TaskReason::Score,
    };
    (!status.conflicts(&task)).then_some(task)
}

/// The next task worth running, or `None` when every level is within its
/// target or every candidate conflicts with a running task.
pub fn pick(
    levels: &[Vec<TableMeta>],
    status: &CompactionStatus,
    config: &CompactionConfig,
) -> Option<CompactionTask> {
    let targets = LevelTargets::compute(levels, config);
    let mut ranked: Vec<(usize, f64)> = targets
        .scores
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, s)| s >= 1.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (level, score) in ranked {
        let task = if level == 0 {
            pick_level0(levels, status, targets.base_level, score)
        } else {
            pick_level(levels, level, status, score)
        };
        if task.is_some() {
            return task;
        }
    }
    None
}

fn pick_level0(
    levels: &[Vec<TableMeta>],
    status: &CompactionStatus,
    base_level: usize,
    score: f64,
) -> Option<CompactionTask> {
    if levels[0].is_empty() || levels[0].iter().any(|t| status.is_busy(t.id)) {
        return None;
    }
    build(
        levels,
        levels[0].iter().collect(),
        base_level,
        status,
        score,
    )
}

fn pick_level(
    levels: &[Vec<TableMeta>],
    level: usize,
    status: &CompactionStatus,
    score: f64,
) -> Option<CompactionTask> {
    let tables = &levels[level];
    if tables.is_empty() || level + 1 >= levels.len() {
        return None;
    }
    let cursor = status.cursor(level);
    let start = if cursor.is_empty() {
        0
    } else {
        tables.partition_point(|t| user_key(&t.smallest) <= cursor)
    };
    (0..tables.len())
        .map(|i| &tables[(start + i) % tables.len()])
        .filter(|t| !status.is_busy(t.id))
        .find_map(|t| build(levels, vec![t], level + 1, status, score))
}

/// A manual task for `compact_range`: every table, in any level, whose range
/// meets `[lo, hi]` (`None` = unbounded), grown until no table outside the
/// task overlaps its range, merged into the last level. `Err(())` when a
/// running task holds one of those tables (wait and retry); `Ok(None)` when
/// there is nothing to do.
#[allow(clippy::result_unit_err)]
pub fn manual_task(
    levels: &[Vec<TableMeta>],
    lo: Option<&[u8]>,
    hi: Option<&[u8]>,
    status: &CompactionStatus,
) -> Result<Option<CompactionTask>, ()> {
    let last = levels.len() - 1;
    let within = |t: &TableMeta| {
        lo.is_none_or(|lo| user_key(&t.largest) >= lo)
            && hi.is_none_or(|hi| user_key(&t.smallest) <= hi)
    };
    let mut chosen: Vec<&TableMeta> = levels.iter().flatten().filter(|t| within(t)).collect();
    loop {
        let Some((lo, hi)) = user_key_range(&chosen) else {
            return Ok(None);
        };
        let grown: Vec<&TableMeta> = levels
            .iter()
            .flatten()
            .filter(|t| overlaps(t, &lo, &hi))
            .collect();
        if grown.len() == chosen.len() {
            break;
        }
        chosen = grown;
    }
    if chosen.iter().any(|t| status.is_busy(t.id)) {
        return Err(());
    }
    let task = CompactionTask {
        inputs: chosen.into_iter().cloned().collect(),
        output_level: last,
        drop_tombstones: true,
        kind: TaskKind::Merge,
        score: 0.0,
        reason: TaskReason::Manual,
    };
    if status.conflicts(&task) {
        return Err(());
    }
    Ok(Some(task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::{FileNumber, InternalKey, SeqNo, ValueKind};

    fn t(id: u64, level: u32, lo: &str, hi: &str, size: u64) -> TableMeta {
        TableMeta {
            id: FileNumber(id),
            level,
            size_bytes: size,
            entries: 10,
            smallest: InternalKey::new(lo.as_bytes(), SeqNo(id * 10 + 1), ValueKind::Value)
                .into_vec(),
            largest: InternalKey::new(hi.as_bytes(), SeqNo(id * 10), ValueKind::Value).into_vec(),
            min_seq: SeqNo(id * 10),
            max_seq: SeqNo(id * 10 + 1),
            range_deletions: 0,
            deletions: 0,
            older_versions: 0,
        }
    }

    fn config() -> CompactionConfig {
        CompactionConfig {
            num_levels: 4,
            l0_trigger: 2,
            l0_slowdown: 3,
            l0_stop: 4,
            base_level_bytes: 1000,
            level_multiplier: 10,
            target_table_bytes: 100,
            ..CompactionConfig::default()
        }
    }

    #[test]
    fn nothing_to_do_under_targets() {
        let levels = vec![vec![t(1, 0, "a", "b", 10)], vec![], vec![], vec![]];
        assert_eq!(pick(&levels, &CompactionStatus::new(4), &config()), None);
    }

    #[test]
    fn l0_goes_to_the_last_level_while_it_is_small() {
        let levels = vec![
            vec![t(3, 0, "a", "m", 10), t(2, 0, "c", "z", 10)],
            vec![],
            vec![],
            vec![t(1, 3, "b", "d", 10), t(4, 3, "x", "y", 10)],
        ];
        let task = pick(&levels, &CompactionStatus::new(4), &config()).unwrap();
        assert_eq!(task.output_level, 3);
        let mut ids: Vec<u64> = task.inputs.iter().map(|t| t.id.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        assert_eq!(task.kind, TaskKind::Merge);
        assert!(task.drop_tombstones);
    }

    #[test]
    fn disjoint_l0_tables_with_no_overlap_below_are_moved() {
        let levels = vec![
            vec![t(3, 0, "m", "p", 10), t(2, 0, "a", "c", 10)],
            vec![],
            vec![],
            vec![t(1, 3, "x", "z", 10)],
        ];
        let task = pick(&levels, &CompactionStatus::new(4), &config()).unwrap();
        assert_eq!(task.kind, TaskKind::Move);
        assert_eq!(task.inputs.len(), 2);
    }

    #[test]
    fn busy_tables_are_not_handed_out_twice() {
        let levels = vec![
            vec![t(3, 0, "a", "m", 10), t(2, 0, "c", "z", 10)],
            vec![],
            vec![],
            vec![],
        ];
        let mut status = CompactionStatus::new(4);
        let first = pick(&levels, &status, &config()).unwrap();
        status.register(&first);
        assert_eq!(pick(&levels, &status, &config()), None);
    }

    #[test]
    fn two_non_overlapping_tasks_can_run_together() {
        // L2 is over its target (base 1000, last level 10_000 -> L2 1000).
        let levels = vec![
            vec![],
            vec![],
            vec![t(1, 2, "a", "c", 1500), t(2, 2, "m", "p", 1500)],
            vec![t(5, 3, "a", "b", 10_000)],
        ];
        let mut status = CompactionStatus::new(4);
        let first = pick(&levels, &status, &config()).unwrap();
        status.register(&first);
        let second = pick(&levels, &status, &config()).unwrap();
        status.register(&second);
        let ids = |task: &CompactionTask| task.inputs.iter().map(|t| t.id).collect::<Vec<_>>();
        assert!(ids(&first).iter().all(|id| !ids(&second).contains(id)));
        assert_eq!(status.running(), 2);
        assert_eq!(status.running_max(), 2);
    }

    #[test]
    fn round_robin_moves_through_the_level() {
        let levels = vec![
            vec![],
            vec![],
            vec![t(1, 2, "a", "c", 1500), t(2, 2, "m", "p", 1500)],
            vec![t(5, 3, "a", "b", 10_000)],
        ];
        let mut status = CompactionStatus::new(4);
        let first = pick(&levels, &status, &config()).unwrap();
        let id = status.register(&first);
        status.finish(id);
        let second = pick(&levels, &status, &config()).unwrap();
        assert_ne!(first.inputs[0].id, second.inputs[0].id);
    }

    #[test]
    fn tombstones_kept_when_a_deeper_level_holds_the_range() {
        let levels = vec![
            vec![],
            vec![],
            vec![t(1, 2, "a", "c", 1500), t(2, 2, "m", "p", 1500)],
            vec![t(5, 3, "a", "b", 10_000)],
        ];
        let task = pick(&levels, &CompactionStatus::new(4), &config()).unwrap();
        assert_eq!(task.output_level, 3);
        assert!(task.drop_tombstones, "nothing below the last level");
        // The last level is large, so L1 is the base level; an L1 -> L2 task
        // must keep tombstones because L3 holds the same keys.
        let deep = vec![
            vec![],
            vec![t(1, 1, "a", "c", 1500)],
            vec![t(2, 2, "a", "b", 10)],
            vec![t(5, 3, "a", "b", 100_000)],
        ];
        let task = pick(&deep, &CompactionStatus::new(4), &config()).unwrap();
        assert_eq!(task.output_level, 2);
        assert!(!task.drop_tombstones);
    }

    #[test]
    fn manual_task_grows_to_a_closed_range() {
        let levels = vec![
            vec![t(9, 0, "c", "d", 10)],
            vec![],
            vec![t(1, 2, "a", "e", 10)],
            vec![t(5, 3, "e", "g", 10), t(6, 3, "x", "z", 10)],
        ];
        let task = manual_task(&levels, Some(b"c"), Some(b"c"), &CompactionStatus::new(4))
            .unwrap()
            .unwrap();
        let mut ids: Vec<u64> = task.inputs.iter().map(|t| t.id.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 5, 9]);
        assert_eq!(task.output_level, 3);
    }
}
