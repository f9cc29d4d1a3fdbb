//! The TCP ingest protocol (docs/sensor.md, "Wire format"): the bytes of
//! client frames and server replies, and their decoding. Pure functions
//! and plain data; the server and the client own the sockets.
//!
//! ```text
//! client frame = header(32) payload(payload_len)
//! header       = magic "JKSF"(4) version:u8(=1) type:u8 flags:u16 LE(=0)
//!                time_ns:u64 LE frame:u32 LE channel:u16 LE reserved:u16 LE(=0)
//!                payload_len:u32 LE crc32:u32 LE
//!                crc32 (IEEE, crc32fast) covers header bytes 0..28, then the payload
//! type         = 1 sample (time, frame, channel name where it is stored)
//!                2 hello  (payload = the shared token; time, frame, channel 0)
//! server reply = magic "JKSA"(4) kind:u8 reserved(3) value:u64 LE       16 bytes
//! kind         = 1 ack:   value = samples of this connection written so far
//!                2 error: value = length of the UTF-8 message that follows;
//!                         the server closes the connection after it
//! ```
//!
//! Fixed-width integers are little-endian (STYLE: headers are LE; only
//! keys are big-endian).

use crate::frames::Sample;
use crate::key::SampleKey;

/// First bytes of every client frame.
pub const FRAME_MAGIC: [u8; 4] = *b"JKSF";
/// First bytes of every server reply.
pub const REPLY_MAGIC: [u8; 4] = *b"JKSA";
/// Protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Longest token a hello may carry.
pub const TOKEN_LEN_MAX: u32 = 4096;
/// Default largest payload accepted (16 MiB).
pub const PAYLOAD_LEN_MAX_DEFAULT: u32 = 16 << 20;

/// Layout: docs/sensor.md, "Client frame header".
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 4;
const TYPE_AT: usize = VERSION_AT + 1;
const FLAGS_AT: usize = TYPE_AT + 1;
const TIME_AT: usize = FLAGS_AT + 2;
const FRAME_AT: usize = TIME_AT + 8;
const CHANNEL_AT: usize = FRAME_AT + 4;
const RESERVED_AT: usize = CHANNEL_AT + 2;
const PAYLOAD_LEN_AT: usize = RESERVED_AT + 2;
const CRC_AT: usize = PAYLOAD_LEN_AT + 4;
/// Length of a client frame header.
pub const HEADER_LEN: usize = CRC_AT + 4;
const _: () = assert!(HEADER_LEN == 32);

/// Layout: docs/sensor.md, "Server reply".
const REPLY_KIND_AT: usize = 4;
const REPLY_VALUE_AT: usize = REPLY_KIND_AT + 4;
/// Length of a server reply header.
pub const REPLY_LEN: usize = REPLY_VALUE_AT + 8;
const _: () = assert!(REPLY_LEN == 16);

/// What a client frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// One sample to store.
    Sample = 1,
    /// The connection's proof of the shared token.
    Hello = 2,
}

/// A decoded client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Sample or hello.
    pub frame_type: FrameType,
    /// Where the sample goes (zero for a hello).
    pub key: SampleKey,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The checksum the client sent.
    pub crc: u32,
}

/// Why a header or frame is refused. Each message says which byte and what
/// was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not a frame of this protocol, or a field out of range.
    #[error("malformed frame header at stream byte {offset}: {what}")]
    Malformed {
        /// Stream offset of the frame's first byte.
        offset: u64,
        /// What was expected and found.
        what: String,
    },
    /// The payload is longer than the server accepts.
    #[error(
        "frame at stream byte {offset} announces a payload of {len} bytes, over the limit of {max}"
    )]
    Oversize {
        /// Stream offset of the frame's first byte.
        offset: u64,
        /// Announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The checksum does not match header and payload.
    #[error("frame at stream byte {offset}: checksum mismatch (frame says {sent:08x}, bytes give {computed:08x})")]
    Checksum {
        /// Stream offset of the frame's first byte.
        offset: u64,
        /// The crc in the header.
        sent: u32,
        /// The crc of the bytes received.
        computed: u32,
    },
}

