//! Range scans: a merge of every source (memtables and tables) under one
//! `SuperVersion`, filtered to the newest version of each key visible at
//! the snapshot, with tombstones hidden and versions a range tombstone
//! deletes skipped (weighed against every source, not only the ones the
//! range overlaps).
//!
//! A `DbIterator` owns an `Arc` of the `SuperVersion` and of each table it
//! reads, so flushes and new writes never change what it returns. It runs in
//! the direction it was made with until a seek turns it around
//! ([`DbIterator::seek`], [`DbIterator::seek_for_prev`]); seeking reuses the
//! same sources. `DbKeys` walks keys only and never reads the value log.

use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use jkv_compaction::MergingIterator;
use jkv_format::key::{compare_internal_keys, parse_internal_key, user_key, InternalKey};
use jkv_format::{Error, InternalIterator, Result, SeqNo, ValueKind};
use jkv_manifest::TableMeta;
use jkv_sstable::Table;

use crate::db::DbInner;
use crate::range_del::RangeDelView;
use crate::snapshot::Snapshot;
use crate::version::TableHandle;
use crate::view::SuperVersion;

/// Concatenates the non-overlapping, sorted tables of one level (L1+).
pub(crate) struct LevelIter {
    tables: Vec<(Arc<TableHandle>, Arc<Table>)>,
    index: usize,
    current: Option<Box<dyn InternalIterator>>,
}

impl LevelIter {
    pub(crate) fn new(tables: Vec<(Arc<TableHandle>, Arc<Table>)>) -> Self {
        LevelIter {
            tables,
            index: 0,
            current: None,
        }
    }

    fn open(&mut self, index: usize) -> bool {
        if index >= self.tables.len() {
            self.current = None;
            return false;
        }
        self.index = index;
        self.current = Some(Box::new(self.tables[index].1.iter()));
        true
    }

    /// Moves forward over exhausted tables (stops on an error).
    fn skip_forward(&mut self) {
        while let Some(cur) = &self.current {
            if cur.valid() || cur.status().is_err() {
                return;
            }
            if !self.open(self.index + 1) {
                return;
            }
            if let Some(cur) = self.current.as_mut() {
                cur.seek_to_first();
            }
        }
    }

    fn skip_backward(&mut self) {
        while let Some(cur) = &self.current {
            if cur.valid() || cur.status().is_err() {
                return;
            }
            if self.index == 0 {
                self.current = None;
                return;
            }
            self.open(self.index - 1);
            if let Some(cur) = self.current.as_mut() {
                cur.seek_to_last();
            }
        }
    }
}

impl InternalIterator for LevelIter {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }
    fn seek_to_first(&mut self) {
        if self.open(0) {
            if let Some(c) = self.current.as_mut() {
                c.seek_to_first();
            }
            self.skip_forward();
        }
    }
    fn seek_to_last(&mut self) {
        if let Some(last) = self.tables.len().checked_sub(1) {
            self.open(last);
            if let Some(c) = self.current.as_mut() {
                c.seek_to_last();
            }
            self.skip_backward();
        } else {
            self.current = None;
        }
    }
    fn seek(&mut self, target: &[u8]) {
        let i = self
            .tables
            .partition_point(|(m, _)| compare_internal_keys(&m.largest, target) == Ordering::Less);
        if self.open(i) {
            if let Some(c) = self.current.as_mut() {
                c.seek(target);
            }
            self.skip_forward();
        }
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        // Last table whose smallest key is <= target.
        let i = self.tables.partition_point(|(m, _)| {
            compare_internal_keys(&m.smallest, target) != Ordering::Greater
        });
        match i.checked_sub(1) {
            Some(i) => {
                self.open(i);
                if let Some(c) = self.current.as_mut() {
                    c.seek_for_prev(target);
                }
                self.skip_backward();
            }
            None => self.current = None,
        }
    }
    fn next(&mut self) {
        if let Some(c) = self.current.as_mut() {
            c.next();
        }
        self.skip_forward();
    }
    fn prev(&mut self) {
        if let Some(c) = self.current.as_mut() {
            c.prev();
        }
        self.skip_backward();
    }
    fn key(&self) -> &[u8] {
        self.current
            .as_ref()
            .expect("key() requires a valid cursor")
            .key()
    }
    fn value(&self) -> &[u8] {
        self.current
            .as_ref()
            .expect("value() requires a valid cursor")
            .value()
    }
    fn status(&self) -> Result<()> {
        match &self.current {
            Some(c) => c.status(),
            None => Ok(()),
        }
    }
}

/// Whether a table's user-key range meets `[start, end]` as bounded.
fn overlaps(meta: &TableMeta, start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let (lo, hi) = (user_key(&meta.smallest), user_key(&meta.largest));
    let after_start = match start {
        Bound::Included(s) | Bound::Excluded(s) => hi >= s.as_slice(),
        Bound::Unbounded => true,
    };
    let before_end = match end {
        Bound::Included(e) => lo <= e.as_slice(),
        Bound::Excluded(e) => lo < e.as_slice(),
        Bound::Unbounded => true,
    };
    after_start && before_end
}

