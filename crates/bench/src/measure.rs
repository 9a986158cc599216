//! The measurements criterion is bad at: per-read latency distributions (idle and with a paced
//! concurrent writer), read throughput under that writer, and the longest reader wait while a
//! full relist is swapped in.
//!
//! # Method
//! - **Per-read latency.** Each sampled read is timed on its own with a pair of
//!   [`Instant::now`] calls (vDSO `clock_gettime`, ~20 ns here) and recorded in an
//!   HdrHistogram (3 significant digits). The median cost of an *empty* timed section (the timer
//!   floor, [`timer_floor`]) is subtracted from every sample, clamped at 1 ns. Timing reads one
//!   by one (not in batches) is what makes a single long wait — a reader parked on a lock —
//!   visible in the tail instead of being averaged away over a batch.
//! - **Throughput** is measured in a separate phase of the same configuration without per-read
//!   timers: reads in chunks of 1,024, the clock read once per chunk.
//! - **Writer.** A thread applies `Apply` events (a fresh resourceVersion each, round-robin over
//!   the cached objects) paced to a target rate: it sleeps ~100 µs, then applies every event that
//!   is due by then, so events arrive in small bursts as they do from a watch stream. repocache
//!   is driven as its reflector drives it (stage each event, publish at most every 1 ms, make a
//!   deferred publish when it comes due).
//! - Keys are built once up front (kube-runtime's `ObjectRef` included), and reads cycle through
//!   all cached names.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::fixture;
use crate::sides::{Obj, Reader, WriteSide};

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// The median cost in nanoseconds of an empty section timed with two `Instant::now` calls.
pub fn timer_floor() -> u64 {
    let mut h = histogram();
    for _ in 0..200_000 {
        let t0 = Instant::now();
        let t1 = Instant::now();
        h.saturating_record(nanos(t1 - t0).max(1));
    }
    h.value_at_quantile(0.5)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Reads for `dur`, each timed on its own; returns the histogram of per-read latency.
pub fn read_latency<R: Reader>(
    reader: &R,
    keys: &[R::Key],
    dur: Duration,
    floor: u64,
) -> Histogram<u64> {
    let mut h = histogram();
    let start = Instant::now();
    let mut i = 0;
    loop {
        for _ in 0..256 {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            let key = &keys[i];
            let t0 = Instant::now();
            let got = reader.get(black_box(key));
            let t1 = Instant::now();
            black_box(got);
            h.saturating_record(nanos(t1 - t0).saturating_sub(floor).max(1));
        }
        if start.elapsed() >= dur {
            break;
        }
    }
    h
}

/// Reads for `dur` without per-read timers; returns reads per second.
pub fn read_throughput<R: Reader>(reader: &R, keys: &[R::Key], dur: Duration) -> f64 {
    let start = Instant::now();
    let mut reads: u64 = 0;
    let mut i = 0;
    loop {
        for _ in 0..1024 {
            i = if i + 1 == keys.len() { 0 } else { i + 1 };
            black_box(reader.get(black_box(&keys[i])));
        }
        reads += 1024;
        let elapsed = start.elapsed();
        if elapsed >= dur {
            return reads as f64 / elapsed.as_secs_f64();
        }
    }
}

/// A writer thread applying paced `Apply` events to a store; see [`PacedWriter::start`].
pub struct PacedWriter<W> {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(W, u64, Duration)>,
}

/// What a paced writer did.
#[derive(Clone, Copy, Debug)]
pub struct WriterStats {
    /// Events applied.
    pub events: u64,
    /// Events per second achieved.
    pub rate: f64,
}

impl<W: WriteSide> PacedWriter<W> {
    /// Starts applying `rate` events per second to `side`, which holds objects `0..n`, one
    /// [`WriteSide::apply`] per event, calling [`WriteSide::tick`] between events (so that a
    /// store that defers its publishes makes them when they come due).
    pub fn start(side: W, n: usize, rate: f64) -> Self {
        Self::start_with(side, Arc::new(fixture::repositories(n, 0)), rate)
    }

    /// Like [`start`](Self::start), cycling through `templates` (the objects `side` holds),
    /// each applied at a new resourceVersion.
    pub fn start_with(mut side: W, templates: Arc<Vec<Obj>>, rate: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut rv: u64 = 1_000_000_000;
            let mut applied: u64 = 0;
            let start = Instant::now();
            while !stop_flag.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while applied < due {
                    let mut obj: Obj = templates[(applied as usize) % templates.len()].clone();
                    rv += 1;
                    obj.metadata.resource_version = Some(rv.to_string());
                    side.apply(obj);
                    applied += 1;
                }
                side.tick();
                thread::sleep(Duration::from_micros(100));
            }
            (side, applied, start.elapsed())
        });
        Self { stop, handle }
    }

    /// Stops the writer; returns the store and what the writer did.
    pub fn stop(self) -> (W, WriterStats) {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok((side, events, elapsed)) => (
                side,
                WriterStats {
                    events,
                    rate: events as f64 / elapsed.as_secs_f64().max(1e-9),
                },
            ),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Reader waits while a store swaps in full relists.
#[derive(Debug)]
pub struct RelistWait {
    /// Per-read latency of the reads that started while a relist was in progress.
    pub hist: Histogram<u64>,
    /// The longest read of each relist, in nanoseconds.
    pub longest_per_relist: Vec<u64>,
    /// Relists run.
    pub relists: usize,
    /// Mean wall time of one relist in the writer (Init to InitDone), in nanoseconds.
    pub relist_mean_ns: u64,
}

/// Runs `relists` relists of `n` objects (every object at a new resourceVersion: the worst case,
/// in which the whole previous state is released) while one reader thread reads by name and
/// times every read.
pub fn relist_wait<W: WriteSide>(n: usize, relists: usize, floor: u64) -> RelistWait {
    let side: W = crate::sides::filled(&fixture::repositories(n, 1));
    let reader = side.reader();
    relist_wait_reading(side, reader, n, relists, floor)
}

/// The noise control for [`relist_wait`]: the writer relists a repocache store exactly as there,
/// but the reader reads an unrelated, unsynchronized `HashMap` that nothing writes. Its longest
/// read is what the machine (scheduling, interrupts, other processes, the writer's memory
/// traffic) adds by itself.
pub fn relist_wait_control(n: usize, relists: usize, floor: u64) -> RelistWait {
    let side: crate::sides::Repocache = crate::sides::filled(&fixture::repositories(n, 1));
    let reader = crate::sides::plain_map(&fixture::repositories(n, 1));
    relist_wait_reading(side, reader, n, relists, floor)
}

fn relist_wait_reading<W: WriteSide, R: Reader>(
    mut side: W,
    reader: R,
    n: usize,
    relists: usize,
    floor: u64,
) -> RelistWait {
    let active = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader_thread = {
        let (active, done, reads) = (active.clone(), done.clone(), reads.clone());
        thread::spawn(move || {
            let keys = crate::sides::keys::<R>(n);
            let mut h = histogram();
            let mut longest = Vec::new();
            let mut current: u64 = 0;
            let mut was_active = false;
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    i = if i + 1 == keys.len() { 0 } else { i + 1 };
                    let during = active.load(Ordering::Relaxed);
                    let t0 = Instant::now();
                    let got = reader.get(black_box(&keys[i]));
                    let t1 = Instant::now();
                    black_box(got);
                    if during {
                        let ns = nanos(t1 - t0).saturating_sub(floor).max(1);
                        h.saturating_record(ns);
                        current = current.max(ns);
                    } else if was_active {
                        longest.push(std::mem::take(&mut current));
                    }
                    was_active = during;
                }
                reads.fetch_add(64, Ordering::Relaxed);
            }
            if was_active {
                longest.push(current);
            }
            (h, longest)
        })
    };
    // Let the reader start before the first relist.
    while reads.load(Ordering::Relaxed) < 10_000 {
        thread::yield_now();
    }
    let mut total = Duration::ZERO;
    for r in 0..relists {
        let batch = fixture::repositories(n, 1_000_000 * (r as u64 + 2));
        active.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        side.relist(&mut batch.into_iter());
        total += t0.elapsed();
        // Reads that started during the swap may still be running; give them time to end.
        thread::sleep(Duration::from_millis(2));
        active.store(false, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Relaxed);
    let (hist, longest_per_relist) = match reader_thread.join() {
        Ok(h) => h,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    drop(side);
    RelistWait {
        hist,
        longest_per_relist,
        relists,
        relist_mean_ns: nanos(total) / relists.max(1) as u64,
    }
}
