//! `jkv repair` killed with SIGKILL at random moments, then run again: the
//! second run must finish, `jkv check` must pass, and the database must
//! hold exactly what an uninterrupted repair gives. The database has lost
//! its manifest (open refuses it) and holds two tables and a WAL, with a
//! flipped byte in one table block, so the repair reads, drops, writes,
//! replaces the manifest and moves a damaged file. The simulated-disk
//! version of this (every crash state, machine crashes included) is
//! tests/tests/repair.rs; this one runs the real binary on a real disk.
//!
//! 20 cycles by default; `JKV_REPAIR_KILL_CYCLES=N` runs N.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// SplitMix64, seeded, so a failing cycle can be repeated.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn repl(dir: &Path, input: &str) -> String {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .arg("--no-auto-compactions")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every key and value, by `scan`.
fn contents(dir: &Path) -> BTreeMap<String, String> {
    let out = repl(dir, "scan\n");
    let mut lines: Vec<&str> = out.lines().collect();
    let count = lines.pop().expect("a count line");
    let map: BTreeMap<String, String> = lines
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("KEY VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(count, format!("({} entries)", map.len()));
    map
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn check(dir: &Path) -> Result<(), String> {
    let out = jkv().arg("check").arg(dir).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn repair_killed_at_random_moments_runs_again_to_the_same_database() {
    let cycles: u64 = std::env::var("JKV_REPAIR_KILL_CYCLES")
        .ok()
        .map_or(20, |s| {
            s.parse().expect("JKV_REPAIR_KILL_CYCLES is a number")
        });
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    repl(
        &base,
        "fill 0 59999\nflush\nfill 30000 89999\nflush\nfill 80000 99999\nclose\n",
    );
    std::fs::remove_file(base.join("MANIFEST")).unwrap();
    let mut tables: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    tables.sort();
    let mut bytes = std::fs::read(&tables[0]).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    std::fs::write(&tables[0], bytes).unwrap();

    // The uninterrupted repair, and how long it takes.
    let reference = work.path().join("reference");
    copy_dir(&base, &reference);
    let started = Instant::now();
    let out = jkv().arg("repair").arg(&reference).output().unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    check(&reference).unwrap();
    let want = contents(&reference);
    assert!(want.len() > 90_000, "{} keys survive", want.len());

    let mut rng = Rng(0x5eed);
    let mut killed_mid_way = 0;
    for cycle in 0..cycles {
        let dir = work.path().join(format!("cycle-{cycle}"));
        copy_dir(&base, &dir);
        let mut child = jkv()
            .arg("repair")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait_us = rng.next_u64() % (took.as_micros() as u64 * 3 / 2 + 1);
        std::thread::sleep(Duration::from_micros(wait_us));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        child.wait().unwrap();
        killed_mid_way += u64::from(!finished);
        let out = jkv().arg("repair").arg(&dir).output().unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "cycle {cycle} (killed after {wait_us} µs): repair again failed: {summary}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Err(report) = check(&dir) {
            panic!("cycle {cycle} (killed after {wait_us} µs): check: {report}");
        }
        let got = contents(&dir);
        assert!(
            got == want,
            "cycle {cycle} (killed after {wait_us} µs): {} keys, want {}",
            got.len(),
            want.len()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!(
        "cycles={cycles} killed mid-way={killed_mid_way} (repair takes {:.0} ms)",
        took.as_secs_f64() * 1e3
    );
}
