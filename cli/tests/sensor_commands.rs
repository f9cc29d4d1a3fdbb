//! `jkv sensor serve|query|register|channels` through the real binary:
//! a server started the way a user starts it accepts samples over
//! loopback, stops cleanly on SIGTERM and SIGINT with everything
//! acknowledged stored; `query` prints one summary line per time, filters
//! by channel and kind, runs newest first and dumps payloads; bad
//! arguments and unsafe listening addresses are refused with `ERR`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use jkv_sensor::{Client, Error, Sample};

fn jkv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jkv"))
}

fn run(args: &[&str]) -> Output {
    jkv().args(args).output().expect("jkv runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Serving {
    child: Child,
    addr: SocketAddr,
}

/// Starts `jkv sensor serve` on a system-chosen loopback port and reads
/// the address it prints.
fn serve(dir: &Path, extra: &[&str]) -> Serving {
    let mut child = jkv()
        .args(["sensor", "serve", "--path"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jkv starts");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    // Keep the rest of stdout for the exit summary.
    child.stdout = Some(out.into_inner());
    Serving { child, addr }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill failed");
}

#[test]
fn serve_then_query_the_way_a_user_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let reg = run(&[
        "sensor",
        "register",
        "--path",
        db.to_str().unwrap(),
        "--id",
        "1",
        "--kind",
        "image",
        "--name",
        "/camera/front",
        "--encoding",
        "jpeg",
    ]);
    assert!(reg.status.success(), "{}", stderr(&reg));
    assert_eq!(stdout(&reg), "OK\n");
    let reg = run(&[
        "sensor",
        "register",
        "--path",
        db.to_str().unwrap(),
        "--id",
        "2",
        "--kind",
        "radar",
        "--name",
        "/radar/0",
    ]);
    assert!(reg.status.success(), "{}", stderr(&reg));

    let server = serve(&db, &["--sync"]);
    let mut client = Client::connect(server.addr, None).unwrap();
    for t in [100u64, 200, 300] {
        for frame in 0..2u32 {
            client
                .send(&Sample::new(t, frame, 1, vec![7u8; 1000]))
                .unwrap();
            client
                .send(&Sample::new(t, frame, 2, vec![9u8; 10]))
                .unwrap();
        }
    }
    client
        .send(&Sample::new(400, 0, 3, &b"unregistered"[..]))
        .unwrap();
    assert_eq!(client.flush().unwrap(), 13);
    signal(&server.child, libc::SIGTERM);
    let out = server.child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("stopped: 1 connections"), "{summary}");
    assert!(
        summary.contains("13 samples received, 13 written"),
        "{summary}"
    );

    let path = db.to_str().unwrap();
    let q = run(&[
        "sensor", "query", "--path", path, "--from", "100", "--to", "400",
    ]);
    assert!(q.status.success(), "{}", stderr(&q));
    assert_eq!(
        stdout(&q),
        "100 frames=2 channels=2 samples=4 bytes=2020\n\
         200 frames=2 channels=2 samples=4 bytes=2020\n\
         300 frames=2 channels=2 samples=4 bytes=2020\n\
         (12 samples, 3 times, 6060 bytes)\n"
    );
    let q = run(&[
        "sensor",
        "query",
        "--path",
        path,
        "--from",
        "150",
        "--channel",
        "2",
        "--channel",
        "3",
        "--newest-first",
    ]);
    assert_eq!(
        stdout(&q),
        "400 frames=1 channels=1 samples=1 bytes=12\n\
         300 frames=2 channels=1 samples=2 bytes=20\n\
         200 frames=2 channels=1 samples=2 bytes=20\n\
         (5 samples, 3 times, 52 bytes)\n"
    );
    let q = run(&[
        "sensor", "query", "--path", path, "--kind", "image", "--to", "201",
    ]);
    assert_eq!(
        stdout(&q),
        "100 frames=2 channels=1 samples=2 bytes=2000\n\
         200 frames=2 channels=1 samples=2 bytes=2000\n\
         (4 samples, 2 times, 4000 bytes)\n"
    );
    let dump = dir.path().join("dump");
    let q = run(&[
        "sensor",
        "query",
        "--path",
        path,
        "--from",
        "300",
        "--to",
        "301",
        "--channel",
        "1",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(stdout(&q), "(2 samples, 1 times, 2000 bytes)\n");
    let mut files: Vec<String> = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, vec!["300-0-1.bin", "300-1-1.bin"]);
    assert_eq!(
        std::fs::read(dump.join("300-1-1.bin")).unwrap(),
        vec![7u8; 1000]
    );

    let ch = run(&["sensor", "channels", "--path", path]);
    assert_eq!(
        stdout(&ch),
        "1 image /camera/front jpeg\n2 radar /radar/0 \n"
    );
}

#[test]
fn sigint_stops_the_server_cleanly_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let mut client = Client::connect(server.addr, None).unwrap();
    client.send(&Sample::new(5, 0, 0, &b"x"[..])).unwrap();
    client.flush().unwrap();
    signal(&server.child, libc::SIGINT);
    let out = server.child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stopping"), "{}", stderr(&out));
    let q = run(&["sensor", "query", "--path", dir.path().to_str().unwrap()]);
    assert_eq!(
        stdout(&q),
        "5 frames=1 channels=1 samples=1 bytes=1\n(1 samples, 1 times, 1 bytes)\n"
    );
}

#[test]
fn a_token_file_is_required_off_loopback_and_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let o = run(&[
        "sensor",
        "serve",
        "--path",
        path.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ERR refusing to listen on 0.0.0.0:0"),
        "{}",
        stderr(&o)
    );
    assert!(!path.exists(), "a refused start creates no database");

    let token = dir.path().join("token");
    std::fs::write(&token, "").unwrap();
    let o = run(&[
        "sensor",
        "serve",
        "--path",
        path.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert!(stderr(&o).contains("is empty"), "{}", stderr(&o));
    let missing = dir.path().join("nope");
    let o = run(&[
        "sensor",
        "serve",
        "--path",
        path.to_str().unwrap(),
        "--token-file",
        missing.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("cannot read token file"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&token, "letmein\n").unwrap();
    let server = serve(&path, &["--token-file", token.to_str().unwrap()]);
    let mut stranger = Client::connect(server.addr, Some(b"guess")).unwrap();
    stranger.send(&Sample::new(1, 0, 0, &b"x"[..])).unwrap();
    match stranger.flush() {
        Err(Error::Refused(msg)) => assert!(msg.contains("wrong token"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let mut friend = Client::connect(server.addr, Some(b"letmein")).unwrap();
    friend.send(&Sample::new(2, 0, 0, &b"y"[..])).unwrap();
    friend.flush().unwrap();
    signal(&server.child, libc::SIGTERM);
    let out = server.child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("wrong token"),
        "the refusal is logged: {}",
        stderr(&out)
    );
    let q = run(&["sensor", "query", "--path", path.to_str().unwrap()]);
    assert_eq!(
        stdout(&q),
        "2 frames=1 channels=1 samples=1 bytes=1\n(1 samples, 1 times, 1 bytes)\n"
    );
}

#[test]
fn bad_query_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let o = run(&[
        "sensor",
        "query",
        "--path",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).starts_with("ERR cannot open"), "{}", stderr(&o));
    let reg = run(&[
        "sensor", "register", "--path", path, "--id", "1", "--kind", "sonar", "--name", "/s",
    ]);
    assert!(
        stderr(&reg).contains("unknown channel kind \"sonar\""),
        "{}",
        stderr(&reg)
    );
    let reg = run(&[
        "sensor", "register", "--path", path, "--id", "1", "--kind", "radar", "--name", "/r",
    ]);
    assert!(reg.status.success());
    let o = run(&[
        "sensor", "query", "--path", path, "--from", "9", "--to", "3",
    ]);
    assert!(
        stderr(&o).contains("ERR --from 9 is after --to 3"),
        "{}",
        stderr(&o)
    );
    let o = run(&["sensor", "query", "--path", path, "--kind", "camera"]);
    assert!(
        stderr(&o).contains("unknown channel kind"),
        "{}",
        stderr(&o)
    );
    let o = run(&["sensor", "query", "--path", path, "--channel", "70000"]);
    assert!(!o.status.success());
    let o = run(&["sensor", "query", "--path", path]);
    assert_eq!(stdout(&o), "(0 samples, 0 times, 0 bytes)\n");
    let help = run(&["sensor", "serve", "--help"]);
    for flag in [
        "--listen",
        "--sync",
        "--token-file",
        "--idle-timeout-ms",
        "--max-connections",
        "--max-payload",
        "[default: 127.0.0.1:7421]",
    ] {
        assert!(stdout(&help).contains(flag), "serve --help lacks {flag}");
    }
}

#[test]
fn load_reports_rates_and_verifies_after_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]);
    let addr = server.addr.to_string();
    let mut load = jkv()
        .args([
            "sensor",
            "load",
            "--connect",
            &addr,
            "--channels",
            "3",
            "--rate",
            "0",
            "--payload",
            "2000",
            "--seconds",
            "0.3",
            "--connections",
            "3",
            "--verify",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(load.stdout.take().unwrap());
    let mut report = String::new();
    out.read_line(&mut report).unwrap();
    assert!(
        report.starts_with("load: 3 connections, 3 channels, 2000-byte payloads: "),
        "{report}"
    );
    for word in ["frames/s", "MB/s", "p50", "p99", "max"] {
        assert!(report.contains(word), "{report}");
    }
    let mut waiting = String::new();
    out.read_line(&mut waiting).unwrap();
    assert!(
        waiting.starts_with("waiting for the server to release"),
        "{waiting}"
    );
    signal(&server.child, libc::SIGTERM);
    assert!(server.child.wait_with_output().unwrap().status.success());
    let mut verified = String::new();
    out.read_line(&mut verified).unwrap();
    let acked: u64 = report
        .split(" acknowledged")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acked > 0);
    assert_eq!(verified, format!("verified {acked} acknowledged samples\n"));
    assert!(load.wait().unwrap().success());

    let o = run(&["sensor", "load", "--connect", &addr, "--seconds", "0"]);
    assert!(
        stderr(&o).contains("--seconds 0 must be a positive number"),
        "{}",
        stderr(&o)
    );
    // Nobody listens any more.
    let o = run(&["sensor", "load", "--connect", &addr, "--seconds", "0.1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ERR"), "{}", stderr(&o));
}

#[test]
fn export_to_mcap_and_import_into_another_database() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let pa = a.to_str().unwrap();
    assert!(run(&[
        "sensor",
        "register",
        "--path",
        pa,
        "--id",
        "4",
        "--kind",
        "lidar",
        "--name",
        "/lidar/top",
        "--encoding",
        "pcd"
    ])
    .status
    .success());
    let server = serve(&a, &[]);
    let mut client = Client::connect(server.addr, None).unwrap();
    for t in 0..20u64 {
        client
            .send(&Sample::new(t, 0, 4, vec![t as u8; 9000]))
            .unwrap();
        client.send(&Sample::new(t, 1, 5, vec![1u8; 10])).unwrap();
    }
    client.flush().unwrap();
    signal(&server.child, libc::SIGTERM);
    assert!(server.child.wait_with_output().unwrap().status.success());

    let file = dir.path().join("rec.mcap");
    let o = run(&[
        "sensor",
        "export",
        "--path",
        pa,
        "--out",
        file.to_str().unwrap(),
        "--from",
        "5",
        "--to",
        "15",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "exported 20 messages, 90100 bytes, 2 channels to {}\n",
            file.display()
        )
    );
    let o = run(&[
        "sensor",
        "import",
        "--path",
        b.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "imported 20 messages, 90100 bytes, 2 channels from {}\n",
            file.display()
        )
    );
    let qa = run(&["sensor", "query", "--path", pa, "--from", "5", "--to", "15"]);
    let qb = run(&["sensor", "query", "--path", b.to_str().unwrap()]);
    assert_eq!(stdout(&qa), stdout(&qb));
    assert!(
        stdout(&qb).ends_with("(20 samples, 10 times, 90100 bytes)\n"),
        "{}",
        stdout(&qb)
    );
    assert_eq!(
        stdout(&run(&["sensor", "channels", "--path", b.to_str().unwrap()])),
        "4 lidar /lidar/top pcd\n"
    );

    std::fs::write(dir.path().join("junk.mcap"), b"junk").unwrap();
    let o = run(&[
        "sensor",
        "import",
        "--path",
        b.to_str().unwrap(),
        dir.path().join("junk.mcap").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).starts_with("ERR MCAP file"), "{}", stderr(&o));
}
