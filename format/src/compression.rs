//! The compression choices of tables and value logs: a name a user can type
//! (`none`, `lz4`, `zstd`, `zstd:LEVEL`) and the type byte the formats
//! record (docs/sst-format.md, "Block trailer"; docs/vlog-format.md,
//! "Entry"). The codecs themselves live with the formats that use them
//! (`jkv-sstable` for blocks, `jkv-vlog` for entries); this is only the
//! choice. Pure values, no state.

use std::fmt;
use std::str::FromStr;

/// Type byte of data stored as it is.
pub const COMPRESSION_TYPE_NONE: u8 = 0;
/// Type byte of LZ4 block format data (`lz4_flex`).
pub const COMPRESSION_TYPE_LZ4: u8 = 1;
/// Type byte of a zstd frame.
pub const COMPRESSION_TYPE_ZSTD: u8 = 2;

/// Lowest zstd level accepted (zstd's fast levels go below 1).
pub const ZSTD_LEVEL_MIN: i32 = -7;
/// Highest zstd level accepted.
pub const ZSTD_LEVEL_MAX: i32 = 22;
/// The zstd level of a bare `zstd` (zstd's own default).
pub const ZSTD_LEVEL_DEFAULT: i32 = 3;

/// How blocks (or value-log entries) are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as they are.
    #[default]
    None,
    /// LZ4 (fast to compress and decompress, moderate ratio).
    Lz4,
    /// zstd at `level` (`ZSTD_LEVEL_MIN..=ZSTD_LEVEL_MAX`; better ratio,
    /// slower).
    Zstd {
        /// zstd compression level.
        level: i32,
    },
}

impl Compression {
    /// zstd at its default level.
    pub const ZSTD: Compression = Compression::Zstd {
        level: ZSTD_LEVEL_DEFAULT,
    };

    /// The type byte data compressed this way is recorded with.
    pub fn type_byte(self) -> u8 {
        match self {
            Compression::None => COMPRESSION_TYPE_NONE,
            Compression::Lz4 => COMPRESSION_TYPE_LZ4,
            Compression::Zstd { .. } => COMPRESSION_TYPE_ZSTD,
        }
    }

    /// The name of a type byte (`none`, `lz4`, `zstd`), `None` for a byte
    /// no version of jkv writes.
    pub fn type_name(type_byte: u8) -> Option<&'static str> {
        match type_byte {
            COMPRESSION_TYPE_NONE => Some("none"),
            COMPRESSION_TYPE_LZ4 => Some("lz4"),
            COMPRESSION_TYPE_ZSTD => Some("zstd"),
            _ => None,
        }
    }

    /// True for anything but [`Compression::None`].
    pub fn is_compressed(self) -> bool {
        self != Compression::None
    }

    /// Parses a comma-separated list of choices (`none,lz4,zstd:6`), as the
    /// per-level option is typed on a command line.
    pub fn parse_list(s: &str) -> Result<Vec<Compression>, String> {
        s.split(',').map(|p| p.trim().parse()).collect()
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// `none`, `lz4`, `zstd` (level 3) or `zstd:LEVEL`; case-insensitive.
    fn from_str(s: &str) -> Result<Compression, String> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "none" | "no" | "off" => return Ok(Compression::None),
            "lz4" => return Ok(Compression::Lz4),
            "zstd" => return Ok(Compression::ZSTD),
            _ => {}
        }
        if let Some(level) = lower.strip_prefix("zstd:") {
            let level: i32 = level
                .parse()
                .map_err(|_| format!("zstd level {level:?} is not a number"))?;
            if !(ZSTD_LEVEL_MIN..=ZSTD_LEVEL_MAX).contains(&level) {
                return Err(format!(
                    "zstd level {level} is outside {ZSTD_LEVEL_MIN}..={ZSTD_LEVEL_MAX}"
                ));
            }
            return Ok(Compression::Zstd { level });
        }
        Err(format!(
            "unknown compression {s:?} (expected none, lz4, zstd or zstd:LEVEL)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for c in [
            Compression::None,
            Compression::Lz4,
            Compression::ZSTD,
            Compression::Zstd { level: 19 },
            Compression::Zstd { level: -3 },
        ] {
            assert_eq!(c.to_string().parse::<Compression>().unwrap(), c);
            assert_eq!(Compression::type_name(c.type_byte()).unwrap(), {
                let s = c.to_string();
                let name = s.split(':').next().unwrap().to_string();
                Box::leak(name.into_boxed_str()) as &str
            });
        }
        assert_eq!("ZSTD".parse::<Compression>().unwrap(), Compression::ZSTD);
        assert!("zstd:23".parse::<Compression>().is_err());
        assert!("zstd:x".parse::<Compression>().is_err());
        assert!("snappy"
            .parse::<Compression>()
            .unwrap_err()
            .contains("snappy"));
        assert_eq!(
            Compression::parse_list("none, lz4,zstd:6").unwrap(),
            vec![
                Compression::None,
                Compression::Lz4,
                Compression::Zstd { level: 6 }
            ]
        );
        assert_eq!(Compression::type_name(9), None);
    }
}
