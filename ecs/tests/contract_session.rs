//! The contract's behaviour cases D (the session layer: identity map,
//! unique pre-checks, upsert, retry, update and delete rules).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jkv_ecs::{Error, Range, Row, RowState};

fn uv_field(e: Error) -> String {
    match e {
        Error::UniqueViolation { field, .. } => field,
        other => panic!("expected a UniqueViolation, got {other}"),
    }
}

fn row(fx: &Fx, name: &str, time: i64) -> Row {
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("name", name).unwrap().set("time", time).unwrap();
    r
}

#[test]
fn case32_local_unique_duplicates_fail_at_call_time() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    txn.insert(&fx.items, row(&fx, "Item1", 1)).unwrap();
    let second = txn.insert(&fx.items, row(&fx, "Item2", 2)).unwrap();
    let mut r = txn.get(&fx.items, second).unwrap().unwrap();
    r.set("time", 1).unwrap();
    assert_eq!(uv_field(txn.update(&fx.items, r).unwrap_err()), "time");
    assert_eq!(
        uv_field(txn.insert(&fx.items, row(&fx, "Item1", 9)).unwrap_err()),
        "name"
    );
    assert_eq!(
        uv_field(txn.insert(&fx.items, row(&fx, "Item9", 1)).unwrap_err()),
        "time"
    );
    drop(txn);

    let r = fx.ecs.retry(3, |txn| {
        txn.insert(&fx.items, row(&fx, "a", 1))?;
        txn.insert(&fx.items, row(&fx, "b", 2))?;
        txn.insert(&fx.items, row(&fx, "c", 2))?;
        Ok(())
    });
    assert_eq!(uv_field(r.unwrap_err()), "time");
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert!(
        fx.ecs.range(&fx.items, &all).unwrap().is_empty(),
        "nothing committed"
    );
}

#[test]
fn case33_a_committed_unique_value_is_a_deterministic_violation() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    txn.insert(&fx.items, row(&fx, "Item1", 1)).unwrap();
    txn.insert(&fx.items, row(&fx, "Item2", 2)).unwrap();
    txn.commit().unwrap();
    let mut txn = fx.ecs.begin();
    assert_eq!(
        uv_field(txn.insert(&fx.items, row(&fx, "Item2", 5)).unwrap_err()),
        "name"
    );
    assert_eq!(
        uv_field(txn.insert(&fx.items, row(&fx, "Item5", 2)).unwrap_err()),
        "time"
    );
    let mut r = txn.get_by(&fx.items, "name", "Item2").unwrap().unwrap();
    r.set("time", 1).unwrap();
    assert_eq!(uv_field(txn.update(&fx.items, r).unwrap_err()), "time");
}

#[test]
fn case34_a_negative_observation_turns_the_clash_into_a_race() {
    let fx = open();
    let mut t1 = fx.ecs.begin();
    assert!(t1.get_by(&fx.items, "name", "zrc").unwrap().is_none());
    let mut t2 = fx.ecs.begin();
    t2.insert(&fx.items, row(&fx, "zrc", 1)).unwrap();
    t2.commit().unwrap();
    let e = t1.insert(&fx.items, row(&fx, "zrc", 2)).unwrap_err();
    assert!(e.is_race(), "{e}");
}

