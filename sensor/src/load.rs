//! The load generator (docs/sensor.md, "Load generator"): connections
//! that send samples of deterministic content to an ingest server at a
//! given rate, measure acknowledgement latency, and can later check that
//! every acknowledged sample is stored byte for byte.
//!
//! Each connection runs two threads: a sender (paced to `rate_hz` ticks
//! per second; each tick is one sample of every channel the connection
//! owns) and an acknowledgement reader. Channel `c` belongs to connection
//! `c % connections`. A sample's payload is a function of its key, so
//! verification regenerates it instead of keeping it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::frames::{Frames, Sample};
use crate::key::SampleKey;
use crate::wire::{self, Reply};

/// What to send. Defaults in each field's doc.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The server.
    pub connect: SocketAddr,
    /// Channels 0..N. Default 4.
    pub channels: u16,
    /// Ticks per second (one sample per channel each); 0 = as fast as the
    /// server acknowledges. Default 100.
    pub rate_hz: u64,
    /// Payload bytes of each sample. Default 1024.
    pub payload_bytes: usize,
    /// How long to send. Default 5 s.
    pub duration: Duration,
    /// Connections, each owning channels `c` with `c % connections == i`.
    /// Default 1.
    pub connections: u16,
    /// Token for the hello frame.
    pub token: Option<Vec<u8>>,
    /// Time of the first tick, ns; also where verification looks.
    /// Default: now.
    pub start_ns: u64,
    /// Most samples sent but not yet acknowledged per connection (bounds
    /// the generator's memory when `rate_hz` is 0). Default 65,536.
    pub in_flight_max: usize,
}

