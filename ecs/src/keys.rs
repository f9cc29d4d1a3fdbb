//! Key shapes of the ECS keyspace (docs/ecs.md, "Key layout"). Every key
//! starts with [`ECS_PREFIX`], so ECS tables share a database with other
//! layers and plain keys.
//!
//! ```text
//! counter = ECS_PREFIX 'c'                                          -> next table number: u32 LE
//! name    = ECS_PREFIX 'n' lp(instance) lp(component) cluster:u32 BE -> table number: u32 LE
//! meta    = ECS_PREFIX 'm' lp(instance) lp(component)               -> meta JSON
//! table   = ECS_PREFIX 't' table:u32 BE
//! row     = table 'r' id8                                           -> row bytes
//! index   = table 'x' column:u8 sortable(value) 0x00 0x01 id8        -> empty
//! lp(s)   = len:u8 s        id8 = (id as u64 ^ 2^63) BE (order-preserving)
//! ```
//!
//! A table (instance, component, cluster) is addressed by a number handed
//! out once from the counter, so a row key is 16 bytes: the engine's
//! memtable compares keys by their first 16 bytes before it falls back to
//! memcmp, so row lookups never reach memcmp, and index entries of an
//! 8-byte value are told apart within those 16 bytes unless the values tie.
//! An index is named by its column's position in the component (indexes
//! are rebuilt whenever a migration moves positions).
//!
//! The `0x01` before the id keeps the contract's sentinel bounds exact with
//! fixed-width ids: a member of value v starts `v 00 01`, which sorts below
//! `v 00 FF` (the exclusive-lower and inclusive-upper sentinel) whatever the
//! id, while a longer value `v 00 FF ...` (v followed by an escaped NUL)
//! sorts above it.

use crate::error::{Error, Result};

/// First bytes of every ECS key.
pub const ECS_PREFIX: &[u8] = b"\x00E";
const COUNTER_TAG: u8 = b'c';
const NAME_TAG: u8 = b'n';
const META_TAG: u8 = b'm';
const TABLE_TAG: u8 = b't';
const ROW_TAG: u8 = b'r';
const INDEX_TAG: u8 = b'x';
/// Byte between an index value's terminator and the id.
const ID_MARK: u8 = 0x01;

/// Length of an encoded id.
pub const ID_LEN: usize = 8;
/// Length of a row key.
pub const ROW_KEY_LEN: usize = ECS_PREFIX.len() + 1 + 4 + 1 + ID_LEN;
const _: () = assert!(ROW_KEY_LEN == 16);

/// The order-preserving bytes of an id.
pub fn id_bytes(id: i64) -> [u8; ID_LEN] {
    ((id as u64) ^ (1 << 63)).to_be_bytes()
}

/// The id encoded by [`id_bytes`] at the end of `key`.
pub fn id_from_key(key: &[u8]) -> Result<i64> {
    if key.len() < ID_LEN {
        return Err(Error::corruption(key, "key too short to end with an id"));
    }
    let raw: [u8; ID_LEN] = key[key.len() - ID_LEN..].try_into().expect("8 bytes");
    Ok((u64::from_be_bytes(raw) ^ (1 << 63)) as i64)
}

fn lp(out: &mut Vec<u8>, s: &str) {
    debug_assert!(
        s.len() <= u8::MAX as usize,
        "names are checked to fit one length byte"
    );
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// Key of the table-number counter.
pub fn counter_key() -> Vec<u8> {
    [ECS_PREFIX, &[COUNTER_TAG]].concat()
}

/// Key of the table number of (instance, component, cluster).
pub fn name_key(instance: &str, component: &str, cluster: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(ECS_PREFIX.len() + 7 + instance.len() + component.len());
    k.extend_from_slice(ECS_PREFIX);
    k.push(NAME_TAG);
    lp(&mut k, instance);
    lp(&mut k, component);
    k.extend_from_slice(&cluster.to_be_bytes());
    k
}

/// Prefix of every key of table number `table`.
pub fn table_prefix(table: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(ROW_KEY_LEN);
    k.extend_from_slice(ECS_PREFIX);
    k.push(TABLE_TAG);
    k.extend_from_slice(&table.to_be_bytes());
    k
}

/// Prefix of the rows and index entries of every table (all keys but the
/// counter, name and meta records).
pub const ECS_TABLES_PREFIX: &[u8] = b"\x00Et";
const _: () = assert!(ECS_TABLES_PREFIX.len() == ECS_PREFIX.len() + 1);

/// Key of the meta record of (instance, component).
pub fn meta_key(instance: &str, component: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ECS_PREFIX.len() + 3 + instance.len() + component.len());
    k.extend_from_slice(ECS_PREFIX);
    k.push(META_TAG);
    lp(&mut k, instance);
    lp(&mut k, component);
    k
}

