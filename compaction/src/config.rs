//! Compaction settings (the engine's `Options` fills them; defaults here
//! are the documented ones).

/// How the tree is shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// Levels, L0 included. Default 7.
    pub num_levels: usize,
    /// L0 table count that makes L0 worth compacting (score 1.0). Default 4.
    pub l0_trigger: usize,
    /// L0 table count at which writes are slowed down. Default 8.
    pub l0_slowdown: usize,
    /// L0 table count at which writes wait for compaction. Default 12.
    pub l0_stop: usize,
    /// Target size of the base level (the level L0 compacts into) in bytes.
    /// Default 256 MiB.
    pub base_level_bytes: u64,
    /// Each level's target is this many times the one above. Default 10.
    pub level_multiplier: u64,
    /// Output tables are cut at about this size (at a user-key boundary).
    /// Default 64 MiB.
    pub target_table_bytes: u64,
    /// Share of a last-level table's entries, in percent, that tombstones
    /// and older versions must reach for the table to be compacted into
    /// itself (see [`crate::garbage`]). Default 20.
    pub garbage_percent_min: u64,
    /// Share of the tree's bytes, in percent, that the versions a level
    /// likely shadows below must reach for an idle database to merge it
    /// down (see [`crate::garbage`]). Default 2.
    pub idle_garbage_percent_min: u64,
    /// Share, in percent, of the bytes an idle merge would rewrite (its
    /// inputs and the tables below they overlap) that its estimated garbage
    /// must reach: a merge that reclaims little of what it writes is not
    /// worth its write amplification (see [`crate::garbage`]). Default 20
    /// (at most five bytes written per byte reclaimed).
    pub idle_garbage_yield_percent_min: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            num_levels: 7,
            l0_trigger: 4,
            l0_slowdown: 8,
            l0_stop: 12,
            base_level_bytes: 256 << 20,
            level_multiplier: 10,
            target_table_bytes: 64 << 20,
            garbage_percent_min: 20,
            idle_garbage_percent_min: 2,
            idle_garbage_yield_percent_min: 20,
        }
    }
}

impl CompactionConfig {
    /// Index of the last level.
    pub fn last_level(&self) -> usize {
        self.num_levels - 1
    }

    /// Checks the settings; `Err` says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_levels < 2 {
            return Err(format!("num_levels {} must be at least 2", self.num_levels));
        }
        if self.l0_trigger == 0 {
            return Err("l0_compaction_trigger must be at least 1".into());
        }
        if !(self.l0_trigger <= self.l0_slowdown && self.l0_slowdown <= self.l0_stop) {
            return Err(format!(
                "L0 triggers must satisfy compaction {} <= slowdown {} <= stop {}",
                self.l0_trigger, self.l0_slowdown, self.l0_stop
            ));
        }
        if self.level_multiplier < 2 {
            return Err("level_size_multiplier must be at least 2".into());
        }
        if self.garbage_percent_min == 0 || self.garbage_percent_min > 100 {
            return Err("garbage_percent_min must be in 1..=100".into());
        }
        if self.idle_garbage_percent_min == 0 || self.idle_garbage_percent_min > 100 {
            return Err("idle_garbage_percent_min must be in 1..=100".into());
        }
        if self.idle_garbage_yield_percent_min > 100 {
            return Err("idle_garbage_yield_percent_min must be in 0..=100".into());
        }
        if self.base_level_bytes < 1024 || self.target_table_bytes < 1024 {
            return Err("base_level_size and target_table_size must be at least 1 KiB".into());
        }
        Ok(())
    }
}