impl LoadOptions {
    /// The defaults, sending to `connect`.
    pub fn new(connect: SocketAddr) -> Self {
        LoadOptions {
            connect,
            channels: 4,
            rate_hz: 100,
            payload_bytes: 1024,
            duration: Duration::from_secs(5),
            connections: 1,
            token: None,
            start_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            in_flight_max: 65_536,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Samples sent.
    pub sent: u64,
    /// Samples acknowledged.
    pub acked: u64,
    /// Payload bytes acknowledged.
    pub acked_bytes: u64,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
    /// Acknowledgement latency percentiles, µs: p50, p99, max.
    pub latency_us: [u64; 3],
    /// Per connection: ticks acknowledged in full, first tick time and
    /// nanoseconds between ticks (what [`verify`] checks).
    pub acked_ticks: Vec<u64>,
    /// Nanoseconds between ticks.
    pub tick_ns: u64,
}

impl LoadReport {
    /// Samples per second acknowledged.
    pub fn frames_per_sec(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload MB (10^6 bytes) per second acknowledged.
    pub fn mb_per_sec(&self) -> f64 {
        self.acked_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The payload of the sample at `key`: `len` bytes of a xorshift stream
/// seeded from the key.
pub fn payload_of(key: SampleKey, len: usize) -> Vec<u8> {
    let mut x = key.time_ns
        ^ (key.channel.0 as u64) << 48
        ^ (key.frame as u64) << 32
        ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn channels_of(connection: u16, opts: &LoadOptions) -> Vec<u16> {
    (0..opts.channels)
        .filter(|c| c % opts.connections == connection)
        .collect()
}

fn tick_ns(opts: &LoadOptions) -> u64 {
    // With no rate, ticks are still 1 µs apart in time so keys differ.
    1_000_000_000u64
        .checked_div(opts.rate_hz)
        .map_or(1000, |ns| ns.max(1))
}

struct Inflight {
    /// Send instants of samples not yet acknowledged, oldest first.
    sent_at: VecDeque<Instant>,
    acked: u64,
    latencies_us: Vec<u64>,
    last_ack: Option<Instant>,
    failure: Option<String>,
    done: bool,
}

/// Runs the load; returns once every sent sample is acknowledged (or the
/// server failed or gave no acknowledgement for 30 s).
pub fn run(opts: &LoadOptions) -> Result<LoadReport> {
    if opts.channels == 0 || opts.connections == 0 || opts.connections > opts.channels {
        return Err(Error::invalid(
            "need at least one channel, one connection, and no more connections than channels",
        ));
    }
    let tick = tick_ns(opts);
    let started = Instant::now();
    let workers: Vec<_> = (0..opts.connections)
        .map(|i| {
            let opts = opts.clone();
            std::thread::spawn(move || connection(i, &opts, tick))
        })
        .collect();
    let mut report = LoadReport {
        tick_ns: tick,
        ..LoadReport::default()
    };
    let mut latencies = Vec::new();
    let mut last_ack = started;
    let mut failure = None;
    for w in workers {
        match w.join() {
            Ok(Ok((sent, acked, lat, last, ticks, bytes))) => {
                report.sent += sent;
                report.acked += acked;
                report.acked_bytes += bytes;
                latencies.extend(lat);
                last_ack = last_ack.max(last);
                report.acked_ticks.push(ticks);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(Error::invalid("a load connection thread panicked")),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * p).round() as usize]
    };
    report.latency_us = [pct(0.5), pct(0.99), pct(1.0)];
    report.elapsed = last_ack - started;
    Ok(report)
}

type ConnOutcome = (u64, u64, Vec<u64>, Instant, u64, u64);

fn connection(i: u16, opts: &LoadOptions, tick: u64) -> Result<ConnOutcome> {
    let channels = channels_of(i, opts);
    let mut client = Client::connect(opts.connect, opts.token.as_deref())?;
    let reader = client
        .stream()
        .try_clone()
        .map_err(|e| Error::io("cloning the socket", e))?;
    let state = Arc::new((
        Mutex::new(Inflight {
            sent_at: VecDeque::new(),
            acked: 0,
            latencies_us: Vec::new(),
            last_ack: None,
            failure: None,
            done: false,
        }),
        parking_lot::Condvar::new(),
    ));
    let for_reader = state.clone();
    let ack_thread = std::thread::spawn(move || {
        let mut r = Client::from_stream(reader);
        let _ = r.set_read_timeout(Some(Duration::from_secs(30)));
        let (lock, cv) = &*for_reader;
        loop {
            let reply = r.read_reply();
            let now = Instant::now();
            let mut s = lock.lock();
            match reply {
                Ok(Reply::Ack(n)) => {
                    while s.acked < n {
                        match s.sent_at.pop_front() {
                            Some(at) => s.latencies_us.push((now - at).as_micros() as u64),
                            None => break,
                        }
                        s.acked += 1;
                    }
                    s.last_ack = Some(now);
                    cv.notify_all();
                    if s.done && s.sent_at.is_empty() {
                        return;
                    }
                }
                Ok(Reply::Error(msg)) => {
                    s.failure = Some(msg);
                    cv.notify_all();
                    return;
                }
                Err(e) => {
                    if !(s.done && s.sent_at.is_empty()) {
                        s.failure = Some(e.to_string());
                    }
                    cv.notify_all();
                    return;
                }
            }
        }
    });
    let begin = Instant::now();
    let mut buf = Vec::new();
    let mut ticks = 0u64;
    let (lock, cv) = &*state;
    while begin.elapsed() < opts.duration {
        if opts.rate_hz > 0 {
            let due = begin + Duration::from_nanos(ticks * tick);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        buf.clear();
        let time_ns = opts.start_ns + ticks * tick;
        for &c in &channels {
            let key = SampleKey::new(time_ns, 0, c);
            let sample = Sample {
                key,
                payload: payload_of(key, opts.payload_bytes).into(),
            };
            buf.extend_from_slice(&wire::encode_sample(&sample));
        }
        {
            let mut s = lock.lock();
            while s.sent_at.len() + channels.len() > opts.in_flight_max && s.failure.is_none() {
                cv.wait(&mut s);
            }
            if let Some(f) = &s.failure {
                return Err(Error::Refused(f.clone()));
            }
            let now = Instant::now();
            s.sent_at.extend(std::iter::repeat_n(now, channels.len()));
        }
        client.send_raw(&buf)?;
        ticks += 1;
    }
    let sent = ticks * channels.len() as u64;
    let mut s = lock.lock();
    s.done = true;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.acked < sent && s.failure.is_none() {
        if cv.wait_until(&mut s, deadline).timed_out() {
            break;
        }
    }
    let outcome = (
        sent,
        s.acked,
        std::mem::take(&mut s.latencies_us),
        s.last_ack.unwrap_or(begin),
        s.acked / channels.len() as u64,
        s.acked * opts.payload_bytes as u64,
    );
    let failure = s.failure.take();
    drop(s);
    let _ = client.stream().shutdown(std::net::Shutdown::Both);
    let _ = ack_thread.join();
    if let Some(f) = failure {
        return Err(Error::Refused(f));
    }
    if outcome.1 < sent {
        return Err(Error::invalid(format!(
            "connection {i}: {} of {sent} samples acknowledged within 30 s of the end",
            outcome.1
        )));
    }
    Ok(outcome)
}

/// Checks that every sample `report` says was acknowledged is in `frames`
/// with the payload `opts` made. Returns how many were checked; a missing
/// or different one is [`Error::Corruption`] naming its key.
pub fn verify(frames: &Frames, opts: &LoadOptions, report: &LoadReport) -> Result<u64> {
    let mut checked = 0;
    for (i, ticks) in report.acked_ticks.iter().enumerate() {
        for c in channels_of(i as u16, opts) {
            for t in 0..*ticks {
                let key = SampleKey::new(opts.start_ns + t * report.tick_ns, 0, c);
                match frames.get(key)? {
                    None => {
                        return Err(Error::corruption(
                            &key.encode(),
                            "acknowledged sample is missing",
                        ))
                    }
                    Some(p) if p.as_ref() != payload_of(key, opts.payload_bytes).as_slice() => {
                        return Err(Error::corruption(
                            &key.encode(),
                            "acknowledged sample's payload differs from what was sent",
                        ))
                    }
                    Some(_) => checked += 1,
                }
            }
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_a_function_of_the_key() {
        let a = payload_of(SampleKey::new(5, 0, 1), 100);
        assert_eq!(a.len(), 100);
        assert_eq!(a, payload_of(SampleKey::new(5, 0, 1), 100));
        assert_ne!(a, payload_of(SampleKey::new(5, 0, 2), 100));
        assert_ne!(a, payload_of(SampleKey::new(6, 0, 1), 100));
        assert!(payload_of(SampleKey::new(1, 0, 0), 0).is_empty());
    }

    #[test]
    fn channels_split_across_connections() {
        let mut o = LoadOptions::new("127.0.0.1:1".parse().unwrap());
        o.channels = 5;
        o.connections = 2;
        assert_eq!(channels_of(0, &o), vec![0, 2, 4]);
        assert_eq!(channels_of(1, &o), vec![1, 3]);
    }
}
