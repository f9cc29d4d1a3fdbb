//! The benchmarks themselves, each as db_bench runs it: every thread does the
//! full count (`--num` writes or `--reads` reads, or `--duration` seconds),
//! draws keys from its own seeded generator, and fills its own
//! [`ThreadStats`]. Threads share the store and nothing else (the progress
//! bar is internally synchronised).

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::keys::{format_key, Rng, ValueGen};
use crate::report::{merge, Merged, ThreadStats};
use crate::store::Store;

/// Benchmarks that start from an empty database (unless `--use_existing_db`).
pub fn is_fresh(name: &str) -> bool {
    matches!(name, "fillseq" | "fillrandom" | "fillsync")
}

/// What one benchmark produced.
#[derive(Debug)]
pub struct Outcome {
    /// Merged figures of all measured threads.
    pub merged: Merged,
    /// Appended to the result line (db_bench's message).
    pub message: Option<String>,
    /// Key + value bytes the benchmark wrote (for write amplification).
    pub user_bytes_written: u64,
}

/// Ops per progress-bar update.
const PROGRESS_STEP: u64 = 1000;

/// How many operations a thread does: a count, or until a deadline.
#[derive(Clone, Copy, Debug)]
struct Budget {
    ops: u64,
    deadline: Option<Instant>,
}

impl Budget {
    fn new(ops: u64, flags: &Flags) -> Budget {
        let deadline = (flags.duration_secs > 0)
            .then(|| Instant::now() + Duration::from_secs(flags.duration_secs));
        Budget {
            ops: if deadline.is_some() { u64::MAX } else { ops },
            deadline,
        }
    }

    fn more(&self, done: u64) -> bool {
        if done >= self.ops {
            return false;
        }
        match self.deadline {
            // Checking the clock every 64 operations keeps it off the profile.
            Some(d) if done.is_multiple_of(64) => Instant::now() < d,
            _ => true,
        }
    }
}

/// Runs `body(thread_index, stats)` on `threads` threads and collects their figures.
pub(crate) fn run_threads<F>(threads: usize, body: F) -> Result<Vec<ThreadStats>>
where
    F: Fn(usize, &mut ThreadStats) -> Result<()> + Sync,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|tid| {
                let body = &body;
                s.spawn(move || {
                    let mut stats = ThreadStats::start();
                    let r = body(tid, &mut stats);
                    stats.stop();
                    r.map(|()| stats)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("benchmark threads do not panic"))
            .collect()
    })
}

