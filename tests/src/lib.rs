//! Support code for jkv's cross-crate tests: small-buffer options that make
//! every workload flush, and helpers to find and damage files.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use jkv::Options;

/// Options with a tiny memtable, tiny level targets and small value-log
/// files, so a few hundred writes flush several times, compactions run in
/// the background, values of 256 bytes or more go to a value log of many
/// files, and reads cross memtables, tables of several levels and value logs.
pub fn small_options() -> Options {
    Options::default()
        .write_buffer_size(16 * 1024)
        .block_size(512)
        .manifest_rewrite_threshold_bytes(4096)
        .target_table_size(8 * 1024)
        .base_level_size(32 * 1024)
        .level_size_multiplier(4)
        .value_threshold(Some(256))
        .vlog_file_size(16 * 1024)
}

/// Files in `dir` whose name ends with `.{ext}`, sorted by name.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("test directory is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// Flips the bits of `mask` in the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: usize, mask: u8) {
    let mut bytes = std::fs::read(path).expect("file to damage is readable");
    bytes[offset] ^= mask;
    std::fs::write(path, bytes).expect("damaged file is writable");
}

/// Zero-padded key `key{n:08}`.
pub fn key(n: u64) -> Vec<u8> {
    format!("key{n:08}").into_bytes()
}

pub mod simfs;
pub mod workload;
