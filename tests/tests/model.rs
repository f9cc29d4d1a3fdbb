//! Model test: thousands of random puts, deletes, range deletes, batches,
//! gets, scans (both directions, prefix) and snapshot reads against a
//! `BTreeMap`, with flushes, compactions, value-log garbage collections and
//! reopenings interleaved; values are small and large (in the value log).
//! Every read is compared.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;

use jkv::{Compression, Db, WriteBatch, WriteOptions};
use jkv_tests::small_options;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    // A small key space so overwrites and deletes hit existing keys; some
    // keys are prefixes of others.
    let n = rng.gen_range(0..300u32);
    if n % 7 == 0 {
        format!("k{}", n / 7).into_bytes()
    } else {
        format!("k{n:03}").into_bytes()
    }
}

/// A half-open key range for a range delete: mostly a few keys, sometimes
/// a wide one (which covers whole tables), sometimes empty.
fn random_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    match rng.gen_range(0..10) {
        0..=6 => {
            let n = rng.gen_range(0..300u32);
            let width = rng.gen_range(0..12u32);
            (
                format!("k{n:03}").into_bytes(),
                format!("k{:03}", n + width).into_bytes(),
            )
        }
        _ => {
            let (a, b) = (random_key(rng), random_key(rng));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        }
    }
}

/// Removes `[lo, hi)` from the model.
fn model_delete_range(model: &mut Model, lo: &[u8], hi: &[u8]) {
    model.retain(|k, _| !(lo <= k.as_slice() && k.as_slice() < hi));
}

/// A random value; with `compressible`, a random head and runs of one
/// byte, so blocks and value-log entries shrink and are stored compressed.
fn random_value(rng: &mut StdRng, compressible: bool) -> Vec<u8> {
    let len = match rng.gen_range(0..10) {
        0 => 0,
        1 => rng.gen_range(500..3000),
        _ => rng.gen_range(1..40),
    };
    if compressible {
        let head = len.min(rng.gen_range(0..8));
        let fill: u8 = rng.gen_range(b'a'..=b'e');
        let mut v: Vec<u8> = (0..head).map(|_| rng.gen()).collect();
        v.resize(len, fill);
        return v;
    }
    (0..len).map(|_| rng.gen()).collect()
}

