//! The contract's behaviour cases C (commit semantics), through the commit
//! payload ([B] cases) or transactions ([S] cases).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use jkv::WriteOptions;
use jkv_ecs::{Error, Op, RaceKind, Range};

fn race(r: jkv_ecs::Result<()>) -> RaceKind {
    match r {
        Err(e) => e
            .race_kind()
            .unwrap_or_else(|| panic!("expected a race, got {e}")),
        Ok(()) => panic!("expected a race, the commit succeeded"),
    }
}

#[test]
fn case17_multi_table_insert_then_update_and_delete() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let mut rls_ids = Vec::new();
    for i in 0..10 {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set("owner", i)
            .unwrap()
            .set("time", 10 + i)
            .unwrap()
            .set("name", format!("Item{}", 100 + i))
            .unwrap();
        let id = txn.insert(&fx.items, r).unwrap();
        if i == 5 {
            let mut r = txn.get(&fx.items, id).unwrap().unwrap();
            r.set("name", "mid").unwrap();
            txn.update(&fx.items, r).unwrap();
        }
        let mut r = fx.ecs.new_row(&fx.rls).unwrap();
        r.set("owner", i).unwrap();
        rls_ids.push(txn.insert(&fx.rlss, r).unwrap());
    }
    txn.commit().unwrap();
    let names = || {
        strs(
            &fx.ecs
                .range(&fx.items, &Range::between("time", 13, 16))
                .unwrap(),
            "name",
        )
    };
    let rls_owners = || {
        ints(
            &fx.ecs
                .range(&fx.rlss, &Range::between("owner", 9, 15))
                .unwrap(),
            "owner",
        )
    };
    assert_eq!(names(), ["Item103", "Item104", "mid", "Item106"]);
    assert_eq!(rls_owners(), [9]);

    let mut txn = fx.ecs.begin();
    let mut r = txn.get_by(&fx.items, "time", 13).unwrap().unwrap();
    r.set("name", "updated").unwrap();
    txn.update(&fx.items, r.clone()).unwrap();
    let mut o = txn.get(&fx.rlss, rls_ids[9]).unwrap().unwrap();
    o.set("owner", 11).unwrap();
    txn.update(&fx.rlss, o).unwrap();
    txn.commit().unwrap();
    assert_eq!(names(), ["updated", "Item104", "mid", "Item106"]);
    assert_eq!(rls_owners(), [11]);

    let mut txn = fx.ecs.begin();
    txn.get(&fx.items, r.id()).unwrap();
    txn.delete(&fx.items, r.id()).unwrap();
    txn.get(&fx.rlss, rls_ids[9]).unwrap();
    txn.delete(&fx.rlss, rls_ids[9]).unwrap();
    txn.commit().unwrap();
    assert_eq!(names(), ["Item104", "mid", "Item106"]);
    assert!(rls_owners().is_empty());
}

#[test]
fn case18_an_update_moves_index_entries() {
    let fx = filled();
    let first = fx
        .ecs
        .range(&fx.items, &Range::eq("owner", 10))
        .unwrap()
        .remove(0);
    assert_eq!(first.get_str("name").unwrap(), "Itm10");
    let mut txn = fx.ecs.begin();
    let mut r = txn.get(&fx.items, first.id()).unwrap().unwrap();
    r.set("owner", 11).unwrap().set("name", "updated").unwrap();
    txn.update(&fx.items, r).unwrap();
    txn.commit().unwrap();
    let moved = fx.ecs.range(&fx.items, &Range::eq("owner", 11)).unwrap();
    assert_eq!(strs(&moved, "name"), ["updated"]);
    assert_eq!(
        fx.ecs
            .range(&fx.items, &Range::eq("owner", 10).limit(30))
            .unwrap()
            .len(),
        24
    );
    assert!(fx
        .ecs
        .get_by(&fx.items, "name", "updated")
        .unwrap()
        .is_some());
    assert!(fx.ecs.get_by(&fx.items, "name", "Itm10").unwrap().is_none());
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert_eq!(fx.ecs.range(&fx.items, &all).unwrap().len(), 25);
}

