//! Sustained overwrite with large values (ignored by default; run in
//! release): 100,000 keys x 16 KiB values written five times over, with KV
//! separation on and then off. Prints throughput, write amplification
//! (bytes written to WAL, tables and value log / user bytes) and space
//! amplification, and checks that the value log stays within its space
//! budget (`vlog_space_amp_max`, 2.0 x live value bytes, plus one file being
//! filled) once garbage collection has caught up.
//!
//! cargo test --release -p jkv-tests --test value_log_workload -- --ignored --nocapture
//! (JKV_VLOG_KEYS=N scales the key count down for a quick look.)
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use jkv::{Db, Options, WriteBatch, WriteOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VALUE_BYTES: usize = 16 * 1024;
const ROUNDS: u64 = 5;

fn keys() -> u64 {
    std::env::var("JKV_VLOG_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn bytes_with_ext(dir: &std::path::Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

struct Outcome {
    ops_per_sec: f64,
    write_amp: f64,
    vlog_bytes: u64,
    table_bytes: u64,
    vlog_max_during: u64,
}

fn run(separate: bool) -> Outcome {
    let keys = keys();
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().value_threshold(if separate { Some(4096) } else { None });
    let db = Db::open(dir.path(), options).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut value = vec![0u8; VALUE_BYTES];
    let started = Instant::now();
    let mut vlog_max_during = 0;
    for round in 0..ROUNDS {
        for chunk_start in (0..keys).step_by(16) {
            let mut batch = WriteBatch::new();
            for n in chunk_start..(chunk_start + 16).min(keys) {
                rng.fill(&mut value[..64]);
                batch.put(format!("{n:016}"), &value);
            }
            db.write(batch, WriteOptions::default()).unwrap();
        }
        vlog_max_during = vlog_max_during.max(bytes_with_ext(dir.path(), "vlog"));
        println!(
            "  round {round}: {:.1} s, value log {:.0} MiB",
            started.elapsed().as_secs_f64(),
            bytes_with_ext(dir.path(), "vlog") as f64 / 1048576.0
        );
    }
    let secs = started.elapsed().as_secs_f64();
    db.flush().unwrap();
    db.wait_for_compactions().unwrap();
    db.vlog_gc().unwrap();
    let stats = db.stats();
    println!("{stats}");
    let outcome = Outcome {
        ops_per_sec: (keys * ROUNDS) as f64 / secs,
        write_amp: stats.write_amplification().unwrap(),
        vlog_bytes: bytes_with_ext(dir.path(), "vlog"),
        table_bytes: bytes_with_ext(dir.path(), "sst"),
        vlog_max_during,
    };
    for n in (0..keys).step_by(997) {
        assert_eq!(
            db.get(format!("{n:016}")).unwrap().map(|v| v.len()),
            Some(VALUE_BYTES)
        );
    }
    outcome
}

#[test]
#[ignore = "a benchmark-sized workload: run in release with --ignored"]
fn overwrite_large_values_with_and_without_separation() {
    let live = keys() * VALUE_BYTES as u64;
    for separate in [true, false] {
        let o = run(separate);
        let on_disk = o.vlog_bytes + o.table_bytes;
        println!(
            "separation {}: {:.0} ops/s ({:.1} MB/s of values), write amplification {:.2}, on disk {:.0} MiB = {:.2} x live ({:.0} MiB); value log {:.0} MiB = {:.2} x live (max between rounds {:.2} x)",
            if separate { "on " } else { "off" },
            o.ops_per_sec,
            o.ops_per_sec * VALUE_BYTES as f64 / 1e6,
            o.write_amp,
            on_disk as f64 / 1048576.0,
            on_disk as f64 / live as f64,
            live as f64 / 1048576.0,
            o.vlog_bytes as f64 / 1048576.0,
            o.vlog_bytes as f64 / live as f64,
            o.vlog_max_during as f64 / live as f64,
        );
        if separate {
            let budget = 2.0 * live as f64 + (256 << 20) as f64;
            assert!((o.vlog_bytes as f64) <= budget, "value log over its budget");
        }
    }
}
