//! Rows in numpy's layout: a [`Row`] is one component's fixed-width record,
//! byte for byte what numpy stores for the component's structured dtype
//! (docs/ecs.md, "Row layout"); [`Rows`] is a contiguous buffer of them, the
//! bytes of a numpy record array.
//!
//! Integers and floats are little-endian at their column's offset; `U<n>` is
//! n UTF-32LE code units padded with NUL; `S<n>` is n bytes padded with NUL;
//! reading either drops trailing NULs, as numpy does.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::schema::{Component, DType, Property, VERSION};
use crate::value::{cast, CastMode, Value};

/// One row of a component.
#[derive(Clone, PartialEq)]
pub struct Row {
    component: Arc<Component>,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (i, p) in self.component.properties().iter().enumerate() {
            match self.value_at(i) {
                Ok(v) => m.entry(&p.name, &v),
                Err(e) => m.entry(&p.name, &e.to_string()),
            };
        }
        m.finish()
    }
}

impl Row {
    /// A row holding every column's default, `id` 0 and `_version` 0.
    pub fn new(component: &Arc<Component>) -> Row {
        let mut row = Row {
            component: component.clone(),
            bytes: vec![0; component.row_size()],
        };
        for (i, p) in component.properties().iter().enumerate() {
            row.write_at(i, &p.default);
        }
        row
    }

    /// A row over stored bytes; errors unless `bytes` is exactly one row.
    pub fn from_bytes(component: &Arc<Component>, bytes: Vec<u8>) -> Result<Row> {
        if bytes.len() != component.row_size() {
            return Err(Error::invalid(format!(
                "a {} row is {} bytes, got {} (was the schema changed?)",
                component.name(),
                component.row_size(),
                bytes.len()
            )));
        }
        Ok(Row {
            component: component.clone(),
            bytes,
        })
    }

    /// The component this row belongs to.
    pub fn component(&self) -> &Arc<Component> {
        &self.component
    }

    /// The row's bytes in numpy's layout.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Consumes the row, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The primary key.
    pub fn id(&self) -> i64 {
        self.int_at(self.component.id_position())
    }

    /// Sets the primary key (only before insert; commits refuse changes).
    pub fn set_id(&mut self, id: i64) -> &mut Row {
        let at = self.component.offset(self.component.id_position());
        self.bytes[at..at + 8].copy_from_slice(&id.to_le_bytes());
        self
    }

    /// The row's version: 0 before insert, 1 after, +1 per update commit.
    pub fn version(&self) -> i32 {
        self.int_at(self.component.version_position()) as i32
    }

    pub(crate) fn set_version(&mut self, version: i32) {
        let at = self.component.offset(self.component.version_position());
        self.bytes[at..at + 4].copy_from_slice(&version.to_le_bytes());
    }

    /// Column `name`'s value.
    pub fn get(&self, name: &str) -> Result<Value> {
        let i = self
            .component
            .position(name)
            .ok_or_else(|| self.no_column(name))?;
        self.value_at(i)
    }

    /// Column `name` as an i64 (integer columns).
    pub fn get_i64(&self, name: &str) -> Result<i64> {
        let v = self.get(name)?;
        v.as_i64()
            .ok_or_else(|| Error::invalid(format!("column {name:?} holds {v}, not an i64")))
    }

    /// Column `name` as an f64 (numeric columns).
    pub fn get_f64(&self, name: &str) -> Result<f64> {
        let v = self.get(name)?;
        v.as_f64()
            .ok_or_else(|| Error::invalid(format!("column {name:?} holds {v}, not a number")))
    }

    /// Column `name` as a string (`U<n>` columns).
    pub fn get_str(&self, name: &str) -> Result<String> {
        match self.get(name)? {
            Value::Str(s) => Ok(s),
            v => Err(Error::invalid(format!(
                "column {name:?} holds {v}, not a str"
            ))),
        }
    }

