//! `jkv sensor ...`: the sensor layer on the command line (docs/sensor.md,
//! "Command line"): `serve` runs the TCP ingest server until SIGINT or
//! SIGTERM, `load` sends a measured load to one, `export` and `import` move
//! samples to and from MCAP files, `query` prints or dumps a time range, `register` and
//! `channels` edit and list the channel registry.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use jkv_sensor::{ChannelInfo, ChannelKind, Frames, IngestOptions, Query, Server, ServerOptions};

/// A failure of a sensor command, printed as `ERR ...`.
type CmdResult = Result<ExitCode, String>;

#[derive(Debug, Args)]
pub struct SensorArgs {
    #[command(subcommand)]
    command: SensorCommand,
}

#[derive(Debug, Subcommand)]
enum SensorCommand {
    /// Run the TCP ingest server until SIGINT or SIGTERM; prints
    /// `listening on ADDR` once it accepts connections.
    Serve(ServeArgs),
    /// Send samples to a server at a rate and report frames/s, MB/s and
    /// acknowledgement latency; with --verify, check every acknowledged
    /// sample in the database once the server has stopped.
    Load(LoadArgs),
    /// Print one line per time of [FROM, TO) (frames, channels, bytes), or
    /// write the payloads to files with --dump.
    Query(QueryArgs),
    /// Write [FROM, TO) (optionally some channels) to an MCAP file: one MCAP
    /// channel per jkv channel, chunked and indexed.
    Export(ExportArgs),
    /// Store every message of an MCAP file as samples.
    Import {
        /// Database directory (created if missing).
        #[arg(long)]
        path: PathBuf,
        /// The MCAP file.
        file: PathBuf,
    },
    /// Add or replace a channel in the registry.
    Register(RegisterArgs),
    /// List the registered channels.
    Channels {
        /// Database directory.
        #[arg(long)]
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Database directory (created if missing).
    #[arg(long)]
    path: PathBuf,
    /// Address to listen on; any address other than loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:7421")]
    listen: SocketAddr,
    /// Acknowledge a batch only once it is fsynced.
    #[arg(long)]
    sync: bool,
    /// File holding the shared token each connection must send in its hello
    /// frame (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Close a connection that sends nothing for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    idle_timeout_ms: u64,
    /// Connections served at once.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections: usize,
    /// Largest payload accepted, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_payload: u32,
    /// Payload bytes held for frames still being received, all connections together.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    max_partial_bytes: usize,
    /// Samples held in the ingest buffer (queued or being written) before readers wait.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    buffer_samples: usize,
    /// Payload bytes held in the ingest buffer before readers wait.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    buffer_bytes: usize,
    /// Most samples in one write batch.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    batch_samples: usize,
    /// Longest wait, from a batch's first sample, for the batch to fill.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    batch_interval_ms: u64,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The server's address.
    #[arg(long)]
    connect: SocketAddr,
    /// Channels 0..N.
    #[arg(long, value_name = "N", default_value_t = 4)]
    channels: u16,
    /// Ticks per second, one sample per channel each; 0 = as fast as acknowledged.
    #[arg(long, value_name = "HZ", default_value_t = 100)]
    rate: u64,
    /// Payload bytes per sample.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    payload: usize,
    /// How long to send.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    seconds: f64,
    /// Connections (channel c goes on connection c % C).
    #[arg(long, value_name = "C", default_value_t = 1)]
    connections: u16,
    /// Token file, for a server started with --token-file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// After the run, wait until the server has released DIR (stopped),
    /// then check every acknowledged sample there; exit 1 if any is missing or differs.
    #[arg(long, value_name = "DIR")]
    verify: Option<PathBuf>,
    /// Longest wait for the server to release the --verify directory.
    #[arg(long, value_name = "S", default_value_t = 60)]
    verify_wait: u64,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// Database directory (must exist).
    #[arg(long)]
    path: PathBuf,
    /// First time included, nanoseconds since the epoch.
    #[arg(long, value_name = "T0", default_value_t = 0)]
    from: u64,
    /// First time excluded, nanoseconds since the epoch.
    #[arg(long, value_name = "T1", default_value_t = u64::MAX)]
    to: u64,
    /// Only this channel (repeat for several).
    #[arg(long, value_name = "C")]
    channel: Vec<u16>,
    /// Only channels of this kind: radar, image, lidar, other (repeat for several).
    #[arg(long, value_name = "KIND")]
    kind: Vec<String>,
    /// Newest time first.
    #[arg(long)]
    newest_first: bool,
    /// Write each payload to DIR/TIME-FRAME-CHANNEL.bin instead of printing summaries.
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Database directory (must exist).
    #[arg(long)]
    path: PathBuf,
    /// The MCAP file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// First time included, nanoseconds since the epoch.
    #[arg(long, value_name = "T0", default_value_t = 0)]
    from: u64,
    /// First time excluded, nanoseconds since the epoch.
    #[arg(long, value_name = "T1", default_value_t = u64::MAX)]
    to: u64,
    /// Only this channel (repeat for several).
    #[arg(long, value_name = "C")]
    channel: Vec<u16>,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// Database directory (created if missing).
    #[arg(long)]
    path: PathBuf,
    /// Channel id.
    #[arg(long)]
    id: u16,
    /// radar, image, lidar or other.
    #[arg(long)]
    kind: String,
    /// Unique name, e.g. /camera/front.
    #[arg(long)]
    name: String,
    /// Payload encoding, e.g. jpeg, cdr, raw.
    #[arg(long, default_value = "")]
    encoding: String,
}

pub fn run(args: SensorArgs) -> CmdResult {
    match args.command {
        SensorCommand::Serve(a) => serve(a),
        SensorCommand::Load(a) => load(a),
        SensorCommand::Query(a) => query(a),
        SensorCommand::Export(a) => export(a),
        SensorCommand::Import { path, file } => import(&path, &file),
        SensorCommand::Register(a) => register(a),
        SensorCommand::Channels { path } => channels(&path),
    }
}

fn open(path: &Path, create: bool) -> Result<Arc<jkv::Db>, String> {
    let options = jkv::Options::default().create_if_missing(create);
    jkv::Db::open(path, options)
        .map(Arc::new)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn close(frames: Frames) -> Result<(), String> {
    let db = frames.db().clone();
    drop(frames);
    db.close().map_err(|e| format!("closing the database: {e}"))
}

fn read_token(file: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(file)
        .map_err(|e| format!("cannot read token file {}: {e}", file.display()))?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(format!("token file {} is empty", file.display()));
    }
    Ok(bytes)
}

fn serve(a: ServeArgs) -> CmdResult {
    let token = a.token_file.as_deref().map(read_token).transpose()?;
    if !a.listen.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "refusing to listen on {} (not a loopback address) without --token-file",
            a.listen
        ));
    }
    let db = open(&a.path, true)?;
    let frames = Frames::open(db).map_err(|e| e.to_string())?.sync(a.sync);
    let frames = Arc::new(frames);
    let options = ServerOptions {
        listen: a.listen,
        token,
        idle_timeout: Duration::from_millis(a.idle_timeout_ms),
        connections_max: a.max_connections,
        payload_len_max: a.max_payload,
        partial_bytes_max: a.max_partial_bytes,
        ingest: IngestOptions {
            buffer_samples_max: a.buffer_samples,
            buffer_bytes_max: a.buffer_bytes,
            batch_samples_max: a.batch_samples,
            batch_interval: Duration::from_millis(a.batch_interval_ms),
            ..IngestOptions::default()
        },
    };
    let server = Server::bind(frames.clone(), options).map_err(|e| e.to_string())?;
    let stopper = server.stopper();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let signal_handle = signals.handle();
    let waiter = std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("jkv sensor serve: signal {signal}: stopping, writing what was received");
            stopper.stop();
        }
    });
    println!("listening on {}", server.local_addr());
    io::stdout().flush().map_err(|e| e.to_string())?;
    let outcome = server.run();
    signal_handle.close();
    let _ = waiter.join();
    let stats = outcome.map_err(|e| e.to_string())?;
    let i = &stats.ingest;
    println!(
        "stopped: {} connections ({} refused, {} closed on error), {} samples received, {} written, {} bytes, {} batches (largest {}), producers blocked {:.3} s",
        stats.connections_accepted,
        stats.connections_refused,
        stats.connections_failed,
        stats.samples_received,
        i.samples_written,
        i.bytes_written,
        i.batches,
        i.batch_samples_largest,
        i.blocked_ns as f64 / 1e9
    );
    let frames = Arc::into_inner(frames).ok_or("the server still holds the database")?;
    close(frames)?;
    Ok(ExitCode::SUCCESS)
}

