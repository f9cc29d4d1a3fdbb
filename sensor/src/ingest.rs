//! The ingest pipeline (docs/sensor.md, "Ingest pipeline"): a bounded
//! buffer between any number of producers and one writer thread that
//! drains it in batches into atomic engine writes.
//!
//! Owns the buffer, the writer thread and the counters; leaves storage to
//! [`Frames`] and acknowledgement to the caller's `on_written` callback,
//! which the writer calls once per batch, after the batch is written
//! (durable when the [`Frames`] sync), with the tags of its samples in
//! submission order.
//!
//! The buffer is the batch being filled: each accepted sample's key and
//! payload are copied straight into the open `WriteBatch` by the producer,
//! so the writer thread only swaps the open batch for an empty one and
//! calls `Db::write`, while producers fill the next batch. (A queue of
//! samples would make the writer copy every payload into the batch itself
//! and free every sample buffer: on 1 KiB frames that was the writer's
//! largest cost after the engine's own.)
//!
//! Threads: producers call [`Ingest::submit`] from any thread. When the
//! buffer is full (in samples or in bytes, or the open batch is at its
//! limits) they wait on a condition variable until the writer frees room:
//! backpressure without a busy loop, and nothing is dropped. The writer
//! sleeps on another condition variable while the open batch is empty,
//! and once a sample arrives waits at most `batch_interval` for
//! `batch_samples_max` samples. Both limits count samples from submission
//! until their batch is written, so the memory held by the open batch and
//! the batch being written is bounded by `buffer_bytes_max` (or one
//! sample, when a single sample is larger than that).
//!
//! Lock order: `Shared::state` only; no I/O under it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jkv::WriteBatch;
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::frames::{Frames, Sample};
use crate::key::SampleKey;

/// Limits of the buffer and of each batch. Defaults in each field's doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOptions {
    /// Samples held (queued or being written) before producers wait. Default 65,536.
    pub buffer_samples_max: usize,
    /// Payload bytes held before producers wait. Default 256 MiB.
    pub buffer_bytes_max: usize,
    /// Most samples in one write batch. Default 4,096.
    pub batch_samples_max: usize,
    /// Most payload bytes in one write batch (a single larger sample still
    /// goes alone). Default 32 MiB.
    pub batch_bytes_max: usize,
    /// Longest wait, from the first sample of a batch, for the batch to
    /// fill. Default 5 ms.
    pub batch_interval: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            buffer_samples_max: 65_536,
            buffer_bytes_max: 256 << 20,
            batch_samples_max: 4096,
            batch_bytes_max: 32 << 20,
            batch_interval: Duration::from_millis(5),
        }
    }
}

impl IngestOptions {
    fn check(&self) -> Result<()> {
        if self.buffer_samples_max == 0 || self.batch_samples_max == 0 {
            return Err(Error::invalid(
                "buffer and batch must hold at least one sample",
            ));
        }
        if self.buffer_bytes_max == 0 || self.batch_bytes_max == 0 {
            return Err(Error::invalid(
                "buffer and batch byte limits must be positive",
            ));
        }
        Ok(())
    }
}

/// Figures of a running pipeline, read with [`Ingest::stats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestStats {
    /// Samples written since start.
    pub samples_written: u64,
    /// Payload bytes written since start.
    pub bytes_written: u64,
    /// Write batches made.
    pub batches: u64,
    /// Samples in the largest batch.
    pub batch_samples_largest: u64,
    /// Batches by size: `[1, 2-15, 16-255, 256-4095, 4096+]` samples.
    pub batch_size_histogram: [u64; 5],
    /// Samples written per second since start.
    pub samples_per_sec: f64,
    /// Payload bytes written per second since start.
    pub bytes_per_sec: f64,
    /// Samples held now (queued or being written).
    pub queue_samples: u64,
    /// Payload bytes held now.
    pub queue_bytes: u64,
    /// Most samples ever held at once.
    pub queue_samples_peak: u64,
    /// Most payload bytes ever held at once.
    pub queue_bytes_peak: u64,
    /// Total time producers spent waiting for room, ns.
    pub blocked_ns: u64,
    /// Submissions that had to wait for room.
    pub blocked_submits: u64,
    /// Times the writer thread woke up.
    pub writer_wakeups: u64,
    /// Batches whose write failed.
    pub failed_batches: u64,
}

