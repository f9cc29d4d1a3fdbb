//! The REPL: one command per line, one answer per command (the contract in
//! DESIGN.md, "The `jkv` REPL"). On a terminal it shows a prompt with line
//! editing and history; on piped input it prints only the answers.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use std::fmt;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use jkv::{Db, Options, WriteBatch, WriteOptions};

/// Puts per batch in `fill`: each batch is one atomic, (with `--sync`)
/// synced write.
const FILL_BATCH: u64 = 1000;

/// What a command asks of the loop after printing its answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Quit,
}

/// A database and the REPL's session state.
pub struct Session {
    db: Db,
    write_options: WriteOptions,
    /// Number of `fill` commands run in this process (the value's suffix).
    fill_epoch: u64,
    progress: bool,
}

impl Session {
    pub fn new(db: Db, sync: bool, progress: bool) -> Self {
        Session {
            db,
            write_options: WriteOptions { sync },
            fill_epoch: 0,
            progress,
        }
    }

    /// Runs one command line, writing its answer to `out`.
    pub fn execute(&mut self, line: &str, out: &mut dyn Write) -> io::Result<Next> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Next::Continue);
        }
        let (command, rest) = match line.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim_start()),
            None => (line, ""),
        };
        let args: Vec<&str> = rest.split_whitespace().collect();
        let result: Result<Next, String> = match command {
            "put" => match rest.split_once(char::is_whitespace) {
                Some((key, value)) => self.put(key, value, out),
                None => Err("usage: put KEY VALUE".into()),
            },
            "del" | "delete" => match args.as_slice() {
                [key] => self.del(key, out),
                _ => Err("usage: del KEY".into()),
            },
            "delrange" => match args.as_slice() {
                [begin, end] => self.delrange(begin, end, out),
                _ => Err("usage: delrange BEGIN END".into()),
            },
            "get" => match args.as_slice() {
                [key] => self.get(key, out),
                _ => Err("usage: get KEY".into()),
            },
            "fill" => match args.as_slice() {
                [begin, end] => self.fill(begin, end, out),
                _ => Err("usage: fill BEGIN END".into()),
            },
            "scan" => match args.as_slice() {
                [] => self.scan(None, None, out),
                [begin] => self.scan(Some(begin), None, out),
                [begin, end] => self.scan(Some(begin), Some(end), out),
                _ => Err("usage: scan [BEGIN [END]]".into()),
            },
            "flush" if args.is_empty() => {
                self.db.flush().map(|_| ok(out)).map_err(|e| e.to_string())
            }
            "compact" if args.is_empty() => self
                .db
                .compact()
                .map(|_| ok(out))
                .map_err(|e| format!("compact: {e}")),
            "stats" if args.is_empty() => {
                writeln!(out, "{}", self.db.stats())?;
                Ok(Next::Continue)
            }
            "close" | "quit" | "exit" if args.is_empty() => match self.db.close() {
                Ok(()) => Ok(Next::Quit),
                Err(e) => Err(format!("close failed: {e}")),
            },
            "flush" | "compact" | "stats" | "close" | "quit" | "exit" => {
                Err(format!("{command} takes no arguments"))
            }
            "help" => {
                writeln!(
                    out,
                    "commands: put KEY VALUE | del KEY | delrange BEGIN END | get KEY | fill BEGIN END | scan [BEGIN [END]] | flush | compact | stats | help | close (also quit, exit)"
                )?;
                Ok(Next::Continue)
            }
            other => Err(format!("unknown command {other:?}; try help")),
        };
        match result {
            Ok(next) => Ok(next),
            Err(why) => {
                writeln!(out, "ERR {why}")?;
                Ok(Next::Continue)
            }
        }
    }

    fn put(&self, key: &str, value: &str, out: &mut dyn Write) -> Result<Next, String> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.db
            .write(batch, self.write_options)
            .map_err(|e| e.to_string())?;
        Ok(ok(out))
    }

    fn del(&self, key: &str, out: &mut dyn Write) -> Result<Next, String> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.db
            .write(batch, self.write_options)
            .map_err(|e| e.to_string())?;
        Ok(ok(out))
    }

    /// Deletes every key `k` with `begin <= k < end` (one range tombstone).
    fn delrange(&self, begin: &str, end: &str, out: &mut dyn Write) -> Result<Next, String> {
        if begin > end {
            return Err(format!("delrange: BEGIN {begin:?} sorts after END {end:?}"));
        }
        let mut batch = WriteBatch::new();
        batch.delete_range(begin..end);
        self.db
            .write(batch, self.write_options)
            .map_err(|e| e.to_string())?;
        Ok(ok(out))
    }

    fn get(&self, key: &str, out: &mut dyn Write) -> Result<Next, String> {
        let answer = match self.db.get(key).map_err(|e| e.to_string())? {
            Some(value) => String::from_utf8_lossy(&value).into_owned(),
            None => "(nil)".to_string(),
        };
        writeln!(out, "{answer}").map_err(|e| e.to_string())?;
        Ok(Next::Continue)
    }

    fn fill(&mut self, begin: &str, end: &str, out: &mut dyn Write) -> Result<Next, String> {
        let parse = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("fill: {s:?} is not a non-negative decimal number"))
        };
        let (begin, end) = (parse(begin)?, parse(end)?);
        if begin > end {
            return Err(format!("fill: BEGIN {begin} is greater than END {end}"));
        }
        let total = end - begin + 1;
        let bar = if self.progress {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} keys {keys_per_sec} eta {eta}")
                    .map_err(|e| e.to_string())?
                    .with_key(
                        "keys_per_sec",
                        |state: &ProgressState, w: &mut dyn fmt::Write| {
                            let _ = write!(w, "{}", keys_per_sec(state.per_sec()));
                        },
                    ),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let epoch = self.fill_epoch;
        let mut i = begin;
        while i <= end {
            let last = end.min(i.saturating_add(FILL_BATCH - 1));
            let mut batch = WriteBatch::new();
            for k in i..=last {
                batch.put(k.to_string(), format!("value{k}@{epoch}"));
            }
            if let Err(e) = self.db.write(batch, self.write_options) {
                bar.abandon();
                return Err(format!("fill stopped before key {i}: {e}"));
            }
            bar.inc(last - i + 1);
            if last == u64::MAX {
                break;
            }
            i = last + 1;
        }
        bar.finish_and_clear();
        self.fill_epoch += 1;
        writeln!(out, "OK {total}").map_err(|e| e.to_string())?;
        Ok(Next::Continue)
    }

    fn scan(
        &self,
        begin: Option<&str>,
        end: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<Next, String> {
        use std::ops::Bound;
        let snapshot = self.db.snapshot();
        let start = begin.map_or(Bound::Unbounded, |b| Bound::Included(b.as_bytes()));
        let stop = end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.as_bytes()));
        let mut n = 0u64;
        for item in self.db.scan::<&[u8]>((start, stop), &snapshot) {
            let (key, value) = item.map_err(|e| format!("scan stopped after {n} entries: {e}"))?;
            writeln!(
                out,
                "{} {}",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            )
            .map_err(|e| e.to_string())?;
            n += 1;
        }
        writeln!(out, "({n} entries)").map_err(|e| e.to_string())?;
        Ok(Next::Continue)
    }
}

