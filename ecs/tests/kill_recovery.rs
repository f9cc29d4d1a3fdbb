//! ECS commits survive SIGKILL of the process: a child process (this test
//! binary, re-run on its ignored `child_process_entry`) moves money between
//! accounts in transactions, printing `ack N` after each commit returns,
//! and is killed at a random moment. After each kill the database must hold
//! exactly the first N or N + 1 transfers of the child's seeded sequence
//! (the one in flight may or may not have landed), the total must be
//! conserved and the balance index must match the rows. Half the commits
//! are not synced: a process kill keeps the page cache, so an acknowledged
//! commit survives it either way.
//!
//! 8 cycles by default; `JKV_ECS_KILL_CYCLES=N` runs N.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use jkv_ecs::{Component, DType, Ecs, Property, Range, Table};

const ACCOUNTS: i64 = 20;
const START: i64 = 100;

fn account() -> Arc<Component> {
    Component::builder("kill", "Account")
        .property(Property::new("balance", DType::I64).index())
        .build()
        .unwrap()
}

/// SplitMix64, so parent and child draw the same transfers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Transfer `i` of the sequence with `seed`: (from, to, amount, sync).
fn transfer(seed: u64, i: u64) -> (i64, i64, i64, bool) {
    let mut r = Rng(seed.wrapping_mul(1_000_003).wrapping_add(i));
    let from = (r.next() % ACCOUNTS as u64) as i64 + 1;
    let to = (from + (r.next() % (ACCOUNTS as u64 - 1)) as i64) % ACCOUNTS + 1;
    (
        from,
        to,
        (r.next() % 40) as i64 + 1,
        r.next().is_multiple_of(2),
    )
}

/// The model's effect of a transfer (skipped when the payer is short).
fn apply(state: &mut BTreeMap<i64, i64>, (from, to, amount, _): (i64, i64, i64, bool)) {
    if state[&from] >= amount {
        *state.get_mut(&from).unwrap() -= amount;
        *state.get_mut(&to).unwrap() += amount;
    }
}

fn open(dir: &Path) -> (Ecs, Table) {
    let ecs = Ecs::open(dir, jkv::Options::default().write_buffer_size(64 << 10)).unwrap();
    let t = ecs.table(&account(), "kill", 1).unwrap();
    (ecs, t)
}

fn read_state(ecs: &Ecs, t: &Table) -> BTreeMap<i64, i64> {
    let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
    let rows = ecs.range(t, &all).unwrap();
    let state: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| (r.id(), r.get_i64("balance").unwrap()))
        .collect();
    let mut by_balance: Vec<(i64, i64)> = state.iter().map(|(id, b)| (*b, *id)).collect();
    by_balance.sort();
    let ids = ecs
        .range_ids(t, &Range::between("balance", i64::MIN, i64::MAX).limit(-1))
        .unwrap();
    assert_eq!(
        ids,
        by_balance.iter().map(|x| x.1).collect::<Vec<_>>(),
        "balance index matches the rows"
    );
    state
}

/// The child: runs transfers of the sequence `seed` from 0 until killed.
#[test]
#[ignore = "run by kill_recovery_keeps_every_acknowledged_commit as its child process"]
fn child_process_entry() {
    let dir = std::env::var("JKV_ECS_KILL_DIR").expect("the parent sets the directory");
    let seed: u64 = std::env::var("JKV_ECS_KILL_SEED").unwrap().parse().unwrap();
    let (ecs, t) = open(Path::new(&dir));
    let mut out = std::io::stdout();
    for i in 0.. {
        let (from, to, amount, sync) = transfer(seed, i);
        let mut txn = ecs.begin();
        txn.sync(sync);
        let mut a = txn.get(&t, from).unwrap().unwrap();
        let mut b = txn.get(&t, to).unwrap().unwrap();
        let have = a.get_i64("balance").unwrap();
        if have >= amount {
            a.set("balance", have - amount).unwrap();
            b.set("balance", b.get_i64("balance").unwrap() + amount)
                .unwrap();
            txn.update(&t, a).unwrap();
            txn.update(&t, b).unwrap();
        }
        txn.commit().unwrap();
        use std::io::Write;
        writeln!(out, "ack {}", i + 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_recovery_keeps_every_acknowledged_commit() {
    let cycles: u64 = std::env::var("JKV_ECS_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let mut model: BTreeMap<i64, i64> = (1..=ACCOUNTS).map(|id| (id, START)).collect();
    {
        let (ecs, t) = open(dir.path());
        let mut txn = ecs.begin();
        for id in 1..=ACCOUNTS {
            let mut r = ecs.new_row(&account()).unwrap();
            r.set_id(id).set("balance", START).unwrap();
            txn.insert(&t, r).unwrap();
        }
        txn.sync(true);
        txn.commit().unwrap();
        ecs.close().unwrap();
    }
    let mut rng = Rng(0xdead);
    for cycle in 0..cycles {
        let seed = 1000 + cycle;
        let stop_after = 20 + rng.next() % 400;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("JKV_ECS_KILL_DIR", dir.path())
            .env("JKV_ECS_KILL_SEED", seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = 0u64;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while acked < stop_after {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(n) = line.strip_prefix("ack ") {
                        acked = n.parse().unwrap();
                    }
                }
                _ => panic!("cycle {cycle}: the child stopped after {acked} acks"),
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Acks the child wrote before it died are still in the pipe.
        for line in lines.map_while(|l| l.ok()) {
            if let Some(n) = line.strip_prefix("ack ") {
                acked = n.parse().unwrap();
            }
        }
        let (ecs, t) = open(dir.path());
        let got = read_state(&ecs, &t);
        ecs.close().unwrap();
        let mut at_acked = model.clone();
        for i in 0..acked {
            apply(&mut at_acked, transfer(seed, i));
        }
        let mut one_more = at_acked.clone();
        apply(&mut one_more, transfer(seed, acked));
        assert!(
            got == at_acked || got == one_more,
            "cycle {cycle}: after {acked} acknowledged transfers the accounts are {got:?}, expected {at_acked:?}"
        );
        assert_eq!(
            got.values().sum::<i64>(),
            ACCOUNTS * START,
            "cycle {cycle}: total conserved"
        );
        model = got;
    }
}
