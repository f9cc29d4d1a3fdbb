//! MCAP export and import (docs/sensor.md, "MCAP"): MCAP is the container
//! robotics recorders and viewers (ROS 2 bags, Foxglove) read. Written and
//! read with the `mcap` crate, the format's own implementation.
//!
//! Export: one MCAP channel per jkv channel that has samples in the range
//! (topic = the registry name, message encoding = the registry encoding;
//! an unregistered channel `c` becomes topic `/jkv/channel/c` with no
//! encoding), channel metadata `jkv.channel` (the id) and `jkv.kind`; each
//! sample is one message with log time and publish time = its time and
//! sequence = its frame. Chunked (4 MiB, uncompressed: payloads such as
//! images are compressed already) with message and chunk indexes and
//! statistics, so viewers can seek. The range is streamed from the engine.
//!
//! Import: maps the file and streams its messages into batches of at most
//! 4,096 samples or 32 MiB, each one engine write. A channel keeps its
//! `jkv.channel` id when the file has one and no other channel holds that
//! name; otherwise it gets the registry id of its topic, or the lowest free
//! id. Registry records are written (kind from `jkv.kind`, else `other`).

use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::frames::{Frames, Query, Sample};
use crate::key::{ChannelId, SampleKey};
use crate::registry::{ChannelInfo, ChannelKind};

/// Metadata key holding the jkv channel id.
pub const META_CHANNEL: &str = "jkv.channel";
/// Metadata key holding the channel kind word.
pub const META_KIND: &str = "jkv.kind";
const CHUNK_BYTES: u64 = 4 << 20;
const IMPORT_BATCH_SAMPLES: usize = 4096;
const IMPORT_BATCH_BYTES: usize = 32 << 20;

/// What an export or import moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McapReport {
    /// Messages (samples).
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Channels.
    pub channels: u64,
}

fn mcap_err(file: &Path) -> impl Fn(mcap::McapError) -> Error + '_ {
    move |e| Error::Mcap {
        file: file.display().to_string(),
        what: e.to_string(),
    }
}

/// The topic of an unregistered channel.
pub fn unregistered_topic(channel: ChannelId) -> String {
    format!("/jkv/channel/{channel}")
}

/// Writes the samples `query` selects to `out` as MCAP; `file` names it in
/// errors.
pub fn export<W: Write + Seek>(
    frames: &Frames,
    query: &Query,
    out: W,
    file: &Path,
) -> Result<McapReport> {
    let err = mcap_err(file);
    let mut writer = mcap::WriteOptions::new()
        .compression(None)
        .chunk_size(Some(CHUNK_BYTES))
        .profile("")
        .library(concat!("jkv-sensor ", env!("CARGO_PKG_VERSION")))
        .create(out)
        .map_err(&err)?;
    let mut ids: HashMap<ChannelId, u16> = HashMap::new();
    let mut report = McapReport::default();
    for item in frames.range(query) {
        let sample = item?;
        let channel = sample.key.channel;
        let id = match ids.get(&channel) {
            Some(id) => *id,
            None => {
                let info = frames.registry().get(channel);
                let (topic, encoding, kind) = match &info {
                    Some(i) => (i.name.clone(), i.encoding.clone(), i.kind),
                    None => (
                        unregistered_topic(channel),
                        String::new(),
                        ChannelKind::Other,
                    ),
                };
                let mut meta = BTreeMap::new();
                meta.insert(META_CHANNEL.to_string(), channel.0.to_string());
                if info.is_some() {
                    meta.insert(META_KIND.to_string(), kind.word().to_string());
                }
                let id = writer
                    .add_channel(0, &topic, &encoding, &meta)
                    .map_err(&err)?;
                ids.insert(channel, id);
                report.channels += 1;
                id
            }
        };
        let header = mcap::records::MessageHeader {
            channel_id: id,
            sequence: sample.key.frame,
            log_time: sample.key.time_ns,
            publish_time: sample.key.time_ns,
        };
        writer
            .write_to_known_channel(&header, &sample.payload)
            .map_err(&err)?;
        report.messages += 1;
        report.bytes += sample.payload.len() as u64;
    }
    writer.finish().map_err(&err)?;
    Ok(report)
}

