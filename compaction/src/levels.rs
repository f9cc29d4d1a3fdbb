//! The level model: dynamic level targets and scores.
//!
//! Targets are computed from the bottom up, as in RocksDB's dynamic level
//! sizing: the last level's target is its actual size (at least the base
//! size); each level above gets a `level_multiplier`-th of the one below,
//! until a level's target falls to the base size — that level is the *base
//! level*, the one L0 compacts into. Levels between L0 and the base level
//! stay empty. While the last level is small, the base level *is* the last
//! level, so L0 data goes straight to the bottom and is not rewritten on its
//! way down through empty levels.

use jkv_manifest::TableMeta;

use crate::config::CompactionConfig;

/// Targets and scores of every level at one point in time.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelTargets {
    /// The level L0 compacts into (1..=last).
    pub base_level: usize,
    /// Target bytes per level; 0 for L0 and for levels above the base.
    pub target_bytes: Vec<u64>,
    /// Score per level: L0 by table count over its trigger, base..last-1 by
    /// size over target, levels above the base by their having data at all
    /// (any data there is left over and should move down), the last level 0
    /// (it has nowhere to go).
    pub scores: Vec<f64>,
}

impl LevelTargets {
    /// Computes targets and scores for `levels` (index = level).
    pub fn compute(levels: &[Vec<TableMeta>], config: &CompactionConfig) -> LevelTargets {
        let n = config.num_levels.min(levels.len()).max(2);
        let last = n - 1;
        let size = |l: usize| -> u64 { levels[l].iter().map(|t| t.size_bytes).sum() };
        let mut target_bytes = vec![0u64; n];
        let mut target = size(last).max(config.base_level_bytes);
        let mut base_level = last;
        target_bytes[last] = target;
        // Add a level above while the current one is larger than the base
        // size; the topmost one gets at least the base size.
        while base_level > 1 && target > config.base_level_bytes {
            target = (target / config.level_multiplier).max(config.base_level_bytes);
            base_level -= 1;
            target_bytes[base_level] = target;
        }
        let mut scores = vec![0.0; n];
        scores[0] = levels[0].len() as f64 / config.l0_trigger as f64;
        for level in 1..last {
            let bytes = size(level);
            scores[level] = if level < base_level {
                if bytes > 0 {
                    // Left over from a time the base level was higher up.
                    1.0 + bytes as f64 / config.base_level_bytes as f64
                } else {
                    0.0
                }
            } else {
                bytes as f64 / target_bytes[level].max(1) as f64
            };
        }
        LevelTargets {
            base_level,
            target_bytes,
            scores,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(id: u64, size: u64) -> TableMeta {
        TableMeta {
            id: jkv_format::FileNumber(id),
            level: 0,
            size_bytes: size,
            entries: 1,
            smallest: vec![],
            largest: vec![],
            min_seq: jkv_format::SeqNo(0),
            max_seq: jkv_format::SeqNo(0),
            range_deletions: 0,
            deletions: 0,
            older_versions: 0,
        }
    }

    fn config() -> CompactionConfig {
        CompactionConfig {
            num_levels: 4,
            base_level_bytes: 100,
            level_multiplier: 10,
            ..CompactionConfig::default()
        }
    }

    #[test]
    fn small_tree_compacts_l0_straight_to_the_last_level() {
        let levels = vec![vec![table(1, 10); 5], vec![], vec![], vec![table(2, 50)]];
        let t = LevelTargets::compute(&levels, &config());
        assert_eq!(t.base_level, 3);
        assert_eq!(t.scores[0], 5.0 / 4.0);
    }

    #[test]
    fn base_level_moves_up_as_the_last_level_grows() {
        let levels = vec![vec![], vec![], vec![], vec![table(1, 5_000)]];
        let t = LevelTargets::compute(&levels, &config());
        // 5000 > 100, so L2 gets 500; 500 > 100, so L1 gets max(50, 100).
        assert_eq!(t.target_bytes[3], 5_000);
        assert_eq!(t.target_bytes[2], 500);
        assert_eq!(t.base_level, 1);
        assert_eq!(t.target_bytes[1], 100);
    }

    #[test]
    fn leftover_data_above_the_base_level_scores_high() {
        let levels = vec![vec![], vec![table(1, 10)], vec![], vec![table(2, 50)]];
        let t = LevelTargets::compute(&levels, &config());
        assert_eq!(t.base_level, 3);
        assert!(t.scores[1] > 1.0);
        assert_eq!(t.scores[2], 0.0);
    }

    #[test]
    fn level_over_target_scores_above_one() {
        let levels = vec![
            vec![],
            vec![],
            vec![table(1, 2_000)],
            vec![table(2, 10_000)],
        ];
        let t = LevelTargets::compute(&levels, &config());
        assert_eq!(t.target_bytes[2], 1_000);
        assert!((t.scores[2] - 2.0).abs() < 1e-9);
    }
}