#[test]
fn case35_upsert() {
    let fx = open();
    let set_time = |t: i64| move |r: &mut Row| r.set("time", t).map(|_| ());
    let mut txn = fx.ecs.begin();
    txn.upsert(&fx.items, "name", "item1", set_time(1)).unwrap();
    txn.upsert(&fx.items, "name", "items4", set_time(4))
        .unwrap();
    txn.commit().unwrap();
    let mut txn = fx.ecs.begin();
    let a = txn.upsert(&fx.items, "name", "item1", |_| Ok(())).unwrap();
    let b = txn.upsert(&fx.items, "name", "items4", |_| Ok(())).unwrap();
    assert_eq!(
        (a.get_i64("time").unwrap(), b.get_i64("time").unwrap()),
        (1, 4)
    );
    txn.commit().unwrap();

    let mut txn = fx.ecs.begin();
    let first = txn
        .upsert(&fx.items, "name", "itm1", set_time(32345))
        .unwrap();
    let second = txn
        .upsert(&fx.items, "name", "itm1", set_time(32346))
        .unwrap();
    assert_eq!(first.id(), second.id());
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs
            .get_by(&fx.items, "name", "itm1")
            .unwrap()
            .unwrap()
            .get_i64("time")
            .unwrap(),
        32346
    );

    let mut txn = fx.ecs.begin();
    let id = txn.insert(&fx.items, row(&fx, "ins", 77)).unwrap();
    let got = txn.upsert(&fx.items, "name", "ins", set_time(78)).unwrap();
    assert_eq!(got.id(), id);
    assert_eq!(txn.state(&fx.items, id), Some(RowState::Insert));
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs
            .get(&fx.items, id)
            .unwrap()
            .unwrap()
            .get_i64("time")
            .unwrap(),
        78
    );

    let mut txn = fx.ecs.begin();
    assert!(matches!(
        txn.upsert(&fx.items, "owner", 1, |_| Ok(())),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn case35_upsert_finds_a_default_valued_unique_row() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set("time", 5).unwrap();
    let id = txn.insert(&fx.items, r).unwrap();
    txn.commit().unwrap();
    let mut txn = fx.ecs.begin();
    let found = txn.upsert(&fx.items, "name", "", |_| Ok(())).unwrap();
    assert_eq!(found.id(), id);
}

#[test]
fn case37_retry_converges() {
    let fx = open();
    let attempts = AtomicU32::new(0);
    std::thread::scope(|s| {
        for k in 1..=4u64 {
            let (fx, attempts) = (&fx, &attempts);
            s.spawn(move || {
                fx.ecs
                    .retry(50, |txn| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let id = fx.ecs.next_id()?;
                        txn.upsert(&fx.items, "name", "a", |r| {
                            let q = r.get_i64("qty")?;
                            r.set("qty", q + 1)?;
                            r.set("time", id)?;
                            Ok(())
                        })?;
                        std::thread::sleep(Duration::from_millis(100 * k));
                        Ok(())
                    })
                    .unwrap();
            });
        }
    });
    let a = fx.ecs.get_by(&fx.items, "name", "a").unwrap().unwrap();
    assert_eq!(a.get_i64("qty").unwrap(), 5, "default 1 plus 4 increments");
    assert!(attempts.load(Ordering::Relaxed) > 4);
}

#[test]
fn case38_delete_rules() {
    let fx = filled();
    let mut txn = fx.ecs.begin();
    assert!(
        matches!(txn.delete(&fx.items, fx.ids[0]), Err(Error::NotFound(_))),
        "unread row"
    );
    txn.get(&fx.items, fx.ids[0]).unwrap();
    txn.delete(&fx.items, fx.ids[0]).unwrap();
    let e = txn.delete(&fx.items, fx.ids[0]).unwrap_err();
    assert!(
        matches!(e, Error::NotFound(ref m) if m.contains("not existing")),
        "{e}"
    );
    let mut txn = fx.ecs.begin();
    let r = txn.get(&fx.items, fx.ids[1]).unwrap().unwrap();
    txn.delete(&fx.items, fx.ids[1]).unwrap();
    let mut r2 = r.clone();
    r2.set("qty", 3).unwrap();
    assert!(matches!(txn.update(&fx.items, r2), Err(Error::NotFound(_))));
    let mut txn = fx.ecs.begin();
    let mut r = txn.get(&fx.items, fx.ids[2]).unwrap().unwrap();
    r.set("time", 4242).unwrap();
    txn.update(&fx.items, r).unwrap();
    txn.delete(&fx.items, fx.ids[2]).unwrap();
    txn.commit().unwrap();
    assert!(fx.ecs.get(&fx.items, fx.ids[2]).unwrap().is_none());
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("time", 4242))
        .unwrap()
        .is_empty());
    assert!(fx
        .ecs
        .range(&fx.items, &Range::eq("time", 112))
        .unwrap()
        .is_empty());
}

