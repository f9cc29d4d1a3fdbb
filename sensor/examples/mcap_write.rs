//! The baseline a recorder uses today: the `mcap` crate writing frames to
//! a local file (chunked, indexed, uncompressed, fsynced at the end), for
//! docs/benchmarks.md's comparison with ingest over TCP. The frames are
//! those `jkv sensor load` sends (same keys, same payloads).
//!
//! ```sh
//! cargo run --release -p jkv-sensor --example mcap_write -- FILE CHANNELS PAYLOAD_BYTES FRAMES
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use jkv_sensor::load::payload_of;
use jkv_sensor::SampleKey;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: mcap_write FILE CHANNELS PAYLOAD_BYTES FRAMES".into());
    }
    let channels: u16 = args[2].parse()?;
    let payload: usize = args[3].parse()?;
    let frames: u64 = args[4].parse()?;
    // Payloads are made before the clock starts, as a recorder receives them.
    let ticks = frames / channels as u64;
    let data: Vec<(SampleKey, Vec<u8>)> = (0..ticks)
        .flat_map(|t| (0..channels).map(move |c| SampleKey::new(1000 * t, 0, c)))
        .map(|k| (k, payload_of(k, payload)))
        .collect();
    let start = Instant::now();
    let file = std::fs::File::create(&args[1])?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    {
        let mut writer = mcap::WriteOptions::new()
            .compression(None)
            .chunk_size(Some(4 << 20))
            .create(&mut out)?;
        let ids: Vec<u16> = (0..channels)
            .map(|c| writer.add_channel(0, &format!("/ch/{c}"), "raw", &BTreeMap::new()))
            .collect::<Result<_, _>>()?;
        for (key, bytes) in &data {
            let header = mcap::records::MessageHeader {
                channel_id: ids[key.channel.0 as usize],
                sequence: key.frame,
                log_time: key.time_ns,
                publish_time: key.time_ns,
            };
            writer.write_to_known_channel(&header, bytes)?;
        }
        writer.finish()?;
    }
    out.flush()?;
    out.into_inner()?.sync_all()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = data.len() as f64 * payload as f64;
    println!(
        "mcap_write: {} frames of {payload} bytes, {channels} channels: {secs:.3} s, {:.0} frames/s, {:.1} MB/s",
        data.len(),
        data.len() as f64 / secs,
        bytes / 1e6 / secs
    );
    Ok(())
}