/// Runs benchmark `name` against `store`. `seed` is the first thread's seed;
/// thread `i` uses `seed + i`. `None` for `stats`, which prints and measures nothing.
pub fn run(
    name: &str,
    store: &dyn Store,
    flags: &Flags,
    seed: u64,
    progress: &ProgressBar,
) -> Result<Option<Outcome>> {
    let threads = flags.threads;
    let outcome = match name {
        "fillseq" => fill(store, flags, seed, progress, true, flags.sync, flags.num),
        "fillrandom" | "overwrite" => {
            fill(store, flags, seed, progress, false, flags.sync, flags.num)
        }
        "fillsync" => {
            // db_bench: --writes per thread, synced, over a key range of num/1000.
            let range = (flags.num / 1000).max(1);
            let mut o = fill(store, flags, seed, progress, false, true, range)?;
            if range != flags.num {
                o.message = Some(format!("({range} ops)"));
            }
            Ok(o)
        }
        "deleterandom" => {
            let stats = run_threads(threads, |tid, st| {
                let mut rng = Rng::new(seed + tid as u64);
                let mut key = vec![0; flags.key_size];
                let budget = Budget::new(flags.num, flags);
                while budget.more(st.done) {
                    format_key(rng.below(flags.num), &mut key);
                    store.delete(&key, flags.sync)?;
                    st.done += 1;
                    tick(progress, st.done);
                }
                Ok(())
            })?;
            let merged = merge(&stats);
            let user_bytes_written = merged.done * flags.key_size as u64;
            Ok(Outcome {
                merged,
                message: None,
                user_bytes_written,
            })
        }
        "deleterange" => {
            // One thread: a fixed number of tombstones, each over one
            // random key, so later reads weigh live tombstones.
            let stats = run_threads(1, |_, st| {
                let mut rng = Rng::new(seed);
                let (mut start, mut end) = (vec![0; flags.key_size], vec![0; flags.key_size]);
                while st.done < flags.range_deletes {
                    let r = rng.below(flags.num);
                    format_key(r, &mut start);
                    format_key(r + 1, &mut end);
                    store.delete_range(&start, &end, flags.sync)?;
                    st.done += 1;
                    tick(progress, st.done);
                }
                Ok(())
            })?;
            let merged = merge(&stats);
            let user_bytes_written = merged.done * 2 * flags.key_size as u64;
            Ok(Outcome {
                merged,
                message: Some(format!("({} range tombstones)", flags.range_deletes)),
                user_bytes_written,
            })
        }
        "flush" => {
            let stats = run_threads(1, |_, _| store.flush())?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "readrandom" => {
            let stats = run_threads(threads, |tid, st| {
                read_random(store, flags, seed + tid as u64, st, progress, None)
            })?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "readseq" | "readreverse" => {
            let stats = run_threads(threads, |_, st| {
                let (n, bytes) = store.scan(name == "readreverse", flags.reads())?;
                st.done = n;
                st.bytes = bytes;
                progress.inc(n);
                Ok(())
            })?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "seekrandom" => {
            let stats = run_threads(threads, |tid, st| {
                let mut rng = Rng::new(seed + tid as u64);
                let mut key = vec![0; flags.key_size];
                let budget = Budget::new(flags.reads(), flags);
                while budget.more(st.done) {
                    format_key(rng.below(flags.num), &mut key);
                    let (exact, bytes) = store.seek(&key, flags.seek_nexts)?;
                    st.found += u64::from(exact);
                    st.reads += 1;
                    st.bytes += bytes;
                    st.done += 1;
                    tick(progress, st.done);
                }
                Ok(())
            })?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "readwhilewriting" => read_while_writing(store, flags, seed, progress),
        "compact" => {
            let stats = run_threads(1, |_, _| store.compact())?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "waitforcompaction" => {
            // Like compact, counted as one operation: its time is the wait.
            let stats = run_threads(1, |_, _| store.wait_for_compaction())?;
            Ok(Outcome {
                merged: merge(&stats),
                message: None,
                user_bytes_written: 0,
            })
        }
        "stats" => {
            println!("{}", store.stats_text());
            return Ok(None);
        }
        other => Err(Error::Flag(format!("benchmark {other} needs no database"))),
    }?;
    Ok(Some(outcome))
}

pub(crate) fn tick(progress: &ProgressBar, done: u64) {
    if done.is_multiple_of(PROGRESS_STEP) {
        progress.inc(PROGRESS_STEP);
    }
}

fn fill(
    store: &dyn Store,
    flags: &Flags,
    seed: u64,
    progress: &ProgressBar,
    sequential: bool,
    sync: bool,
    key_range: u64,
) -> Result<Outcome> {
    let stats = run_threads(flags.threads, |tid, st| {
        let mut rng = Rng::new(seed + tid as u64);
        let mut values =
            ValueGen::with_ratio(seed + tid as u64, flags.value_size, flags.compression_ratio);
        let mut key = vec![0; flags.key_size];
        let budget = Budget::new(flags.writes(), flags);
        while budget.more(st.done) {
            let n = if sequential {
                st.done % key_range
            } else {
                rng.below(key_range)
            };
            format_key(n, &mut key);
            store.put(&key, values.next(flags.value_size), sync)?;
            st.done += 1;
            st.bytes += (flags.key_size + flags.value_size) as u64;
            tick(progress, st.done);
        }
        Ok(())
    })?;
    let merged = merge(&stats);
    let user_bytes_written = merged.bytes;
    Ok(Outcome {
        merged,
        message: None,
        user_bytes_written,
    })
}

fn read_random(
    store: &dyn Store,
    flags: &Flags,
    seed: u64,
    st: &mut ThreadStats,
    progress: &ProgressBar,
    stop: Option<&AtomicBool>,
) -> Result<()> {
    let mut rng = Rng::new(seed);
    let mut key = vec![0; flags.key_size];
    let budget = Budget::new(flags.reads(), flags);
    while budget.more(st.done) && !stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        format_key(rng.below(flags.num), &mut key);
        if let Some(len) = store.get(&key)? {
            st.found += 1;
            st.bytes += (key.len() + len) as u64;
        }
        st.reads += 1;
        st.done += 1;
        tick(progress, st.done);
    }
    Ok(())
}

/// db_bench's readwhilewriting: `--threads` readers doing readrandom, plus one
/// writer writing random keys as fast as it can until the readers finish.
/// Only the readers are measured; the writer's count goes into the message.
fn read_while_writing(
    store: &dyn Store,
    flags: &Flags,
    seed: u64,
    progress: &ProgressBar,
) -> Result<Outcome> {
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let (readers, writer) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> Result<()> {
            let mut rng = Rng::new(seed + flags.threads as u64);
            let mut values = ValueGen::with_ratio(seed, flags.value_size, flags.compression_ratio);
            let mut key = vec![0; flags.key_size];
            while !stop.load(Ordering::Relaxed) {
                format_key(rng.below(flags.num), &mut key);
                store.put(&key, values.next(flags.value_size), flags.sync)?;
                written.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let readers = run_threads(flags.threads, |tid, st| {
            read_random(store, flags, seed + tid as u64, st, progress, None)
        });
        stop.store(true, Ordering::Relaxed);
        let writer = writer.join().expect("the writer thread does not panic");
        (readers, writer)
    });
    writer?;
    let merged = merge(&readers?);
    let writes = written.load(Ordering::Relaxed);
    Ok(Outcome {
        merged,
        message: Some(format!("(writer: {writes} writes)")),
        user_bytes_written: writes * (flags.key_size + flags.value_size) as u64,
    })
}

/// Writes `--value_size` bytes and `fdatasync`s, `--num` times, in a file
/// under `--db` (removed afterwards): the disk's synced-write rate, the
/// ceiling of any engine's fillsync on one thread. With `pre_sized` the file
/// is first extended with `set_len` (as a WAL may be), so no sync has to
/// make a new file size durable.
pub fn fsync_rate(flags: &Flags, pre_sized: bool) -> Result<Merged> {
    crate::store::prepare(&flags.db)?;
    let path = flags.db.join("fsync-probe.tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("creating", &path, e))?;
    if pre_sized {
        file.set_len(flags.num * flags.value_size as u64)
            .map_err(|e| Error::io("sizing", &path, e))?;
        file.sync_all()
            .map_err(|e| Error::io("syncing", &path, e))?;
    }
    let mut values = ValueGen::new(flags.seed, flags.value_size);
    let mut st = ThreadStats::start();
    let budget = Budget::new(flags.num, flags);
    while budget.more(st.done) {
        file.write_all(values.next(flags.value_size))
            .map_err(|e| Error::io("appending to", &path, e))?;
        file.sync_data()
            .map_err(|e| Error::io("syncing", &path, e))?;
        st.done += 1;
        st.bytes += flags.value_size as u64;
    }
    st.stop();
    drop(file);
    std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
    Ok(merge(&[st]))
}
