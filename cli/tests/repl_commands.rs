//! Every command of the REPL table in DESIGN.md ("The `jkv` REPL"), typed
//! the way a user types it: piped into the real `jkv` binary, each answer
//! checked exactly. Also the engine options of the binary (`--help` lists
//! each with its default; a bad value is refused with `ERR`). `compact`
//! used to answer an `ERR` although the engine can compact; this file is
//! what would have caught it.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

/// Runs the REPL on `dir` with `input` piped in.
fn run(dir: &Path, extra: &[&str], input: &str) -> Output {
    let mut child = jkv()
        .arg("--path")
        .arg(dir)
        .args(extra)
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
    // A binary that refuses its options exits before reading its input.
    if let Err(e) = written {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing input: {e}"
        );
    }
    child.wait_with_output().expect("jkv finishes")
}

/// Runs the REPL and returns its standard output; it must exit 0 and
/// write nothing to standard error.
fn repl(dir: &Path, extra: &[&str], input: &str) -> String {
    let out = run(dir, extra, input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "jkv failed: {stderr}");
    assert!(out.stderr.is_empty(), "unexpected stderr: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 answers")
}

#[test]
fn every_command_answers_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let input = "\
help
put a hello  world
get a
get missing
put gone soon
del gone
get gone
fill 1 5
get 3
fill 4 6
get 4
scan
scan 3
scan 2 4
delrange 2 4
scan 2 4
get 4
flush
compact
get 6
stats
get a
";
    let out = repl(dir.path(), &[], input);
    let lines: Vec<&str> = out.lines().collect();
    let before_stats = [
        "commands: put KEY VALUE | del KEY | delrange BEGIN END | get KEY | fill BEGIN END | scan [BEGIN [END]] | flush | compact | stats | help | close (also quit, exit)",
        "OK",
        "hello  world",
        "(nil)",
        "OK",
        "OK",
        "(nil)",
        "OK 5",
        "value3@0",
        "OK 3",
        "value4@1",
        // scan: every key, in byte order.
        "1 value1@0",
        "2 value2@0",
        "3 value3@0",
        "4 value4@1",
        "5 value5@1",
        "6 value6@1",
        "a hello  world",
        "(7 entries)",
        // scan 3: from 3 on.
        "3 value3@0",
        "4 value4@1",
        "5 value5@1",
        "6 value6@1",
        "a hello  world",
        "(5 entries)",
        // scan 2 4: 2 <= key < 4.
        "2 value2@0",
        "3 value3@0",
        "(2 entries)",
        // delrange 2 4 deletes 2 and 3; 4 stays.
        "OK",
        "(0 entries)",
        "value4@1",
        // flush, compact.
        "OK",
        "OK",
        "value6@1",
    ];
    assert_eq!(&lines[..before_stats.len()], before_stats, "{out}");

    // stats: after `compact` everything sits in one table of the last level.
    let stats = &lines[before_stats.len()..lines.len() - 1];
    assert_eq!(
        stats[0],
        "level tables   size_mib  target_mib  score  comp_read_mib  comp_write_mib"
    );
    assert_eq!(
        stats[1],
        "L0         0       0.00        0.00   0.00           0.00            0.00"
    );
    for (i, line) in stats[2..7].iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], format!("L{}", i + 1), "{line}");
        assert_eq!(fields[1], "0", "L{} holds no tables: {line}", i + 1);
    }
    let last_level: Vec<&str> = stats[7].split_whitespace().collect();
    assert_eq!(&last_level[..3], ["L6", "*", "1"], "{}", stats[7]);
    assert_eq!(stats[8], "(* base level: L0 compacts into it)");
    assert!(stats[9].starts_with("memtable "), "{}", stats[9]);
    assert!(
        stats.iter().any(|l| {
            l.starts_with(
            "value log: 0 files, 0.00 MiB, garbage 0.00 MiB; written 0.00 MiB; GC collected 0 files"
        )
        }),
        "{out}"
    );
    assert!(
        stats.contains(&"range tombstones 0, tables deleted unread 0"),
        "compact dropped the range tombstone at the bottom: {out}"
    );
    assert_eq!(stats.last(), Some(&"health: ok"));
    // Per level: the compression its tables are written with, bytes
    // stored and raw (the defaults: none, none, then lz4).
    let at = stats
        .iter()
        .position(|l| *l == "level compression   stored_mib     raw_mib  stored/raw")
        .expect("compression table");
    for (i, line) in stats[at + 1..at + 8].iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], format!("L{i}"), "{line}");
        assert_eq!(fields[1], if i < 2 { "none" } else { "lz4" }, "{line}");
    }
    assert!(
        stats[at + 8].starts_with("block cache: ") && stats[at + 8].contains(" of 64.00 MiB, "),
        "{out}"
    );
    assert_eq!(stats.len(), 26, "{out}");
    assert_eq!(lines.last(), Some(&"hello  world"));
}

#[test]
fn wrong_commands_answer_one_err_line_and_the_repl_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = "\
frobnicate
put lonely
get
get a b
del
fill 1
fill x 3
fill 5 1
scan 1 2 3
flush now
compact all
stats please
close later
get a
";
    let out = repl(dir.path(), &[], input);
    assert_eq!(
        out,
        "\
ERR unknown command \"frobnicate\"; try help
ERR usage: put KEY VALUE
ERR usage: get KEY
ERR usage: get KEY
ERR usage: del KEY
ERR usage: fill BEGIN END
ERR fill: \"x\" is not a non-negative decimal number
ERR fill: BEGIN 5 is greater than END 1
ERR usage: scan [BEGIN [END]]
ERR flush takes no arguments
ERR compact takes no arguments
ERR stats takes no arguments
ERR close takes no arguments
(nil)
"
    );
}

