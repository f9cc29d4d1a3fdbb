//! ECS benchmarks: hetu-style record-table workloads through `jkv-ecs`
//! (docs/benchmarks.md, "ECS tables"). Each starts from a fresh database in
//! `--db` and loads its table untimed, then every thread does `--reads`
//! (`ecs_get`, `ecs_range`) or `--writes` (`ecs_update`, `ecs_upsert`,
//! `ecs_transfer`) operations, `--num` by default:
//!
//! - `ecs_get`: get a random row by id (`--ecs_rows` rows, default 30,000);
//! - `ecs_update`: a transaction reads a random row and updates it (commit,
//!   synced with `--sync`);
//! - `ecs_range`: 100 rows by an indexed column (every owner holds 100);
//! - `ecs_upsert`: look a random name up on a unique column, then update
//!   the row or insert it;
//! - `ecs_transfer`: a transaction reads two accounts (`--ecs_accounts`,
//!   default 100,000, drawn from a Zipf distribution with `--zipf_alpha`, 0
//!   uniform), moves an amount, commits; the total is checked at the end.
//!
//! With `--ecs_compact=1` the loaded table is flushed and compacted first,
//! so reads come from sorted tables instead of the memtable.
//!
//! Races are retried at once (with a jittered microsecond backoff); the
//! result line reports retries per commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use jkv::{Options, WriteOptions};
use jkv_ecs::{Component, DType, Ecs, Property, Range, RetryPolicy, Row, Table};

use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::keys::Rng;
use crate::report::merge;
use crate::workloads::{run_threads, tick, Outcome};

/// The ECS benchmark names.
pub const BENCHMARKS: &[&str] = &[
    "ecs_get",
    "ecs_update",
    "ecs_range",
    "ecs_upsert",
    "ecs_transfer",
];

/// Rows per owner value in the item table (`ecs_range` reads one owner).
const ROWS_PER_OWNER: u64 = 100;
/// Rows per load commit.
const LOAD_BATCH: u64 = 1000;
/// Starting balance of every account.
const BALANCE: i64 = 1_000_000;

fn err(op: &'static str) -> impl Fn(jkv_ecs::Error) -> Error {
    move |e| Error::engine("jkv-ecs", op, e)
}

/// hetu's test component: owner, model, used indexed; time and name unique.
fn item() -> Arc<Component> {
    Component::builder("bench", "Item")
        .property(Property::new("owner", DType::I64).index())
        .property(Property::new("model", DType::F32).index())
        .property(Property::new("qty", DType::I16).default(1))
        .property(Property::new("level", DType::I8).default(1))
        .property(Property::new("time", DType::I64).unique())
        .property(Property::new("name", DType::Unicode(8)).unique())
        .property(Property::new("used", DType::Bool).index())
        .build()
        .expect("the benchmark schema is valid")
}

fn account() -> Arc<Component> {
    Component::builder("bench", "Account")
        .property(Property::new("balance", DType::I64))
        .build()
        .expect("the benchmark schema is valid")
}

fn open(flags: &Flags) -> Result<Ecs> {
    crate::store::destroy(&flags.db)?;
    crate::store::prepare(&flags.db)?;
    let mut options = Options::default()
        .write_buffer_size(flags.write_buffer_size)
        .bloom_bits_per_key(flags.bloom_bits)
        .wal(!flags.disable_wal)
        .value_threshold(flags.value_threshold);
    if let Some(n) = flags.max_background_compactions {
        options = options.compaction_threads(n);
    }
    Ecs::open(&flags.db, options).map_err(err("opening"))
}

fn load_items(ecs: &Ecs, table: &Table, rows: u64) -> Result<()> {
    let c = table.component().clone();
    let mut i = 0;
    while i < rows {
        let mut txn = ecs.begin();
        for n in i..(i + LOAD_BATCH).min(rows) {
            let mut r = Row::new(&c);
            r.set_id(n as i64 + 1);
            let set = |r: &mut Row| -> jkv_ecs::Result<()> {
                r.set("owner", (n / ROWS_PER_OWNER) as i64)?;
                r.set("model", (n % 1000) as f32 / 10.0)?;
                r.set("time", n as i64)?;
                r.set("name", format!("n{n}"))?;
                r.set("used", n % 2 == 0)?;
                Ok(())
            };
            set(&mut r).map_err(err("building a row"))?;
            txn.insert(table, r).map_err(err("loading"))?;
        }
        txn.commit().map_err(err("loading"))?;
        i += LOAD_BATCH;
    }
    Ok(())
}

