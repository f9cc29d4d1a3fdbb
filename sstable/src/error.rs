//! Errors: the storage crates share `jkv_format`'s error type, so a
//! `Corruption { file, offset, what }` found in a block reaches the user
//! unchanged.

pub use jkv_format::{Error, Result};
