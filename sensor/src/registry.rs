//! The channel registry (docs/sensor.md, "Registry records"): what each
//! channel id stands for, persisted in the same database as the samples.
//!
//! ```text
//! key   = REGISTRY_PREFIX(2) channel:u16 BE(2)                                   4 bytes
//! value = version:u8(=1) kind:u8 name_len:u16 LE name encoding_len:u16 LE encoding
//! ```
//!
//! The registry owns the records; it does not own the samples (a sample may
//! name a channel nobody registered: it is stored and read back, but no
//! kind filter matches it). [`Registry`] keeps every record in memory behind
//! a read-write lock, loaded once on open and updated on each register, so
//! a kind filter never reads the database. Writers are serialized by a
//! mutex so the name-uniqueness check and the write are one step.

use std::collections::BTreeMap;

use jkv::{Db, WriteOptions};
use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::key::ChannelId;

/// First bytes of every registry key: `0x00 's'`.
pub const REGISTRY_PREFIX: &[u8] = b"\x00s";
/// Length of a registry key.
pub const REGISTRY_KEY_LEN: usize = REGISTRY_PREFIX.len() + 2;
/// Version byte of the record format.
const RECORD_VERSION: u8 = 1;
/// Longest name or encoding accepted, in bytes.
pub const NAME_LEN_MAX: usize = 1024;

/// What a channel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChannelKind {
    /// Anything else (stored as 0).
    Other,
    /// Radar returns (1).
    Radar,
    /// Camera images (2).
    Image,
    /// Lidar point clouds (3).
    Lidar,
}

impl ChannelKind {
    /// Every kind, in byte order.
    pub const ALL: [ChannelKind; 4] = [
        ChannelKind::Other,
        ChannelKind::Radar,
        ChannelKind::Image,
        ChannelKind::Lidar,
    ];

    /// The stored byte.
    pub fn byte(self) -> u8 {
        match self {
            ChannelKind::Other => 0,
            ChannelKind::Radar => 1,
            ChannelKind::Image => 2,
            ChannelKind::Lidar => 3,
        }
    }

    /// The kind stored as `byte`, or `None`.
    pub fn from_byte(byte: u8) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.byte() == byte)
    }

    /// The lowercase word: `other`, `radar`, `image`, `lidar`.
    pub fn word(self) -> &'static str {
        match self {
            ChannelKind::Other => "other",
            ChannelKind::Radar => "radar",
            ChannelKind::Image => "image",
            ChannelKind::Lidar => "lidar",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<ChannelKind> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.word() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown channel kind {s:?}; expected radar, image, lidar or other"
                ))
            })
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// One registry record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelInfo {
    /// What the channel carries.
    pub kind: ChannelKind,
    /// Its name, unique among channels, e.g. `/camera/front`.
    pub name: String,
    /// How its payloads are encoded, e.g. `jpeg`, `cdr`, `raw` (free text,
    /// the message encoding an MCAP export would name).
    pub encoding: String,
}

impl ChannelInfo {
    /// A record of `kind` named `name` with `encoding`.
    pub fn new(kind: ChannelKind, name: impl Into<String>, encoding: impl Into<String>) -> Self {
        ChannelInfo {
            kind,
            name: name.into(),
            encoding: encoding.into(),
        }
    }

    /// The record's value bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.name.len() + self.encoding.len());
        out.push(RECORD_VERSION);
        out.push(self.kind.byte());
        for text in [&self.name, &self.encoding] {
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Decodes the value stored under `key`; bytes that are not a record
    /// give [`Error::Corruption`] naming `key`.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<ChannelInfo> {
        let bad = |what: String| Error::corruption(key, what);
        let (&version, rest) = value
            .split_first()
            .ok_or_else(|| bad("empty registry record".into()))?;
        if version != RECORD_VERSION {
            return Err(bad(format!(
                "registry record version {version}, this build reads {RECORD_VERSION}"
            )));
        }
        let (&kind, mut rest) = rest
            .split_first()
            .ok_or_else(|| bad("registry record ends before its kind (byte 1)".into()))?;
        let kind = ChannelKind::from_byte(kind)
            .ok_or_else(|| bad(format!("unknown channel kind byte {kind} at byte 1")))?;
        let mut texts = Vec::with_capacity(2);
        for field in ["name", "encoding"] {
            let at = value.len() - rest.len();
            if rest.len() < 2 {
                return Err(bad(format!(
                    "record ends in the {field} length at byte {at}"
                )));
            }
            let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
            if rest.len() < 2 + len {
                return Err(bad(format!(
                    "{field} of {len} bytes at byte {} runs past the record's end ({} bytes)",
                    at + 2,
                    value.len()
                )));
            }
            let text = std::str::from_utf8(&rest[2..2 + len])
                .map_err(|_| bad(format!("{field} at byte {} is not UTF-8", at + 2)))?;
            texts.push(text.to_string());
            rest = &rest[2 + len..];
        }
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes after the record's end at byte {}",
                rest.len(),
                value.len() - rest.len()
            )));
        }
        let encoding = texts.pop().expect("two texts read");
        let name = texts.pop().expect("two texts read");
        Ok(ChannelInfo {
            kind,
            name,
            encoding,
        })
    }
}