#[test]
fn case39_update_rules() {
    let fx = filled();
    let mut txn = fx.ecs.begin();
    let r = txn.get(&fx.items, fx.ids[0]).unwrap().unwrap();
    assert!(
        matches!(
            txn.update(&fx.items, r.clone()),
            Err(Error::InvalidArgument(_))
        ),
        "no change"
    );
    let bumped = with_version(&r, r.version() + 1);
    assert!(
        matches!(
            txn.update(&fx.items, bumped),
            Err(Error::InvalidArgument(_))
        ),
        "_version changed"
    );
    let mut never_read = fx.ecs.get(&fx.items, fx.ids[1]).unwrap().unwrap();
    never_read.set("qty", 1).unwrap();
    assert!(matches!(
        txn.update(&fx.items, never_read),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn case40_visibility_inside_a_transaction() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let ids: Vec<i64> = (1..=3)
        .map(|t| {
            txn.insert(&fx.items, row(&fx, &format!("v{t}"), t))
                .unwrap()
        })
        .collect();
    assert_eq!(
        txn.get(&fx.items, ids[2])
            .unwrap()
            .unwrap()
            .get_i64("time")
            .unwrap(),
        3
    );
    let mut r = txn.get(&fx.items, ids[2]).unwrap().unwrap();
    r.set("qty", 2).unwrap();
    txn.update(&fx.items, r).unwrap();
    assert_eq!(
        txn.get(&fx.items, ids[2])
            .unwrap()
            .unwrap()
            .get_i64("qty")
            .unwrap(),
        2
    );
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert!(
        txn.range(&fx.items, &all).unwrap().is_empty(),
        "range reads committed entries only"
    );
    txn.commit().unwrap();

    let mut txn = fx.ecs.begin();
    txn.get(&fx.items, ids[0]).unwrap();
    txn.delete(&fx.items, ids[0]).unwrap();
    let seen: Vec<i64> = txn
        .range(&fx.items, &all)
        .unwrap()
        .iter()
        .map(|r| r.id())
        .collect();
    assert_eq!(seen, ids[1..]);
    assert!(txn.get(&fx.items, ids[0]).unwrap().is_none());
}

#[test]
fn case41_an_error_discards_everything() {
    let fx = open();
    let r: jkv_ecs::Result<()> = fx.ecs.retry(5, |txn| {
        txn.insert(&fx.items, row(&fx, "x", 1))?;
        Err(Error::invalid("the game logic failed"))
    });
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    assert!(fx.ecs.range(&fx.items, &all).unwrap().is_empty());
}

/// Insert then delete of one row in one transaction cancels out: nothing
/// is written and the commit does not conflict (jkv's decision).
#[test]
fn insert_then_delete_in_one_transaction_cancels_out() {
    let fx = open();
    let mut txn = fx.ecs.begin();
    let id = txn.insert(&fx.items, row(&fx, "gone", 1)).unwrap();
    txn.insert(&fx.items, row(&fx, "kept", 2)).unwrap();
    txn.delete(&fx.items, id).unwrap();
    assert!(txn.get(&fx.items, id).unwrap().is_none());
    txn.commit().unwrap();
    assert!(fx.ecs.get(&fx.items, id).unwrap().is_none());
    assert!(fx.ecs.get_by(&fx.items, "name", "gone").unwrap().is_none());
    assert!(fx.ecs.get_by(&fx.items, "name", "kept").unwrap().is_some());
}

/// An update set back to its original values is validated like a read.
#[test]
fn a_reverted_update_is_validated_like_a_read() {
    let fx = filled();
    let mut t1 = fx.ecs.begin();
    let orig = t1.get(&fx.items, fx.ids[0]).unwrap().unwrap();
    let mut changed = orig.clone();
    changed.set("qty", 1).unwrap();
    t1.update(&fx.items, changed).unwrap();
    t1.update(&fx.items, orig.clone()).unwrap();
    let other = t1.get(&fx.items, fx.ids[1]).unwrap().unwrap();
    let mut o = other.clone();
    o.set("qty", 2).unwrap();
    t1.update(&fx.items, o).unwrap();
    // A concurrent commit changes row 0.
    let mut t2 = fx.ecs.begin();
    let mut r = t2.get(&fx.items, fx.ids[0]).unwrap().unwrap();
    r.set("level", 9).unwrap();
    t2.update(&fx.items, r).unwrap();
    t2.commit().unwrap();
    let e = t1.commit().unwrap_err();
    assert!(e.to_string().contains("Version"), "{e}");
}

/// The unique exemption: deleting X and inserting Y with X's unique value
/// in one commit works.
#[test]
fn delete_and_reuse_a_unique_value_in_one_commit() {
    let fx = filled();
    let mut txn = fx.ecs.begin();
    let x = txn.get_by(&fx.items, "name", "Itm10").unwrap().unwrap();
    txn.delete(&fx.items, x.id()).unwrap();
    let y = txn.insert(&fx.items, row(&fx, "Itm10", 110)).unwrap();
    txn.commit().unwrap();
    assert_eq!(
        fx.ecs
            .get_by(&fx.items, "name", "Itm10")
            .unwrap()
            .unwrap()
            .id(),
        y
    );
    assert_eq!(
        fx.ecs
            .range_ids(&fx.items, &Range::eq("time", 110))
            .unwrap(),
        [y]
    );
}
