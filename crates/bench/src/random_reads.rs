//! Random-order reads: the cost of one `get` when a reader looks names up in random order over
//! the whole key space, as a reconciler does (its work queue hands it whichever object changed),
//! with one and two reader threads, with and without a concurrent writer.
//!
//! The criterion bench of section 1 cycles through the names in order, which keeps the recently
//! read parts of every store in the CPU's caches; here each thread reads keys in an order drawn
//! up front (a precomputed index sequence: no random number generator on the measured path),
//! different per thread. Every store is read the same way:
//!
//! | label | read |
//! | --- | --- |
//! | [`CACHE_GET`] | repocache `Cache::get` (`&self`, from any thread) |
//! | [`READER_GET`] | repocache `Reader::get` (one `Reader` per thread, `&mut self`) |
//! | [`KUBE_GET`] | kube-runtime `Store::get` |
//! | [`MAP_GET`] | an unsynchronized `HashMap<String, Arc<K>>` + `Arc` clone (the limit) |
//!
//! A phase runs the reader threads together for a fixed time, each reading in chunks of 1,024
//! with the clock read once per chunk; the figure is nanoseconds of the thread's CPU time per
//! read per thread ([`thread_cpu_ns`]; wall time where the system does not tell), and beside it
//! the wall-clock time per read (the inverse of a thread's throughput: it also counts the time a
//! reader waits, parked on a lock or descheduled while more threads than cores run). Phases of
//! the stores alternate within a round, and the figure is the median over rounds, so drift of
//! the machine falls on every store alike. With the writer, a thread applies `Apply` events at
//! the paced rate to the store being read (for the unsynchronized map, which cannot be written
//! while read, to a repocache store beside it, so that the machine carries the same load).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kube::runtime::reflector::Store;

use crate::fixture;
use crate::measure::PacedWriter;
use crate::sides::{self, KubeStore, Obj, PlainMap, Repocache, WriteSide};

/// repocache `Cache::get`.
pub const CACHE_GET: &str = "repocache `Cache::get`";
/// repocache `Reader::get`.
pub const READER_GET: &str = "repocache `Reader::get`";
/// kube-runtime `Store::get`.
pub const KUBE_GET: &str = "kube-runtime `Store::get`";
/// Unsynchronized `HashMap::get` + `Arc` clone.
pub const MAP_GET: &str = "unsynchronized `HashMap`";
/// Every store, in the order of the report's columns.
pub const STORES: [&str; 4] = [KUBE_GET, CACHE_GET, READER_GET, MAP_GET];

/// How big and how long the random-read part runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Cache sizes.
    pub sizes: Vec<usize>,
    /// Reader thread counts.
    pub readers: Vec<usize>,
    /// The paced writer's rate, events per second.
    pub writer_rate: f64,
    /// Length of one measured phase.
    pub phase: Duration,
    /// Rounds (the figure is the median over rounds).
    pub rounds: usize,
}

impl Config {
    /// The report's run: 10 to 100,000 objects, 1 and 2 readers.
    pub fn full() -> Self {
        Self {
            sizes: vec![10, 1_000, 10_000, 100_000],
            readers: vec![1, 2],
            writer_rate: 10_000.0,
            phase: Duration::from_millis(200),
            rounds: 5,
        }
    }

    /// Shorter phases, same sizes.
    pub fn quick() -> Self {
        Self {
            phase: Duration::from_millis(80),
            rounds: 3,
            ..Self::full()
        }
    }

    /// Tiny sizes and phases: only shows that the part runs (CI).
    pub fn smoke() -> Self {
        Self {
            sizes: vec![10, 100],
            readers: vec![1, 2],
            writer_rate: 10_000.0,
            phase: Duration::from_millis(5),
            rounds: 1,
        }
    }
}

