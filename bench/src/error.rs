//! The benchmark's error type: bad flags, file-system trouble, and failures
//! reported by the engine under test (kept as text, since each engine has its
//! own error type).

use std::path::PathBuf;

/// What went wrong in a benchmark run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command-line flag is unknown or its value does not parse.
    #[error("{0}")]
    Flag(String),
    /// File-system trouble outside the engine (preparing the directory, probes).
    #[error("i/o error while {op} {path:?}")]
    Io {
        /// What the benchmark was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine under test returned an error.
    #[error("{engine} failed while {op}: {message}")]
    Engine {
        /// Engine name (`jkv`, `fjall`, `redb`).
        engine: &'static str,
        /// The operation that failed.
        op: &'static str,
        /// The engine's own error, as text.
        message: String,
    },
}

/// Result with the benchmark's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an engine error.
    pub fn engine(engine: &'static str, op: &'static str, e: impl std::fmt::Display) -> Error {
        Error::Engine {
            engine,
            op,
            message: e.to_string(),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
