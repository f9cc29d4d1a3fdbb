//! Bad input gets a clear error (or the documented behaviour) and leaves
//! the database usable: unknown components and columns, wrong column types,
//! NaN in an indexed float, strings longer than their column (silently
//! truncated, as the contract says), rows stored under another schema, and
//! a damaged meta record.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jkv_ecs::{Component, DType, Error, Property, Range, Row, Value};

fn still_usable(fx: &Fx) {
    let mut txn = fx.ecs.begin();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("name", "ok").unwrap().set("time", 424242).unwrap();
    let id = txn.insert(&fx.items, r).unwrap();
    txn.commit().unwrap();
    assert!(fx.ecs.get(&fx.items, id).unwrap().is_some());
}

#[test]
fn unknown_columns_and_components_are_named_in_the_error() {
    let fx = filled();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    let e = r.set("colour", 1).unwrap_err().to_string();
    assert!(e.contains("colour") && e.contains("Item"), "{e}");
    let e = fx
        .ecs
        .range(&fx.items, &Range::eq("colour", 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
    let e = fx
        .ecs
        .get_by(&fx.items, "colour", 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
    // A component whose table was never created reads as empty.
    let ghost = Component::builder("pytest", "Ghost")
        .property(Property::new("x", DType::I8))
        .build()
        .unwrap();
    let m = fx.ecs.maintenance();
    let t = m.table(&ghost, INSTANCE, 1).unwrap();
    assert_eq!(
        m.check_table(&t).unwrap().0,
        jkv_ecs::TableStatus::NotExists
    );
    assert!(fx.ecs.get(&t, 1).unwrap().is_none());
    // A component JSON that is not one.
    let e = Component::from_json("{\"name\": 3}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("JSON"), "{e}");
    still_usable(&fx);
}

#[test]
fn wrong_column_types_are_refused() {
    let fx = open();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    for (col, v) in [
        ("owner", Value::from("ten")),
        ("qty", Value::Int(40_000)),
        ("name", Value::Int(5)),
        ("level", Value::Float(1.5)),
    ] {
        let e = r.set(col, v.clone()).unwrap_err().to_string();
        assert!(e.contains(col), "{col} = {v}: {e}");
    }
    assert!(matches!(
        r.set("_version", 3),
        Err(Error::InvalidArgument(_))
    ));
    let e = fx
        .ecs
        .range(&fx.items, &Range::between("time", "abc", 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("time"), "{e}");
    still_usable(&fx);
}

#[test]
fn nan_in_an_indexed_float_is_refused_before_anything_is_written() {
    let fx = open();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("name", "nan")
        .unwrap()
        .set("time", 1)
        .unwrap()
        .set("model", f32::NAN)
        .unwrap();
    let mut txn = fx.ecs.begin();
    let e = txn.insert(&fx.items, r.clone()).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
    // Through the raw payload too.
    let e = fx
        .ecs
        .commit(
            &[jkv_ecs::Op::Insert {
                table: fx.items.clone(),
                row: r,
            }],
            jkv::WriteOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    assert!(fx.ecs.get_by(&fx.items, "name", "nan").unwrap().is_none());
    let e = fx
        .ecs
        .range(&fx.items, &Range::between("model", f64::NAN, 1.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    still_usable(&fx);
}

#[test]
fn long_strings_are_silently_truncated() {
    let fx = open();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("name", "reinsert2").unwrap().set("time", 1).unwrap();
    let mut txn = fx.ecs.begin();
    let id = txn.insert(&fx.items, r).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs
            .get(&fx.items, id)
            .unwrap()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "reinsert"
    );
    assert_eq!(
        fx.ecs
            .get_by(&fx.items, "name", "reinsert")
            .unwrap()
            .unwrap()
            .id(),
        id
    );
    // A bound longer than the column is not truncated: it matches nothing.
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("name", "reinsert2"))
        .unwrap()
        .is_empty());
}

#[test]
fn rows_stored_under_another_schema_are_a_clear_error() {
    let fx = filled();
    // The same table read with a changed component, bypassing the meta check.
    let wider = Component::builder("pytest", "Item")
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("name", DType::Unicode(16)).unique())
        .build()
        .unwrap();
    let t = fx.ecs.maintenance().table(&wider, INSTANCE, 1).unwrap();
    let e = fx.ecs.get(&t, fx.ids[0]).unwrap_err().to_string();
    assert!(e.contains("another schema") && e.contains("bytes"), "{e}");
    // The checked handle refuses the schema outright.
    let e = fx.ecs.table(&wider, INSTANCE, 1).unwrap_err().to_string();
    assert!(e.contains("SchemaMismatch"), "{e}");
    // A row whose bytes were cut.
    fx.ecs
        .db()
        .put(row_key(&fx.items, fx.ids[1]), b"short")
        .unwrap();
    let e = fx.ecs.get(&fx.items, fx.ids[1]).unwrap_err().to_string();
    assert!(e.contains("5 bytes"), "{e}");
    let e = fx
        .ecs
        .range(&fx.items, &Range::eq("owner", 10).limit(-1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 bytes"), "{e}");
    still_usable(&fx);
}

#[test]
fn a_damaged_meta_record_is_reported_with_its_key() {
    let fx = open();
    let mut key = b"\x00Em".to_vec();
    key.push(INSTANCE.len() as u8);
    key.extend_from_slice(INSTANCE.as_bytes());
    key.push(4);
    key.extend_from_slice(b"Item");
    fx.ecs.db().put(&key, b"{not json").unwrap();
    let e = fx.ecs.maintenance().check_table(&fx.items).unwrap_err();
    assert!(matches!(e, Error::Corruption { .. }), "{e}");
    assert!(e.to_string().contains("meta record"), "{e}");
    let _ = Row::new(&fx.item);
}
