//! Turns repeated benchmark runs into the comparison table: medians per
//! workload and engine, and jkv's ratio to the best peer. Input is the
//! tab-separated file `bench/compare.sh` writes, one run per line:
//! `workload <TAB> engine <TAB> round <TAB> ops_per_sec`.

use std::fmt::Write;

/// One measured run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Suite workload name (e.g. `fillsync/8t`).
    pub workload: String,
    /// Engine label (e.g. `jkv`, `rocksdb`, `fjall`).
    pub engine: String,
    /// Throughput in operations per second.
    pub ops_per_sec: f64,
}

/// Parses the results file; lines starting with `#` and blank lines are
/// skipped. Errors name the bad line (1-based).
pub fn parse_samples(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 4 {
            return Err(format!(
                "line {}: expected 4 tab-separated fields, got {}",
                i + 1,
                fields.len()
            ));
        }
        let ops_per_sec = fields[3]
            .parse()
            .map_err(|_| format!("line {}: {:?} is not a number", i + 1, fields[3]))?;
        out.push(Sample {
            workload: fields[0].to_string(),
            engine: fields[1].to_string(),
            ops_per_sec,
        });
    }
    Ok(out)
}

/// The median of `values` (mean of the middle two for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Medians of one workload, one per engine (in the table's engine order).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Median ops/s per engine; `None` where the engine has no run.
    pub medians: Vec<Option<f64>>,
    /// Per engine: whether it counts as a peer in this row (see
    /// [`counts_as_peer`]).
    pub peers: Vec<bool>,
}

/// Whether `engine` is a peer jkv is measured against on `workload`: every
/// engine is, except redb (a B-tree built for reads) on write workloads.
pub fn counts_as_peer(engine: &str, workload: &str) -> bool {
    engine != "redb" || workload.starts_with("read") || workload.starts_with("seek")
}

impl Row {
    /// `engines[0]`'s median divided by the best other engine's.
    pub fn ratio_to_best_peer(&self) -> Option<f64> {
        let own = self.medians.first().copied().flatten()?;
        let best = self.medians[1..]
            .iter()
            .zip(&self.peers[1..])
            .filter_map(|(m, &peer)| m.filter(|_| peer))
            .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))))?;
        (best > 0.0).then(|| own / best)
    }
}