/// An iterator over a key range as of a snapshot. Yields
/// `Result<(key, value)>`; after an error it yields nothing more.
pub struct DbIterator {
    merge: MergingIterator,
    snapshot: SeqNo,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    reverse: bool,
    positioned: bool,
    done: bool,
    /// An error was yielded: nothing more is, seeks included.
    failed: bool,
    /// Values are not wanted (`DbKeys`): value pointers are not resolved.
    keys_only: bool,
    /// An error met while building the iterator, yielded first.
    pending_error: Option<Error>,
    /// Range tombstones of the view; `None` when it has none.
    range_dels: Option<RangeDelView>,
    /// Keeps memtables, tables and value logs alive for the iterator's life.
    _super_version: Arc<SuperVersion>,
    /// Resolves value pointers.
    db: Arc<DbInner>,
}

impl std::fmt::Debug for DbIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbIterator")
            .field("snapshot", &self.snapshot)
            .field("reverse", &self.reverse)
            .finish()
    }
}

impl DbIterator {
    pub(crate) fn new(
        db: &Arc<DbInner>,
        snapshot: &Snapshot,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Self {
        let foreign = db.check_snapshot(snapshot).err();
        let snapshot = snapshot.seq();
        db.counters()
            .scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sv = db.super_version();
        let mut children: Vec<Box<dyn InternalIterator>> = Vec::new();
        children.push(Box::new(sv.mem.iter()));
        for frozen in &sv.imms {
            children.push(Box::new(frozen.mem.iter()));
        }
        let mut pending_error = foreign;
        for (level, tables) in sv.version.levels.iter().enumerate() {
            let mut opened = Vec::new();
            for meta in tables.iter().filter(|m| overlaps(m, &start, &end)) {
                match db.open_table(meta) {
                    Ok(table) => opened.push((meta.clone(), table)),
                    Err(e) => {
                        pending_error.get_or_insert(e);
                    }
                }
            }
            if level == 0 {
                for (_, table) in opened {
                    children.push(Box::new(table.iter()));
                }
            } else if !opened.is_empty() {
                children.push(Box::new(LevelIter::new(opened)));
            }
        }
        let range_dels = if sv.may_have_range_tombstones() {
            match db.range_del_view(&sv) {
                Ok(view) => Some(view),
                Err(e) => {
                    pending_error.get_or_insert(e);
                    None
                }
            }
        } else {
            None
        };
        DbIterator {
            range_dels,
            merge: MergingIterator::new(children, reverse),
            snapshot,
            start,
            end,
            reverse,
            positioned: false,
            done: false,
            failed: false,
            keys_only: false,
            pending_error,
            _super_version: sv,
            db: Arc::clone(db),
        }
    }

    /// Moves to `key` going forward: the next item is the first key at or
    /// after `key` (and within the iterator's range), and items ascend from
    /// there, whichever way the iterator ran before. Reuses the iterator's
    /// sources; after an error nothing is yielded any more.
    pub fn seek(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        self.turn(false);
        if self.before_start(key) {
            // The range starts later: as if positioned at its start.
            self.position();
        } else {
            self.merge
                .seek(InternalKey::seek(key, SeqNo::MAX).as_bytes());
        }
    }

    /// Moves to `key` going backward: the next item is the last key at or
    /// before `key` (and within the iterator's range), and items descend
    /// from there, whichever way the iterator ran before. Reuses the
    /// iterator's sources; after an error nothing is yielded any more.
    pub fn seek_for_prev(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        self.turn(true);
        if self.after_end(key) {
            // The range ends earlier: as if positioned at its end.
            self.position();
        } else {
            // The last entry at or before the oldest version of `key`.
            self.merge
                .seek(InternalKey::new(key, SeqNo(0), ValueKind::Deletion).as_bytes());
        }
    }

    /// Sets the direction before a seek (the caller positions the merge).
    fn turn(&mut self, reverse: bool) {
        if self.reverse != reverse {
            self.reverse = reverse;
            self.merge.set_reverse(reverse);
        }
        self.positioned = true;
        self.done = self.failed;
    }

    /// The value a found entry stands for, or, for a keys-only walk, an
    /// empty value for anything but a tombstone (the value log is not read).
    #[inline]
    fn found(
        &self,
        key: &[u8],
        kind: ValueKind,
        value: impl FnOnce() -> Bytes,
    ) -> Result<Option<Bytes>> {
        if self.keys_only {
            return Ok(match kind {
                ValueKind::Deletion | ValueKind::RangeDeletion => None,
                ValueKind::Value | ValueKind::ValuePointer => Some(Bytes::new()),
            });
        }
        self.db.visible(key, kind, value())
    }

    fn position(&mut self) {
        self.positioned = true;
        if self.reverse {
            match &self.end {
                // The last entry before every version of `e`.
                Bound::Excluded(e) => self.merge.seek(InternalKey::seek(e, SeqNo::MAX).as_bytes()),
                // The last entry at or before the oldest version of `e`.
                Bound::Included(e) => self
                    .merge
                    .seek(InternalKey::new(e, SeqNo(0), ValueKind::Deletion).as_bytes()),
                Bound::Unbounded => self.merge.seek_to_start(),
            }
        } else {
            match &self.start {
                Bound::Included(s) | Bound::Excluded(s) => {
                    self.merge.seek(InternalKey::seek(s, SeqNo::MAX).as_bytes())
                }
                Bound::Unbounded => self.merge.seek_to_start(),
            }
        }
    }

    /// Whether a range tombstone deletes the version of `key` at `seq`.
    #[inline]
    fn range_deleted(&self, key: &[u8], seq: SeqNo) -> bool {
        self.range_dels
            .as_ref()
            .is_some_and(|v| v.deletes(key, seq, self.snapshot))
    }

    fn before_start(&self, key: &[u8]) -> bool {
        match &self.start {
            Bound::Included(s) => key < s.as_slice(),
            Bound::Excluded(s) => key <= s.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn after_end(&self, key: &[u8]) -> bool {
        match &self.end {
            Bound::Included(e) => key > e.as_slice(),
            Bound::Excluded(e) => key >= e.as_slice(),
            Bound::Unbounded => false,
        }
    }

    /// The next visible entry going forward.
    fn next_forward(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        while self.merge.valid() {
            let ikey = self.merge.key();
            let parsed = parse_internal_key(ikey).ok_or_else(|| {
                Error::corruption(
                    self.db.dir(),
                    0,
                    "a memtable or table yielded a malformed internal key",
                )
            })?;
            if self.after_end(parsed.user_key) {
                return Ok(None);
            }
            if parsed.seq > self.snapshot || self.before_start(parsed.user_key) {
                self.merge.advance();
                continue;
            }
            // The newest visible version of this key: take it, skip the rest.
            let key = Bytes::copy_from_slice(parsed.user_key);
            let found = match parsed.kind {
                ValueKind::Deletion => None,
                _ if self.range_deleted(&key, parsed.seq) => None,
                kind => self.found(&key, kind, || Bytes::copy_from_slice(self.merge.value()))?,
            };
            self.merge.advance();
            while self.merge.valid() && user_key(self.merge.key()) == key.as_ref() {
                self.merge.advance();
            }
            if let Some(value) = found {
                return Ok(Some((key, value)));
            }
        }
        self.merge.status()?;
        Ok(None)
    }

    /// The next visible entry going backward: versions of a key arrive oldest
    /// first, so the last visible one seen wins.
    fn next_backward(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        while self.merge.valid() {
            let key = Bytes::copy_from_slice(user_key(self.merge.key()));
            if self.before_start(&key) {
                return Ok(None);
            }
            let mut newest: Option<(ValueKind, SeqNo, Bytes)> = None;
            while self.merge.valid() && user_key(self.merge.key()) == key.as_ref() {
                let parsed = parse_internal_key(self.merge.key()).ok_or_else(|| {
                    Error::corruption(
                        self.db.dir(),
                        0,
                        "a memtable or table yielded a malformed internal key",
                    )
                })?;
                if parsed.seq <= self.snapshot {
                    newest = Some((
                        parsed.kind,
                        parsed.seq,
                        Bytes::copy_from_slice(self.merge.value()),
                    ));
                }
                self.merge.advance();
            }
            if !self.merge.valid() {
                // The merge may have stopped on an error before the newest
                // versions of this key: report it rather than an older one.
                self.merge.status()?;
            }
            if self.after_end(&key) {
                continue;
            }
            if let Some((kind, seq, value)) = newest {
                if self.range_deleted(&key, seq) {
                    continue;
                }
                if let Some(value) = self.found(&key, kind, || value)? {
                    return Ok(Some((key, value)));
                }
            }
        }
        self.merge.status()?;
        Ok(None)
    }
}

impl Iterator for DbIterator {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            self.failed = true;
            return Some(Err(e));
        }
        if !self.positioned {
            self.position();
        }
        let step = if self.reverse {
            self.next_backward()
        } else {
            self.next_forward()
        };
        match step {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The keys of a key range as of a snapshot, without their values (see
/// [`crate::Db::keys`]): yields `Result<key>`; after an error nothing more.
/// Can seek like a [`DbIterator`].
#[derive(Debug)]
pub struct DbKeys {
    inner: DbIterator,
}

impl DbKeys {
    pub(crate) fn new(mut inner: DbIterator) -> Self {
        inner.keys_only = true;
        DbKeys { inner }
    }

    /// See [`DbIterator::seek`].
    pub fn seek(&mut self, key: impl AsRef<[u8]>) {
        self.inner.seek(key);
    }

    /// See [`DbIterator::seek_for_prev`].
    pub fn seek_for_prev(&mut self, key: impl AsRef<[u8]>) {
        self.inner.seek_for_prev(key);
    }
}

impl Iterator for DbKeys {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|item| item.map(|(key, _)| key))
    }
}
