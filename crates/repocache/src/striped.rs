//! [`StripedCounter`]: a counter that many reader threads can bump without sharing a cache line
//! and without a locked instruction.
//!
//! Reads are counted on the read path, which must stay cheap on every core: one shared atomic
//! would bounce its cache line between cores on every read, and even an uncontended atomic
//! read-modify-write costs a locked instruction. Each of the first [`SLOTS`] threads of the
//! process owns one padded slot in every counter, and is its only writer: it adds with a plain
//! load and store. Threads beyond that share one overflow slot, with an atomic add. The slots are
//! summed when the figure is read (rarely: on a scrape).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Threads with a slot of their own.
const SLOTS: usize = 64;

/// One slot on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

/// A monotonically increasing counter, striped across cache lines by thread.
#[derive(Debug)]
pub(crate) struct StripedCounter {
    slots: Box<[Slot; SLOTS]>,
    overflow: AtomicU64,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self {
            slots: Box::new(std::array::from_fn(|_| Slot::default())),
            overflow: AtomicU64::new(0),
        }
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot index in every counter (never reused, so never shared); `usize::MAX`
    /// until the thread first counts. Const-initialized and without a destructor, so reading
    /// it is one load, with no lazy-initialization check.
    static THREAD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's slot index, taken on its first count.
#[inline]
fn thread_slot() -> usize {
    THREAD.with(|t| match t.get() {
        usize::MAX => {
            let slot = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            t.set(slot);
            slot
        }
        slot => slot,
    })
}

impl StripedCounter {
    /// Adds one.
    #[inline]
    pub(crate) fn incr(&self) {
        let thread = thread_slot();
        match self.slots.get(thread) {
            // The only writer of this slot: no read-modify-write needed.
            Some(slot) => slot.0.store(
                slot.0.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            ),
            None => {
                self.overflow.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The sum over all slots.
    pub(crate) fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(self.overflow.load(Ordering::Relaxed), u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_from_many_threads_add_up_even_beyond_the_slots() {
        let counter = Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.get(), (SLOTS as u64 + 8) * 1000);
    }
}
