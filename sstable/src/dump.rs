//! Human-readable layout of a table for `jkv sst-dump`: footer, properties,
//! index entries and every entry, with keys printed as escaped user key,
//! `@seq` and kind, and values escaped and truncated.
//!
//! Read-only; runs on the calling thread, reading the map directly.

use std::io::Write;

use jkv_format::key::parse_internal_key;
use jkv_format::{Error, InternalIterator, Result};

use crate::block::{Block, BlockIter};
use crate::footer::FOOTER_LEN;
use crate::table::Table;

/// Longest value prefix [`Table::dump`] prints.
pub const DUMP_VALUE_LEN_MAX: usize = 48;

/// `bytes` with printable ASCII as is and everything else (and `\`) as
/// `\xNN`; past `len_max` bytes, cut with `...(N bytes)`.
pub fn escape_bytes(bytes: &[u8], len_max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(len_max) + 16);
    for &b in bytes.iter().take(len_max) {
        if b.is_ascii_graphic() && b != b'\\' || b == b' ' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > len_max {
        s.push_str(&format!("...({} bytes)", bytes.len()));
    }
    s
}

/// An internal key as `user_key@seq:Kind` (user key escaped), or the raw
/// bytes escaped when it does not parse.
pub fn format_internal_key(ikey: &[u8]) -> String {
    match parse_internal_key(ikey) {
        Some(p) => format!(
            "{}@{}:{:?}",
            escape_bytes(p.user_key, usize::MAX),
            p.seq,
            p.kind
        ),
        None => format!("(invalid) {}", escape_bytes(ikey, usize::MAX)),
    }
}

impl Table {
    /// Prints the table's layout and entries to `out`. Stops at the first
    /// damaged block with its `Corruption` error (after printing what came
    /// before it).
    pub fn dump(&self, out: &mut dyn Write) -> Result<()> {
        let path = self.path().to_path_buf();
        let io = |e: std::io::Error| Error::io("writing dump of", &path, e);
        let f = self.footer();
        let p = self.properties();
        writeln!(
            out,
            "table {} ({} bytes)",
            self.path().display(),
            self.file_size()
        )
        .map_err(io)?;
        writeln!(
            out,
            "footer at {}: version {}, filter {:?}, index {:?}, properties {:?}",
            self.file_size() - FOOTER_LEN as u64,
            f.version,
            f.filter,
            f.index,
            f.properties
        )
        .map_err(io)?;
        writeln!(out, "properties:").map_err(io)?;
        for (name, value) in [
            ("entries", p.entry_count.to_string()),
            ("deletions", p.deletion_count.to_string()),
            ("older versions", p.older_version_count.to_string()),
            ("data blocks", p.data_block_count.to_string()),
            ("smallest", format_internal_key(&p.smallest)),
            ("largest", format_internal_key(&p.largest)),
            ("min seq", p.min_seq.to_string()),
            ("max seq", p.max_seq.to_string()),
            ("data bytes", p.data_size_bytes.to_string()),
            ("index bytes", p.index_size_bytes.to_string()),
            ("filter bytes", p.filter_size_bytes.to_string()),
            ("bloom bits per key", p.bloom_bits_per_key.to_string()),
            ("raw key bytes", p.raw_key_bytes.to_string()),
            ("raw value bytes", p.raw_value_bytes.to_string()),
            ("range tombstones", p.range_deletion_count.to_string()),
            (
                "compression",
                if p.compression.is_empty() {
                    "none".to_string()
                } else {
                    p.compression.clone()
                },
            ),
            ("compressed blocks", p.compressed_block_count.to_string()),
            ("data bytes raw", p.data_raw_size_bytes().to_string()),
        ] {
            writeln!(out, "  {name}: {value}").map_err(io)?;
        }
        writeln!(out, "index ({} entries):", self.index_entries().len()).map_err(io)?;
        for (i, (sep, h)) in self.index_entries().enumerate() {
            writeln!(
                out,
                "  [{i}] {} -> offset {} size {}",
                format_internal_key(sep),
                h.offset,
                h.size
            )
            .map_err(io)?;
        }
        if let (Some(h), Some(set)) = (p.range_deletion_block, self.range_tombstones()) {
            writeln!(
                out,
                "range-tombstone block at {} ({} bytes, {} tombstones):",
                h.offset,
                h.size,
                set.len()
            )
            .map_err(io)?;
            for t in set.tombstones() {
                writeln!(
                    out,
                    "  [{}, {}) @{}",
                    escape_bytes(&t.start, DUMP_VALUE_LEN_MAX),
                    escape_bytes(&t.end, DUMP_VALUE_LEN_MAX),
                    t.seq
                )
                .map_err(io)?;
            }
        }
        let mut it = BlockIter::new(Block::empty(), self.shared_path(), 0);
        for (i, (_, h)) in self.index_entries().enumerate() {
            let block = self.read_data_block(h)?;
            // In bounds: read_data_block checked the block and its trailer.
            let kind = self
                .file_bytes()
                .get((h.offset + h.size) as usize)
                .copied()
                .unwrap_or_default();
            let name = jkv_format::Compression::type_name(kind).unwrap_or("?");
            if kind == crate::handle::COMPRESSION_NONE {
                writeln!(
                    out,
                    "data block {i} at {} ({} bytes, none):",
                    h.offset, h.size
                )
                .map_err(io)?;
            } else {
                writeln!(
                    out,
                    "data block {i} at {} ({} bytes, {name}, {} raw, ratio {:.3}):",
                    h.offset,
                    h.size,
                    block.size_bytes(),
                    h.size as f64 / block.size_bytes().max(1) as f64
                )
                .map_err(io)?;
            }
            it.reset(block, h.offset);
            it.seek_to_first();
            while it.valid() {
                writeln!(
                    out,
                    "  +{} {} => {}",
                    it.entry_offset(),
                    format_internal_key(it.key()),
                    escape_bytes(it.value(), DUMP_VALUE_LEN_MAX)
                )
                .map_err(io)?;
                it.next();
            }
            it.status()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::key::InternalKey;
    use jkv_format::{SeqNo, ValueKind};

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(escape_bytes(b"ab c\n\\\xff", 100), "ab c\\x0a\\x5c\\xff");
        assert_eq!(escape_bytes(b"abcdef", 3), "abc...(6 bytes)");
        let k = InternalKey::new(b"k\x01", SeqNo(42), ValueKind::Deletion).into_vec();
        assert_eq!(format_internal_key(&k), "k\\x01@42:Deletion");
        assert!(format_internal_key(b"xy").starts_with("(invalid)"));
    }
}
