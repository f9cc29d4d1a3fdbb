//! `Frames`: samples on a `jkv::Db` (docs/sensor.md, "Reads and writes").
//!
//! Owns the sample keyspace (`0x00 'S'`, see [`crate::key`]) and the
//! channel registry's cache; leaves storage, snapshots and durability to
//! the engine. Every read goes through one engine snapshot, so a range
//! never shows half of a batch; a range is a streaming iterator over the
//! engine's scan (nothing is collected), and filters are a bitmap of
//! allowed channels resolved from the registry once, when the range is
//! opened. `Frames` is `Send + Sync`: share it in an `Arc`; writers need
//! no lock of their own (the engine groups concurrent batches).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use jkv::{Db, DbIterator, Snapshot, WriteBatch, WriteOptions};

use crate::error::Result;
use crate::key::{samples_end, time_start, ChannelId, SampleKey, SAMPLE_PREFIX};
use crate::registry::{ChannelInfo, ChannelKind, Registry};

/// One sample: a payload at a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Where it lives.
    pub key: SampleKey,
    /// Its bytes (opaque to this crate).
    pub payload: Bytes,
}

impl Sample {
    /// The sample of `payload` at (`time_ns`, `frame`, `channel`).
    pub fn new(time_ns: u64, frame: u32, channel: u16, payload: impl Into<Bytes>) -> Self {
        Sample {
            key: SampleKey::new(time_ns, frame, channel),
            payload: payload.into(),
        }
    }
}

/// A time-range query: `[from_ns, to_ns)`, optionally only some channels
/// and kinds, oldest or newest first.
///
/// With both channel and kind filters a sample must pass both (its channel
/// is listed and its registered kind is listed). A kind filter matches
/// registered channels only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// First time included, ns.
    pub from_ns: u64,
    /// First time excluded, ns.
    pub to_ns: u64,
    /// Only these channels; empty = every channel.
    pub channels: BTreeSet<ChannelId>,
    /// Only channels of these kinds; empty = every kind.
    pub kinds: BTreeSet<ChannelKind>,
    /// Descending (time, frame, channel) order instead of ascending.
    pub newest_first: bool,
}

impl Query {
    /// Every sample with `from_ns <= time < to_ns`, oldest first.
    pub fn range(from_ns: u64, to_ns: u64) -> Query {
        Query {
            from_ns,
            to_ns,
            channels: BTreeSet::new(),
            kinds: BTreeSet::new(),
            newest_first: false,
        }
    }

    /// Every sample with time < `u64::MAX` ns (the year 2554).
    pub fn all() -> Query {
        Query::range(0, u64::MAX)
    }

    /// Also allows `channel` (the first call restricts to it).
    pub fn channel(mut self, channel: u16) -> Query {
        self.channels.insert(ChannelId(channel));
        self
    }

    /// Also allows channels of `kind` (the first call restricts to it).
    pub fn kind(mut self, kind: ChannelKind) -> Query {
        self.kinds.insert(kind);
        self
    }

    /// Newest first.
    pub fn newest_first(mut self) -> Query {
        self.newest_first = true;
        self
    }
}

/// Which of the 65,536 channels a range yields: 8 KiB of bits.
struct ChannelFilter {
    bits: Box<[u64; 1024]>,
}

impl ChannelFilter {
    fn resolve(query: &Query, registry: &Registry) -> Option<ChannelFilter> {
        if query.channels.is_empty() && query.kinds.is_empty() {
            return None;
        }
        let mut bits = Box::new([0u64; 1024]);
        let mut allow = |c: ChannelId| bits[c.0 as usize / 64] |= 1 << (c.0 % 64);
        if query.kinds.is_empty() {
            query.channels.iter().copied().for_each(&mut allow);
        } else {
            for kind in &query.kinds {
                for c in registry.of_kind(*kind) {
                    if query.channels.is_empty() || query.channels.contains(&c) {
                        allow(c);
                    }
                }
            }
        }
        Some(ChannelFilter { bits })
    }

