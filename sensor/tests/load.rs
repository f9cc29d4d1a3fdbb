//! The load generator against a real server on loopback: it reports what
//! was acknowledged, and verification finds every acknowledged sample
//! byte for byte, and notices one that is missing or altered.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use jkv::{Db, Options};
use jkv_sensor::load::{self, LoadOptions};
use jkv_sensor::{Error, Frames, SampleKey, Server, ServerOptions};

#[test]
fn every_acknowledged_sample_of_a_load_run_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let frames = Arc::new(Frames::open(Arc::new(db)).unwrap());
    let server = Server::bind(
        frames.clone(),
        ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let mut opts = LoadOptions::new(server.local_addr());
    let stopper = server.stopper();
    let handle = std::thread::spawn(move || server.run());
    opts.channels = 5;
    opts.connections = 2;
    opts.rate_hz = 0;
    opts.payload_bytes = 5000;
    opts.duration = Duration::from_millis(300);
    opts.start_ns = 1_000_000;
    let report = load::run(&opts).unwrap();
    assert!(report.acked > 100, "{report:?}");
    assert_eq!(report.acked, report.sent);
    assert_eq!(report.acked_bytes, report.acked * 5000);
    assert!(report.latency_us[0] <= report.latency_us[1]);
    assert!(report.latency_us[1] <= report.latency_us[2]);
    assert!(report.frames_per_sec() > 0.0 && report.mb_per_sec() > 0.0);
    stopper.stop();
    let stats = handle.join().unwrap().unwrap();
    assert_eq!(stats.samples_received, report.sent);
    assert_eq!(load::verify(&frames, &opts, &report).unwrap(), report.acked);

    // A missing sample and an altered one are both caught.
    let victim = SampleKey::new(opts.start_ns + report.tick_ns, 0, 3);
    frames.db().delete(victim.encode()).unwrap();
    let err = load::verify(&frames, &opts, &report).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }));
    assert!(err.to_string().contains("missing"), "{err}");
    frames.db().put(victim.encode(), b"other bytes").unwrap();
    let err = load::verify(&frames, &opts, &report).unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn a_paced_run_sends_at_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let frames = Arc::new(Frames::open(Arc::new(db)).unwrap());
    let server = Server::bind(
        frames.clone(),
        ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let mut opts = LoadOptions::new(server.local_addr());
    let stopper = server.stopper();
    let handle = std::thread::spawn(move || server.run());
    opts.channels = 2;
    opts.rate_hz = 200;
    opts.duration = Duration::from_millis(500);
    let report = load::run(&opts).unwrap();
    // 200 ticks/s for 0.5 s, 2 channels: about 200 samples.
    assert!((180..=204).contains(&report.sent), "{report:?}");
    stopper.stop();
    handle.join().unwrap().unwrap();
    assert_eq!(load::verify(&frames, &opts, &report).unwrap(), report.sent);
}

#[test]
fn bad_load_options_are_refused() {
    let mut opts = LoadOptions::new("127.0.0.1:9".parse().unwrap());
    opts.connections = 5;
    assert!(matches!(load::run(&opts), Err(Error::InvalidArgument(_))));
}