#[test]
fn case19_an_update_writes_only_changed_fields_and_bumps_the_version() {
    let fx = filled();
    let id = fx.ids[0];
    let v0 = fx.ecs.get(&fx.items, id).unwrap().unwrap();
    let mut new = v0.clone();
    new.set("qty", 5).unwrap();
    fx.ecs
        .commit(
            &[Op::Update {
                table: fx.items.clone(),
                old: v0.clone(),
                new,
            }],
            WriteOptions::default(),
        )
        .unwrap();
    let v1 = fx.ecs.get(&fx.items, id).unwrap().unwrap();
    assert_eq!(
        (
            v1.version(),
            v1.get_i64("qty").unwrap(),
            v1.get_i64("time").unwrap()
        ),
        (v0.version() + 1, 5, 110)
    );
    let mut new = v1.clone();
    new.set("time", 999).unwrap();
    fx.ecs
        .commit(
            &[Op::Update {
                table: fx.items.clone(),
                old: v1.clone(),
                new,
            }],
            WriteOptions::default(),
        )
        .unwrap();
    let v2 = fx.ecs.get(&fx.items, id).unwrap().unwrap();
    assert_eq!(
        (v2.version(), v2.get_i64("qty").unwrap()),
        (v0.version() + 2, 5)
    );
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("time", 110))
        .unwrap()
        .is_empty());
    assert_eq!(
        fx.ecs
            .range_ids(&fx.items, &Range::eq("time", 999))
            .unwrap(),
        [id]
    );
    // An update whose change set is empty is not sent: the version stays.
    let mut txn = fx.ecs.begin();
    let r = txn.get(&fx.items, id).unwrap().unwrap();
    assert!(matches!(
        txn.update(&fx.items, r),
        Err(Error::InvalidArgument(_))
    ));
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs.get(&fx.items, id).unwrap().unwrap().version(),
        v2.version()
    );
}

#[test]
fn case20_insert_then_update_in_one_transaction() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("name", "first").unwrap().set("time", 1).unwrap();
    let id = txn.insert(&fx.items, r).unwrap();
    let mut r = txn.get(&fx.items, id).unwrap().unwrap();
    r.set("name", "second").unwrap();
    txn.update(&fx.items, r).unwrap();
    txn.commit().unwrap();
    let got = fx.ecs.get(&fx.items, id).unwrap().unwrap();
    assert_eq!(
        (got.get_str("name").unwrap(), got.version()),
        ("second".to_string(), 1)
    );
    assert!(fx.ecs.get_by(&fx.items, "name", "first").unwrap().is_none());
    assert_eq!(
        fx.ecs
            .range_ids(&fx.items, &Range::eq("name", "second"))
            .unwrap(),
        [id]
    );
}

