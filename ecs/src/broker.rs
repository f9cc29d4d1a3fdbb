//! The subscription broker (the contract, section 1.8): row and range
//! subscriptions over one [`MqClient`], with channels reference-counted
//! across subscriptions.
//!
//! A range subscription listens on its index channel and on each result
//! row's channel. When the index channel fires, the range is re-run (ids
//! only) and diffed against the last id set: entering rows are reported as
//! rows and their channels subscribed, leaving rows are reported as `None`
//! and their channels released. When a row channel fires, the row is
//! re-read (once per batch, shared by all subscriptions) and reported to
//! every subscription that still tracks it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::error::Result;
use crate::notify::MqClient;
use crate::range::Range;
use crate::row::Row;
use crate::schema::ID;
use crate::store::Ecs;
use crate::table::Table;
use crate::value::Value;

/// A subscription's id, e.g. `Item.owner[10:None:1][:33]`.
pub type SubscriptionId = String;

/// What changed for one subscription: row id -> the row now, or `None`
/// when it was deleted or left the range.
pub type Update = HashMap<i64, Option<Row>>;

enum Subscription {
    Row {
        table: Table,
        id: i64,
    },
    Range {
        table: Table,
        range: Range,
        ids: Vec<i64>,
    },
}

/// Row and range subscriptions of one subscriber.
pub struct SubscriptionBroker {
    ecs: Ecs,
    mq: MqClient,
    subs: HashMap<SubscriptionId, Subscription>,
    /// channel -> number of subscriptions that need it.
    refs: HashMap<String, usize>,
}

impl SubscriptionBroker {
    /// A broker with its own MQ client.
    pub fn new(ecs: &Ecs) -> Result<SubscriptionBroker> {
        Ok(SubscriptionBroker {
            ecs: ecs.clone(),
            mq: ecs.mq()?,
            subs: HashMap::new(),
            refs: HashMap::new(),
        })
    }

    /// The channels subscribed now (each once).
    pub fn subscribed_channels(&self) -> Vec<String> {
        self.mq.subscribed_channels()
    }

    fn acquire(&mut self, channel: String) -> Result<()> {
        let n = self.refs.entry(channel.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.mq.subscribe(&channel)?;
        }
        Ok(())
    }