    /// Sets column `name`, converting `value` to its type: integers must fit,
    /// strings longer than the column are silently truncated (the contract's
    /// rule). `_version` cannot be set.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> Result<&mut Row> {
        let i = self
            .component
            .position(name)
            .ok_or_else(|| self.no_column(name))?;
        if name == VERSION {
            return Err(Error::invalid("_version is written only by commits"));
        }
        let p = &self.component.properties()[i];
        let v = cast(&value.into(), p.dtype, CastMode::Assign, &p.name)?;
        self.write_at(i, &v);
        Ok(self)
    }

    /// Every column by name, `_version` included (the contract's TYPED_DICT).
    pub fn to_map(&self) -> Result<BTreeMap<String, Value>> {
        let mut m = BTreeMap::new();
        for (i, p) in self.component.properties().iter().enumerate() {
            m.insert(p.name.clone(), self.value_at(i)?);
        }
        Ok(m)
    }

    /// Every column by name as a string, `_version` included (the
    /// contract's RAW format: what Redis hands back, a string per field;
    /// bytes columns as lossy UTF-8).
    pub fn to_raw_map(&self) -> Result<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for (i, p) in self.component.properties().iter().enumerate() {
            let text = match self.value_at(i)? {
                Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                v => v.to_string(),
            };
            m.insert(p.name.clone(), text);
        }
        Ok(m)
    }

    fn no_column(&self, name: &str) -> Error {
        Error::invalid(format!(
            "component {} has no column {name:?}",
            self.component.name()
        ))
    }

    /// The stored bytes of the column at `position`.
    pub(crate) fn field_bytes(&self, position: usize) -> &[u8] {
        let at = self.component.offset(position);
        let w = self.component.properties()[position].dtype.width();
        &self.bytes[at..at + w]
    }

    /// Copies the column at `position` from `other` (same component).
    pub(crate) fn copy_field(&mut self, position: usize, other: &Row) {
        let at = self.component.offset(position);
        let w = self.component.properties()[position].dtype.width();
        self.bytes[at..at + w].copy_from_slice(&other.bytes[at..at + w]);
    }

    fn int_at(&self, position: usize) -> i64 {
        let b = self.field_bytes(position);
        match b.len() {
            1 => b[0] as i8 as i64,
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes(b.try_into().expect("an int64 column is 8 bytes")),
        }
    }

    /// The value of the column at `position`.
    pub(crate) fn value_at(&self, position: usize) -> Result<Value> {
        let p: &Property = &self.component.properties()[position];
        let b = self.field_bytes(position);
        Ok(match p.dtype {
            DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::Bool => {
                Value::Int(self.int_at(position))
            }
            DType::U8 => Value::UInt(b[0] as u64),
            DType::U16 => Value::UInt(u16::from_le_bytes([b[0], b[1]]) as u64),
            DType::U32 => Value::UInt(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64),
            DType::U64 => Value::UInt(u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            DType::F32 => Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
            DType::F64 => Value::Float(f64::from_le_bytes(b.try_into().expect("8 bytes"))),
            DType::Unicode(_) => {
                let mut s = String::new();
                for unit in b.chunks_exact(4) {
                    let u = u32::from_le_bytes([unit[0], unit[1], unit[2], unit[3]]);
                    let c = char::from_u32(u).ok_or_else(|| {
                        Error::corruption(
                            &self.bytes,
                            format!("column {:?} holds {u:#x}, not a code point", p.name),
                        )
                    })?;
                    s.push(c);
                }
                Value::Str(s.trim_end_matches('\0').to_string())
            }
            DType::Bytes(_) => {
                let end = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
                Value::Bytes(b[..end].to_vec())
            }
        })
    }

    /// Writes `v`, already cast to the column's type, at `position`.
    pub(crate) fn write_at(&mut self, position: usize, v: &Value) {
        let p = &self.component.properties()[position];
        let at = self.component.offset(position);
        let w = p.dtype.width();
        let out = &mut self.bytes[at..at + w];
        match (p.dtype, v) {
            (DType::F32, Value::Float(f)) => out.copy_from_slice(&(*f as f32).to_le_bytes()),
            (DType::F64, Value::Float(f)) => out.copy_from_slice(&f.to_le_bytes()),
            (DType::Unicode(n), Value::Str(s)) => {
                out.fill(0);
                for (k, c) in s.chars().take(n).enumerate() {
                    out[4 * k..4 * k + 4].copy_from_slice(&(c as u32).to_le_bytes());
                }
            }
            (DType::Bytes(n), Value::Bytes(b)) => {
                out.fill(0);
                let k = b.len().min(n);
                out[..k].copy_from_slice(&b[..k]);
            }
            (_, Value::Int(i)) => out.copy_from_slice(&i.to_le_bytes()[..w]),
            (_, Value::UInt(u)) => out.copy_from_slice(&u.to_le_bytes()[..w]),
            _ => unreachable!("write_at takes values cast to the column type"),
        }
    }
}