/// Called on the writer thread after each batch: the batch's tags in
/// submission order and the outcome of its write.
pub type OnWritten<T> = Box<dyn FnMut(Vec<T>, &Result<(), Arc<Error>>) + Send>;

struct State<T> {
    /// The batch producers fill, its samples' tags and payload bytes.
    open: WriteBatch,
    open_tags: Vec<T>,
    open_bytes: usize,
    /// Samples and payload bytes in the open batch or being written.
    held_samples: usize,
    held_bytes: usize,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when room is freed or the pipeline closes.
    room: Condvar,
    /// Signalled when the writer has something to do.
    work: Condvar,
    options: IngestOptions,
    counters: Counters,
    started: Instant,
}

#[derive(Default)]
struct Counters {
    samples_written: AtomicU64,
    bytes_written: AtomicU64,
    batches: AtomicU64,
    batch_largest: AtomicU64,
    histogram: [AtomicU64; 5],
    samples_peak: AtomicU64,
    bytes_peak: AtomicU64,
    blocked_ns: AtomicU64,
    blocked_submits: AtomicU64,
    wakeups: AtomicU64,
    failed: AtomicU64,
}

/// A running pipeline: producers [`Ingest::submit`], one writer thread
/// writes. Closing (or dropping) it drains what was accepted first.
pub struct Ingest<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Send + 'static> std::fmt::Debug for Ingest<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("options", &self.shared.options)
            .finish()
    }
}

