//! Integer coding: LEB128 varints and little-endian fixed-width integers,
//! with a bounds-checked cursor for decoding untrusted bytes.
//!
//! Decoders return `None` on short or malformed input; the caller knows the
//! file and offset and turns that into a `Corruption` error.

/// Appends `v` as a varint (7 bits per byte, low bits first).
#[inline]
pub fn put_varint64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends `v` as a varint.
#[inline]
pub fn put_varint32(buf: &mut Vec<u8>, v: u32) {
    put_varint64(buf, u64::from(v))
}

/// Number of bytes `v` takes as a varint.
#[inline]
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Decodes a varint at the start of `buf`: (value, bytes consumed).
#[inline]
pub fn get_varint64(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None; // would overflow 64 bits
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes a varint that must fit in 32 bits.
#[inline]
pub fn get_varint32(buf: &[u8]) -> Option<(u32, usize)> {
    // Fast path: one byte.
    if let Some(&b) = buf.first() {
        if b < 0x80 {
            return Some((u32::from(b), 1));
        }
    }
    let (v, n) = get_varint64(buf)?;
    Some((u32::try_from(v).ok()?, n))
}

/// Reads a little-endian u32 at `at`.
#[inline]
pub fn get_u32_le(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a little-endian u64 at `at`.
#[inline]
pub fn get_u64_le(buf: &[u8], at: usize) -> Option<u64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// A bounds-checked reading cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Next byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Next little-endian u32.
    pub fn u32_le(&mut self) -> Option<u32> {
        let v = get_u32_le(self.buf, self.pos)?;
        self.pos += 4;
        Some(v)
    }

    /// Next little-endian u64.
    pub fn u64_le(&mut self) -> Option<u64> {
        let v = get_u64_le(self.buf, self.pos)?;
        self.pos += 8;
        Some(v)
    }

    /// Next varint.
    pub fn varint64(&mut self) -> Option<u64> {
        let (v, n) = get_varint64(&self.buf[self.pos..])?;
        self.pos += n;
        Some(v)
    }

    /// Next varint that must fit 32 bits.
    pub fn varint32(&mut self) -> Option<u32> {
        let (v, n) = get_varint32(&self.buf[self.pos..])?;
        self.pos += n;
        Some(v)
    }

    /// Next `n` bytes. Fails (without allocating) when fewer are left, so a
    /// corrupt length can never cause a huge allocation.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// A varint length followed by that many bytes.
    pub fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint64()?).ok()?;
        self.bytes(n)
    }
}

/// Appends a varint length and the bytes.
#[inline]
pub fn put_length_prefixed(buf: &mut Vec<u8>, data: &[u8]) {
    put_varint64(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_edges() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint64(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint64(&b), Some((v, b.len())));
        }
        assert_eq!(get_varint64(&[0x80]), None);
        assert_eq!(get_varint64(&[]), None);
        assert_eq!(get_varint64(&[0xff; 11]), None);
        let mut b = Vec::new();
        put_varint64(&mut b, u64::from(u32::MAX) + 1);
        assert_eq!(get_varint32(&b), None);
    }

    #[test]
    fn cursor_refuses_lengths_past_end() {
        let mut b = Vec::new();
        put_varint64(&mut b, u64::MAX / 2);
        b.extend_from_slice(b"abc");
        let mut c = Cursor::new(&b);
        assert_eq!(c.length_prefixed(), None);
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<u64>()) {
            let mut b = Vec::new();
            put_varint64(&mut b, v);
            prop_assert_eq!(get_varint64(&b), Some((v, b.len())));
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut c = Cursor::new(&b);
            let _ = c.varint64();
            let _ = c.length_prefixed();
            let _ = c.u64_le();
            let _ = get_u32_le(&b, usize::MAX - 1);
        }
    }
}
