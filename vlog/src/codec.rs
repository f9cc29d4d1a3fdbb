//! The entry codec: compresses a value for the writer and decodes a stored
//! one for the readers (docs/vlog-format.md, "Compressed values").
//!
//! A compressed value is stored as `type u8` (1 lz4, 2 zstd), `varint32
//! raw_len`, then the LZ4 block or zstd frame; the entry's `value_len`
//! counts these stored bytes and has its top bit set. A value whose
//! compressed form would not save at least 1/8 is stored raw. Decoding
//! checks the length against the value limit before allocating; a decoder
//! failure or a wrong decoded length is a damage report, never a panic.
//! The body codec is jkv-format's [`compression`](jkv_format::compression),
//! shared with the tables.

use jkv_format::compression;
use jkv_format::Compression;

use crate::entry::VALUE_LEN_MAX;

/// Compresses `value` into `out` (cleared first) as stored bytes (type,
/// length, body); false, with `out` empty, when the value is to be stored
/// raw (no compression, a codec failure, or a saving under 1/8).
pub fn compress_value(value: &[u8], compression: Compression, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.push(compression.type_byte());
    // The 1/8 rule counts the type byte too.
    if !compression::compress_append(compression, value, out)
        || out.len() > value.len() - value.len() / 8
    {
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
    compression::decompress(kind, rest, VALUE_LEN_MAX, "value")
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