impl<T: Send + 'static> Ingest<T> {
    /// Starts the writer thread, writing into `frames`; `on_written` hears
    /// of every batch.
    pub fn start(
        frames: Arc<Frames>,
        options: IngestOptions,
        on_written: OnWritten<T>,
    ) -> Result<Self> {
        options.check()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                open: WriteBatch::new(),
                open_tags: Vec::new(),
                open_bytes: 0,
                held_samples: 0,
                held_bytes: 0,
                closed: false,
            }),
            room: Condvar::new(),
            work: Condvar::new(),
            options,
            counters: Counters::default(),
            started: Instant::now(),
        });
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("jkv-sensor-writer".into())
            .spawn(move || write_loop(&for_writer, &frames, on_written))
            .map_err(|e| Error::io("starting the sensor writer thread", e))?;
        Ok(Ingest {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Hands `sample` to the writer; `tag` comes back through `on_written`
    /// once it is written. Waits while the buffer is full. Errors with
    /// [`Error::Stopped`] once the pipeline is closing (the sample is then
    /// not taken).
    pub fn submit(&self, sample: Sample, tag: T) -> Result<()> {
        self.submit_bytes(sample.key, &sample.payload, tag)
    }

    /// Like [`Ingest::submit`], for a payload the caller keeps (it is
    /// copied into the batch): a socket reader passes a slice of its read
    /// buffer.
    pub fn submit_bytes(&self, key: SampleKey, payload: &[u8], tag: T) -> Result<()> {
        let shared = &*self.shared;
        let len = payload.len();
        let opts = &shared.options;
        let mut state = shared.state.lock();
        let full = |s: &State<T>| {
            (s.held_samples > 0
                && (s.held_samples >= opts.buffer_samples_max
                    || s.held_bytes + len > opts.buffer_bytes_max))
                || (!s.open_tags.is_empty()
                    && (s.open_tags.len() >= opts.batch_samples_max
                        || s.open_bytes + len > opts.batch_bytes_max))
        };
        if full(&state) && !state.closed {
            let waited = Instant::now();
            while full(&state) && !state.closed {
                // The writer may be waiting for its batch to fill: it is.
                shared.work.notify_one();
                shared.room.wait(&mut state);
            }
            let c = &shared.counters;
            c.blocked_ns
                .fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
            c.blocked_submits.fetch_add(1, Ordering::Relaxed);
        }
        if state.closed {
            return Err(Error::Stopped);
        }
        state.open.put(key.encode(), payload);
        state.open_tags.push(tag);
        state.open_bytes += len;
        state.held_samples += 1;
        state.held_bytes += len;
        let c = &shared.counters;
        c.samples_peak
            .fetch_max(state.held_samples as u64, Ordering::Relaxed);
        c.bytes_peak
            .fetch_max(state.held_bytes as u64, Ordering::Relaxed);
        // Wake the writer only when it has a reason to act: the first
        // sample of a batch, a full batch, or a full buffer.
        let queued = state.open_tags.len();
        if queued == 1 || queued >= opts.batch_samples_max || full(&state) {
            shared.work.notify_one();
        }
        Ok(())
    }

    /// The counters now.
    pub fn stats(&self) -> IngestStats {
        let shared = &*self.shared;
        let c = &shared.counters;
        let (held_samples, held_bytes) = {
            let s = shared.state.lock();
            (s.held_samples as u64, s.held_bytes as u64)
        };
        let samples = c.samples_written.load(Ordering::Relaxed);
        let bytes = c.bytes_written.load(Ordering::Relaxed);
        let secs = shared.started.elapsed().as_secs_f64().max(1e-9);
        IngestStats {
            samples_written: samples,
            bytes_written: bytes,
            batches: c.batches.load(Ordering::Relaxed),
            batch_samples_largest: c.batch_largest.load(Ordering::Relaxed),
            batch_size_histogram: std::array::from_fn(|i| c.histogram[i].load(Ordering::Relaxed)),
            samples_per_sec: samples as f64 / secs,
            bytes_per_sec: bytes as f64 / secs,
            queue_samples: held_samples,
            queue_bytes: held_bytes,
            queue_samples_peak: c.samples_peak.load(Ordering::Relaxed),
            queue_bytes_peak: c.bytes_peak.load(Ordering::Relaxed),
            blocked_ns: c.blocked_ns.load(Ordering::Relaxed),
            blocked_submits: c.blocked_submits.load(Ordering::Relaxed),
            writer_wakeups: c.wakeups.load(Ordering::Relaxed),
            failed_batches: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting samples, lets the writer write everything accepted
    /// (calling `on_written` for it), and joins it. Producers waiting for
    /// room get [`Error::Stopped`]. Closing twice is a no-op.
    pub fn close(&self) {
        {
            let mut state = self.shared.state.lock();
            state.closed = true;
        }
        self.shared.room.notify_all();
        self.shared.work.notify_all();
        if let Some(handle) = self.writer.lock().take() {
            // The writer catches nothing; a panic there is a bug we surface.
            if handle.join().is_err() {
                panic!("the sensor writer thread panicked");
            }
        }
    }
}

impl<T: Send + 'static> Drop for Ingest<T> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.close();
        }
    }
}

fn histogram_bucket(samples: usize) -> usize {
    match samples {
        0..=1 => 0,
        2..=15 => 1,
        16..=255 => 2,
        256..=4095 => 3,
        _ => 4,
    }
}

