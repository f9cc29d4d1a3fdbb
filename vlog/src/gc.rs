//! The garbage-collection picker: which value-log files to collect next,
//! decided from plain facts about each file (docs/vlog-format.md, "Garbage
//! collection").
//!
//! [`pick`] is a pure function, like the compaction picker: no I/O, no
//! locks. The engine gathers [`VlogFileFacts`] (file sizes, the manifest's
//! discard counts, its own estimates), calls [`pick`], and carries out the
//! [`Choice`]: it deletes dropped files without reading them, and rewrites
//! the live entries of files to rewrite before retiring them.
//!
//! The rules, in order:
//! 1. **Drop**: every sealed file whose entries are all known dead (no
//!    version any reader can reach points into it) goes at once, whatever
//!    its size and whatever else is due.
//! 2. **Ratio**: of the sealed files whose garbage share has reached
//!    [`GcPolicy::garbage_ratio`], the one with the most garbage bytes.
//! 3. **Budget**: while the whole log is over [`GcPolicy::space_amp_max`]
//!    times its live bytes, the sealed file with the most garbage bytes,
//!    whatever its share.
//! 4. **Small files**: when more than [`GcPolicy::small_files_max`] sealed
//!    files are smaller than [`GcPolicy::small_file_bytes`] (each open of
//!    the database starts a new file, so short-lived processes leave many
//!    small ones), the oldest of them are merged: their live entries are
//!    rewritten together into the active file, at most
//!    [`GcPolicy::merge_bytes_max`] at a time. This keeps the number of
//!    files bounded however often the database is opened.
//!
//! The active file (still appended to) and busy files (being collected, or
//! collected and waiting for retirement) are never chosen; busy files do not
//! count towards the log's size either, since they are on their way out.

use jkv_format::FileNumber;

use crate::header::HEADER_LEN;

/// What the picker knows of one value-log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlogFileFacts {
    /// The file.
    pub number: FileNumber,
    /// Bytes of the file on disk, header included.
    pub size_bytes: u64,
    /// Bytes of entries dead for good: no version any reader can reach
    /// points to them (the manifest's persisted discard counts). A file
    /// whose entry bytes are all dead can be deleted without reading it.
    pub dead_bytes: u64,
    /// Bytes of entries probably garbage: at least `dead_bytes`, more when
    /// the write path has seen newer versions shadow entries (a snapshot may
    /// still read those, so they need a rewrite-and-retire, not a drop).
    pub garbage_bytes: u64,
}

impl VlogFileFacts {
    /// Bytes of entries (the file without its header).
    pub fn entry_bytes(&self) -> u64 {
        self.size_bytes.saturating_sub(HEADER_LEN as u64)
    }

    /// Every entry is dead (also true of a file with no entries).
    pub fn all_dead(&self) -> bool {
        self.dead_bytes >= self.entry_bytes()
    }

    /// Garbage bytes, at most the entry bytes.
    fn garbage(&self) -> u64 {
        self.garbage_bytes
            .max(self.dead_bytes)
            .min(self.entry_bytes())
    }

    /// Share of the file that is garbage, in [0, 1].
    fn garbage_ratio(&self) -> f64 {
        self.garbage() as f64 / self.size_bytes.max(1) as f64
    }
}

/// When collection is due. The engine derives it from its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GcPolicy {
    /// Garbage share in (0, 1] from which a file is rewritten (engine
    /// option `vlog_gc_garbage_ratio`, default 0.5).
    pub garbage_ratio: f64,
    /// Largest allowed total bytes ÷ live bytes of the log, at least 1.0
    /// (engine option `vlog_space_amp_max`, default 2.0).
    pub space_amp_max: f64,
    /// Files smaller than this are small (the engine uses a quarter of
    /// `vlog_file_size`).
    pub small_file_bytes: u64,
    /// More small sealed files than this are merged (the engine uses 8).
    pub small_files_max: usize,
    /// A merge takes small files, oldest first, until their bytes reach
    /// this (the engine uses `vlog_file_size`); always at least two files.
    pub merge_bytes_max: u64,
}

/// Why files are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The file's garbage share reached the ratio.
    Ratio,
    /// The log is over its space budget.
    OverBudget,
    /// Too many small files: they are merged.
    SmallFiles,
}

/// What to collect next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Delete these files without reading them: all their entries are dead.
    /// Ascending.
    Drop(Vec<FileNumber>),
    /// Rewrite the live entries of these files (ascending), then retire
    /// them.
    Rewrite {
        /// The files.
        files: Vec<FileNumber>,
        /// Which rule chose them.
        reason: Reason,
    },
}

