//! A bloom filter over the user keys of one memtable, so that a point
//! lookup of a key the memtable does not hold skips the skiplist search
//! (about 20 dependent cache misses in a full memtable) for one.
//!
//! Blocked to one 64-bit word per key: the key's hash picks a word and four
//! bits inside it, so a check reads one cache line. Sized once, when the
//! memtable is made (the engine gives it a fixed share of the write
//! buffer); with the default share a full memtable of 100-byte values has
//! about 190 bits per key, far below 1% false positives.
//!
//! Concurrency: the single inserter sets bits (load, then store) before the
//! entry is inserted; the engine publishes an entry's sequence number only
//! after that, so a reader that may see the entry also sees its bits.

use std::sync::atomic::{AtomicU64, Ordering};

/// One-word-per-key bloom filter with atomic words.
#[derive(Debug)]
pub(crate) struct KeyFilter {
    words: Box<[AtomicU64]>,
}

impl KeyFilter {
    /// A filter of about `bytes` bytes (at least one word).
    pub(crate) fn with_bytes(bytes: usize) -> KeyFilter {
        let words = (bytes / 8).max(1);
        KeyFilter {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The word index and the four-bit mask for `key`.
    #[inline]
    fn probe(&self, key: &[u8]) -> (usize, u64) {
        let h = farmhash::fingerprint64(key);
        // High bits pick the word (multiply-shift, no division), the low 24
        // bits give four 6-bit positions inside it.
        let word = ((u128::from(h >> 32) * self.words.len() as u128) >> 32) as usize;
        let mask = (0..4).fold(0u64, |m, i| m | 1 << ((h >> (6 * i)) & 63));
        (word, mask)
    }

    /// Records `key`. Only one thread may insert at a time (the memtable's
    /// single inserter), which makes a plain load and store enough: no
    /// locked read-modify-write, and no store when the bits are already set.
    #[inline]
    pub(crate) fn insert(&self, key: &[u8]) {
        let (word, mask) = self.probe(key);
        let w = &self.words[word];
        let bits = w.load(Ordering::Relaxed);
        if bits & mask != mask {
            w.store(bits | mask, Ordering::Relaxed);
        }
    }

    /// False only if `key` was certainly never inserted.
    #[inline]
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        let (word, mask) = self.probe(key);
        self.words[word].load(Ordering::Relaxed) & mask == mask
    }

    /// Bytes of memory held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let f = KeyFilter::with_bytes(64 * 1024);
        for i in 0..20_000u32 {
            f.insert(format!("key{i:08}").as_bytes());
        }
        for i in 0..20_000u32 {
            assert!(f.may_contain(format!("key{i:08}").as_bytes()), "{i}");
        }
        let false_positives = (0..20_000u32)
            .filter(|i| f.may_contain(format!("other{i:08}").as_bytes()))
            .count();
        // 26 bits per key: well under 1% expected.
        assert!(false_positives < 200, "{false_positives} false positives");
        assert_eq!(f.memory_bytes(), 64 * 1024);
        // A one-word filter still answers correctly (everything maybe).
        let tiny = KeyFilter::with_bytes(0);
        tiny.insert(b"a");
        assert!(tiny.may_contain(b"a"));
    }
}
