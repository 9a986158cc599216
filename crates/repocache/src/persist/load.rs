//! The warm-start loader: reads a file front to back in batches ([`format::Reader`]) and decodes
//! the objects of the batches it has on several threads while it reads the rest.
//!
//! Decoding JSON into typed objects is most of a warm start, and in a fresh process so is the
//! first touch of fresh memory: the loader never holds the whole file (a few batches of
//! [`BATCH_BYTES`] at a time, their buffers reused), and the file's reading overlaps the
//! decoding instead of preceding it. Nothing is verified until the reader's
//! [`finish`](format::Reader::finish) (the checksum covers the whole file): the loader returns
//! the objects only after it, and a bad file costs at most the decoding done meanwhile.
//!
//! Errors keep the precedence of a whole-file read: the file's (I/O, preamble, checksum,
//! header, body, count), then the cache's (kind, key), then an object's that does not decode.

use std::collections::VecDeque;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::format::{self, FLAG_REDACTED, FormatError, Header, ReadError, Span};
use super::{PersistError, decode_object};

/// At most this many threads decode a warm-start file (this one included).
const DECODE_THREADS: usize = 4;

/// A decoding thread is started for every this many objects (fewer are decoded on the
/// caller's thread alone).
const DECODE_SLICE_MIN: usize = 1000;

/// About this many bytes of records make one batch: 256 KiB, some 250 objects of 1 KB.
const BATCH_BYTES: usize = 256 << 10;

/// Batches in memory at once, per decoding thread: the reader reads ahead this far, then
/// decodes a batch itself.
const BATCHES_PER_THREAD: usize = 2;

/// What a load found, before the caller publishes it.
pub(super) struct Batched<K> {
    /// The file's header (verified: checksum, kind, key).
    pub(super) header: Header,
    /// The objects to serve unverified, in file order.
    pub(super) objects: Vec<Arc<K>>,
    /// Objects stored without their credentials (not decoded: not served until verified).
    pub(super) withheld: usize,
    /// When the last batch was read, since the load started.
    pub(super) read: Duration,
    /// Decoding threads, this one included.
    pub(super) threads: usize,
    /// Batches decoded per thread, this one first.
    pub(super) per_thread: Vec<usize>,
    /// Batch buffers allocated (at most [`BATCHES_PER_THREAD`] per thread; each reused).
    pub(super) buffers: usize,
}

/// A batch on its way to a decoding thread.
struct Job {
    /// Its place among the batches.
    no: usize,
    /// The file index of its first record.
    first: usize,
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// What the reading thread and the decoding threads pass each other.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Buffers of decoded batches, for the reader to fill again.
    free: Vec<Vec<u8>>,
    /// No more jobs will come.
    closed: bool,
}

/// Batches decoded by one thread: their places and their objects.
type Done<K> = Vec<(usize, Vec<Arc<K>>)>;

struct Shared<'a> {
    queue: Mutex<Queue>,
    /// The queue changed: a job came, a buffer came back, or it closed.
    changed: Condvar,
    failed: AtomicBool,
    /// The first object that did not decode.
    error: Mutex<Option<PersistError>>,
    path: &'a Path,
    keep_credentials: bool,
}

