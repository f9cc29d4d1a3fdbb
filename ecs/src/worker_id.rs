//! Worker ids and snowflake ids (the contract, section 1.9).
//!
//! [`WorkerKeeper`] hands out worker ids 0..1023 through a lease table on
//! the ECS layer itself (the volatile component `WorkerLease`): a worker id
//! is claimed by a transaction that inserts its lease, or takes over a lease
//! of the same node or one that expired; keep-alive and release are
//! `direct_set`s. Each lease stores the worker's last timestamp, so a
//! restarted worker whose clock went back cannot repeat ids.
//!
//! [`Snowflake`] makes ids: 41-bit milliseconds since [`EPOCH_MS`], 10-bit
//! worker id, 12-bit sequence (4096 ids per millisecond).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jkv::WriteOptions;

use crate::error::{Error, Result};
use crate::row::Row;
use crate::schema::{Component, DType, Property};
use crate::store::Ecs;
use crate::table::Table;
use crate::value::Value;

/// Start of snowflake time: 2024-01-01T00:00:00Z in Unix milliseconds
/// (41 bits of milliseconds then last until 2093).
pub const EPOCH_MS: i64 = 1_704_067_200_000;
/// Worker ids are 10 bits.
pub const WORKER_ID_MAX: u16 = 1023;
/// A clock that went back at most this far is waited out; further is an error.
pub const CLOCK_ROLLBACK_TOLERANCE_MS: i64 = 10_000;
/// A lease lasts this long past its last keep-alive.
pub const LEASE_MS: i64 = 60_000;
/// How often a holder should call [`WorkerKeeper::keep_alive`].
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A snowflake id generator for one worker id. Not shared: wrap it in a
/// mutex (as [`Ecs`] does) to use it from several threads.
#[derive(Debug)]
pub struct Snowflake {
    worker_id: u16,
    last_ms: i64,
    sequence: u16,
}

impl Snowflake {
    /// A generator for `worker_id` (panics past [`WORKER_ID_MAX`]: a
    /// programming error; use [`Snowflake::with_last_timestamp`] for ids
    /// from elsewhere).
    pub fn new(worker_id: u16) -> Snowflake {
        assert!(worker_id <= WORKER_ID_MAX, "worker ids are 10 bits");
        Snowflake {
            worker_id,
            last_ms: 0,
            sequence: 0,
        }
    }

    /// A generator for `worker_id` that makes no id at or before
    /// `last_timestamp_ms` (a worker's stored last timestamp).
    pub fn with_last_timestamp(worker_id: u16, last_timestamp_ms: i64) -> Result<Snowflake> {
        if worker_id > WORKER_ID_MAX {
            return Err(Error::invalid(format!(
                "worker id {worker_id} is past {WORKER_ID_MAX}"
            )));
        }
        Ok(Snowflake {
            worker_id,
            last_ms: last_timestamp_ms,
            sequence: 0,
        })
    }

    /// The millisecond of the last id made (for keep-alive).
    pub fn last_timestamp_ms(&self) -> i64 {
        self.last_ms
    }

    /// The next id: strictly greater than every earlier one of this generator.
    pub fn next_id(&mut self) -> Result<i64> {
        let mut now = now_ms();
        if now < self.last_ms {
            let behind = self.last_ms - now;
            if behind > CLOCK_ROLLBACK_TOLERANCE_MS {
                return Err(Error::invalid(format!(
                    "clock moved back {behind} ms (tolerance {CLOCK_ROLLBACK_TOLERANCE_MS} ms); refusing to make ids"
                )));
            }
            std::thread::sleep(Duration::from_millis(behind as u64));
            now = now_ms().max(self.last_ms);
        }
        if now == self.last_ms {
            self.sequence += 1;
            if self.sequence > 0xFFF {
                while now <= self.last_ms {
                    std::thread::yield_now();
                    now = now_ms();
                }
                self.sequence = 0;
            }
        } else {
            self.sequence = 0;
        }
        self.last_ms = now;
        let t = now - EPOCH_MS;
        if !(0..1 << 41).contains(&t) {
            return Err(Error::invalid(format!(
                "clock {now} ms lies outside snowflake time"
            )));
        }
        Ok((t << 22) | ((self.worker_id as i64) << 12) | self.sequence as i64)
    }
}

/// The lease component: `id` = worker id, `node_id` U96, `expires_at` and
/// `last_timestamp` in Unix ms. Volatile (keep-alive uses `direct_set`).
pub fn lease_component() -> Arc<Component> {
    Component::builder("jkv", "WorkerLease")
        .permission("admin")
        .volatile(true)
        .property(Property::new("node_id", DType::Unicode(96)))
        .property(Property::new("expires_at", DType::I64))
        .property(Property::new("last_timestamp", DType::I64))
        .build()
        .expect("the lease schema is valid")
}