/// The registry key of `channel`.
pub fn registry_key(channel: ChannelId) -> [u8; REGISTRY_KEY_LEN] {
    let mut out = [0u8; REGISTRY_KEY_LEN];
    out[..2].copy_from_slice(REGISTRY_PREFIX);
    out[2..].copy_from_slice(&channel.0.to_be_bytes());
    out
}

/// The channel records of one database, cached in memory.
#[derive(Debug, Default)]
pub struct Registry {
    channels: RwLock<BTreeMap<ChannelId, ChannelInfo>>,
    /// Serializes [`Registry::register`]: check and write are one step.
    write_lock: Mutex<()>,
}

impl Registry {
    /// Reads every registry record of `db`.
    pub fn load(db: &Db) -> Result<Registry> {
        let mut channels = BTreeMap::new();
        for item in db.scan_prefix(REGISTRY_PREFIX, &db.snapshot()) {
            let (key, value) = item?;
            if key.len() != REGISTRY_KEY_LEN {
                return Err(Error::corruption(
                    &key,
                    format!(
                        "registry key of {} bytes, expected {REGISTRY_KEY_LEN}",
                        key.len()
                    ),
                ));
            }
            let id = ChannelId(u16::from_be_bytes([key[2], key[3]]));
            channels.insert(id, ChannelInfo::decode(&key, &value)?);
        }
        Ok(Registry {
            channels: RwLock::new(channels),
            write_lock: Mutex::new(()),
        })
    }

    /// Records `info` for `channel` (durably when `sync`), replacing what
    /// was there. Errors with [`Error::InvalidArgument`] when another
    /// channel has the same name, the name is empty, or the name or the
    /// encoding is longer than [`NAME_LEN_MAX`] bytes.
    pub fn register(
        &self,
        db: &Db,
        channel: ChannelId,
        info: ChannelInfo,
        sync: bool,
    ) -> Result<()> {
        if info.name.is_empty() {
            return Err(Error::invalid("a channel needs a name"));
        }
        for (field, text) in [("name", &info.name), ("encoding", &info.encoding)] {
            if text.len() > NAME_LEN_MAX {
                return Err(Error::invalid(format!(
                    "channel {field} of {} bytes exceeds {NAME_LEN_MAX}",
                    text.len()
                )));
            }
        }
        let _writer = self.write_lock.lock();
        if let Some((other, _)) = self
            .channels
            .read()
            .iter()
            .find(|(id, i)| **id != channel && i.name == info.name)
        {
            return Err(Error::invalid(format!(
                "channel name {:?} is already channel {other}",
                info.name
            )));
        }
        let mut batch = jkv::WriteBatch::new();
        batch.put(registry_key(channel), info.encode());
        db.write(batch, WriteOptions { sync })?;
        self.channels.write().insert(channel, info);
        Ok(())
    }

    /// The record of `channel`, if registered.
    pub fn get(&self, channel: ChannelId) -> Option<ChannelInfo> {
        self.channels.read().get(&channel).cloned()
    }

    /// The kind of `channel`, if registered.
    pub fn kind(&self, channel: ChannelId) -> Option<ChannelKind> {
        self.channels.read().get(&channel).map(|i| i.kind)
    }

