//! Range bound normalization (the contract, section 1.3): `(`/`[` markers,
//! type checks, ±inf clamping on integer columns, conversion of each bound
//! to the column's type, and the sentinel keys that turn a range into plain
//! engine bounds.
//!
//! jkv's decision for `desc` with markers ("fixed", docs/ecs.md): each
//! marker stays with the bound it is written on, and `desc` only reverses
//! the order of the result.

use crate::error::{Error, Result};
use crate::schema::{Component, DType, Property, ID};
use crate::sortable;
use crate::value::Value;

/// A range query on one indexed column: `left ..= right` (each end
/// inclusive unless written with a `(` marker), `right = None` meaning
/// equality with `left`.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    /// The indexed column (or `id`).
    pub column: String,
    /// Low bound, always the low one, also for `desc`.
    pub left: Value,
    /// High bound; `None` means `left` (equality).
    pub right: Option<Value>,
    /// Most rows returned; negative means unlimited, 0 nothing. Default 100
    /// (hetu's backend default).
    pub limit: i64,
    /// Highest value first (ties: highest id first).
    pub desc: bool,
}

impl Range {
    /// Rows whose `column` equals `value`.
    pub fn eq(column: impl Into<String>, value: impl Into<Value>) -> Range {
        Range {
            column: column.into(),
            left: value.into(),
            right: None,
            limit: 100,
            desc: false,
        }
    }

    /// Rows whose `column` lies between `left` and `right`.
    pub fn between(
        column: impl Into<String>,
        left: impl Into<Value>,
        right: impl Into<Value>,
    ) -> Range {
        Range {
            right: Some(right.into()),
            ..Range::eq(column, left)
        }
    }

    /// Sets the limit (negative: unlimited).
    pub fn limit(mut self, limit: i64) -> Range {
        self.limit = limit;
        self
    }

    /// Returns the highest values first.
    pub fn desc(mut self) -> Range {
        self.desc = true;
        self
    }

    /// Rows to return at most (`usize::MAX` for unlimited).
    pub(crate) fn max_rows(&self) -> usize {
        if self.limit < 0 {
            usize::MAX
        } else {
            self.limit as usize
        }
    }
}

/// A normalized range, as bounds relative to the index's prefix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Normalized {
    /// Index entries with `lo <= suffix <= hi` (the sentinel bytes).
    Index { lo: Vec<u8>, hi: Vec<u8> },
    /// Row keys with `lo <= id <= hi` (a range on `id`).
    Ids { lo: i64, hi: i64 },
    /// Nothing can match (an exclusive bound at the end of the id space).
    Empty,
}

/// Normalizes `range` on `component`: checks the column is indexed, parses
/// markers, checks types, clamps, converts, encodes, and refuses a low bound
/// above the high one.
pub(crate) fn normalize(component: &Component, range: &Range) -> Result<(usize, Normalized)> {
    let pos = component
        .position(&range.column)
        .ok_or_else(|| no_index(component, &range.column))?;
    let prop = &component.properties()[pos];
    if !prop.index {
        return Err(no_index(component, &range.column));
    }
    let right = range.right.as_ref().unwrap_or(&range.left);
    let (lo, lo_inclusive) = bound(prop, &range.left)?;
    let (hi, hi_inclusive) = bound(prop, right)?;
    let mut lo_key = sortable::encode(prop.dtype, &lo)?;
    let mut hi_key = sortable::encode(prop.dtype, &hi)?;
    lo_key.push(0x00);
    if !lo_inclusive {
        lo_key.push(0xFF);
    }
    hi_key.push(0x00);
    if hi_inclusive {
        hi_key.push(0xFF);
    }
    if lo_key > hi_key {
        return Err(Error::invalid(format!(
            "invalid range on {:?}: the right bound {right} lies below the left bound {}",
            range.column, range.left
        )));
    }
    if prop.name != ID {
        return Ok((
            pos,
            Normalized::Index {
                lo: lo_key,
                hi: hi_key,
            },
        ));
    }
    let as_id = |v: &Value| v.as_i64().expect("id bounds are cast to int64");
    let lo = if lo_inclusive {
        Some(as_id(&lo))
    } else {
        as_id(&lo).checked_add(1)
    };
    let hi = if hi_inclusive {
        Some(as_id(&hi))
    } else {
        as_id(&hi).checked_sub(1)
    };
    Ok((
        pos,
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => Normalized::Ids { lo, hi },
            _ => Normalized::Empty,
        },
    ))
}

fn no_index(component: &Component, column: &str) -> Error {
    Error::invalid(format!(
        "no index on {}.{column}: range needs an indexed column",
        component.name()
    ))
}