#[test]
fn case21_delete_and_batch_delete() {
    let fx = filled();
    let mut txn = fx.ecs.begin();
    for &id in &fx.ids[4..24] {
        txn.get(&fx.items, id).unwrap();
        txn.delete(&fx.items, id).unwrap();
    }
    txn.commit().unwrap();
    let ids = fx
        .ecs
        .range_ids(&fx.items, &Range::between("id", fx.ids[0], fx.ids[24]))
        .unwrap();
    assert_eq!(ids, [&fx.ids[0..4], &fx.ids[24..]].concat());

    let fx = filled();
    let mut txn = fx.ecs.begin();
    for &id in [fx.ids[4], fx.ids[6]].iter() {
        txn.get(&fx.items, id).unwrap();
        txn.delete(&fx.items, id).unwrap();
    }
    txn.commit().unwrap();
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert_eq!(fx.ecs.range(&fx.items, &all).unwrap().len(), 23);
    assert!(fx.ecs.get_by(&fx.items, "name", "Itm14").unwrap().is_none());
    assert!(fx.ecs.get_by(&fx.items, "name", "Itm16").unwrap().is_none());
    assert_eq!(
        fx.ecs
            .range(&fx.items, &Range::between("time", 114, 116))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn case22_version_conflicts_fail_the_later_commit() {
    let fx = filled();
    let (upd, del) = (fx.ids[0], fx.ids[1]);
    // (a) both read, both update; T2 first.
    let mut t1 = fx.ecs.begin();
    let mut t2 = fx.ecs.begin();
    let mut r1 = t1.get(&fx.items, upd).unwrap().unwrap();
    let mut r2 = t2.get(&fx.items, upd).unwrap().unwrap();
    r1.set("owner", 11).unwrap();
    r2.set("owner", 11).unwrap();
    t1.update(&fx.items, r1).unwrap();
    t2.update(&fx.items, r2).unwrap();
    t2.commit().unwrap();
    assert_eq!(race(t1.commit()), RaceKind::Version);
    assert_eq!(
        fx.ecs
            .get(&fx.items, upd)
            .unwrap()
            .unwrap()
            .get_i64("owner")
            .unwrap(),
        11
    );
    // (b) T1 reads, T2 updates, T1 deletes.
    let mut t1 = fx.ecs.begin();
    t1.get(&fx.items, del).unwrap();
    let mut t2 = fx.ecs.begin();
    let mut r = t2.get(&fx.items, del).unwrap().unwrap();
    r.set("qty", 7).unwrap();
    t2.update(&fx.items, r).unwrap();
    t2.commit().unwrap();
    t1.delete(&fx.items, del).unwrap();
    let e = t1.commit().unwrap_err();
    assert!(e.to_string().contains("Version"), "{e}");
    assert_eq!(
        fx.ecs
            .get(&fx.items, del)
            .unwrap()
            .unwrap()
            .get_i64("qty")
            .unwrap(),
        7
    );
}

#[test]
fn case23_update_or_delete_of_a_missing_row_is_a_version_race() {
    let fx = filled();
    let id = fx.ids[2];
    let old = fx.ecs.get(&fx.items, id).unwrap().unwrap();
    fx.ecs
        .commit(
            &[Op::Delete {
                table: fx.items.clone(),
                old: old.clone(),
            }],
            WriteOptions::default(),
        )
        .unwrap();
    let mut new = old.clone();
    new.set("qty", 1).unwrap();
    let upd = fx.ecs.commit(
        &[Op::Update {
            table: fx.items.clone(),
            old: old.clone(),
            new,
        }],
        WriteOptions::default(),
    );
    assert_eq!(race(upd), RaceKind::Version);
    let del = fx.ecs.commit(
        &[Op::Delete {
            table: fx.items.clone(),
            old,
        }],
        WriteOptions::default(),
    );
    assert_eq!(race(del), RaceKind::Version);
    assert!(fx.ecs.get(&fx.items, id).unwrap().is_none());
}

#[test]
fn case25_read_only_and_disjoint_transactions_never_conflict() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set("owner", 65535)
            .unwrap()
            .set("time", i)
            .unwrap()
            .set("name", format!("r{i}"))
            .unwrap();
        ids.push(txn.insert(&fx.items, r).unwrap());
    }
    txn.commit().unwrap();
    let mut t1 = fx.ecs.begin();
    assert_eq!(
        t1.range(&fx.items, &Range::eq("owner", 65535))
            .unwrap()
            .len(),
        3
    );
    let mut t2 = fx.ecs.begin();
    let mut r = t2.get(&fx.items, ids[0]).unwrap().unwrap();
    r.set("qty", 3).unwrap();
    t2.update(&fx.items, r).unwrap();
    t2.commit().unwrap();
    t1.commit().unwrap();

    let mut t1 = fx.ecs.begin();
    let mut t2 = fx.ecs.begin();
    let mut a = t1.get(&fx.items, ids[1]).unwrap().unwrap();
    let mut b = t2.get(&fx.items, ids[2]).unwrap().unwrap();
    a.set("qty", 4).unwrap();
    b.set("qty", 5).unwrap();
    t1.update(&fx.items, a).unwrap();
    t2.update(&fx.items, b).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
}

#[test]
fn case26_insert_collisions_at_commit() {
    let fx = open();
    let row = |name: &str, time: i64| {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set("name", name).unwrap().set("time", time).unwrap();
        r
    };
    let mut t1 = fx.ecs.begin();
    let mut t2 = fx.ecs.begin();
    t1.insert(&fx.items, row("222222", 222222)).unwrap();
    t2.insert(&fx.items, row("222222", 222222)).unwrap();
    t1.commit().unwrap();
    assert_eq!(race(t2.commit()), RaceKind::Unique);

    let existing = fx.ecs.get_by(&fx.items, "time", 222222).unwrap().unwrap();
    let mut dup = row("other", 1);
    dup.set_id(existing.id());
    let r = fx.ecs.commit(
        &[Op::Insert {
            table: fx.items.clone(),
            row: dup,
        }],
        WriteOptions::default(),
    );
    assert_eq!(race(r), RaceKind::Exists);

    let mut t1 = fx.ecs.begin();
    let mut t2 = fx.ecs.begin();
    t1.insert(&fx.items, row("111111", 111111)).unwrap();
    t2.insert(&fx.items, row("111112", 111112)).unwrap();
    t1.commit().unwrap();
    t2.commit().unwrap();
}

