use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

/// The `k` highest-scoring items seen, in bounded memory (a min-heap of size `k`).
/// Ties on score are broken by the tie-break key, smallest first, so the answer does
/// not depend on arrival order.
#[derive(Debug, Clone)]
pub struct TopK<T> {
    k: usize,
    heap: BinaryHeap<Reverse<Entry<T>>>,
}

#[derive(Debug, Clone)]
struct Entry<T> {
    score: f64,
    tie: String,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // "Greater" means "ranks higher": a higher score, then a smaller tie-break key.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.tie.cmp(&self.tie))
    }
}

impl<T> TopK<T> {
    /// An empty top-k.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1024)),
        }
    }

    /// Offers an item; non-finite scores are ignored.
    pub fn push(&mut self, score: f64, tie: impl Into<String>, item: T) {
        if self.k == 0 || !score.is_finite() {
            return;
        }
        self.heap.push(Reverse(Entry {
            score,
            tie: tie.into(),
            item,
        }));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    /// The kept items, highest first, with their scores.
    pub fn into_sorted(self) -> Vec<(f64, T)> {
        let mut entries: Vec<Entry<T>> = self.heap.into_iter().map(|Reverse(e)| e).collect();
        entries.sort_by(|a, b| b.cmp(a));
        entries.into_iter().map(|e| (e.score, e.item)).collect()
    }
}

/// The top `k` items per group, highest first. Input: `(group, score, tie-break, item)`.
pub fn top_k_per_group<T, I>(items: I, k: usize) -> BTreeMap<String, Vec<(f64, T)>>
where
    I: IntoIterator<Item = (String, f64, String, T)>,
{
    let mut groups: BTreeMap<String, TopK<T>> = BTreeMap::new();
    for (group, score, tie, item) in items {
        groups
            .entry(group)
            .or_insert_with(|| TopK::new(k))
            .push(score, tie, item);
    }
    groups
        .into_iter()
        .map(|(g, top)| (g, top.into_sorted()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_per_group_with_stable_ties() {
        let items = vec![
            ("mint".to_owned(), 330.0, "b".to_owned(), "b"),
            ("mint".to_owned(), 100.0, "c".to_owned(), "c"),
            ("mint".to_owned(), 330.0, "a".to_owned(), "a"),
            ("escrow".to_owned(), 880.0, "e".to_owned(), "e"),
            ("mint".to_owned(), f64::NAN, "n".to_owned(), "n"),
        ];
        let top = top_k_per_group(items, 2);
        assert_eq!(top["mint"], vec![(330.0, "a"), (330.0, "b")]);
        assert_eq!(top["escrow"], vec![(880.0, "e")]);
    }

    #[test]
    fn k_zero_keeps_nothing() {
        let mut t = TopK::new(0);
        t.push(1.0, "a", ());
        assert!(t.into_sorted().is_empty());
    }
}
