//! The one error type of the storage crates.
//!
//! Every storage crate (memtable, sstable, manifest, engine) returns this
//! type, so a `Corruption { file, offset }` raised deep inside a block decoder
//! reaches the user unchanged, with the file and byte that were wrong.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Result alias used across jkv.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("i/o error while {op} {path:?}: {source}")]
    Io {
        /// The operation, e.g. `"appending to"`, `"syncing"`.
        op: &'static str,
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The error the operating system returned.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk are not what the format says they must be.
    #[error("corrupt {file:?} at byte {offset}: {what}")]
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset in `file` where the damage was detected.
        offset: u64,
        /// What was expected and what was found.
        what: String,
    },
    /// The caller passed something the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Another process (or another `Db` in this process) owns the directory.
    #[error("database directory {path:?} is locked by another owner (LOCK file held)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The database was closed; the handle can no longer be used.
    #[error("database is closed")]
    Closed,
    /// An earlier failure (failed fsync, failed flush) made the database
    /// refuse writes until it is reopened. Reads keep working.
    #[error("database refuses writes after an earlier failure: {0}")]
    ReadOnly(Arc<Error>),
    /// A write asked not to wait (`Db::try_write`) would have waited for
    /// flushes or compactions to catch up (`what` says which); nothing was
    /// written.
    #[error("the write would stall: {what}")]
    WouldStall {
        /// What the write would have waited for.
        what: &'static str,
    },
}

impl Error {
    /// An [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An [`Error::Corruption`] in `file` at `offset`.
    pub fn corruption(file: impl AsRef<Path>, offset: u64, what: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.as_ref().to_path_buf(),
            offset,
            what: what.into(),
        }
    }

    /// True for [`Error::Corruption`], also when wrapped in [`Error::ReadOnly`].
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Corruption { .. } => true,
            Error::ReadOnly(inner) => inner.is_corruption(),
            _ => false,
        }
    }
}

/// Errors are shared between the writers of one commit group and kept as the
/// database's background error, so they must be cloneable. An `io::Error` is
/// not; its clone keeps the kind and the message, which is all a caller can
/// act on.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Io { op, path, source } => Error::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption { file, offset, what } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                what: what.clone(),
            },
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::Closed => Error::Closed,
            Error::ReadOnly(inner) => Error::ReadOnly(inner.clone()),
            Error::WouldStall { what } => Error::WouldStall { what },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_names_file_and_offset() {
        let e = Error::corruption("db/000001.wal", 42, "bad checksum");
        let text = e.to_string();
        assert!(text.contains("000001.wal"), "{text}");
        assert!(text.contains("42"), "{text}");
        assert!(e.is_corruption());
        assert!(Error::ReadOnly(Arc::new(e.clone())).is_corruption());
    }

    #[test]
    fn io_clone_keeps_kind() {
        let e = Error::io(
            "syncing",
            "x",
            io::Error::new(io::ErrorKind::StorageFull, "full"),
        );
        match e.clone() {
            Error::Io { source, .. } => assert_eq!(source.kind(), io::ErrorKind::StorageFull),
            other => panic!("unexpected {other:?}"),
        }
    }
}
