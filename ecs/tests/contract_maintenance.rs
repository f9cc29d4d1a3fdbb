//! The contract's behaviour cases E (direct_set) and F (maintenance:
//! check, create, flush, drop, rename, cluster and schema migration,
//! rebuild_index, the maintenance lock, closed handles).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use jkv::WriteOptions;
use jkv_ecs::{Component, DType, Ecs, Error, MigrationPlan, Property, Range, TableStatus, Value};

#[test]
fn case42_direct_set() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let mut ids = Vec::new();
    for _ in 0..25 {
        let mut r = fx.ecs.new_row(&fx.rls).unwrap();
        r.set("owner", 10).unwrap().set("friend", 11).unwrap();
        ids.push(txn.insert(&fx.rlss, r).unwrap());
    }
    txn.commit().unwrap();
    let id = ids[0];
    let mut mq = fx.ecs.mq().unwrap();
    mq.subscribe(&fx.rlss.row_channel(id)).unwrap();
    fx.ecs
        .direct_set(
            &fx.rlss,
            id,
            &[("friend", Value::Int(9))],
            WriteOptions::default(),
        )
        .unwrap();
    let got = fx.ecs.get(&fx.rlss, id).unwrap().unwrap();
    assert_eq!(
        (got.get_i64("friend").unwrap(), got.version()),
        (9, 1),
        "no version bump"
    );
    assert_eq!(
        mq.get_message(Duration::from_secs(2)).unwrap().len(),
        1,
        "row channel published"
    );
    let e = fx
        .ecs
        .direct_set(
            &fx.rlss,
            id,
            &[("aaa", Value::Int(11))],
            WriteOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("aaa"), "{e}");
    let e = fx
        .ecs
        .direct_set(
            &fx.rlss,
            id,
            &[("owner", Value::Int(1))],
            WriteOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("indexed"), "{e}");
    assert!(fx
        .ecs
        .direct_set(
            &fx.rlss,
            id,
            &[("id", Value::Int(1))],
            WriteOptions::default()
        )
        .is_err());
    let e = fx
        .ecs
        .direct_set(
            &fx.items,
            id,
            &[("qty", Value::Int(1))],
            WriteOptions::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("volatile"), "{e}");
    // A missing row: not found, nothing written.
    let e = fx
        .ecs
        .direct_set(
            &fx.rlss,
            424242,
            &[("friend", Value::Int(1))],
            WriteOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(fx.ecs.get(&fx.rlss, 424242).unwrap().is_none());
    assert_eq!(
        fx.ecs
            .range(&fx.rlss, &Range::eq("owner", 10).limit(-1))
            .unwrap()
            .len(),
        25
    );
}

fn changed_item(f: impl FnOnce(Vec<Property>) -> Vec<Property>) -> Arc<Component> {
    let base = vec![
        Property::new("owner", DType::I64).index(),
        Property::new("model", DType::F32).index(),
        Property::new("qty", DType::I16).default(1),
        Property::new("level", DType::I8).default(1),
        Property::new("time", DType::I64).unique(),
        Property::new("name", DType::Unicode(8)).unique(),
        Property::new("used", DType::Bool).index(),
    ];
    let mut b = Component::builder("pytest", "Item");
    for p in f(base) {
        b = b.property(p);
    }
    b.build().unwrap()
}

