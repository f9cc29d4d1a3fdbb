//! Sustained overwrite workload (ignored by default; run in release):
//! 1,000,000 keys x 100-byte values written three times over with the
//! default options. Checks that L0 stays under the stop trigger most of the
//! time and that after `compact` space amplification is at most 1.2, and
//! prints write amplification, space amplification and the L0 table count
//! over time.
//!
//! cargo test --release -p jkv-tests --test overwrite_workload -- --ignored --nocapture
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jkv::{Db, Options, WriteBatch, WriteOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: u64 = 1_000_000;
const VALUE_BYTES: usize = 100;
const ROUNDS: u64 = 3;

fn key(n: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("{n:016}").as_bytes());
    k
}

fn sst_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "sst"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

#[test]
#[ignore = "a benchmark-sized workload: run in release with --ignored"]
fn overwrite_one_million_keys_three_times() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(db.stats().levels[0].tables);
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut value = vec![0u8; VALUE_BYTES];
    for _round in 0..ROUNDS {
        let mut order: Vec<u64> = (0..KEYS).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        for chunk in order.chunks(100) {
            let mut batch = WriteBatch::new();
            for &n in chunk {
                rng.fill(&mut value[..]);
                batch.put(key(n), &value);
            }
            db.write(batch, WriteOptions::default()).unwrap();
        }
    }
    let write_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let before_compact = db.stats();
    db.compact().unwrap();
    db.wait_for_compactions().unwrap();
    let stats = db.stats();
    let live = KEYS * (16 + VALUE_BYTES as u64);
    // Let go of readers so compacted inputs are deleted before measuring.
    let on_disk = sst_bytes(dir.path());
    let space_amp = on_disk as f64 / live as f64;
    let mut sorted = samples.clone();
    sorted.sort();
    let l0_max = *sorted.last().unwrap_or(&0);
    let l0_median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let over_stop = samples.iter().filter(|&&n| n >= 12).count();
    println!("{before_compact}");
    println!("--- after compact ---\n{stats}");
    println!(
        "writes: {} ops in {:.1} s = {:.0} ops/s",
        KEYS * ROUNDS,
        write_secs,
        (KEYS * ROUNDS) as f64 / write_secs
    );
    println!(
        "write amplification (wal+flush+compaction / user) before compact {:.2}, after {:.2}",
        before_compact.write_amplification().unwrap(),
        stats.write_amplification().unwrap()
    );
    println!("space amplification after compact: {on_disk} table bytes / {live} live bytes = {space_amp:.3}");
    println!(
        "L0 tables over time: max {l0_max}, median {l0_median}, {} of {} samples at or over the stop trigger",
        over_stop,
        samples.len()
    );
    assert!(space_amp <= 1.2, "space amplification {space_amp:.3}");
    assert!(
        over_stop * 10 <= samples.len(),
        "L0 at the stop trigger too often"
    );
    for n in (0..KEYS).step_by(9973) {
        assert!(db.get(key(n)).unwrap().is_some());
    }
}
