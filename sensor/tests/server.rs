//! The ingest server through real loopback sockets: several clients at
//! once, acknowledgements in order and only for stored samples, and every
//! way a connection can go wrong (killed mid-frame, corrupted frame,
//! oversize frame, missing or wrong token, silence, one client too many,
//! partial frames over the memory budget) closing only that connection.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jkv::{Db, Options};
use jkv_sensor::wire::{self, FrameType};
use jkv_sensor::{
    Client, Error, Frames, Query, Sample, SampleKey, Server, ServerOptions, ServerStats, Stopper,
};

struct Running {
    addr: std::net::SocketAddr,
    stopper: Stopper,
    handle: JoinHandle<jkv_sensor::Result<ServerStats>>,
    frames: Arc<Frames>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops the server; the frames stay readable while they live.
    fn stop(self) -> (ServerStats, Stored) {
        self.stopper.stop();
        let stats = self
            .handle
            .join()
            .expect("server thread")
            .expect("server run");
        (
            stats,
            Stored {
                frames: self.frames,
                _dir: self._dir,
            },
        )
    }
}

/// The database of a stopped server, and the directory it lives in.
struct Stored {
    frames: Arc<Frames>,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Stored {
    type Target = Frames;
    fn deref(&self) -> &Frames {
        &self.frames
    }
}

fn start(options: ServerOptions) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let frames = Arc::new(Frames::open(Arc::new(db)).unwrap());
    let options = ServerOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..options
    };
    let server = Server::bind(frames.clone(), options).unwrap();
    let addr = server.local_addr();
    let stopper = server.stopper();
    let handle = std::thread::spawn(move || server.run());
    Running {
        addr,
        stopper,
        handle,
        frames,
        _dir: dir,
    }
}

fn payload(channel: u16, i: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|b| (b as u32 ^ i ^ (channel as u32) << 3) as u8)
        .collect()
}

fn stored(frames: &Frames) -> Vec<Sample> {
    frames.range(&Query::all()).map(|s| s.unwrap()).collect()
}

fn expect_refused(client: &mut Client, words: &str) {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        match client.read_reply() {
            Ok(_) => continue, // acknowledgements before the error
            Err(Error::Refused(msg)) => {
                assert!(
                    msg.contains(words),
                    "refusal {msg:?} does not say {words:?}"
                );
                return;
            }
            Err(e) => panic!("expected a refusal saying {words:?}, got {e}"),
        }
    }
}

#[test]
fn several_clients_are_acknowledged_in_order_and_stored_byte_for_byte() {
    let server = start(ServerOptions::default());
    const CLIENTS: u16 = 4;
    const PER_CLIENT: u32 = 300;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut client = Client::connect(addr, None).unwrap();
                let mut acks = Vec::new();
                for i in 0..PER_CLIENT {
                    let len = if i.is_multiple_of(50) {
                        70_000
                    } else {
                        100 + i as usize
                    };
                    client
                        .send(&Sample::new(1000 + i as u64, i % 3, c, payload(c, i, len)))
                        .unwrap();
                }
                while client.acked() < PER_CLIENT as u64 {
                    match client.read_reply().unwrap() {
                        wire::Reply::Ack(n) => acks.push(n),
                        other => panic!("{other:?}"),
                    }
                }
                acks
            })
        })
        .collect();
    for w in workers {
        let acks = w.join().unwrap();
        assert!(
            acks.windows(2).all(|p| p[0] < p[1]),
            "acks not increasing: {acks:?}"
        );
        assert_eq!(*acks.last().unwrap(), PER_CLIENT as u64);
    }
    let (stats, frames) = server.stop();
    assert_eq!(stats.connections_accepted, CLIENTS as u64);
    assert_eq!(stats.samples_received, CLIENTS as u64 * PER_CLIENT as u64);
    let all = stored(&frames);
    assert_eq!(all.len(), CLIENTS as usize * PER_CLIENT as usize);
    for s in all {
        let i = (s.key.time_ns - 1000) as u32;
        let len = if i.is_multiple_of(50) {
            70_000
        } else {
            100 + i as usize
        };
        assert_eq!(s.key.frame, i % 3);
        assert_eq!(
            s.payload.as_ref(),
            payload(s.key.channel.0, i, len).as_slice()
        );
    }
}

