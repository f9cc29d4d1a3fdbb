//! Errors: the storage crates share `jkv_format`'s error type.

pub use jkv_format::{Error, Result};
