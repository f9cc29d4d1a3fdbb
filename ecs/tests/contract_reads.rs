//! The contract's behaviour cases A and B (index encoding, reads), one test
//! per case, named after the behaviour.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jkv_ecs::{sortable_bytes, DType, Range, Value};

#[test]
fn case01_numeric_encoding_vectors() {
    let e = |t, v: Value| sortable_bytes(t, &v).unwrap();
    assert_eq!(e(DType::I64, 10.into()), [0x80, 0, 0, 0, 0, 0, 0, 0x0A]);
    assert_eq!(e(DType::I64, 11.into()), [0x80, 0, 0, 0, 0, 0, 0, 0x0B]);
    assert_eq!(e(DType::I8, 0.into()), [0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(e(DType::I8, 1.into()), [0x80, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        e(DType::F32, Value::Float(123.31f32 as f64)),
        [0xC0, 0x5E, 0xD3, 0xD7, 0, 0, 0, 0]
    );
    assert_eq!(
        e(DType::F32, Value::Float(-123.31f32 as f64)),
        [0x3F, 0xA1, 0x2C, 0x28, 0xFF, 0xFF, 0xFF, 0xFF]
    );
    assert!(
        e(DType::I16, 128.into()) > e(DType::I8, (-1).into()),
        "one order across widths"
    );
    assert!(e(DType::U64, u64::MAX.into()) > e(DType::U64, 1u64.into()));
}

#[test]
fn case02_variable_length_strings_keep_prefix_order() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    for (i, name) in ["a", "a0", "a9", "ab"].iter().enumerate() {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set("name", *name)
            .unwrap()
            .set("time", 500 + i as i64)
            .unwrap();
        txn.insert(&fx.items, r).unwrap();
    }
    txn.commit().unwrap();
    let asc = fx
        .ecs
        .range(&fx.items, &Range::between("name", "a", "ab").limit(99))
        .unwrap();
    assert_eq!(strs(&asc, "name"), ["a", "a0", "a9", "ab"]);
    let desc = fx
        .ecs
        .range(
            &fx.items,
            &Range::between("name", "a", "ab").limit(99).desc(),
        )
        .unwrap();
    assert_eq!(strs(&desc, "name"), ["ab", "a9", "a0", "a"]);
}

#[test]
fn case04_get_after_insert_returns_the_row_at_version_1() {
    let fx = open();
    let mut item = fx.ecs.new_row(&fx.item).unwrap();
    item.set_id(77)
        .set("owner", 10)
        .unwrap()
        .set("name", "x")
        .unwrap()
        .set("time", 1)
        .unwrap();
    let mut rls = fx.ecs.new_row(&fx.rls).unwrap();
    rls.set_id(78).set("owner", 11).unwrap();
    let mut txn = fx.ecs.begin();
    txn.insert(&fx.items, item.clone()).unwrap();
    txn.insert(&fx.rlss, rls.clone()).unwrap();
    txn.commit().unwrap();
    let got = fx.ecs.get(&fx.items, 77).unwrap().unwrap();
    assert_eq!(got.version(), 1);
    for col in ["owner", "name", "time", "qty", "level", "model", "used"] {
        assert_eq!(got.get(col).unwrap(), item.get(col).unwrap(), "{col}");
    }
    assert_eq!(got.get_i64("qty").unwrap(), 1, "default");
    let got = fx.ecs.get(&fx.rlss, 78).unwrap().unwrap();
    assert_eq!(
        (
            got.version(),
            got.get_i64("owner").unwrap(),
            got.get_i64("friend").unwrap()
        ),
        (1, 11, 1)
    );
}

#[test]
fn case05_nothing_found_is_none_or_empty_and_unindexed_is_an_error() {
    let fx = filled();
    assert!(fx.ecs.get(&fx.items, 999).unwrap().is_none());
    let mut txn = fx.ecs.begin();
    txn.get(&fx.items, fx.ids[3]).unwrap();
    txn.delete(&fx.items, fx.ids[3]).unwrap();
    txn.commit().unwrap();
    assert!(fx.ecs.get(&fx.items, fx.ids[3]).unwrap().is_none());
    let none = fx
        .ecs
        .range(&fx.items, &Range::between("owner", 11, 11))
        .unwrap();
    assert!(none.is_empty());
    let buf = fx
        .ecs
        .range_rows(&fx.items, &Range::between("owner", 11, 11))
        .unwrap();
    assert_eq!(
        (buf.len(), buf.as_bytes().len()),
        (0, 0),
        "an empty typed result, not nothing"
    );
    let e = fx
        .ecs
        .range(&fx.items, &Range::eq("qty", 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("qty") && e.contains("index"), "{e}");
}

#[test]
fn case06_default_interval_is_closed() {
    let fx = filled();
    let r = fx
        .ecs
        .range(&fx.items, &Range::between("time", 110, 115))
        .unwrap();
    assert_eq!(ints(&r, "time"), [110, 111, 112, 113, 114, 115]);
}

#[test]
fn case07_open_and_closed_markers_work_on_an_integer_column() {
    let fx = filled();
    let t = |l: &str, r: &str| {
        ints(
            &fx.ecs
                .range(&fx.items, &Range::between("time", l, r))
                .unwrap(),
            "time",
        )
    };
    assert_eq!(t("[110", "(115"), [110, 111, 112, 113, 114]);
    assert_eq!(t("(110", "[115"), [111, 112, 113, 114, 115]);
    assert_eq!(t("(110", "(115"), [111, 112, 113, 114]);
}

#[test]
fn case08_infinite_bounds_clamp_and_the_limit_cuts() {
    let fx = filled();
    let inf = f64::INFINITY;
    let t = |r: Range| ints(&fx.ecs.range(&fx.items, &r).unwrap(), "time");
    assert_eq!(
        t(Range::between("time", -inf, 115).limit(10)),
        [110, 111, 112, 113, 114, 115]
    );
    assert_eq!(
        t(Range::between("time", 120, inf).limit(10)),
        (120..130).collect::<Vec<_>>()
    );
    assert_eq!(
        t(Range::between("time", -inf, inf).limit(100)),
        (110..135).collect::<Vec<_>>()
    );
    let ids = fx
        .ecs
        .range_ids(&fx.items, &Range::between("id", -inf, inf).limit(999))
        .unwrap();
    assert_eq!(ids, fx.ids);
}

#[test]
fn case09_float_bounds_convert_to_the_column_type() {
    let fx = filled();
    let all = fx
        .ecs
        .range(
            &fx.items,
            &Range::between("time", f64::NEG_INFINITY, f64::INFINITY).limit(99),
        )
        .unwrap();
    let models: Vec<f64> = all.iter().map(|r| r.get_f64("model").unwrap()).collect();
    let want: Vec<f64> = (0..25).map(|i| (0.1 * i as f64) as f32 as f64).collect();
    assert_eq!(models, want);
    let r = fx
        .ecs
        .range(&fx.items, &Range::between("model", 1.1, 2.3).limit(99))
        .unwrap();
    assert_eq!(
        ints(&r, "time"),
        (121..=133).collect::<Vec<_>>(),
        "both ends included as f32"
    );
    let r = fx
        .ecs
        .range(&fx.items, &Range::between("model", "(1.1", 2.3).limit(99))
        .unwrap();
    assert_eq!(
        ints(&r, "time"),
        (122..=133).collect::<Vec<_>>(),
        "Redis semantics: exclusive at f32(1.1)"
    );
}

#[test]
fn case10_string_columns_take_only_string_bounds() {
    let fx = filled();
    for r in [
        Range::between("name", f64::NEG_INFINITY, "Itm15"),
        Range::between("name", 11, 11),
    ] {
        let e = fx.ecs.range(&fx.items, &r).unwrap_err().to_string();
        assert!(e.contains("str"), "{e}");
    }
}

#[test]
fn case11_descending_order_and_reversed_bounds() {
    let fx = filled();
    let r = fx
        .ecs
        .range(&fx.items, &Range::between("time", 110, 115).desc())
        .unwrap();
    assert_eq!(ints(&r, "time"), [115, 114, 113, 112, 111, 110]);
    let e = fx
        .ecs
        .range(&fx.items, &Range::between("time", 115, 110))
        .unwrap_err()
        .to_string();
    assert!(e.contains("right") && e.contains("left"), "{e}");
}

#[test]
fn case12_equality_and_limits() {
    let fx = filled();
    let n = |limit| {
        fx.ecs
            .range(&fx.items, &Range::eq("owner", 10).limit(limit))
            .unwrap()
            .len()
    };
    assert_eq!((n(10), n(30), n(8), n(-1), n(0)), (10, 25, 8, 25, 0));
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("owner", 11))
        .unwrap()
        .is_empty());
}

/// jkv's "fixed" decision: each marker stays with the bound it is written
/// on, and `desc` only reverses the order.
#[test]
fn case13_desc_keeps_each_marker_on_its_bound() {
    let fx = filled();
    let r = fx
        .ecs
        .range(
            &fx.items,
            &Range::between("name", "[Itm10", "(Itm13").desc(),
        )
        .unwrap();
    assert_eq!(strs(&r, "name"), ["Itm12", "Itm11", "Itm10"]);
    let r = fx
        .ecs
        .range(&fx.items, &Range::between("time", "(110", "[113").desc())
        .unwrap();
    assert_eq!(ints(&r, "time"), [113, 112, 111]);
}

#[test]
fn case15_unique_string_index_and_id_range() {
    let fx = filled();
    let names = |l: &str, r: &str| {
        ints(
            &fx.ecs
                .range(&fx.items, &Range::between("name", l, r))
                .unwrap(),
            "time",
        )
    };
    assert!(names("11", "11").is_empty());
    assert_eq!(names("Itm11", "Itm11"), [111]);
    assert_eq!(names("Itm11", "Itm12"), [111, 112]);
    let last = *fx
        .ecs
        .range_ids(&fx.items, &Range::between("name", "Itm11", "Itm13"))
        .unwrap()
        .last()
        .unwrap();
    let one = fx.ecs.get_by(&fx.items, "name", "Itm13").unwrap().unwrap();
    assert_eq!(one.id(), last);
    let ids = fx
        .ecs
        .range_ids(
            &fx.items,
            &Range::between("id", fx.ids[5], fx.ids[10]).limit(999),
        )
        .unwrap();
    assert_eq!(ids, fx.ids[5..=10]);
}

/// Ties within one value come back in numeric id order (fixed-width ids),
/// also for negative ids, and reversed for `desc`.
#[test]
fn ties_come_back_in_numeric_id_order() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    for (k, id) in [5i64, -3, 1 << 40, 12].iter().enumerate() {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set_id(*id)
            .set("owner", 7)
            .unwrap()
            .set("time", k as i64)
            .unwrap()
            .set("name", format!("n{k}"))
            .unwrap();
        txn.insert(&fx.items, r).unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs.range_ids(&fx.items, &Range::eq("owner", 7)).unwrap(),
        [-3, 5, 12, 1 << 40]
    );
    assert_eq!(
        fx.ecs
            .range_ids(&fx.items, &Range::eq("owner", 7).desc())
            .unwrap(),
        [1 << 40, 12, 5, -3]
    );
}

/// A range result as one buffer holds the rows' bytes back to back, in
/// numpy's layout, in index order.
#[test]
fn range_rows_is_one_contiguous_numpy_buffer() {
    let fx = filled();
    let buf = fx
        .ecs
        .range_rows(&fx.items, &Range::between("time", 112, 114))
        .unwrap();
    assert_eq!(buf.len(), 3);
    let size = fx.item.row_size();
    assert_eq!(buf.as_bytes().len(), 3 * size);
    for (k, row) in buf.to_vec().iter().enumerate() {
        assert_eq!(row.get_i64("time").unwrap(), 112 + k as i64);
        let stored = fx.ecs.get(&fx.items, row.id()).unwrap().unwrap();
        assert_eq!(&buf.as_bytes()[k * size..(k + 1) * size], stored.as_bytes());
    }
}