fn write_loop<T: Send>(shared: &Shared<T>, frames: &Frames, mut on_written: OnWritten<T>) {
    let opts = shared.options;
    loop {
        let mut state = shared.state.lock();
        // Sleep while idle.
        while state.open_tags.is_empty() && !state.closed {
            shared.work.wait(&mut state);
            shared.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        }
        if state.open_tags.is_empty() {
            return; // closed and drained
        }
        // A batch has begun: wait for it to fill, at most batch_interval.
        let deadline = Instant::now() + opts.batch_interval;
        while !state.closed
            && state.open_tags.len() < opts.batch_samples_max
            && state.open_bytes < opts.batch_bytes_max
            && state.held_samples < opts.buffer_samples_max
            && state.held_bytes < opts.buffer_bytes_max
        {
            if shared.work.wait_until(&mut state, deadline).timed_out() {
                break;
            }
            shared.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        }
        let batch = std::mem::take(&mut state.open);
        let tags = std::mem::take(&mut state.open_tags);
        let batch_bytes = std::mem::take(&mut state.open_bytes);
        drop(state);
        // Producers may fill the next batch while this one is written.
        shared.room.notify_all();

        let outcome = frames
            .db()
            .write(
                batch,
                jkv::WriteOptions {
                    sync: frames.is_sync(),
                },
            )
            .map(drop)
            .map_err(|e| Arc::new(Error::from(e)));
        let n = tags.len();
        let c = &shared.counters;
        if outcome.is_ok() {
            c.samples_written.fetch_add(n as u64, Ordering::Relaxed);
            c.bytes_written
                .fetch_add(batch_bytes as u64, Ordering::Relaxed);
        } else {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.batch_largest.fetch_max(n as u64, Ordering::Relaxed);
        c.histogram[histogram_bucket(n)].fetch_add(1, Ordering::Relaxed);
        on_written(tags, &outcome);

        // Only now is the memory free: release it to producers.
        let mut state = shared.state.lock();
        state.held_samples -= n;
        state.held_bytes -= batch_bytes;
        drop(state);
        shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv::{Db, Options};
    use std::sync::atomic::AtomicUsize;

    fn frames(dir: &std::path::Path) -> Arc<Frames> {
        let db = Db::open(dir, Options::default()).expect("open");
        Arc::new(Frames::open(Arc::new(db)).expect("frames"))
    }

    fn all_keys(f: &Frames) -> Vec<crate::SampleKey> {
        f.range(&crate::Query::all())
            .map(|s| s.expect("sample").key)
            .collect()
    }

    #[test]
    fn a_slow_writer_blocks_producers_within_bounded_memory_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let opts = IngestOptions {
            buffer_samples_max: 64,
            buffer_bytes_max: 64 * 1024,
            batch_samples_max: 16,
            batch_bytes_max: 1 << 20,
            batch_interval: Duration::from_millis(2),
        };
        let acked = Arc::new(Mutex::new(Vec::new()));
        let acked_w = acked.clone();
        let ingest: Arc<Ingest<(usize, u32)>> = Arc::new(
            Ingest::start(
                f.clone(),
                opts,
                Box::new(move |tags, outcome| {
                    assert!(outcome.is_ok());
                    // The deliberately slow disk.
                    std::thread::sleep(Duration::from_millis(3));
                    acked_w.lock().extend(tags);
                }),
            )
            .unwrap(),
        );
        const PRODUCERS: usize = 4;
        const PER_PRODUCER: u32 = 400;
        let payload_len = 1500; // 64 KiB / 1500 B < 64 samples: the byte limit binds
        let handles: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let ingest = ingest.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        let s = Sample::new(i as u64, 0, p as u16, vec![p as u8; payload_len]);
                        ingest.submit(s, (p, i)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        ingest.close();
        let stats = ingest.stats();
        assert_eq!(
            stats.samples_written,
            (PRODUCERS as u64) * PER_PRODUCER as u64
        );
        assert_eq!(
            stats.bytes_written,
            stats.samples_written * payload_len as u64
        );
        assert!(
            stats.blocked_submits > 0 && stats.blocked_ns > 0,
            "{stats:?}"
        );
        assert!(stats.queue_bytes_peak <= 64 * 1024, "{stats:?}");
        assert!(stats.queue_samples_peak <= 64, "{stats:?}");
        assert!(stats.batch_samples_largest <= 16, "{stats:?}");
        assert_eq!(
            stats.batch_size_histogram.iter().sum::<u64>(),
            stats.batches
        );
        assert_eq!((stats.queue_samples, stats.queue_bytes), (0, 0));
        // Every sample acknowledged once, each producer's in its order.
        let acked = acked.lock().clone();
        assert_eq!(acked.len(), PRODUCERS * PER_PRODUCER as usize);
        for p in 0..PRODUCERS {
            let mine: Vec<u32> = acked
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(mine, (0..PER_PRODUCER).collect::<Vec<_>>());
        }
        // And every one is stored.
        assert_eq!(all_keys(&f).len(), PRODUCERS * PER_PRODUCER as usize);
    }

    #[test]
    fn an_idle_writer_sleeps() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let ingest: Ingest<()> =
            Ingest::start(f.clone(), IngestOptions::default(), Box::new(|_, _| {})).unwrap();
        ingest.submit(Sample::new(1, 0, 0, &b"x"[..]), ()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ingest.stats().samples_written < 1 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = ingest.stats().writer_wakeups;
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            ingest.stats().writer_wakeups,
            before,
            "the idle writer woke up"
        );
        ingest.close();
    }

    #[test]
    fn a_batch_is_written_after_the_interval_even_when_not_full() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let written = Arc::new(AtomicUsize::new(0));
        let w = written.clone();
        let opts = IngestOptions {
            batch_interval: Duration::from_millis(20),
            ..IngestOptions::default()
        };
        let ingest: Ingest<()> = Ingest::start(
            f.clone(),
            opts,
            Box::new(move |tags, _| {
                w.fetch_add(tags.len(), Ordering::SeqCst);
            }),
        )
        .unwrap();
        let t = Instant::now();
        for i in 0..3 {
            ingest.submit(Sample::new(i, 0, 0, &b"x"[..]), ()).unwrap();
        }
        while written.load(Ordering::SeqCst) < 3 {
            assert!(t.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            t.elapsed() >= Duration::from_millis(15),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(ingest.stats().batches, 1);
        ingest.close();
    }

    #[test]
    fn close_drains_what_was_accepted_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let ingest: Ingest<()> = Ingest::start(
            f.clone(),
            IngestOptions {
                batch_interval: Duration::from_secs(60),
                ..IngestOptions::default()
            },
            Box::new(|_, _| {}),
        )
        .unwrap();
        for i in 0..100 {
            ingest.submit(Sample::new(i, 0, 0, &b"x"[..]), ()).unwrap();
        }
        ingest.close();
        assert_eq!(all_keys(&f).len(), 100);
        assert!(matches!(
            ingest.submit(Sample::new(0, 0, 0, &b""[..]), ()),
            Err(Error::Stopped)
        ));
    }

    #[test]
    fn a_sample_larger_than_the_buffer_still_passes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let opts = IngestOptions {
            buffer_bytes_max: 100,
            batch_bytes_max: 100,
            ..IngestOptions::default()
        };
        let ingest: Ingest<()> = Ingest::start(f.clone(), opts, Box::new(|_, _| {})).unwrap();
        ingest
            .submit(Sample::new(1, 0, 0, vec![7u8; 1000]), ())
            .unwrap();
        ingest
            .submit(Sample::new(2, 0, 0, vec![7u8; 1000]), ())
            .unwrap();
        ingest.close();
        assert_eq!(all_keys(&f).len(), 2);
        assert!(ingest.stats().queue_bytes_peak <= 1000);
    }

    #[test]
    fn a_failed_write_reaches_the_callback() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let failures = Arc::new(AtomicUsize::new(0));
        let fl = failures.clone();
        let ingest: Ingest<()> = Ingest::start(
            f.clone(),
            IngestOptions::default(),
            Box::new(move |tags, outcome| {
                if outcome.is_err() {
                    fl.fetch_add(tags.len(), Ordering::SeqCst);
                }
            }),
        )
        .unwrap();
        f.db().close().unwrap();
        ingest.submit(Sample::new(1, 0, 0, &b"x"[..]), ()).unwrap();
        ingest.close();
        assert_eq!(failures.load(Ordering::SeqCst), 1);
        assert_eq!(ingest.stats().failed_batches, 1);
        assert_eq!(ingest.stats().samples_written, 0);
    }

    #[test]
    fn bad_options_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = frames(dir.path());
        let opts = IngestOptions {
            batch_samples_max: 0,
            ..IngestOptions::default()
        };
        assert!(matches!(
            Ingest::<()>::start(f, opts, Box::new(|_, _| {})),
            Err(Error::InvalidArgument(_))
        ));
    }
}
