//! Fixtures of the contract's behaviour cases (its section 2,
//! "Conventions"): the ITEM and RLS schemas and the FILLED table.
#![allow(dead_code)]

use std::sync::Arc;

use jkv_ecs::{Component, DType, Ecs, Property, Row, Table};

pub const INSTANCE: &str = "pytest";

/// ITEM: owner i64 index, model f32 index, qty i16 = 1, level i8 = 1,
/// time i64 unique, name U8 unique, used bool index.
pub fn item() -> Arc<Component> {
    Component::builder("pytest", "Item")
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("model", DType::F32).index())
        .property(Property::new("qty", DType::I16).default(1))
        .property(Property::new("level", DType::I8).default(1))
        .property(Property::new("time", DType::I64).unique())
        .property(Property::new("name", DType::Unicode(8)).unique())
        .property(Property::new("used", DType::Bool).index())
        .build()
        .expect("ITEM schema")
}

/// RLS (volatile): owner i64 index, friend i8 = 1.
pub fn rls() -> Arc<Component> {
    Component::builder("pytest", "RLSTest")
        .volatile(true)
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("friend", DType::I8).default(1))
        .build()
        .expect("RLS schema")
}

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub ecs: Ecs,
    pub item: Arc<Component>,
    pub items: Table,
    pub rls: Arc<Component>,
    pub rlss: Table,
    /// Ids of the FILLED rows, ascending (row i has time 110 + i).
    pub ids: Vec<i64>,
}

pub fn open() -> Fx {
    let dir = tempfile::tempdir().expect("temp dir");
    let ecs = Ecs::open(dir.path(), jkv::Options::default()).expect("open");
    let item = item();
    let rls = rls();
    let items = ecs.table(&item, INSTANCE, 1).expect("item table");
    let rlss = ecs.table(&rls, INSTANCE, 1).expect("rls table");
    Fx {
        dir,
        ecs,
        item,
        items,
        rls,
        rlss,
        ids: Vec::new(),
    }
}

/// Row i of FILLED.
pub fn filled_row(item: &Arc<Component>, i: i64, id: i64) -> Row {
    let mut r = Row::new(item);
    r.set_id(id);
    r.set("name", format!("Itm{}", 10 + i)).unwrap();
    r.set("owner", 10).unwrap();
    r.set("time", 110 + i).unwrap();
    r.set("qty", 999).unwrap();
    r.set("model", (0.1 * i as f64) as f32).unwrap();
    r
}

/// 25 rows committed together.
pub fn filled() -> Fx {
    let mut fx = open();
    let mut txn = fx.ecs.begin();
    for i in 0..25 {
        let id = fx.ecs.next_id().unwrap();
        fx.ids.push(id);
        txn.insert(&fx.items, filled_row(&fx.item, i, id)).unwrap();
    }
    txn.commit().unwrap();
    fx
}

/// The `column` values of `rows` as i64.
pub fn ints(rows: &[Row], column: &str) -> Vec<i64> {
    rows.iter().map(|r| r.get_i64(column).unwrap()).collect()
}

/// The `column` values of `rows` as strings.
pub fn strs(rows: &[Row], column: &str) -> Vec<String> {
    rows.iter().map(|r| r.get_str(column).unwrap()).collect()
}

/// `row` with its `_version` bytes set to `v` (what a stale or foreign
/// payload carries).
pub fn with_version(row: &Row, v: i32) -> Row {
    let c = row.component();
    let at = c.offset(c.position(jkv_ecs::VERSION).unwrap());
    let mut bytes = row.as_bytes().to_vec();
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    Row::from_bytes(c, bytes).unwrap()
}

/// The engine key of a row, built from docs/ecs.md's layout:
/// `00 'E' 't' table:u32be 'r' id8`.
pub fn row_key(table: &Table, id: i64) -> Vec<u8> {
    let mut k = b"\x00Et".to_vec();
    k.extend_from_slice(&table.number().to_be_bytes());
    k.push(b'r');
    k.extend_from_slice(&((id as u64) ^ (1 << 63)).to_be_bytes());
    k
}
