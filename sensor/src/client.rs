//! A blocking client of the ingest protocol (docs/sensor.md, "Wire
//! format"): connect, prove the token, send samples, read cumulative
//! acknowledgements. Used by the tests, the load generator and anyone
//! who wants to feed a server from Rust. One client per thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::frames::Sample;
use crate::wire::{self, Reply, REPLY_LEN};

/// One connection to an ingest server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    sent: u64,
    acked: u64,
}

impl Client {
    /// Connects to `addr` and, when `token` is given, sends the hello
    /// frame carrying it (the server answers a wrong token with an error
    /// that the next read returns as [`Error::Refused`]).
    pub fn connect(addr: SocketAddr, token: Option<&[u8]>) -> Result<Client> {
        let stream =
            TcpStream::connect(addr).map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Error::io("setting TCP_NODELAY", e))?;
        let mut client = Client {
            stream,
            sent: 0,
            acked: 0,
        };
        if let Some(token) = token {
            client.send_raw(&wire::encode_hello(token))?;
        }
        Ok(client)
    }

    /// A client on an already connected stream (for example a clone of
    /// another client's socket, to read its acknowledgements on another
    /// thread).
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            sent: 0,
            acked: 0,
        }
    }

    /// Gives up on a read that waits longer than `timeout`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| Error::io("setting the read timeout", e))
    }

    /// Sends one sample (not waiting for its acknowledgement).
    pub fn send(&mut self, sample: &Sample) -> Result<()> {
        self.send_raw(&wire::encode_sample(sample))?;
        self.sent += 1;
        Ok(())
    }

    /// Sends bytes as they are (tests use it for damaged frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| Error::io("sending to the server", e))
    }

    /// Samples sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Samples the server acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Reads one reply. An error reply gives [`Error::Refused`]; the
    /// server closing the connection gives [`Error::Io`].
    pub fn read_reply(&mut self) -> Result<Reply> {
        let mut head = [0u8; REPLY_LEN];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| Error::io("reading a reply", e))?;
        let (kind, value) =
            Reply::decode_header(&head).map_err(|what| Error::corruption(&head, what))?;
        if kind == 1 {
            self.acked = self.acked.max(value);
            return Ok(Reply::Ack(value));
        }
        let mut msg = vec![0u8; value as usize];
        self.stream
            .read_exact(&mut msg)
            .map_err(|e| Error::io("reading an error reply", e))?;
        Err(Error::Refused(String::from_utf8_lossy(&msg).into_owned()))
    }

    /// Reads replies until at least `count` samples are acknowledged.
    pub fn wait_acked(&mut self, count: u64) -> Result<u64> {
        while self.acked < count {
            self.read_reply()?;
        }
        Ok(self.acked)
    }

    /// Waits until everything sent is acknowledged.
    pub fn flush(&mut self) -> Result<u64> {
        self.wait_acked(self.sent)
    }

    /// The socket, for tests that need to cut it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}
