//! [`StripedCounter`]: a counter that many reader threads can bump without sharing a cache line
//! and without a locked instruction.
//!
//! Reads are counted on the read path, which must stay cheap on every core: one shared atomic
//! would bounce its cache line between cores on every read, and even an uncontended atomic
//! read-modify-write costs a locked instruction. Each live thread that counts owns one padded
//! slot in every counter (up to [`SLOTS`] at once), and is its only writer: it adds with a plain
//! load and store. A thread's slot goes back to a free list when the thread exits, so a process
//! whose threads come and go (a blocking pool, benchmark phases) keeps finding free slots; only
//! threads beyond [`SLOTS`] *live at once* share one overflow slot, with an atomic add. The
//! slots are summed when the figure is read (rarely: on a scrape), and a slot's count stays in
//! it when its thread exits. Counts a thread makes in its own teardown after its slot went back
//! (a thread-local's `Drop` that reads a cache) go to the overflow slot: the slot may have its
//! next owner already.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Threads with a slot of their own.
const SLOTS: usize = 64;

/// One slot on its own pair of cache lines (x86's adjacent-line prefetcher fetches lines in
/// pairs, so two threads' slots 64 bytes apart would still pull each other's line).
#[derive(Debug, Default)]
#[repr(align(128))]
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

/// Slots never taken yet start here.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
/// Slots whose thread exited, to be taken again. The lock is taken once per thread (its first
/// count and its exit), never on the counting path; its release and acquire order the exited
/// thread's last store to a slot before the next owner's first load of it.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's slot index in every counter (owned by this thread alone while it lives);
    /// `usize::MAX` until the thread first counts. Const-initialized and without a destructor,
    /// so reading it is one load, with no lazy-initialization check.
    static THREAD: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Gives this thread's slot back when the thread exits (touched once, on the first count).
    static RELEASE: SlotRelease = const { SlotRelease(Cell::new(usize::MAX)) };
}

/// Returns its slot to [`FREE`] when dropped (at its thread's exit).
struct SlotRelease(Cell<usize>);

impl Drop for SlotRelease {
    fn drop(&mut self) {
        let slot = self.0.get();
        if slot < SLOTS {
            // A poisoned lock only means another thread panicked while pushing: the list is
            // still a valid list.
            // Counts made later in this thread's teardown (a `Drop` of another thread-local
            // that reads a cache) go to the overflow slot with an atomic add: the slot given
            // back here may already have its next owner, the only one allowed a plain store.
            THREAD.with(|t| t.set(SLOTS));
            FREE.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(slot);
        }
    }
}

/// This thread's slot index, taken on its first count: a slot an exited thread gave back, else
/// a new one (at or past [`SLOTS`]: the overflow slot).
#[inline]
fn thread_slot() -> usize {
    THREAD.with(|t| match t.get() {
        usize::MAX => {
            let slot = take_slot();
            t.set(slot);
            slot
        }
        slot => slot,
    })
}

#[cold]
fn take_slot() -> usize {
    let reused = FREE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let slot = reused.unwrap_or_else(|| NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
    // During thread teardown the release cannot be registered: the slot is then never given
    // back (as before slots were reused), which costs a slot, not a count.
    let _ = RELEASE.try_with(|r| r.0.set(slot));
    slot
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

    /// One test, so that its parts never run at once: the first and the last need fewer than
    /// [`SLOTS`] counting threads alive, the second starts more.
    #[test]
    fn slots_of_exited_threads_are_taken_again_and_counts_add_up_beyond_the_slots() {
        // Threads that come and go one after another keep finding a slot of their own: more of
        // them than there are slots never reach the shared overflow slot, and every count stays.
        let counter = Arc::new(StripedCounter::default());
        for _ in 0..3 * SLOTS {
            let c = counter.clone();
            std::thread::spawn(move || {
                c.incr();
                assert!(thread_slot() < SLOTS, "a thread fell to the overflow slot");
            })
            .join()
            .unwrap();
        }
        assert_eq!(counter.overflow.load(Ordering::Relaxed), 0);
        assert_eq!(counter.get(), 3 * SLOTS as u64);

        // More threads alive at once than slots: the rest share the overflow slot.
        let counter = Arc::new(StripedCounter::default());
        let barrier = Arc::new(std::sync::Barrier::new(SLOTS + 8));
        let threads: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let (c, b) = (counter.clone(), barrier.clone());
                std::thread::spawn(move || {
                    c.incr();
                    // Every thread holds its slot until all have counted once.
                    b.wait();
                    (0..999).for_each(|_| c.incr());
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(counter.overflow.load(Ordering::Relaxed) > 0);
        assert_eq!(counter.get(), (SLOTS as u64 + 8) * 1000);

        // A count made in the thread's teardown after its slot went back (here a thread-local's
        // `Drop`, registered before the slot's release and so run after it) must not touch the
        // slot, which the next thread may own already: it goes to the shared overflow slot.
        struct CountsOnDrop(std::cell::RefCell<Option<Arc<StripedCounter>>>);
        impl Drop for CountsOnDrop {
            fn drop(&mut self) {
                if let Some(c) = self.0.borrow_mut().take() {
                    c.incr();
                }
            }
        }
        thread_local! {
            static LATER: CountsOnDrop = const { CountsOnDrop(std::cell::RefCell::new(None)) };
        }
        let counter = Arc::new(StripedCounter::default());
        let c = counter.clone();
        std::thread::spawn(move || {
            LATER.with(|l| *l.0.borrow_mut() = Some(c.clone()));
            c.incr();
            assert!(thread_slot() < SLOTS, "the thread has a slot of its own");
        })
        .join()
        .unwrap();
        assert_eq!(counter.get(), 2);
        assert_eq!(
            counter.overflow.load(Ordering::Relaxed),
            1,
            "the count after the slot's release went to the released slot"
        );
    }
}