/// One measured configuration of one store.
#[derive(Clone, Debug)]
pub struct Row {
    /// Store label (one of [`STORES`]).
    pub store: &'static str,
    /// Cached objects.
    pub objects: usize,
    /// Reader threads.
    pub readers: usize,
    /// Whether the paced writer ran.
    pub writer: bool,
    /// Nanoseconds of CPU time per read per thread: the median over rounds (each round the
    /// mean over the reader threads).
    pub ns_per_read: f64,
    /// Nanoseconds of wall-clock time per read per thread (1 / a thread's throughput): the
    /// median over rounds (each round the mean over the reader threads).
    pub wall_ns_per_read: f64,
    /// Every round's CPU-time figure, in order.
    pub rounds: Vec<f64>,
    /// Events per second the writer achieved (mean over the rounds), when it ran.
    pub writer_events_per_sec: Option<f64>,
}

/// The figure of `store` in this configuration, if measured.
pub fn find<'a>(
    rows: &'a [Row],
    store: &str,
    objects: usize,
    readers: usize,
    writer: bool,
) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.store == store && r.objects == objects && r.readers == readers && r.writer == writer
    })
}

/// A deterministic sequence of `len` indices in `0..n`, random-looking (splitmix64), different
/// per `seed`. Drawn up front so that the measured loop only reads it, in order.
pub fn index_sequence(n: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Multiply-shift: an unbiased-enough map of 64 random bits onto 0..n.
            u32::try_from((u128::from(z) * n as u128) >> 64).unwrap_or(0)
        })
        .collect()
}

/// The CPU time this thread has run, in nanoseconds (`/proc/thread-self/schedstat`, Linux), or
/// `None` where that is not available.
///
/// The figures are CPU time per read rather than wall time: on a shared machine whose other
/// processes take the cores in turns, wall time per read grows with the share of time the thread
/// was descheduled, which has nothing to do with the store. CPU time still holds everything the
/// read costs the thread (cache misses, cache-line transfers between readers, spinning).
pub fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Length of each thread's index sequence: long enough that every key of the largest cache is
/// read, short enough to stay small beside the cache (4 bytes per index, read sequentially).
fn sequence_len(n: usize) -> usize {
    n.max(1 << 16)
}

/// What one reader thread does: reads `keys[seq[i]]` in order, for `phase`.
trait ThreadRead: Send {
    type Key: Send + Sync + 'static;
    fn read(&mut self, key: &Self::Key) -> Option<Arc<Obj>>;
}

/// A shared read handle (`&self` reads), one clone per thread.
struct Shared<R>(R);

impl<R: sides::Reader> ThreadRead for Shared<R> {
    type Key = R::Key;
    #[inline]
    fn read(&mut self, key: &R::Key) -> Option<Arc<Obj>> {
        self.0.get(key)
    }
}

/// repocache's per-thread `Reader`.
struct PerThread(repocache::cache::Reader<Obj>);

impl ThreadRead for PerThread {
    type Key = String;
    #[inline]
    fn read(&mut self, key: &String) -> Option<Arc<Obj>> {
        self.0.get(key)
    }
}

/// Runs `threads` readers together for `phase`; returns nanoseconds per read per thread (the
/// mean over the threads) of CPU time (see [`thread_cpu_ns`]) and of wall-clock time.
fn phase<T: ThreadRead + 'static>(
    handles: Vec<T>,
    keys: &Arc<Vec<T::Key>>,
    sequences: &[Arc<Vec<u32>>],
    phase: Duration,
) -> (f64, f64) {
    let threads = handles.len();
    let barrier = Arc::new(Barrier::new(threads));
    let found = Arc::new(AtomicU64::new(0));
    let joins: Vec<_> = handles
        .into_iter()
        .zip(sequences.iter().cloned())
        .map(|(mut handle, seq)| {
            let (keys, barrier, found) = (keys.clone(), barrier.clone(), found.clone());
            thread::spawn(move || {
                barrier.wait();
                let cpu = thread_cpu_ns();
                let start = Instant::now();
                let mut reads: u64 = 0;
                let mut hits: u64 = 0;
                let mut at = 0;
                loop {
                    for _ in 0..1024 {
                        at = if at + 1 >= seq.len() { 0 } else { at + 1 };
                        let key = &keys[seq[at] as usize];
                        hits += u64::from(black_box(handle.read(black_box(key))).is_some());
                    }
                    reads += 1024;
                    let elapsed = start.elapsed();
                    if elapsed >= phase {
                        found.fetch_add(hits, Ordering::Relaxed);
                        let wall = elapsed.as_nanos() as f64;
                        let spent = match (cpu, thread_cpu_ns()) {
                            (Some(a), Some(b)) if b > a => (b - a) as f64,
                            _ => wall,
                        };
                        return (spent / reads as f64, wall / reads as f64);
                    }
                }
            })
        })
        .collect();
    let per_thread: Vec<(f64, f64)> = joins
        .into_iter()
        .map(|j| match j.join() {
            Ok(ns) => ns,
            Err(panic) => std::panic::resume_unwind(panic),
        })
        .collect();
    // Every key is cached: a store that found nothing would be measured doing nothing.
    assert!(
        found.load(Ordering::Relaxed) > 0,
        "random reads found no object"
    );
    let mean =
        |f: fn(&(f64, f64)) -> f64| per_thread.iter().map(f).sum::<f64>() / threads.max(1) as f64;
    (mean(|t| t.0), mean(|t| t.1))
}

