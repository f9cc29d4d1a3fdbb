//! Inspection tools: `sst-dump FILE`, `manifest-dump DIR`, `check DIR`,
//! which read files directly and never modify them; and `repair DIR`, which
//! rebuilds a damaged database (the engine's `jkv::repair`).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::{Error, FileNumber, StdFs};
use jkv_sstable::Table;

fn stdout_error(e: io::Error) -> Error {
    Error::io("writing", "standard output", e)
}

/// Ends a dump whose reader went away (`jkv sst-dump FILE | head`) quietly,
/// with status 0, as `cat` does: nobody is left to read the rest. Other
/// errors stay errors.
fn quiet_on_closed_pipe(result: Result<ExitCode, Error>) -> Result<ExitCode, Error> {
    match result {
        Err(Error::Io { ref source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

/// Prints a table's footer, properties, index and every entry.
pub fn sst_dump(file: &Path) -> Result<ExitCode, Error> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let number = match parse_file_name(name) {
        Some(FileKind::Table(n)) => n,
        _ => FileNumber(0),
    };
    let table = Table::open(&StdFs, file, number)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    quiet_on_closed_pipe(
        table
            .dump(&mut out)
            .and_then(|()| out.flush().map_err(stdout_error))
            .map(|()| ExitCode::SUCCESS),
    )
}

/// Prints every manifest record with its byte offset, one per line.
pub fn manifest_dump(dir: &Path) -> Result<ExitCode, Error> {
    let records = jkv_manifest::read_records(&StdFs, dir)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let written = records
        .iter()
        .try_for_each(|(offset, record)| {
            let json = serde_json_line(record);
            writeln!(out, "@{offset} {json}")
        })
        .and_then(|()| out.flush())
        .map(|()| ExitCode::SUCCESS)
        .map_err(stdout_error);
    quiet_on_closed_pipe(written)
}

fn serde_json_line(record: &jkv_manifest::Record) -> String {
    serde_json::to_string(record).unwrap_or_else(|e| format!("(unprintable record: {e})"))
}

/// Verifies every checksum; prints the report; exit status 1 on damage.
pub fn check(dir: &Path) -> Result<ExitCode, Error> {
    let report = jkv::check(dir)?;
    println!("{report}");
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Exit status of `repair` when data was dropped (1 is for a repair that
/// could not run).
const REPAIR_DROPPED: u8 = 2;

/// Repairs the database in `dir`; prints the report; exit status 2 when
/// data was dropped.
pub fn repair(dir: &Path, options: jkv::Options) -> Result<ExitCode, Error> {
    let report = jkv::repair(dir, options)?;
    println!("{report}");
    Ok(if report.data_dropped() {
        ExitCode::from(REPAIR_DROPPED)
    } else {
        ExitCode::SUCCESS
    })
}
