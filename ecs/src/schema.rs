//! Components: typed, fixed-width row schemas, their canonical JSON and
//! schema version (md5 of the JSON), and the row layout derived from them.
//!
//! Invariants of a built [`Component`]: properties are sorted by name in
//! code-point order and include the reserved `id` (int64, unique) and
//! `_version` (int32, not indexed); bool columns are rewritten to int8;
//! `unique` implies `index`; every default fits its column. The layout packs
//! the columns in that order with no padding, exactly as numpy lays out
//! `np.dtype([...], align=False)` (docs/ecs.md, "Row layout").

use std::sync::Arc;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::value::{cast, CastMode, Value};

/// Name of the reserved primary-key column (int64).
pub const ID: &str = "id";
/// Name of the reserved version column (int32), written only by commits.
pub const VERSION: &str = "_version";
/// Longest component, instance or column name, in bytes (names are
/// length-prefixed with one byte inside keys).
pub const NAME_LEN_MAX: usize = 255;
/// Most columns in a component, `id` and `_version` included (an index is
/// named by its column's position, one byte, inside keys).
pub const COLUMNS_MAX: usize = 256;

/// A column type: numpy's fixed-width dtypes, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// int8 (`|i1`).
    I8,
    /// int16 (`<i2`).
    I16,
    /// int32 (`<i4`).
    I32,
    /// int64 (`<i8`).
    I64,
    /// uint8 (`|u1`).
    U8,
    /// uint16 (`<u2`).
    U16,
    /// uint32 (`<u4`).
    U32,
    /// uint64 (`<u8`).
    U64,
    /// float32 (`<f4`).
    F32,
    /// float64 (`<f8`).
    F64,
    /// bool; rewritten to [`DType::I8`] when a component is built.
    Bool,
    /// `U<n>`: n code points as UTF-32LE code units (4·n bytes), NUL-padded.
    Unicode(usize),
    /// `S<n>`: n bytes, NUL-padded.
    Bytes(usize),
}

impl DType {
    /// Bytes one value takes in a row.
    pub fn width(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
            DType::Unicode(n) => 4 * n,
            DType::Bytes(n) => n,
        }
    }

    /// numpy's `dtype.str`: `<i8`, `|u1`, `<f4`, `<U8`, `|S8`, ...
    pub fn numpy_str(self) -> String {
        match self {
            DType::I8 => "|i1".into(),
            DType::I16 => "<i2".into(),
            DType::I32 => "<i4".into(),
            DType::I64 => "<i8".into(),
            DType::U8 => "|u1".into(),
            DType::U16 => "<u2".into(),
            DType::U32 => "<u4".into(),
            DType::U64 => "<u8".into(),
            DType::F32 => "<f4".into(),
            DType::F64 => "<f8".into(),
            DType::Bool => "|b1".into(),
            DType::Unicode(n) => format!("<U{n}"),
            DType::Bytes(n) => format!("|S{n}"),
        }
    }

    /// Parses numpy's dtype strings (`<i8`, `int64`, `i8`, `<U8`, `U8`,
    /// `|S8`, `S8`, `bool`, ...).
    pub fn parse(s: &str) -> Result<DType> {
        let t = s.trim_start_matches(['<', '|', '=', '>']);
        if s.starts_with('>') {
            return Err(Error::invalid(format!(
                "dtype {s:?}: only little-endian types are stored"
            )));
        }
        let sized = |rest: &str| -> Result<usize> {
            match rest.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(Error::invalid(format!(
                    "dtype {s:?}: width must be a number >= 1"
                ))),
            }
        };
        Ok(match t {
            "i1" | "int8" => DType::I8,
            "i2" | "int16" => DType::I16,
            "i4" | "int32" => DType::I32,
            "i8" | "int64" => DType::I64,
            "u1" | "uint8" => DType::U8,
            "u2" | "uint16" => DType::U16,
            "u4" | "uint32" => DType::U32,
            "u8" | "uint64" => DType::U64,
            "f4" | "float32" => DType::F32,
            "f8" | "float64" => DType::F64,
            "b1" | "bool" | "?" => DType::Bool,
            _ if t.starts_with('U') => DType::Unicode(sized(&t[1..])?),
            _ if t.starts_with('S') => DType::Bytes(sized(&t[1..])?),
            _ => {
                return Err(Error::invalid(format!(
                    "dtype {s:?} is not a supported column type"
                )))
            }
        })
    }

    /// True for signed, unsigned and bool columns.
    pub fn is_integer(self) -> bool {
        self.int_range().is_some() || self.uint_max().is_some()
    }

    /// True for `U<n>` and `S<n>` columns.
    pub fn is_string(self) -> bool {
        matches!(self, DType::Unicode(_) | DType::Bytes(_))
    }

    /// True for float columns.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// (min, max) of a signed (or bool, stored as int8) column.
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            DType::I8 | DType::Bool => Some((i8::MIN as i64, i8::MAX as i64)),
            DType::I16 => Some((i16::MIN as i64, i16::MAX as i64)),
            DType::I32 => Some((i32::MIN as i64, i32::MAX as i64)),
            DType::I64 => Some((i64::MIN, i64::MAX)),
            _ => None,
        }
    }

    /// max of an unsigned column.
    pub fn uint_max(self) -> Option<u64> {
        match self {
            DType::U8 => Some(u8::MAX as u64),
            DType::U16 => Some(u16::MAX as u64),
            DType::U32 => Some(u32::MAX as u64),
            DType::U64 => Some(u64::MAX),
            _ => None,
        }
    }

    /// The zero value of the type ("" for strings).
    pub fn zero(self) -> Value {
        match self {
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => Value::UInt(0),
            DType::F32 | DType::F64 => Value::Float(0.0),
            DType::Unicode(_) => Value::Str(String::new()),
            DType::Bytes(_) => Value::Bytes(Vec::new()),
            _ => Value::Int(0),
        }
    }
}

