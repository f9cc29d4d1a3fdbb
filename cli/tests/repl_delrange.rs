//! `delrange BEGIN END` through the real `jkv` binary with piped input: it
//! answers `OK` and deletes exactly the keys BEGIN <= KEY < END, in the
//! memtable, after a flush and after a restart; bad arguments answer
//! `ERR`. `sst-dump` prints the table's range tombstones and `check`
//! verifies them.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// Runs the REPL on `dir` with `input` piped in; returns stdout.
fn repl(dir: &Path, input: &str) -> String {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jkv starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jkv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn delrange_deletes_begin_up_to_but_not_end() {
    let dir = tempfile::tempdir().unwrap();
    // Keys sort as strings: 10 < 11 < 12 < 13 < 14 < 15.
    let out = repl(
        dir.path(),
        "fill 10 15\ndelrange 11 14\nscan\nget 11\nget 14\ndelrange 15 12\ndelrange 11\nflush\nclose\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..7],
        [
            "OK 6",
            "OK",
            "10 value10@0",
            "14 value14@0",
            "15 value15@0",
            "(3 entries)",
            "(nil)",
        ]
    );
    assert_eq!(lines[7], "value14@0");
    assert!(lines[8].starts_with("ERR delrange: BEGIN"), "{}", lines[8]);
    assert_eq!(lines[9], "ERR usage: delrange BEGIN END");
    assert_eq!(&lines[10..], ["OK"]);

    // After a restart the tombstone comes from the table; a new put inside
    // the range is visible again.
    let out = repl(dir.path(), "get 12\nput 12 again\nget 12\nget 13\nscan\n");
    assert_eq!(
        out,
        "(nil)\nOK\nagain\n(nil)\n10 value10@0\n12 again\n14 value14@0\n15 value15@0\n(4 entries)\n"
    );
}

#[test]
fn sst_dump_and_check_show_the_range_tombstone_block() {
    let dir = tempfile::tempdir().unwrap();
    let out = repl(dir.path(), "fill 100 199\ndelrange 120 150\nflush\nclose\n");
    assert_eq!(out, "OK 100\nOK\nOK\n");
    let check = jkv().arg("check").arg(dir.path()).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let table = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("a table");
    let dump = jkv().arg("sst-dump").arg(&table).output().unwrap();
    assert!(dump.status.success());
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("version 3"), "{text}");
    assert!(text.contains("range tombstones: 1"), "{text}");
    assert!(text.contains("range-tombstone block at"), "{text}");
    assert!(text.contains("[120, 150) @101"), "{text}");
}