fn retry_policy(sync: bool) -> RetryPolicy {
    RetryPolicy {
        attempts: 1_000_000,
        base: Duration::from_micros(1),
        jitter: true,
        write_options: WriteOptions { sync },
    }
}

/// Runs ECS benchmark `name`.
pub fn run(name: &str, flags: &Flags, seed: u64, progress: &ProgressBar) -> Result<Outcome> {
    let ecs = open(flags)?;
    let threads = flags.threads;
    let retries = AtomicU64::new(0);
    let commits = AtomicU64::new(0);
    let rows = flags.ecs_rows;
    let mut message = None;
    let stats = match name {
        "ecs_get" | "ecs_update" | "ecs_range" | "ecs_upsert" => {
            let table = ecs
                .table(&item(), "bench", 1)
                .map_err(err("creating the table"))?;
            load_items(&ecs, &table, rows)?;
            if flags.ecs_compact {
                ecs.db()
                    .flush()
                    .map_err(|e| Error::engine("jkv", "flushing", e))?;
                ecs.db()
                    .compact()
                    .map_err(|e| Error::engine("jkv", "compacting", e))?;
            }
            let row_size = table.component().row_size() as u64;
            let ops = if matches!(name, "ecs_get" | "ecs_range") {
                flags.reads()
            } else {
                flags.writes()
            };
            run_threads(threads, |tid, st| {
                let mut rng = Rng::new(seed + tid as u64);
                let policy = retry_policy(flags.sync);
                while st.done < ops {
                    match name {
                        "ecs_get" => {
                            let id = rng.below(rows) as i64 + 1;
                            st.reads += 1;
                            if ecs.get(&table, id).map_err(err("get"))?.is_some() {
                                st.found += 1;
                                st.bytes += row_size;
                            }
                        }
                        "ecs_range" => {
                            let owner = rng.below(rows.div_ceil(ROWS_PER_OWNER)) as i64;
                            let n = ecs
                                .range_rows(
                                    &table,
                                    &Range::eq("owner", owner).limit(ROWS_PER_OWNER as i64),
                                )
                                .map_err(err("range"))?
                                .len() as u64;
                            st.reads += 1;
                            st.found += u64::from(n > 0);
                            st.bytes += n * row_size;
                        }
                        "ecs_update" => {
                            let id = rng.below(rows) as i64 + 1;
                            let (_, attempts) = ecs
                                .retry_with(&policy, |txn| {
                                    let mut r = txn.get(&table, id)?.expect("loaded rows exist");
                                    let q = r.get_i64("qty")?;
                                    r.set("qty", (q + 1) % i16::MAX as i64)?;
                                    txn.update(&table, r)
                                })
                                .map_err(err("update"))?;
                            retries.fetch_add(attempts as u64 - 1, Ordering::Relaxed);
                            commits.fetch_add(1, Ordering::Relaxed);
                            st.bytes += row_size;
                        }
                        _ => {
                            // ecs_upsert: a fifth of the names are new.
                            let n = rng.below(rows + rows / 4);
                            let (_, attempts) = ecs
                                .retry_with(&policy, |txn| {
                                    txn.upsert(&table, "name", format!("n{n}"), |r| {
                                        let q = r.get_i64("qty")?;
                                        r.set("qty", (q + 1) % i16::MAX as i64)?;
                                        if r.version() == 0 {
                                            r.set("time", rows as i64 + n as i64)?;
                                        }
                                        Ok(())
                                    })
                                })
                                .map_err(err("upsert"))?;
                            retries.fetch_add(attempts as u64 - 1, Ordering::Relaxed);
                            commits.fetch_add(1, Ordering::Relaxed);
                            st.bytes += row_size;
                        }
                    }
                    st.done += 1;
                    tick(progress, st.done);
                }
                Ok(())
            })?
        }
        "ecs_transfer" => {
            let table = ecs
                .table(&account(), "bench", 1)
                .map_err(err("creating the table"))?;
            let accounts = flags.ecs_accounts;
            let c = table.component().clone();
            let mut i = 0;
            while i < accounts {
                let mut txn = ecs.begin();
                for n in i..(i + LOAD_BATCH).min(accounts) {
                    let mut r = Row::new(&c);
                    r.set_id(n as i64);
                    r.set("balance", BALANCE).map_err(err("building a row"))?;
                    txn.insert(&table, r).map_err(err("loading"))?;
                }
                txn.commit().map_err(err("loading"))?;
                i += LOAD_BATCH;
            }
            if flags.ecs_compact {
                ecs.db()
                    .flush()
                    .map_err(|e| Error::engine("jkv", "flushing", e))?;
                ecs.db()
                    .compact()
                    .map_err(|e| Error::engine("jkv", "compacting", e))?;
            }
            let zipf = Zipf::new(accounts, flags.zipf_alpha);
            let stats = run_threads(threads, |tid, st| {
                let mut rng = Rng::new(seed + tid as u64);
                let policy = retry_policy(flags.sync);
                while st.done < flags.writes() {
                    let from = zipf.sample(&mut rng) as i64;
                    let mut to = zipf.sample(&mut rng) as i64;
                    if to == from {
                        to = (from + 1) % accounts as i64;
                    }
                    let amount = 1 + rng.below(10) as i64;
                    let (_, attempts) = ecs
                        .retry_with(&policy, |txn| {
                            let mut a = txn.get(&table, from)?.expect("accounts exist");
                            let mut b = txn.get(&table, to)?.expect("accounts exist");
                            a.set("balance", a.get_i64("balance")? - amount)?;
                            b.set("balance", b.get_i64("balance")? + amount)?;
                            txn.update(&table, a)?;
                            txn.update(&table, b)
                        })
                        .map_err(err("transfer"))?;
                    retries.fetch_add(attempts as u64 - 1, Ordering::Relaxed);
                    commits.fetch_add(1, Ordering::Relaxed);
                    st.done += 1;
                    tick(progress, st.done);
                }
                Ok(())
            })?;
            let all = Range::between("id", f64::NEG_INFINITY, f64::INFINITY).limit(-1);
            let total: i64 = ecs
                .range(&table, &all)
                .map_err(err("checking the total"))?
                .iter()
                .map(|r| r.get_i64("balance").unwrap_or(0))
                .sum();
            let want = accounts as i64 * BALANCE;
            if total != want {
                return Err(Error::Flag(format!(
                    "ecs_transfer: total balance {total}, expected {want}"
                )));
            }
            message = Some(format!(
                "(total balance conserved: {total}; zipf_alpha {})",
                flags.zipf_alpha
            ));
            stats
        }
        other => return Err(Error::Flag(format!("{other} is not an ECS benchmark"))),
    };
    let c = commits.load(Ordering::Relaxed);
    if c > 0 {
        let r = format!(
            "({:.4} retries per commit)",
            retries.load(Ordering::Relaxed) as f64 / c as f64
        );
        message = Some(match message {
            Some(m) => format!("{m} {r}"),
            None => r,
        });
    }
    ecs.close().map_err(err("closing"))?;
    Ok(Outcome {
        merged: merge(&stats),
        message,
        user_bytes_written: 0,
    })
}

/// Draws 0..n with P(k) ∝ 1 / (k + 1)^alpha (alpha 0: uniform), by binary
/// search over the cumulative distribution.
struct Zipf {
    cdf: Vec<f64>,
    n: u64,
}

impl Zipf {
    fn new(n: u64, alpha: f64) -> Zipf {
        if alpha <= 0.0 {
            return Zipf { cdf: Vec::new(), n };
        }
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(alpha);
            cdf.push(sum);
        }
        for x in &mut cdf {
            *x /= sum;
        }
        Zipf { cdf, n }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        if self.cdf.is_empty() {
            return rng.below(self.n);
        }
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf
            .partition_point(|&c| c < u)
            .min(self.n as usize - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_concentrates_on_small_ranks() {
        let z = Zipf::new(100_000, 1.5);
        let mut rng = Rng::new(1);
        let hot = (0..10_000).filter(|_| z.sample(&mut rng) < 10).count();
        assert!(hot > 7_000, "{hot}");
        let u = Zipf::new(100, 0.0);
        assert!((0..1000).all(|_| u.sample(&mut rng) < 100));
    }
}
