//! `waitforcompaction` as a user runs it: after fills and overwrites it
//! waits until background compaction has nothing left to do, prints
//! db_bench's result line, and leaves the directory near its live size
//! without `compact` (the space goal of automatic bottom-level compaction,
//! at a small scale).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[test]
fn waitforcompaction_brings_an_overwritten_database_down_to_its_live_size() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let num = 50_000u64;
    let run = |benchmarks: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_jkv-bench"))
            .arg(format!("--benchmarks={benchmarks}"))
            .arg(format!("--num={num}"))
            .args(["--key_size=16", "--value_size=100"])
            .arg("--write_buffer_size=1048576")
            .arg(format!("--db={}", db.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let live = num * 116;

    let without = run("fillseq,overwrite,overwrite");
    let before = dir_bytes(&db);
    assert!(
        before as f64 > 1.3 * live as f64,
        "the workload should leave garbage: {before} bytes\n{without}"
    );

    let out = run("fillseq,overwrite,overwrite,waitforcompaction");
    let line = out
        .lines()
        .find(|l| l.starts_with("waitforcompaction :"))
        .unwrap_or_else(|| panic!("no waitforcompaction line in\n{out}"));
    assert!(line.contains("micros/op"), "{line}");
    assert!(!out.contains("did not wait"), "{out}");
    let after = dir_bytes(&db);
    assert!(
        after as f64 <= 1.3 * live as f64,
        "{after} bytes on disk for {live} live\n{out}"
    );
}
