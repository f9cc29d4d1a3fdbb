//! [`Value`]: one column value as callers pass and receive it, and the
//! numpy-like casts between values and column types.
//!
//! Bool is not a value kind of its own: the contract stores bool as int8, so
//! `true` becomes `Int(1)`.

use crate::error::{Error, Result};
use crate::schema::DType;

/// A column value. Integers are `Int` (signed) or `UInt` (values above
/// `i64::MAX`), floats are `Float` (an f32 column's value widened to f64),
/// `U<n>` columns hold `Str`, `S<n>` columns hold `Bytes`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A signed integer (also bool, as 0 or 1).
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float; `f64::INFINITY` and `NEG_INFINITY` serve as range bounds.
    Float(f64),
    /// A string (`U<n>` columns; also range bounds with `(`/`[` markers).
    Str(String),
    /// A byte string (`S<n>` columns).
    Bytes(Vec<u8>),
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(v as i64) }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::UInt(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v as i64)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(v as f64)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Bytes(v)
    }
}

impl std::fmt::Display for Value {
    /// Python-like: `10`, `1.5`, `inf`, `Itm10`, `b'..'`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::UInt(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_infinite() => {
                write!(f, "{}", if *v > 0.0 { "inf" } else { "-inf" })
            }
            Value::Float(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::Bytes(b) => write!(f, "b'{}'", String::from_utf8_lossy(b)),
        }
    }
}

impl Value {
    /// The value as an i64, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as an f64, when it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(*v as f64),
            Value::UInt(v) => Some(*v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
        }
    }
}

/// How strictly [`cast`] converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CastMode {
    /// Writing a field: integers must fit, floats into integer columns must
    /// be integral, strings must be strings.
    Assign,
    /// Migrating a column to a new type (numpy's `astype`): floats truncate
    /// toward zero, integers wrap to the new width, numbers and strings
    /// convert into each other by formatting and parsing.
    Migrate,
}

/// `value` converted to what a `dtype` column holds: `Int` for signed and
/// bool columns, `UInt` for unsigned, `Float` (rounded to f32 for f32
/// columns), `Str` truncated to n code points, `Bytes` truncated to n bytes.
pub(crate) fn cast(value: &Value, dtype: DType, mode: CastMode, column: &str) -> Result<Value> {
    let refuse = |why: &str| {
        Error::invalid(format!(
            "column {column:?} ({}) cannot take {} value {value}: {why}",
            dtype.numpy_str(),
            value.kind_name()
        ))
    };
    match dtype {
        DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::Bool => {
            let (min, max) = dtype.int_range().expect("signed dtype has an int range");
            let wide: i128 = match value {
                Value::Int(v) => *v as i128,
                Value::UInt(v) => *v as i128,
                Value::Float(f) => float_to_int(*f, mode).ok_or_else(|| refuse("not integral"))?,
                Value::Str(s) if mode == CastMode::Migrate => {
                    parse_int(s).ok_or_else(|| refuse("not a number"))?
                }
                _ => return Err(refuse("not a number")),
            };
            if (min as i128..=max as i128).contains(&wide) {
                Ok(Value::Int(wide as i64))
            } else if mode == CastMode::Migrate {
                Ok(Value::Int(wrap_signed(wide, dtype.width())))
            } else {
                Err(refuse(&format!("out of range {min}..={max}")))
            }
        }
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => {
            let max = dtype.uint_max().expect("unsigned dtype has a max");
            let wide: i128 = match value {
                Value::Int(v) => *v as i128,
                Value::UInt(v) => *v as i128,
                Value::Float(f) => float_to_int(*f, mode).ok_or_else(|| refuse("not integral"))?,
                Value::Str(s) if mode == CastMode::Migrate => {
                    parse_int(s).ok_or_else(|| refuse("not a number"))?
                }
                _ => return Err(refuse("not a number")),
            };
            if (0..=max as i128).contains(&wide) {
                Ok(Value::UInt(wide as u64))
            } else if mode == CastMode::Migrate {
                let bits = dtype.width() * 8;
                let mask: u128 = if bits == 64 {
                    u64::MAX as u128
                } else {
                    (1u128 << bits) - 1
                };
                Ok(Value::UInt(((wide as u128) & mask) as u64))
            } else {
                Err(refuse(&format!("out of range 0..={max}")))
            }
        }
        DType::F32 | DType::F64 => {
            let f = match value {
                Value::Int(v) => *v as f64,
                Value::UInt(v) => *v as f64,
                Value::Float(f) => *f,
                Value::Str(s) if mode == CastMode::Migrate => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| refuse("not a number"))?,
                _ => return Err(refuse("not a number")),
            };
            Ok(Value::Float(if dtype == DType::F32 {
                f as f32 as f64
            } else {
                f
            }))
        }
        DType::Unicode(n) => {
            let s = match value {
                Value::Str(s) => s.clone(),
                Value::Bytes(b) if mode == CastMode::Migrate => String::from_utf8_lossy(b).into(),
                Value::Int(_) | Value::UInt(_) | Value::Float(_) if mode == CastMode::Migrate => {
                    value.to_string()
                }
                _ => return Err(refuse("not a string")),
            };
            Ok(Value::Str(truncate_chars(&s, n)))
        }
        DType::Bytes(n) => {
            let mut b = match value {
                Value::Bytes(b) => b.clone(),
                Value::Str(s) => s.as_bytes().to_vec(),
                Value::Int(_) | Value::UInt(_) | Value::Float(_) if mode == CastMode::Migrate => {
                    value.to_string().into_bytes()
                }
                _ => return Err(refuse("not bytes")),
            };
            b.truncate(n);
            Ok(Value::Bytes(b))
        }
    }
}

