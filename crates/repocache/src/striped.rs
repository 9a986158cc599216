//! [`StripedCounter`]: a counter that many reader threads can bump without sharing a cache line.
//!
//! Reads are counted on the read path, which must stay cheap on every core: one shared atomic
//! would bounce its cache line between cores on every read. Each thread instead adds to one of
//! several padded slots, and the slots are summed when the figure is read (rarely: on a scrape).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const STRIPES: usize = 16;

/// One slot on its own cache line (128 bytes covers adjacent-line prefetching too).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A monotonically increasing counter, striped across cache lines by thread.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter {
    slots: [Slot; STRIPES],
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

impl StripedCounter {
    /// Adds one, on the calling thread's slot.
    #[inline]
    pub(crate) fn incr(&self) {
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0);
        self.slots[stripe].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum over all slots.
    pub(crate) fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.get(), 8000);
    }
}