/// The next collection step for `files`, or `None` when nothing is due.
/// `active` is the file appends go to (`None` before the first); `busy`
/// files are being collected already.
pub fn pick(
    files: &[VlogFileFacts],
    active: Option<FileNumber>,
    busy: &[FileNumber],
    policy: &GcPolicy,
) -> Option<Choice> {
    let present: Vec<&VlogFileFacts> = files.iter().filter(|f| !busy.contains(&f.number)).collect();
    let mut sealed: Vec<&VlogFileFacts> = present
        .iter()
        .copied()
        .filter(|f| Some(f.number) != active)
        .collect();
    sealed.sort_by_key(|f| f.number);

    let dropped: Vec<FileNumber> = sealed
        .iter()
        .filter(|f| f.all_dead())
        .map(|f| f.number)
        .collect();
    if !dropped.is_empty() {
        return Some(Choice::Drop(dropped));
    }

    let most_garbage = |candidates: &mut dyn Iterator<Item = &&VlogFileFacts>| {
        candidates
            .filter(|f| f.garbage() > 0)
            .max_by(|a, b| {
                a.garbage()
                    .cmp(&b.garbage())
                    .then(a.garbage_ratio().total_cmp(&b.garbage_ratio()))
                    // Older first among equals.
                    .then(b.number.cmp(&a.number))
            })
            .map(|f| f.number)
    };
    let rewrite = |file: FileNumber, reason: Reason| Choice::Rewrite {
        files: vec![file],
        reason,
    };

    let past_ratio = most_garbage(
        &mut sealed
            .iter()
            .filter(|f| f.garbage_ratio() >= policy.garbage_ratio),
    );
    if let Some(file) = past_ratio {
        return Some(rewrite(file, Reason::Ratio));
    }

    let total: u64 = present.iter().map(|f| f.size_bytes).sum();
    let garbage: u64 = present.iter().map(|f| f.garbage()).sum();
    let live = total.saturating_sub(garbage).max(1);
    if total as f64 > policy.space_amp_max * live as f64 {
        if let Some(file) = most_garbage(&mut sealed.iter()) {
            return Some(rewrite(file, Reason::OverBudget));
        }
    }

    let small: Vec<&VlogFileFacts> = sealed
        .iter()
        .copied()
        .filter(|f| f.size_bytes < policy.small_file_bytes)
        .collect();
    if small.len() > policy.small_files_max {
        let mut merged = Vec::new();
        let mut bytes = 0u64;
        for f in small {
            if merged.len() >= 2 && bytes >= policy.merge_bytes_max {
                break;
            }
            merged.push(f.number);
            bytes += f.size_bytes - f.garbage();
        }
        return Some(Choice::Rewrite {
            files: merged,
            reason: Reason::SmallFiles,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = HEADER_LEN as u64;

    fn policy() -> GcPolicy {
        GcPolicy {
            garbage_ratio: 0.5,
            space_amp_max: 2.0,
            small_file_bytes: 1000,
            small_files_max: 3,
            merge_bytes_max: 2500,
        }
    }

    /// File `n` of `size` bytes with `dead` dead and `garbage` estimated
    /// garbage bytes.
    fn file(n: u64, size: u64, dead: u64, garbage: u64) -> VlogFileFacts {
        VlogFileFacts {
            number: FileNumber(n),
            size_bytes: size,
            dead_bytes: dead,
            garbage_bytes: garbage,
        }
    }

    fn nums(ns: &[u64]) -> Vec<FileNumber> {
        ns.iter().map(|&n| FileNumber(n)).collect()
    }

    fn rewrite(ns: &[u64], reason: Reason) -> Option<Choice> {
        Some(Choice::Rewrite {
            files: nums(ns),
            reason,
        })
    }

    #[test]
    fn picks_over_a_table_of_cases() {
        struct Case {
            name: &'static str,
            files: Vec<VlogFileFacts>,
            active: Option<u64>,
            busy: Vec<u64>,
            want: Option<Choice>,
        }
        let big = 100_000;
        let cases = vec![
            Case {
                name: "no files",
                files: vec![],
                active: None,
                busy: vec![],
                want: None,
            },
            Case {
                name: "all live, within budget",
                files: vec![file(1, big, 0, 0), file(2, big, 0, 0)],
                active: Some(2),
                busy: vec![],
                want: None,
            },
            Case {
                name: "all-garbage files are dropped together, others left",
                files: vec![
                    file(1, big, big - H, big - H),
                    file(2, big, 10, 10),
                    file(3, 5000, 5000 - H, 5000 - H),
                    file(4, big, 0, 0),
                ],
                active: Some(4),
                busy: vec![],
                want: Some(Choice::Drop(nums(&[1, 3]))),
            },
            Case {
                name: "a file with no entries (header only) is dropped",
                files: vec![file(7, H, 0, 0), file(8, big, 0, 0)],
                active: None,
                busy: vec![],
                want: Some(Choice::Drop(nums(&[7]))),
            },
            Case {
                name: "a torn file shorter than its header is dropped",
                files: vec![file(7, 3, 0, 0)],
                active: None,
                busy: vec![],
                want: Some(Choice::Drop(nums(&[7]))),
            },
            Case {
                name: "drop comes before ratio",
                files: vec![file(1, big, 0, big - H), file(2, 500, 500 - H, 0)],
                active: None,
                busy: vec![],
                want: Some(Choice::Drop(nums(&[2]))),
            },
            Case {
                name: "estimated-only garbage is rewritten, not dropped",
                files: vec![file(1, big, 0, big - H), file(2, big, 0, 0)],
                active: Some(2),
                busy: vec![],
                want: rewrite(&[1], Reason::Ratio),
            },
            Case {
                name: "past the ratio: most garbage bytes wins",
                files: vec![
                    file(1, 10_000, 6_000, 6_000),
                    file(2, big, 60_000, 60_000),
                    file(3, big, 40_000, 40_000),
                ],
                active: None,
                busy: vec![],
                want: rewrite(&[2], Reason::Ratio),
            },
            Case {
                // The bug the fixture vlog-gc-stuck shows: the file with the
                // most garbage is under the ratio, and that hid the ones
                // past it.
                name: "a big file under the ratio does not hide smaller ones past it",
                files: vec![
                    file(1, 3_700_000, 980_000, 980_000),
                    file(2, 40_000, 30_000, 30_000),
                    file(3, 2_000_000, 0, 0),
                ],
                active: None,
                busy: vec![],
                want: rewrite(&[2], Reason::Ratio),
            },
            Case {
                name: "under the ratio and within budget: nothing",
                files: vec![file(1, big, 40_000, 40_000), file(2, big, 0, 0)],
                active: Some(2),
                busy: vec![],
                want: None,
            },
            Case {
                // 400,000 bytes, 221,000 garbage (90,000 of it estimated in
                // the active file): 179,000 live, 2.23x.
                name: "over budget: the most garbage, below the ratio",
                files: vec![
                    file(1, big, 45_000, 45_000),
                    file(2, big, 46_000, 46_000),
                    file(3, big, 40_000, 40_000),
                    file(4, big, 0, 90_000),
                ],
                active: Some(4),
                busy: vec![],
                want: rewrite(&[2], Reason::OverBudget),
            },
            Case {
                // 300,000 bytes, 85,000 garbage: 215,000 live, 1.40x.
                name: "within budget, below the ratio: nothing",
                files: vec![
                    file(1, big, 40_000, 40_000),
                    file(2, big, 45_000, 45_000),
                    file(3, big, 0, 0),
                ],
                active: Some(3),
                busy: vec![],
                want: None,
            },
            Case {
                // 110,000 bytes, 95,000 garbage, all of it in the active file.
                name: "over budget with no garbage in sealed files: nothing",
                files: vec![file(1, 10_000, 0, 0), file(2, big, 0, 95_000)],
                active: Some(2),
                busy: vec![],
                want: None,
            },
            Case {
                name: "the active file is never chosen",
                files: vec![file(1, big, big - H, big - H), file(2, big, 90_000, 90_000)],
                active: Some(1),
                busy: vec![],
                want: rewrite(&[2], Reason::Ratio),
            },
            Case {
                name: "the active file is never dropped, even empty",
                files: vec![file(1, H, 0, 0)],
                active: Some(1),
                busy: vec![],
                want: None,
            },
            Case {
                name: "busy files are skipped",
                files: vec![
                    file(1, big, big - H, big - H),
                    file(2, big, 90_000, 90_000),
                    file(3, big, 60_000, 60_000),
                ],
                active: None,
                busy: vec![1, 2],
                want: rewrite(&[3], Reason::Ratio),
            },
            Case {
                name: "only busy and active files: nothing",
                files: vec![file(1, big, 90_000, 90_000), file(2, big, 90_000, 90_000)],
                active: Some(2),
                busy: vec![1],
                want: None,
            },
            Case {
                // Without file 1: 110,000 bytes, 49,000 garbage, 1.8x. With
                // it the log would be 3.4x over and file 2 rewritten.
                name: "busy files do not count towards the budget",
                files: vec![
                    file(1, big, 99_000, 99_000),
                    file(2, big, 49_000, 49_000),
                    file(3, 10_000, 0, 0),
                ],
                active: Some(3),
                busy: vec![1],
                want: None,
            },
            Case {
                name: "a few small files are left alone",
                files: vec![
                    file(1, 500, 0, 0),
                    file(2, 600, 0, 0),
                    file(3, 700, 0, 0),
                    file(4, big, 0, 0),
                ],
                active: None,
                busy: vec![],
                want: None,
            },
            Case {
                name: "too many small files: the oldest merge, up to the byte limit",
                files: vec![
                    file(9, 900, 100, 100),
                    file(3, 800, 0, 0),
                    file(5, 900, 0, 0),
                    file(4, 700, 0, 0),
                    file(6, big, 0, 0),
                    file(8, 800, 0, 0),
                ],
                active: Some(8),
                busy: vec![],
                // Sealed small files 3, 4, 5, 9 (more than 3); live bytes
                // 800 + 700 + 900 = 2400 < 2500, so 9 joins too.
                want: rewrite(&[3, 4, 5, 9], Reason::SmallFiles),
            },
            Case {
                name: "a merge stops at the byte limit",
                files: vec![
                    file(1, 999, 0, 0),
                    file(2, 999, 0, 0),
                    file(3, 999, 0, 0),
                    file(4, 999, 0, 0),
                    file(5, 999, 0, 0),
                ],
                active: None,
                busy: vec![],
                want: rewrite(&[1, 2, 3], Reason::SmallFiles),
            },
        ];
        for case in cases {
            let busy = nums(&case.busy);
            let got = pick(&case.files, case.active.map(FileNumber), &busy, &policy());
            assert_eq!(got, case.want, "case: {}", case.name);
        }
    }

    #[test]
    fn over_budget_starts_exactly_past_the_budget() {
        // Three sealed files at `g` garbage (under the ratio) and an active
        // file with 90,000 estimated: 400,000 bytes in all.
        let at = |g: u64| {
            vec![
                file(1, 100_000, g, g),
                file(2, 100_000, g + 1, g + 1),
                file(3, 100_000, g, g),
                file(4, 100_000, 0, 90_000),
            ]
        };
        let p = policy();
        let active = Some(FileNumber(4));
        // 183,331 garbage: 216,669 live, 1.85x.
        assert_eq!(pick(&at(31_110), active, &[], &p), None);
        // 199,999 garbage: 200,001 live, just under 2.0x.
        assert_eq!(pick(&at(36_666), active, &[], &p), None);
        // 200,002 garbage: 199,998 live, just over 2.0x.
        assert_eq!(
            pick(&at(36_667), active, &[], &p),
            rewrite(&[2], Reason::OverBudget)
        );
        // A tighter budget is over sooner.
        let tight = GcPolicy {
            space_amp_max: 1.5,
            ..p
        };
        assert_eq!(
            pick(&at(31_110), active, &[], &tight),
            rewrite(&[2], Reason::OverBudget)
        );
    }

    #[test]
    fn a_merge_takes_at_least_two_files() {
        let files: Vec<VlogFileFacts> = (1..=5).map(|n| file(n, 900, 0, 0)).collect();
        let p = GcPolicy {
            merge_bytes_max: 100,
            ..policy()
        };
        assert_eq!(
            pick(&files, None, &[], &p),
            rewrite(&[1, 2], Reason::SmallFiles)
        );
    }

    #[test]
    fn picking_again_with_chosen_files_busy_ends() {
        // The engine marks what it collected busy and asks again; the
        // answers run out.
        let files: Vec<VlogFileFacts> = (1..=20)
            .map(|n| file(n, 100 * n, (n % 3) * 30 * n, (n % 3) * 40 * n))
            .collect();
        let mut busy = Vec::new();
        let mut steps = 0;
        while let Some(choice) = pick(&files, Some(FileNumber(20)), &busy, &policy()) {
            let chosen = match choice {
                Choice::Drop(f) => f,
                Choice::Rewrite { files, .. } => files,
            };
            assert!(!chosen.is_empty());
            for f in chosen {
                assert!(!busy.contains(&f), "{f} chosen twice");
                assert_ne!(f, FileNumber(20), "the active file was chosen");
                busy.push(f);
            }
            steps += 1;
            assert!(steps <= 20);
        }
    }
}
