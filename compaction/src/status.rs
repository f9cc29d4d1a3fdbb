//! Conflict tracking: which tables and output key ranges the running
//! compaction tasks hold. The picker only hands out a task that touches
//! no busy table and whose output range does not meet the output range of
//! a running task on the same level.
//!
//! Not synchronised itself: the engine keeps it under one mutex together
//! with the decision to start a task.

use std::collections::HashSet;

use jkv_format::key::user_key;
use jkv_format::FileNumber;

use crate::picker::CompactionTask;

/// One running task's claim.
#[derive(Clone, Debug)]
struct Claim {
    id: u64,
    tables: Vec<FileNumber>,
    output_level: usize,
    smallest: Vec<u8>,
    largest: Vec<u8>,
}

/// The running tasks and their claims.
#[derive(Clone, Debug, Default)]
pub struct CompactionStatus {
    busy: HashSet<FileNumber>,
    claims: Vec<Claim>,
    next_id: u64,
    /// Per level, the largest user key of the last table compacted out of
    /// it: the next pick in that level starts after it (round robin, so
    /// every key range gets its turn).
    cursors: Vec<Vec<u8>>,
    /// Largest number of tasks that ran at once (for tests and stats).
    running_max: usize,
}

impl CompactionStatus {
    /// No task running.
    pub fn new(num_levels: usize) -> Self {
        CompactionStatus {
            cursors: vec![Vec::new(); num_levels],
            ..CompactionStatus::default()
        }
    }

    /// Whether a running task holds table `id`.
    pub fn is_busy(&self, id: FileNumber) -> bool {
        self.busy.contains(&id)
    }

    /// Whether a running task writes into `level` over a user-key range that
    /// meets `[lo, hi]`.
    pub fn output_range_taken(&self, level: usize, lo: &[u8], hi: &[u8]) -> bool {
        self.claims.iter().any(|c| {
            c.output_level == level && c.smallest.as_slice() <= hi && c.largest.as_slice() >= lo
        })
    }

    /// Whether `task` can run now.
    pub fn conflicts(&self, task: &CompactionTask) -> bool {
        task.inputs.iter().any(|t| self.is_busy(t.id)) || {
            let (lo, hi) = task.user_key_range();
            self.output_range_taken(task.output_level, &lo, &hi)
        }
    }

    /// Records `task` as running and returns its id.
    ///
    /// # Panics
    /// If the task conflicts with a running one: the caller must check
    /// [`CompactionStatus::conflicts`] under the same lock.
    pub fn register(&mut self, task: &CompactionTask) -> u64 {
        assert!(
            !self.conflicts(task),
            "a registered compaction task must not conflict with a running one"
        );
        let (smallest, largest) = task.user_key_range();
        for t in &task.inputs {
            self.busy.insert(t.id);
            if t.level > 0
                && (t.level as usize) < self.cursors.len()
                && (t.level as usize) < task.output_level
            {
                let cursor = &mut self.cursors[t.level as usize];
                let key = user_key(&t.largest);
                *cursor = key.to_vec();
            }
        }
        self.next_id += 1;
        self.claims.push(Claim {
            id: self.next_id,
            tables: task.inputs.iter().map(|t| t.id).collect(),
            output_level: task.output_level,
            smallest,
            largest,
        });
        self.running_max = self.running_max.max(self.claims.len());
        self.next_id
    }

    /// Releases the claims of task `id`.
    pub fn finish(&mut self, id: u64) {
        if let Some(i) = self.claims.iter().position(|c| c.id == id) {
            let claim = self.claims.swap_remove(i);
            for t in claim.tables {
                self.busy.remove(&t);
            }
        }
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.claims.len()
    }

    /// Most tasks that ever ran at once.
    pub fn running_max(&self) -> usize {
        self.running_max
    }

    /// Where the next pick in `level` starts (empty: from the first table).
    pub fn cursor(&self, level: usize) -> &[u8] {
        self.cursors.get(level).map_or(&[], |c| c.as_slice())
    }
}
