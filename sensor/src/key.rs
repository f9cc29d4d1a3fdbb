//! Sample keys (docs/sensor.md, "Key layout"): where one sample of one
//! channel of one frame lives in the engine's keyspace.
//!
//! ```text
//! sample key = SAMPLE_PREFIX(2) time_ns:u64 BE(8) frame:u32 BE(4) channel:u16 BE(2)   16 bytes
//! ```
//!
//! Big-endian fields after a fixed prefix make the engine's byte order the
//! order (time, frame, channel): a scan of `[key(t0), key(t1))` is a time
//! range, a scan of one time's keys is every frame and channel of that
//! instant. The key is 16 bytes, the width the memtable compares before it
//! falls back to memcmp. Pure functions, no state, safe from any thread.

use crate::error::{Error, Result};

/// First bytes of every sample key: `0x00 'S'`. Distinct from the ECS
/// layer's `0x00 'E'`, from the channel registry's `0x00 's'`
/// and from every printable key (plain keys such as decimal strings never
/// start with a NUL byte).
pub const SAMPLE_PREFIX: &[u8] = b"\x00S";

/// Layout: docs/sensor.md, "Key layout".
const TIME_AT: usize = SAMPLE_PREFIX.len();
const FRAME_AT: usize = TIME_AT + 8;
const CHANNEL_AT: usize = FRAME_AT + 4;
/// Length of a sample key.
pub const SAMPLE_KEY_LEN: usize = CHANNEL_AT + 2;
const _: () = assert!(SAMPLE_KEY_LEN == 16);

/// A channel id: one stream of samples (a camera, a radar head, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u16);

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a sample lives: (time, frame, channel), ordered in that order.
///
/// `time_ns` is nanoseconds since the Unix epoch; `frame` numbers the frames
/// taken at that same instant (0 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SampleKey {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Frame sequence within `time_ns`.
    pub frame: u32,
    /// The channel.
    pub channel: ChannelId,
}

impl SampleKey {
    /// The key of (`time_ns`, `frame`, `channel`).
    pub fn new(time_ns: u64, frame: u32, channel: u16) -> Self {
        SampleKey {
            time_ns,
            frame,
            channel: ChannelId(channel),
        }
    }

    /// The 16 key bytes.
    pub fn encode(&self) -> [u8; SAMPLE_KEY_LEN] {
        let mut out = [0u8; SAMPLE_KEY_LEN];
        out[..TIME_AT].copy_from_slice(SAMPLE_PREFIX);
        out[TIME_AT..FRAME_AT].copy_from_slice(&self.time_ns.to_be_bytes());
        out[FRAME_AT..CHANNEL_AT].copy_from_slice(&self.frame.to_be_bytes());
        out[CHANNEL_AT..].copy_from_slice(&self.channel.0.to_be_bytes());
        out
    }

    /// Decodes a key made by [`SampleKey::encode`]; any other bytes give
    /// [`Error::Corruption`].
    pub fn decode(key: &[u8]) -> Result<SampleKey> {
        if key.len() != SAMPLE_KEY_LEN {
            return Err(Error::corruption(
                key,
                format!(
                    "sample key of {} bytes, expected {SAMPLE_KEY_LEN}",
                    key.len()
                ),
            ));
        }
        if &key[..TIME_AT] != SAMPLE_PREFIX {
            return Err(Error::corruption(
                key,
                "sample key without the 00 53 prefix",
            ));
        }
        let time = key[TIME_AT..FRAME_AT].try_into().expect("8 bytes");
        let frame = key[FRAME_AT..CHANNEL_AT].try_into().expect("4 bytes");
        let channel = key[CHANNEL_AT..].try_into().expect("2 bytes");
        Ok(SampleKey {
            time_ns: u64::from_be_bytes(time),
            frame: u32::from_be_bytes(frame),
            channel: ChannelId(u16::from_be_bytes(channel)),
        })
    }
}

/// The smallest key of time `time_ns`: `[time_start(t0), time_start(t1))`
/// holds exactly the samples with `t0 <= time < t1`.
pub fn time_start(time_ns: u64) -> [u8; SAMPLE_KEY_LEN] {
    SampleKey::new(time_ns, 0, 0).encode()
}

