//! The entry codec: compresses a value for the writer and decodes a stored
//! one for the readers (docs/vlog-format.md, "Compressed values").
//!
//! A compressed value is stored as `type u8` (1 lz4, 2 zstd), `varint32
//! raw_len`, then the LZ4 block or zstd frame; the entry's `value_len`
//! counts these stored bytes and has its top bit set. A value whose
//! compressed form would not save at least 1/8 is stored raw. Decoding
//! checks the length against the value limit before allocating; a decoder
//! failure or a wrong decoded length is a damage report, never a panic.

use std::cell::RefCell;

use jkv_format::coding::{get_varint32, put_varint32};
use jkv_format::compression::{COMPRESSION_TYPE_LZ4, COMPRESSION_TYPE_ZSTD};
use jkv_format::Compression;

use crate::entry::VALUE_LEN_MAX;

thread_local! {
    static ZSTD_COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Compresses `value` into `out` (cleared first) as stored bytes (type,
/// length, body); false, with `out` empty, when the value is to be stored
/// raw (no compression, a codec failure, or a saving under 1/8).
pub fn compress_value(value: &[u8], compression: Compression, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Ok(raw_len) = u32::try_from(value.len()) else {
        return false;
    };
    let ok = match compression {
        Compression::None => false,
        Compression::Lz4 => {
            out.push(COMPRESSION_TYPE_LZ4);
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(
                at + lz4_flex::block::get_maximum_output_size(value.len()),
                0,
            );
            match lz4_flex::block::compress_into(value, &mut out[at..]) {
                Ok(n) => {
                    out.truncate(at + n);
                    true
                }
                Err(_) => false,
            }
        }
        Compression::Zstd { level } => {
            out.push(COMPRESSION_TYPE_ZSTD);
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(at + zstd::zstd_safe::compress_bound(value.len()), 0);
            let n = ZSTD_COMPRESSOR.with(|c| -> Option<usize> {
                let mut c = c.borrow_mut();
                if c.as_ref().is_none_or(|(l, _)| *l != level) {
                    *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
                }
                let (_, compressor) = c.as_mut()?;
                compressor.compress_to_buffer(value, &mut out[at..]).ok()
            });
            match n {
                Some(n) => {
                    out.truncate(at + n);
                    true
                }
                None => false,
            }
        }
    };
    if !ok || out.len() > value.len() - value.len() / 8 {
        out.clear();
        return false;
    }
    true
}

/// The value held by the stored bytes of a compressed value, or what is
/// wrong with them.
pub fn decompress_value(stored: &[u8]) -> Result<Vec<u8>, String> {
    let (&kind, rest) = stored
        .split_first()
        .ok_or_else(|| "compressed value has no type byte".to_string())?;
    let (raw_len, n) =
        get_varint32(rest).ok_or_else(|| "compressed value has no valid length".to_string())?;
    let raw_len = raw_len as usize;
    if raw_len > VALUE_LEN_MAX {
        return Err(format!(
            "compressed value claims {raw_len} bytes, above the limit {VALUE_LEN_MAX}"
        ));
    }
    let body = &rest[n..];
    let out = match kind {
        COMPRESSION_TYPE_LZ4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|e| format!("lz4 value does not decode: {e}"))?;
            out.truncate(n);
            out
        }
        COMPRESSION_TYPE_ZSTD => {
            let mut out = Vec::with_capacity(raw_len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(body, &mut out))
                .map_err(|e| format!("zstd value does not decode: {e}"))?;
            out
        }
        other => return Err(format!("unknown value compression type {other}")),
    };
    if out.len() != raw_len {
        return Err(format!(
            "compressed value decodes to {} bytes, its header says {raw_len}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_one_eighth_rule_and_damage() {
        let value: Vec<u8> = (0..20_000u32).map(|i| (i / 100) as u8).collect();
        let mut out = Vec::new();
        for c in [Compression::Lz4, Compression::ZSTD] {
            assert!(compress_value(&value, c, &mut out), "{c}");
            assert!(out.len() < value.len() / 4);
            assert_eq!(out[0], c.type_byte());
            assert_eq!(decompress_value(&out).unwrap(), value);
            for i in 0..out.len().min(300) {
                let mut bad = out.clone();
                bad[i] ^= 0x41;
                if let Ok(v) = decompress_value(&bad) {
                    assert!(v.len() <= VALUE_LEN_MAX);
                }
            }
            for cut in 0..out.len().min(300) {
                let _ = decompress_value(&out[..cut]);
            }
        }
        assert!(!compress_value(&value, Compression::None, &mut out));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!compress_value(&random, Compression::Lz4, &mut out));
        assert!(out.is_empty());
        assert!(decompress_value(&[9, 1, 0]).unwrap_err().contains("type 9"));
        assert!(decompress_value(&[]).is_err());
    }
}
