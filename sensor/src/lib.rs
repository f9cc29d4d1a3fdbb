//! jkv-sensor: sensor frames on the jkv engine. Radar and camera rigs
//! produce, at every instant, several frames of several channels; this
//! crate stores each sample under a `time | frame | channel` key, keeps a
//! channel registry beside them, and finds samples again by time range,
//! channel and kind. See docs/sensor.md.
//!
//! Layers: this crate uses only `jkv`'s public API (batches, snapshots,
//! range scans, range deletes).

mod error;
mod key;

pub use error::{Error, Result};
pub use key::{
    samples_end, time_end_inclusive, time_start, ChannelId, SampleKey, SAMPLE_KEY_LEN,
    SAMPLE_PREFIX,
};
