//! Where a block lies in a table, and the 5-byte trailer that follows every
//! block on disk (docs/sst-format.md, "Block trailer" and "Block handle").
//!
//! This module checks a block's bounds, checksum and compression type when it
//! is read from the mapped file; it knows nothing about what is inside.
//! Pure functions, no state.

use std::path::Path;

use jkv_format::coding::{get_u32_le, put_varint64, Cursor};
use jkv_format::{checksum_parts, Compression, Error, Result};

/// Layout: docs/sst-format.md, "Block trailer".
const TYPE_AT: usize = 0;
const CRC_AT: usize = TYPE_AT + 1;
/// Bytes after every block: compression type and checksum.
pub const BLOCK_TRAILER_LEN: usize = CRC_AT + 4;
const _: () = assert!(BLOCK_TRAILER_LEN == 5);

/// Compression type byte of an uncompressed block.
pub const COMPRESSION_NONE: u8 = jkv_format::compression::COMPRESSION_TYPE_NONE;

/// Longest encoding of a [`BlockHandle`]: two 10-byte varints.
pub const BLOCK_HANDLE_LEN_MAX: usize = 20;

/// Position of a block in its table: offset of the block's first byte and
/// size of its contents in bytes, not counting the trailer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockHandle {
    /// Byte offset of the block in the file.
    pub offset: u64,
    /// Bytes of block contents (the trailer follows them).
    pub size: u64,
}

impl BlockHandle {
    /// Appends the handle as two varints (offset, size).
    pub fn encode_to(&self, buf: &mut Vec<u8>) {
        put_varint64(buf, self.offset);
        put_varint64(buf, self.size);
    }

    /// Decodes a handle from the start of `cur`.
    pub fn decode_from(cur: &mut Cursor<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: cur.varint64()?,
            size: cur.varint64()?,
        })
    }

    /// Decodes a handle that must fill `buf` exactly.
    pub fn decode_exact(buf: &[u8]) -> Option<BlockHandle> {
        let mut cur = Cursor::new(buf);
        let h = Self::decode_from(&mut cur)?;
        cur.is_empty().then_some(h)
    }

    /// Offset just past the block's trailer, `None` on overflow.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// The trailer for `contents` stored with compression `kind`.
pub fn block_trailer(contents: &[u8], kind: u8) -> [u8; BLOCK_TRAILER_LEN] {
    let crc = checksum_parts(&[contents, &[kind]]);
    let mut t = [0u8; BLOCK_TRAILER_LEN];
    t[TYPE_AT] = kind;
    t[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    t
}

/// The contents of the uncompressed block at `handle` in `file` (metadata
/// blocks are never compressed), after checking that the block and its
/// trailer end at or before `limit` (the start of the next region), that the
/// checksum matches and that the block is stored raw. Errors are
/// [`Error::Corruption`] at the block's offset.
pub fn read_block<'a>(
    file: &'a [u8],
    handle: BlockHandle,
    limit: u64,
    path: &Path,
) -> Result<&'a [u8]> {
    let (contents, kind) = read_stored_block(file, handle, limit, path)?;
    if kind != COMPRESSION_NONE {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!(
                "block of type {} where only uncompressed blocks are written",
                Compression::type_name(kind).unwrap_or("?")
            ),
        ));
    }
    Ok(contents)
}

/// The stored contents of the block at `handle` in `file` and its
/// compression type byte (0 none, 1 lz4, 2 zstd), after checking the bounds
/// (as [`read_block`]), the checksum (over the stored bytes and the type)
/// and that the type is known. Errors are [`Error::Corruption`] at the
/// block's offset.
pub fn read_stored_block<'a>(
    file: &'a [u8],
    handle: BlockHandle,
    limit: u64,
    path: &Path,
) -> Result<(&'a [u8], u8)> {
    let out_of_bounds = || {
        Error::corruption(
            path,
            handle.offset,
            format!(
                "block handle (offset {}, size {}) runs past byte {limit}",
                handle.offset, handle.size
            ),
        )
    };
    let end = handle.end_with_trailer().ok_or_else(out_of_bounds)?;
    if end > limit || end > file.len() as u64 {
        return Err(out_of_bounds());
    }
    // In bounds of `file`, so the casts cannot truncate.
    let start = handle.offset as usize;
    let contents_end = start + handle.size as usize;
    let contents = file.get(start..contents_end).ok_or_else(out_of_bounds)?;
    let kind = *file.get(contents_end).ok_or_else(out_of_bounds)?;
    let stored = get_u32_le(file, contents_end + CRC_AT).ok_or_else(out_of_bounds)?;
    let computed = checksum_parts(&[contents, &[kind]]);
    if stored != computed {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!(
                "block checksum mismatch (stored {stored:#010x}, computed {computed:#010x}, block size {})",
                handle.size
            ),
        ));
    }
    if Compression::type_name(kind).is_none() {
        return Err(Error::corruption(
            path,
            handle.offset,
            format!("unknown block compression type {kind}"),
        ));
    }
    Ok((contents, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(contents: &[u8], kind: u8) -> Vec<u8> {
        let mut f = contents.to_vec();
        f.extend_from_slice(&block_trailer(contents, kind));
        f
    }

    #[test]
    fn handle_round_trip() {
        for h in [
            BlockHandle { offset: 0, size: 0 },
            BlockHandle {
                offset: u64::MAX,
                size: u64::MAX,
            },
            BlockHandle {
                offset: 4096,
                size: 127,
            },
        ] {
            let mut b = Vec::new();
            h.encode_to(&mut b);
            assert!(b.len() <= BLOCK_HANDLE_LEN_MAX);
            assert_eq!(BlockHandle::decode_exact(&b), Some(h));
            b.push(0);
            assert_eq!(BlockHandle::decode_exact(&b), None);
        }
    }

    #[test]
    fn read_checks_bounds_checksum_and_type() {
        let p = Path::new("t.sst");
        let file = framed(b"hello", COMPRESSION_NONE);
        let h = BlockHandle { offset: 0, size: 5 };
        assert_eq!(
            read_block(&file, h, file.len() as u64, p).unwrap(),
            b"hello"
        );
        assert!(read_block(&file, h, file.len() as u64 - 1, p).is_err());
        let huge = BlockHandle {
            offset: u64::MAX - 2,
            size: 10,
        };
        assert!(read_block(&file, huge, u64::MAX, p)
            .unwrap_err()
            .is_corruption());
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            let e = read_block(&bad, h, bad.len() as u64, p).unwrap_err();
            assert!(e.is_corruption(), "{e}");
        }
        let unknown = framed(b"hello", 7);
        let e = read_block(&unknown, h, unknown.len() as u64, p).unwrap_err();
        assert!(e.to_string().contains("compression type 7"), "{e}");
    }
}
