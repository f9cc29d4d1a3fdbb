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
//! never a panic. The body codec is jkv-format's
//! [`compression`](jkv_format::compression), shared with the value log.

use jkv_format::coding::get_varint32;
use jkv_format::compression::{self, COMPRESSION_TYPE_NONE};
use jkv_format::Compression;

/// Largest decoded block accepted (blocks are below 4 GiB; the builder's
/// own are at most a block size plus one entry). 1.5 GiB: one entry of the
/// largest value plus a block of the largest size.
pub const DECODED_LEN_MAX: usize = (1 << 30) + (512 << 20);

/// Compresses `raw` with `compression` into `out` (cleared first) and
/// returns the type byte to store it with, or `None` when the block is to
/// be stored raw: no compression asked for, a codec failure, or a
/// compressed form that does not save at least 1/8 of `raw`.
pub fn compress_block(raw: &[u8], compression: Compression, out: &mut Vec<u8>) -> Option<u8> {
    out.clear();
    compression::compress_append(compression, raw, out).then(|| compression.type_byte())
}

/// The decoded contents of a block stored with type byte `kind` (not 0),
/// or what is wrong with it.
pub fn decompress_block(kind: u8, stored: &[u8]) -> Result<Vec<u8>, String> {
    if kind == COMPRESSION_TYPE_NONE {
        return Ok(stored.to_vec());
    }
    compression::decompress(kind, stored, DECODED_LEN_MAX, "block")
}

/// The decoded length a compressed block's header records, `None` when it
/// has none.
pub fn decoded_len(stored: &[u8]) -> Option<usize> {
    get_varint32(stored).map(|(n, _)| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::coding::put_varint32;
    use jkv_format::compression::COMPRESSION_TYPE_LZ4;

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