fn float_to_int(f: f64, mode: CastMode) -> Option<i128> {
    if !f.is_finite() {
        return None;
    }
    if mode == CastMode::Assign && f.fract() != 0.0 {
        return None;
    }
    Some(f.trunc() as i128)
}

fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim();
    s.parse::<i128>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f.trunc() as i128)
    })
}

fn wrap_signed(v: i128, width: usize) -> i64 {
    let bits = (width * 8) as u32;
    let shift = 128 - bits;
    ((v << shift) >> shift) as i64
}

/// The first `n` code points of `s` (the contract's silent truncation).
pub(crate) fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_checks_range_and_integrality() {
        let c = |v: Value, t| cast(&v, t, CastMode::Assign, "c");
        assert_eq!(c(Value::Int(127), DType::I8).unwrap(), Value::Int(127));
        assert!(c(Value::Int(128), DType::I8).is_err());
        assert_eq!(c(Value::Float(3.0), DType::I16).unwrap(), Value::Int(3));
        assert!(c(Value::Float(3.5), DType::I16).is_err());
        assert!(c(Value::Int(-1), DType::U8).is_err());
        assert_eq!(
            c(Value::UInt(u64::MAX), DType::U64).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert!(c(Value::Str("1".into()), DType::I64).is_err());
        assert_eq!(
            c(Value::Float(1.1), DType::F32).unwrap(),
            Value::Float(1.1f32 as f64)
        );
    }

    #[test]
    fn strings_truncate_to_code_points() {
        let v = cast(
            &"reinsert2".into(),
            DType::Unicode(8),
            CastMode::Assign,
            "n",
        )
        .unwrap();
        assert_eq!(v, Value::Str("reinsert".into()));
        let v = cast(&"äöüß".into(), DType::Unicode(2), CastMode::Assign, "n").unwrap();
        assert_eq!(v, Value::Str("äö".into()));
        let v = cast(
            &Value::Bytes(b"abcdef".to_vec()),
            DType::Bytes(3),
            CastMode::Assign,
            "b",
        )
        .unwrap();
        assert_eq!(v, Value::Bytes(b"abc".to_vec()));
    }

    #[test]
    fn migrate_truncates_floats_and_wraps_ints() {
        let m = |v: Value, t| cast(&v, t, CastMode::Migrate, "c").unwrap();
        assert_eq!(m(Value::Float(2.9), DType::I32), Value::Int(2));
        assert_eq!(m(Value::Float(-2.9), DType::I32), Value::Int(-2));
        assert_eq!(m(Value::Int(300), DType::I8), Value::Int(44));
        assert_eq!(m(Value::Int(-1), DType::U16), Value::UInt(65535));
        assert_eq!(m(Value::Str("12".into()), DType::I64), Value::Int(12));
        assert_eq!(m(Value::Int(5), DType::Unicode(4)), Value::Str("5".into()));
    }
}