/// One bound: its marker stripped, converted to the column's type.
fn bound(prop: &Property, raw: &Value) -> Result<(Value, bool)> {
    let (value, inclusive) = strip_marker(raw);
    let dtype = prop.dtype;
    let wrong = |want: &str| {
        Error::invalid(format!(
            "range bound {raw} on column {:?} ({}) must be {want}",
            prop.name,
            dtype.numpy_str()
        ))
    };
    let converted = match dtype {
        DType::Unicode(_) => match value {
            Value::Str(s) => Value::Str(s),
            Value::Bytes(b) => {
                Value::Str(String::from_utf8(b).map_err(|_| wrong("str (valid UTF-8)"))?)
            }
            _ => return Err(wrong("a str or bytes")),
        },
        DType::Bytes(_) => match value {
            Value::Str(s) => Value::Bytes(s.into_bytes()),
            Value::Bytes(b) => Value::Bytes(b),
            _ => return Err(wrong("a str or bytes")),
        },
        DType::F32 | DType::F64 => {
            let f = match &value {
                Value::Str(s) => s.trim().parse::<f64>().map_err(|_| wrong("a number"))?,
                Value::Bytes(_) => return Err(wrong("a number")),
                v => v.as_f64().expect("numeric value"),
            };
            if f.is_nan() {
                return Err(wrong("a number, not NaN"));
            }
            Value::Float(if dtype == DType::F32 {
                f as f32 as f64
            } else {
                f
            })
        }
        _ => {
            let wide: i128 = match &value {
                Value::Int(v) => *v as i128,
                Value::UInt(v) => *v as i128,
                Value::Float(f) if f.is_nan() => return Err(wrong("a number, not NaN")),
                Value::Float(f) if f.is_infinite() => {
                    if *f > 0.0 {
                        i128::MAX
                    } else {
                        i128::MIN
                    }
                }
                Value::Float(f) => f.trunc() as i128,
                Value::Str(s) => parse_int(s).ok_or_else(|| wrong("an integer"))?,
                Value::Bytes(_) => return Err(wrong("an integer")),
            };
            if let Some((min, max)) = dtype.int_range() {
                Value::Int(wide.clamp(min as i128, max as i128) as i64)
            } else {
                let max = dtype.uint_max().expect("integer dtype");
                Value::UInt(wide.clamp(0, max as i128) as u64)
            }
        }
    };
    Ok((converted, inclusive))
}

fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i128>() {
        return Some(v);
    }
    let f = s.parse::<f64>().ok()?;
    if f.is_nan() {
        None
    } else if f.is_infinite() {
        Some(if f > 0.0 { i128::MAX } else { i128::MIN })
    } else {
        Some(f.trunc() as i128)
    }
}

/// Splits a `(`/`[` marker off a str or bytes bound: `(` exclusive, `[`
/// inclusive (also the default).
fn strip_marker(v: &Value) -> (Value, bool) {
    match v {
        Value::Str(s) if s.starts_with('(') => (Value::Str(s[1..].to_string()), false),
        Value::Str(s) if s.starts_with('[') => (Value::Str(s[1..].to_string()), true),
        Value::Bytes(b) if b.first() == Some(&b'(') => (Value::Bytes(b[1..].to_vec()), false),
        Value::Bytes(b) if b.first() == Some(&b'[') => (Value::Bytes(b[1..].to_vec()), true),
        other => (other.clone(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Property;

    fn comp() -> std::sync::Arc<Component> {
        Component::builder("t", "T")
            .property(Property::new("time", DType::I64).unique())
            .property(Property::new("small", DType::I8).index())
            .property(Property::new("name", DType::Unicode(8)).unique())
            .property(Property::new("qty", DType::I16))
            .build()
            .unwrap()
    }

    fn suffix(v: i64, tail: &[u8]) -> Vec<u8> {
        [
            sortable::encode(DType::I64, &Value::Int(v)).unwrap(),
            tail.to_vec(),
        ]
        .concat()
    }

    #[test]
    fn markers_pick_the_sentinels() {
        let c = comp();
        let n = |l: &str, r: &str| normalize(&c, &Range::between("time", l, r)).unwrap().1;
        assert_eq!(
            n("[110", "(115"),
            Normalized::Index {
                lo: suffix(110, &[0]),
                hi: suffix(115, &[0])
            }
        );
        assert_eq!(
            n("(110", "[115"),
            Normalized::Index {
                lo: suffix(110, &[0, 0xFF]),
                hi: suffix(115, &[0, 0xFF])
            }
        );
        // Equal exclusive bounds leave the low sentinel above the high one.
        assert!(normalize(&c, &Range::between("time", "(5", "(5")).is_err());
    }

    #[test]
    fn infinite_bounds_clamp_on_integer_columns() {
        let c = comp();
        let (_, n) = normalize(
            &c,
            &Range::between("small", f64::NEG_INFINITY, f64::INFINITY),
        )
        .unwrap();
        let enc = |v: i64| sortable::encode(DType::I8, &Value::Int(v)).unwrap();
        assert_eq!(
            n,
            Normalized::Index {
                lo: [enc(-128), vec![0]].concat(),
                hi: [enc(127), vec![0, 0xFF]].concat()
            }
        );
        // Out-of-range integer bounds clamp too.
        let (_, wide) = normalize(&c, &Range::between("small", -1000, 1000)).unwrap();
        assert_eq!(wide, n);
    }

    #[test]
    fn bad_ranges_are_refused_with_their_reason() {
        let c = comp();
        let e = normalize(&c, &Range::between("time", 115, 110))
            .unwrap_err()
            .to_string();
        assert!(e.contains("right") && e.contains("left"), "{e}");
        let e = normalize(&c, &Range::eq("qty", 1)).unwrap_err().to_string();
        assert!(e.contains("no index") && e.contains("qty"), "{e}");
        let e = normalize(&c, &Range::between("name", f64::NEG_INFINITY, "Itm15"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("str"), "{e}");
        let e = normalize(&c, &Range::eq("name", 11))
            .unwrap_err()
            .to_string();
        assert!(e.contains("str"), "{e}");
    }

    #[test]
    fn id_ranges_become_id_bounds() {
        let c = comp();
        let n = |l: Value, r: Value| normalize(&c, &Range::between("id", l, r)).unwrap().1;
        assert_eq!(
            n("(5".into(), "(9".into()),
            Normalized::Ids { lo: 6, hi: 8 }
        );
        assert_eq!(
            n(f64::NEG_INFINITY.into(), f64::INFINITY.into()),
            Normalized::Ids {
                lo: i64::MIN,
                hi: i64::MAX
            }
        );
        assert_eq!(
            n("(9223372036854775807".into(), f64::INFINITY.into()),
            Normalized::Empty
        );
    }
}