#[test]
fn case43_check_table_states() {
    let dir = tempfile::tempdir().unwrap();
    let ecs = Ecs::open(dir.path(), jkv::Options::default()).unwrap();
    let m = ecs.maintenance();
    let t1 = m.table(&item(), INSTANCE, 1).unwrap();
    assert_eq!(m.check_table(&t1).unwrap(), (TableStatus::NotExists, None));
    m.create_table(&t1).unwrap();
    let (status, meta) = m.check_table(&t1).unwrap();
    assert_eq!(status, TableStatus::Ok);
    let meta = meta.unwrap();
    assert_eq!(
        (meta.cluster_id, meta.version.as_str()),
        (1, item().version())
    );
    let changed = changed_item(|mut p| {
        p[2] = Property::new("qty", DType::I32).default(1);
        p
    });
    let tc = m.table(&changed, INSTANCE, 1).unwrap();
    assert_eq!(m.check_table(&tc).unwrap().0, TableStatus::SchemaMismatch);
    let t2 = m.table(&item(), INSTANCE, 2).unwrap();
    assert_eq!(m.check_table(&t2).unwrap().0, TableStatus::ClusterMismatch);
    let tc2 = m.table(&changed, INSTANCE, 2).unwrap();
    assert_eq!(
        m.check_table(&tc2).unwrap().0,
        TableStatus::ClusterMismatch,
        "cluster first"
    );
    // The checked table handle refuses the mismatching schema.
    let e = ecs.table(&changed, INSTANCE, 1).unwrap_err();
    assert!(e.to_string().contains("SchemaMismatch"), "{e}");
}

#[test]
fn case44_create_flush_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let ecs = Ecs::open(dir.path(), jkv::Options::default()).unwrap();
    let vol = Component::builder("pytest", "Vol")
        .volatile(true)
        .property(Property::new("data", DType::I64).unique())
        .build()
        .unwrap();
    let m = ecs.maintenance();
    let t = m.table(&vol, INSTANCE, 1).unwrap();
    m.create_table(&t).unwrap();
    let fill = |n: i64| {
        let mut txn = ecs.begin();
        for i in 0..n {
            let mut r = ecs.new_row(&vol).unwrap();
            r.set("data", i).unwrap();
            txn.insert(&t, r).unwrap();
        }
        txn.commit().unwrap();
    };
    fill(25);
    assert!(m.create_table(&t).unwrap_err().is_race());
    assert_eq!(m.flush(&t, false).unwrap(), 25);
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert!(ecs.range(&t, &all).unwrap().is_empty());
    assert!(
        ecs.range(&t, &Range::between("data", 0, 100))
            .unwrap()
            .is_empty(),
        "index emptied too"
    );
    fill(3);
    assert_eq!(m.check_table(&t).unwrap().0, TableStatus::Ok);

    let items = m.table(&item(), INSTANCE, 1).unwrap();
    m.create_table(&items).unwrap();
    let mut txn = ecs.begin();
    for i in 0..4 {
        txn.insert(&items, filled_row(&item(), i, 100 + i)).unwrap();
    }
    txn.commit().unwrap();
    assert!(matches!(
        m.flush(&items, false),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(m.flush(&items, true).unwrap(), 4);
    assert!(ecs.range(&items, &all).unwrap().is_empty());
    assert_eq!(m.drop_table(&t).unwrap(), 3, "drop counts rows");
    assert_eq!(m.check_table(&t).unwrap().0, TableStatus::NotExists);
}

#[test]
fn case45_cluster_migration_moves_every_row_and_index() {
    let fx = filled();
    let m = fx.ecs.maintenance();
    let t2 = m.table(&fx.item, INSTANCE, 2).unwrap();
    assert!(
        m.migrate_cluster(&fx.items).unwrap_err().is_race(),
        "status is ok, not cluster_mismatch"
    );
    assert_eq!(m.migrate_cluster(&t2).unwrap(), 25);
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert_eq!(fx.ecs.range_ids(&t2, &all).unwrap(), fx.ids);
    assert_eq!(
        ints(
            &fx.ecs
                .range(&t2, &Range::between("time", 110, 112))
                .unwrap(),
            "time"
        ),
        [110, 111, 112]
    );
    assert_eq!(
        fx.ecs
            .get_by(&t2, "name", "Itm20")
            .unwrap()
            .unwrap()
            .get_i64("time")
            .unwrap(),
        120
    );
    assert!(
        fx.ecs.range(&fx.items, &all).unwrap().is_empty(),
        "cluster 1 is empty"
    );
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("owner", 10))
        .unwrap()
        .is_empty());
    assert_eq!(m.check_table(&t2).unwrap().1.unwrap().cluster_id, 2);
}

