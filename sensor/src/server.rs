//! The TCP ingest server (docs/sensor.md, "Ingest server"): many
//! connections on one network thread (a mio event loop), each a stream of
//! frames ([`crate::wire`]) fed into the [`Ingest`] pipeline, acknowledged
//! in order once the batch that holds them is written.
//!
//! Owns sockets, per-connection parsing state, the partial-frame memory
//! budget, limits (connections, idle time, payload size, token) and the
//! shutdown sequence; leaves batching and writing to [`Ingest`].
//!
//! Threads: [`Server::run`] is the network thread. It blocks in
//! [`Ingest::submit`] when the buffer is full, so TCP flow control pushes
//! back on the clients. The writer thread reports written batches through
//! a mutex-guarded map of per-connection counts and a [`mio::Waker`]; the
//! network thread turns them into acknowledgements. A [`Stopper`] (from any
//! thread, e.g. a signal handler's thread) ends the loop.
//!
//! A bad frame, a failed token check, an idle connection or a refused
//! connection gets one error reply, logged to stderr, and only that
//! connection is closed: the server stops reading its frames, sends the
//! error, shuts down its write side and discards what the client still
//! sends for up to [`LINGER`] so that the reply is not lost to a reset.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::frames::Frames;
use crate::ingest::{Ingest, IngestOptions, IngestStats};
use crate::wire::{self, FrameType, Header, Reply, HEADER_LEN};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Bytes read from a socket at a time (per connection).
const READ_CHUNK: usize = 64 << 10;
/// How long a closed connection's incoming bytes are still read and
/// discarded, so the error reply reaches the client.
pub const LINGER: Duration = Duration::from_secs(1);
/// Unsent reply bytes a connection may pile up (a client that never reads
/// its acknowledgements) before it is dropped.
const UNSENT_REPLY_MAX: usize = 1 << 20;

/// Limits and address of a server. Defaults in each field's doc.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Where to listen. Default `127.0.0.1:7421`. Any address other than a
    /// loopback one needs a token.
    pub listen: SocketAddr,
    /// The shared secret every connection proves in a hello frame before
    /// its first sample; `None` (default) lets loopback clients in without.
    pub token: Option<Vec<u8>>,
    /// A connection that sends nothing for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// Connections served at once; one more is refused. Default 64.
    pub connections_max: usize,
    /// Largest payload accepted. Default 16 MiB.
    pub payload_len_max: u32,
    /// Payload bytes held, over all connections, for frames still being
    /// received; a connection whose next frame does not fit waits (its
    /// socket is not read) until others complete theirs. Default 256 MiB.
    pub partial_bytes_max: usize,
    /// The pipeline's buffer and batches.
    pub ingest: IngestOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 7421)),
            token: None,
            idle_timeout: Duration::from_secs(30),
            connections_max: 64,
            payload_len_max: wire::PAYLOAD_LEN_MAX_DEFAULT,
            partial_bytes_max: 256 << 20,
            ingest: IngestOptions::default(),
        }
    }
}

/// What a server did, returned by [`Server::run`].
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections refused because `connections_max` were open.
    pub connections_refused: u64,
    /// Connections closed with an error reply (bad frame, token, idle, ...).
    pub connections_failed: u64,
    /// Sample frames received whole and handed to the pipeline.
    pub samples_received: u64,
    /// Most payload bytes ever held for partial frames at once.
    pub partial_bytes_peak: u64,
    /// The pipeline's counters at the end.
    pub ingest: IngestStats,
}

/// Ends a running server from another thread.
#[derive(Clone, Debug)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Asks the server to stop: it stops accepting and reading, writes
    /// everything it accepted, acknowledges it, and returns from `run`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // A failed wake leaves the loop to notice the flag at its next
        // timeout (at most a second).
        let _ = self.waker.wake();
    }
}

/// Where a connection is in its life.
#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Reading frames.
    Serving,
    /// Error sent, write side shut; discarding input until this instant.
    Lingering(Instant),
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    phase: Phase,
    /// Unparsed bytes are `buf[start..end]`.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Header bytes of the frame being received.
    head: [u8; HEADER_LEN],
    head_len: usize,
    /// The decoded header once complete, and its payload so far.
    frame: Option<Header>,
    payload: Vec<u8>,
    /// Payload bytes reserved from the partial-frame budget.
    reserved: usize,
    /// Stream offset of the current frame's first byte.
    frame_at: u64,
    authenticated: bool,
    /// Samples handed to the pipeline and acknowledged.
    submitted: u64,
    acked: u64,
    /// Reply bytes not yet sent.
    out: Vec<u8>,
    last_input: Instant,
    /// Waiting for partial-frame budget (not reading its socket).
    starved: bool,
}