/// Decodes a header that starts at stream byte `offset`, refusing
/// payloads over `payload_len_max`. The checksum is checked later, with
/// the payload, by [`check_crc`].
pub fn decode_header(
    bytes: &[u8; HEADER_LEN],
    offset: u64,
    payload_len_max: u32,
) -> Result<Header, WireError> {
    let malformed = |what: String| WireError::Malformed { offset, what };
    if bytes[MAGIC_AT..VERSION_AT] != FRAME_MAGIC {
        return Err(malformed(format!(
            "magic {:02x?}, expected \"JKSF\"",
            &bytes[MAGIC_AT..VERSION_AT]
        )));
    }
    if bytes[VERSION_AT] != VERSION {
        return Err(malformed(format!(
            "version {}, this server speaks {VERSION}",
            bytes[VERSION_AT]
        )));
    }
    let frame_type = match bytes[TYPE_AT] {
        1 => FrameType::Sample,
        2 => FrameType::Hello,
        other => {
            return Err(malformed(format!(
                "frame type {other}, expected 1 (sample) or 2 (hello)"
            )))
        }
    };
    let le16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if le16(FLAGS_AT) != 0 || le16(RESERVED_AT) != 0 {
        return Err(malformed("flags and reserved bytes must be zero".into()));
    }
    let payload_len = le32(PAYLOAD_LEN_AT);
    if payload_len > payload_len_max {
        return Err(WireError::Oversize {
            offset,
            len: payload_len,
            max: payload_len_max,
        });
    }
    let time_ns = u64::from_le_bytes(bytes[TIME_AT..FRAME_AT].try_into().expect("8 bytes"));
    Ok(Header {
        frame_type,
        key: SampleKey::new(time_ns, le32(FRAME_AT), le16(CHANNEL_AT)),
        payload_len,
        crc: le32(CRC_AT),
    })
}

/// Checks the frame's crc over header bytes 0..28 and `payload`.
pub fn check_crc(
    header_bytes: &[u8; HEADER_LEN],
    header: &Header,
    payload: &[u8],
    offset: u64,
) -> Result<(), WireError> {
    let computed = frame_crc(header_bytes, payload);
    if computed != header.crc {
        return Err(WireError::Checksum {
            offset,
            sent: header.crc,
            computed,
        });
    }
    Ok(())
}

fn frame_crc(header_bytes: &[u8; HEADER_LEN], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header_bytes[..CRC_AT]);
    h.update(payload);
    h.finalize()
}

/// The header of a frame of `frame_type` at `key` with `payload`.
pub fn encode_header(frame_type: FrameType, key: SampleKey, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[MAGIC_AT..VERSION_AT].copy_from_slice(&FRAME_MAGIC);
    out[VERSION_AT] = VERSION;
    out[TYPE_AT] = frame_type as u8;
    out[TIME_AT..FRAME_AT].copy_from_slice(&key.time_ns.to_le_bytes());
    out[FRAME_AT..CHANNEL_AT].copy_from_slice(&key.frame.to_le_bytes());
    out[CHANNEL_AT..RESERVED_AT].copy_from_slice(&key.channel.0.to_le_bytes());
    out[PAYLOAD_LEN_AT..CRC_AT].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = frame_crc(&out, payload);
    out[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A whole sample frame: header then payload.
pub fn encode_sample(sample: &Sample) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + sample.payload.len());
    out.extend_from_slice(&encode_header(
        FrameType::Sample,
        sample.key,
        &sample.payload,
    ));
    out.extend_from_slice(&sample.payload);
    out
}

/// A whole hello frame carrying `token`.
pub fn encode_hello(token: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + token.len());
    out.extend_from_slice(&encode_header(
        FrameType::Hello,
        SampleKey::new(0, 0, 0),
        token,
    ));
    out.extend_from_slice(token);
    out
}

/// A server reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// This many samples of the connection are written (cumulative).
    Ack(u64),
    /// The server refused something and closes the connection.
    Error(String),
}

/// Longest error message a client accepts.
pub const ERROR_LEN_MAX: u64 = 64 << 10;