/// The stores of one size, filled with the same objects.
struct Stores {
    repocache: Option<Repocache>,
    kube: Option<KubeStore>,
    map: PlainMap,
    /// The writer's load while the unsynchronized map is read.
    bystander: Option<Repocache>,
    templates: Arc<Vec<Obj>>,
    string_keys: Arc<Vec<String>>,
    kube_keys: Arc<Vec<<Store<Obj> as sides::Reader>::Key>>,
}

impl Stores {
    fn new(n: usize) -> Self {
        let objects = fixture::repositories(n, 1);
        Self {
            repocache: Some(sides::filled(&objects)),
            kube: Some(sides::filled(&objects)),
            map: sides::plain_map(&objects),
            bystander: Some(sides::filled(&objects)),
            templates: Arc::new(objects),
            string_keys: Arc::new(sides::keys::<PlainMap>(n)),
            kube_keys: Arc::new(sides::keys::<Store<Obj>>(n)),
        }
    }

    /// Runs one phase of `store` with `readers` threads, the writer on or off; returns ns per
    /// read per thread (CPU, wall clock) and the writer's achieved rate.
    fn measure(
        &mut self,
        store: &'static str,
        readers: usize,
        writer: Option<f64>,
        sequences: &[Arc<Vec<u32>>],
        dur: Duration,
    ) -> ((f64, f64), Option<f64>) {
        let sequences = &sequences[..readers];
        match store {
            KUBE_GET => {
                let side = self.kube.take().unwrap_or_else(|| unreachable!());
                let handles = (0..readers).map(|_| Shared(side.reader())).collect();
                let (side, ns, rate) = with_writer(side, &self.templates, writer, |_| {
                    phase(handles, &self.kube_keys, sequences, dur)
                });
                self.kube = Some(side);
                (ns, rate)
            }
            CACHE_GET | READER_GET => {
                let side = self.repocache.take().unwrap_or_else(|| unreachable!());
                let cache = side.reader();
                let keys = &self.string_keys;
                let (side, ns, rate) = with_writer(side, &self.templates, writer, |_| {
                    if store == CACHE_GET {
                        let handles = (0..readers).map(|_| Shared(cache.clone())).collect();
                        phase(handles, keys, sequences, dur)
                    } else {
                        let handles = (0..readers).map(|_| PerThread(cache.reader())).collect();
                        phase(handles, keys, sequences, dur)
                    }
                });
                self.repocache = Some(side);
                (ns, rate)
            }
            _ => {
                let side = self.bystander.take().unwrap_or_else(|| unreachable!());
                let handles = (0..readers).map(|_| Shared(self.map.clone())).collect();
                let (side, ns, rate) = with_writer(side, &self.templates, writer, |_| {
                    phase(handles, &self.string_keys, sequences, dur)
                });
                self.bystander = Some(side);
                (ns, rate)
            }
        }
    }
}

