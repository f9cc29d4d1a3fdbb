//! The contract's behaviour cases H (the worker-id keeper) and the
//! snowflake generator built on it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use jkv_ecs::{now_ms, WorkerKeeper, LEASE_MS};

#[test]
fn case57_allocation_is_stable() {
    let fx = open();
    let mut k101 = WorkerKeeper::new(&fx.ecs, INSTANCE, "machine:101").unwrap();
    assert_eq!(k101.get_worker_id().unwrap(), 0);
    assert_eq!(k101.get_worker_id().unwrap(), 0);
    let mut again = WorkerKeeper::new(&fx.ecs, INSTANCE, "machine:101").unwrap();
    assert_eq!(again.get_worker_id().unwrap(), 0, "same node, new keeper");
    let mut k102 = WorkerKeeper::new(&fx.ecs, INSTANCE, "machine:102").unwrap();
    assert_eq!(k102.get_worker_id().unwrap(), 1);
}

#[test]
fn case58_keep_alive_and_the_last_timestamp() {
    let fx = open();
    let mut other = WorkerKeeper::new(&fx.ecs, INSTANCE, "m:1").unwrap();
    other.get_worker_id().unwrap();
    let mut k = WorkerKeeper::new(&fx.ecs, INSTANCE, "m:2").unwrap();
    assert!(
        k.get_last_timestamp().unwrap() >= now_ms() - 5,
        "no lease: now"
    );
    assert_eq!(k.get_worker_id().unwrap(), 1);
    let ts = now_ms() + 1230;
    k.keep_alive(ts).unwrap();
    assert_eq!(k.get_last_timestamp().unwrap(), ts);
    let lease = fx.ecs.get(k.table(), 1).unwrap().unwrap();
    let expires = lease.get_i64("expires_at").unwrap();
    assert!(
        (expires - (now_ms() + LEASE_MS)).abs() < 2000,
        "expiry about now + 60 s"
    );
    k.keep_alive(now_ms() - 100_000).unwrap();
    assert!(
        k.get_last_timestamp().unwrap() >= now_ms() - 5,
        "max(stored, now)"
    );
}

#[test]
fn released_and_expired_leases_are_taken_over() {
    let fx = open();
    let mut a = WorkerKeeper::new(&fx.ecs, INSTANCE, "m:a").unwrap();
    assert_eq!(a.get_worker_id().unwrap(), 0);
    a.keep_alive(now_ms() + 5_000).unwrap();
    a.release().unwrap();
    let mut b = WorkerKeeper::new(&fx.ecs, INSTANCE, "m:b").unwrap();
    assert_eq!(b.get_worker_id().unwrap(), 0, "released lease is free");
    assert!(
        b.get_last_timestamp().unwrap() >= now_ms() + 4_000,
        "the last timestamp carries over"
    );
    let mut gen = b.snowflake().unwrap();
    let id = gen.next_id().unwrap();
    assert_eq!((id >> 12) & 0x3FF, 0);
}

/// Two nodes claiming at once end with different worker ids (the loser
/// races on the unique id, retries, and moves on).
#[test]
fn concurrent_claims_get_distinct_ids() {
    let fx = open();
    let ids: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|n| {
                let ecs = fx.ecs.clone();
                s.spawn(move || {
                    WorkerKeeper::new(&ecs, INSTANCE, format!("m:{n}"))
                        .unwrap()
                        .get_worker_id()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "{ids:?}");
}
