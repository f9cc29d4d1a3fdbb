//! The contract's behaviour cases G (notifications: row and index channels
//! per commit, only future notifications, the subscription broker's range
//! diffs and channel reference counting).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use jkv_ecs::{Range, Row, SubscriptionBroker};

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(300);

fn update(fx: &Fx, id: i64, f: impl FnOnce(&mut Row)) {
    let mut txn = fx.ecs.begin();
    let mut r = txn.get(&fx.items, id).unwrap().unwrap();
    f(&mut r);
    txn.update(&fx.items, r).unwrap();
    txn.commit().unwrap();
}

#[test]
fn case51_a_row_channel_fires_on_update() {
    let fx = filled();
    let mut mq = fx.ecs.mq().unwrap();
    let ch = fx.items.row_channel(fx.ids[0]);
    mq.subscribe(&ch).unwrap();
    update(&fx, fx.ids[0], |r| {
        r.set("qty", 9999).unwrap();
    });
    assert!(mq.pull(WAIT).unwrap());
    assert_eq!(mq.get_message(WAIT).unwrap(), HashSet::from([ch]));
}

#[test]
fn case52_the_channel_set_per_commit() {
    let fx = filled();
    let mut mq = fx.ecs.mq().unwrap();
    let index_cols = ["id", "owner", "model", "time", "name", "used"];
    let new_id = 4242;
    for &id in fx.ids.iter().chain([new_id].iter()) {
        mq.subscribe(&fx.items.row_channel(id)).unwrap();
    }
    for c in index_cols {
        mq.subscribe(&fx.items.index_channel(c)).unwrap();
    }
    let all_indexes = |id: i64| {
        let mut s: HashSet<String> = index_cols
            .iter()
            .map(|c| fx.items.index_channel(c))
            .collect();
        s.insert(fx.items.row_channel(id));
        s
    };
    // (a) insert
    let mut txn = fx.ecs.begin();
    let mut r = fx.ecs.new_row(&fx.item).unwrap();
    r.set_id(new_id)
        .set("name", "new")
        .unwrap()
        .set("time", 1)
        .unwrap();
    txn.insert(&fx.items, r).unwrap();
    txn.commit().unwrap();
    assert_eq!(mq.get_message(WAIT).unwrap(), all_indexes(new_id));
    // (b) qty only
    update(&fx, fx.ids[0], |r| {
        r.set("qty", 1).unwrap();
    });
    assert_eq!(
        mq.get_message(WAIT).unwrap(),
        HashSet::from([fx.items.row_channel(fx.ids[0])])
    );
    // (c) owner
    update(&fx, fx.ids[0], |r| {
        r.set("owner", 12).unwrap();
    });
    assert_eq!(
        mq.get_message(WAIT).unwrap(),
        HashSet::from([
            fx.items.row_channel(fx.ids[0]),
            fx.items.index_channel("owner")
        ])
    );
    // (d) delete
    let mut txn = fx.ecs.begin();
    txn.get(&fx.items, fx.ids[1]).unwrap();
    txn.delete(&fx.items, fx.ids[1]).unwrap();
    txn.commit().unwrap();
    assert_eq!(mq.get_message(WAIT).unwrap(), all_indexes(fx.ids[1]));
    // (e) a failed commit
    let mut t1 = fx.ecs.begin();
    let mut a = t1.get(&fx.items, fx.ids[2]).unwrap().unwrap();
    update(&fx, fx.ids[2], |r| {
        r.set("qty", 5).unwrap();
    });
    assert_eq!(mq.get_message(WAIT).unwrap().len(), 1);
    a.set("owner", 1).unwrap();
    t1.update(&fx.items, a).unwrap();
    assert!(t1.commit().unwrap_err().is_race());
    assert!(
        mq.get_message(QUIET).unwrap().is_empty(),
        "nothing for a failed commit"
    );
}

#[test]
fn case54_only_future_notifications() {
    let fx = filled();
    let id = fx.ids[0];
    update(&fx, id, |r| {
        r.set("qty", 1).unwrap();
    });
    let mut mq = fx.ecs.mq().unwrap();
    let ch = fx.items.row_channel(id);
    mq.subscribe(&ch).unwrap();
    assert!(
        !mq.pull(QUIET).unwrap(),
        "the earlier commit is not delivered"
    );
    update(&fx, id, |r| {
        r.set("qty", 2).unwrap();
    });
    assert_eq!(mq.get_message(WAIT).unwrap(), HashSet::from([ch.clone()]));
    mq.unsubscribe(&ch).unwrap();
    update(&fx, id, |r| {
        r.set("qty", 3).unwrap();
    });
    assert!(mq.get_message(QUIET).unwrap().is_empty());
}

struct Subs {
    broker: SubscriptionBroker,
    s_row: String,
    s10: String,
    s10_11: String,
    s11_12: String,
}

