//! The garbage picker: compactions that only bring space down, chosen
//! from table metadata when the size-driven picker ([`crate::pick`]) has
//! nothing to do (docs/compaction.md, "Garbage compactions").
//!
//! A pure function like the rest of the picker: table metadata, the
//! running tasks, the oldest live snapshot and two flags from the engine
//! in, a task out; no I/O, no clock. The engine rate-limits these tasks
//! (it says when one may start through [`GarbageContext::allowed`]) so they
//! never starve the size-driven ones.
//!
//! Two rules, the first that finds something wins:
//! 1. **Bottom-level self-compaction.** A table of the last level whose
//!    tombstones and older versions (counted when it was written, kept then
//!    for snapshots) make up at least
//!    [`CompactionConfig::garbage_percent_min`] of its entries is merged
//!    into itself, dropping them — but only once no live snapshot is older
//!    than the table's newest entry, since until then the snapshot may need
//!    them and the task would write the same table again. The table with
//!    the largest share goes first.
//! 2. **Shadowed versions, when idle.** On a database that has seen no
//!    write for a while, L0 (all of it, into the base level) or one table
//!    of a level above the last (into the next level) is merged down when
//!    the bytes the merge would take off the disk reach
//!    [`CompactionConfig::idle_garbage_percent_min`] of the tree's bytes
//!    and [`CompactionConfig::idle_garbage_yield_percent_min`] of the bytes
//!    it rewrites (inputs and the overlapped tables below): merging one
//!    upper table into a large last level rewrites far more than it
//!    reclaims, and is left for the size-driven picker. The bytes saved are
//!    estimated from entry counts (`estimate`): an overwrite workload
//!    shadows one version below per entry, the inputs' own tombstones and
//!    older versions go, overlapping L0 tables shadow each other, and the
//!    survivors take the entry size of the level below (which counts what
//!    a compressed last level saves). The largest estimate goes first.

use jkv_format::key::user_key;
use jkv_format::SeqNo;
use jkv_manifest::TableMeta;

use crate::config::CompactionConfig;
use crate::levels::LevelTargets;
use crate::picker::{build, CompactionTask, TaskKind, TaskReason};
use crate::status::CompactionStatus;
use crate::{overlaps, user_key_range};

/// What the engine tells the garbage picker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GarbageContext {
    /// Sequence number of the oldest live snapshot; `None` when there is
    /// none.
    pub oldest_snapshot: Option<SeqNo>,
    /// A garbage task may start now (none is running and the engine's rate
    /// limit allows one).
    pub allowed: bool,
    /// The database has seen no write for a while: shadowed versions count
    /// too (rule 2).
    pub idle: bool,
}

/// Tombstones and older versions in `t`.
fn own_garbage(t: &TableMeta) -> u64 {
    (t.deletions + t.older_versions).min(t.entries)
}

/// The next garbage compaction, or `None`.
pub fn pick_garbage(
    levels: &[Vec<TableMeta>],
    status: &CompactionStatus,
    config: &CompactionConfig,
    context: &GarbageContext,
) -> Option<CompactionTask> {
    if !context.allowed || levels.len() < 2 {
        return None;
    }
    bottom_self_compaction(levels, status, config, context).or_else(|| {
        context
            .idle
            .then(|| shadowed(levels, status, config))
            .flatten()
    })
}

fn bottom_self_compaction(
    levels: &[Vec<TableMeta>],
    status: &CompactionStatus,
    config: &CompactionConfig,
    context: &GarbageContext,
) -> Option<CompactionTask> {
    let last = levels.len() - 1;
    let mut best: Option<(&TableMeta, u64)> = None;
    for t in &levels[last] {
        if t.entries == 0 || status.is_busy(t.id) {
            continue;
        }
        if context.oldest_snapshot.is_some_and(|s| s < t.max_seq) {
            continue;
        }
        let percent = own_garbage(t) * 100 / t.entries;
        if percent >= config.garbage_percent_min
            && percent > 0
            && best.is_none_or(|(_, p)| percent > p)
        {
            best = Some((t, percent));
        }
    }
    let (table, percent) = best?;
    let task = CompactionTask {
        inputs: vec![table.clone()],
        output_level: last,
        drop_tombstones: true,
        kind: TaskKind::Merge,
        score: percent as f64 / 100.0,
        reason: TaskReason::Garbage,
    };
    (!status.conflicts(&task)).then_some(task)
}

