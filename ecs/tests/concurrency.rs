//! Concurrent read-modify-write commits with retries: threads move money
//! between a few hot accounts, and claim, rename and release unique names.
//! The final state must equal a serial execution of the commits that
//! succeeded (every balance equals its start plus the deltas of committed
//! transfers, so the total is conserved), and no unique value may ever be
//! held twice — checked at the end through range scans of every index.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::*;
use jkv_ecs::{Error, Range, RetryPolicy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 4;

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 10_000,
        base: Duration::from_micros(20),
        jitter: true,
        write_options: Default::default(),
    }
}

#[test]
fn hot_account_transfers_conserve_the_total_and_match_a_serial_order() {
    let fx = open();
    let accounts = 5i64;
    let mut txn = fx.ecs.begin();
    for a in 0..accounts {
        let mut r = fx.ecs.new_row(&fx.item).unwrap();
        r.set_id(a + 1)
            .set("time", a)
            .unwrap()
            .set("name", format!("acct{a}"))
            .unwrap()
            .set("owner", 1000)
            .unwrap();
        txn.insert(&fx.items, r).unwrap();
    }
    txn.commit().unwrap();
    // Per thread: net deltas and committed updates per account, retries.
    type Outcome = (HashMap<i64, i64>, HashMap<i64, u32>, u32);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let fx = &fx;
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(t as u64);
                    let mut deltas: HashMap<i64, i64> = HashMap::new();
                    let mut writes: HashMap<i64, u32> = HashMap::new();
                    let mut retries = 0;
                    for _ in 0..300 {
                        let from = rng.gen_range(1..=accounts);
                        let to = 1 + (from + rng.gen_range(0..accounts - 1)) % accounts;
                        let amount = rng.gen_range(1..10);
                        let (moved, attempts) = fx
                            .ecs
                            .retry_with(&policy(), |txn| {
                                let mut a = txn.get(&fx.items, from)?.expect("account exists");
                                let mut b = txn.get(&fx.items, to)?.expect("account exists");
                                // Widen the window between read and commit so the
                                // threads really interleave on the hot rows.
                                std::thread::sleep(std::time::Duration::from_micros(50));
                                let have = a.get_i64("owner")?;
                                if have < amount {
                                    return Ok(0);
                                }
                                a.set("owner", have - amount)?;
                                b.set("owner", b.get_i64("owner")? + amount)?;
                                txn.update(&fx.items, a)?;
                                txn.update(&fx.items, b)?;
                                Ok(amount)
                            })
                            .unwrap();
                        retries += attempts - 1;
                        if moved > 0 {
                            *deltas.entry(from).or_default() -= moved;
                            *deltas.entry(to).or_default() += moved;
                            *writes.entry(from).or_default() += 1;
                            *writes.entry(to).or_default() += 1;
                        }
                    }
                    (deltas, writes, retries)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut want: BTreeMap<i64, i64> = (1..=accounts).map(|a| (a, 1000)).collect();
    let mut versions: BTreeMap<i64, i32> = (1..=accounts).map(|a| (a, 1)).collect();
    let mut retries = 0;
    for (deltas, writes, r) in &results {
        for (a, d) in deltas {
            *want.get_mut(a).unwrap() += d;
        }
        for (a, w) in writes {
            *versions.get_mut(a).unwrap() += *w as i32;
        }
        retries += r;
    }
    let rows = fx
        .ecs
        .range(
            &fx.items,
            &Range::between("owner", i64::MIN, i64::MAX).limit(-1),
        )
        .unwrap();
    let got: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r.id(), r.get_i64("owner").unwrap()))
        .collect();
    assert_eq!(
        got, want,
        "balances equal the serial sum of committed transfers"
    );
    assert_eq!(got.values().sum::<i64>(), 1000 * accounts);
    let got_versions: BTreeMap<i64, i32> = rows.iter().map(|r| (r.id(), r.version())).collect();
    assert_eq!(
        got_versions, versions,
        "each committed update bumped its row's version once"
    );
    assert!(retries > 0, "the hot rows must have contended");
}

#[test]
fn contended_unique_names_are_never_held_twice() {
    let fx = open();
    let slots = 6;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let fx = &fx;
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + t as u64);
                for _ in 0..200 {
                    let name = format!("slot{}", rng.gen_range(0..slots));
                    let other = format!("slot{}", rng.gen_range(0..slots));
                    let time = rng.gen_range(0..slots as i64);
                    let r = fx.ecs.retry_with(&policy(), |txn| {
                        match txn.get_by(&fx.items, "name", name.as_str())? {
                            None => {
                                let mut row = fx.ecs.new_row(&fx.item)?;
                                row.set("name", name.as_str())?
                                    .set("time", time)?
                                    .set("owner", t as i64)?;
                                txn.insert(&fx.items, row)?;
                            }
                            Some(row) if rng.gen_bool(0.5) => txn.delete(&fx.items, row.id())?,
                            Some(mut row) => {
                                row.set("name", other.as_str())?;
                                txn.update(&fx.items, row)?;
                            }
                        }
                        Ok(())
                    });
                    match r {
                        Ok(_) => {}
                        // Taken by a committed row: deterministic, not retried.
                        Err(Error::UniqueViolation { .. }) => {}
                        Err(Error::InvalidArgument(_)) => {} // renamed to its own name
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            });
        }
    });
    let rows = fx
        .ecs
        .range(
            &fx.items,
            &Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1),
        )
        .unwrap();
    let names: Vec<String> = strs(&rows, "name");
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(
        distinct.len(),
        names.len(),
        "a name is held twice: {names:?}"
    );
    let times: HashSet<i64> = ints(&rows, "time").into_iter().collect();
    assert_eq!(times.len(), rows.len(), "a time is held twice");
    for r in &rows {
        let by_name = fx
            .ecs
            .range_ids(&fx.items, &Range::eq("name", r.get_str("name").unwrap()))
            .unwrap();
        assert_eq!(by_name, [r.id()]);
        let by_time = fx
            .ecs
            .range_ids(&fx.items, &Range::eq("time", r.get_i64("time").unwrap()))
            .unwrap();
        assert_eq!(by_time, [r.id()]);
    }
    let name_entries = fx
        .ecs
        .range_ids(
            &fx.items,
            &Range::between("name", "", "\u{10FFFF}").limit(-1),
        )
        .unwrap();
    assert_eq!(name_entries.len(), rows.len(), "no stale name entries");
    assert!(!rows.is_empty());
}
