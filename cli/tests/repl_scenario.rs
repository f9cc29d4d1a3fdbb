//! The REPL contract, driven through the real `jkv` binary with piped
//! input: the fill/close/restart/get scenario, restart after SIGKILL with
//! `--sync`, error lines, and the inspection tools on the same directory.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// Runs the REPL on `dir` with `input` piped in; returns stdout.
fn repl(dir: &Path, extra: &[&str], input: &str) -> String {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .args(extra)
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
fn fill_close_restart_get() {
    let dir = tempfile::tempdir().unwrap();
    let out = repl(dir.path(), &[], "fill 1000 2000\nclose\n");
    assert_eq!(out, "OK 1001\n");
    let out = repl(dir.path(), &[], "get 1500\nget 999\nget 2000\n");
    assert_eq!(out, "value1500@0\n(nil)\nvalue2000@0\n");
}

#[test]
fn answers_one_line_per_command_and_errors_start_with_err() {
    let dir = tempfile::tempdir().unwrap();
    let out = repl(
        dir.path(),
        &[],
        "put k some value\nget k\nbogus\nget\ndel k\nget k\nfill 1 2\nfill 3 4\nscan\nflush\nclose\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "OK");
    assert_eq!(lines[1], "some value");
    assert!(lines[2].starts_with("ERR "), "{}", lines[2]);
    assert!(lines[3].starts_with("ERR "), "{}", lines[3]);
    assert_eq!(&lines[4..7], ["OK", "(nil)", "OK 2"]);
    assert_eq!(lines[7], "OK 2");
    assert_eq!(
        &lines[8..13],
        [
            "1 value1@0",
            "2 value2@0",
            "3 value3@1",
            "4 value4@1",
            "(4 entries)"
        ]
    );
    assert_eq!(lines[13], "OK");
    assert_eq!(lines.len(), 14);
}

#[test]
fn stats_and_end_of_input_close() {
    let dir = tempfile::tempdir().unwrap();
    let out = repl(dir.path(), &[], "fill 0 99\nflush\nstats\n");
    assert!(out.contains("L0"), "{out}");
    assert!(out.contains("health: ok"), "{out}");
    // End of input closed the database cleanly: it reopens with the data.
    let out = repl(dir.path(), &[], "get 42\n");
    assert_eq!(out, "value42@0\n");
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    fn start(dir: &Path, extra: &[&str]) -> Running {
        let mut child = jkv()
            .arg("--path")
            .arg(dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("jkv starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Running {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim_end().to_string()
    }
}

#[test]
fn synced_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::start(dir.path(), &["--sync"]);
    assert_eq!(running.ask("fill 1000 2000"), "OK 1001");
    assert_eq!(running.ask("put extra acknowledged"), "OK");
    // SIGKILL: no close, no flush, no destructor.
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let out = repl(dir.path(), &[], "get 1500\nget extra\n");
    assert_eq!(out, "value1500@0\nacknowledged\n");
}

#[test]
fn check_and_dump_tools_read_the_database() {
    let dir = tempfile::tempdir().unwrap();
    repl(dir.path(), &[], "fill 0 500\nflush\nclose\n");
    let check = jkv().arg("check").arg(dir.path()).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let dump = jkv().arg("manifest-dump").arg(dir.path()).output().unwrap();
    assert!(dump.status.success());
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("snapshot"), "{text}");
    let table = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "sst"))
        .expect("a table");
    let dump = jkv().arg("sst-dump").arg(&table).output().unwrap();
    assert!(dump.status.success());
    assert!(String::from_utf8_lossy(&dump.stdout).contains("250"));

    // Damage the table: check must flag it and exit non-zero.
    let mut bytes = std::fs::read(&table).unwrap();
    bytes[5] ^= 0x08;
    std::fs::write(&table, bytes).unwrap();
    let check = jkv().arg("check").arg(dir.path()).output().unwrap();
    assert!(!check.status.success());
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains(".sst"), "{report}");
}
