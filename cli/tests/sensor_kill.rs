//! `jkv sensor serve --sync` killed with SIGKILL while a client streams:
//! after a restart every acknowledged sample is there, byte for byte and
//! once, and nothing is there that was not sent.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jkv_sensor::{Client, Frames, Query, Sample};

fn serve(dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jkv"))
        .args([
            "sensor",
            "serve",
            "--sync",
            "--listen",
            "127.0.0.1:0",
            "--path",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("jkv starts");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("address line")
        .parse()
        .unwrap();
    (child, addr)
}

fn payload(round: u64, i: u64) -> Vec<u8> {
    let len = 100 + (i % 7) as usize * 1500; // some over the value-log threshold
    (0..len)
        .map(|b| (b as u64 ^ i ^ round << 5) as u8)
        .collect()
}

#[test]
fn acknowledged_samples_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_per_round = Vec::new();
    for round in 0..3u64 {
        let (mut child, addr) = serve(dir.path());
        let mut client = Client::connect(addr, None).unwrap();
        let reader = client.stream().try_clone().unwrap();
        let acked = Arc::new(AtomicU64::new(0));
        let acked_r = acked.clone();
        // Read acknowledgements on another thread while this one sends.
        let ack_thread = std::thread::spawn(move || {
            let mut r = Client::from_stream(reader);
            while let Ok(jkv_sensor::wire::Reply::Ack(n)) = r.read_reply() {
                acked_r.store(n, Ordering::SeqCst);
            }
        });
        let mut sent = 0u64;
        let kill_after = 200 + round * 150;
        while acked.load(Ordering::SeqCst) < kill_after {
            if client
                .send(&Sample::new(
                    round * 1_000_000 + sent,
                    0,
                    round as u16,
                    payload(round, sent),
                ))
                .is_err()
            {
                break;
            }
            sent += 1;
            if sent.is_multiple_of(64) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        ack_thread.join().unwrap();
        let acked = acked.load(Ordering::SeqCst);
        assert!(acked >= kill_after && acked <= sent);
        acked_per_round.push((acked, sent));
    }
    let db = jkv::Db::open(dir.path(), jkv::Options::default()).unwrap();
    let frames = Frames::open(Arc::new(db)).unwrap();
    for (round, (acked, sent)) in acked_per_round.into_iter().enumerate() {
        let round = round as u64;
        let base = round * 1_000_000;
        let got: Vec<Sample> = frames
            .range(&Query::range(base, base + 1_000_000))
            .map(|s| s.unwrap())
            .collect();
        // Samples arrive in order on one connection and batches are
        // atomic, so what survives is a prefix of what was sent, at
        // least as long as what was acknowledged.
        assert!(
            got.len() as u64 >= acked,
            "round {round}: {} stored, {acked} acknowledged",
            got.len()
        );
        assert!(got.len() as u64 <= sent);
        eprintln!(
            "round {round}: {sent} sent, {acked} acknowledged, {} stored",
            got.len()
        );
        for (i, s) in got.iter().enumerate() {
            assert_eq!(
                s.key.time_ns,
                base + i as u64,
                "round {round}: a gap or duplicate"
            );
            assert_eq!(s.payload.as_ref(), payload(round, i as u64).as_slice());
        }
    }
}
