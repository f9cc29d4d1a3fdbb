//! What a benchmark measured and how it is printed. Each thread fills its own
//! [`ThreadStats`]; the runner merges them as db_bench does (operations and
//! bytes summed, elapsed time from the first start to the last finish,
//! micros/op from the summed per-thread time) and prints db_bench's line:
//!
//! `NAME : X micros/op Y ops/sec S seconds N operations; Z MB/s (F of R found)`
//!
//! Also here: the process and disk figures printed after each benchmark
//! (`/proc/self/io`, `/proc/self/status`, bytes under the database directory).

use std::path::Path;
use std::time::Instant;

/// One thread's figures for one benchmark.
#[derive(Clone, Debug)]
pub struct ThreadStats {
    /// When the thread started its operations.
    pub start: Instant,
    /// When it finished them.
    pub finish: Instant,
    /// Operations done.
    pub done: u64,
    /// Key + value bytes moved.
    pub bytes: u64,
    /// Reads that found their key (reads and seeks only).
    pub found: u64,
    /// Reads attempted (reads and seeks only; 0 elsewhere).
    pub reads: u64,
}

impl ThreadStats {
    /// Empty figures starting now.
    pub fn start() -> ThreadStats {
        let now = Instant::now();
        ThreadStats {
            start: now,
            finish: now,
            done: 0,
            bytes: 0,
            found: 0,
            reads: 0,
        }
    }

    /// Marks the end of the thread's work.
    pub fn stop(&mut self) {
        self.finish = Instant::now();
    }
}

/// Figures of all threads of one benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Seconds from the first thread's start to the last one's finish.
    pub elapsed_secs: f64,
    /// Per-thread seconds, summed.
    pub thread_secs: f64,
    /// Operations, all threads.
    pub done: u64,
    /// Bytes, all threads.
    pub bytes: u64,
    /// Reads that found their key.
    pub found: u64,
    /// Reads attempted.
    pub reads: u64,
}

/// Merges per-thread figures (at least one).
pub fn merge(threads: &[ThreadStats]) -> Merged {
    let start = threads
        .iter()
        .map(|t| t.start)
        .min()
        .expect("at least one thread");
    let finish = threads
        .iter()
        .map(|t| t.finish)
        .max()
        .expect("at least one thread");
    Merged {
        elapsed_secs: finish.duration_since(start).as_secs_f64(),
        thread_secs: threads
            .iter()
            .map(|t| t.finish.duration_since(t.start).as_secs_f64())
            .sum(),
        done: threads.iter().map(|t| t.done).sum(),
        bytes: threads.iter().map(|t| t.bytes).sum(),
        found: threads.iter().map(|t| t.found).sum(),
        reads: threads.iter().map(|t| t.reads).sum(),
    }
}

/// db_bench's result line for `name`; `message` (for example `(4 ops)`) is
/// appended after the rate and the found count.
pub fn format_line(name: &str, m: &Merged, message: Option<&str>) -> String {
    // db_bench counts a benchmark without operations (compact) as one.
    let done = m.done.max(1);
    let elapsed = m.elapsed_secs.max(1e-9);
    let thread_secs = if m.thread_secs > 0.0 {
        m.thread_secs
    } else {
        elapsed
    };
    let mut extra = String::new();
    if m.bytes > 0 {
        extra.push_str(&format!(
            "{:6.1} MB/s",
            m.bytes as f64 / 1_048_576.0 / elapsed
        ));
    }
    if m.reads > 0 {
        if !extra.is_empty() {
            extra.push(' ');
        }
        extra.push_str(&format!("({} of {} found)", m.found, m.reads));
    }
    if let Some(msg) = message {
        if !extra.is_empty() {
            extra.push(' ');
        }
        extra.push_str(msg);
    }
    format!(
        "{:<12} : {:>11.3} micros/op {} ops/sec {:.3} seconds {} operations;{}{}",
        name,
        thread_secs * 1e6 / done as f64,
        (done as f64 / elapsed) as u64,
        elapsed,
        done,
        if extra.is_empty() { "" } else { " " },
        extra
    )
}

/// `write_bytes` of `/proc/self/io`: bytes this process caused to be sent
/// to storage (counted when a page is first dirtied, all threads included).
/// `None` where the file is missing or unreadable.
pub fn proc_write_bytes() -> Option<u64> {
    proc_field("/proc/self/io", "write_bytes:")
}

/// Peak resident memory (`VmHWM` of `/proc/self/status`) in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_field("/proc/self/status", "VmHWM:").map(|kib| kib * 1024)
}

/// File descriptors this process holds now (entries of `/proc/self/fd`);
/// `None` where there is no such directory.
pub fn open_files() -> Option<usize> {
    // The listing itself holds one descriptor while it runs.
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1),
    )
}

fn proc_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Bytes of all files under `dir` (recursively); 0 when it is missing.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1_048_576.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stats(secs: f64, done: u64, bytes: u64, found: u64, reads: u64) -> ThreadStats {
        let start = Instant::now();
        ThreadStats {
            start,
            finish: start + Duration::from_secs_f64(secs),
            done,
            bytes,
            found,
            reads,
        }
    }

    #[test]
    fn line_matches_db_bench() {
        let m = merge(&[stats(2.0, 1_000_000, 116 * 1_000_000, 632_000, 1_000_000)]);
        assert_eq!(
            format_line("readrandom", &m, None),
            "readrandom   :       2.000 micros/op 500000 ops/sec 2.000 seconds 1000000 operations;   55.3 MB/s (632000 of 1000000 found)"
        );
        let w = merge(&[stats(1.0, 1000, 116_000, 0, 0)]);
        assert_eq!(
            format_line("fillsync", &w, Some("(4 ops)")),
            "fillsync     :    1000.000 micros/op 1000 ops/sec 1.000 seconds 1000 operations;    0.1 MB/s (4 ops)"
        );
        let c = merge(&[stats(0.5, 0, 0, 0, 0)]);
        assert_eq!(
            format_line("compact", &c, None),
            "compact      :  500000.000 micros/op 2 ops/sec 0.500 seconds 1 operations;"
        );
    }

    #[test]
    fn merge_sums_threads_and_spans_elapsed_time() {
        let a = stats(1.0, 100, 1000, 5, 10);
        let mut b = stats(3.0, 300, 3000, 7, 20);
        b.start = a.start;
        b.finish = a.start + Duration::from_secs(3);
        let m = merge(&[a, b]);
        assert_eq!((m.done, m.bytes, m.found, m.reads), (400, 4000, 12, 30));
        assert!((m.elapsed_secs - 3.0).abs() < 1e-9);
        assert!((m.thread_secs - 4.0).abs() < 1e-9);
        // micros/op uses summed thread time (4 s / 400 ops), ops/sec the span.
        assert!(format_line("x", &m, None).contains("10000.000 micros/op 133 ops/sec"));
    }

    #[test]
    fn proc_figures_are_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 0);
            let dir = tempfile::tempdir().unwrap();
            let held: Vec<_> = (0..20)
                .map(|i| std::fs::File::create(dir.path().join(i.to_string())).unwrap())
                .collect();
            assert!(open_files().unwrap() >= held.len());
        }
    }
}