#[test]
fn case28_an_empty_commit_is_refused() {
    let fx = filled();
    let e = fx.ecs.commit(&[], WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no dirty data"), "{e}");
    let reads = [Op::Read {
        table: fx.items.clone(),
        id: fx.ids[0],
        version: 1,
    }];
    assert!(fx
        .ecs
        .commit(&reads, WriteOptions::default())
        .unwrap_err()
        .to_string()
        .contains("no dirty data"));
    fx.ecs.begin().commit().unwrap();
}

/// One commit with a valid insert, a valid update and a stale update:
/// nothing of it lands and nothing is published.
#[test]
fn case30_all_or_nothing() {
    let fx = filled();
    let mut mq = fx.ecs.mq().unwrap();
    for &id in &fx.ids {
        mq.subscribe(&fx.items.row_channel(id)).unwrap();
    }
    for col in ["id", "owner", "model", "time", "name", "used"] {
        mq.subscribe(&fx.items.index_channel(col)).unwrap();
    }
    let before = fx
        .ecs
        .range_rows(
            &fx.items,
            &Range::between("time", f64::NEG_INFINITY, f64::INFINITY).limit(-1),
        )
        .unwrap();
    let mut n = fx.ecs.new_row(&fx.item).unwrap();
    n.set_id(fx.ecs.next_id().unwrap())
        .set("name", "new")
        .unwrap()
        .set("time", 9999)
        .unwrap();
    let a = fx.ecs.get(&fx.items, fx.ids[0]).unwrap().unwrap();
    let mut a2 = a.clone();
    a2.set("owner", 1).unwrap();
    let b = fx.ecs.get(&fx.items, fx.ids[1]).unwrap().unwrap();
    let stale = with_version(&b, b.version() + 5);
    let mut b2 = b.clone();
    b2.set("owner", 2).unwrap();
    let ops = [
        Op::Insert {
            table: fx.items.clone(),
            row: n.clone(),
        },
        Op::Update {
            table: fx.items.clone(),
            old: a.clone(),
            new: a2,
        },
        Op::Update {
            table: fx.items.clone(),
            old: stale,
            new: b2,
        },
    ];
    assert_eq!(
        race(fx.ecs.commit(&ops, WriteOptions::default())),
        RaceKind::Version
    );
    assert!(fx.ecs.get(&fx.items, n.id()).unwrap().is_none());
    assert!(fx.ecs.get_by(&fx.items, "name", "new").unwrap().is_none());
    assert_eq!(fx.ecs.get(&fx.items, fx.ids[0]).unwrap().unwrap(), a);
    let after = fx
        .ecs
        .range_rows(
            &fx.items,
            &Range::between("time", f64::NEG_INFINITY, f64::INFINITY).limit(-1),
        )
        .unwrap();
    assert_eq!(before, after);
    for col in ["owner", "model", "name", "used"] {
        let r = Range::between(
            col,
            if col == "name" {
                "".into()
            } else {
                jkv_ecs::Value::Float(f64::NEG_INFINITY)
            },
            if col == "name" {
                "\u{10FFFF}".into()
            } else {
                jkv_ecs::Value::Float(f64::INFINITY)
            },
        )
        .limit(-1);
        assert_eq!(
            fx.ecs.range_ids(&fx.items, &r).unwrap().len(),
            25,
            "index {col} unchanged"
        );
    }
    assert!(
        mq.get_message(Duration::from_millis(300))
            .unwrap()
            .is_empty(),
        "no notification"
    );
}

/// `_version` past i32::MAX wraps to 1 (never 0), and commits still check it.
#[test]
fn version_wraps_past_i32_max_to_one() {
    let fx = open();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set_id(1)
        .set("time", 1)
        .unwrap()
        .set("name", "w")
        .unwrap();
    fx.ecs
        .commit(
            &[Op::Insert {
                table: fx.items.clone(),
                row: r,
            }],
            WriteOptions::default(),
        )
        .unwrap();
    // Drive the stored version to i32::MAX through the engine directly.
    let stored = with_version(&fx.ecs.get(&fx.items, 1).unwrap().unwrap(), i32::MAX);
    let key = row_key(&fx.items, 1);
    fx.ecs.db().put(key, stored.as_bytes()).unwrap();
    let mut new = stored.clone();
    new.set("qty", 2).unwrap();
    fx.ecs
        .commit(
            &[Op::Update {
                table: fx.items.clone(),
                old: stored,
                new,
            }],
            WriteOptions::default(),
        )
        .unwrap();
    assert_eq!(fx.ecs.get(&fx.items, 1).unwrap().unwrap().version(), 1);
}
