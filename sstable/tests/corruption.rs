//! Damaged tables: whatever the bytes, opening, iterating, looking up and
//! verifying a table never panics and fails only with `Corruption`; a single
//! flipped bit anywhere in a table is always detected and never answered with
//! a wrong value.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{build, ikey, MemFs};
use jkv_format::key::parse_internal_key;
use jkv_format::{checksum, Error, FileNumber, InternalIterator, SeqNo, ValueKind};
use jkv_sstable::footer::FOOTER_LEN;
use jkv_sstable::handle::{block_trailer, BlockHandle, BLOCK_TRAILER_LEN};
use jkv_sstable::{Table, TableOptions};
use proptest::prelude::*;

const PATH: &str = "db/000001.sst";

/// A small table: a few versions per key, a tombstone, several data blocks.
fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut e = Vec::new();
    for i in 0..12u32 {
        let user = format!("key{i:02}");
        for s in [30u64, 20, 10] {
            let seq = s + u64::from(i);
            if i % 5 == 0 && s == 20 {
                e.push((ikey(user.as_bytes(), seq, ValueKind::Deletion), Vec::new()));
            } else {
                e.push((
                    ikey(user.as_bytes(), seq, ValueKind::Value),
                    format!("v{i}.{seq}").into_bytes(),
                ));
            }
        }
    }
    e
}

fn options() -> TableOptions {
    TableOptions {
        block_size_bytes: 160,
        restart_interval: 3,
        bloom_bits_per_key: 10,
        db_id: 0,
        compression: jkv_sstable::Compression::None,
    }
}

fn assert_corruption(e: &Error, context: &str) {
    assert!(e.is_corruption(), "{context}: expected corruption, got {e}");
    if let Error::Corruption { file, .. } = e {
        assert_eq!(file, Path::new(PATH), "{context}");
    }
}

/// Everything a reader can ask, checked against `expected` (internal key ->
/// value). Returns true if damage was reported anywhere.
fn read_everything(
    table: &std::sync::Arc<Table>,
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    strict: bool,
) -> bool {
    let mut detected = false;
    // Lookups at every snapshot of interest.
    for i in 0..13u32 {
        let user = format!("key{i:02}");
        for snap in [0u64, 9, 10, 15, 20, 25, 30, 35, 50, u64::from(u32::MAX)] {
            match table.get(user.as_bytes(), SeqNo(snap)) {
                Err(e) => {
                    assert_corruption(&e, "get");
                    detected = true;
                }
                Ok(got) if strict => {
                    let want = expected
                        .iter()
                        .filter_map(|(k, v)| {
                            let p = parse_internal_key(k).unwrap();
                            (p.user_key == user.as_bytes() && p.seq.0 <= snap).then_some((
                                p.kind,
                                p.seq,
                                v.clone(),
                            ))
                        })
                        .max_by_key(|(_, s, _)| *s);
                    let got = got.map(|(k, s, v)| (k, s, v.to_vec()));
                    assert_eq!(got, want, "get {user}@{snap} returned a wrong answer");
                }
                Ok(_) => {}
            }
        }
    }
    // Full scans both ways: every entry shown must be a real one.
    let mut it = table.iter();
    for forward in [true, false] {
        let mut steps = 0;
        if forward {
            it.seek_to_first();
        } else {
            it.seek_to_last();
        }
        while it.valid() && steps < 10_000 {
            if strict {
                assert_eq!(
                    expected.get(it.key()).map(Vec::as_slice),
                    Some(it.value()),
                    "iteration returned an entry the table never had"
                );
            }
            if forward {
                it.next();
            } else {
                it.prev();
            }
            steps += 1;
        }
        if let Err(e) = it.status() {
            assert_corruption(&e, "iteration");
            detected = true;
            break;
        }
    }
    if let Err(e) = table.verify() {
        assert_corruption(&e, "verify");
        detected = true;
    }
    let _ = table.dump(&mut std::io::sink());
    detected
}

#[test]
fn every_single_bit_flip_is_detected_and_never_misread() {
    let fs = MemFs::default();
    let path = Path::new(PATH);
    let entries = entries();
    let good = build(&fs, path, &entries, options());
    let expected: BTreeMap<_, _> = entries.into_iter().collect();
    let table = Table::open(&fs, path, FileNumber(1)).unwrap();
    assert!(
        !read_everything(&table, &expected, true),
        "the good table reads clean"
    );
    assert!(table.properties().data_block_count >= 4);

    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            fs.put(path, bad);
            let detected = match Table::open(&fs, path, FileNumber(1)) {
                Err(e) => {
                    assert_corruption(&e, &format!("open, byte {i} bit {bit}"));
                    true
                }
                Ok(t) => read_everything(&t, &expected, true),
            };
            assert!(detected, "flip of byte {i} bit {bit} went unnoticed");
        }
    }
}