/// The exclusive upper bound of every key at or before `time_ns`: the
/// prefix followed by `time_ns + 1`, or the prefix's successor
/// (`0x00 'T'`) when `time_ns` is `u64::MAX`.
pub fn time_end_inclusive(time_ns: u64) -> Vec<u8> {
    match time_ns.checked_add(1) {
        Some(next) => time_start(next).to_vec(),
        None => samples_end().to_vec(),
    }
}

/// The first key after every sample key (`0x00 'T'`).
pub fn samples_end() -> [u8; 2] {
    [SAMPLE_PREFIX[0], SAMPLE_PREFIX[1] + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_prefix_then_big_endian_fields() {
        let key = SampleKey::new(0x0102030405060708, 0x090a0b0c, 0x0d0e).encode();
        assert_eq!(
            key,
            [0x00, 0x53, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
        );
    }

    #[test]
    fn decode_refuses_wrong_length_and_prefix() {
        let good = SampleKey::new(5, 6, 7).encode();
        assert!(matches!(
            SampleKey::decode(&good[..15]),
            Err(Error::Corruption { .. })
        ));
        let mut long = good.to_vec();
        long.push(0);
        assert!(matches!(
            SampleKey::decode(&long),
            Err(Error::Corruption { .. })
        ));
        let mut other = good;
        other[1] = b'E';
        let err = SampleKey::decode(&other).unwrap_err();
        assert!(err.to_string().contains("prefix"), "{err}");
        assert!(err.to_string().contains("0045"), "{err}");
    }

    #[test]
    fn bounds_at_the_ends_of_time() {
        assert_eq!(time_start(0), *b"\x00S\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(time_end_inclusive(u64::MAX), b"\x00T".to_vec());
        let last = SampleKey::new(u64::MAX, u32::MAX, u16::MAX).encode();
        assert!(last.as_slice() < time_end_inclusive(u64::MAX).as_slice());
        assert!(SampleKey::new(7, u32::MAX, u16::MAX).encode().to_vec() < time_end_inclusive(7));
        assert_eq!(time_end_inclusive(7), time_start(8).to_vec());
    }

    fn any_key() -> impl Strategy<Value = SampleKey> {
        // Values near the field boundaries are the interesting ones.
        let time = prop_oneof![
            any::<u64>(),
            0u64..4,
            (u64::MAX - 3)..=u64::MAX,
            Just(u32::MAX as u64),
            Just(1u64 << 32)
        ];
        let frame = prop_oneof![
            any::<u32>(),
            0u32..3,
            (u32::MAX - 2)..=u32::MAX,
            Just(255u32),
            Just(256u32)
        ];
        let channel = prop_oneof![
            any::<u16>(),
            0u16..3,
            (u16::MAX - 2)..=u16::MAX,
            Just(255u16),
            Just(256u16)
        ];
        (time, frame, channel).prop_map(|(t, f, c)| SampleKey::new(t, f, c))
    }

    proptest! {
        #[test]
        fn round_trip(key in any_key()) {
            prop_assert_eq!(SampleKey::decode(&key.encode())?, key);
        }

        #[test]
        fn byte_order_is_time_frame_channel_order(a in any_key(), b in any_key()) {
            prop_assert_eq!(a.encode().cmp(&b.encode()), a.cmp(&b));
            prop_assert_eq!(
                a.encode().cmp(&b.encode()),
                (a.time_ns, a.frame, a.channel.0).cmp(&(b.time_ns, b.frame, b.channel.0))
            );
        }

        #[test]
        fn time_bounds_contain_exactly_their_times(key in any_key(), t in any::<u64>()) {
            let k = key.encode();
            prop_assert_eq!(k >= time_start(t), key.time_ns >= t);
            prop_assert_eq!(k.as_slice() < time_end_inclusive(t).as_slice(), key.time_ns <= t);
            prop_assert!(k.as_slice() < samples_end().as_slice());
        }
    }
}
