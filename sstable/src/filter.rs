//! The table's bloom filter over user keys (docs/sst-format.md, "Filter").
//!
//! One filter covers the whole table. A user key is hashed once with
//! FarmHash's `fingerprint64` (stable across versions and platforms, which an
//! on-disk filter needs); probe `i` of `k` uses the double hash
//! `g_i = h1 + i * h2 (mod 2^64)` with `h1 = hash`, `h2 = hash rotated by 32
//! bits, low bit set`, and maps `g_i` to bit `floor(g_i * nbits / 2^64)`.
//! The probe count `k` is stored in the filter's last byte, so a reader needs
//! no options to use it.
//!
//! The builder is single-threaded; a [`BloomFilter`] is immutable and shared
//! freely between threads.

use std::f64::consts::LN_2;

use bytes::Bytes;

/// Fewest bits a filter has, so tiny tables still get a useful filter.
const FILTER_BITS_MIN: usize = 64;
/// Largest probe count; larger values in the last byte are refused.
pub const PROBES_MAX: u8 = 30;

/// The hash the filter stores for `user_key`.
#[inline]
pub fn bloom_hash(user_key: &[u8]) -> u64 {
    farmhash::fingerprint64(user_key)
}

/// Probe count for `bits_per_key`: `round(bits_per_key * ln 2)` in `1..=30`.
pub fn probe_count(bits_per_key: usize) -> u8 {
    ((bits_per_key as f64 * LN_2).round() as usize).clamp(1, PROBES_MAX as usize) as u8
}

#[inline]
fn probes(hash: u64) -> (u64, u64) {
    (hash, hash.rotate_left(32) | 1)
}

#[inline]
fn bit_index(g: u64, nbits: u64) -> u64 {
    ((u128::from(g) * u128::from(nbits)) >> 64) as u64
}

/// Collects the hashes of a table's user keys and builds its filter.
#[derive(Debug)]
pub struct FilterBuilder {
    bits_per_key: usize,
    hashes: Vec<u64>,
}

impl FilterBuilder {
    /// A builder giving each key `bits_per_key` bits (at least 1).
    pub fn new(bits_per_key: usize) -> Self {
        FilterBuilder {
            bits_per_key: bits_per_key.max(1),
            hashes: Vec::new(),
        }
    }

    /// Adds a user key. The caller adds each user key once (versions of one
    /// key share a filter entry).
    pub fn add_key(&mut self, user_key: &[u8]) {
        self.hashes.push(bloom_hash(user_key));
    }

    /// Number of keys added.
    pub fn key_count(&self) -> usize {
        self.hashes.len()
    }

    fn bit_count(&self) -> usize {
        let bits = self
            .hashes
            .len()
            .saturating_mul(self.bits_per_key)
            .max(FILTER_BITS_MIN);
        bits.div_ceil(8) * 8
    }

    /// Size the filter would have now, in bytes (bits plus the probe byte).
    pub fn estimated_size_bytes(&self) -> usize {
        self.bit_count() / 8 + 1
    }

    /// The filter: the bit array followed by the probe count byte.
    pub fn finish(&self) -> Vec<u8> {
        let nbits = self.bit_count();
        let k = probe_count(self.bits_per_key);
        let mut out = vec![0u8; nbits / 8 + 1];
        for &h in &self.hashes {
            let (mut g, delta) = probes(h);
            for _ in 0..k {
                let bit = bit_index(g, nbits as u64) as usize;
                out[bit / 8] |= 1 << (bit % 8);
                g = g.wrapping_add(delta);
            }
        }
        out[nbits / 8] = k;
        out
    }
}

/// A table's filter, read back: answers "may the table hold this user key?".
#[derive(Clone, Debug)]
pub struct BloomFilter {
    bits: Bytes,
    nbits: u64,
    k: u8,
}