/// The table's block handles (data, then filter, index, properties) and
/// footer offset, for re-signing damaged blocks.
fn layout(bytes: &[u8], fs: &MemFs) -> (Vec<BlockHandle>, usize) {
    let path = Path::new(PATH);
    fs.put(path, bytes.to_vec());
    let t = Table::open(fs, path, FileNumber(1)).unwrap();
    let f = *t.footer();
    let mut handles: Vec<_> = t.index_entries().map(|(_, h)| h).collect();
    handles.extend(f.filter);
    handles.extend([f.index, f.properties]);
    (handles, bytes.len() - FOOTER_LEN)
}

/// Recomputes the checksum of block `h` so the damage inside it reaches the
/// decoders behind the checksum.
fn resign(bytes: &mut [u8], h: BlockHandle) {
    let (start, end) = (h.offset as usize, (h.offset + h.size) as usize);
    if end + BLOCK_TRAILER_LEN <= bytes.len() {
        // Keep the block's compression type.
        let kind = bytes[end];
        let t = block_trailer(&bytes[start..end], kind);
        bytes[end..end + BLOCK_TRAILER_LEN].copy_from_slice(&t);
    }
}

fn resign_footer(bytes: &mut [u8]) {
    let n = bytes.len();
    if n >= FOOTER_LEN {
        let f = &mut bytes[n - FOOTER_LEN..];
        let crc = checksum(&f[..52]);
        f[52..56].copy_from_slice(&crc.to_le_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400),
                                   with_magic in any::<bool>()) {
        let fs = MemFs::default();
        let path = Path::new(PATH);
        let mut data = data;
        if with_magic && data.len() >= FOOTER_LEN {
            let n = data.len();
            data[n - 16..n - 12].copy_from_slice(&1u32.to_le_bytes());
            data[n - 8..].copy_from_slice(b"\x89jkvSST\n");
            resign_footer(&mut data);
        }
        fs.put(path, data);
        match Table::open(&fs, path, FileNumber(1)) {
            Err(e) => assert_corruption(&e, "open of arbitrary bytes"),
            Ok(t) => { read_everything(&t, &BTreeMap::new(), false); }
        }
    }

    /// Damage inside one block whose checksum is then fixed up, so the block
    /// decoders (entries, restarts, index, filter, properties) see it.
    #[test]
    fn damaged_blocks_behind_valid_checksums_never_panic(
        block_pick in any::<usize>(),
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..6),
        overwrite in proptest::option::of((any::<usize>(), any::<u32>())),
    ) {
        let fs = MemFs::default();
        let path = Path::new(PATH);
        let good = build(&fs, path, &entries(), options());
        let (handles, _) = layout(&good, &fs);
        let h = handles[block_pick % handles.len()];
        let mut bad = good.clone();
        let (start, size) = (h.offset as usize, h.size as usize);
        for (at, bit) in &flips {
            bad[start + at % size.max(1)] ^= 1 << bit;
        }
        if let Some((at, v)) = overwrite {
            let at = start + at % size.max(1);
            let end = (at + 4).min(start + size);
            bad[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        resign(&mut bad, h);
        fs.put(path, bad);
        match Table::open(&fs, path, FileNumber(1)) {
            Err(e) => assert_corruption(&e, "open"),
            Ok(t) => { read_everything(&t, &BTreeMap::new(), false); }
        }
    }

    /// Damaged footer fields with a fixed-up footer checksum.
    #[test]
    fn damaged_footers_behind_valid_checksums_never_panic(field in 0usize..6, value in any::<u64>()) {
        let fs = MemFs::default();
        let path = Path::new(PATH);
        let mut bad = build(&fs, path, &entries(), options());
        let at = bad.len() - FOOTER_LEN + field * 8;
        bad[at..at + 8].copy_from_slice(&value.to_le_bytes());
        resign_footer(&mut bad);
        fs.put(path, bad);
        match Table::open(&fs, path, FileNumber(1)) {
            Err(e) => assert_corruption(&e, "open"),
            Ok(t) => { read_everything(&t, &BTreeMap::new(), false); }
        }
    }
}

/// Entries whose values compress well (runs of one letter), so the data
/// blocks are stored compressed.
fn compressible_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    entries()
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                (k, v)
            } else {
                let fill = char::from(b'a' + (v.len() % 26) as u8)
                    .to_string()
                    .repeat(40);
                let mut long = v;
                long.extend_from_slice(fill.as_bytes());
                (k, long)
            }
        })
        .collect()
}

