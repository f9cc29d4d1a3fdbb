//! Key and value generation in db_bench's manner: keys are numbers below
//! `--num` written as zero-padded decimal of `--key_size` bytes, in sequence
//! or drawn (with replacement) from a seeded generator; values are slices of
//! a pool of pseudo-random bytes (db_bench's pool is half compressible; with
//! compression off any pseudo-random bytes serve). Each thread owns its
//! generators; nothing here is shared.

/// A small seeded generator (SplitMix64): fast, and the same sequence on
/// every machine for the same seed.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); like db_bench's `rand % num`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Writes `n` as zero-padded decimal filling `out` (db_bench's `%016d` for
/// 16-byte keys). Digits beyond `out.len()` are dropped from the left;
/// flag checking makes sure keys below `--num` fit.
pub fn format_key(n: u64, out: &mut [u8]) {
    let mut n = n;
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The key for `n` as a new vector of `key_size` bytes.
pub fn key(n: u64, key_size: usize) -> Vec<u8> {
    let mut k = vec![0; key_size];
    format_key(n, &mut k);
    k
}

/// Hands out values: consecutive slices of a 1 MiB pool, wrapping around,
/// so values differ from each other without the cost of generating every
/// byte. The pool is made as db_bench's `RandomGenerator` makes it: pieces
/// of 100 bytes, each a random string of printable characters of
/// `ratio * 100` bytes repeated to fill the piece, so values compress to
/// about `ratio` of their size; ratio 1 gives random bytes.
#[derive(Clone, Debug)]
pub struct ValueGen {
    pool: Vec<u8>,
    pos: usize,
}

impl ValueGen {
    const POOL_BYTES: usize = 1 << 20;

    /// A pool of random bytes filled from `seed`, able to hand out values
    /// up to `value_size_max` (incompressible: ratio 1).
    pub fn new(seed: u64, value_size_max: usize) -> ValueGen {
        Self::with_ratio(seed, value_size_max, 1.0)
    }

    /// A pool filled from `seed` whose values compress to about `ratio`
    /// (`(0, 1]`) of their size.
    pub fn with_ratio(seed: u64, value_size_max: usize, ratio: f64) -> ValueGen {
        const PIECE: usize = 100;
        let mut rng = Rng::new(seed ^ 0x005e_ed0f_7a1e);
        let len = Self::POOL_BYTES.max(value_size_max * 2);
        let mut pool = Vec::with_capacity(len + PIECE);
        if ratio >= 1.0 {
            while pool.len() < len {
                pool.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
        } else {
            let raw_len = ((PIECE as f64 * ratio) as usize).max(1);
            let mut raw = Vec::with_capacity(raw_len);
            while pool.len() < len {
                raw.clear();
                raw.extend((0..raw_len).map(|_| b' ' + rng.below(95) as u8));
                let piece_end = pool.len() + PIECE;
                while pool.len() < piece_end {
                    let take = raw.len().min(piece_end - pool.len());
                    pool.extend_from_slice(&raw[..take]);
                }
            }
        }
        pool.truncate(len);
        ValueGen { pool, pos: 0 }
    }

    /// The next value of `len` bytes.
    pub fn next(&mut self, len: usize) -> &[u8] {
        if self.pos + len > self.pool.len() {
            self.pos = 0;
        }
        let start = self.pos;
        self.pos += len.max(1);
        &self.pool[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal() {
        assert_eq!(key(0, 16), b"0000000000000000");
        assert_eq!(key(1_999_999, 16), b"0000000001999999");
        assert_eq!(key(42, 4), b"0042");
        // Byte order equals numeric order, as with db_bench's keys.
        assert!(key(9, 16) < key(10, 16));
    }

    #[test]
    fn generator_is_seeded_and_bounded() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.below(1000)
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(7);
                move |_| r.below(1000)
            })
            .collect();
        assert_eq!(a, b, "same seed, same keys");
        assert!(a.iter().all(|&k| k < 1000));
        let mut other = Rng::new(8);
        assert_ne!(
            a[0..5],
            (0..5).map(|_| other.below(1000)).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn values_have_the_asked_length_and_vary() {
        let mut g = ValueGen::new(1, 4096);
        let first = g.next(100).to_vec();
        let second = g.next(100).to_vec();
        assert_eq!(first.len(), 100);
        assert_ne!(first, second);
        assert_eq!(g.next(4096).len(), 4096);
        assert_eq!(g.next(0).len(), 0);
    }

    #[test]
    fn values_compress_to_about_the_asked_ratio() {
        for ratio in [0.25, 0.5, 0.75] {
            let mut g = ValueGen::with_ratio(3, 100, ratio);
            let v = g.next(64 << 10).to_vec();
            let c = jkv_sstable_ratio(&v);
            // Printable random characters take about 6.6 of 8 bits, and
            // LZ4 adds a little: the ratio lands a bit above `ratio`.
            assert!(c > ratio * 0.8 && c < ratio + 0.25, "{ratio}: {c}");
        }
        let mut random = ValueGen::new(3, 100);
        assert!(jkv_sstable_ratio(random.next(64 << 10)) > 0.99);
    }

    /// Compressed over raw size of `v` with LZ4 in 4 KiB pieces (like data
    /// blocks); 1 when a piece does not shrink.
    fn jkv_sstable_ratio(v: &[u8]) -> f64 {
        let mut out = Vec::new();
        let stored: usize = v
            .chunks(4096)
            .map(|c| {
                if jkv_sstable::codec::compress_block(c, jkv::Compression::Lz4, &mut out).is_some()
                {
                    out.len()
                } else {
                    c.len()
                }
            })
            .sum();
        stored as f64 / v.len() as f64
    }
}