/// What parsing a connection's bytes led to.
enum Parsed {
    /// All buffered bytes used; read more.
    NeedMore,
    /// The next frame's payload does not fit the budget yet.
    Starved,
}

/// Batches written, per connection: (samples, first failure).
type Written = HashMap<usize, (u64, Option<String>)>;

/// A bound, not yet running, ingest server.
pub struct Server {
    frames: Arc<Frames>,
    options: ServerOptions,
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

fn log(msg: &str) {
    eprintln!("jkv-sensor server: {msg}");
}

/// Compares without an early exit, so timing does not tell how much of a
/// guessed token was right.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// Binds `options.listen`. Errors with [`Error::InvalidArgument`] for a
    /// non-loopback address without a token, or an empty token, and with
    /// [`Error::Io`] when the address cannot be bound.
    pub fn bind(frames: Arc<Frames>, options: ServerOptions) -> Result<Server> {
        if options.token.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(Error::invalid("the token is empty"));
        }
        if options
            .token
            .as_ref()
            .is_some_and(|t| t.len() > wire::TOKEN_LEN_MAX as usize)
        {
            return Err(Error::invalid(format!(
                "the token is longer than {} bytes",
                wire::TOKEN_LEN_MAX
            )));
        }
        if !options.listen.ip().is_loopback() && options.token.is_none() {
            return Err(Error::invalid(format!(
                "refusing to listen on {} (not a loopback address) without a token file",
                options.listen
            )));
        }
        if options.connections_max == 0 {
            return Err(Error::invalid("connections_max must be at least 1"));
        }
        let poll = Poll::new().map_err(|e| Error::io("creating the event loop", e))?;
        let mut listener = TcpListener::bind(options.listen)
            .map_err(|e| Error::io(format!("binding {}", options.listen), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("registering the listener", e))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating the waker", e))?,
        );
        Ok(Server {
            frames,
            options,
            poll,
            listener: Some(listener),
            local_addr,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
        })
    }

    /// The address the server listens on (with the port the system chose
    /// when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Serves until stopped; then writes and acknowledges every sample it
    /// accepted and returns. The caller closes the database.
    pub fn run(mut self) -> Result<ServerStats> {
        let written: Arc<Mutex<Written>> = Arc::default();
        let ingest = {
            let written = written.clone();
            let waker = self.waker.clone();
            Ingest::<usize>::start(
                self.frames.clone(),
                self.options.ingest,
                Box::new(move |tags, outcome| {
                    {
                        let mut w = written.lock();
                        for conn in tags {
                            let entry = w.entry(conn).or_insert((0, None));
                            match outcome {
                                Ok(()) => entry.0 += 1,
                                Err(e) => {
                                    entry.1.get_or_insert_with(|| e.to_string());
                                }
                            }
                        }
                    }
                    let _ = waker.wake();
                }),
            )?
        };
        let mut state = LoopState {
            conns: HashMap::new(),
            next_id: FIRST_CONN,
            partial_used: 0,
            stats: ServerStats::default(),
            options: self.options.clone(),
            stalled_until: Instant::now(),
        };
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::SeqCst) {
            let timeout = state
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let timeout = Some(
                timeout
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1)),
            );
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("waiting for socket events", e));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => {
                        if let Some(listener) = &self.listener {
                            state.accept_all(listener, self.poll.registry());
                        }
                    }
                    WAKER => state.deliver(&written),
                    Token(id) => {
                        if event.is_readable() || event.is_read_closed() {
                            state.read_conn(id, &ingest);
                        }
                        if event.is_writable() {
                            state.write_conn(id);
                        }
                    }
                }
            }
            state.deliver(&written);
            state.retry_starved(&ingest);
            state.expire(Instant::now());
        }

        // Shut down: no new connections, no more input, drain, acknowledge.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        ingest.close();
        state.deliver(&written);
        let deadline = Instant::now() + Duration::from_secs(2);
        while state.conns.values().any(|c| !c.out.is_empty()) && Instant::now() < deadline {
            let ids: Vec<usize> = state.conns.keys().copied().collect();
            for id in ids {
                state.write_conn(id);
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(20)));
        }
        for (_, conn) in state.conns.drain() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        state.stats.ingest = ingest.stats();
        Ok(state.stats)
    }
}