fn load(a: LoadArgs) -> CmdResult {
    if !(a.seconds.is_finite() && a.seconds > 0.0) {
        return Err(format!("--seconds {} must be a positive number", a.seconds));
    }
    let mut opts = jkv_sensor::load::LoadOptions::new(a.connect);
    opts.channels = a.channels;
    opts.rate_hz = a.rate;
    opts.payload_bytes = a.payload;
    opts.duration = Duration::from_secs_f64(a.seconds);
    opts.connections = a.connections;
    opts.token = a.token_file.as_deref().map(read_token).transpose()?;
    let report = jkv_sensor::load::run(&opts).map_err(|e| e.to_string())?;
    println!(
        "load: {} connections, {} channels, {}-byte payloads: {} sent, {} acknowledged in {:.3} s: {:.0} frames/s, {:.1} MB/s; ack latency p50 {} us, p99 {} us, max {} us; first time {} ns",
        opts.connections,
        opts.channels,
        opts.payload_bytes,
        report.sent,
        report.acked,
        report.elapsed.as_secs_f64(),
        report.frames_per_sec(),
        report.mb_per_sec(),
        report.latency_us[0],
        report.latency_us[1],
        report.latency_us[2],
        opts.start_ns
    );
    let Some(dir) = a.verify else {
        return Ok(ExitCode::SUCCESS);
    };
    println!("waiting for the server to release {}", dir.display());
    io::stdout().flush().map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(a.verify_wait);
    let db = loop {
        match jkv::Db::open(&dir, jkv::Options::default().create_if_missing(false)) {
            Ok(db) => break Arc::new(db),
            Err(jkv::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("cannot open {} to verify: {e}", dir.display())),
        }
    };
    let frames = Frames::open(db).map_err(|e| e.to_string())?;
    let outcome = jkv_sensor::load::verify(&frames, &opts, &report);
    close(frames)?;
    match outcome {
        Ok(n) => {
            println!("verified {n} acknowledged samples");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("verify FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn query(a: QueryArgs) -> CmdResult {
    if a.from > a.to {
        return Err(format!("--from {} is after --to {}", a.from, a.to));
    }
    let kinds = a
        .kind
        .iter()
        .map(|k| k.parse::<ChannelKind>())
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| e.to_string())?;
    let db = open(&a.path, false)?;
    let frames = Frames::open(db).map_err(|e| e.to_string())?;
    let mut q = Query::range(a.from, a.to);
    for c in &a.channel {
        q = q.channel(*c);
    }
    q.kinds = kinds;
    if a.newest_first {
        q = q.newest_first();
    }
    if let Some(dir) = &a.dump {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let write_err = |e: io::Error| format!("writing the output: {e}");
    // One summary per time; the iterator yields each time's samples together.
    let mut current: Option<TimeSummary> = None;
    let (mut samples, mut times, mut bytes) = (0u64, 0u64, 0u64);
    let summaries = a.dump.is_none();
    for item in frames.range(&q) {
        let s = item.map_err(|e| e.to_string())?;
        let t = s.key.time_ns;
        if current.as_ref().is_some_and(|g| g.time_ns != t) {
            if let Some(g) = current.take().filter(|_| summaries) {
                g.print(&mut out).map_err(write_err)?;
            }
        }
        let g = current.get_or_insert_with(|| {
            times += 1;
            TimeSummary::new(t)
        });
        g.add(&s);
        samples += 1;
        bytes += s.payload.len() as u64;
        if let Some(dir) = &a.dump {
            let file = dir.join(format!("{}-{}-{}.bin", t, s.key.frame, s.key.channel));
            std::fs::write(&file, &s.payload)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
    }
    if let Some(g) = current.filter(|_| summaries) {
        g.print(&mut out).map_err(write_err)?;
    }
    writeln!(out, "({samples} samples, {times} times, {bytes} bytes)").map_err(write_err)?;
    out.flush().map_err(write_err)?;
    drop(out);
    close(frames)?;
    Ok(ExitCode::SUCCESS)
}

/// What `query` prints for one time.
struct TimeSummary {
    time_ns: u64,
    frames: BTreeSet<u32>,
    channels: BTreeSet<u16>,
    samples: u64,
    bytes: u64,
}

impl TimeSummary {
    fn new(time_ns: u64) -> Self {
        TimeSummary {
            time_ns,
            frames: BTreeSet::new(),
            channels: BTreeSet::new(),
            samples: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, s: &jkv_sensor::Sample) {
        self.frames.insert(s.key.frame);
        self.channels.insert(s.key.channel.0);
        self.samples += 1;
        self.bytes += s.payload.len() as u64;
    }

    fn print(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "{} frames={} channels={} samples={} bytes={}",
            self.time_ns,
            self.frames.len(),
            self.channels.len(),
            self.samples,
            self.bytes
        )
    }
}

fn export(a: ExportArgs) -> CmdResult {
    if a.from > a.to {
        return Err(format!("--from {} is after --to {}", a.from, a.to));
    }
    let frames = Frames::open(open(&a.path, false)?).map_err(|e| e.to_string())?;
    let mut q = Query::range(a.from, a.to);
    for c in &a.channel {
        q = q.channel(*c);
    }
    let report = jkv_sensor::mcap::export_file(&frames, &q, &a.out).map_err(|e| e.to_string())?;
    println!(
        "exported {} messages, {} bytes, {} channels to {}",
        report.messages,
        report.bytes,
        report.channels,
        a.out.display()
    );
    close(frames)?;
    Ok(ExitCode::SUCCESS)
}

fn import(path: &Path, file: &Path) -> CmdResult {
    let frames = Frames::open(open(path, true)?).map_err(|e| e.to_string())?;
    let outcome = jkv_sensor::mcap::import_file(&frames, file);
    // Close either way: what was imported before a failure stays.
    close(frames)?;
    let report = outcome.map_err(|e| e.to_string())?;
    println!(
        "imported {} messages, {} bytes, {} channels from {}",
        report.messages,
        report.bytes,
        report.channels,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn register(a: RegisterArgs) -> CmdResult {
    let kind = a.kind.parse::<ChannelKind>().map_err(|e| e.to_string())?;
    let db = open(&a.path, true)?;
    let frames = Frames::open(db).map_err(|e| e.to_string())?.sync(true);
    frames
        .register_channel(a.id, ChannelInfo::new(kind, a.name, a.encoding))
        .map_err(|e| e.to_string())?;
    println!("OK");
    close(frames)?;
    Ok(ExitCode::SUCCESS)
}

fn channels(path: &Path) -> CmdResult {
    let db = open(path, false)?;
    let frames = Frames::open(db).map_err(|e| e.to_string())?;
    for (id, info) in frames.registry().channels() {
        println!("{id} {} {} {}", info.kind, info.name, info.encoding);
    }
    close(frames)?;
    Ok(ExitCode::SUCCESS)
}
