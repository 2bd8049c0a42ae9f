//! What a host does to a node's rows, shared by the targets that fuzz it
//! (`fleet_disk`, `host_records`). Each edit picks rows by index, modulo
//! the table's size, so every input names some row.

use bkv_fleet::platform::{MemImage, Table};

/// Row `i` of table `t` (modulo the table's size), if the table has rows.
pub fn row(image: &MemImage, t: Table, i: u8) -> Option<(Vec<u8>, Vec<u8>)> {
    let rows = image.get(&t)?;
    let n = rows.len();
    if n == 0 {
        return None;
    }
    rows.iter()
        .nth(usize::from(i) % n)
        .map(|(k, v)| (k.clone(), v.clone()))
}

/// XORs `mask` into byte `at` (modulo the length) of row `i`'s value.
pub fn flip_value(image: &mut MemImage, t: Table, i: u8, at: usize, mask: u8) {
    if let Some((k, mut v)) = row(image, t, i) {
        let n = v.len().max(1);
        if let Some(b) = v.get_mut(at % n) {
            *b ^= mask;
        }
        image.entry(t).or_default().insert(k, v);
    }
}

/// XORs `mask` into byte `at` (modulo the length) of row `i`'s key: the
/// value moves to the new key.
pub fn flip_key(image: &mut MemImage, t: Table, i: u8, at: usize, mask: u8) {
    if let Some((mut k, v)) = row(image, t, i) {
        let rows = image.entry(t).or_default();
        rows.remove(&k);
        let n = k.len().max(1);
        if let Some(b) = k.get_mut(at % n) {
            *b ^= mask;
        }
        rows.insert(k, v);
    }
}

/// Removes row `i`.
pub fn drop_row(image: &mut MemImage, t: Table, i: u8) {
    if let Some((k, _)) = row(image, t, i) {
        image.entry(t).or_default().remove(&k);
    }
}

/// Swaps the values of rows `a` and `b`.
pub fn swap(image: &mut MemImage, t: Table, a: u8, b: u8) {
    if let (Some((ka, va)), Some((kb, vb))) = (row(image, t, a), row(image, t, b)) {
        let rows = image.entry(t).or_default();
        rows.insert(ka, vb);
        rows.insert(kb, va);
    }
}