struct LoopState {
    conns: HashMap<usize, Conn>,
    next_id: usize,
    /// Payload bytes reserved by frames being received.
    partial_used: usize,
    stats: ServerStats,
    options: ServerOptions,
    /// When the loop last came back from waiting for room in the
    /// pipeline: no socket was read meanwhile, so idle time counts from
    /// here at the earliest.
    stalled_until: Instant,
}

impl LoopState {
    fn accept_all(&mut self, listener: &TcpListener, registry: &mio::Registry) {
        loop {
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: try again on the next event.
                    log(&format!("accept failed: {e}"));
                    return;
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            if let Err(e) = registry.register(
                &mut stream,
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log(&format!("{peer}: cannot register the connection: {e}"));
                continue;
            }
            let _ = stream.set_nodelay(true);
            let serving = self
                .conns
                .values()
                .filter(|c| c.phase == Phase::Serving)
                .count();
            let lingering = self.conns.len() - serving;
            let mut conn = Conn {
                stream,
                peer,
                phase: Phase::Serving,
                buf: vec![0u8; READ_CHUNK].into_boxed_slice(),
                start: 0,
                end: 0,
                head: [0; HEADER_LEN],
                head_len: 0,
                frame: None,
                payload: Vec::new(),
                reserved: 0,
                frame_at: 0,
                authenticated: self.options.token.is_none(),
                submitted: 0,
                acked: 0,
                out: Vec::new(),
                last_input: Instant::now(),
                starved: false,
            };
            if serving >= self.options.connections_max {
                self.stats.connections_refused += 1;
                let msg = format!(
                    "too many connections: {} are open, the limit is {}",
                    serving, self.options.connections_max
                );
                if lingering >= self.options.connections_max {
                    // Even the lingering slots are used: drop it outright.
                    log(&format!("{peer}: refused: {msg}"));
                    let _ = conn.stream.write(&Reply::Error(msg).encode());
                    continue;
                }
                self.fail(&mut conn, msg);
                self.conns.insert(id, conn);
                continue;
            }
            self.stats.connections_accepted += 1;
            self.conns.insert(id, conn);
        }
    }

    /// Sends `msg` as the connection's last reply and starts lingering.
    fn fail(&mut self, conn: &mut Conn, msg: String) {
        log(&format!("{}: closing: {msg}", conn.peer));
        if !matches!(conn.phase, Phase::Lingering(_)) {
            self.stats.connections_failed += 1;
        }
        self.release(conn);
        conn.out.extend_from_slice(&Reply::Error(msg).encode());
        conn.phase = Phase::Lingering(Instant::now() + LINGER);
        conn.start = 0;
        conn.end = 0;
        flush_out(conn);
        let _ = conn.stream.shutdown(Shutdown::Write);
    }

    /// Gives back the partial-frame budget a connection holds.
    fn release(&mut self, conn: &mut Conn) {
        self.partial_used -= conn.reserved;
        conn.reserved = 0;
        conn.frame = None;
        conn.head_len = 0;
        conn.payload = Vec::new();
        conn.starved = false;
    }

    fn read_conn(&mut self, id: usize, ingest: &Ingest<usize>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let keep = self.pump(id, &mut conn, ingest);
        if keep {
            self.conns.insert(id, conn);
        }
    }