#[test]
fn close_quit_and_exit_end_the_session_and_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    for (i, command) in ["close", "quit", "exit"].iter().enumerate() {
        // Nothing after the command is read: its answer never appears.
        let out = repl(
            dir.path(),
            &[],
            &format!("put k{i} v{i}\n{command}\nget k{i}\n"),
        );
        assert_eq!(out, "OK\n", "{command}");
    }
    let out = repl(dir.path(), &[], "get k0\nget k1\nget k2\n");
    assert_eq!(out, "v0\nv1\nv2\n");
}

#[test]
fn end_of_input_closes_like_close() {
    let dir = tempfile::tempdir().unwrap();
    // Without a WAL, only a real close (which flushes) keeps the data.
    assert_eq!(repl(dir.path(), &["--no-wal"], "fill 1 3\n"), "OK 3\n");
    assert_eq!(
        repl(dir.path(), &["--no-wal"], "scan\n"),
        "1 value1@0\n2 value2@0\n3 value3@0\n(3 entries)\n"
    );
}

#[test]
fn compact_merges_overwrites_into_the_last_level() {
    let dir = tempfile::tempdir().unwrap();
    let out = repl(
        dir.path(),
        &["--no-auto-compactions"],
        "fill 0 999\nflush\nfill 0 999\nflush\nfill 0 999\nflush\ncompact\nget 500\nclose\n",
    );
    assert_eq!(
        out,
        "OK 1000\nOK\nOK 1000\nOK\nOK 1000\nOK\nOK\nvalue500@2\n"
    );
    // One table remains, holding each key once.
    let tables: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    let dump = jkv().arg("sst-dump").arg(&tables[0]).output().unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("  entries: 1000\n"), "{text}");
}

#[test]
fn help_lists_every_engine_option_with_its_default() {
    let out = jkv().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, default) in [
        ("--path <PATH>", Some("./jkv-data")),
        ("--sync", None),
        ("--no-wal", None),
        ("--write-buffer-size <BYTES>", Some("67108864")),
        ("--max-immutable-memtables <N>", Some("2")),
        ("--value-threshold <BYTES|off>", Some("4096")),
        ("--block-size <BYTES>", Some("4096")),
        ("--bloom-bits <BITS>", Some("10")),
        ("--compaction-threads <N>", Some("2")),
        ("--no-auto-compactions", None),
        ("--num-levels <N>", Some("7")),
        ("--l0-compaction-trigger <TABLES>", Some("4")),
        ("--base-level-size <BYTES>", Some("268435456")),
        ("--target-table-size <BYTES>", Some("67108864")),
        ("--vlog-file-size <BYTES>", Some("268435456")),
        ("--vlog-gc-garbage-ratio <RATIO>", Some("0.5")),
        ("--vlog-space-amp-max <RATIO>", Some("2")),
        ("--compression-per-level <LIST>", Some("none,none,lz4")),
        ("--compression <TYPE>", None),
        ("--block-cache-bytes <BYTES>", Some("67108864")),
        ("--vlog-compression <TYPE>", Some("none")),
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        if let Some(default) = default {
            assert!(
                line.ends_with(&format!("[default: {default}]")),
                "{flag}: {line}"
            );
        }
    }
}

#[test]
fn engine_options_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(100);
    // With a 64-byte threshold, a 100-byte value goes to the value log.
    let out = repl(
        dir.path(),
        &[
            "--value-threshold",
            "64",
            "--block-size",
            "1024",
            "--bloom-bits",
            "0",
            "--compaction-threads",
            "1",
            "--write-buffer-size",
            "65536",
        ],
        &format!("put big {big}\nget big\nstats\n"),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["OK", big.as_str()]);
    assert!(
        lines.iter().any(|l| l.starts_with("value log: 1 files")),
        "{out}"
    );
    // `off` keeps it in the tree.
    let dir = tempfile::tempdir().unwrap();
    let out = repl(
        dir.path(),
        &["--value-threshold", "off"],
        &format!("put big {big}\nstats\n"),
    );
    assert!(
        out.lines().any(|l| l.starts_with("value log: 0 files")),
        "{out}"
    );
}

#[test]
fn bad_option_values_are_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--block-size", "1"], "put a b\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("ERR ") && stderr.contains("block_size 1"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let out = run(dir.path(), &["--value-threshold", "lots"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("neither a byte count nor `off`"),
        "{stderr}"
    );
}

#[test]
fn fill_progress_on_a_terminal_shows_whole_keys_per_second() {
    // `script` gives the REPL a terminal for standard error (the progress
    // bar's), while its input stays a pipe.
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("no `script` utility: the terminal progress bar is not checked here");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("typescript");
    let command = format!(
        "printf 'fill 0 299999\\nclose\\n' | {} --path {}",
        env!("CARGO_BIN_EXE_jkv"),
        dir.path().join("db").display()
    );
    let status = Command::new(script)
        .args(["-q", "-c", &command])
        .arg(&typescript)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    let rates: Vec<&str> = text
        .split(['\r', '\n'])
        .filter_map(|l| l.split(" keys ").nth(1)?.split("/s").next())
        .collect();
    assert!(!rates.is_empty(), "no progress line in {text:?}");
    for rate in &rates {
        assert!(
            !rate.is_empty() && rate.bytes().all(|b| b.is_ascii_digit()),
            "rate {rate:?} is not a whole number of keys per second"
        );
    }
    assert!(text.contains("OK 300000"), "{text:?}");
}
