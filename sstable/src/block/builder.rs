//! Writes one block: prefix-compressed entries, then the restart array
//! (docs/sst-format.md, "Block").
//!
//! The builder does not check key order (the table builder does, with the
//! internal key order); it only compresses against the previous key. One
//! builder is reused for every block of a table through [`BlockBuilder::reset`].
//! Single-threaded: owned by one table builder.

use jkv_format::coding::put_varint32;

use super::RESTART_LEN;

/// Builds the contents of one block (without its trailer).
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    /// Entries since the last restart point.
    since_restart: usize,
    entry_count: usize,
    last_key: Vec<u8>,
    finished: bool,
}

impl BlockBuilder {
    /// A builder that stores a full key every `restart_interval` entries
    /// (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            since_restart: 0,
            entry_count: 0,
            last_key: Vec::new(),
            finished: false,
        }
    }

    /// Appends an entry. Keys and values must each be shorter than 4 GiB and
    /// the block must stay below 4 GiB (the table builder bounds both).
    ///
    /// # Panics
    /// After [`finish`](Self::finish) without [`reset`](Self::reset).
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        assert!(!self.finished, "BlockBuilder::add after finish needs reset");
        let shared = if self.since_restart < self.restart_interval {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.since_restart = 0;
            0
        };
        let non_shared = key.len() - shared;
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, non_shared as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.since_restart += 1;
        self.entry_count += 1;
    }

    /// Size of the block if it were finished now.
    pub fn estimated_size_bytes(&self) -> usize {
        self.buf.len() + (self.restarts.len() + 1) * RESTART_LEN
    }

    /// Number of entries added since the last reset.
    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// True when no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// The last key added (empty before the first).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished contents. An empty
    /// block has one restart point (offset 0) and no entries.
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            for r in &self.restarts {
                self.buf.extend_from_slice(&r.to_le_bytes());
            }
            self.buf
                .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
            self.finished = true;
        }
        &self.buf
    }

    /// Empties the builder for the next block, keeping its allocations.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.restarts.push(0);
        self.since_restart = 0;
        self.entry_count = 0;
        self.last_key.clear();
        self.finished = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::key::InternalKey;
    use jkv_format::{SeqNo, ValueKind};

    /// The worked example of docs/sst-format.md, "Block".
    #[test]
    fn matches_the_documented_example() {
        let mut b = BlockBuilder::new(16);
        b.add(
            &InternalKey::new(b"apple", SeqNo(17), ValueKind::Value).into_vec(),
            b"red",
        );
        b.add(
            &InternalKey::new(b"apricot", SeqNo(9), ValueKind::Value).into_vec(),
            b"",
        );
        assert_eq!(b.entry_count(), 2);
        assert_eq!(b.estimated_size_bytes(), 43);
        let expected: Vec<u8> = [
            &[0x00, 0x0d, 0x03][..],
            b"apple",
            &[0x01, 0x11, 0, 0, 0, 0, 0, 0],
            b"red",
            &[0x02, 0x0d, 0x00],
            b"ricot",
            &[0x01, 0x09, 0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0],
            &[1, 0, 0, 0],
        ]
        .concat();
        assert_eq!(b.finish(), &expected[..]);
        b.reset();
        assert!(b.is_empty());
        assert_eq!(b.finish(), &[0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn magic_matches_the_documented_value() {
        assert_eq!(crate::footer::TABLE_MAGIC, 0x0a54_5353_766b_6a89);
    }
}