/// Runs `read` with a paced writer on `side` when `rate` is given.
fn with_writer<W: WriteSide, T>(
    side: W,
    templates: &Arc<Vec<Obj>>,
    rate: Option<f64>,
    read: impl FnOnce(()) -> T,
) -> (W, T, Option<f64>) {
    match rate {
        None => {
            let out = read(());
            (side, out, None)
        }
        Some(rate) => {
            let writer = PacedWriter::start_with(side, templates.clone(), rate);
            // Let the writer reach its pace before the readers start.
            thread::sleep(Duration::from_millis(10));
            let out = read(());
            let (side, achieved) = writer.stop();
            (side, out, Some(achieved.rate))
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => v[len / 2],
        len => (v[len / 2 - 1] + v[len / 2]) / 2.0,
    }
}

/// Runs the whole part: every size, reader count and writer setting, every store, in
/// alternating rounds. `progress` is told each finished size.
pub fn run(cfg: &Config, mut progress: impl FnMut(usize)) -> Vec<Row> {
    let mut rows = Vec::new();
    let max_readers = cfg.readers.iter().copied().max().unwrap_or(1);
    for &n in &cfg.sizes {
        let mut stores = Stores::new(n);
        let sequences: Vec<Arc<Vec<u32>>> = (0..max_readers)
            .map(|t| Arc::new(index_sequence(n, sequence_len(n), 0x5eed + t as u64)))
            .collect();
        for &readers in &cfg.readers {
            for writer in [false, true] {
                let mut figures: Vec<Vec<f64>> = vec![Vec::new(); STORES.len()];
                let mut walls: Vec<Vec<f64>> = vec![Vec::new(); STORES.len()];
                let mut rates: Vec<Vec<f64>> = vec![Vec::new(); STORES.len()];
                for round in 0..cfg.rounds {
                    // Rotate the order of the stores each round.
                    for k in 0..STORES.len() {
                        let s = (k + round) % STORES.len();
                        let ((ns, wall), rate) = stores.measure(
                            STORES[s],
                            readers,
                            writer.then_some(cfg.writer_rate),
                            &sequences,
                            cfg.phase,
                        );
                        figures[s].push(ns);
                        walls[s].push(wall);
                        rates[s].extend(rate);
                    }
                }
                for (s, store) in STORES.iter().enumerate() {
                    rows.push(Row {
                        store,
                        objects: n,
                        readers,
                        writer,
                        ns_per_read: median(&figures[s]),
                        wall_ns_per_read: median(&walls[s]),
                        rounds: figures[s].clone(),
                        writer_events_per_sec: (!rates[s].is_empty())
                            .then(|| rates[s].iter().sum::<f64>() / rates[s].len() as f64),
                    });
                }
            }
        }
        progress(n);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sequences_cover_the_key_space_and_differ_per_seed() {
        let seq = index_sequence(1000, 65_536, 1);
        assert!(seq.iter().all(|&i| i < 1000));
        let mut seen = vec![false; 1000];
        seq.iter().for_each(|&i| seen[i as usize] = true);
        assert!(seen.iter().all(|&s| s), "every key is read");
        assert_ne!(seq, index_sequence(1000, 65_536, 2));
        // Not in order: consecutive reads rarely hit neighbouring keys.
        let neighbours = seq.windows(2).filter(|w| w[0].abs_diff(w[1]) <= 1).count();
        assert!(
            neighbours < seq.len() / 100,
            "{neighbours} neighbouring reads"
        );
    }

    #[test]
    fn a_smoke_run_measures_every_store_in_every_configuration() {
        let cfg = Config {
            sizes: vec![10, 50],
            readers: vec![1, 2],
            writer_rate: 10_000.0,
            phase: Duration::from_millis(2),
            rounds: 2,
        };
        let rows = run(&cfg, |_| {});
        assert_eq!(rows.len(), 2 * 2 * 2 * STORES.len());
        for n in [10, 50] {
            for readers in [1, 2] {
                for writer in [false, true] {
                    for store in STORES {
                        let row = find(&rows, store, n, readers, writer).expect("measured");
                        assert!(row.ns_per_read.is_finite() && row.ns_per_read > 0.0);
                        assert!(row.wall_ns_per_read.is_finite() && row.wall_ns_per_read > 0.0);
                        assert_eq!(row.rounds.len(), 2);
                        assert_eq!(row.writer_events_per_sec.is_some(), writer);
                    }
                }
            }
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
