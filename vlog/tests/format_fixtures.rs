//! Value-log files of every released format, kept in the repository, still
//! read back exactly. Version 1 (before entry compression) is frozen:
//! `fixtures/000007.vlog` was written by the version 1 writer
//! (`VlogWriter::create` for file 7, then `append` of [`v1_entries`] in
//! order, then `sync`) and is only read here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::{Compression, FileNumber, SeqNo, StdFs};
use jkv_vlog::{VlogIter, VlogReader, VlogWriter};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the version 1 fixture `000007.vlog` holds, in order: key, value, seq.
fn v1_entries() -> Vec<(Vec<u8>, Vec<u8>, SeqNo)> {
    (0..12u64)
        .map(|i| {
            let key = format!("fixture-key-{i:03}").into_bytes();
            let value = format!("value {i} {}", "ab".repeat(40 * i as usize)).into_bytes();
            (key, value, SeqNo(1000 + i))
        })
        .collect()
}

#[test]
fn version_1_fixture_reads_back_by_pointer_and_in_order() {
    let dir = fixtures_dir();
    let mut it = VlogIter::open(&StdFs, &dir, FileNumber(7)).unwrap();
    let reader = VlogReader::new(Arc::new(StdFs), dir.clone());
    let mut got = Vec::new();
    for e in it.by_ref() {
        let e = e.unwrap();
        assert_eq!(reader.read(&e.pointer, &e.key).unwrap(), e.value);
        got.push((e.key.to_vec(), e.value.to_vec(), e.seq));
    }
    assert_eq!(it.torn_tail_at(), None);
    assert_eq!(got, v1_entries());
    let report = jkv_vlog::verify(&StdFs, &dir.join("000007.vlog")).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// Version 2: values stored compressed (when they shrink by 1/8) beside
/// raw ones, read back by pointer and in order; a flipped bit anywhere in a
/// compressed entry is `Corruption` at the entry's offset.
#[test]
fn version_2_compressed_values_read_back_and_damage_is_corruption() {
    for compression in [Compression::Lz4, Compression::ZSTD] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(3))
            .unwrap()
            .with_compression(compression);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut written = Vec::new();
        for i in 0..20u64 {
            let key = format!("key-{i:02}").into_bytes();
            let value: Vec<u8> = if i % 3 == 0 {
                // Random bytes do not compress: stored raw.
                (0..3000)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            } else {
                format!("frame {i} ").repeat(300).into_bytes()
            };
            let p = w.append(&key, &value, SeqNo(i + 1)).unwrap();
            written.push((key, value, p));
        }
        w.sync().unwrap();
        let path = dir.path().join("000003.vlog");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
            jkv_vlog::FORMAT_VERSION
        );
        let raw_total: usize = written.iter().map(|(k, v, _)| k.len() + v.len()).sum();
        assert!(
            bytes.len() < raw_total * 2 / 3,
            "{compression}: {}",
            bytes.len()
        );
        let reader = VlogReader::new(Arc::new(StdFs), dir.path().to_path_buf());
        for (k, v, p) in &written {
            assert_eq!(&reader.read(p, k).unwrap()[..], &v[..]);
            // Random values are stored whole; the others compressed.
            let raw_len = jkv_vlog::ENTRY_HEADER_LEN + k.len() + v.len();
            let random = !v.starts_with(b"frame ");
            assert_eq!(p.len as usize == raw_len, random, "{compression}");
        }
        let got: Vec<_> = VlogIter::open(&StdFs, dir.path(), FileNumber(3))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.key.to_vec(), e.value.to_vec(), e.pointer)
            })
            .collect();
        assert_eq!(got, written);
        let report = jkv_vlog::verify(&StdFs, &path).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(
            report.value_bytes,
            written.iter().map(|(_, v, _)| v.len() as u64).sum::<u64>()
        );

        // Every bit of a compressed entry (the second one, not the last).
        let (k, _, p) = &written[1];
        for i in p.offset as usize..(p.offset + u64::from(p.len)) as usize {
            for bit in [0u8, 5] {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                std::fs::write(&path, &bad).unwrap();
                let reader = VlogReader::new(Arc::new(StdFs), dir.path().to_path_buf());
                match reader.read(p, k) {
                    Err(jkv_format::Error::Corruption { file, offset, .. }) => {
                        assert_eq!(file, path);
                        assert_eq!(offset, p.offset);
                    }
                    other => panic!("{compression}: flip at {i}: {other:?}"),
                }
            }
        }
        std::fs::write(&path, &bytes).unwrap();
    }
}

/// The batch path (`append_all_and_flush`, one vectored write) compresses
/// the values that shrink and stores the others raw, like `append`.
#[test]
fn batched_appends_compress_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = VlogWriter::create(&StdFs, dir.path(), FileNumber(4))
        .unwrap()
        .with_compression(Compression::Lz4);
    let compressible = "camera frame ".repeat(400).into_bytes();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let entries: Vec<(&[u8], &[u8], SeqNo)> = vec![
        (b"a", &compressible, SeqNo(1)),
        (b"b", &random, SeqNo(2)),
        (b"c", &compressible[..1000], SeqNo(3)),
    ];
    let pointers = w.append_all_and_flush(&entries).unwrap();
    w.sync().unwrap();
    let reader = VlogReader::new(Arc::new(StdFs), dir.path().to_path_buf());
    for ((k, v, _), p) in entries.iter().zip(&pointers) {
        assert_eq!(&reader.read(p, k).unwrap()[..], &v[..]);
    }
    let raw = |i: usize| (jkv_vlog::ENTRY_HEADER_LEN + 1 + entries[i].1.len()) as u32;
    assert!(pointers[0].len < raw(0) / 4, "{:?}", pointers[0]);
    assert_eq!(pointers[1].len, raw(1), "random bytes stay raw");
    assert!(pointers[2].len < raw(2));
    assert_eq!(
        pointers[1].offset,
        pointers[0].offset + u64::from(pointers[0].len)
    );
    let got: Vec<_> = VlogIter::open(&StdFs, dir.path(), FileNumber(4))
        .unwrap()
        .map(|e| e.unwrap().value.to_vec())
        .collect();
    assert_eq!(
        got,
        vec![
            compressible.clone(),
            random.clone(),
            compressible[..1000].to_vec()
        ]
    );
}