/// Exports to the file `path` (created or replaced, synced).
pub fn export_file(frames: &Frames, query: &Query, path: &Path) -> Result<McapReport> {
    let file = std::fs::File::create(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let report = export(frames, query, &mut out, path)?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(format!("writing {}", path.display()), e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
    Ok(report)
}

/// Imports every message of the MCAP file at `path` into `frames`.
pub fn import_file(frames: &Frames, path: &Path) -> Result<McapReport> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: the file is only read; a recording changed by another process
    // while it is imported may give garbage, which the MCAP reader's
    // checks turn into errors rather than undefined behaviour in our code.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
    import(frames, &map, path)
}

/// Imports every message of the MCAP bytes `bytes`; `file` names them in errors.
pub fn import(frames: &Frames, bytes: &[u8], file: &Path) -> Result<McapReport> {
    let err = mcap_err(file);
    let stream = mcap::MessageStream::new(bytes).map_err(&err)?;
    // MCAP channel id -> jkv channel.
    let mut ids: HashMap<u16, ChannelId> = HashMap::new();
    let mut report = McapReport::default();
    let mut batch: Vec<Sample> = Vec::new();
    let mut batch_bytes = 0usize;
    for message in stream {
        let message = message.map_err(&err)?;
        let channel = match ids.get(&message.channel.id) {
            Some(c) => *c,
            None => {
                let c = map_channel(frames, &message.channel)?;
                ids.insert(message.channel.id, c);
                report.channels += 1;
                c
            }
        };
        let sample = Sample {
            key: SampleKey {
                time_ns: message.log_time,
                frame: message.sequence,
                channel,
            },
            payload: bytes::Bytes::copy_from_slice(&message.data),
        };
        batch_bytes += sample.payload.len();
        report.messages += 1;
        report.bytes += sample.payload.len() as u64;
        batch.push(sample);
        if batch.len() >= IMPORT_BATCH_SAMPLES || batch_bytes >= IMPORT_BATCH_BYTES {
            frames.put_many(&batch)?;
            batch.clear();
            batch_bytes = 0;
        }
    }
    frames.put_many(&batch)?;
    Ok(report)
}

/// The jkv channel for an MCAP channel, registering it when needed.
fn map_channel(frames: &Frames, channel: &mcap::Channel) -> Result<ChannelId> {
    let registry = frames.registry();
    let kind = channel
        .metadata
        .get(META_KIND)
        .and_then(|k| k.parse::<ChannelKind>().ok())
        .unwrap_or(ChannelKind::Other);
    let info = ChannelInfo::new(
        kind,
        channel.topic.clone(),
        channel.message_encoding.clone(),
    );
    let wanted = channel
        .metadata
        .get(META_CHANNEL)
        .and_then(|c| c.parse::<u16>().ok())
        .map(ChannelId);
    let by_name = registry.by_name(&channel.topic);
    let id = match (wanted, by_name) {
        // The topic is registered already: its samples join that channel.
        (_, Some(existing)) => existing,
        // The file's own id, if free.
        (Some(w), None) if registry.get(w).is_none() => w,
        _ => (0..=u16::MAX)
            .map(ChannelId)
            .find(|c| registry.get(*c).is_none())
            .ok_or_else(|| Error::invalid("every channel id is registered"))?,
    };
    let unregistered = wanted.is_some_and(|w| channel.topic == unregistered_topic(w));
    if registry.get(id).is_none() && !unregistered {
        frames.register_channel(id.0, info)?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv::{Db, Options};
    use std::sync::Arc;

    fn open(dir: &Path) -> Frames {
        Frames::open(Arc::new(Db::open(dir, Options::default()).unwrap())).unwrap()
    }

    fn all(f: &Frames) -> Vec<Sample> {
        f.range(&Query::all()).map(|s| s.unwrap()).collect()
    }

    fn fill(f: &Frames) {
        f.register_channel(
            1,
            ChannelInfo::new(ChannelKind::Image, "/camera/front", "jpeg"),
        )
        .unwrap();
        f.register_channel(2, ChannelInfo::new(ChannelKind::Radar, "/radar/0", "raw"))
            .unwrap();
        f.register_channel(
            9,
            ChannelInfo::new(ChannelKind::Lidar, "/lidar/idle", "pcd"),
        )
        .unwrap();
        let mut samples = Vec::new();
        for t in 0..50u64 {
            for frame in 0..2u32 {
                samples.push(Sample::new(
                    1_000 + t,
                    frame,
                    1,
                    vec![(t as u8) ^ 0x55; 70_000],
                ));
                samples.push(Sample::new(
                    1_000 + t,
                    frame,
                    2,
                    vec![t as u8; 1 + t as usize],
                ));
            }
            samples.push(Sample::new(
                1_000 + t,
                0,
                7,
                format!("unregistered {t}").into_bytes(),
            ));
        }
        samples.push(Sample::new(2_000, 0, 2, Vec::new()));
        f.put_many(&samples).unwrap();
    }

    #[test]
    fn export_then_import_reproduces_every_sample_byte_for_byte() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let src = open(a.path());
        fill(&src);
        let file = a.path().join("out.mcap");
        let exported = export_file(&src, &Query::all(), &file).unwrap();
        assert_eq!(exported.messages, 50 * 5 + 1);
        assert_eq!(exported.channels, 3);
        // 7 MB of images over 4 MiB chunks: several chunks, all indexed.
        let bytes = std::fs::read(&file).unwrap();
        let summary = mcap::Summary::read(&bytes)
            .unwrap()
            .expect("a summary section");
        let chunks = summary.stats.expect("statistics").chunk_count;
        assert!(chunks >= 2, "{chunks} chunks");
        assert_eq!(summary.chunk_indexes.len() as u32, chunks);
        let dst = open(b.path());
        let imported = import_file(&dst, &file).unwrap();
        assert_eq!(imported, exported);
        assert_eq!(all(&dst), all(&src));
        // Registered channels come back with their ids, kinds and
        // encodings; the idle one has no samples, so no MCAP channel; the
        // unregistered one stays unregistered.
        assert_eq!(
            dst.registry().channels(),
            vec![
                (
                    ChannelId(1),
                    ChannelInfo::new(ChannelKind::Image, "/camera/front", "jpeg")
                ),
                (
                    ChannelId(2),
                    ChannelInfo::new(ChannelKind::Radar, "/radar/0", "raw")
                ),
            ]
        );
        // Importing again writes the same keys: still one copy of each.
        import_file(&dst, &file).unwrap();
        assert_eq!(all(&dst).len(), all(&src).len());
    }

    #[test]
    fn the_mcap_reader_sees_topics_times_counts_and_indexes() {
        let a = tempfile::tempdir().unwrap();
        let src = open(a.path());
        fill(&src);
        let file = a.path().join("range.mcap");
        let q = Query::range(1_010, 1_020).channel(1).channel(7);
        export_file(&src, &q, &file).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let summary = mcap::Summary::read(&bytes)
            .unwrap()
            .expect("a summary section");
        let stats = summary.stats.expect("statistics");
        assert_eq!(stats.message_count, 10 * 3);
        assert_eq!(stats.message_start_time, 1_010);
        assert_eq!(stats.message_end_time, 1_019);
        assert!(stats.chunk_count >= 1);
        assert_eq!(summary.chunk_indexes.len() as u32, stats.chunk_count);
        let mut topics: Vec<(String, String, String)> = summary
            .channels
            .values()
            .map(|c| {
                (
                    c.topic.clone(),
                    c.message_encoding.clone(),
                    c.metadata[META_CHANNEL].clone(),
                )
            })
            .collect();
        topics.sort();
        assert_eq!(
            topics,
            vec![
                ("/camera/front".into(), "jpeg".into(), "1".into()),
                ("/jkv/channel/7".into(), "".into(), "7".into()),
            ]
        );
        let messages: Vec<_> = mcap::MessageStream::new(&bytes)
            .unwrap()
            .map(|m| m.unwrap())
            .collect();
        assert_eq!(messages.len(), 30);
        for (i, m) in messages.iter().enumerate() {
            let t = 1_010 + (i / 3) as u64;
            assert_eq!((m.log_time, m.publish_time), (t, t));
            let (topic, sequence) = [
                // Key order within a time: (frame, channel).
                ("/camera/front", 0),
                ("/jkv/channel/7", 0),
                ("/camera/front", 1),
            ][i % 3];
            assert_eq!((m.channel.topic.as_str(), m.sequence), (topic, sequence));
            let want = src
                .get(SampleKey::new(t, sequence, if i % 3 == 1 { 7 } else { 1 }))
                .unwrap()
                .unwrap();
            assert_eq!(m.data.as_ref(), want.as_ref());
        }
    }

    #[test]
    fn a_damaged_or_foreign_file_is_an_mcap_error() {
        let a = tempfile::tempdir().unwrap();
        let f = open(a.path());
        let path = a.path().join("bad.mcap");
        std::fs::write(&path, b"not an mcap file at all").unwrap();
        let err = import_file(&f, &path).unwrap_err();
        assert!(matches!(err, Error::Mcap { .. }), "{err}");
        assert!(err.to_string().contains("bad.mcap"), "{err}");
        assert!(matches!(
            import_file(&f, &a.path().join("missing.mcap")),
            Err(Error::Io { .. })
        ));
        fill(&f);
        let good = a.path().join("good.mcap");
        export_file(&f, &Query::all(), &good).unwrap();
        let mut bytes = std::fs::read(&good).unwrap();
        bytes.truncate(bytes.len() / 2);
        let cut = a.path().join("cut.mcap");
        std::fs::write(&cut, &bytes).unwrap();
        let b = tempfile::tempdir().unwrap();
        assert!(matches!(
            import_file(&open(b.path()), &cut),
            Err(Error::Mcap { .. })
        ));
    }

    #[test]
    fn an_imported_topic_taken_by_another_id_joins_that_channel() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let src = open(a.path());
        fill(&src);
        let file = a.path().join("x.mcap");
        export_file(&src, &Query::range(1_000, 1_001).channel(2), &file).unwrap();
        let dst = open(b.path());
        dst.register_channel(2, ChannelInfo::new(ChannelKind::Image, "/other", ""))
            .unwrap();
        dst.register_channel(5, ChannelInfo::new(ChannelKind::Radar, "/radar/0", "raw"))
            .unwrap();
        import_file(&dst, &file).unwrap();
        let got: Vec<u16> = all(&dst).iter().map(|s| s.key.channel.0).collect();
        assert_eq!(got, vec![5, 5]);
    }
}