    fn release(&mut self, channel: &str) -> Result<()> {
        if let Some(n) = self.refs.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                self.refs.remove(channel);
                self.mq.unsubscribe(channel)?;
            }
        }
        Ok(())
    }

    /// Subscribes to the row whose `column` equals `value` (by id, or by an
    /// indexed column, first match). Returns `(None, None)` when no row
    /// matches; subscribing again returns the same id.
    pub fn subscribe_get(
        &mut self,
        table: &Table,
        column: &str,
        value: impl Into<Value>,
    ) -> Result<(Option<SubscriptionId>, Option<Row>)> {
        let Some(row) = self.ecs.get_by(table, column, value)? else {
            return Ok((None, None));
        };
        let id = row.id();
        let sub_id = format!("{}.{ID}[{id}:None:1][:1]", table.component().name());
        if !self.subs.contains_key(&sub_id) {
            self.acquire(table.row_channel(id))?;
            self.subs.insert(
                sub_id.clone(),
                Subscription::Row {
                    table: table.clone(),
                    id,
                },
            );
        }
        Ok((Some(sub_id), Some(row)))
    }

    /// Subscribes to `range`: the rows it matches now and every later row
    /// entering or leaving it. With `force`, an empty result still gets a
    /// subscription; without, it returns `(None, [])`.
    pub fn subscribe_range(
        &mut self,
        table: &Table,
        range: &Range,
        force: bool,
    ) -> Result<(Option<SubscriptionId>, Vec<Row>)> {
        let rows = self.ecs.range(table, range)?;
        if rows.is_empty() && !force {
            return Ok((None, rows));
        }
        let right = range
            .right
            .as_ref()
            .map_or("None".to_string(), |v| v.to_string());
        let sub_id = format!(
            "{}.{}[{}:{}:{}][:{}]",
            table.component().name(),
            range.column,
            range.left,
            right,
            if range.desc { -1 } else { 1 },
            range.limit
        );
        if !self.subs.contains_key(&sub_id) {
            self.acquire(table.index_channel(&range.column))?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id()).collect();
            for &id in &ids {
                self.acquire(table.row_channel(id))?;
            }
            self.subs.insert(
                sub_id.clone(),
                Subscription::Range {
                    table: table.clone(),
                    range: range.clone(),
                    ids,
                },
            );
        }
        Ok((Some(sub_id), rows))
    }

    /// Ends a subscription (unknown ids are a no-op), releasing the
    /// channels no other subscription needs.
    pub fn unsubscribe(&mut self, sub_id: &str) -> Result<()> {
        match self.subs.remove(sub_id) {
            Some(Subscription::Row { table, id }) => self.release(&table.row_channel(id)),
            Some(Subscription::Range { table, range, ids }) => {
                self.release(&table.index_channel(&range.column))?;
                for id in ids {
                    self.release(&table.row_channel(id))?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Waits up to `timeout` for notifications and returns what changed,
    /// per subscription (subscriptions without changes are left out).
    pub fn get_updates(&mut self, timeout: Duration) -> Result<HashMap<SubscriptionId, Update>> {
        let channels = self.mq.get_message(timeout)?;
        let mut out: HashMap<SubscriptionId, Update> = HashMap::new();
        if channels.is_empty() {
            return Ok(out);
        }
        // Index channels first: they decide which rows each range tracks.
        let mut entering: Vec<(SubscriptionId, Table, Vec<i64>, Vec<i64>)> = Vec::new();
        for (sub_id, sub) in &self.subs {
            if let Subscription::Range { table, range, ids } = sub {
                if channels.contains(&table.index_channel(&range.column)) {
                    let now = self.ecs.range_ids(table, range)?;
                    let before: HashSet<i64> = ids.iter().copied().collect();
                    let after: HashSet<i64> = now.iter().copied().collect();
                    let came: Vec<i64> = now
                        .iter()
                        .copied()
                        .filter(|id| !before.contains(id))
                        .collect();
                    let left: Vec<i64> = ids
                        .iter()
                        .copied()
                        .filter(|id| !after.contains(id))
                        .collect();
                    if !came.is_empty() || !left.is_empty() {
                        entering.push((sub_id.clone(), table.clone(), came, left));
                    }
                }
            }
        }
        let mut cache: HashMap<(String, i64), Option<Row>> = HashMap::new();
        for (sub_id, table, came, left) in entering {
            let update = out.entry(sub_id.clone()).or_default();
            for &id in &left {
                update.insert(id, None);
            }
            for &id in &came {
                let row = fetch(&self.ecs, &mut cache, &table, id)?;
                update.insert(id, row);
            }
            if let Some(Subscription::Range { ids, .. }) = self.subs.get_mut(&sub_id) {
                ids.retain(|id| !left.contains(id));
                ids.extend(came.iter().copied());
            }
            for &id in &came {
                self.acquire(table.row_channel(id))?;
            }
            for &id in &left {
                self.release(&table.row_channel(id))?;
            }
        }
        // Row channels: re-read each changed row once.
        for (sub_id, sub) in &self.subs {
            let (table, tracked): (&Table, Vec<i64>) = match sub {
                Subscription::Row { table, id } => (table, vec![*id]),
                Subscription::Range { table, ids, .. } => (table, ids.clone()),
            };
            for id in tracked {
                if channels.contains(&table.row_channel(id)) {
                    let row = fetch(&self.ecs, &mut cache, table, id)?;
                    out.entry(sub_id.clone()).or_default().insert(id, row);
                }
            }
        }
        Ok(out)
    }
}

fn fetch(
    ecs: &Ecs,
    cache: &mut HashMap<(String, i64), Option<Row>>,
    table: &Table,
    id: i64,
) -> Result<Option<Row>> {
    let key = (format!("{table:?}"), id);
    if let Some(row) = cache.get(&key) {
        return Ok(row.clone());
    }
    let row = ecs.get(table, id)?;
    cache.insert(key, row.clone());
    Ok(row)
}
