//! `jkv sst-dump FILE | head -1` and `jkv manifest-dump DIR | head -1`: when
//! the reader of their output goes away early, the tools stop quietly with
//! status 0, no panic and nothing on standard error (they used to report an
//! i/o error on standard output). `sst-dump` is read like `head -1` reads
//! it (one line, then the pipe closed mid-dump); both tools also write into
//! a pipe closed before they start, so their first write fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// A database whose first table dumps to far more than a pipe holds
/// (64 KiB on Linux), so `sst-dump` meets the closed pipe mid-dump.
fn database(dir: &Path) -> PathBuf {
    let input = "fill 0 20000\nflush\nput key value\nflush\nclose\n";
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .arg("--no-auto-compactions")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut tables: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    tables.sort();
    tables.pop().expect("a table").1
}

/// Runs `jkv ARGS`, reads one line of its output like `head -1`, then
/// closes the pipe and waits.
fn head_1(args: &[&std::ffi::OsStr]) -> (String, Output) {
    let mut child = jkv()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe's read end is closed.
    (first, child.wait_with_output().unwrap())
}

/// Runs `jkv ARGS` with standard output a pipe whose read end is closed
/// before the tool starts, so its very first write fails.
fn into_closed_pipe(args: &[&std::ffi::OsStr]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    jkv()
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dumps_stop_quietly_when_the_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let table = database(dir.path());
    let sst = ["sst-dump".as_ref(), table.as_os_str()];
    let manifest = ["manifest-dump".as_ref(), dir.path().as_os_str()];

    // The whole table dump is larger than a pipe holds.
    let whole = jkv().args(sst).output().unwrap();
    assert!(whole.status.success() && whole.stdout.len() > 256 << 10);

    let (first, out) = head_1(&sst);
    assert!(first.starts_with("table "), "{first}");
    assert_quiet("sst-dump | head -1", &out);

    // A pipe closed before the tool writes anything: its first write fails.
    assert_quiet("sst-dump > closed pipe", &into_closed_pipe(&sst));
    assert_quiet("manifest-dump > closed pipe", &into_closed_pipe(&manifest));
}

#[test]
fn other_errors_still_fail() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("000001.sst");
    let out = jkv().arg("sst-dump").arg(&missing).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ERR "));
}
