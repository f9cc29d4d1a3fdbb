//! The one error type of jkv-ecs.
//!
//! Errors fall into the contract's kinds (docs/ecs.md, "Errors"):
//! [`Error::Race`] is retryable (a concurrent commit got there first; run the
//! transaction again), [`Error::UniqueViolation`] is deterministic and never
//! retried, [`Error::NotFound`] and [`Error::InvalidArgument`] are the
//! caller's mistakes (hetu's `LookupError` and `ValueError`), and
//! [`Error::Engine`] carries a storage failure unchanged.

/// Result alias used across jkv-ecs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which commit check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RaceKind {
    /// An inserted row's key already exists (Redis `NX`).
    Exists,
    /// A stored `_version` differs from the one the transaction read, or the
    /// row is gone.
    Version,
    /// A unique column's value is taken by another row.
    Unique,
    /// Maintenance found the table in another state than the call requires
    /// (for example `create_table` on a table that exists).
    State,
}

impl RaceKind {
    /// The word tests and callers match on: `Exists`, `Version`, `UNIQUE`, `State`.
    pub fn word(self) -> &'static str {
        match self {
            RaceKind::Exists => "Key already exists",
            RaceKind::Version => "Version mismatch",
            RaceKind::Unique => "UNIQUE: Constraint violation",
            RaceKind::State => "Table state",
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A commit check failed; nothing was written. Retryable.
    #[error("RACE: {}: {detail}", kind.word())]
    Race {
        /// Which check failed.
        kind: RaceKind,
        /// Which row and values: table, id, expected and found version.
        detail: String,
    },
    /// A unique value is already used, seen before commit. Deterministic:
    /// retrying the same transaction fails the same way.
    #[error("unique violation on column {field:?}: {detail}")]
    UniqueViolation {
        /// The unique column.
        field: String,
        /// The value and where it was found.
        detail: String,
    },
    /// The row (or table) the call needs does not exist (hetu's `LookupError`).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller passed something the contract refuses (hetu's `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored row, index entry or meta record is not what its format says.
    #[error("corrupt ECS record {key}: {what}")]
    Corruption {
        /// The record's key, hex-encoded.
        key: String,
        /// What was expected and what was found.
        what: String,
    },
    /// `retry` ran the transaction its maximum number of times and every
    /// attempt lost a race.
    #[error("Exceeded maximum retry attempts ({attempts}); last failure: {last}")]
    RetryExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last race lost.
        last: Box<Error>,
    },
    /// The handle was closed.
    #[error("ECS handle is closed")]
    Closed,
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] jkv::Error),
}

impl Error {
    /// A retryable race of `kind`.
    pub fn race(kind: RaceKind, detail: impl Into<String>) -> Self {
        Error::Race {
            kind,
            detail: detail.into(),
        }
    }

    /// An [`Error::InvalidArgument`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidArgument(what.into())
    }

    /// An [`Error::Corruption`] for the record at `key`.
    pub fn corruption(key: &[u8], what: impl Into<String>) -> Self {
        Error::Corruption {
            key: hex(key),
            what: what.into(),
        }
    }

    /// True for the retryable kind ([`Error::Race`]).
    pub fn is_race(&self) -> bool {
        matches!(self, Error::Race { .. })
    }

    /// The race kind, if this is a race.
    pub fn race_kind(&self) -> Option<RaceKind> {
        match self {
            Error::Race { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// Lowercase hex of `bytes`, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
