//! Order-preserving parallel map for the per-document and per-resource stages (parsing,
//! validation): each item is independent, so a large config uses every core and the
//! result is the same, in the same order, as a sequential run.

use super::regex_cache;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Items per unit of work: small enough to balance two workers, large enough that
/// handing out work costs nothing next to parsing or validating the items.
const BATCH: usize = 64;

/// `items.into_iter().map(f).collect()`, computed on up to the machine's cores (each
/// worker with its own regex cache).
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let batches = items.len().div_ceil(BATCH);
    let workers = threads.min(batches);
    if workers <= 1 {
        return regex_cache::scope(|| items.into_iter().map(f).collect());
    }
    // Batches in order; each worker takes the next one and leaves its results in the
    // batch's slot.
    let mut queue: Vec<Mutex<Option<Vec<T>>>> = Vec::with_capacity(batches);
    let mut items = items.into_iter();
    for _ in 0..batches {
        queue.push(Mutex::new(Some(items.by_ref().take(BATCH).collect())));
    }
    let results: Vec<Mutex<Vec<R>>> = (0..batches).map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        regex_cache::scope(|| loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            if b >= batches {
                break;
            }
            let batch = lock(&queue[b]).take().unwrap_or_default();
            let out: Vec<R> = batch.into_iter().map(&f).collect();
            *lock(&results[b]) = out;
        })
    };
    std::thread::scope(|s| {
        for _ in 1..workers {
            s.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .flat_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// A lock that a panicking worker did not leave unusable (its panic is re-raised by
/// `thread::scope` anyway).
fn lock<X>(m: &Mutex<X>) -> std::sync::MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        for n in [0, 1, 63, 64, 65, 1000] {
            let got = super::map((0..n).collect(), |i: usize| i * 2);
            assert_eq!(got, (0..n).map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