impl Shared<'_> {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // No code that can panic runs under the lock.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, Queue>) -> MutexGuard<'g, Queue> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn fail(&self, error: PersistError) {
        self.failed.store(true, Ordering::Relaxed);
        let mut first = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(error);
    }

    /// No more jobs will come: the decoding threads finish what is queued and return.
    fn close(&self) {
        self.queue().closed = true;
        self.changed.notify_all();
    }

    fn withheld(&self, flags: u8) -> bool {
        !self.keep_credentials && flags & FLAG_REDACTED != 0
    }

    /// Decodes `job` into `done` (unless a load already failed), and gives its buffer back.
    fn run<K: DeserializeOwned>(&self, job: Job, done: &mut Done<K>) {
        if !self.failed() {
            let mut objects = Vec::with_capacity(job.spans.len());
            for (i, (flags, json)) in job.spans.iter().enumerate() {
                if self.withheld(*flags) {
                    continue;
                }
                // A `Deserialize` that panics (user code) fails the load like an object that
                // does not decode: a panic must not cross the queue, whose buffers and jobs
                // the other threads wait for.
                let json = &job.bytes[json.clone()];
                let decoded =
                    std::panic::catch_unwind(AssertUnwindSafe(|| decode_object::<K>(json)))
                        .unwrap_or_else(|_| Err("the decoder panicked".to_owned()));
                match decoded {
                    Ok(object) => objects.push(Arc::new(object)),
                    Err(message) => {
                        self.fail(PersistError::Object {
                            path: self.path.to_path_buf(),
                            index: job.first + i,
                            message,
                        });
                        break;
                    }
                }
            }
            if !self.failed() {
                done.push((job.no, objects));
            }
        }
        self.queue().free.push(job.bytes);
        self.changed.notify_all();
    }

    /// A decoding thread: decodes jobs until the queue is closed and empty.
    fn work<K: DeserializeOwned>(&self) -> Done<K> {
        let mut done = Vec::new();
        loop {
            let mut queue = self.queue();
            let job = loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break Some(job);
                }
                if queue.closed {
                    break None;
                }
                queue = self.wait(queue);
            };
            drop(queue);
            match job {
                Some(job) => self.run(job, &mut done),
                None => return done,
            }
        }
    }

    /// The reading thread: reads batches and queues them, at most `limit` in memory at once
    /// (at the limit it decodes a queued batch itself, into `done`, or waits for a buffer).
    /// Returns the objects withheld and the buffers allocated.
    fn produce<K: DeserializeOwned, R: Read>(
        &self,
        reader: &mut format::Reader<R>,
        limit: usize,
        done: &mut Done<K>,
    ) -> Result<(usize, usize), ReadError> {
        let (mut buffers, mut no, mut first, mut withheld) = (0, 0, 0, 0);
        while !self.failed() {
            let mut bytes = loop {
                let mut queue = self.queue();
                if let Some(bytes) = queue.free.pop() {
                    break bytes;
                }
                if buffers < limit {
                    buffers += 1;
                    break Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 4);
                }
                if let Some(job) = queue.jobs.pop_front() {
                    drop(queue);
                    self.run(job, done);
                } else {
                    drop(self.wait(queue));
                }
            };
            let mut spans = Vec::new();
            if !reader.next_batch(&mut bytes, &mut spans, BATCH_BYTES)? {
                break;
            }
            withheld += spans.iter().filter(|(f, _)| self.withheld(*f)).count();
            let records = spans.len();
            self.queue().jobs.push_back(Job {
                no,
                first,
                bytes,
                spans,
            });
            self.changed.notify_one();
            no += 1;
            first += records;
        }
        Ok((withheld, buffers))
    }
}