fn shadowed(
    levels: &[Vec<TableMeta>],
    status: &CompactionStatus,
    config: &CompactionConfig,
) -> Option<CompactionTask> {
    let last = levels.len() - 1;
    let tree_bytes: u64 = levels.iter().flatten().map(|t| t.size_bytes).sum();
    if tree_bytes == 0 {
        return None;
    }
    let base_level = LevelTargets::compute(levels, config).base_level;
    // (inputs, output level), largest estimate first.
    let mut candidates: Vec<(u64, Vec<&TableMeta>, usize)> = Vec::new();
    if !levels[0].is_empty() && !levels[0].iter().any(|t| status.is_busy(t.id)) {
        let inputs: Vec<&TableMeta> = levels[0].iter().collect();
        candidates.push((estimate(levels, &inputs, base_level), inputs, base_level));
    }
    for level in 1..last {
        for t in levels[level].iter().filter(|t| !status.is_busy(t.id)) {
            candidates.push((estimate(levels, &[t], level + 1), vec![t], level + 1));
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates
        .into_iter()
        .take_while(|(bytes, _, _)| {
            *bytes > 0 && bytes * 100 >= config.idle_garbage_percent_min * tree_bytes
        })
        .find_map(|(bytes, inputs, output_level)| {
            let score = bytes as f64 / tree_bytes as f64;
            build(levels, inputs, output_level, status, score)
                .filter(|task| {
                    bytes * 100 >= config.idle_garbage_yield_percent_min * task.input_bytes()
                })
                .map(|mut task| {
                    task.reason = TaskReason::Garbage;
                    task
                })
        })
}

/// Estimated bytes that merging `inputs` into `output_level` takes off the
/// disk: the bytes of the inputs and of the tables below they overlap,
/// less the estimated size of the output — the entries that survive (all
/// but the versions below the inputs likely shadow, the inputs' own
/// tombstones and older versions, and what overlapping inputs shadow in
/// each other) at the average entry size of the tables below (of the
/// inputs when nothing lies below), so a merge into a compressed level
/// also counts what compressing the inputs saves.
fn estimate(levels: &[Vec<TableMeta>], inputs: &[&TableMeta], output_level: usize) -> u64 {
    let Some((lo, hi)) = user_key_range(inputs) else {
        return 0;
    };
    let below: Vec<&TableMeta> = levels[output_level]
        .iter()
        .filter(|t| overlaps(t, &lo, &hi))
        .collect();
    let entries = |ts: &[&TableMeta]| ts.iter().map(|t| t.entries).sum::<u64>();
    let bytes = |ts: &[&TableMeta]| ts.iter().map(|t| t.size_bytes).sum::<u64>();
    let (in_entries, below_entries) = (entries(inputs), entries(&below));
    let (in_bytes, below_bytes) = (bytes(inputs), bytes(&below));
    let dropped = in_entries.min(below_entries)
        + inputs.iter().map(|t| own_garbage(t)).sum::<u64>()
        + shadowed_among(inputs);
    let all_entries = in_entries + below_entries;
    let Some(avg_after) = below_bytes
        .checked_div(below_entries)
        .or_else(|| in_bytes.checked_div(in_entries))
    else {
        return 0;
    };
    let after = all_entries.saturating_sub(dropped) * avg_after;
    (in_bytes + below_bytes).saturating_sub(after)
}

/// Estimated entries that overlapping inputs (L0 tables, newest first)
/// shadow in each other: for each table, the smaller of its entry count
/// and that of the newer inputs it overlaps.
fn shadowed_among(inputs: &[&TableMeta]) -> u64 {
    let mut shadowed = 0;
    for (i, t) in inputs.iter().enumerate() {
        let (lo, hi) = (user_key(&t.smallest), user_key(&t.largest));
        let newer: u64 = inputs[..i]
            .iter()
            .filter(|n| overlaps(n, lo, hi))
            .map(|n| n.entries)
            .sum();
        shadowed += newer.min(t.entries);
    }
    shadowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::{FileNumber, InternalKey, ValueKind};

    /// Table `id` of `level` over keys `lo..=hi` with `entries` entries of
    /// 10 bytes, `garbage` of them tombstones and older versions, newest
    /// sequence number `max_seq`.
    fn t(id: u64, level: u32, lo: &str, hi: &str, entries: u64, garbage: u64) -> TableMeta {
        TableMeta {
            id: FileNumber(id),
            level,
            size_bytes: entries * 10,
            entries,
            smallest: InternalKey::new(lo.as_bytes(), SeqNo(id * 10 + 1), ValueKind::Value)
                .into_vec(),
            largest: InternalKey::new(hi.as_bytes(), SeqNo(id * 10), ValueKind::Value).into_vec(),
            min_seq: SeqNo(id * 10),
            max_seq: SeqNo(id * 10 + 1),
            range_deletions: 0,
            deletions: garbage / 2,
            older_versions: garbage - garbage / 2,
        }
    }

    fn config() -> CompactionConfig {
        CompactionConfig {
            num_levels: 4,
            l0_trigger: 4,
            l0_slowdown: 8,
            l0_stop: 12,
            base_level_bytes: 1_000_000,
            level_multiplier: 10,
            target_table_bytes: 100_000,
            garbage_percent_min: 20,
            idle_garbage_percent_min: 2,
            idle_garbage_yield_percent_min: 20,
        }
    }

    fn allowed() -> GarbageContext {
        GarbageContext {
            oldest_snapshot: None,
            allowed: true,
            idle: false,
        }
    }

    fn ids(task: &CompactionTask) -> Vec<u64> {
        let mut ids: Vec<u64> = task.inputs.iter().map(|t| t.id.0).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_bottom_table_past_the_share_compacts_into_itself() {
        let levels = vec![
            vec![],
            vec![],
            vec![],
            vec![t(1, 3, "a", "c", 1000, 100), t(2, 3, "d", "f", 1000, 300)],
        ];
        let status = CompactionStatus::new(4);
        let task = pick_garbage(&levels, &status, &config(), &allowed()).unwrap();
        assert_eq!(ids(&task), vec![2]);
        assert_eq!(task.output_level, 3);
        assert_eq!(task.kind, TaskKind::Merge);
        assert_eq!(task.reason, TaskReason::Garbage);
        assert!(task.drop_tombstones);
        // Under the share: nothing.
        let clean = vec![vec![], vec![], vec![], vec![t(1, 3, "a", "c", 1000, 199)]];
        assert_eq!(pick_garbage(&clean, &status, &config(), &allowed()), None);
    }

    #[test]
    fn nothing_unless_allowed() {
        let levels = vec![vec![], vec![], vec![], vec![t(1, 3, "a", "c", 1000, 900)]];
        let status = CompactionStatus::new(4);
        let context = GarbageContext {
            allowed: false,
            idle: true,
            ..allowed()
        };
        assert_eq!(pick_garbage(&levels, &status, &config(), &context), None);
    }

    #[test]
    fn a_snapshot_older_than_the_table_holds_its_garbage() {
        // Table 1's newest entry is 11: a snapshot at 11 or later sees
        // nothing the table's older versions could still show.
        let levels = vec![vec![], vec![], vec![], vec![t(1, 3, "a", "c", 1000, 900)]];
        let status = CompactionStatus::new(4);
        let at = |s| GarbageContext {
            oldest_snapshot: Some(SeqNo(s)),
            ..allowed()
        };
        assert_eq!(pick_garbage(&levels, &status, &config(), &at(10)), None);
        assert!(pick_garbage(&levels, &status, &config(), &at(11)).is_some());
    }

    #[test]
    fn busy_tables_are_skipped() {
        let levels = vec![
            vec![],
            vec![],
            vec![],
            vec![t(1, 3, "a", "c", 1000, 900), t(2, 3, "d", "f", 1000, 300)],
        ];
        let mut status = CompactionStatus::new(4);
        let first = pick_garbage(&levels, &status, &config(), &allowed()).unwrap();
        assert_eq!(ids(&first), vec![1]);
        status.register(&first);
        let second = pick_garbage(&levels, &status, &config(), &allowed()).unwrap();
        assert_eq!(ids(&second), vec![2]);
        status.register(&second);
        assert_eq!(pick_garbage(&levels, &status, &config(), &allowed()), None);
    }

    #[test]
    fn l0_shadowing_the_bottom_drains_only_when_idle() {
        // One L0 table (below the trigger of 4) over the whole range of a
        // bottom level of 10,000 entries: it likely shadows 3,000 of them.
        let levels = vec![
            vec![t(9, 0, "a", "z", 3000, 0)],
            vec![],
            vec![],
            vec![t(1, 3, "a", "m", 5000, 0), t(2, 3, "n", "z", 5000, 0)],
        ];
        let status = CompactionStatus::new(4);
        assert_eq!(pick_garbage(&levels, &status, &config(), &allowed()), None);
        let idle = GarbageContext {
            idle: true,
            ..allowed()
        };
        let task = pick_garbage(&levels, &status, &config(), &idle).unwrap();
        assert_eq!(ids(&task), vec![1, 2, 9]);
        assert_eq!(task.output_level, 3);
        assert_eq!(task.reason, TaskReason::Garbage);
    }

    #[test]
    fn an_idle_merge_that_rewrites_far_more_than_it_reclaims_is_left() {
        // 1,000 entries over a bottom of 10,000: 10,000 of 110,000 bytes
        // (9%) of the tree, above the 2% threshold, but the merge rewrites
        // 110,000 bytes to reclaim them (9%, below the 20% yield).
        let levels = vec![
            vec![t(9, 0, "a", "z", 1000, 0)],
            vec![],
            vec![],
            vec![t(1, 3, "a", "m", 5000, 0), t(2, 3, "n", "z", 5000, 0)],
        ];
        let idle = GarbageContext {
            idle: true,
            ..allowed()
        };
        let status = CompactionStatus::new(4);
        assert_eq!(pick_garbage(&levels, &status, &config(), &idle), None);
        // Against one bottom table of 5,000 the same L0 table is worth it.
        let small = vec![
            vec![t(9, 0, "a", "m", 1000, 0)],
            vec![],
            vec![],
            vec![t(1, 3, "a", "m", 3000, 0), t(2, 3, "n", "z", 20_000, 0)],
        ];
        let task = pick_garbage(&small, &status, &config(), &idle).unwrap();
        assert_eq!(ids(&task), vec![1, 9]);
    }

    #[test]
    fn idle_shadowing_below_the_threshold_is_left() {
        // 20 entries over a bottom of 10,000: 200 of 100,200 bytes (0.2%).
        let levels = vec![
            vec![t(9, 0, "a", "z", 20, 0)],
            vec![],
            vec![],
            vec![t(1, 3, "a", "m", 5000, 0), t(2, 3, "n", "z", 5000, 0)],
        ];
        let idle = GarbageContext {
            idle: true,
            ..allowed()
        };
        assert_eq!(
            pick_garbage(&levels, &CompactionStatus::new(4), &config(), &idle),
            None
        );
        // Nothing below to shadow: a move is no garbage compaction.
        let alone = vec![vec![t(9, 0, "a", "z", 3000, 0)], vec![], vec![], vec![]];
        assert_eq!(
            pick_garbage(&alone, &CompactionStatus::new(4), &config(), &idle),
            None
        );
    }

    #[test]
    fn idle_merges_l0_tables_that_shadow_each_other() {
        // Three overlapping L0 tables (newest first) over an empty last
        // level: each older one likely shadowed by the newer.
        let levels = vec![
            vec![
                t(9, 0, "a", "z", 1000, 0),
                t(8, 0, "a", "z", 1000, 0),
                t(7, 0, "a", "z", 1000, 0),
            ],
            vec![],
            vec![],
            vec![],
        ];
        let idle = GarbageContext {
            idle: true,
            ..allowed()
        };
        let task = pick_garbage(&levels, &CompactionStatus::new(4), &config(), &idle).unwrap();
        assert_eq!(ids(&task), vec![7, 8, 9]);
        assert_eq!(task.kind, TaskKind::Merge);
        // Disjoint L0 tables over an empty level shadow nothing.
        let disjoint = vec![
            vec![t(9, 0, "a", "c", 1000, 0), t(8, 0, "d", "f", 1000, 0)],
            vec![],
            vec![],
            vec![],
        ];
        assert_eq!(
            pick_garbage(&disjoint, &CompactionStatus::new(4), &config(), &idle),
            None
        );
    }

    #[test]
    fn idle_moves_an_upper_table_onto_the_level_below() {
        let levels = vec![
            vec![],
            vec![],
            vec![t(5, 2, "a", "f", 2000, 0), t(6, 2, "x", "y", 10, 0)],
            vec![t(1, 3, "a", "m", 5000, 0), t(2, 3, "n", "z", 5000, 0)],
        ];
        let idle = GarbageContext {
            idle: true,
            ..allowed()
        };
        let task = pick_garbage(&levels, &CompactionStatus::new(4), &config(), &idle).unwrap();
        assert_eq!(ids(&task), vec![1, 5]);
        assert_eq!(task.output_level, 3);
        assert!(task.drop_tombstones);
    }
}
