//! Id newtypes: sequence numbers and file numbers never mix with counts or sizes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A write's sequence number. Every entry of a write batch gets its own,
/// consecutive ones; a snapshot is the sequence number it may see up to
/// (inclusive). 56 bits wide: the low byte of an internal key trailer holds
/// the [`crate::ValueKind`]. Serializes as a bare number (the manifest's
/// JSON holds it that way).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// Largest representable sequence number (2^56 - 1).
    pub const MAX: SeqNo = SeqNo((1 << 56) - 1);
    /// Sequence number before the first write.
    pub const ZERO: SeqNo = SeqNo(0);

    /// The sequence number `n` after this one.
    #[inline]
    pub fn plus(self, n: u64) -> SeqNo {
        SeqNo(self.0 + n)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Number of a file in the database directory (WAL, table, value log).
/// Allocated from one counter recorded in the manifest, so no two files ever
/// share a number, whatever their kind. Serializes as a bare number (the
/// manifest's JSON holds it that way).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct FileNumber(pub u64);

impl fmt::Display for FileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}
