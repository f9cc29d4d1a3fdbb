//! Inspection tools: `sst-dump FILE`, `manifest-dump DIR`, `check DIR`.
//! They read files directly and never modify them.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::{Error, FileNumber, StdFs};
use jkv_sstable::Table;

fn stdout_error(e: io::Error) -> Error {
    Error::io("writing", "standard output", e)
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
    table.dump(&mut out)?;
    out.flush().map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every manifest record with its byte offset, one per line.
pub fn manifest_dump(dir: &Path) -> Result<ExitCode, Error> {
    let records = jkv_manifest::read_records(&StdFs, dir)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for (offset, record) in records {
        let json = serde_json_line(&record);
        writeln!(out, "@{offset} {json}").map_err(stdout_error)?;
    }
    out.flush().map_err(stdout_error)?;
    Ok(ExitCode::SUCCESS)
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
