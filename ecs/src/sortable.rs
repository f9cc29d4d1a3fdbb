//! Index value encoding: a column value's sortable bytes, compared bytewise
//! in the column's order (the contract, section 1.2; docs/ecs.md, "Index
//! value bytes").
//!
//! - signed integers of any width: `v + 2^63` as u64 big-endian (one order
//!   across widths);
//! - unsigned integers: u64 big-endian;
//! - floats: widened to f64; if `v >= 0` the sign bit is set, else all 64
//!   bits are inverted; big-endian (−0.0 and +0.0 encode alike);
//! - strings and bytes: the bytes (UTF-8 for strings) with every `0x00`
//!   escaped as `0x00 0xFF`, so a single `0x00` can end the value.

use crate::error::{Error, Result};
use crate::schema::DType;
use crate::value::Value;

/// Appends the sortable bytes of `value` (already cast to `dtype`) to `out`.
/// NaN is refused: it has no place in the order (the contract's decision).
pub fn encode_into(dtype: DType, value: &Value, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Int(v) => out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes()),
        Value::UInt(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Float(f) => {
            if f.is_nan() {
                return Err(Error::invalid(format!(
                    "NaN cannot be stored in or compared against an indexed {} column",
                    dtype.numpy_str()
                )));
            }
            out.extend_from_slice(&float_key(*f).to_be_bytes());
        }
        Value::Str(s) => escape_into(s.as_bytes(), out),
        Value::Bytes(b) => escape_into(b, out),
    }
    Ok(())
}

/// The sortable bytes of `value` (see [`encode_into`]).
pub fn encode(dtype: DType, value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(16);
    encode_into(dtype, value, &mut out)?;
    Ok(out)
}

fn float_key(f: f64) -> u64 {
    let bits = f.to_bits();
    if f >= 0.0 {
        bits | (1 << 63)
    } else {
        !bits
    }
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(dtype: DType, v: impl Into<Value>) -> Vec<u8> {
        let v = crate::value::cast(&v.into(), dtype, crate::value::CastMode::Assign, "c").unwrap();
        encode(dtype, &v).unwrap()
    }

    /// The contract's vectors from `test_redis_commit_payload`.
    #[test]
    fn encoding_vectors_match_the_contract() {
        assert_eq!(enc(DType::I64, 10), [0x80, 0, 0, 0, 0, 0, 0, 0x0A]);
        assert_eq!(enc(DType::I64, 11), [0x80, 0, 0, 0, 0, 0, 0, 0x0B]);
        assert_eq!(enc(DType::I8, false), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(DType::I8, true), [0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            enc(DType::F32, 123.31f32),
            [0xC0, 0x5E, 0xD3, 0xD7, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(DType::F32, -123.31f32),
            [0x3F, 0xA1, 0x2C, 0x28, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    /// The ordering facts of `test_redis_serialize_sortable`.
    #[test]
    fn ordering_facts_hold_bytewise() {
        assert!(enc(DType::I64, i64::MAX) > enc(DType::I64, i64::MIN));
        assert!(enc(DType::I8, 127) > enc(DType::I8, -1));
        assert!(enc(DType::I16, 128) > enc(DType::I8, -1));
        assert!(enc(DType::U64, u64::MAX) > enc(DType::U64, 1u64));
        let big = (2f64.powi(53) - 1.0) + 0.123;
        assert!(enc(DType::F64, big) > enc(DType::F64, -big));
        assert!(enc(DType::F64, 123.456) > enc(DType::F64, -0.033468749999999936));
        assert_eq!(enc(DType::F64, -0.0), enc(DType::F64, 0.0));
        assert!(enc(DType::F64, f64::INFINITY) > enc(DType::F64, f64::MAX));
        assert!(enc(DType::F64, f64::NEG_INFINITY) < enc(DType::F64, f64::MIN));
    }

    #[test]
    fn strings_escape_nul_so_prefixes_sort_first() {
        let s = |x: &str| enc(DType::Unicode(8), x);
        assert_eq!(
            enc(DType::Bytes(4), b"a\0b".as_slice()),
            [b'a', 0, 0xFF, b'b']
        );
        let mut terminated: Vec<Vec<u8>> = ["ab", "a9", "a", "a0"]
            .iter()
            .map(|x| [s(x), vec![0]].concat())
            .collect();
        terminated.sort();
        let want: Vec<Vec<u8>> = ["a", "a0", "a9", "ab"]
            .iter()
            .map(|x| [s(x), vec![0]].concat())
            .collect();
        assert_eq!(terminated, want);
    }

    #[test]
    fn nan_is_refused() {
        assert!(encode(DType::F32, &Value::Float(f64::NAN)).is_err());
    }
}
