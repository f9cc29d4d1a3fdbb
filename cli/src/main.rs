//! The `jkv` binary: the REPL on a database directory, and inspection tools
//! (`sst-dump`, `manifest-dump`, `check`).

mod repl;
mod sensor;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jkv: an embedded LSM-tree key-value store.
#[derive(Debug, Parser)]
#[command(name = "jkv", version, about)]
struct Cli {
    /// Database directory for the REPL (created if missing).
    #[arg(long, default_value = "./jkv-data")]
    path: PathBuf,
    /// Acknowledge writes only once they are fsynced.
    #[arg(long)]
    sync: bool,
    /// Run without a write-ahead log (close flushes the memtable).
    #[arg(long)]
    no_wal: bool,
    /// Memtable size in bytes before it is flushed.
    #[arg(long)]
    write_buffer_size: Option<usize>,
    #[command(subcommand)]
    tool: Option<Tool>,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Print a table's footer, properties, index and entries.
    SstDump {
        /// The `.sst` file.
        file: PathBuf,
    },
    /// Print every record of a database's manifest.
    ManifestDump {
        /// The database directory.
        dir: PathBuf,
    },
    /// Verify every checksum of a database; exit 1 if anything is wrong.
    Check {
        /// The database directory.
        dir: PathBuf,
    },
    /// The sensor layer: `serve` (TCP ingest), `load`, `query`, `export`/`import` (MCAP), `register`, `channels`.
    Sensor(sensor::SensorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.tool {
        Some(Tool::SstDump { file }) => tools::sst_dump(&file),
        Some(Tool::ManifestDump { dir }) => tools::manifest_dump(&dir),
        Some(Tool::Check { dir }) => tools::check(&dir),
        Some(Tool::Sensor(args)) => match sensor::run(args) {
            Ok(code) => return code,
            Err(e) => {
                eprintln!("ERR {e}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            let mut options = jkv::Options::default().wal(!cli.no_wal);
            if let Some(bytes) = cli.write_buffer_size {
                options = options.write_buffer_size(bytes);
            }
            repl::run(&cli.path, options, cli.sync)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERR {e}");
            ExitCode::FAILURE
        }
    }
}