fn collect(iter: jkv::DbIterator) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.map(|r| {
        let (k, v) = r.expect("scan item");
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn model_range(model: &Model, lo: &[u8], hi: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .range::<[u8], _>((Bound::Included(lo), Bound::Excluded(hi)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn run(seed: u64, steps: usize) {
    run_with(seed, steps, small_options, false);
}

/// Compression on every level and in the value log, with a block cache
/// far smaller than the data (so blocks are evicted and decoded again).
fn compressed_options(compression: Compression) -> jkv::Options {
    small_options()
        .compression_per_level(vec![Compression::None, Compression::Lz4, compression])
        .vlog_compression(compression)
        .block_cache_bytes(8 << 10)
}

fn run_with(seed: u64, steps: usize, small_options: fn() -> jkv::Options, compressible: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut db = Db::open(dir.path(), small_options()).unwrap();
    let mut model = Model::new();
    // (snapshot, model at that time)
    let mut snapshots: Vec<(jkv::Snapshot, Model)> = Vec::new();
    // Compactions over all the database handles of the run.
    let mut compactions = 0;
    for step in 0..steps {
        match rng.gen_range(0..100) {
            0..=31 => {
                let (k, v) = (random_key(&mut rng), random_value(&mut rng, compressible));
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
            32..=34 => {
                let (lo, hi) = random_range(&mut rng);
                db.delete_range(&lo, &hi).unwrap();
                model_delete_range(&mut model, &lo, &hi);
            }
            35..=44 => {
                let k = random_key(&mut rng);
                db.delete(&k).unwrap();
                model.remove(&k);
            }
            45..=52 => {
                let mut batch = WriteBatch::new();
                for _ in 0..rng.gen_range(1..20) {
                    let k = random_key(&mut rng);
                    if rng.gen_bool(0.1) {
                        let (lo, hi) = random_range(&mut rng);
                        batch.delete_range(lo.as_slice()..hi.as_slice());
                        model_delete_range(&mut model, &lo, &hi);
                    } else if rng.gen_bool(0.3) {
                        batch.delete(&k);
                        model.remove(&k);
                    } else {
                        let v = random_value(&mut rng, compressible);
                        batch.put(&k, &v);
                        model.insert(k, v);
                    }
                }
                let sync = rng.gen_bool(0.2);
                db.write(batch, WriteOptions { sync }).unwrap();
            }
            53..=72 => {
                let k = random_key(&mut rng);
                let got = db.get(&k).unwrap().map(|b| b.to_vec());
                assert_eq!(
                    got,
                    model.get(&k).cloned(),
                    "seed {seed} step {step} get {k:?}"
                );
            }
            73..=78 => {
                let (a, b) = (random_key(&mut rng), random_key(&mut rng));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let snap = db.snapshot();
                let expected = model_range(&model, &lo, &hi);
                let got = collect(db.scan(lo.as_slice()..hi.as_slice(), &snap));
                assert_eq!(got, expected, "seed {seed} step {step} scan");
                let mut rev = collect(db.scan_rev(lo.as_slice()..hi.as_slice(), &snap));
                rev.reverse();
                assert_eq!(rev, expected, "seed {seed} step {step} scan_rev");
            }
            79..=80 => {
                let snap = db.snapshot();
                let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(
                    collect(db.scan::<&[u8]>(.., &snap)),
                    all,
                    "seed {seed} full scan"
                );
                let prefix = format!("k{}", rng.gen_range(0..10)).into_bytes();
                let expected: Vec<_> = all
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                assert_eq!(collect(db.scan_prefix(&prefix, &snap)), expected, "prefix");
            }
            81..=85 => {
                if snapshots.len() < 4 {
                    snapshots.push((db.snapshot(), model.clone()));
                } else {
                    snapshots.remove(rng.gen_range(0..snapshots.len()));
                }
            }
            86..=90 => {
                if let Some((snap, old)) = snapshots.first() {
                    let k = random_key(&mut rng);
                    let got = db.get_at(&k, snap).unwrap().map(|b| b.to_vec());
                    assert_eq!(
                        got,
                        old.get(&k).cloned(),
                        "seed {seed} step {step} snapshot get"
                    );
                    let all: Vec<_> = old.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    assert_eq!(collect(db.scan::<&[u8]>(.., snap)), all, "snapshot scan");
                }
            }
            91..=93 => db.flush().unwrap(),
            94 => {
                let (a, b) = (random_key(&mut rng), random_key(&mut rng));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                db.compact_range(lo.as_slice()..=hi.as_slice()).unwrap();
            }
            95 => {
                if rng.gen_bool(0.5) {
                    db.compact().unwrap();
                } else {
                    db.vlog_gc().unwrap();
                }
            }
            _ => {
                // Snapshots do not survive a reopen.
                snapshots.clear();
                compactions += db.stats().compactions;
                if rng.gen_bool(0.5) {
                    db.close().unwrap();
                }
                drop(db);
                db = Db::open(dir.path(), small_options()).unwrap();
            }
        }
    }
    let stats = db.stats();
    compactions += stats.compactions;
    assert!(compactions > 0, "the workload never compacted: {stats}");
    assert!(stats.health.is_none(), "{stats}");
    // Everything, one last time, after a reopen.
    drop(snapshots);
    drop(db);
    let db = Db::open(dir.path(), small_options()).unwrap();
    let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(collect(db.scan::<&[u8]>(.., &db.snapshot())), all);
    db.close().unwrap();
    let report = jkv::check(dir.path()).unwrap();
    assert!(report.is_ok(), "{report}");
    if compressible {
        // The compressed paths were taken, not only configured.
        assert!(report.compressed_blocks > 0, "{report}");
        assert!(report.data_bytes < report.data_raw_bytes, "{report}");
    }
}

#[test]
fn model_seed_5_lz4() {
    run_with(5, 3000, || compressed_options(Compression::Lz4), true);
}

#[test]
fn model_seed_6_zstd() {
    run_with(6, 3000, || compressed_options(Compression::ZSTD), true);
}

#[test]
fn model_seed_1() {
    run(1, 3000);
}

#[test]
fn model_seed_2() {
    run(2, 3000);
}

#[test]
fn model_seed_3() {
    run(3, 3000);
}

#[test]
fn model_seed_4() {
    run(4, 3000);
}
