//! The `jkv-bench` binary: parses db_bench-style flags, runs each benchmark
//! in order (fresh database for the fill benchmarks), and prints db_bench's
//! result line plus disk usage, write amplification and peak memory.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use jkv_bench::error::Result;
use jkv_bench::flags::{self, EngineKind, Flags};
use jkv_bench::report::{self, format_line, mib};
use jkv_bench::store::{self, Store};
use jkv_bench::workloads;

fn main() -> ExitCode {
    let flags = match flags::parse(std::env::args().skip(1)) {
        Ok(Some(f)) => f,
        Ok(None) => {
            print!("{}", flags::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("jkv-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jkv-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn header(flags: &Flags) {
    println!(
        "jkv-bench {} (engine: {})",
        env!("CARGO_PKG_VERSION"),
        flags.engine.name()
    );
    println!("Keys:       {} bytes each", flags.key_size);
    println!("Values:     {} bytes each", flags.value_size);
    println!("Entries:    {}", flags.num);
    println!(
        "Options:    write_buffer_size {} cache_size {} bloom_bits {} compression none sync {} disable_wal {} threads {}",
        flags.write_buffer_size, flags.cache_size, flags.bloom_bits, flags.sync, flags.disable_wal, flags.threads
    );
    match (flags.value_threshold, flags.engine) {
        (Some(t), EngineKind::Jkv | EngineKind::Fjall | EngineKind::Rocksdb) => {
            println!("ValueLog:   key-value separation on for values >= {t} bytes")
        }
        (Some(_), EngineKind::Redb) => println!("ValueLog:   redb has no key-value separation"),
        (None, _) => {}
    }
    println!("DB path:    [{}]", flags.db.display());
    println!("------------------------------------------------");
}

fn progress_bar(name: &str, flags: &Flags) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let per_thread = match name {
        "readrandom" | "readseq" | "readreverse" | "seekrandom" | "readwhilewriting" => {
            flags.reads()
        }
        _ => flags.writes(),
    };
    let pb = if flags.duration_secs > 0 {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::new(per_thread * flags.threads as u64)
    };
    pb.set_style(
        ProgressStyle::with_template("{msg:<12} [{bar:40}] {pos}/{len} ops {per_sec} eta {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    pb.set_message(name.to_string());
    pb
}

fn run(flags: &Flags) -> Result<()> {
    header(flags);
    let mut store: Option<Box<dyn Store>> = None;
    let mut seed = flags.seed;
    for name in &flags.benchmarks {
        let name = name.as_str();
        if name == "fsyncrate" || name == "fsyncsized" {
            let sized = name == "fsyncsized";
            let m = workloads::fsync_rate(flags, sized)?;
            let what = if sized {
                "(write into a pre-sized file + fdatasync)"
            } else {
                "(append + fdatasync)"
            };
            println!("{}", format_line(name, &m, Some(what)));
            continue;
        }
        if name.starts_with("ecs_") {
            if flags.engine != EngineKind::Jkv {
                println!("{name:<12} : skipped (ECS tables run on jkv only)");
                continue;
            }
            // Each ECS benchmark makes its own fresh database in --db.
            if let Some(s) = store.take() {
                s.close()?;
            }
            let pb = progress_bar(name, flags);
            let outcome = jkv_bench::ecs::run(name, flags, seed, &pb)?;
            pb.finish_and_clear();
            seed += flags.threads as u64 + 1;
            println!(
                "{}",
                format_line(name, &outcome.merged, outcome.message.as_deref())
            );
            continue;
        }
        if workloads::is_fresh(name) {
            if flags.use_existing_db {
                println!("{name:<12} : skipped (--use_existing_db is set)");
                continue;
            }
            if let Some(s) = store.take() {
                s.close()?;
            }
            store::destroy(&flags.db)?;
        }
        if store.is_none() {
            let started = std::time::Instant::now();
            store = Some(store::open(flags)?);
            if flags.use_existing_db {
                println!(
                    "{:<12} : {:.3} ms to open the existing database",
                    "open",
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        let s = store.as_deref().expect("opened above");
        let io_before = report::proc_write_bytes();
        let engine_before = s.engine_write_counters();
        let pb = progress_bar(name, flags);
        let outcome = workloads::run(name, s, flags, seed, &pb)?;
        s.settle()?;
        pb.finish_and_clear();
        seed += flags.threads as u64 + 1;
        let Some(outcome) = outcome else { continue };
        println!(
            "{}",
            format_line(name, &outcome.merged, outcome.message.as_deref())
        );
        if name == "compact" {
            if let Some(note) = s.compact_note() {
                println!("{:<12} : {note}", "");
            }
        }
        if name == "waitforcompaction" {
            if let Some(note) = s.wait_note() {
                println!("{:<12} : {note}", "");
            }
        }
        let mut extra = vec![format!("db {} on disk", mib(report::dir_bytes(&flags.db)))];
        if outcome.user_bytes_written > 0 {
            let user = outcome.user_bytes_written as f64;
            let mut wa = Vec::new();
            if let (Some(a), Some(b)) = (io_before, report::proc_write_bytes()) {
                wa.push(format!(
                    "{:.2} by /proc/self/io write_bytes",
                    (b - a) as f64 / user
                ));
            }
            if let (Some((u0, w0)), Some((u1, w1))) = (engine_before, s.engine_write_counters()) {
                if u1 > u0 {
                    wa.push(format!(
                        "{:.2} by {}'s own counters",
                        (w1 - w0) as f64 / (u1 - u0) as f64,
                        flags.engine.name()
                    ));
                }
            }
            if !wa.is_empty() {
                extra.push(format!("write-amp {}", wa.join(", ")));
            }
        }
        if let Some(peak) = report::peak_rss_bytes() {
            extra.push(format!("peak memory {} (VmHWM)", mib(peak)));
        }
        if let Some(fds) = report::open_files() {
            extra.push(format!("{fds} open files"));
        }
        println!("{:<12} : {}", "", extra.join("; "));
    }
    if let Some(s) = store.take() {
        s.close()?;
    }
    Ok(())
}