fn migrated_item() -> Arc<Component> {
    changed_item(|p| {
        let mut out: Vec<Property> = p
            .into_iter()
            .filter(|p| p.name != "qty")
            .map(|p| match p.name.as_str() {
                "model" => Property::new("model", DType::I32).index(),
                "name" => Property::new("name", DType::Unicode(4)).index(),
                _ => p,
            })
            .collect();
        out.push(Property::new("qty_new", DType::I16).default(111).index());
        out
    })
}

#[test]
fn case47_schema_migration_casts_truncates_and_fills_defaults() {
    let fx = filled();
    let m = fx.ecs.maintenance();
    let t2_old = m.table(&fx.item, INSTANCE, 2).unwrap();
    m.migrate_cluster(&t2_old).unwrap();
    let new = migrated_item();
    let t2 = m.table(&new, INSTANCE, 2).unwrap();
    assert_eq!(m.check_table(&t2).unwrap().0, TableStatus::SchemaMismatch);
    assert!(matches!(
        m.plan_migration(&t2).unwrap(),
        MigrationPlan::Unsafe(_)
    ));
    assert!(m.migrate_schema(&t2, true).unwrap());
    assert_eq!(m.check_table(&t2).unwrap().0, TableStatus::Ok);
    let r = fx.ecs.get_by(&t2, "time", 111).unwrap().unwrap();
    assert_eq!(r.get_str("name").unwrap(), "Itm1");
    assert_eq!(r.get_i64("qty_new").unwrap(), 111);
    assert_eq!(r.get_i64("model").unwrap(), 0, "f32 0.1 cast to i32");
    assert_eq!(
        fx.ecs
            .range(&t2, &Range::between("qty_new", 111, 112).limit(99))
            .unwrap()
            .len(),
        25
    );
    assert_eq!(
        fx.ecs
            .get_by(&t2, "name", "Itm3")
            .unwrap()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "Itm3"
    );
    let r = fx.ecs.range(&t2, &Range::eq("name", "Itm3")).unwrap();
    assert_eq!(ints(&r, "time"), [130, 131, 132, 133, 134]);
    assert_eq!(r[0].version(), 1, "migration keeps versions");
}

#[test]
fn case48_unsafe_migrations_are_refused() {
    let fx = filled();
    let m = fx.ecs.maintenance();
    let dropped = changed_item(|p| p.into_iter().filter(|p| p.name != "qty").collect());
    let t = m.table(&dropped, INSTANCE, 1).unwrap();
    assert!(
        !m.migrate_schema(&t, false).unwrap(),
        "refused without force"
    );
    assert_eq!(
        fx.ecs
            .get(&fx.items, fx.ids[0])
            .unwrap()
            .unwrap()
            .get_i64("qty")
            .unwrap(),
        999
    );
    assert_eq!(
        m.check_table(&fx.items).unwrap().0,
        TableStatus::Ok,
        "nothing changed"
    );

    let narrow_unique = changed_item(|p| {
        p.into_iter()
            .filter(|p| p.name != "qty")
            .map(|p| {
                if p.name == "name" {
                    Property::new("name", DType::Unicode(4)).unique()
                } else {
                    p
                }
            })
            .collect()
    });
    let t = m.table(&narrow_unique, INSTANCE, 1).unwrap();
    let e = m.migrate_schema(&t, true).unwrap_err().to_string();
    assert!(e.contains("unique"), "{e}");
    assert_eq!(
        m.check_table(&fx.items).unwrap().0,
        TableStatus::Ok,
        "the old table is whole"
    );
    assert_eq!(
        fx.ecs
            .get_by(&fx.items, "name", "Itm15")
            .unwrap()
            .unwrap()
            .get_i64("time")
            .unwrap(),
        115
    );

    let with_tag = changed_item(|mut p| {
        p.push(Property::new("tag", DType::I32).unique());
        p
    });
    let t = m.table(&with_tag, INSTANCE, 1).unwrap();
    let e = m.migrate_schema(&t, true).unwrap_err().to_string();
    assert!(e.contains("unique"), "{e}");
    assert_eq!(
        fx.ecs
            .range(&fx.items, &Range::eq("owner", 10).limit(-1))
            .unwrap()
            .len(),
        25
    );
}