#[test]
fn a_client_killed_mid_frame_loses_only_that_frame() {
    let server = start(ServerOptions::default());
    let mut steady = Client::connect(server.addr, None).unwrap();
    let mut victim = Client::connect(server.addr, None).unwrap();
    for i in 0..10 {
        victim
            .send(&Sample::new(i, 0, 1, payload(1, i as u32, 500)))
            .unwrap();
    }
    victim.flush().unwrap();
    let half = wire::encode_sample(&Sample::new(99, 0, 1, payload(1, 99, 5000)));
    victim.send_raw(&half[..2600]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(victim); // the process dies: the socket closes mid-frame
    for i in 0..10 {
        steady
            .send(&Sample::new(i, 0, 2, payload(2, i as u32, 500)))
            .unwrap();
    }
    steady.flush().unwrap();
    let (stats, frames) = server.stop();
    let all = stored(&frames);
    assert_eq!(all.iter().filter(|s| s.key.channel.0 == 1).count(), 10);
    assert_eq!(all.iter().filter(|s| s.key.channel.0 == 2).count(), 10);
    assert!(frames.get(SampleKey::new(99, 0, 1)).unwrap().is_none());
    assert_eq!(stats.connections_failed, 1);
}

#[test]
fn a_corrupted_frame_closes_only_that_connection() {
    let server = start(ServerOptions::default());
    let mut good = Client::connect(server.addr, None).unwrap();
    let mut bad = Client::connect(server.addr, None).unwrap();
    for i in 0..5 {
        bad.send(&Sample::new(i, 0, 1, payload(1, i as u32, 64)))
            .unwrap();
    }
    bad.flush().unwrap();
    let mut frame = wire::encode_sample(&Sample::new(50, 0, 1, payload(1, 50, 64)));
    frame[wire::HEADER_LEN + 10] ^= 0x01;
    bad.send_raw(&frame).unwrap();
    expect_refused(&mut bad, "checksum mismatch");
    // The refused connection is closed: the next read sees its end.
    assert!(matches!(bad.read_reply(), Err(Error::Io { .. })));

    let mut garbage = Client::connect(server.addr, None).unwrap();
    garbage.send_raw(&[0x47u8; 40]).unwrap();
    expect_refused(&mut garbage, "magic");

    good.send(&Sample::new(7, 0, 2, &b"fine"[..])).unwrap();
    good.flush().unwrap();
    let (stats, frames) = server.stop();
    let all = stored(&frames);
    assert_eq!(all.len(), 6);
    assert!(frames.get(SampleKey::new(50, 0, 1)).unwrap().is_none());
    assert_eq!(stats.connections_failed, 2);
}

#[test]
fn an_oversize_frame_is_refused_before_its_payload_is_read() {
    let server = start(ServerOptions {
        payload_len_max: 1000,
        ..ServerOptions::default()
    });
    let mut client = Client::connect(server.addr, None).unwrap();
    client.send(&Sample::new(1, 0, 0, vec![1u8; 1000])).unwrap();
    client.flush().unwrap();
    // Only the header: the server must refuse without waiting for 1001 bytes.
    let header = wire::encode_header(FrameType::Sample, SampleKey::new(2, 0, 0), &[0u8; 1001]);
    client.send_raw(&header).unwrap();
    expect_refused(&mut client, "payload of 1001 bytes, over the limit of 1000");
    let (_, frames) = server.stop();
    assert_eq!(stored(&frames).len(), 1);
}

#[test]
fn a_token_server_admits_only_clients_that_prove_the_token() {
    let server = start(ServerOptions {
        token: Some(b"s3cret".to_vec()),
        ..ServerOptions::default()
    });
    let mut none = Client::connect(server.addr, None).unwrap();
    none.send(&Sample::new(1, 0, 0, &b"x"[..])).unwrap();
    expect_refused(
        &mut none,
        "hello frame with the token must come before the first sample",
    );

    let mut wrong = Client::connect(server.addr, Some(b"s3creT")).unwrap();
    wrong.send(&Sample::new(2, 0, 0, &b"x"[..])).unwrap();
    expect_refused(&mut wrong, "wrong token");

    let mut right = Client::connect(server.addr, Some(b"s3cret")).unwrap();
    right.send(&Sample::new(3, 0, 0, &b"x"[..])).unwrap();
    right.flush().unwrap();
    let (stats, frames) = server.stop();
    let times: Vec<u64> = stored(&frames).iter().map(|s| s.key.time_ns).collect();
    assert_eq!(times, vec![3]);
    assert_eq!(stats.connections_failed, 2);
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let frames = Arc::new(Frames::open(Arc::new(db)).unwrap());
    let options = ServerOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..ServerOptions::default()
    };
    let err = Server::bind(frames.clone(), options).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert!(err.to_string().contains("without a token file"), "{err}");
    let empty = ServerOptions {
        token: Some(Vec::new()),
        ..ServerOptions::default()
    };
    assert!(matches!(
        Server::bind(frames, empty),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_silent_client_is_closed_after_the_idle_timeout() {
    let server = start(ServerOptions {
        idle_timeout: Duration::from_millis(300),
        ..ServerOptions::default()
    });
    let t = Instant::now();
    let mut silent = Client::connect(server.addr, None).unwrap();
    let mut busy = Client::connect(server.addr, None).unwrap();
    for i in 0..10 {
        busy.send(&Sample::new(i, 0, 0, &b"x"[..])).unwrap();
        busy.flush().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    expect_refused(&mut silent, "idle for");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // The busy one, which never paused for 300 ms, is still served.
    busy.send(&Sample::new(100, 0, 0, &b"x"[..])).unwrap();
    busy.flush().unwrap();
    let (stats, frames) = server.stop();
    assert_eq!(stored(&frames).len(), 11);
    assert_eq!(stats.connections_failed, 1);
}

#[test]
fn one_client_more_than_the_limit_is_refused_and_its_slot_frees_later() {
    let server = start(ServerOptions {
        connections_max: 2,
        ..ServerOptions::default()
    });
    let mut a = Client::connect(server.addr, None).unwrap();
    let mut b = Client::connect(server.addr, None).unwrap();
    for c in [&mut a, &mut b] {
        c.send(&Sample::new(1, 0, 0, &b"x"[..])).unwrap();
        c.flush().unwrap();
    }
    let mut extra = Client::connect(server.addr, None).unwrap();
    expect_refused(&mut extra, "too many connections");
    drop(a);
    // The server notices the close on its next event; retry until let in.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = Client::connect(server.addr, None).unwrap();
        if again.send(&Sample::new(2, 0, 0, &b"y"[..])).is_ok() && again.flush().is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (stats, frames) = server.stop();
    assert!(stats.connections_refused >= 1);
    assert_eq!(stored(&frames).len(), 2);
}

#[test]
fn partial_frames_wait_for_the_memory_budget_and_all_complete() {
    let server = start(ServerOptions {
        partial_bytes_max: 10_000,
        ..ServerOptions::default()
    });
    let workers: Vec<_> = (0..4u16)
        .map(|c| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut client = Client::connect(addr, None).unwrap();
                for i in 0..20u32 {
                    let frame =
                        wire::encode_sample(&Sample::new(i as u64, 0, c, payload(c, i, 6000)));
                    // Half now, half later: the frame is partial meanwhile.
                    client.send_raw(&frame[..3000]).unwrap();
                    std::thread::sleep(Duration::from_millis(2));
                    client.send_raw(&frame[3000..]).unwrap();
                }
                client.wait_acked(20).unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let (stats, frames) = server.stop();
    assert_eq!(stored(&frames).len(), 80);
    assert!(stats.partial_bytes_peak <= 10_000, "{stats:?}");
    assert!(stats.partial_bytes_peak >= 6000, "{stats:?}");
}

#[test]
fn stopping_writes_and_acknowledges_everything_accepted() {
    let server = start(ServerOptions::default());
    let mut client = Client::connect(server.addr, None).unwrap();
    let mut raw = Vec::new();
    for i in 0..2000u32 {
        raw.extend_from_slice(&wire::encode_sample(&Sample::new(
            i as u64,
            0,
            0,
            payload(0, i, 200),
        )));
    }
    client.send_raw(&raw).unwrap();
    client.stream().flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let (stats, frames) = server.stop();
    // The client reads acknowledgements until the server hangs up.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut acked = 0;
    while let Ok(wire::Reply::Ack(n)) = client.read_reply() {
        acked = n;
    }
    let all = stored(&frames);
    assert_eq!(acked, stats.samples_received);
    assert_eq!(all.len() as u64, stats.samples_received);
    assert_eq!(
        all.len(),
        2000,
        "everything sent before the stop arrived within 100 ms"
    );
}
