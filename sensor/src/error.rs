//! The one error type of jkv-sensor.
//!
//! [`Error::Engine`] carries a storage failure unchanged; [`Error::Corruption`]
//! names the record whose bytes are not what docs/sensor.md says;
//! [`Error::InvalidArgument`] is the caller's mistake.

/// Result alias used across jkv-sensor.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something the layer refuses.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored key or record is not what its format says.
    #[error("corrupt sensor record {key}: {what}")]
    Corruption {
        /// The record's key, hex-encoded.
        key: String,
        /// What was expected and what was found.
        what: String,
    },
    /// The ingest pipeline was stopped; nothing more is accepted.
    #[error("ingest pipeline is stopped")]
    Stopped,
    /// The ingest server refused the connection or a frame; the text is
    /// the server's message.
    #[error("server refused: {0}")]
    Refused(String),
    /// A socket or file operation failed.
    #[error("i/o error while {op}: {source}")]
    Io {
        /// What was being done, e.g. `"binding 127.0.0.1:7000"`.
        op: String,
        /// The error the operating system returned.
        #[source]
        source: std::io::Error,
    },
    /// An MCAP file could not be written or read.
    #[error("MCAP file {file}: {what}")]
    Mcap {
        /// The file.
        file: String,
        /// What the mcap crate reported.
        what: String,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] jkv::Error),
}

impl Error {
    /// An [`Error::InvalidArgument`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidArgument(what.into())
    }

    /// An [`Error::Corruption`] for the record at `key`.
    pub fn corruption(key: &[u8], what: impl Into<String>) -> Self {
        Error::Corruption {
            key: key.iter().map(|b| format!("{b:02x}")).collect(),
            what: what.into(),
        }
    }

    /// An [`Error::Io`] for `op`.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }
}