impl Reply {
    /// The reply's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, value, tail): (u8, u64, &[u8]) = match self {
            Reply::Ack(n) => (1, *n, &[]),
            Reply::Error(msg) => (2, msg.len() as u64, msg.as_bytes()),
        };
        let mut out = Vec::with_capacity(REPLY_LEN + tail.len());
        out.extend_from_slice(&REPLY_MAGIC);
        out.push(kind);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(tail);
        out
    }

    /// Decodes a reply header: `Ok((kind, value))` where kind 1 is an ack
    /// and kind 2 an error of `value` bytes that follow.
    pub fn decode_header(bytes: &[u8; REPLY_LEN]) -> Result<(u8, u64), String> {
        if bytes[..4] != REPLY_MAGIC {
            return Err(format!(
                "reply magic {:02x?}, expected \"JKSA\"",
                &bytes[..4]
            ));
        }
        let kind = bytes[REPLY_KIND_AT];
        let value = u64::from_le_bytes(bytes[REPLY_VALUE_AT..].try_into().expect("8 bytes"));
        match kind {
            1 => Ok((1, value)),
            2 if value <= ERROR_LEN_MAX => Ok((2, value)),
            2 => Err(format!(
                "error message of {value} bytes, over {ERROR_LEN_MAX}"
            )),
            k => Err(format!("reply kind {k}, expected 1 (ack) or 2 (error)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_layout_byte_by_byte() {
        let key = SampleKey::new(0x0102030405060708, 0x090a0b0c, 0x0d0e);
        let h = encode_header(FrameType::Sample, key, b"xyz");
        assert_eq!(&h[0..4], b"JKSF");
        assert_eq!(h[4], 1);
        assert_eq!(h[5], 1);
        assert_eq!(&h[6..8], &[0, 0]);
        assert_eq!(&h[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&h[16..20], &[0x0c, 0x0b, 0x0a, 0x09]);
        assert_eq!(&h[20..22], &[0x0e, 0x0d]);
        assert_eq!(&h[22..24], &[0, 0]);
        assert_eq!(&h[24..28], &[3, 0, 0, 0]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[..28]);
        crc.update(b"xyz");
        assert_eq!(&h[28..32], &crc.finalize().to_le_bytes());
    }

    #[test]
    fn reply_layout_and_decoding() {
        let ack = Reply::Ack(0x0102).encode();
        assert_eq!(
            ack,
            [b'J', b'K', b'S', b'A', 1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Reply::decode_header(&ack.try_into().unwrap()),
            Ok((1, 0x0102))
        );
        let err = Reply::Error("no".into()).encode();
        assert_eq!(&err[16..], b"no");
        assert_eq!(
            Reply::decode_header(&err[..16].try_into().unwrap()),
            Ok((2, 2))
        );
        let mut bad = Reply::Ack(1).encode();
        bad[4] = 9;
        assert!(Reply::decode_header(&bad.try_into().unwrap()).is_err());
    }

    #[test]
    fn each_header_defect_is_named() {
        let good = encode_header(FrameType::Sample, SampleKey::new(1, 2, 3), b"p");
        let case = |at: usize, byte: u8| {
            let mut h = good;
            h[at] = byte;
            decode_header(&h, 100, 1000).unwrap_err()
        };
        assert!(case(0, b'X').to_string().contains("magic"));
        assert!(case(4, 2).to_string().contains("version 2"));
        assert!(case(5, 7).to_string().contains("frame type 7"));
        assert!(case(6, 1).to_string().contains("reserved"));
        assert!(case(23, 1).to_string().contains("reserved"));
        assert!(case(0, b'X').to_string().contains("stream byte 100"));
        let big = encode_header(FrameType::Sample, SampleKey::new(1, 2, 3), &[0u8; 1001]);
        assert_eq!(
            decode_header(&big, 0, 1000),
            Err(WireError::Oversize {
                offset: 0,
                len: 1001,
                max: 1000
            })
        );
        assert!(decode_header(&big, 0, 1001).is_ok());
    }

    proptest! {
        #[test]
        fn frames_round_trip_and_any_flipped_bit_is_caught(
            t in any::<u64>(), f in any::<u32>(), c in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<prop::sample::Index>(),
        ) {
            let sample = Sample::new(t, f, c, payload.clone());
            let bytes = encode_sample(&sample);
            let head: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().unwrap();
            let h = decode_header(&head, 0, u32::MAX).unwrap();
            prop_assert_eq!(h.frame_type, FrameType::Sample);
            prop_assert_eq!(h.key, sample.key);
            prop_assert_eq!(h.payload_len as usize, payload.len());
            prop_assert!(check_crc(&head, &h, &bytes[HEADER_LEN..], 0).is_ok());

            // One flipped bit anywhere: the header refuses it or the crc does.
            let mut damaged = bytes.clone();
            let bit = flip.index(damaged.len() * 8);
            damaged[bit / 8] ^= 1 << (bit % 8);
            let head: [u8; HEADER_LEN] = damaged[..HEADER_LEN].try_into().unwrap();
            if let Ok(h) = decode_header(&head, 0, u32::MAX) {
                let end = (HEADER_LEN + h.payload_len as usize).min(damaged.len());
                if HEADER_LEN + h.payload_len as usize == damaged.len() {
                    prop_assert!(check_crc(&head, &h, &damaged[HEADER_LEN..end], 0).is_err());
                }
            }
        }

        #[test]
        fn decoding_arbitrary_headers_never_panics(bytes in any::<[u8; HEADER_LEN]>()) {
            let _ = decode_header(&bytes, 0, PAYLOAD_LEN_MAX_DEFAULT);
        }
    }
}