#[test]
fn every_single_bit_flip_in_a_compressed_table_is_detected() {
    for compression in [
        jkv_sstable::Compression::Lz4,
        jkv_sstable::Compression::ZSTD,
    ] {
        let fs = MemFs::default();
        let path = Path::new(PATH);
        let entries = compressible_entries();
        let options = TableOptions {
            block_size_bytes: 400,
            compression,
            ..options()
        };
        let good = build(&fs, path, &entries, options);
        let expected: BTreeMap<_, _> = entries.into_iter().collect();
        let cache = jkv_sstable::BlockCache::new(1 << 20);
        let table = Table::open_with_cache(&fs, path, FileNumber(1), cache.clone()).unwrap();
        let p = table.properties().clone();
        assert!(p.data_block_count >= 3, "{p:?}");
        assert_eq!(
            p.compressed_block_count, p.data_block_count,
            "{compression}: every block compresses"
        );
        assert!(p.data_size_bytes * 2 < p.data_raw_bytes, "{p:?}");
        assert!(!read_everything(&table, &expected, true), "{compression}");
        // Read twice: the second pass is served by the block cache (zstd
        // blocks; LZ4 blocks are decoded on every read, never cached).
        assert!(!read_everything(&table, &expected, true));
        let stats = cache.as_ref().unwrap().stats();
        if compression == jkv_sstable::Compression::Lz4 {
            assert_eq!((stats.hits, stats.misses, stats.inserts), (0, 0, 0));
        } else {
            assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
        }

        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                fs.put(path, bad);
                // A fresh cache each time: a cached block of the good
                // table must not hide the damage.
                let cache = jkv_sstable::BlockCache::new(1 << 20);
                let detected = match Table::open_with_cache(&fs, path, FileNumber(1), cache) {
                    Err(e) => {
                        assert_corruption(&e, &format!("open, byte {i} bit {bit}"));
                        true
                    }
                    Ok(t) => read_everything(&t, &expected, true),
                };
                assert!(
                    detected,
                    "{compression}: flip of byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }
}

#[test]
fn a_compressed_block_that_does_not_decode_is_corruption_at_its_offset() {
    for compression in [
        jkv_sstable::Compression::Lz4,
        jkv_sstable::Compression::ZSTD,
    ] {
        let fs = MemFs::default();
        let path = Path::new(PATH);
        let entries = compressible_entries();
        let options = TableOptions {
            block_size_bytes: 400,
            compression,
            ..options()
        };
        let good = build(&fs, path, &entries, options);
        let expected: BTreeMap<_, _> = entries.into_iter().collect();
        let (handles, _) = layout(&good, &fs);
        let data_blocks = Table::open(&fs, path, FileNumber(1))
            .unwrap()
            .properties()
            .data_block_count as usize;
        // Damage inside the compressed bytes with the checksum made to
        // match: only the decoder (or the block checks after it) can
        // notice. It must never panic; when it notices, the error names
        // a block's offset.
        for &h in &handles[..data_blocks] {
            for at in 0..h.size as usize {
                for bit in [0u8, 3, 7] {
                    let mut bad = good.clone();
                    bad[h.offset as usize + at] ^= 1 << bit;
                    resign(&mut bad, h);
                    fs.put(path, bad);
                    let t = Table::open(&fs, path, FileNumber(1)).unwrap();
                    let e = t.verify();
                    if let Err(Error::Corruption { file, offset, .. }) = &e {
                        assert_eq!(file, Path::new(PATH));
                        // The damaged block, or the metadata block that
                        // disagrees with what it decoded to (a key the
                        // filter never saw).
                        assert!(handles.iter().any(|x| x.offset == *offset), "{e:?}");
                    } else if let Err(e) = e {
                        panic!("{compression}: not corruption: {e}");
                    }
                    read_everything(&t, &expected, false);
                }
            }
        }
    }
}
