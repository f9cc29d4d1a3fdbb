//! Model test: random interleavings of several transactions (gets, get by a
//! unique value, inserts, updates, deletes, upserts, ranges, commits and
//! aborts) against a plain in-memory model of the contract's session and
//! commit rules. Every read, every error kind and every commit outcome must
//! match; at the end every row and every index must equal the model's.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use jkv_ecs::{Component, DType, Ecs, Error, Property, Range, Row, Table};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug, PartialEq)]
struct M {
    version: i32,
    owner: i64,
    time: i64,
    name: String,
    qty: i64,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum St {
    Clean,
    Insert,
    Update,
    Delete,
}

#[derive(Default)]
struct MTxn {
    /// id -> (state, original, current)
    held: HashMap<i64, (St, Option<M>, M)>,
    /// (column, value) read and found absent; column "id" uses the id.
    absent: HashSet<(String, String)>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Unique,
    Race,
    NotFound,
    Invalid,
}

fn outcome<T>(r: &jkv_ecs::Result<T>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(Error::UniqueViolation { .. }) => Outcome::Unique,
        Err(e) if e.is_race() => Outcome::Race,
        Err(Error::NotFound(_)) => Outcome::NotFound,
        Err(Error::InvalidArgument(_)) => Outcome::Invalid,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn component() -> Arc<Component> {
    Component::builder("model", "Thing")
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("time", DType::I64).unique())
        .property(Property::new("name", DType::Unicode(4)).unique())
        .property(Property::new("qty", DType::I16))
        .build()
        .unwrap()
}

fn to_m(r: &Row) -> M {
    M {
        version: r.version(),
        owner: r.get_i64("owner").unwrap(),
        time: r.get_i64("time").unwrap(),
        name: r.get_str("name").unwrap(),
        qty: r.get_i64("qty").unwrap(),
    }
}

fn to_row(c: &Arc<Component>, id: i64, m: &M) -> Row {
    let mut r = Row::new(c);
    r.set_id(id)
        .set("owner", m.owner)
        .unwrap()
        .set("time", m.time)
        .unwrap();
    r.set("name", m.name.as_str())
        .unwrap()
        .set("qty", m.qty)
        .unwrap();
    if m.version != 0 {
        // Rows read from the database carry their version; rebuild it from bytes.
        let at = c.offset(c.position("_version").unwrap());
        let mut b = r.as_bytes().to_vec();
        b[at..at + 4].copy_from_slice(&m.version.to_le_bytes());
        r = Row::from_bytes(c, b).unwrap();
    }
    r
}

struct Model {
    committed: BTreeMap<i64, M>,
}

impl Model {
    /// The session's unique pre-check for `m` (row `id`) on `cols`.
    fn precheck(&self, t: &MTxn, id: i64, m: &M, cols: &[&str]) -> Outcome {
        for &col in cols {
            let val = |x: &M| {
                if col == "time" {
                    x.time.to_string()
                } else {
                    x.name.clone()
                }
            };
            let held_dup = t
                .held
                .iter()
                .any(|(&hid, (st, _, cur))| hid != id && *st != St::Delete && val(cur) == val(m));
            if held_dup {
                return Outcome::Unique;
            }
            let db_dup = self.committed.iter().any(|(&cid, c)| {
                cid != id
                    && val(c) == val(m)
                    && !t.held.get(&cid).is_some_and(|(st, _, _)| *st == St::Delete)
            });
            if db_dup {
                return if t.absent.contains(&(col.to_string(), val(m))) {
                    Outcome::Race
                } else {
                    Outcome::Unique
                };
            }
        }
        Outcome::Ok
    }

