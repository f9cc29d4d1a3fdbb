//! jkv-memtable: the in-memory write buffer of the engine.
//!
//! [`Memtable`] keeps recent writes sorted by internal key in a lock-free
//! skiplist whose nodes, keys and values live in an [`Arena`]; [`MemtableIter`]
//! walks it through the shared [`jkv_format::InternalIterator`] cursor.
//! One thread inserts at a time, any number read concurrently.

pub mod arena;
pub mod error;
mod filter;
pub mod memtable;
mod skiplist;

pub use arena::Arena;
pub use error::{Error, Result};
pub use memtable::{Memtable, MemtableIter};
