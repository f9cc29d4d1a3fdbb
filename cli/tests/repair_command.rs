//! `jkv repair DIR` typed as a user types it: on a database whose table has
//! a damaged block it exits 2 and its summary names the block (file, byte,
//! what), the kept manifest and the count of what was dropped; afterwards
//! `jkv check` passes and the REPL reads every key outside the damaged
//! block. On an intact database it exits 0 ("nothing dropped"); on a
//! database another process holds it refuses with `ERR` and exit 1. Range
//! deletes stay deleted through a repair, which counts the tombstones it kept.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

fn repl(dir: &Path, input: &str) -> String {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .args(["--block-size", "256", "--no-auto-compactions"])
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

fn run_repair(dir: &Path) -> (Output, String) {
    let out = jkv().arg("repair").arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

fn table(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("a table")
}

#[test]
fn repair_of_a_damaged_block_reports_it_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        repl(
            dir.path(),
            "fill 100 399\nflush\nput extra in-the-wal\nclose\n"
        ),
        "OK 300\nOK\nOK\n"
    );
    // Flip a byte in the second data block (blocks are ~256 bytes).
    let sst = table(dir.path());
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[400] ^= 0x04;
    std::fs::write(&sst, bytes).unwrap();

    let (out, text) = run_repair(dir.path());
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dropped: Vec<&str> = text.lines().filter(|l| l.starts_with("DROPPED ")).collect();
    assert_eq!(dropped.len(), 1, "{text}");
    let expected = format!("DROPPED {} at byte ", sst.display());
    assert!(
        dropped[0].starts_with(&expected) && dropped[0].contains("block checksum mismatch"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "old manifest kept as {}",
            dir.path().join("MANIFEST.bad-1").display()
        )),
        "{text}"
    );
    assert!(text.contains("damaged files moved to "), "{text}");
    assert_eq!(
        text.lines().last(),
        Some("1 damaged place dropped: data was lost"),
        "{text}"
    );
    assert!(dir.path().join("MANIFEST.bad-1").exists());
    assert!(dir
        .path()
        .join("damaged-1")
        .join(sst.file_name().unwrap())
        .exists());

    let check = jkv().arg("check").arg(dir.path()).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Keys of the first block (the smallest, in byte order) and the WAL's
    // write are all there; the damaged block's keys are gone.
    let out = repl(dir.path(), "get 100\nget 101\nget extra\nscan\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["value100@0", "value101@0", "in-the-wal"]);
    let count: usize = lines
        .last()
        .and_then(|l| l.strip_prefix('(')?.strip_suffix(" entries)")?.parse().ok())
        .expect("a scan count");
    assert!(
        (250..301).contains(&count),
        "{count} entries survive:\n{out}"
    );
}

#[test]
fn repair_of_a_missing_manifest_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    repl(dir.path(), "fill 1 50\nflush\nfill 40 60\nclose\n");
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    // Open refuses: the data files are there, the manifest is not.
    let refused = jkv()
        .arg("--path")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let (out, text) = run_repair(dir.path());
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("MANIFEST is missing"), "{text}");
    assert_eq!(text.lines().last(), Some("nothing dropped"), "{text}");
    assert!(!text.contains("DROPPED"), "{text}");
    assert_eq!(
        repl(dir.path(), "get 1\nget 45\nget 60\nscan 59\n"),
        "value1@0\nvalue45@1\nvalue60@1\n59 value59@1\n6 value6@0\n60 value60@1\n7 value7@0\n8 value8@0\n9 value9@0\n(6 entries)\n"
    );
}

#[test]
fn repair_refuses_a_database_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = jkv()
        .arg("--path")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "put a b").unwrap();
    stdin.flush().unwrap();
    // Wait for the answer: the database is open.
    let mut stdout = child.stdout.take().unwrap();
    let mut answer = [0u8; 3];
    std::io::Read::read_exact(&mut stdout, &mut answer).unwrap();
    assert_eq!(&answer, b"OK\n");
    let (out, _) = run_repair(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ERR "), "{err}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn repair_refuses_a_directory_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.tmp"), b"not ours").unwrap();
    let (out, text) = run_repair(dir.path());
    assert_eq!(out.status.code(), Some(1), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("ERR "), "{err}");
    assert!(err.contains("no database in"), "{err}");
    // Nothing in it was touched: no lock file, the stranger's file kept.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.tmp"]);
    let (out, _) = run_repair(&dir.path().join("missing"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn repair_keeps_range_deletes_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        repl(
            dir.path(),
            "fill 100 199\nflush\ndelrange 120 140\nflush\ndelrange 160 170\nclose\n"
        ),
        "OK 100\nOK\nOK\nOK\nOK\n"
    );
    let (out, text) = run_repair(dir.path());
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(" and 2 range tombstones in 1 new tables"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("nothing dropped"), "{text}");
    let check = jkv().arg("check").arg(dir.path()).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut want = String::from("(nil)\n(nil)\nvalue170@0\n");
    for i in (118..120).chain(140..160).chain(170..172) {
        want.push_str(&format!("{i} value{i}@0\n"));
    }
    want.push_str("(24 entries)\n");
    assert_eq!(
        repl(dir.path(), "get 125\nget 165\nget 170\nscan 118 172\n"),
        want
    );
}
