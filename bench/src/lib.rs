//! jkv-bench: whole-workload benchmarks that speak RocksDB db_bench's flags
//! and result lines, so one script can run jkv, its Rust peers (fjall and
//! redb, behind cargo features) and RocksDB's own db_bench with the same
//! flags and compare them line by line. See docs/benchmarks.md.
//!
//! Modules: [`flags`] parses the command line, [`keys`] makes keys and
//! values, [`store`] puts each engine behind one trait, [`workloads`] runs
//! the benchmarks, [`report`] merges and prints their figures, and
//! [`summary`] turns repeated runs into medians, ratios and a chart.
#![forbid(unsafe_code)]

pub mod ecs;
pub mod error;
pub mod flags;
pub mod keys;
pub mod report;
pub mod store;
pub mod summary;
pub mod workloads;