/// Rows of one component in one contiguous buffer: the bytes of a numpy
/// record array of the component's dtype (`np.frombuffer(rows.as_bytes(),
/// dtype)` reads them without conversion).
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    component: Arc<Component>,
    bytes: Vec<u8>,
}

impl Rows {
    /// An empty buffer.
    pub fn new(component: &Arc<Component>) -> Rows {
        Rows {
            component: component.clone(),
            bytes: Vec::new(),
        }
    }

    /// Appends one row's bytes.
    pub(crate) fn push_bytes(&mut self, row: &[u8]) {
        debug_assert_eq!(row.len(), self.component.row_size());
        self.bytes.extend_from_slice(row);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.component.row_size()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The buffer, `len() * row_size()` bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The component.
    pub fn component(&self) -> &Arc<Component> {
        &self.component
    }

    /// Row `i` as a typed [`Row`].
    pub fn row(&self, i: usize) -> Option<Row> {
        let n = self.component.row_size();
        self.bytes.get(i * n..(i + 1) * n).map(|b| Row {
            component: self.component.clone(),
            bytes: b.to_vec(),
        })
    }

    /// Every row, in buffer order.
    pub fn to_vec(&self) -> Vec<Row> {
        (0..self.len()).filter_map(|i| self.row(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Property;

    /// A component with every column type; the bytes are checked against
    /// what `np.zeros(1, dtype)` filled the same way holds (docs/ecs.md,
    /// "Worked example").
    #[test]
    fn every_column_type_lands_at_numpy_offsets() {
        let c = Component::builder("doc", "Every")
            .property(Property::new("a_i8", DType::I8))
            .property(Property::new("b_i16", DType::I16))
            .property(Property::new("c_i32", DType::I32))
            .property(Property::new("d_i64", DType::I64))
            .property(Property::new("e_u8", DType::U8))
            .property(Property::new("f_u16", DType::U16))
            .property(Property::new("g_u32", DType::U32))
            .property(Property::new("h_u64", DType::U64))
            .property(Property::new("i_f32", DType::F32))
            .property(Property::new("j_f64", DType::F64))
            .property(Property::new("k_bool", DType::Bool))
            .property(Property::new("l_u3", DType::Unicode(3)))
            .property(Property::new("m_s3", DType::Bytes(3)))
            .build()
            .unwrap();
        let mut r = Row::new(&c);
        r.set_id(0x0102030405060708);
        r.set_version(7);
        r.set("a_i8", -2).unwrap();
        r.set("b_i16", -300).unwrap();
        r.set("c_i32", 70000).unwrap();
        r.set("d_i64", -1).unwrap();
        r.set("e_u8", 200u8).unwrap();
        r.set("f_u16", 65535u16).unwrap();
        r.set("g_u32", 1u32).unwrap();
        r.set("h_u64", u64::MAX).unwrap();
        r.set("i_f32", 1.5f32).unwrap();
        r.set("j_f64", -2.0).unwrap();
        r.set("k_bool", true).unwrap();
        r.set("l_u3", "héllo").unwrap();
        r.set("m_s3", b"ab".as_slice()).unwrap();
        let expect: Vec<u8> = [
            &7i32.to_le_bytes()[..],                           // _version <i4
            &[0xfe],                                           // a_i8 |i1
            &(-300i16).to_le_bytes(),                          // b_i16 <i2
            &70000i32.to_le_bytes(),                           // c_i32 <i4
            &(-1i64).to_le_bytes(),                            // d_i64 <i8
            &[200],                                            // e_u8 |u1
            &[0xff, 0xff],                                     // f_u16 <u2
            &[1, 0, 0, 0],                                     // g_u32 <u4
            &[0xff; 8],                                        // h_u64 <u8
            &1.5f32.to_le_bytes(),                             // i_f32 <f4
            &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01], // id <i8 ("i_" < "id")
            &(-2.0f64).to_le_bytes(),                          // j_f64 <f8
            &[1],                                              // k_bool stored as |i1
            &[b'h', 0, 0, 0, 0xe9, 0, 0, 0, b'l', 0, 0, 0],    // l_u3 <U3, truncated
            &[b'a', b'b', 0],                                  // m_s3 |S3
        ]
        .concat();
        assert_eq!(r.as_bytes(), expect.as_slice());
        assert_eq!(c.row_size(), expect.len());
        assert_eq!(r.get_str("l_u3").unwrap(), "hél");
        assert_eq!(r.get("m_s3").unwrap(), Value::Bytes(b"ab".to_vec()));
        assert_eq!(r.get("h_u64").unwrap(), Value::UInt(u64::MAX));
        assert_eq!(r.get("k_bool").unwrap(), Value::Int(1));
        let back = Row::from_bytes(&c, expect).unwrap();
        assert_eq!(back, r);
        let typed = r.to_map().unwrap();
        assert_eq!(typed["_version"], Value::Int(7));
        assert_eq!(typed["i_f32"], Value::Float(1.5));
        let raw = r.to_raw_map().unwrap();
        assert_eq!(raw["l_u3"], "hél");
        assert_eq!(raw["h_u64"], u64::MAX.to_string());
        assert_eq!(raw["m_s3"], "ab");
        assert_eq!(raw.len(), c.properties().len());
    }

    /// docs/ecs.md, "Worked example": the row and its keys, byte for byte.
    #[test]
    fn docs_worked_example_bytes() {
        use crate::{keys, sortable};
        let c = Component::builder("doc", "Item")
            .property(Property::new("owner", DType::I64).index())
            .property(Property::new("name", DType::Unicode(4)).unique())
            .property(Property::new("used", DType::Bool).index())
            .build()
            .unwrap();
        assert_eq!(c.row_size(), 37);
        let mut r = Row::new(&c);
        r.set_id(5)
            .set("name", "ab")
            .unwrap()
            .set("owner", 10)
            .unwrap()
            .set("used", true)
            .unwrap();
        r.set_version(1);
        let hex = |b: &[u8]| {
            b.iter()
                .map(|x| format!("{x:02X}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            hex(r.as_bytes()),
            "01 00 00 00 05 00 00 00 00 00 00 00 61 00 00 00 62 00 00 00 00 00 00 00 00 00 00 00 \
             0A 00 00 00 00 00 00 00 01"
        );
        let table = keys::table_prefix(1);
        assert_eq!(
            hex(&keys::row_key(&table, 5)),
            "00 45 74 00 00 00 01 72 80 00 00 00 00 00 00 05"
        );
        let entry = |col: &str| {
            let pos = c.position(col).unwrap();
            let v = sortable::encode(c.properties()[pos].dtype, &r.value_at(pos).unwrap()).unwrap();
            hex(&keys::index_key(
                &keys::index_prefix(&table, pos as u8),
                &v,
                5,
            ))
        };
        assert_eq!(
            entry("owner"),
            "00 45 74 00 00 00 01 78 03 80 00 00 00 00 00 00 0A 00 01 80 00 00 00 00 00 00 05"
        );
        assert_eq!(
            entry("name"),
            "00 45 74 00 00 00 01 78 02 61 62 00 01 80 00 00 00 00 00 00 05"
        );
        assert_eq!(
            entry("used"),
            "00 45 74 00 00 00 01 78 04 80 00 00 00 00 00 00 01 00 01 80 00 00 00 00 00 00 05"
        );
    }

    #[test]
    fn wrong_length_and_unknown_columns_are_errors() {
        let c = Component::builder("t", "T").build().unwrap();
        assert!(Row::from_bytes(&c, vec![0; 3]).is_err());
        let mut r = Row::new(&c);
        assert!(r.set("nope", 1).is_err());
        assert!(r.set("_version", 1).is_err());
        assert!(r.get("nope").is_err());
    }

    #[test]
    fn rows_buffer_is_contiguous() {
        let c = Component::builder("t", "T")
            .property(Property::new("x", DType::I16))
            .build()
            .unwrap();
        let mut rows = Rows::new(&c);
        for i in 0..3 {
            let mut r = Row::new(&c);
            r.set_id(i);
            rows.push_bytes(r.as_bytes());
        }
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.as_bytes().len(), 3 * c.row_size());
        assert_eq!(rows.row(2).unwrap().id(), 2);
        assert!(rows.row(3).is_none());
    }
}