    fn allows(&self, c: ChannelId) -> bool {
        self.bits[c.0 as usize / 64] & (1 << (c.0 % 64)) != 0
    }
}

/// Samples of a range in key order (or reverse), read lazily from the
/// engine as of the snapshot taken when the range was opened. Yields
/// `Result`: a damaged key or engine error ends the iteration with it.
pub struct SampleIter {
    inner: DbIterator,
    filter: Option<ChannelFilter>,
    done: bool,
    /// Keeps the versions this iterator reads from being compacted away
    /// and their value-log files from being collected.
    _snapshot: Snapshot,
}

impl std::fmt::Debug for SampleIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleIter")
            .field("filtered", &self.filter.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl Iterator for SampleIter {
    type Item = Result<Sample>;

    fn next(&mut self) -> Option<Result<Sample>> {
        if self.done {
            return None;
        }
        for item in self.inner.by_ref() {
            let decoded = item
                .map_err(Into::into)
                .and_then(|(k, v)| Ok((SampleKey::decode(&k)?, v)));
            match decoded {
                Ok((key, payload)) => {
                    if self.filter.as_ref().is_none_or(|f| f.allows(key.channel)) {
                        return Some(Ok(Sample { key, payload }));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.done = true;
        None
    }
}

/// Sensor samples stored in one database, beside its channel registry.
#[derive(Debug)]
pub struct Frames {
    db: Arc<Db>,
    registry: Registry,
    sync: bool,
}

impl Frames {
    /// The samples of `db`; loads the channel registry. Writes are not
    /// synced unless [`Frames::sync`] says so.
    pub fn open(db: Arc<Db>) -> Result<Frames> {
        let registry = Registry::load(&db)?;
        Ok(Frames {
            db,
            registry,
            sync: false,
        })
    }

    /// Whether each write waits until it is durable (default false).
    pub fn sync(mut self, yes: bool) -> Frames {
        self.sync = yes;
        self
    }

    /// Whether writes are synced.
    pub fn is_sync(&self) -> bool {
        self.sync
    }

    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The channel registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers (or replaces) `channel`'s record; see [`Registry::register`].
    pub fn register_channel(&self, channel: u16, info: ChannelInfo) -> Result<()> {
        self.registry
            .register(&self.db, ChannelId(channel), info, self.sync)
    }

    /// Stores one sample (replacing one at the same key).
    pub fn put(&self, sample: &Sample) -> Result<()> {
        self.put_many(std::slice::from_ref(sample))
    }

    /// Stores `samples` atomically: after a crash all are there or none.
    pub fn put_many<'a>(&self, samples: impl IntoIterator<Item = &'a Sample>) -> Result<()> {
        let mut batch = WriteBatch::new();
        for s in samples {
            batch.put(s.key.encode(), &s.payload);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write(batch, WriteOptions { sync: self.sync })?;
        Ok(())
    }

    /// The payload at `key`, or `None`.
    pub fn get(&self, key: SampleKey) -> Result<Option<Bytes>> {
        Ok(self.db.get(key.encode())?)
    }

    /// Every frame and channel at `time_ns`, in (frame, channel) order.
    pub fn at_time(&self, time_ns: u64) -> SampleIter {
        let end = crate::key::time_end_inclusive(time_ns);
        let snapshot = self.db.snapshot();
        let inner = self.db.scan(time_start(time_ns).to_vec()..end, &snapshot);
        SampleIter {
            inner,
            filter: None,
            done: false,
            _snapshot: snapshot,
        }
    }

    /// The samples `query` selects, streamed.
    pub fn range(&self, query: &Query) -> SampleIter {
        let snapshot = self.db.snapshot();
        let start = time_start(query.from_ns).to_vec();
        let end = time_start(query.to_ns.max(query.from_ns)).to_vec();
        let inner = if query.newest_first {
            self.db.scan_rev(start..end, &snapshot)
        } else {
            self.db.scan(start..end, &snapshot)
        };
        SampleIter {
            inner,
            filter: ChannelFilter::resolve(query, &self.registry),
            done: false,
            _snapshot: snapshot,
        }
    }

    /// The newest sample of `channel` (greatest time, then frame), or
    /// `None`. Walks the samples backwards from the newest, so it costs
    /// the number of samples stored after the channel's last one.
    pub fn latest(&self, channel: u16) -> Result<Option<Sample>> {
        let query = Query::all().channel(channel).newest_first();
        let snapshot = self.db.snapshot();
        let mut it = SampleIter {
            inner: self
                .db
                .scan_rev(SAMPLE_PREFIX.to_vec()..samples_end().to_vec(), &snapshot),
            filter: ChannelFilter::resolve(&query, &self.registry),
            done: false,
            _snapshot: snapshot,
        };
        it.next().transpose()
    }

    /// Retention: deletes every sample with time < `time_ns`, as one range
    /// tombstone (its cost does not grow with the number of samples).
    /// The registry is untouched.
    pub fn delete_before(&self, time_ns: u64) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(time_start(0).as_slice()..time_start(time_ns).as_slice());
        self.db.write(batch, WriteOptions { sync: self.sync })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv::Options;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn open(dir: &std::path::Path) -> Frames {
        let db = Db::open(dir, Options::default().write_buffer_size(64 << 10)).expect("open");
        Frames::open(Arc::new(db)).expect("frames")
    }

    fn collect(it: SampleIter) -> Vec<(SampleKey, Vec<u8>)> {
        it.map(|s| {
            let s = s.expect("sample");
            (s.key, s.payload.to_vec())
        })
        .collect()
    }

    #[test]
    fn put_get_and_one_time() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        f.put(&Sample::new(10, 0, 1, &b"a"[..])).unwrap();
        f.put_many(&[
            Sample::new(10, 1, 0, &b"b"[..]),
            Sample::new(10, 0, 2, &b"c"[..]),
            Sample::new(11, 0, 0, &b"d"[..]),
            Sample::new(9, 7, 7, &b"e"[..]),
        ])
        .unwrap();
        assert_eq!(
            f.get(SampleKey::new(10, 0, 2)).unwrap().as_deref(),
            Some(&b"c"[..])
        );
        assert_eq!(f.get(SampleKey::new(10, 0, 3)).unwrap(), None);
        let at10: Vec<_> = collect(f.at_time(10)).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            at10,
            vec![
                SampleKey::new(10, 0, 1),
                SampleKey::new(10, 0, 2),
                SampleKey::new(10, 1, 0)
            ]
        );
        assert!(collect(f.at_time(12)).is_empty());
        f.put(&Sample::new(u64::MAX, 0, 0, &b"end"[..])).unwrap();
        assert_eq!(collect(f.at_time(u64::MAX)).len(), 1);
    }

    #[test]
    fn samples_share_a_database_with_plain_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        f.db().put(b"123", b"plain").unwrap();
        f.db().put(b"\x00E\x00", b"ecs-like").unwrap();
        f.db().put(b"\x00T", b"just past the samples").unwrap();
        f.register_channel(1, ChannelInfo::new(ChannelKind::Radar, "/r", "raw"))
            .unwrap();
        f.put(&Sample::new(5, 0, 1, &b"s"[..])).unwrap();
        assert_eq!(collect(f.range(&Query::all())).len(), 1);
        f.delete_before(u64::MAX).unwrap();
        assert!(collect(f.range(&Query::all())).is_empty());
        assert_eq!(f.db().get(b"123").unwrap().as_deref(), Some(&b"plain"[..]));
        assert_eq!(
            f.db().get(b"\x00T").unwrap().as_deref(),
            Some(&b"just past the samples"[..])
        );
        assert_eq!(f.registry().channels().len(), 1);
    }

    #[test]
    fn an_empty_or_inverted_range_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        f.put(&Sample::new(5, 0, 0, &b"x"[..])).unwrap();
        assert!(collect(f.range(&Query::range(5, 5))).is_empty());
        assert!(collect(f.range(&Query::range(9, 2))).is_empty());
        assert!(collect(f.range(&Query::range(9, 2).newest_first())).is_empty());
        assert_eq!(collect(f.range(&Query::range(5, 6))).len(), 1);
    }

    #[test]
    fn a_range_reads_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        for t in 0..10 {
            f.put(&Sample::new(t, 0, 0, vec![t as u8])).unwrap();
        }
        let mut it = f.range(&Query::all());
        assert_eq!(it.next().unwrap().unwrap().key.time_ns, 0);
        f.delete_before(100).unwrap();
        f.put(&Sample::new(5, 1, 0, &b"new"[..])).unwrap();
        assert_eq!(
            it.count(),
            9,
            "the open range sees neither the retention nor the new sample"
        );
        assert_eq!(collect(f.range(&Query::all())).len(), 1);
    }

    #[test]
    fn latest_of_a_channel() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        assert_eq!(f.latest(1).unwrap(), None);
        f.put_many(&[
            Sample::new(1, 0, 1, &b"old"[..]),
            Sample::new(3, 0, 1, &b"a"[..]),
            Sample::new(3, 2, 1, &b"newest"[..]),
            Sample::new(9, 0, 2, &b"other"[..]),
        ])
        .unwrap();
        assert_eq!(
            f.latest(1).unwrap(),
            Some(Sample::new(3, 2, 1, &b"newest"[..]))
        );
        assert_eq!(f.latest(2).unwrap().unwrap().key.time_ns, 9);
        assert_eq!(f.latest(3).unwrap(), None);
    }

    #[test]
    fn a_damaged_sample_key_ends_the_range_with_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        f.put(&Sample::new(1, 0, 0, &b"ok"[..])).unwrap();
        let mut bad = time_start(2).to_vec();
        bad.push(0);
        f.db().put(&bad, b"17 bytes").unwrap();
        let mut it = f.range(&Query::all());
        assert!(it.next().unwrap().is_ok());
        assert!(matches!(
            it.next(),
            Some(Err(crate::Error::Corruption { .. }))
        ));
        assert!(it.next().is_none());
    }

    #[test]
    fn retention_keeps_the_boundary_time() {
        let dir = tempfile::tempdir().unwrap();
        let f = open(dir.path());
        for t in [0, 99, 100, 101] {
            f.put(&Sample::new(t, u32::MAX, u16::MAX, &b"x"[..]))
                .unwrap();
            f.put(&Sample::new(t, 0, 0, &b"y"[..])).unwrap();
        }
        f.delete_before(100).unwrap();
        let times: Vec<u64> = collect(f.range(&Query::all()))
            .iter()
            .map(|(k, _)| k.time_ns)
            .collect();
        assert_eq!(times, vec![100, 100, 101, 101]);
        f.delete_before(0).unwrap();
        assert_eq!(collect(f.range(&Query::all())).len(), 4);
    }

    /// Random puts, batches, retention, flushes and reopens against a
    /// BTreeMap; every query (random range, channel and kind filters,
    /// both directions), point read, one-time read and latest compared.
    #[test]
    fn model_ranges_filters_newest_first_and_retention() {
        const KINDS: [Option<ChannelKind>; 6] = [
            Some(ChannelKind::Radar),
            Some(ChannelKind::Radar),
            Some(ChannelKind::Image),
            Some(ChannelKind::Lidar),
            Some(ChannelKind::Other),
            None, // never registered
        ];
        for seed in 0..4u64 {
            let dir = tempfile::tempdir().unwrap();
            let mut f = open(dir.path());
            for (c, kind) in KINDS.iter().enumerate() {
                if let Some(kind) = kind {
                    f.register_channel(
                        c as u16,
                        ChannelInfo::new(*kind, format!("/ch/{c}"), "raw"),
                    )
                    .unwrap();
                }
            }
            let mut rng = StdRng::seed_from_u64(seed);
            let mut model: BTreeMap<SampleKey, Vec<u8>> = BTreeMap::new();
            let mut retained_from = 0u64;
            let random_sample = |rng: &mut StdRng| {
                let len = if rng.gen_bool(0.05) {
                    rng.gen_range(4096..20_000)
                } else {
                    rng.gen_range(0..64)
                };
                let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                Sample::new(
                    rng.gen_range(0..200),
                    rng.gen_range(0..3),
                    rng.gen_range(0..KINDS.len() as u16),
                    payload,
                )
            };
            for step in 0..600 {
                match rng.gen_range(0..100) {
                    0..=39 => {
                        let s = random_sample(&mut rng);
                        f.put(&s).unwrap();
                        model.insert(s.key, s.payload.to_vec());
                    }
                    40..=54 => {
                        let batch: Vec<Sample> = (0..rng.gen_range(1..20))
                            .map(|_| random_sample(&mut rng))
                            .collect();
                        f.put_many(&batch).unwrap();
                        for s in batch {
                            model.insert(s.key, s.payload.to_vec());
                        }
                    }
                    55..=57 => {
                        retained_from = rng.gen_range(retained_from..retained_from + 40);
                        f.delete_before(retained_from).unwrap();
                        model.retain(|k, _| k.time_ns >= retained_from);
                    }
                    58..=59 => f.db().flush().unwrap(),
                    60 => {
                        let db = f.db().clone();
                        drop(f);
                        Arc::into_inner(db).expect("sole owner").close().unwrap();
                        f = open(dir.path());
                    }
                    61..=89 => {
                        let t0 = rng.gen_range(0..210);
                        let t1 = rng.gen_range(t0..=t0 + 80);
                        let mut q = Query::range(t0, t1);
                        for _ in 0..rng.gen_range(0..3) {
                            q = q.channel(rng.gen_range(0..KINDS.len() as u16 + 1));
                        }
                        if rng.gen_bool(0.4) {
                            q = q.kind(ChannelKind::ALL[rng.gen_range(0..4)]);
                        }
                        if rng.gen_bool(0.5) {
                            q = q.newest_first();
                        }
                        let pass = |k: &SampleKey| {
                            (q.channels.is_empty() || q.channels.contains(&k.channel))
                                && (q.kinds.is_empty()
                                    || KINDS
                                        .get(k.channel.0 as usize)
                                        .copied()
                                        .flatten()
                                        .is_some_and(|kind| q.kinds.contains(&kind)))
                        };
                        let mut want: Vec<(SampleKey, Vec<u8>)> = model
                            .range(SampleKey::new(t0, 0, 0)..SampleKey::new(t1, 0, 0))
                            .filter(|(k, _)| pass(k))
                            .map(|(k, v)| (*k, v.clone()))
                            .collect();
                        if q.newest_first {
                            want.reverse();
                        }
                        assert_eq!(collect(f.range(&q)), want, "seed {seed} step {step} {q:?}");
                    }
                    90..=94 => {
                        let t = rng.gen_range(0..200);
                        let want: Vec<_> = model
                            .range(SampleKey::new(t, 0, 0)..SampleKey::new(t + 1, 0, 0))
                            .map(|(k, v)| (*k, v.clone()))
                            .collect();
                        assert_eq!(
                            collect(f.at_time(t)),
                            want,
                            "seed {seed} step {step} at {t}"
                        );
                        let k = SampleKey::new(t, rng.gen_range(0..3), rng.gen_range(0..6));
                        assert_eq!(
                            f.get(k).unwrap().map(|b| b.to_vec()),
                            model.get(&k).cloned(),
                            "seed {seed} step {step} get {k:?}"
                        );
                    }
                    _ => {
                        let c = rng.gen_range(0..KINDS.len() as u16);
                        let want =
                            model
                                .iter()
                                .rev()
                                .find(|(k, _)| k.channel.0 == c)
                                .map(|(k, v)| Sample {
                                    key: *k,
                                    payload: Bytes::from(v.clone()),
                                });
                        assert_eq!(
                            f.latest(c).unwrap(),
                            want,
                            "seed {seed} step {step} latest {c}"
                        );
                    }
                }
            }
        }
    }
}
