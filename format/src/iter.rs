//! The cursor every sorted source implements (memtable, table, merged view),
//! so the engine can merge them without knowing what they are.
//!
//! A cursor is positioned on one entry or invalid. Keys are internal keys in
//! [`crate::key::compare_internal_keys`] order. A cursor that meets damaged
//! bytes becomes invalid and reports the damage through [`status`]; callers
//! check `status` whenever `valid` turns false.
//!
//! [`status`]: InternalIterator::status

use std::cmp::Ordering;

use crate::error::Result;
use crate::key::compare_internal_keys;

/// A bidirectional cursor over entries ordered by internal key.
pub trait InternalIterator: Send {
    /// True when positioned on an entry.
    fn valid(&self) -> bool;
    /// Positions on the first entry (invalid if there is none).
    fn seek_to_first(&mut self);
    /// Positions on the last entry (invalid if there is none).
    fn seek_to_last(&mut self);
    /// Positions on the first entry whose key is `>= target`.
    fn seek(&mut self, target: &[u8]);
    /// Positions on the last entry whose key is `<= target`.
    fn seek_for_prev(&mut self, target: &[u8]);
    /// Moves to the next entry. Requires `valid()`.
    fn next(&mut self);
    /// Moves to the previous entry. Requires `valid()`.
    fn prev(&mut self);
    /// The current internal key. Requires `valid()`.
    fn key(&self) -> &[u8];
    /// The current value. Requires `valid()`.
    fn value(&self) -> &[u8];
    /// The first error met, if any; once set the cursor stays invalid.
    fn status(&self) -> Result<()>;
}

/// A cursor over sorted in-memory entries: the reference implementation of
/// the trait's contract, used in tests and for small sources.
#[derive(Clone, Debug, Default)]
pub struct VecIter {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pos: Option<usize>,
}

impl VecIter {
    /// A cursor over `entries`, which are sorted here by internal key.
    pub fn new(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        VecIter { entries, pos: None }
    }

    fn lower_bound(&self, target: &[u8]) -> usize {
        self.entries
            .partition_point(|(k, _)| compare_internal_keys(k, target) == Ordering::Less)
    }
}

impl InternalIterator for VecIter {
    fn valid(&self) -> bool {
        self.pos.is_some()
    }
    fn seek_to_first(&mut self) {
        self.pos = if self.entries.is_empty() {
            None
        } else {
            Some(0)
        };
    }
    fn seek_to_last(&mut self) {
        self.pos = self.entries.len().checked_sub(1);
    }
    fn seek(&mut self, target: &[u8]) {
        let i = self.lower_bound(target);
        self.pos = (i < self.entries.len()).then_some(i);
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        let i = self
            .entries
            .partition_point(|(k, _)| compare_internal_keys(k, target) != Ordering::Greater);
        self.pos = i.checked_sub(1);
    }
    fn next(&mut self) {
        self.pos = self.pos.map(|p| p + 1).filter(|&p| p < self.entries.len());
    }
    fn prev(&mut self) {
        self.pos = self.pos.and_then(|p| p.checked_sub(1));
    }
    fn key(&self) -> &[u8] {
        &self.entries[self.pos.expect("key() requires a valid cursor")].0
    }
    fn value(&self) -> &[u8] {
        &self.entries[self.pos.expect("value() requires a valid cursor")].1
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeqNo;
    use crate::key::{InternalKey, ValueKind};

    fn ik(k: &str, s: u64) -> Vec<u8> {
        InternalKey::new(k.as_bytes(), SeqNo(s), ValueKind::Value).into_vec()
    }

    #[test]
    fn seek_and_seek_for_prev() {
        let mut it = VecIter::new(vec![
            (ik("b", 1), b"b1".to_vec()),
            (ik("a", 5), b"a5".to_vec()),
            (ik("a", 7), b"a7".to_vec()),
        ]);
        it.seek(&InternalKey::seek(b"a", SeqNo(6)).into_vec());
        assert_eq!(it.value(), b"a5");
        it.seek_for_prev(&InternalKey::seek(b"a", SeqNo(6)).into_vec());
        assert_eq!(it.value(), b"a7");
        it.seek_to_last();
        assert_eq!(it.value(), b"b1");
        it.next();
        assert!(!it.valid());
        it.seek(&ik("c", 0));
        assert!(!it.valid());
    }
}