impl BloomFilter {
    /// Parses filter contents (bits, then the probe count byte). Fails on an
    /// empty filter or a probe count outside `1..=30`.
    pub fn new(data: Bytes) -> Result<BloomFilter, &'static str> {
        let Some((&k, _)) = data.split_last() else {
            return Err("empty filter block");
        };
        if k == 0 || k > PROBES_MAX {
            return Err("filter probe count outside 1..=30");
        }
        let bits = data.slice(..data.len() - 1);
        Ok(BloomFilter {
            nbits: bits.len() as u64 * 8,
            bits,
            k,
        })
    }

    /// False only if `user_key` was certainly never added.
    #[inline]
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(bloom_hash(user_key))
    }

    /// [`may_contain`](Self::may_contain) for a precomputed [`bloom_hash`].
    #[inline]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        if self.nbits == 0 {
            return true;
        }
        let (mut g, delta) = probes(hash);
        for _ in 0..self.k {
            let bit = bit_index(g, self.nbits) as usize;
            // bit < nbits = 8 * bits.len(), so the index is in range.
            if self.bits[bit / 8] & (1 << (bit % 8)) == 0 {
                return false;
            }
            g = g.wrapping_add(delta);
        }
        true
    }

    /// Probe count.
    pub fn probe_count(&self) -> u8 {
        self.k
    }

    /// Size in bytes, probe byte included.
    pub fn size_bytes(&self) -> usize {
        self.bits.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(keys: impl Iterator<Item = Vec<u8>>, bits_per_key: usize) -> BloomFilter {
        let mut b = FilterBuilder::new(bits_per_key);
        for k in keys {
            b.add_key(&k);
        }
        let data = b.finish();
        assert_eq!(data.len(), b.estimated_size_bytes());
        BloomFilter::new(Bytes::from(data)).unwrap()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("user-key-{i:08}").into_bytes()
    }

    #[test]
    fn probe_count_rounds_and_clamps() {
        assert_eq!(probe_count(0), 1);
        assert_eq!(probe_count(1), 1);
        assert_eq!(probe_count(10), 7);
        assert_eq!(probe_count(100), 30);
    }

    #[test]
    fn empty_filter_rejects_everything() {
        let f = filter_of(std::iter::empty(), 10);
        assert_eq!(f.size_bytes(), 9);
        assert!((0..1000).all(|i| !f.may_contain(&key(i))));
    }

    #[test]
    fn no_false_negatives_at_many_sizes() {
        for n in [1u32, 10, 100, 1000, 10_000] {
            for bits in [1, 5, 10, 20] {
                let f = filter_of((0..n).map(key), bits);
                assert!((0..n).all(|i| f.may_contain(&key(i))), "n={n} bits={bits}");
            }
        }
    }

    #[test]
    fn false_positive_rate_at_ten_bits_per_key() {
        let n = 10_000u32;
        let f = filter_of((0..n).map(key), 10);
        assert_eq!(f.probe_count(), 7);
        let fp = (n..2 * n).filter(|&i| f.may_contain(&key(i))).count();
        let rate = fp as f64 / f64::from(n);
        assert!(rate < 0.02, "false positive rate {rate}");
        // Short, similar keys (integers) must spread just as well.
        let f = filter_of((0..n).map(|i| i.to_be_bytes().to_vec()), 10);
        let fp = (n..2 * n)
            .filter(|&i| f.may_contain(&i.to_be_bytes()))
            .count();
        assert!((fp as f64 / f64::from(n)) < 0.02, "{fp} false positives");
    }

    #[test]
    fn bad_filter_bytes_are_refused() {
        assert!(BloomFilter::new(Bytes::new()).is_err());
        assert!(BloomFilter::new(Bytes::from_static(&[0xff, 0])).is_err());
        assert!(BloomFilter::new(Bytes::from_static(&[0xff, 31])).is_err());
        // A probe byte alone: no bits, so everything may be present.
        assert!(BloomFilter::new(Bytes::from_static(&[3]))
            .unwrap()
            .may_contain(b"x"));
    }
}
