//! jkv-sensor: sensor frames on the jkv engine. Radar and camera rigs
//! produce, at every instant, several frames of several channels; this
//! crate stores each sample under a `time | frame | channel` key, keeps a
//! channel registry beside them, and finds samples again by time range,
//! channel and kind. See docs/sensor.md.
//!
//! Layers: this crate uses only `jkv`'s public API (batches, snapshots,
//! range scans, range deletes).

mod client;
mod error;
mod frames;
mod ingest;
mod key;
pub mod load;
pub mod mcap;
mod registry;
mod server;
pub mod wire;

pub use client::Client;
pub use error::{Error, Result};
pub use frames::{Frames, Query, Sample, SampleIter};
pub use ingest::{Ingest, IngestOptions, IngestStats, OnWritten};
pub use key::{
    samples_end, time_end_inclusive, time_start, ChannelId, SampleKey, SAMPLE_KEY_LEN,
    SAMPLE_PREFIX,
};
pub use registry::{
    registry_key, ChannelInfo, ChannelKind, Registry, NAME_LEN_MAX, REGISTRY_KEY_LEN,
    REGISTRY_PREFIX,
};
pub use server::{Server, ServerOptions, ServerStats, Stopper, LINGER};