/// One column of a component.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// Column name; sorted in code-point order within the row.
    pub name: String,
    /// Column type.
    pub dtype: DType,
    /// Value of the column in a new row (the type's zero if not given).
    pub default: Value,
    /// No two rows of a table share a value (implies `index`).
    pub unique: bool,
    /// The column has a secondary index (range queries, channels).
    pub index: bool,
}

impl Property {
    /// A non-indexed column of `dtype` whose default is the type's zero.
    pub fn new(name: impl Into<String>, dtype: DType) -> Property {
        Property {
            name: name.into(),
            dtype,
            default: dtype.zero(),
            unique: false,
            index: false,
        }
    }

    /// Sets the default.
    pub fn default(mut self, value: impl Into<Value>) -> Property {
        self.default = value.into();
        self
    }

    /// Adds a secondary index.
    pub fn index(mut self) -> Property {
        self.index = true;
        self
    }

    /// Makes the column unique (and indexed).
    pub fn unique(mut self) -> Property {
        self.unique = true;
        self.index = true;
        self
    }
}

/// A built component: the schema of one kind of row.
#[derive(Debug, PartialEq)]
pub struct Component {
    namespace: String,
    name: String,
    permission: String,
    volatile: bool,
    /// Sorted by name; includes `id` and `_version`.
    properties: Vec<Property>,
    /// Byte offset of each property in a row, same order.
    offsets: Vec<usize>,
    row_size: usize,
    /// Positions (into `properties`) of indexed columns, `id` included.
    indexed: Vec<usize>,
    /// Positions of `id` and `_version`.
    id_position: usize,
    version_position: usize,
    json: String,
    version: String,
}

/// Builds a [`Component`].
#[derive(Clone, Debug)]
pub struct ComponentBuilder {
    namespace: String,
    name: String,
    permission: String,
    volatile: bool,
    properties: Vec<Property>,
}

impl ComponentBuilder {
    /// Adds a column.
    pub fn property(mut self, property: Property) -> Self {
        self.properties.push(property);
        self
    }

    /// Marks the component volatile: maintenance may wipe it, and it alone
    /// accepts `direct_set`.
    pub fn volatile(mut self, yes: bool) -> Self {
        self.volatile = yes;
        self
    }