/// One row per workload, in order of first appearance; `engines` gives the
/// column order, the engine compared against the others first.
pub fn rows(samples: &[Sample], engines: &[&str]) -> Vec<Row> {
    let mut workloads: Vec<&str> = Vec::new();
    for s in samples {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    workloads
        .into_iter()
        .map(|w| Row {
            workload: w.to_string(),
            peers: engines.iter().map(|e| counts_as_peer(e, w)).collect(),
            medians: engines
                .iter()
                .map(|e| {
                    let v: Vec<f64> = samples
                        .iter()
                        .filter(|s| s.workload == w && s.engine == *e)
                        .map(|s| s.ops_per_sec)
                        .collect();
                    median(&v)
                })
                .collect(),
        })
        .collect()
}

/// Ops/s with thousands separators (`1234567.8` → `1,234,568`).
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The Markdown table: a column per engine (headers `labels`), then the
/// first engine's ratio to the best other.
pub fn markdown_table(rows: &[Row], labels: &[&str]) -> String {
    let mut t = String::from("| workload |");
    for l in labels {
        let _ = write!(t, " {l} |");
    }
    let _ = writeln!(t, " {} ÷ best peer |", labels[0]);
    t.push_str("|---|");
    for _ in labels {
        t.push_str("---:|");
    }
    t.push_str("---:|\n");
    for r in rows {
        let _ = write!(t, "| {} |", r.workload);
        for (m, &peer) in r.medians.iter().zip(&r.peers) {
            match m {
                Some(v) => {
                    let mark = if peer { "" } else { " (not a peer here)" };
                    let _ = write!(t, " {}{mark} |", thousands(*v));
                }
                None => t.push_str(" – |"),
            }
        }
        match r.ratio_to_best_peer() {
            Some(x) => {
                let _ = writeln!(t, " {x:.2}× |");
            }
            None => t.push_str(" – |\n"),
        }
    }
    t
}

/// Every run, one row per workload and engine, rounds in the order they
/// ran: shows how much the medians moved between rounds.
pub fn runs_table(samples: &[Sample], engines: &[&str], labels: &[&str]) -> String {
    let rounds = rows(samples, engines)
        .iter()
        .flat_map(|r| {
            engines.iter().map(move |e| {
                samples
                    .iter()
                    .filter(|s| s.workload == r.workload && s.engine == *e)
                    .count()
            })
        })
        .max()
        .unwrap_or(0);
    let mut t = String::from("| workload | engine |");
    for i in 1..=rounds {
        let _ = write!(t, " round {i} |");
    }
    t.push_str("\n|---|---|");
    for _ in 0..rounds {
        t.push_str("---:|");
    }
    t.push('\n');
    for r in rows(samples, engines) {
        for (e, label) in engines.iter().zip(labels) {
            let _ = write!(t, "| {} | {label} |", r.workload);
            let runs: Vec<f64> = samples
                .iter()
                .filter(|s| s.workload == r.workload && s.engine == *e)
                .map(|s| s.ops_per_sec)
                .collect();
            for i in 0..rounds {
                match runs.get(i) {
                    Some(v) => {
                        let _ = write!(t, " {} |", thousands(*v));
                    }
                    None => t.push_str(" – |"),
                }
            }
            t.push('\n');
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ratios_and_table() {
        let text = "# workload\tengine\tround\tops\n\
                    fillseq\tjkv\t1\t100\n\
                    fillseq\trocksdb\t1\t300\n\
                    fillseq\tjkv\t2\t120\n\
                    fillseq\tjkv\t3\t90\n\
                    fillseq\tfjall\t1\t200\n\
                    readrandom\tjkv\t1\t1000000\n";
        let samples = parse_samples(text).unwrap();
        assert_eq!(samples.len(), 6);
        let rows = rows(&samples, &["jkv", "rocksdb", "fjall"]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].medians, vec![Some(100.0), Some(300.0), Some(200.0)]);
        assert!((rows[0].ratio_to_best_peer().unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(rows[1].ratio_to_best_peer(), None);
        let table = markdown_table(&rows, &["jkv", "rocksdb", "fjall"]);
        assert!(
            table.contains("| fillseq | 100 | 300 | 200 | 0.33× |"),
            "{table}"
        );
        assert!(
            table.contains("| readrandom | 1,000,000 | – | – | – |"),
            "{table}"
        );
    }

    #[test]
    fn redb_is_a_peer_on_reads_only() {
        let text = "fillrandom\tjkv\t1\t100\n\
                    fillrandom\tfjall\t1\t80\n\
                    fillrandom\tredb\t1\t400\n\
                    readrandom\tjkv\t1\t100\n\
                    readrandom\tfjall\t1\t80\n\
                    readrandom\tredb\t1\t200\n";
        let samples = parse_samples(text).unwrap();
        let rows = rows(&samples, &["jkv", "fjall", "redb"]);
        assert!((rows[0].ratio_to_best_peer().unwrap() - 1.25).abs() < 1e-9);
        assert!((rows[1].ratio_to_best_peer().unwrap() - 0.5).abs() < 1e-9);
        let table = markdown_table(&rows, &["jkv", "fjall", "redb"]);
        assert!(
            table.contains("| fillrandom | 100 | 80 | 400 (not a peer here) | 1.25× |"),
            "{table}"
        );
        assert!(counts_as_peer("redb", "seekrandom"));
        assert!(!counts_as_peer("redb", "fillsync (8 threads)"));
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_samples("fillseq\tjkv\t1\n").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = parse_samples("\nfillseq\tjkv\t1\tfast\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
    }
}
