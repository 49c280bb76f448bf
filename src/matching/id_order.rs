//! Records in id order: the positions of a slice sorted by id, each id once, and each
//! position's rank in that order.

use super::NONE;

/// Positions of `items` sorted by id, keeping only the first occurrence of each id.
///
/// Sorting a million string ids through pointers is cache-hostile; sorting on the first
/// eight bytes packed into a `u64` settles almost every comparison without touching the
/// heap, and full strings are compared only on a tie. Byte order of the packed prefix
/// (zero-padded) agrees with the lexicographic order of the strings.
pub(super) fn unique_in_id_order<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<usize> {
    let mut keys: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (prefix_key(id(item).as_bytes()), i))
        .collect();
    keys.sort_unstable();
    // Only ids sharing their first eight bytes need their full strings compared; with
    // real ids such runs are rare and short.
    let mut start = 0;
    while start < keys.len() {
        let prefix = keys[start].0;
        let mut end = start + 1;
        while end < keys.len() && keys[end].0 == prefix {
            end += 1;
        }
        if end - start > 1 {
            keys[start..end]
                .sort_by(|a, b| id(&items[a.1]).cmp(id(&items[b.1])).then(a.1.cmp(&b.1)));
        }
        start = end;
    }
    let mut out: Vec<usize> = Vec::with_capacity(keys.len());
    let mut last: Option<(u64, usize)> = None;
    for (key, i) in keys {
        if let Some((last_key, j)) = last
            && last_key == key
            && id(&items[j]) == id(&items[i])
        {
            continue;
        }
        last = Some((key, i));
        out.push(i);
    }
    out
}

fn prefix_key(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

/// Each position's rank in `order` (id order), or [`NONE`] for a repeated id.
pub(super) fn ranks(order: &[usize], len: usize) -> Vec<usize> {
    let mut rank = vec![NONE; len];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    rank
}