/// A [`format::Reader`]'s error as a load reports it: naming the file.
pub(super) fn read_error(path: &Path, error: ReadError) -> PersistError {
    match error {
        ReadError::Io(source) => PersistError::Io {
            path: path.to_path_buf(),
            source,
        },
        ReadError::Format(source) => PersistError::Format {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Closes the queue when dropped (see [`Shared::close`]).
struct Closing<'s, 'p>(&'s Shared<'p>);

impl Drop for Closing<'_, '_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Loads the file `reader` reads (`path` names it in errors): `check` says whether its header
/// belongs to the cache. Objects stored without their credentials are withheld (not decoded)
/// unless `keep_credentials`.
pub(super) fn load<K, R>(
    mut reader: format::Reader<R>,
    path: &Path,
    keep_credentials: bool,
    check: impl Fn(&Header) -> Result<(), FormatError>,
) -> Result<Batched<K>, PersistError>
where
    K: DeserializeOwned + Send + Sync,
    R: Read,
{
    let started = Instant::now();
    let format_error = |source| PersistError::Format {
        path: path.to_path_buf(),
        source,
    };
    let read_error = |error| read_error(path, error);
    // A header that does not parse or is another cache's: nothing to decode; the file's own
    // errors (its checksum first) come before the cache's.
    let objects = match reader.header().map(|h| check(h).map(|()| h.objects)) {
        Some(Ok(objects)) => objects,
        Some(Err(refused)) => {
            reader.finish().map_err(read_error)?;
            return Err(format_error(refused));
        }
        // `finish` refuses a header that did not parse (the `Ok` arm is never taken).
        None => {
            return Err(reader.finish().map_or_else(read_error, |_| {
                format_error(FormatError::Header("unreadable".to_owned()))
            }));
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(DECODE_THREADS)
        .min(usize::try_from(objects).unwrap_or(usize::MAX) / DECODE_SLICE_MIN + 1);
    let shared = Shared {
        queue: Mutex::new(Queue::default()),
        changed: Condvar::new(),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        path,
        keep_credentials,
    };
    let (parts, produced, read) = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| shared.work::<K>()))
            .collect();
        // Should this thread panic (a bug: decoders' panics are caught), the queue closes as it
        // unwinds, so that the scope's join sees the helpers return instead of waiting forever.
        let closing = Closing(&shared);
        let mut mine = Vec::new();
        let produced = shared.produce(&mut reader, threads * BATCHES_PER_THREAD, &mut mine);
        let read = started.elapsed();
        if produced.is_err() {
            shared.failed.store(true, Ordering::Relaxed);
        }
        drop(closing);
        mine.extend(shared.work::<K>());
        let mut parts = vec![mine];
        for helper in helpers {
            match helper.join() {
                Ok(part) => parts.push(part),
                Err(_) => shared.fail(PersistError::Object {
                    path: path.to_path_buf(),
                    index: 0,
                    message: "the decoder panicked".to_owned(),
                }),
            }
        }
        (parts, produced, read)
    });
    let (withheld, buffers) = produced.map_err(read_error)?;
    let header = reader.finish().map_err(read_error)?;
    let first_error = shared
        .error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(error) = first_error {
        return Err(error);
    }
    let per_thread = parts.iter().map(Vec::len).collect();
    let mut batches: Vec<(usize, Vec<Arc<K>>)> = parts.into_iter().flatten().collect();
    batches.sort_unstable_by_key(|(no, _)| *no);
    let mut objects = Vec::with_capacity(batches.iter().map(|(_, b)| b.len()).sum());
    for (_, batch) in batches {
        objects.extend(batch);
    }
    Ok(Batched {
        header,
        objects,
        withheld,
        read,
        threads,
        per_thread,
        buffers,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::persist::format::tests::header;
    use crate::persist::format::{Record, encode};

    fn config_map(i: usize) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("cm-{i:05}")),
                namespace: Some("default".into()),
                resource_version: Some(i.to_string()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("k".into(), "v".repeat(i % 200))])),
            ..ConfigMap::default()
        }
    }

    /// `n` ConfigMaps of 100 to 300 bytes: about 2.6 MB at 12,000, ten batches and more.
    fn records(n: usize, redacted: impl Fn(usize) -> bool) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                flags: if redacted(i) { FLAG_REDACTED } else { 0 },
                json: serde_json::to_vec(&config_map(i)).unwrap(),
            })
            .collect()
    }

    fn kind_is_config_map(h: &Header) -> Result<(), FormatError> {
        format::check(h, "v1", "ConfigMap", "srv", "abc")
    }

    fn load_bytes(bytes: &[u8], keep: bool) -> Result<Batched<ConfigMap>, PersistError> {
        let reader = format::Reader::new(bytes, bytes.len() as u64).map_err(|e| match e {
            ReadError::Format(source) => PersistError::Format {
                path: "f".into(),
                source,
            },
            ReadError::Io(e) => panic!("{e}"),
        })?;
        load(reader, Path::new("f"), keep, kind_is_config_map)
    }

    /// Thousands of objects over many batches and every decoding thread come back whole and in
    /// file order; objects stored without credentials are withheld (counted, not decoded)
    /// unless kept.
    #[test]
    fn objects_come_back_in_file_order_across_batches_and_threads() {
        let n = 12_000;
        let bytes = encode(&header(), &records(n, |i| i % 7 == 3));
        // More batches than any thread count may hold in memory at once.
        let most = DECODE_THREADS * BATCHES_PER_THREAD;
        assert!(
            bytes.len() > (most + 1) * BATCH_BYTES,
            "{} bytes: too few batches",
            bytes.len()
        );
        let loaded = load_bytes(&bytes, false).unwrap();
        let expected: Vec<ConfigMap> = (0..n).filter(|i| i % 7 != 3).map(config_map).collect();
        assert_eq!(loaded.withheld, n - expected.len());
        assert_eq!(loaded.header.objects, n as u64);
        assert!(
            loaded
                .objects
                .iter()
                .map(|o| o.as_ref())
                .eq(expected.iter())
        );
        let batches: usize = loaded.per_thread.iter().sum();
        assert!(batches > most, "{:?}", loaded.per_thread);
        assert_eq!(loaded.per_thread.len(), loaded.threads);
        // The file is never read ahead beyond a few batches: buffers are reused.
        assert!(
            (1..=loaded.threads * BATCHES_PER_THREAD).contains(&loaded.buffers),
            "{} buffers for {} threads",
            loaded.buffers,
            loaded.threads
        );
        assert!(
            loaded.buffers < batches,
            "{} buffers, {batches} batches",
            loaded.buffers
        );
        let kept = load_bytes(&bytes, true).unwrap();
        assert_eq!(kept.withheld, 0);
        assert!(
            kept.objects
                .iter()
                .map(|o| o.as_ref())
                .eq((0..n).map(config_map).collect::<Vec<_>>().iter())
        );
    }

    /// An object that does not decode fails the load with its index in the file, however late
    /// its batch; a checksum that does not match fails it first (the file is damaged, not the
    /// kind changed), and so does another cache's header.
    #[test]
    fn errors_keep_the_whole_file_precedence() {
        let n = 4000;
        let bad = 3456;
        let mut with_bad = records(n, |_| false);
        with_bad[bad].json = br#"{"metadata":{"name":5}}"#.to_vec();
        let bytes = encode(&header(), &with_bad);
        match load_bytes(&bytes, false) {
            Err(PersistError::Object { index, .. }) => assert_eq!(index, bad),
            other => panic!("{:?}", other.map(|l| l.objects.len())),
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            load_bytes(&flipped, false),
            Err(PersistError::Format {
                source: FormatError::Checksum { .. },
                ..
            })
        ));
        let other = encode(
            &Header {
                kind: "Secret".into(),
                ..header()
            },
            &records(10, |_| false),
        );
        assert!(matches!(
            load_bytes(&other, false),
            Err(PersistError::Format {
                source: FormatError::Kind { .. },
                ..
            })
        ));
        let mut other_flipped = other.clone();
        let last = other_flipped.len() - 1;
        other_flipped[last] ^= 1;
        assert!(matches!(
            load_bytes(&other_flipped, false),
            Err(PersistError::Format {
                source: FormatError::Checksum { .. },
                ..
            })
        ));
    }

    /// Decodes like a ConfigMap, and panics on an object with a `boom` field.
    #[derive(Debug)]
    struct Boom;

    impl<'de> serde::Deserialize<'de> for Boom {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let value = serde_json::Value::deserialize(d)?;
            assert!(value.get("boom").is_none(), "boom");
            Ok(Boom)
        }
    }

    /// A `Deserialize` that panics (user code), on any decoding thread, fails the load with
    /// the object's index like an object that does not decode, and the load returns: no thread
    /// waits forever for a buffer or a job the panicking one held.
    #[test]
    fn a_panicking_decoder_fails_the_load_and_never_hangs_it() {
        for bad in [0, 1234, 2999] {
            let mut with_boom = records(3000, |_| false);
            with_boom[bad].json = br#"{"boom":1}"#.to_vec();
            let bytes = encode(&header(), &with_boom);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let reader = format::Reader::new(&bytes[..], bytes.len() as u64).unwrap();
                let loaded = load::<Boom, _>(reader, Path::new("f"), false, kind_is_config_map);
                let _ = tx.send(loaded.map(|l| l.objects.len()));
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Err(PersistError::Object { index, message, .. })) => {
                    assert_eq!(index, bad);
                    assert!(message.contains("panicked"), "{message}");
                }
                Ok(other) => panic!("object {bad}: {:?}", other.map_err(|e| e.to_string())),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("object {bad}: the load hung")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("object {bad}: the panic crossed the load")
                }
            }
        }
    }

    /// Reads `bytes`, and panics once more than `limit` of them were read.
    struct PanicsAfter {
        bytes: Vec<u8>,
        at: usize,
        limit: usize,
    }

    impl Read for PanicsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(self.at <= self.limit, "the reader panicked");
            let n = buf.len().min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// A panic on the reading thread (the file's `Read`, or a bug) reaches the caller as a
    /// panic, and the decoding threads, which wait for batches, return: the load never hangs.
    #[test]
    fn a_panic_while_reading_reaches_the_caller_and_never_hangs_the_load() {
        let bytes = encode(&header(), &records(12_000, |_| false));
        let len = bytes.len();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(move || {
                let source = PanicsAfter {
                    bytes,
                    at: 0,
                    limit: len / 2,
                };
                let reader = format::Reader::new(source, len as u64).unwrap();
                load::<ConfigMap, _>(reader, Path::new("f"), false, kind_is_config_map).is_ok()
            });
            let _ = tx.send(outcome.is_err());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(panicked) => assert!(panicked, "the load returned instead of panicking"),
            Err(e) => panic!("the load hung ({e})"),
        }
    }
}
