//! Recovery after SIGKILL of the real `jkv` process: a child
//! `jkv --path DIR [--sync] --write-buffer-size 16384` runs random puts,
//! deletes, range deletes (`delrange`) and fills, is killed at a random moment (sometimes idle,
//! sometimes with commands sent but not yet answered), restarted, and its
//! whole contents (`scan`) compared with what it acknowledged: every
//! acknowledged write is there, and the unanswered commands are there in
//! order up to some point (a fill, written in several batches, possibly in
//! part). Without `--sync` the same must hold: writes are handed to the OS
//! before they are acknowledged, and a process kill does not lose the page
//! cache.
//!
//! 100 cycles by default (about a third without `--sync`);
//! `JKV_KILL_CYCLES=N` runs N.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Keys are decimal numbers below this.
const KEY_SPACE: u64 = 3000;

type State = BTreeMap<u64, String>;

/// SplitMix64: a seeded generator, so a failing run can be repeated.
struct StdRng(u64);

impl StdRng {
    fn seed_from_u64(seed: u64) -> Self {
        StdRng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `range` (start < end).
    fn gen_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next_u64() % (range.end - range.start)
    }

    fn gen_bool(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A command and its effect on the state.
#[derive(Clone, Debug)]
enum Cmd {
    Put(u64, String),
    Del(u64),
    /// `delrange BEGIN END`: keys whose decimal string sorts in
    /// `[BEGIN, END)`.
    DelRange(u64, u64),
    /// Keys `begin..=end`, value `value{i}@{epoch}`.
    Fill(u64, u64, u64),
}

impl Cmd {
    fn line(&self) -> String {
        match self {
            Cmd::Put(k, v) => format!("put {k} {v}\n"),
            Cmd::Del(k) => format!("del {k}\n"),
            Cmd::DelRange(b, e) => format!("delrange {b} {e}\n"),
            Cmd::Fill(b, e, _) => format!("fill {b} {e}\n"),
        }
    }

    /// The states this command may leave when it was cut short: for a
    /// fill, every prefix of its keys; otherwise all or nothing.
    fn partial_states(&self, before: &State) -> Vec<State> {
        let mut out = vec![before.clone()];
        let mut s = before.clone();
        match self {
            Cmd::Fill(b, e, epoch) => {
                for i in *b..=*e {
                    s.insert(i, format!("value{i}@{epoch}"));
                    out.push(s.clone());
                }
            }
            _ => {
                self.apply(&mut s);
                out.push(s);
            }
        }
        out
    }

    fn apply(&self, s: &mut State) {
        match self {
            Cmd::Put(k, v) => {
                s.insert(*k, v.clone());
            }
            Cmd::Del(k) => {
                s.remove(k);
            }
            Cmd::DelRange(b, e) => {
                let (b, e) = (b.to_string(), e.to_string());
                s.retain(|k, _| {
                    let k = k.to_string();
                    !(b <= k && k < e)
                });
            }
            Cmd::Fill(b, e, epoch) => {
                for i in *b..=*e {
                    s.insert(i, format!("value{i}@{epoch}"));
                }
            }
        }
    }

    fn answer_ok(&self, answer: &str) -> bool {
        match self {
            Cmd::Fill(b, e, _) => answer == format!("OK {}", e - b + 1),
            _ => answer == "OK",
        }
    }
}

struct Repl {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Repl {
    fn start(dir: &Path, sync: bool) -> Repl {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jkv"));
        cmd.arg("--path")
            .arg(dir)
            .args(["--write-buffer-size", "16384"]);
        if sync {
            cmd.arg("--sync");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jkv starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Repl {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, line: &str) {
        self.stdin
            .write_all(line.as_bytes())
            .expect("jkv reads input");
        self.stdin.flush().expect("jkv reads input");
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("jkv output");
        if n == 0 {
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("jkv exited early; stderr: {err}");
        }
        line.trim_end_matches('\n').to_string()
    }

    /// The whole contents, by `scan`.
    fn scan(&mut self) -> State {
        self.send("scan\n");
        let mut state = State::new();
        loop {
            let line = self.read_line();
            if line.starts_with('(') && line.ends_with(" entries)") {
                let n: usize = line[1..line.len() - " entries)".len()]
                    .parse()
                    .expect("entry count");
                assert_eq!(n, state.len(), "scan count line");
                return state;
            }
            let (k, v) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("scan line {line:?}"));
            let k: u64 = k.parse().unwrap_or_else(|_| panic!("scan key {line:?}"));
            assert!(state.insert(k, v.to_string()).is_none(), "duplicate {k}");
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("child reaped");
    }
}

fn random_cmd(rng: &mut StdRng, cycle: u64, i: usize, fills: &mut u64) -> Cmd {
    match rng.gen_range(0..100) {
        0..=54 => Cmd::Put(
            rng.gen_range(0..KEY_SPACE),
            format!(
                "c{cycle}i{i}-{}",
                "x".repeat(rng.gen_range(0..200) as usize)
            ),
        ),
        55..=79 => Cmd::Del(rng.gen_range(0..KEY_SPACE)),
        80..=84 => {
            // Ranges of decimal strings: "120".."135" also holds "1200"..
            let b = rng.gen_range(0..KEY_SPACE);
            let e = b + rng.gen_range(1..40);
            // BEGIN must not sort after END as a string ("95" > "105").
            if b.to_string() < e.to_string() {
                Cmd::DelRange(b, e)
            } else {
                Cmd::DelRange(e, b)
            }
        }
        _ => {
            let b = rng.gen_range(0..KEY_SPACE - 300);
            let e = b + rng.gen_range(0..150);
            let epoch = *fills;
            *fills += 1;
            Cmd::Fill(b, e, epoch)
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("JKV_KILL_CYCLES")
        .ok()
        .map(|s| s.parse().expect("JKV_KILL_CYCLES is a number"))
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x6b11);
    let mut acked = State::new();
    // Commands sent but not answered when the last process was killed.
    let mut in_flight: Vec<Cmd> = Vec::new();
    let (mut with_flight, mut without_sync) = (0, 0);
    let started = std::time::Instant::now();
    for cycle in 0..cycles {
        let sync = cycle % 3 != 2;
        without_sync += u64::from(!sync);
        let mut repl = Repl::start(dir.path(), sync);
        let got = repl.scan();
        acked = match_outcome(&acked, &in_flight, &got).unwrap_or_else(|| {
            panic!(
                "cycle {cycle}: after the kill the contents are no prefix of \
                 acknowledged + in-flight {in_flight:?}; {}",
                diff(&acked, &got)
            )
        });
        in_flight.clear();

        let mut fills = 0;
        let commands = rng.gen_range(3..25) as usize;
        for i in 0..commands {
            let cmd = random_cmd(&mut rng, cycle, i, &mut fills);
            repl.send(&cmd.line());
            let answer = repl.read_line();
            assert!(cmd.answer_ok(&answer), "{cmd:?} answered {answer:?}");
            cmd.apply(&mut acked);
        }
        if rng.gen_bool(0.7) {
            // Kill with commands in flight.
            with_flight += 1;
            for i in 0..rng.gen_range(1..4) as usize {
                let cmd = random_cmd(&mut rng, cycle, commands + i, &mut fills);
                repl.send(&cmd.line());
                in_flight.push(cmd);
            }
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        }
        repl.kill();
    }
    let mut repl = Repl::start(dir.path(), true);
    let got = repl.scan();
    assert!(
        match_outcome(&acked, &in_flight, &got).is_some(),
        "final: {}",
        diff(&acked, &got)
    );
    repl.send("close\n");
    let status = repl.child.wait().expect("jkv exits");
    assert!(status.success());
    println!(
        "cycles={cycles} (without --sync {without_sync}, killed with commands in flight {with_flight}) \
         keys={} in {:.1}s",
        got.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The state `got` must be `acked` plus the in-flight commands applied in
/// order up to some point (the one being applied possibly in part).
/// Returns the state it matched, the new acknowledged baseline.
fn match_outcome(acked: &State, in_flight: &[Cmd], got: &State) -> Option<State> {
    let mut base = acked.clone();
    if &base == got {
        return Some(base);
    }
    for cmd in in_flight {
        if let Some(s) = cmd.partial_states(&base).into_iter().find(|s| s == got) {
            return Some(s);
        }
        cmd.apply(&mut base);
    }
    None
}

fn diff(want: &State, got: &State) -> String {
    let mut lines = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => lines.push(format!("missing {k}")),
            Some(g) if g != v => lines.push(format!("{k}: want {v:?} got {g:?}")),
            _ => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(k)) {
        lines.push(format!("unexpected {k}"));
    }
    lines.truncate(10);
    lines.join("; ")
}
