//! The compression choices of tables and value logs: a name a user can type
//! (`none`, `lz4`, `zstd`, `zstd:LEVEL`) and the type byte the formats
//! record (docs/sst-format.md, "Block trailer"; docs/vlog-format.md,
//! "Entry"), and the body codec both formats store compressed data with
//! ([`compress_append`], [`decompress`]): `varint32 raw_len`, then the LZ4
//! block (`lz4_flex`) or one zstd frame. The formats add their own framing
//! (a block trailer's type byte, a value's type byte). zstd contexts are
//! kept per thread and reused, since making one costs more than
//! compressing a 4 KiB block.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use crate::coding::{get_varint32, put_varint32};

thread_local! {
    static ZSTD_COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Appends `varint32 raw_len` and `raw` compressed with `compression` to
/// `out`. Returns false, with `out` cut back to its length on entry, when
/// the data is to be stored raw: no compression asked for, a codec
/// failure, or appended bytes that do not save at least 1/8 of `raw`.
pub fn compress_append(compression: Compression, raw: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let Ok(raw_len) = u32::try_from(raw.len()) else {
        return false;
    };
    let written = match compression {
        Compression::None => None,
        Compression::Lz4 => {
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(at + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
            lz4_flex::block::compress_into(raw, &mut out[at..])
                .ok()
                .map(|n| at + n)
        }
        Compression::Zstd { level } => {
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(at + zstd::zstd_safe::compress_bound(raw.len()), 0);
            ZSTD_COMPRESSOR
                .with(|c| -> Option<usize> {
                    let mut c = c.borrow_mut();
                    if c.as_ref().is_none_or(|(l, _)| *l != level) {
                        *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
                    }
                    let (_, compressor) = c.as_mut()?;
                    compressor.compress_to_buffer(raw, &mut out[at..]).ok()
                })
                .map(|n| at + n)
        }
    };
    match written {
        // The 1/8 rule: store raw unless compression saves at least an eighth.
        Some(end) if end - start <= raw.len() - raw.len() / 8 => {
            out.truncate(end);
            true
        }
        _ => {
            out.truncate(start);
            false
        }
    }
}

/// The data held by `stored` (`varint32 raw_len` then the body) of
/// compression type byte `kind` (LZ4 or zstd), or what is wrong with it,
/// naming it `what` ("block", "value"). A length above `max_len` is
/// refused before anything is allocated; a decoder failure or a wrong
/// decoded length is an error, never a panic.
pub fn decompress(kind: u8, stored: &[u8], max_len: usize, what: &str) -> Result<Vec<u8>, String> {
    let (raw_len, header) = get_varint32(stored)
        .ok_or_else(|| format!("compressed {what} has no valid decoded length"))?;
    let raw_len = raw_len as usize;
    if raw_len > max_len {
        return Err(format!(
            "compressed {what} claims {raw_len} decoded bytes, above the limit {max_len}"
        ));
    }
    let body = stored.get(header..).unwrap_or_default();
    let decoded = match kind {
        COMPRESSION_TYPE_LZ4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|e| format!("lz4 {what} does not decode: {e}"))?;
            out.truncate(n);
            out
        }
        COMPRESSION_TYPE_ZSTD => ZSTD_DECOMPRESSOR.with(|d| -> Result<Vec<u8>, String> {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| format!("zstd decompressor: {e}"))?,
                );
            }
            let Some(decompressor) = d.as_mut() else {
                return Err("zstd decompressor unavailable".to_string());
            };
            let mut out = Vec::with_capacity(raw_len);
            decompressor
                .decompress_to_buffer(body, &mut out)
                .map_err(|e| format!("zstd {what} does not decode: {e}"))?;
            Ok(out)
        })?,
        other => return Err(format!("unknown {what} compression type {other}")),
    };
    if decoded.len() != raw_len {
        return Err(format!(
            "compressed {what} decodes to {} bytes, its header says {raw_len}",
            decoded.len()
        ));
    }
    Ok(decoded)
}

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
