//! jkv-ecs: ECS record tables on the jkv engine, for game servers such as
//! hetu. Components are typed, fixed-width row schemas; rows are stored in
//! numpy's layout; indexed columns get order-preserving index entries;
//! transactions commit all-or-nothing after optimistic version checks.
//! The contract is hetu's record-table backend; docs/ecs.md says what jkv
//! decided where it was open.
//!
//! ```no_run
//! use jkv_ecs::{Component, DType, Ecs, Property, Range};
//! # fn main() -> jkv_ecs::Result<()> {
//! let ecs = Ecs::open("/tmp/ecs-example", jkv::Options::default())?;
//! let item = Component::builder("game", "Item")
//!     .property(Property::new("owner", DType::I64).index())
//!     .property(Property::new("name", DType::Unicode(16)).unique())
//!     .build()?;
//! let items = ecs.table(&item, "server1", 1)?;
//! ecs.retry(5, |txn| {
//!     let mut row = ecs.new_row(&item)?;
//!     row.set("owner", 10)?.set("name", "sword")?;
//!     txn.insert(&items, row)?;
//!     Ok(())
//! })?;
//! let owned = ecs.range(&items, &Range::eq("owner", 10))?;
//! assert_eq!(owned.len(), 1);
//! # Ok(()) }
//! ```
//!
//! Layers: this crate uses only `jkv`'s public API (batches, snapshots,
//! range scans).
#![forbid(unsafe_code)]

mod broker;
mod commit;
mod error;
mod group_sync;
mod keys;
mod maint;
mod notify;
mod range;
mod row;
mod schema;
mod sortable;
mod store;
mod table;
mod txn;
mod value;
mod worker_id;

pub use broker::{SubscriptionBroker, SubscriptionId, Update};
pub use commit::Op;
pub use error::{Error, RaceKind, Result};
pub use keys::{index_channel, row_channel, ECS_PREFIX, ECS_TABLES_PREFIX};
pub use maint::{Maintenance, MaintenanceGuard, Meta, MigrationPlan, TableStatus};
pub use notify::{MqClient, BACKLOG_MAX_AGE, MERGE_WINDOW};
pub use range::Range;
pub use row::{Row, Rows};
pub use schema::{Component, ComponentBuilder, DType, Property, ID, VERSION};
pub use sortable::encode as sortable_bytes;
pub use store::Ecs;
pub use table::Table;
pub use txn::{RetryPolicy, RowState, Transaction};
pub use value::Value;
pub use worker_id::{
    lease_component, now_ms, this_node_id, Snowflake, WorkerKeeper, EPOCH_MS, KEEP_ALIVE_INTERVAL,
    LEASE_MS,
};
