//! Helpers shared by this crate's unit tests: random sorted entries, random
//! cursor operations, and a step that runs one operation on a cursor under
//! test and on the `VecIter` model and compares them.

use jkv_format::key::{compare_internal_keys, InternalKey};
use jkv_format::{InternalIterator, SeqNo, ValueKind};
use proptest::prelude::*;

/// The internal key (`k`, `s`, Value).
pub(crate) fn ik(k: &[u8], s: u64) -> Vec<u8> {
    InternalKey::new(k, SeqNo(s), ValueKind::Value).into_vec()
}

pub(crate) fn arb_entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    proptest::collection::btree_map(
        (proptest::collection::vec(0u8..4, 0..6), 0u64..50),
        proptest::collection::vec(any::<u8>(), 0..20),
        0..120,
    )
    .prop_map(|m| {
        let mut v: Vec<_> = m.into_iter().map(|((k, s), v)| (ik(&k, s), v)).collect();
        v.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        v
    })
}

#[derive(Clone, Debug)]
pub(crate) enum Op {
    First,
    Last,
    Seek(Vec<u8>, u64),
    SeekForPrev(Vec<u8>, u64),
    Next,
    Prev,
}

pub(crate) fn arb_op() -> impl Strategy<Value = Op> {
    let key = proptest::collection::vec(0u8..4, 0..6);
    prop_oneof![
        Just(Op::First),
        Just(Op::Last),
        (key.clone(), 0u64..52).prop_map(|(k, s)| Op::Seek(k, s)),
        (key, 0u64..52).prop_map(|(k, s)| Op::SeekForPrev(k, s)),
        Just(Op::Next),
        Just(Op::Next),
        Just(Op::Prev),
        Just(Op::Prev),
    ]
}

/// Applies `op` to both cursors (moves only when valid, as the trait
/// requires) and checks they agree.
pub(crate) fn apply_and_compare(
    a: &mut dyn InternalIterator,
    b: &mut dyn InternalIterator,
    op: &Op,
) -> std::result::Result<(), TestCaseError> {
    match op {
        Op::First => {
            a.seek_to_first();
            b.seek_to_first();
        }
        Op::Last => {
            a.seek_to_last();
            b.seek_to_last();
        }
        Op::Seek(k, s) => {
            a.seek(&ik(k, *s));
            b.seek(&ik(k, *s));
        }
        Op::SeekForPrev(k, s) => {
            a.seek_for_prev(&ik(k, *s));
            b.seek_for_prev(&ik(k, *s));
        }
        Op::Next => {
            if a.valid() && b.valid() {
                a.next();
                b.next();
            }
        }
        Op::Prev => {
            if a.valid() && b.valid() {
                a.prev();
                b.prev();
            }
        }
    }
    prop_assert!(a.status().is_ok());
    prop_assert_eq!(a.valid(), b.valid(), "after {:?}", op);
    if a.valid() {
        prop_assert_eq!(a.key(), b.key(), "after {:?}", op);
        prop_assert_eq!(a.value(), b.value(), "after {:?}", op);
    }
    Ok(())
}

/// Writes `entries` (sorted) as table `n` in `dir` through the real file
/// system; returns its path and summary.
pub(crate) fn build_table(
    dir: &std::path::Path,
    n: u64,
    entries: &[(Vec<u8>, Vec<u8>)],
    options: crate::TableOptions,
) -> (std::path::PathBuf, crate::TableSummary) {
    use jkv_format::FileSystem;
    let path = jkv_format::names::table_path(dir, jkv_format::FileNumber(n));
    let file = jkv_format::StdFs.create(&path).expect("create table file");
    let mut b = crate::TableBuilder::new(file, options);
    for (k, v) in entries {
        b.add(k, v).expect("sorted entries are accepted");
    }
    (path, b.finish().expect("finish table"))
}