#[test]
fn rebuild_index_restores_entries_and_refuses_unique_duplicates() {
    let fx = filled();
    let m = fx.ecs.maintenance();
    assert_eq!(m.rebuild_index(&fx.items).unwrap(), 25);
    assert_eq!(
        fx.ecs
            .range(&fx.items, &Range::eq("owner", 10).limit(-1))
            .unwrap()
            .len(),
        25
    );
    assert_eq!(
        ints(
            &fx.ecs
                .range(&fx.items, &Range::between("time", 110, 111))
                .unwrap(),
            "time"
        ),
        [110, 111]
    );
    // Break uniqueness underneath (a raw upsert, as migrations do), then rebuild.
    let mut dup = fx.ecs.get(&fx.items, fx.ids[1]).unwrap().unwrap();
    dup.set("time", 110).unwrap();
    fx.ecs
        .db()
        .put(row_key(&fx.items, fx.ids[1]), dup.as_bytes())
        .unwrap();
    let e = m.rebuild_index(&fx.items).unwrap_err().to_string();
    assert!(e.contains("unique"), "{e}");
    assert_eq!(
        fx.ecs
            .range(&fx.items, &Range::eq("time", 111))
            .unwrap()
            .len(),
        1,
        "old index kept"
    );
    let empty = m.table(&fx.item, INSTANCE, 9).unwrap();
    assert_eq!(m.rebuild_index(&empty).unwrap(), 0);
}

#[test]
fn case49_the_maintenance_lock_is_exclusive() {
    let fx = open();
    let h1 = fx.ecs.maintenance();
    let h2 = fx.ecs.maintenance();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let g = h1.lock();
        s.spawn(|| {
            let start = Instant::now();
            let _g2 = h2.lock();
            tx.send(start.elapsed()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "H2 still waits"
        );
        drop(g);
        let waited = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
    });
}

#[test]
fn case50_durability_and_a_closed_handle() {
    let dir = tempfile::tempdir().unwrap();
    let item = item();
    {
        let ecs = Ecs::open(dir.path(), jkv::Options::default()).unwrap();
        let t = ecs.table(&item, INSTANCE, 1).unwrap();
        let mut txn = ecs.begin();
        let mut ids = Vec::new();
        for i in 0..25 {
            let id = ecs.next_id().unwrap();
            ids.push(id);
            txn.insert(&t, filled_row(&item, i, id)).unwrap();
        }
        txn.commit().unwrap();
        let mut txn = ecs.begin();
        txn.get(&t, ids[0]).unwrap();
        txn.delete(&t, ids[0]).unwrap();
        txn.commit().unwrap();
        let mut mq = ecs.mq().unwrap();
        ecs.close().unwrap();
        ecs.close().unwrap();
        assert!(matches!(ecs.get(&t, ids[1]), Err(Error::Closed)));
        assert!(matches!(
            ecs.maintenance().check_table(&t),
            Err(Error::Closed)
        ));
        assert!(matches!(mq.subscribe("x"), Err(Error::Closed)));
        assert!(
            matches!(ecs.begin().commit(), Ok(())),
            "a transaction without writes commits nothing"
        );
        let mut txn = ecs.begin();
        assert!(matches!(txn.get(&t, ids[1]), Err(Error::Closed)));
    }
    let ecs = Ecs::open(dir.path(), jkv::Options::default()).unwrap();
    let t = ecs.table(&item, INSTANCE, 1).unwrap();
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert_eq!(ecs.range(&t, &all).unwrap().len(), 24);
}
