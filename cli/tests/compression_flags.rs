//! Compression through the `jkv` binary, typed the way a user types it: the
//! `--compression`, `--compression-per-level`, `--block-cache-bytes` and
//! `--vlog-compression` flags, `stats` showing bytes stored and raw per
//! level and the block cache's counters, `sst-dump` showing each block's
//! compression and ratio, and `jkv check` verifying compressed blocks and
//! naming the file and offset of a damaged one.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// Runs the REPL on `dir` with `flags` and `input` piped in.
fn run(dir: &Path, flags: &[&str], input: &str) -> Output {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jkv starts");
    let written = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes());
    if let Err(e) = written {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().expect("jkv finishes")
}

fn repl(dir: &Path, flags: &[&str], input: &str) -> String {
    let out = run(dir, flags, input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jkv failed: {stderr}");
    assert!(out.stderr.is_empty(), "unexpected stderr: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn tables(dir: &Path) -> Vec<PathBuf> {
    let mut t: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    t.sort();
    t
}

/// The stats lines of one level in the compression table.
fn level_line(out: &str, level: usize) -> Vec<&str> {
    let lines: Vec<&str> = out.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("level compression"))
        .expect("compression table");
    lines[at + 1 + level].split_whitespace().collect()
}

#[test]
fn compressed_tables_through_the_binary() {
    for (flag, name) in [("lz4", "lz4"), ("zstd:5", "zstd")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = repl(
            d,
            &["--compression", flag],
            "fill 1 20000\ncompact\nget 777\nget 777\nget 19999\nstats\n",
        );
        assert!(
            out.contains("value777@0\nvalue777@0\nvalue19999@0\n"),
            "{out}"
        );
        // After compact all data is in the last level, written with `flag`.
        let l6 = level_line(&out, 6);
        assert_eq!(l6[0], "L6");
        assert_eq!(l6[1], flag, "{out}");
        let (stored, raw, ratio): (f64, f64, f64) = (
            l6[2].parse().unwrap(),
            l6[3].parse().unwrap(),
            l6[4].parse().unwrap(),
        );
        assert!(stored > 0.0 && stored < raw, "{out}");
        assert!(ratio < 0.8, "decimal keys and values compress: {out}");
        // zstd: the second get of 777 is served by the decoded-block cache;
        // LZ4 blocks are decoded on every read and never cached.
        let cache = out
            .lines()
            .find(|l| l.starts_with("block cache: "))
            .unwrap();
        if name == "zstd" {
            assert!(!cache.contains("hits 0,"), "{cache}");
            assert!(!cache.contains("inserts 0,"), "{cache}");
        } else {
            assert!(cache.contains("hits 0, misses 0 "), "{cache}");
        }

        // sst-dump names each block's compression and ratio.
        let table = tables(d).pop().expect("a table");
        let dump = jkv().arg("sst-dump").arg(&table).output().unwrap();
        assert!(dump.status.success());
        let dump = String::from_utf8(dump.stdout).unwrap();
        assert!(dump.contains(&format!("  compression: {flag}\n")), "{dump}");
        let first_block = dump
            .lines()
            .find(|l| l.starts_with("data block 0 at "))
            .unwrap()
            .to_string();
        assert!(
            first_block.contains(&format!(", {name}, ")) && first_block.contains(" raw, ratio 0."),
            "{first_block}"
        );

        // check decodes every compressed block.
        let check = jkv().arg("check").arg(d).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout).into_owned();
        assert!(check.status.success(), "{report}");
        assert!(
            report.contains(" compressed, decoded and checked)"),
            "{report}"
        );
        assert!(!report.contains("(0 compressed"), "{report}");

        // Reopened without compression, the compressed tables still read.
        let out = repl(
            d,
            &["--compression", "none", "--block-cache-bytes", "0"],
            "get 777\nstats\n",
        );
        assert!(out.starts_with("value777@0\n"), "{out}");
        assert!(out.contains("\nblock cache: off\n"), "{out}");

        // A flipped bit in a compressed block: check names file and offset.
        let at: u64 = first_block["data block 0 at ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut bytes = std::fs::read(&table).unwrap();
        bytes[at as usize + 7] ^= 0x10;
        std::fs::write(&table, &bytes).unwrap();
        let check = jkv().arg("check").arg(d).output().unwrap();
        let report = String::from_utf8_lossy(&check.stdout).into_owned();
        assert_eq!(check.status.code(), Some(1), "{report}");
        assert!(
            report.contains(&format!("CORRUPT {} at byte {at}: ", table.display())),
            "{report}"
        );
        let dump = jkv().arg("sst-dump").arg(&table).output().unwrap();
        assert!(!dump.status.success());
        assert!(
            String::from_utf8_lossy(&dump.stderr).contains(&format!("at byte {at}"))
                || String::from_utf8_lossy(&dump.stderr).contains("checksum")
        );
    }
}

#[test]
fn per_level_compression_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = repl(
        d,
        &["--compression-per-level", "lz4,zstd:3,none"],
        "fill 1 3000\nflush\nstats\n",
    );
    // A flush writes L0, with the first entry of the list.
    let l0 = level_line(&out, 0);
    assert_eq!(&l0[..2], ["L0", "lz4"], "{out}");
    let ratio: f64 = l0[4].parse().unwrap();
    assert!(ratio < 0.9, "{out}");
    assert_eq!(level_line(&out, 1)[1], "zstd:3");
    // Levels past the list use its last entry.
    for level in 2..7 {
        assert_eq!(level_line(&out, level)[1], "none", "{out}");
    }
    let dump = jkv().arg("sst-dump").arg(&tables(d)[0]).output().unwrap();
    assert!(String::from_utf8_lossy(&dump.stdout).contains("  compression: lz4\n"));

    for bad in [
        vec!["--compression", "snappy"],
        vec!["--compression-per-level", "lz4,zstd:99"],
        vec!["--vlog-compression", "gzip"],
        vec!["--block-cache-bytes", "lots"],
    ] {
        let out = run(d, &bad, "");
        assert!(!out.status.success(), "{bad:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(bad[0]), "{bad:?}: {stderr}");
    }
    // More levels in the list than the tree has: refused by the engine.
    let out = run(
        d,
        &[
            "--num-levels",
            "2",
            "--compression-per-level",
            "none,lz4,zstd",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("compression_per_level has 3 entries for 2 levels"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