    /// Sets the permission tag (kept in the schema identity; permission
    /// rules themselves are outside jkv-ecs). Default `everybody`.
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permission = permission.into();
        self
    }

    /// Validates the columns and derives the layout, JSON and version.
    pub fn build(self) -> Result<Arc<Component>> {
        check_name("component", &self.name)?;
        let mut props = Vec::with_capacity(self.properties.len() + 2);
        for mut p in self.properties {
            check_name("column", &p.name)?;
            if p.name == ID || p.name == VERSION {
                return Err(Error::invalid(format!(
                    "column {:?} is reserved (every component has id int64 and _version int32)",
                    p.name
                )));
            }
            if p.dtype == DType::Bool {
                p.dtype = DType::I8;
            }
            if p.unique {
                p.index = true;
            }
            p.default = cast(&p.default, p.dtype, CastMode::Assign, &p.name)?;
            if p.index && p.dtype.is_float() {
                if let Value::Float(f) = p.default {
                    if f.is_nan() {
                        return Err(Error::invalid(format!(
                            "column {:?}: NaN cannot be a default of an indexed float column",
                            p.name
                        )));
                    }
                }
            }
            props.push(p);
        }
        props.push(Property::new(ID, DType::I64).unique());
        props.push(Property::new(VERSION, DType::I32));
        props.sort_by(|a, b| a.name.cmp(&b.name));
        if props.len() > COLUMNS_MAX {
            return Err(Error::invalid(format!(
                "component {} has {} columns; at most {COLUMNS_MAX} (id and _version included)",
                self.name,
                props.len()
            )));
        }
        for pair in props.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::invalid(format!(
                    "column {:?} is defined twice",
                    pair[0].name
                )));
            }
        }
        let mut offsets = Vec::with_capacity(props.len());
        let mut at = 0;
        for p in &props {
            offsets.push(at);
            at += p.dtype.width();
        }
        let indexed = (0..props.len()).filter(|&i| props[i].index).collect();
        let json = canonical_json(
            &self.namespace,
            &self.name,
            &self.permission,
            self.volatile,
            &props,
        );
        let version = md5_hex(json.as_bytes());
        let id_position = props
            .iter()
            .position(|p| p.name == ID)
            .expect("id was added");
        let version_position = props
            .iter()
            .position(|p| p.name == VERSION)
            .expect("_version was added");
        Ok(Arc::new(Component {
            namespace: self.namespace,
            name: self.name,
            permission: self.permission,
            volatile: self.volatile,
            properties: props,
            offsets,
            row_size: at,
            indexed,
            id_position,
            version_position,
            json,
            version,
        }))
    }
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err(Error::invalid(format!(
            "{what} name {name:?} must be 1..={NAME_LEN_MAX} bytes"
        )));
    }
    Ok(())
}

impl Component {
    /// Starts a component `name` in `namespace`.
    pub fn builder(namespace: impl Into<String>, name: impl Into<String>) -> ComponentBuilder {
        ComponentBuilder {
            namespace: namespace.into(),
            name: name.into(),
            permission: "everybody".into(),
            volatile: false,
            properties: Vec::new(),
        }
    }

    /// Rebuilds a component from its canonical JSON (as stored in a meta record).
    pub fn from_json(json: &str) -> Result<Arc<Component>> {
        let doc: JsonComponent = serde_json::from_str(json)
            .map_err(|e| Error::invalid(format!("component JSON does not parse: {e}")))?;
        let mut b = Component::builder(doc.namespace, doc.name)
            .permission(doc.permission)
            .volatile(doc.volatile);
        for p in doc.properties {
            if p.name == ID || p.name == VERSION {
                continue;
            }
            let dtype = DType::parse(&p.dtype)?;
            let default = json_to_value(&p.default, dtype)?;
            b = b.property(Property {
                name: p.name,
                dtype,
                default,
                unique: p.unique,
                index: p.index,
            });
        }
        b.build()
    }

    /// Component name (part of every key of its tables).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Permission tag.
    pub fn permission(&self) -> &str {
        &self.permission
    }

    /// True when the component is volatile.
    pub fn is_volatile(&self) -> bool {
        self.volatile
    }

    /// Columns sorted by name, `id` and `_version` included.
    pub fn properties(&self) -> &[Property] {
        &self.properties
    }

    /// Position of column `name` in [`Component::properties`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.properties
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
    }

    /// Column `name`, or an error naming it.
    pub fn property(&self, name: &str) -> Result<&Property> {
        self.position(name)
            .map(|i| &self.properties[i])
            .ok_or_else(|| {
                Error::invalid(format!("component {} has no column {name:?}", self.name))
            })
    }

    /// Byte offset of the column at `position` in a row.
    pub fn offset(&self, position: usize) -> usize {
        self.offsets[position]
    }

    /// Bytes in one row (numpy's `dtype.itemsize`).
    pub fn row_size(&self) -> usize {
        self.row_size
    }

    /// Position of `id`.
    pub fn id_position(&self) -> usize {
        self.id_position
    }

    /// Position of `_version`.
    pub fn version_position(&self) -> usize {
        self.version_position
    }

    /// Positions of indexed columns (`id` included), in name order.
    pub fn indexed(&self) -> &[usize] {
        &self.indexed
    }

    /// Canonical JSON: the schema identity.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Schema version: md5 of [`Component::json`], lowercase hex.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// numpy's description of the row: `[("_version", "<i4"), ("id", "<i8"), ...]`.
    pub fn numpy_descr(&self) -> Vec<(String, String)> {
        self.properties
            .iter()
            .map(|p| (p.name.clone(), p.dtype.numpy_str()))
            .collect()
    }
}

pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a component; field order is the canonical key order.
#[derive(Serialize, Deserialize)]
struct JsonComponent {
    backend: String,
    name: String,
    namespace: String,
    permission: String,
    properties: Vec<JsonProperty>,
    volatile: bool,
}

#[derive(Serialize, Deserialize)]
struct JsonProperty {
    default: serde_json::Value,
    dtype: String,
    index: bool,
    name: String,
    unique: bool,
}

fn canonical_json(
    namespace: &str,
    name: &str,
    permission: &str,
    volatile: bool,
    props: &[Property],
) -> String {
    let doc = JsonComponent {
        backend: "jkv".into(),
        name: name.into(),
        namespace: namespace.into(),
        permission: permission.into(),
        properties: props
            .iter()
            .map(|p| JsonProperty {
                default: value_to_json(&p.default),
                dtype: p.dtype.numpy_str(),
                index: p.index,
                name: p.name.clone(),
                unique: p.unique,
            })
            .collect(),
        volatile,
    };
    serde_json::to_string(&doc).expect("a component's JSON always serializes")
}

fn value_to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) if f.is_finite() => J::from(*f),
        Value::Float(f) => J::from(f.to_string()),
        Value::Str(s) => J::from(s.clone()),
        Value::Bytes(b) => J::from(crate::error::hex(b)),
    }
}

fn json_to_value(j: &serde_json::Value, dtype: DType) -> Result<Value> {
    use serde_json::Value as J;
    let bad = || {
        Error::invalid(format!(
            "default {j} does not fit dtype {}",
            dtype.numpy_str()
        ))
    };
    Ok(match (j, dtype) {
        (J::String(s), DType::Bytes(_)) => {
            let bytes: Option<Vec<u8>> = (0..s.len() / 2)
                .map(|i| {
                    s.get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect();
            Value::Bytes(bytes.filter(|_| s.len() % 2 == 0).ok_or_else(bad)?)
        }
        (J::String(s), DType::Unicode(_)) => Value::Str(s.clone()),
        (J::String(s), DType::F32 | DType::F64) => Value::Float(s.parse().map_err(|_| bad())?),
        (J::Number(n), _) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().ok_or_else(bad)?)
            }
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Arc<Component> {
        Component::builder("pytest", "Item")
            .property(Property::new("owner", DType::I64).index())
            .property(Property::new("model", DType::F32).index())
            .property(Property::new("qty", DType::I16).default(1))
            .property(Property::new("level", DType::I8).default(1))
            .property(Property::new("time", DType::I64).unique())
            .property(Property::new("name", DType::Unicode(8)).unique())
            .property(Property::new("used", DType::Bool).index())
            .build()
            .unwrap()
    }

    #[test]
    fn columns_sort_by_code_point_and_pack_without_padding() {
        let c = item();
        let names: Vec<&str> = c.properties().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["_version", "id", "level", "model", "name", "owner", "qty", "time", "used"]
        );
        // 4 + 8 + 1 + 4 + 32 + 8 + 2 + 8 + 1
        assert_eq!(c.row_size(), 68);
        assert_eq!(c.offset(c.position("name").unwrap()), 17);
        assert_eq!(
            c.property("used").unwrap().dtype,
            DType::I8,
            "bool is stored as int8"
        );
        assert!(c.property("time").unwrap().index, "unique forces index");
    }

    #[test]
    fn json_round_trips_and_version_is_its_md5() {
        let c = item();
        assert_eq!(c.version(), md5_hex(c.json().as_bytes()));
        let back = Component::from_json(c.json()).unwrap();
        assert_eq!(back.json(), c.json());
        assert_eq!(back.version(), c.version());
        let changed = Component::builder("pytest", "Item")
            .property(Property::new("owner", DType::I32).index())
            .build()
            .unwrap();
        assert_ne!(changed.version(), c.version());
    }

    #[test]
    fn bad_schemas_are_refused() {
        let b = || Component::builder("n", "C");
        assert!(b()
            .property(Property::new("id", DType::I32))
            .build()
            .is_err());
        assert!(b()
            .property(Property::new("a", DType::I8))
            .property(Property::new("a", DType::I8))
            .build()
            .is_err());
        assert!(b()
            .property(Property::new("a", DType::I8).default(1000))
            .build()
            .is_err());
        assert!(Component::builder("n", "").build().is_err());
        assert!(DType::parse("complex128").is_err());
        assert!(DType::parse("U0").is_err());
        assert_eq!(DType::parse("<U8").unwrap(), DType::Unicode(8));
        assert_eq!(DType::parse("|S3").unwrap(), DType::Bytes(3));
    }
}
