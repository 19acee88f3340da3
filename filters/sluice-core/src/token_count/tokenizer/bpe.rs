//! Byte-pair merging of one piece, exactly as tiktoken merges: repeatedly join the adjacent
//! pair whose bytes form the token of lowest rank (the leftmost such pair on ties) until no
//! pair is a token. Short pieces use tiktoken's own quadratic scan (fast at that size); long
//! ones a heap, which merges in the same order and is O(n log n), so no input is quadratic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::table::Table;

/// Longest piece merged by the quadratic scan (on the stack, no allocation).
const SCAN_MAX: usize = 32;

/// How many tokens `piece` merges into, for a piece of at least two bytes that is not itself a
/// token.
pub fn merge_count(table: &Table, piece: &[u8]) -> usize {
    if piece.len() <= SCAN_MAX {
        Scan::merge(table, piece).len
    } else {
        merge_heap(table, piece).len()
    }
}

/// Where the tokens of `piece` start (each a byte offset), for a piece of at least two bytes
/// that is not itself a token.
#[cfg(test)]
pub fn merge(table: &Table, piece: &[u8]) -> Vec<usize> {
    if piece.len() <= SCAN_MAX {
        let scan = Scan::merge(table, piece);
        scan.parts
            .iter()
            .take(scan.len)
            .map(|(start, _)| usize::from(*start))
            .collect()
    } else {
        merge_heap(table, piece)
    }
}

/// The rank of `piece[from..to]` as a token, `u32::MAX` if it is none.
#[inline]
fn rank_of(table: &Table, piece: &[u8], from: usize, to: usize) -> u32 {
    piece
        .get(from..to)
        .and_then(|bytes| table.rank(bytes))
        .unwrap_or(u32::MAX)
}

/// tiktoken's scan: parts as (start, rank of the pair that starts there), plus an end sentinel.
struct Scan {
    parts: [(u8, u32); SCAN_MAX + 1],
    len: usize,
}

impl Scan {
    fn merge(table: &Table, piece: &[u8]) -> Scan {
        let n = piece.len().min(SCAN_MAX);
        let mut scan = Scan {
            parts: [(0, u32::MAX); SCAN_MAX + 1],
            len: n,
        };
        for (i, part) in scan.parts.iter_mut().enumerate().take(n + 1) {
            // Offsets are at most SCAN_MAX, so they fit a byte.
            part.0 = i as u8;
            if i + 2 <= n {
                part.1 = rank_of(table, piece, i, i + 2);
            }
        }
        // Live parts are parts[..len], parts[len] is the end sentinel.
        loop {
            let mut min = (u32::MAX, 0);
            for (i, &(_, rank)) in scan.parts.iter().enumerate().take(scan.len) {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
            if min.0 == u32::MAX {
                break;
            }
            let i = min.1;
            // Part i absorbs part i + 1: the pairs that start at parts i - 1 and i now end
            // where parts i + 2 and i + 3 start (parts[len] is the end sentinel).
            if i > 0 {
                let rank = scan.pair_rank(i - 1, i + 2, table, piece);
                scan.set_rank(i - 1, rank);
            }
            let rank = scan.pair_rank(i, i + 3, table, piece);
            scan.set_rank(i, rank);
            if i + 2 <= scan.len {
                scan.parts.copy_within(i + 2..=scan.len, i + 1);
            }
            scan.len -= 1;
        }
        scan
    }

    /// The rank of the bytes from part `from` up to part `to`.
    fn pair_rank(&self, from: usize, to: usize, table: &Table, piece: &[u8]) -> u32 {
        if to > self.len {
            return u32::MAX;
        }
        match (self.parts.get(from), self.parts.get(to)) {
            (Some(a), Some(b)) => rank_of(table, piece, usize::from(a.0), usize::from(b.0)),
            _ => u32::MAX,
        }
    }

    fn set_rank(&mut self, i: usize, rank: u32) {
        if let Some(part) = self.parts.get_mut(i) {
            part.1 = rank;
        }
    }
}

fn merge_heap(table: &Table, piece: &[u8]) -> Vec<usize> {
    let n = piece.len();
    // Parts as a linked list over their start offsets: next[start] is where the part ends.
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.saturating_sub(1)).collect();
    // The rank of the pair that starts at each live part (`u32::MAX`: none, or a dead part).
    let mut pair: Vec<u32> = (0..n).map(|i| rank_of(table, piece, i, i + 2)).collect();
    // Heap keys are (rank, start) in one word; a key whose rank is no longer its start's
    // pair rank is stale and skipped. Smallest rank first, then leftmost: tiktoken's order.
    let key = |rank: u32, start: usize| Reverse(u64::from(rank) << 32 | start as u64);
    let mut heap: BinaryHeap<Reverse<u64>> = pair
        .iter()
        .enumerate()
        .filter(|(_, rank)| **rank != u32::MAX)
        .map(|(start, rank)| key(*rank, start))
        .collect();
    let get = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(n);
    while let Some(Reverse(k)) = heap.pop() {
        let (rank, start) = ((k >> 32) as u32, (k & u64::from(u32::MAX)) as usize);
        if pair.get(start) != Some(&rank) {
            continue;
        }
        // Part `start` absorbs the part after it.
        let mid = get(&next, start);
        if mid >= n {
            continue; // cannot happen: a live pair has a part after it
        }
        let end = get(&next, mid);
        if let Some(p) = pair.get_mut(mid) {
            *p = u32::MAX;
        }
        if let Some(x) = next.get_mut(start) {
            *x = end;
        }
        if let Some(x) = prev.get_mut(end) {
            *x = start;
        }
        let after = if end < n {
            rank_of(table, piece, start, get(&next, end))
        } else {
            u32::MAX
        };
        if let Some(p) = pair.get_mut(start) {
            *p = after;
        }
        if after != u32::MAX {
            heap.push(key(after, start));
        }
        if start > 0 {
            let before = get(&prev, start);
            let rank = rank_of(table, piece, before, end);
            if let Some(p) = pair.get_mut(before) {
                *p = rank;
            }
            if rank != u32::MAX {
                heap.push(key(rank, before));
            }
        }
    }
    let mut starts = Vec::new();
    let mut at = 0;
    while at < n {
        starts.push(at);
        at = get(&next, at);
    }
    starts
}