    /// Parses buffered bytes and reads more until the socket is drained,
    /// the connection starves or fails. False when it is gone.
    fn pump(&mut self, id: usize, conn: &mut Conn, ingest: &Ingest<usize>) -> bool {
        loop {
            if conn.phase == Phase::Serving {
                match self.parse(id, conn, ingest) {
                    Ok(Parsed::NeedMore) => {}
                    Ok(Parsed::Starved) => {
                        conn.starved = true;
                        return true;
                    }
                    Err(msg) => {
                        self.fail(conn, msg);
                    }
                }
            }
            if conn.start == conn.end {
                conn.start = 0;
                conn.end = 0;
            }
            if conn.end == conn.buf.len() {
                // Unparsed bytes fill the buffer only while starved,
                // handled above; move them down to make room.
                conn.buf.copy_within(conn.start..conn.end, 0);
                conn.end -= conn.start;
                conn.start = 0;
            }
            match conn.stream.read(&mut conn.buf[conn.end..]) {
                Ok(0) => {
                    if conn.phase == Phase::Serving && (conn.head_len > 0 || conn.start < conn.end)
                    {
                        let have = conn.head_len + conn.payload.len() + (conn.end - conn.start);
                        let want = HEADER_LEN + conn.frame.map_or(0, |h| h.payload_len as usize);
                        log(&format!(
                            "{}: client vanished mid-frame (frame at stream byte {}: {have} of {} bytes received); the frame is dropped, the {} before it stand",
                            conn.peer,
                            conn.frame_at,
                            want.max(have),
                            conn.submitted
                        ));
                        self.stats.connections_failed += 1;
                    }
                    self.release(conn);
                    // The client closed: its samples still get written,
                    // but nobody is left to read their acknowledgements.
                    return false;
                }
                Ok(n) => {
                    conn.last_input = Instant::now();
                    if conn.phase == Phase::Serving {
                        conn.end += n;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if conn.phase == Phase::Serving {
                        log(&format!("{}: read failed, closing: {e}", conn.peer));
                        self.stats.connections_failed += 1;
                    }
                    self.release(conn);
                    return false;
                }
            }
        }
    }

    /// Turns buffered bytes into frames. `Err` is the message to close with.
    fn parse(
        &mut self,
        id: usize,
        conn: &mut Conn,
        ingest: &Ingest<usize>,
    ) -> Result<Parsed, String> {
        let payload_len_max = self.options.payload_len_max;
        let partial_bytes_max = self.options.partial_bytes_max;
        loop {
            if conn.frame.is_none() {
                let take = (HEADER_LEN - conn.head_len).min(conn.end - conn.start);
                conn.head[conn.head_len..conn.head_len + take]
                    .copy_from_slice(&conn.buf[conn.start..conn.start + take]);
                conn.head_len += take;
                conn.start += take;
                if conn.head_len < HEADER_LEN {
                    return Ok(Parsed::NeedMore);
                }
                let header = wire::decode_header(&conn.head, conn.frame_at, payload_len_max)
                    .map_err(|e| e.to_string())?;
                if header.frame_type == FrameType::Hello && header.payload_len > wire::TOKEN_LEN_MAX
                {
                    return Err(format!(
                        "hello at stream byte {} carries {} bytes, over the token limit of {}",
                        conn.frame_at,
                        header.payload_len,
                        wire::TOKEN_LEN_MAX
                    ));
                }
                if header.frame_type == FrameType::Sample && !conn.authenticated {
                    return Err(
                        "a hello frame with the token must come before the first sample".into(),
                    );
                }
                conn.frame = Some(header);
            }
            let header = conn.frame.expect("header decoded above");
            let len = header.payload_len as usize;
            if conn.reserved == 0 && conn.end - conn.start >= len {
                // The whole payload is in the read buffer: check it and
                // hand it on from there, without a copy of its own.
                let (a, b) = (conn.start, conn.start + len);
                wire::check_crc(&conn.head, &header, &conn.buf[a..b], conn.frame_at)
                    .map_err(|e| e.to_string())?;
                conn.start = b;
                conn.frame = None;
                conn.head_len = 0;
                conn.frame_at += (HEADER_LEN + len) as u64;
                self.take_frame(
                    id,
                    &header,
                    &conn.buf[a..b],
                    &mut conn.authenticated,
                    &mut conn.submitted,
                    ingest,
                )?;
                continue;
            }
            if conn.reserved < len {
                // Reserve the whole payload before reading it. One frame
                // may always go when nothing else holds the budget.
                if self.partial_used > 0 && self.partial_used + len > partial_bytes_max {
                    return Ok(Parsed::Starved);
                }
                self.partial_used += len;
                conn.reserved = len;
                self.stats.partial_bytes_peak =
                    self.stats.partial_bytes_peak.max(self.partial_used as u64);
                conn.payload = Vec::with_capacity(len);
            }
            let take = (len - conn.payload.len()).min(conn.end - conn.start);
            conn.payload
                .extend_from_slice(&conn.buf[conn.start..conn.start + take]);
            conn.start += take;
            if conn.payload.len() < len {
                return Ok(Parsed::NeedMore);
            }
            wire::check_crc(&conn.head, &header, &conn.payload, conn.frame_at)
                .map_err(|e| e.to_string())?;
            let payload = std::mem::take(&mut conn.payload);
            self.partial_used -= conn.reserved;
            conn.reserved = 0;
            conn.frame = None;
            conn.head_len = 0;
            conn.frame_at += (HEADER_LEN + len) as u64;
            self.take_frame(
                id,
                &header,
                &payload,
                &mut conn.authenticated,
                &mut conn.submitted,
                ingest,
            )?;
        }
    }

    /// Acts on a whole, checked frame of connection `id`.
    fn take_frame(
        &mut self,
        id: usize,
        header: &Header,
        payload: &[u8],
        authenticated: &mut bool,
        submitted: &mut u64,
        ingest: &Ingest<usize>,
    ) -> Result<(), String> {
        match header.frame_type {
            FrameType::Hello => match &self.options.token {
                Some(token) if !same_token(token, payload) => Err("wrong token".into()),
                _ => {
                    *authenticated = true;
                    Ok(())
                }
            },
            FrameType::Sample => {
                // Blocks while the buffer is full: backpressure.
                let before = Instant::now();
                ingest
                    .submit_bytes(header.key, payload, id)
                    .map_err(|e| format!("the server is stopping: {e}"))?;
                let after = Instant::now();
                if after - before > Duration::from_millis(1) {
                    self.stalled_until = after;
                }
                *submitted += 1;
                self.stats.samples_received += 1;
                Ok(())
            }
        }
    }

    fn write_conn(&mut self, id: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !flush_out(conn) {
            log(&format!(
                "{}: write failed; dropping the connection",
                conn.peer
            ));
            let mut conn = self.conns.remove(&id).expect("present");
            self.release(&mut conn);
        }
    }

    /// Turns written batches into acknowledgements.
    fn deliver(&mut self, written: &Mutex<Written>) {
        let done = std::mem::take(&mut *written.lock());
        for (id, (count, failure)) in done {
            let Some(mut conn) = self.conns.remove(&id) else {
                continue; // closed meanwhile: nobody to tell
            };
            conn.acked += count;
            if let Some(cause) = failure {
                self.fail(&mut conn, format!("the database refused a write: {cause}"));
            } else if conn.phase == Phase::Serving {
                conn.out.extend_from_slice(&Reply::Ack(conn.acked).encode());
                if conn.out.len() > UNSENT_REPLY_MAX {
                    log(&format!(
                        "{}: does not read its acknowledgements; dropping it",
                        conn.peer
                    ));
                    self.stats.connections_failed += 1;
                    self.release(&mut conn);
                    continue;
                }
                if !flush_out(&mut conn) {
                    self.release(&mut conn);
                    continue;
                }
            }
            self.conns.insert(id, conn);
        }
    }

    /// Gives starved connections another go once budget is free.
    fn retry_starved(&mut self, ingest: &Ingest<usize>) {
        let starved: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.starved)
            .map(|(id, _)| *id)
            .collect();
        for id in starved {
            if self.partial_used > 0 && self.partial_used >= self.options.partial_bytes_max {
                return;
            }
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.starved = false;
            }
            self.read_conn(id, ingest);
        }
    }

    /// Closes idle connections and ends lingering ones.
    fn expire(&mut self, now: Instant) {
        let ids: Vec<usize> = self.conns.keys().copied().collect();
        for id in ids {
            let mut conn = self.conns.remove(&id).expect("listed");
            match conn.phase {
                Phase::Lingering(until) if now >= until => {
                    let _ = conn.stream.shutdown(Shutdown::Both);
                    continue;
                }
                // Idle time counts from the last byte read, but not from
                // before a stall in the pipeline, when no socket was read.
                Phase::Serving
                    if !conn.starved
                        && now
                            >= conn.last_input.max(self.stalled_until)
                                + self.options.idle_timeout =>
                {
                    let msg = format!(
                        "idle for {:.1} s (the limit is {:.1} s)",
                        (now - conn.last_input.max(self.stalled_until)).as_secs_f64(),
                        self.options.idle_timeout.as_secs_f64()
                    );
                    self.fail(&mut conn, msg);
                }
                _ => {}
            }
            self.conns.insert(id, conn);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .map(|c| match c.phase {
                Phase::Lingering(until) => until,
                Phase::Serving => c.last_input.max(self.stalled_until) + self.options.idle_timeout,
            })
            .min()
    }
}

/// Writes what it can of the connection's pending replies. False when the
/// socket failed.
fn flush_out(conn: &mut Conn) -> bool {
    while !conn.out.is_empty() {
        match conn.stream.write(&conn.out) {
            Ok(0) => return false,
            Ok(n) => {
                conn.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return matches!(conn.phase, Phase::Lingering(_)),
        }
    }
    true
}