    fn commit(&mut self, t: MTxn) -> Outcome {
        let writes = t.held.values().any(|(st, orig, cur)| match st {
            St::Insert => true,
            St::Delete => orig.is_some(),
            St::Update => orig.as_ref() != Some(cur),
            St::Clean => false,
        });
        if !writes {
            return Outcome::Ok;
        }
        let deleted: HashSet<i64> = t
            .held
            .iter()
            .filter(|(_, (st, o, _))| *st == St::Delete && o.is_some())
            .map(|(id, _)| *id)
            .collect();
        let mut claimed: HashSet<(&str, String)> = HashSet::new();
        for (&id, (st, orig, cur)) in &t.held {
            if *st == St::Delete && orig.is_none() {
                continue; // inserted, then deleted: cancels out
            }
            match st {
                St::Insert => {
                    if self.committed.contains_key(&id) {
                        return Outcome::Race;
                    }
                }
                _ => {
                    let o = orig.as_ref().expect("read rows have an original");
                    match self.committed.get(&id) {
                        Some(c) if c.version == o.version => {}
                        _ => return Outcome::Race,
                    }
                }
            }
            let unique_cols: Vec<&str> = match st {
                St::Insert => vec!["time", "name"],
                St::Update => {
                    let o = orig.as_ref().unwrap();
                    let mut v = vec![];
                    if o.time != cur.time {
                        v.push("time");
                    }
                    if o.name != cur.name {
                        v.push("name");
                    }
                    v
                }
                _ => vec![],
            };
            for col in unique_cols {
                let val = |x: &M| {
                    if col == "time" {
                        x.time.to_string()
                    } else {
                        x.name.clone()
                    }
                };
                if self
                    .committed
                    .iter()
                    .any(|(&cid, c)| cid != id && val(c) == val(cur) && !deleted.contains(&cid))
                {
                    return Outcome::Race;
                }
                if !claimed.insert((col, val(cur))) {
                    return Outcome::Race;
                }
            }
        }
        for (id, (st, orig, cur)) in t.held {
            match st {
                St::Insert => {
                    self.committed.insert(id, M { version: 1, ..cur });
                }
                St::Update if orig.as_ref() != Some(&cur) => {
                    let v = self.committed[&id].version + 1;
                    self.committed.insert(id, M { version: v, ..cur });
                }
                St::Delete if orig.is_some() => {
                    self.committed.remove(&id);
                }
                _ => {}
            }
        }
        Outcome::Ok
    }
}

/// Runs one seed; returns (commits that wrote, commits that lost a race).
fn run(seed: u64, steps: usize) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let ecs = Ecs::open(
        dir.path(),
        jkv::Options::default().write_buffer_size(64 << 10),
    )
    .unwrap();
    let c = component();
    let table: Table = ecs.table(&c, "m", 1).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Model {
        committed: BTreeMap::new(),
    };
    const SLOTS: usize = 3;
    let mut txns: Vec<Option<(jkv_ecs::Transaction<'_>, MTxn)>> =
        (0..SLOTS).map(|_| None).collect();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let (mut wrote, mut raced) = (0, 0);
    for step in 0..steps {
        let slot = rng.gen_range(0..SLOTS);
        if txns[slot].is_none() {
            txns[slot] = Some((ecs.begin(), MTxn::default()));
        }
        let ctx = format!("seed {seed} step {step} slot {slot}");
        let (txn, mt) = txns[slot].as_mut().unwrap();
        let id = rng.gen_range(1..=12i64);
        match rng.gen_range(0..100) {
            0..=14 => {
                let got = txn.get(&table, id).unwrap().map(|r| to_m(&r));
                let want = match mt.held.get(&id) {
                    Some((St::Delete, _, _)) => None,
                    Some((_, _, cur)) => Some(cur.clone()),
                    None => {
                        let w = model.committed.get(&id).cloned();
                        match &w {
                            Some(m) => {
                                mt.held.insert(id, (St::Clean, Some(m.clone()), m.clone()));
                            }
                            None => {
                                mt.absent.insert(("id".into(), id.to_string()));
                            }
                        }
                        w
                    }
                };
                assert_eq!(got, want, "{ctx}: get {id}");
            }
            15..=24 => {
                let name = names[rng.gen_range(0..names.len())];
                let got = txn.get_by(&table, "name", name).unwrap();
                let held = mt
                    .held
                    .iter()
                    .find(|(_, (st, _, cur))| *st != St::Delete && cur.name == name)
                    .map(|(i, (_, _, m))| (*i, m.clone()));
                let want = match held {
                    Some(h) => Some(h),
                    None => match model.committed.iter().find(|(_, m)| m.name == name) {
                        Some((&cid, _)) if mt.held.contains_key(&cid) => None,
                        Some((&cid, m)) => {
                            mt.held.insert(cid, (St::Clean, Some(m.clone()), m.clone()));
                            Some((cid, m.clone()))
                        }
                        None => None,
                    },
                };
                if want.is_none() {
                    mt.absent.insert(("name".into(), name.to_string()));
                }
                assert_eq!(
                    got.map(|r| (r.id(), to_m(&r))),
                    want,
                    "{ctx}: get_by name {name}"
                );
            }
            25..=44 => {
                let m = M {
                    version: 0,
                    owner: rng.gen_range(0..4),
                    time: rng.gen_range(0..10),
                    name: names[rng.gen_range(0..names.len())].into(),
                    qty: 0,
                };
                let got = outcome(&txn.insert(&table, to_row(&c, id, &m)));
                let want = match mt.held.get(&id) {
                    Some((St::Delete, _, _)) => Outcome::Invalid,
                    Some(_) => Outcome::Unique,
                    None => {
                        let idcheck = if model.committed.contains_key(&id) {
                            if mt.absent.contains(&("id".into(), id.to_string())) {
                                Outcome::Race
                            } else {
                                Outcome::Unique
                            }
                        } else {
                            Outcome::Ok
                        };
                        if idcheck != Outcome::Ok {
                            idcheck
                        } else {
                            model.precheck(mt, id, &m, &["name", "time"])
                        }
                    }
                };
                assert_eq!(got, want, "{ctx}: insert {id} {m:?}");
                if want == Outcome::Ok {
                    mt.held.insert(id, (St::Insert, None, m));
                }
            }
            45..=64 => {
                let Some((st, _, cur)) = mt.held.get(&id).cloned() else {
                    let mut r = to_row(
                        &c,
                        id,
                        &M {
                            version: 0,
                            owner: 0,
                            time: 0,
                            name: "x".into(),
                            qty: 1,
                        },
                    );
                    r.set("qty", 5).unwrap();
                    assert_eq!(
                        outcome(&txn.update(&table, r)),
                        Outcome::NotFound,
                        "{ctx}: update unread"
                    );
                    continue;
                };
                let mut m = cur.clone();
                match rng.gen_range(0..4) {
                    0 => m.owner = rng.gen_range(0..4),
                    1 => m.time = rng.gen_range(0..10),
                    2 => m.name = names[rng.gen_range(0..names.len())].into(),
                    _ => m.qty = rng.gen_range(0..3),
                }
                let got = outcome(&txn.update(&table, to_row(&c, id, &m)));
                let want = if st == St::Delete {
                    Outcome::NotFound
                } else if m == cur {
                    Outcome::Invalid
                } else {
                    // Pre-checks run in column (name) order.
                    let mut cols = vec![];
                    if m.name != cur.name {
                        cols.push("name");
                    }
                    if m.time != cur.time {
                        cols.push("time");
                    }
                    model.precheck(mt, id, &m, &cols)
                };
                assert_eq!(got, want, "{ctx}: update {id} {cur:?} -> {m:?}");
                if want == Outcome::Ok {
                    let e = mt.held.get_mut(&id).unwrap();
                    e.2 = m;
                    if e.0 == St::Clean {
                        e.0 = St::Update;
                    }
                }
            }
            65..=72 => {
                let got = outcome(&txn.delete(&table, id));
                let want = match mt.held.get(&id) {
                    Some((st, _, _)) if *st != St::Delete => Outcome::Ok,
                    _ => Outcome::NotFound,
                };
                assert_eq!(got, want, "{ctx}: delete {id}");
                if want == Outcome::Ok {
                    mt.held.get_mut(&id).unwrap().0 = St::Delete;
                }
            }
            73..=82 => {
                let lo = rng.gen_range(0..4i64);
                let hi = rng.gen_range(lo..4);
                let desc = rng.gen_bool(0.5);
                let mut r = Range::between("owner", lo, hi).limit(-1);
                if desc {
                    r = r.desc();
                }
                let got: Vec<(i64, M)> = txn
                    .range(&table, &r)
                    .unwrap()
                    .iter()
                    .map(|r| (r.id(), to_m(r)))
                    .collect();
                let mut hits: Vec<(i64, i64)> = model
                    .committed
                    .iter()
                    .filter(|(_, m)| (lo..=hi).contains(&m.owner))
                    .map(|(id, m)| (m.owner, *id))
                    .collect();
                hits.sort();
                if desc {
                    hits.reverse();
                }
                let mut want = Vec::new();
                for (_, hid) in hits {
                    match mt.held.get(&hid) {
                        Some((St::Delete, _, _)) => {}
                        Some((_, _, cur)) => want.push((hid, cur.clone())),
                        None => {
                            let m = model.committed[&hid].clone();
                            mt.held.insert(hid, (St::Clean, Some(m.clone()), m.clone()));
                            want.push((hid, m));
                        }
                    }
                }
                assert_eq!(got, want, "{ctx}: range owner {lo}..={hi} desc={desc}");
            }
            83..=95 => {
                let (txn, mt) = txns[slot].take().unwrap();
                let got = outcome(&txn.commit());
                let before = model.committed.clone();
                let want = model.commit(mt);
                assert_eq!(got, want, "{ctx}: commit");
                match want {
                    Outcome::Race => raced += 1,
                    Outcome::Ok if model.committed != before => wrote += 1,
                    _ => {}
                }
            }
            _ => {
                txns[slot] = None;
            }
        }
    }
    drop(txns);
    // Final state: rows and every index agree with the model.
    let all = ecs
        .range(
            &table,
            &Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1),
        )
        .unwrap();
    let got: BTreeMap<i64, M> = all.iter().map(|r| (r.id(), to_m(r))).collect();
    assert_eq!(got, model.committed, "seed {seed}: final rows");
    let by_owner: Vec<i64> = ecs
        .range_ids(
            &table,
            &Range::between("owner", i64::MIN, i64::MAX).limit(-1),
        )
        .unwrap();
    let mut want: Vec<(i64, i64)> = model
        .committed
        .iter()
        .map(|(id, m)| (m.owner, *id))
        .collect();
    want.sort();
    assert_eq!(
        by_owner,
        want.iter().map(|x| x.1).collect::<Vec<_>>(),
        "seed {seed}: owner index"
    );
    for (id, m) in &model.committed {
        assert_eq!(
            ecs.range_ids(&table, &Range::eq("time", m.time)).unwrap(),
            [*id],
            "seed {seed}: time index"
        );
        assert_eq!(
            ecs.range_ids(&table, &Range::eq("name", m.name.as_str()))
                .unwrap(),
            [*id],
            "seed {seed}: name index"
        );
    }
    let index_entries = ecs
        .range_ids(
            &table,
            &Range::between("time", i64::MIN, i64::MAX).limit(-1),
        )
        .unwrap()
        .len();
    assert_eq!(
        index_entries,
        model.committed.len(),
        "seed {seed}: no stale time entries"
    );
    (wrote, raced)
}

#[test]
fn random_transactions_match_the_model() {
    let (mut wrote, mut raced) = (0, 0);
    for seed in 0..40 {
        let (w, r) = run(seed, 400);
        wrote += w;
        raced += r;
    }
    // The mix must exercise both outcomes, or the test proves little.
    assert!(wrote > 200 && raced > 50, "wrote {wrote}, raced {raced}");
}