fn subscribe_all(fx: &Fx) -> Subs {
    let mut broker = SubscriptionBroker::new(&fx.ecs).unwrap();
    let (s_row, row) = broker.subscribe_get(&fx.items, "name", "Itm10").unwrap();
    assert_eq!(row.unwrap().get_i64("time").unwrap(), 110);
    let (s10, rows) = broker
        .subscribe_range(&fx.items, &Range::eq("owner", 10).limit(33), true)
        .unwrap();
    assert_eq!(rows.len(), 25);
    assert_eq!(broker.subscribed_channels().len(), 26);
    let (s10_11, rows) = broker
        .subscribe_range(&fx.items, &Range::between("owner", 10, 11).limit(44), true)
        .unwrap();
    assert_eq!(rows.len(), 25);
    let (s11_12, rows) = broker
        .subscribe_range(&fx.items, &Range::between("owner", 11, 12).limit(55), true)
        .unwrap();
    assert!(rows.is_empty());
    let s11_12 = s11_12.expect("force gives an empty range a subscription");
    assert_eq!(s11_12, "Item.owner[11:12:1][:55]");
    assert_eq!(broker.subscribed_channels().len(), 26);
    Subs {
        broker,
        s_row: s_row.unwrap(),
        s10: s10.unwrap(),
        s10_11: s10_11.unwrap(),
        s11_12,
    }
}

#[test]
fn case55_range_subscriptions_diff_and_count_channels() {
    let fx = filled();
    let mut s = subscribe_all(&fx);
    assert_eq!(s.s10, "Item.owner[10:None:1][:33]");
    let r110 = fx.ids[0];
    update(&fx, r110, |r| {
        r.set("owner", 11).unwrap();
    });
    let u = s.broker.get_updates(WAIT).unwrap();
    assert_eq!(u.len(), 4, "{:?}", u.keys().collect::<Vec<_>>());
    assert_eq!(
        u[&s.s_row][&r110]
            .as_ref()
            .unwrap()
            .get_i64("owner")
            .unwrap(),
        11
    );
    assert!(u[&s.s10][&r110].is_none(), "left S10");
    assert!(u[&s.s10_11][&r110].is_some());
    assert!(u[&s.s11_12][&r110].is_some(), "entered S11_12");
    update(&fx, r110, |r| {
        r.set("owner", 12).unwrap();
    });
    let u = s.broker.get_updates(WAIT).unwrap();
    assert_eq!(u.len(), 3, "{:?}", u.keys().collect::<Vec<_>>());
    assert_eq!(
        u[&s.s_row][&r110]
            .as_ref()
            .unwrap()
            .get_i64("owner")
            .unwrap(),
        12
    );
    assert!(u[&s.s10_11][&r110].is_none());
    assert!(u[&s.s11_12][&r110].is_some());
    assert!(!u.contains_key(&s.s10));
    // A deleted row reports None to its row subscription.
    let mut txn = fx.ecs.begin();
    txn.get(&fx.items, r110).unwrap();
    txn.delete(&fx.items, r110).unwrap();
    txn.commit().unwrap();
    let u = s.broker.get_updates(WAIT).unwrap();
    assert!(u[&s.s_row][&r110].is_none());
}

#[test]
fn case55_unsubscribe_releases_only_unneeded_channels() {
    let fx = filled();
    let mut s = subscribe_all(&fx);
    let n = |s: &Subs| s.broker.subscribed_channels().len();
    s.broker.unsubscribe(&s.s10.clone()).unwrap();
    assert_eq!(n(&s), 26);
    s.broker.unsubscribe(&s.s_row.clone()).unwrap();
    assert_eq!(n(&s), 26);
    s.broker.unsubscribe(&s.s_row.clone()).unwrap();
    assert_eq!(n(&s), 26);
    s.broker.unsubscribe(&s.s10_11.clone()).unwrap();
    assert_eq!(n(&s), 1);
    s.broker.unsubscribe(&s.s11_12.clone()).unwrap();
    assert_eq!(n(&s), 0);
}

#[test]
fn case56_row_subscription_ids_are_stable() {
    let fx = filled();
    let mut broker = SubscriptionBroker::new(&fx.ecs).unwrap();
    let (a, row) = broker.subscribe_get(&fx.items, "name", "Itm10").unwrap();
    assert_eq!(
        a.as_deref(),
        Some(format!("Item.id[{}:None:1][:1]", fx.ids[0]).as_str())
    );
    assert_eq!(row.unwrap().get_i64("time").unwrap(), 110);
    let (b, _) = broker.subscribe_get(&fx.items, "time", 110).unwrap();
    assert_eq!(a, b);
    assert_eq!(broker.subscribed_channels().len(), 1);
    assert_eq!(
        broker.subscribe_get(&fx.items, "name", "nobody").unwrap(),
        (None, None)
    );
    let (none, rows) = broker
        .subscribe_range(&fx.items, &Range::eq("owner", 99), false)
        .unwrap();
    assert!(none.is_none() && rows.is_empty());
}

/// Notifications come only once the commit is durable to the level it
/// asked for: a synced commit's channel arrives after the commit returned.
#[test]
fn synced_commits_publish_after_the_write() {
    let fx = filled();
    let mut mq = fx.ecs.mq().unwrap();
    let ch = fx.items.row_channel(fx.ids[3]);
    mq.subscribe(&ch).unwrap();
    let mut txn = fx.ecs.begin();
    txn.sync(true);
    let mut r = txn.get(&fx.items, fx.ids[3]).unwrap().unwrap();
    r.set("qty", 4).unwrap();
    txn.update(&fx.items, r).unwrap();
    txn.commit().unwrap();
    assert_eq!(mq.get_message(WAIT).unwrap(), HashSet::from([ch]));
    assert_eq!(
        fx.ecs
            .get(&fx.items, fx.ids[3])
            .unwrap()
            .unwrap()
            .get_i64("qty")
            .unwrap(),
        4
    );
}