/// This process's node id: `<machine-id>:<pid>`.
pub fn this_node_id() -> String {
    let machine = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-machine".into());
    format!("{machine}:{}", std::process::id())
}

/// Claims and keeps a worker id for one node.
pub struct WorkerKeeper {
    ecs: Ecs,
    table: Table,
    node_id: String,
    worker_id: Option<u16>,
}

impl WorkerKeeper {
    /// A keeper for `node_id` over the lease table in `instance` (cluster 0).
    pub fn new(ecs: &Ecs, instance: &str, node_id: impl Into<String>) -> Result<WorkerKeeper> {
        let table = ecs.table(&lease_component(), instance, 0)?;
        Ok(WorkerKeeper {
            ecs: ecs.clone(),
            table,
            node_id: node_id.into(),
            worker_id: None,
        })
    }

    /// The lease table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// This keeper's worker id: the cached one, else the first id 0..=1023
    /// whose lease is missing, this node's, or expired (claimed in a
    /// transaction retried up to 5 times on a race). [`Error::NotFound`]
    /// when every id is held by a live lease of another node.
    pub fn get_worker_id(&mut self) -> Result<u16> {
        if let Some(id) = self.worker_id {
            return Ok(id);
        }
        for id in 0..=WORKER_ID_MAX {
            let table = self.table.clone();
            let node = self.node_id.clone();
            let claimed = self.ecs.retry(5, |txn| {
                let now = now_ms();
                match txn.get(&table, id as i64)? {
                    None => {
                        let mut row = Row::new(table.component());
                        row.set_id(id as i64);
                        row.set("node_id", node.as_str())?;
                        row.set("expires_at", now + LEASE_MS)?;
                        row.set("last_timestamp", now)?;
                        txn.insert(&table, row)?;
                        Ok(true)
                    }
                    Some(mut row) => {
                        let before = row.clone();
                        let same_node =
                            row.get_str("node_id")? == crate::value::truncate_chars(&node, 96);
                        if same_node || row.get_i64("expires_at")? <= now {
                            let last = row.get_i64("last_timestamp")?.max(now);
                            row.set("node_id", node.as_str())?;
                            row.set("expires_at", now + LEASE_MS)?;
                            row.set("last_timestamp", last)?;
                            if !crate::commit::changed_columns(&before, &row).is_empty() {
                                txn.update(&table, row)?;
                            }
                            Ok(true)
                        } else {
                            Ok(false)
                        }
                    }
                }
            });
            match claimed {
                Ok(true) => {
                    self.worker_id = Some(id);
                    return Ok(id);
                }
                Ok(false) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotFound(
            "every worker id 0..=1023 is leased by a live node".into(),
        ))
    }

    /// Extends the lease to now + 60 s and stores `last_timestamp_ms`.
    pub fn keep_alive(&mut self, last_timestamp_ms: i64) -> Result<()> {
        let id = self.get_worker_id()?;
        self.ecs.direct_set(
            &self.table,
            id as i64,
            &[
                ("expires_at", Value::Int(now_ms() + LEASE_MS)),
                ("last_timestamp", Value::Int(last_timestamp_ms)),
            ],
            WriteOptions::SYNC,
        )
    }

    /// Gives the worker id up (its lease expires now).
    pub fn release(&mut self) -> Result<()> {
        if let Some(id) = self.worker_id.take() {
            self.ecs.direct_set(
                &self.table,
                id as i64,
                &[("expires_at", Value::Int(0))],
                WriteOptions::SYNC,
            )?;
        }
        Ok(())
    }

    /// max(stored last timestamp, now), or now without a lease.
    pub fn get_last_timestamp(&self) -> Result<i64> {
        let now = now_ms();
        let Some(id) = self.worker_id else {
            return Ok(now);
        };
        match self.ecs.get(&self.table, id as i64)? {
            Some(row) => Ok(row.get_i64("last_timestamp")?.max(now)),
            None => Ok(now),
        }
    }

    /// A snowflake generator for this keeper's worker id, starting after its
    /// last timestamp.
    pub fn snowflake(&mut self) -> Result<Snowflake> {
        let id = self.get_worker_id()?;
        Snowflake::with_last_timestamp(id, self.get_last_timestamp()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_the_worker() {
        let mut s = Snowflake::new(5);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = s.next_id().unwrap();
            assert!(id > last);
            assert_eq!((id >> 12) & 0x3FF, 5);
            last = id;
        }
    }

    #[test]
    fn a_clock_far_behind_the_last_timestamp_is_refused() {
        let mut s = Snowflake::with_last_timestamp(1, now_ms() + 60_000).unwrap();
        assert!(s.next_id().is_err());
        let mut s = Snowflake::with_last_timestamp(1, now_ms() + 50).unwrap();
        let id = s.next_id().unwrap();
        assert!(id >> 22 >= s.last_timestamp_ms() - EPOCH_MS - 1);
        assert!(Snowflake::with_last_timestamp(1024, 0).is_err());
    }
}