    /// The channel named `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<ChannelId> {
        self.channels
            .read()
            .iter()
            .find(|(_, i)| i.name == name)
            .map(|(id, _)| *id)
    }

    /// Every registered channel, ascending by id.
    pub fn channels(&self) -> Vec<(ChannelId, ChannelInfo)> {
        self.channels
            .read()
            .iter()
            .map(|(id, i)| (*id, i.clone()))
            .collect()
    }

    /// The registered channels of `kind`, ascending.
    pub fn of_kind(&self, kind: ChannelKind) -> Vec<ChannelId> {
        self.channels
            .read()
            .iter()
            .filter(|(_, i)| i.kind == kind)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv::Options;

    fn open(dir: &std::path::Path) -> Db {
        Db::open(dir, Options::default()).expect("open")
    }

    #[test]
    fn record_layout_is_version_kind_then_length_prefixed_texts() {
        let info = ChannelInfo::new(ChannelKind::Image, "/cam", "jpeg");
        assert_eq!(
            info.encode(),
            [1, 2, 4, 0, b'/', b'c', b'a', b'm', 4, 0, b'j', b'p', b'e', b'g']
        );
        assert_eq!(registry_key(ChannelId(0x0102)), [0x00, 0x73, 0x01, 0x02]);
    }

    #[test]
    fn records_round_trip_for_every_kind() {
        for kind in ChannelKind::ALL {
            let info = ChannelInfo::new(kind, "/radar/left/ünïcode", "");
            assert_eq!(ChannelInfo::decode(b"k", &info.encode()).unwrap(), info);
            assert_eq!(kind.word().parse::<ChannelKind>().unwrap(), kind);
        }
        assert!(matches!(
            "camera".parse::<ChannelKind>(),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn damaged_records_are_corruption_never_panics() {
        let good = ChannelInfo::new(ChannelKind::Lidar, "/lidar/top", "pcd").encode();
        for cut in 0..good.len() {
            let err = ChannelInfo::decode(b"k", &good[..cut]).unwrap_err();
            assert!(matches!(err, Error::Corruption { .. }), "cut {cut}: {err}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            ChannelInfo::decode(b"k", &trailing),
            Err(Error::Corruption { .. })
        ));
        let mut version = good.clone();
        version[0] = 2;
        let err = ChannelInfo::decode(b"k", &version).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        let mut kind = good.clone();
        kind[1] = 9;
        let err = ChannelInfo::decode(b"k", &kind).unwrap_err();
        assert!(err.to_string().contains("kind byte 9"), "{err}");
        let mut utf8 = good;
        utf8[4] = 0xff;
        assert!(ChannelInfo::decode(b"k", &utf8)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn registered_channels_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path());
            let reg = Registry::load(&db).unwrap();
            assert!(reg.channels().is_empty());
            reg.register(
                &db,
                ChannelId(3),
                ChannelInfo::new(ChannelKind::Image, "/camera/front", "jpeg"),
                true,
            )
            .unwrap();
            reg.register(
                &db,
                ChannelId(1),
                ChannelInfo::new(ChannelKind::Radar, "/radar/0", "raw"),
                false,
            )
            .unwrap();
            // Re-registering replaces the record.
            reg.register(
                &db,
                ChannelId(1),
                ChannelInfo::new(ChannelKind::Radar, "/radar/0", "cdr"),
                false,
            )
            .unwrap();
            db.close().unwrap();
        }
        let db = open(dir.path());
        let reg = Registry::load(&db).unwrap();
        assert_eq!(
            reg.channels(),
            vec![
                (
                    ChannelId(1),
                    ChannelInfo::new(ChannelKind::Radar, "/radar/0", "cdr")
                ),
                (
                    ChannelId(3),
                    ChannelInfo::new(ChannelKind::Image, "/camera/front", "jpeg")
                ),
            ]
        );
        assert_eq!(reg.by_name("/camera/front"), Some(ChannelId(3)));
        assert_eq!(reg.by_name("/nope"), None);
        assert_eq!(reg.kind(ChannelId(1)), Some(ChannelKind::Radar));
        assert_eq!(reg.kind(ChannelId(2)), None);
        assert_eq!(reg.of_kind(ChannelKind::Image), vec![ChannelId(3)]);
        assert!(reg.of_kind(ChannelKind::Lidar).is_empty());
    }

    #[test]
    fn names_are_unique_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let reg = Registry::load(&db).unwrap();
        reg.register(
            &db,
            ChannelId(1),
            ChannelInfo::new(ChannelKind::Radar, "/r", ""),
            false,
        )
        .unwrap();
        let err = reg
            .register(
                &db,
                ChannelId(2),
                ChannelInfo::new(ChannelKind::Image, "/r", ""),
                false,
            )
            .unwrap_err();
        assert!(err.to_string().contains("already channel 1"), "{err}");
        assert!(matches!(
            reg.register(
                &db,
                ChannelId(2),
                ChannelInfo::new(ChannelKind::Image, "", ""),
                false
            ),
            Err(Error::InvalidArgument(_))
        ));
        let long = "x".repeat(NAME_LEN_MAX + 1);
        assert!(matches!(
            reg.register(
                &db,
                ChannelId(2),
                ChannelInfo::new(ChannelKind::Image, "/i", long),
                false
            ),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(reg.channels().len(), 1);
        // Nothing refused reached the database.
        drop(reg);
        assert_eq!(Registry::load(&db).unwrap().channels().len(), 1);
    }

    #[test]
    fn a_damaged_stored_record_fails_load_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        db.put(registry_key(ChannelId(7)), [1u8, 2, 9]).unwrap();
        let err = Registry::load(&db).unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }));
        assert!(err.to_string().contains("00730007"), "{err}");
    }
}
