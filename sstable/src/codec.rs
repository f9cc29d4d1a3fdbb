//! The block codec: compresses a data block's contents for the table writer
//! and decodes a stored block for the reader (docs/sst-format.md, "Block
//! trailer" and "Compressed blocks").
//!
//! A compressed block's stored contents are `varint32 raw_len` followed by
//! the compressed bytes (LZ4 block format from `lz4_flex`, or one zstd
//! frame). A block whose compressed form would save less than 1/8 of its
//! size is stored raw (type 0), so reading it costs nothing extra. Decoding
//! trusts nothing: the length is checked against the limit before anything
//! is allocated, and a decoder error or a wrong decoded length is damage,
//! never a panic.
//!
//! zstd contexts are kept per thread and reused, since making one costs
//! more than compressing a 4 KiB block.

use std::cell::RefCell;

use jkv_format::coding::{get_varint32, put_varint32};
use jkv_format::compression::{COMPRESSION_TYPE_LZ4, COMPRESSION_TYPE_NONE, COMPRESSION_TYPE_ZSTD};
use jkv_format::Compression;

/// Largest decoded block accepted (blocks are below 4 GiB; the builder's
/// own are at most a block size plus one entry). 1.5 GiB: one entry of the
/// largest value plus a block of the largest size.
pub const DECODED_LEN_MAX: usize = (1 << 30) + (512 << 20);

thread_local! {
    static ZSTD_COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` with `compression` into `out` (cleared first) and
/// returns the type byte to store it with, or `None` when the block is to
/// be stored raw: no compression asked for, a codec failure, or a
/// compressed form that does not save at least 1/8 of `raw`.
pub fn compress_block(raw: &[u8], compression: Compression, out: &mut Vec<u8>) -> Option<u8> {
    out.clear();
    let raw_len = u32::try_from(raw.len()).ok()?;
    match compression {
        Compression::None => return None,
        Compression::Lz4 => {
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(at + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
            let n = lz4_flex::block::compress_into(raw, &mut out[at..]).ok()?;
            out.truncate(at + n);
        }
        Compression::Zstd { level } => {
            put_varint32(out, raw_len);
            let at = out.len();
            out.resize(at + zstd::zstd_safe::compress_bound(raw.len()), 0);
            let n = ZSTD_COMPRESSOR.with(|c| -> Option<usize> {
                let mut c = c.borrow_mut();
                if c.as_ref().is_none_or(|(l, _)| *l != level) {
                    *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
                }
                let (_, compressor) = c.as_mut()?;
                compressor.compress_to_buffer(raw, &mut out[at..]).ok()
            })?;
            out.truncate(at + n);
        }
    }
    // The 1/8 rule: store raw unless compression saves at least an eighth.
    if out.len() > raw.len() - raw.len() / 8 {
        out.clear();
        return None;
    }
    Some(compression.type_byte())
}

/// The decoded contents of a block stored with type byte `kind` (not 0),
/// or what is wrong with it.
pub fn decompress_block(kind: u8, stored: &[u8]) -> Result<Vec<u8>, String> {
    let (raw_len, header) = get_varint32(stored)
        .ok_or_else(|| "compressed block has no valid decoded length".to_string())?;
    let raw_len = raw_len as usize;
    if raw_len > DECODED_LEN_MAX {
        return Err(format!(
            "compressed block claims {raw_len} decoded bytes, above the limit {DECODED_LEN_MAX}"
        ));
    }
    let body = stored.get(header..).unwrap_or_default();
    let decoded = match kind {
        COMPRESSION_TYPE_LZ4 => {
            let mut out = vec![0u8; raw_len];
            let n = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|e| format!("lz4 block does not decode: {e}"))?;
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
                .map_err(|e| format!("zstd frame does not decode: {e}"))?;
            Ok(out)
        })?,
        COMPRESSION_TYPE_NONE => stored.to_vec(),
        other => return Err(format!("unknown block compression type {other}")),
    };
    if decoded.len() != raw_len {
        return Err(format!(
            "compressed block decodes to {} bytes, its header says {raw_len}",
            decoded.len()
        ));
    }
    Ok(decoded)
}

/// The decoded length a compressed block's header records, `None` when it
/// has none.
pub fn decoded_len(stored: &[u8]) -> Option<usize> {
    get_varint32(stored).map(|(n, _)| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressible(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefgh"[(i / 16) % 8]).collect()
    }

    #[test]
    fn round_trips_and_applies_the_one_eighth_rule() {
        let raw = compressible(4096);
        let mut out = Vec::new();
        for c in [
            Compression::Lz4,
            Compression::ZSTD,
            Compression::Zstd { level: 19 },
        ] {
            let kind = compress_block(&raw, c, &mut out).unwrap();
            assert_eq!(kind, c.type_byte());
            assert!(out.len() < raw.len() / 4, "{c}: {}", out.len());
            assert_eq!(decoded_len(&out), Some(raw.len()));
            assert_eq!(decompress_block(kind, &out).unwrap(), raw);
        }
        assert_eq!(compress_block(&raw, Compression::None, &mut out), None);
        // Random bytes do not shrink by an eighth: stored raw.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for c in [Compression::Lz4, Compression::ZSTD] {
            assert_eq!(compress_block(&random, c, &mut out), None, "{c}");
            assert!(out.is_empty());
        }
        // Half random, half constant: saves more than 1/8, less than 1/2.
        let mut half = random[..2048].to_vec();
        half.extend_from_slice(&[0u8; 2048]);
        assert!(compress_block(&half, Compression::Lz4, &mut out).is_some());
        assert!(compress_block(&[], Compression::Lz4, &mut out).is_none());
    }

    #[test]
    fn damaged_compressed_blocks_are_errors_not_panics() {
        let raw = compressible(4096);
        let mut out = Vec::new();
        for c in [Compression::Lz4, Compression::ZSTD] {
            let kind = compress_block(&raw, c, &mut out).unwrap();
            for i in 0..out.len() {
                for bit in [0x01u8, 0x80] {
                    let mut bad = out.clone();
                    bad[i] ^= bit;
                    // Either an error or (the damage hit only literals) a
                    // wrong block of the recorded length; never a panic.
                    if let Ok(d) = decompress_block(kind, &bad) {
                        assert_eq!(d.len(), decoded_len(&bad).unwrap());
                    }
                }
            }
            for cut in 0..out.len() {
                let _ = decompress_block(kind, &out[..cut]);
            }
            assert!(decompress_block(9, &out).unwrap_err().contains("type 9"));
        }
        let mut huge = Vec::new();
        put_varint32(&mut huge, u32::MAX);
        assert!(decompress_block(COMPRESSION_TYPE_LZ4, &huge)
            .unwrap_err()
            .contains("limit"));
    }
}
