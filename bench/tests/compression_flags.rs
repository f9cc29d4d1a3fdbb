//! db_bench's compression flags as a user types them: `--compression_type`
//! and `--compression_ratio` make jkv store compressible values in less
//! space, `--compression_per_level` is taken for jkv, and a codec jkv does
//! not have is refused with a message naming it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn jkv_bench(db: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jkv-bench"))
        .args(["--benchmarks=fillrandom,compact", "--num=30000"])
        .args(["--key_size=16", "--value_size=100"])
        .arg(format!("--db={}", db.display()))
        .args(flags)
        .output()
        .unwrap()
}

/// Bytes of the database after filling and compacting it with `flags`.
fn compacted_bytes(flags: &[&str]) -> u64 {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let out = jkv_bench(&db, flags);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fillrandom"));
    dir_bytes(&db)
}

#[test]
fn compressible_values_take_less_space_with_compression() {
    let raw = compacted_bytes(&["--compression_type=none", "--compression_ratio=0.5"]);
    let lz4 = compacted_bytes(&["--compression_type=lz4", "--compression_ratio=0.5"]);
    let zstd_bottom = compacted_bytes(&[
        "--compression_ratio=0.5",
        "--compression_per_level=none,none,zstd",
    ]);
    // fillrandom draws 30,000 keys with repeats: about 19,000 distinct
    // keys of 116 B, values generated to compress to half.
    assert!(raw > 1_500_000, "raw {raw}");
    assert!((lz4 as f64) < 0.8 * raw as f64, "lz4 {lz4} vs raw {raw}");
    assert!(
        (zstd_bottom as f64) < 0.8 * raw as f64,
        "zstd at the bottom {zstd_bottom} vs raw {raw}"
    );
}

#[test]
fn an_unknown_codec_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = jkv_bench(&tmp.path().join("db"), &["--compression_type=snappy"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("snappy"), "{stderr}");
}