/// The progress bar's rate: a whole number of keys per second.
fn keys_per_sec(rate: f64) -> String {
    let whole = if rate.is_finite() && rate > 0.0 {
        rate.round() as u64
    } else {
        0
    };
    format!("{whole}/s")
}

fn ok(out: &mut dyn Write) -> Next {
    // An answer that cannot be written (closed stdout) ends the session at
    // the next read; the write itself was acknowledged.
    let _ = writeln!(out, "OK");
    Next::Continue
}

/// Opens the database and runs the loop until `close` or end of input.
pub fn run(path: &Path, options: Options, sync: bool) -> Result<ExitCode, jkv::Error> {
    let db = Db::open(path, options)?;
    let interactive = io::stdin().is_terminal();
    let mut session = Session::new(db, sync, io::stderr().is_terminal());
    if interactive {
        run_terminal(&mut session)
    } else {
        run_piped(&mut session)
    }
}

fn run_piped(session: &mut Session) -> Result<ExitCode, jkv::Error> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| jkv::Error::io("reading", "standard input", e))?;
        let mut out = stdout.lock();
        let next = session
            .execute(&line, &mut out)
            .and_then(|n| out.flush().map(|_| n))
            .map_err(|e| jkv::Error::io("writing", "standard output", e))?;
        if next == Next::Quit {
            return Ok(ExitCode::SUCCESS);
        }
    }
    session.db.close()?;
    Ok(ExitCode::SUCCESS)
}

fn run_terminal(session: &mut Session) -> Result<ExitCode, jkv::Error> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| jkv::Error::InvalidArgument(format!("cannot start line editor: {e}")))?;
    let stdout = io::stdout();
    loop {
        match editor.readline("jkv> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let mut out = stdout.lock();
                let next = session
                    .execute(&line, &mut out)
                    .map_err(|e| jkv::Error::io("writing", "standard output", e))?;
                if next == Next::Quit {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                return Err(jkv::Error::InvalidArgument(format!(
                    "line editor failed: {e}"
                )))
            }
        }
    }
    session.db.close()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_lines(session: &mut Session, lines: &[&str]) -> String {
        let mut out = Vec::new();
        for line in lines {
            session.execute(line, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn progress_rate_is_a_whole_number() {
        assert_eq!(keys_per_sec(12345.678), "12346/s");
        assert_eq!(keys_per_sec(0.4), "0/s");
        assert_eq!(keys_per_sec(f64::NAN), "0/s");
        assert_eq!(keys_per_sec(f64::INFINITY), "0/s");
    }

    #[test]
    fn commands_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let mut s = Session::new(db, false, false);
        let out = run_lines(
            &mut s,
            &[
                "put a hello world",
                "get a",
                "get b",
                "fill 1 3",
                "get 2",
                "del a",
                "get a",
                "scan 1 3",
                "frobnicate",
                "fill x 3",
                "get",
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![
                "OK",
                "hello world",
                "(nil)",
                "OK 3",
                "value2@0",
                "OK",
                "(nil)",
                "1 value1@0",
                "2 value2@0",
                "(2 entries)",
                "ERR unknown command \"frobnicate\"; try help",
                "ERR fill: \"x\" is not a non-negative decimal number",
                "ERR usage: get KEY",
            ]
        );
    }
}