/// Prefix of the row keys of a table (given its [`table_prefix`]).
pub fn rows_prefix(table: &[u8]) -> Vec<u8> {
    let mut k = table.to_vec();
    k.push(ROW_TAG);
    k
}

/// Key of row `id` (given the table's [`table_prefix`]).
pub fn row_key(table: &[u8], id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + 1 + ID_LEN);
    k.extend_from_slice(table);
    k.push(ROW_TAG);
    k.extend_from_slice(&id_bytes(id));
    k
}

/// Prefix of the entries of the index on the column at `position`.
pub fn index_prefix(table: &[u8], position: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(table.len() + 2 + 16);
    k.extend_from_slice(table);
    k.push(INDEX_TAG);
    k.push(position);
    k
}

/// Key of the index entry (value, id), given the index's [`index_prefix`]
/// and the value's sortable bytes.
pub fn index_key(index: &[u8], sortable: &[u8], id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(index.len() + sortable.len() + 2 + ID_LEN);
    k.extend_from_slice(index);
    k.extend_from_slice(sortable);
    k.push(0x00);
    k.push(ID_MARK);
    k.extend_from_slice(&id_bytes(id));
    k
}

/// Where an index value's entries start: `index sortable 00` (the
/// contract's inclusive-lower sentinel `v‖00`).
pub fn value_start(index: &[u8], sortable: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(index.len() + sortable.len() + 2);
    k.extend_from_slice(index);
    k.extend_from_slice(sortable);
    k.push(0x00);
    k
}

/// Where an index value's entries end: `index sortable 00 FF` (the
/// contract's exclusive-lower and inclusive-upper sentinel `v‖00 FF`).
pub fn value_end(index: &[u8], sortable: &[u8]) -> Vec<u8> {
    let mut k = value_start(index, sortable);
    k.push(0xFF);
    k
}

/// Channel of a row: `<instance>:<component>:{CLU<cluster>}:id:<id>`.
pub fn row_channel(instance: &str, component: &str, cluster: u32, id: i64) -> String {
    format!("{instance}:{component}:{{CLU{cluster}}}:id:{id}")
}

/// Channel of an index: `<instance>:<component>:{CLU<cluster>}:index:<column>`.
pub fn index_channel(instance: &str, component: &str, cluster: u32, column: &str) -> String {
    format!("{instance}:{component}:{{CLU{cluster}}}:index:{column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_numeric_order() {
        let ids = [i64::MIN, -5, -1, 0, 1, 7, 1 << 40, i64::MAX];
        for w in ids.windows(2) {
            assert!(id_bytes(w[0]) < id_bytes(w[1]));
        }
        for id in ids {
            assert_eq!(id_from_key(&id_bytes(id)).unwrap(), id);
        }
    }

    #[test]
    fn sentinels_bracket_every_id_of_a_value() {
        let ix = index_prefix(&table_prefix(1), 4);
        let v = b"a".to_vec();
        let longer = [b'a', 0, 0xFF, b'b'].to_vec(); // "a\0b"
        for id in [i64::MIN, 0, i64::MAX] {
            let k = index_key(&ix, &v, id);
            assert!(value_start(&ix, &v) < k && k < value_end(&ix, &v));
            let k2 = index_key(&ix, &longer, id);
            assert!(k2 > value_end(&ix, &v), "a longer value sorts past v's end");
        }
    }

    #[test]
    fn names_do_not_nest_and_row_keys_are_16_bytes() {
        let a = name_key("ab", "c", 1);
        let b = name_key("a", "bc", 1);
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
        assert_eq!(row_key(&table_prefix(7), -1).len(), 16);
        assert_eq!(
            row_channel("pytest", "Item", 1, 5),
            "pytest:Item:{CLU1}:id:5"
        );
    }
}
