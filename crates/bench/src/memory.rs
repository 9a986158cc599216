//! Heap use per cached object and its peak during a relist, measured by the
//! `repocache-bench-memory` binary with a counting global allocator, which prints one
//! [`MemoryReport`] as JSON for the report binary to read.
//!
//! Bytes are the sizes the program asked the allocator for (not the allocator's own rounding
//! and headers), the same for every store.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::fixture;
use crate::sides::{KubeStore, LockedMap, Repocache, WriteSide};

/// Reads the counting allocator.
pub trait Meter {
    /// Bytes allocated now.
    fn current(&self) -> usize;
    /// The most bytes allocated at once since the last [`reset_peak`](Self::reset_peak).
    fn peak(&self) -> usize;
    /// Starts a new peak window at the current usage.
    fn reset_peak(&self);
}

/// The memory figures of one store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreMemory {
    /// Which store.
    pub store: String,
    /// Heap bytes held by the store with all objects cached.
    pub steady_bytes: u64,
    /// `steady_bytes / objects`.
    pub per_object: f64,
    /// The most heap bytes held by the store at any moment of a full relist (every object at a
    /// new resourceVersion), including the objects arriving one at a time from the relist.
    pub relist_peak_bytes: u64,
}

/// What the memory binary reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Objects cached.
    pub objects: usize,
    /// Heap bytes of one fixture object in an `Arc` (the object's own share of every store).
    pub object_bytes: u64,
    /// One entry per store.
    pub stores: Vec<StoreMemory>,
}

fn delta(after: usize, before: usize) -> u64 {
    after.saturating_sub(before) as u64
}

fn measure<W: WriteSide>(meter: &dyn Meter, n: usize) -> StoreMemory {
    let base = meter.current();
    let mut side = W::new();
    side.relist(&mut (0..n).map(|i| fixture::repository(i, 1 + i as u64)));
    let steady = delta(meter.current(), base);
    meter.reset_peak();
    side.relist(&mut (0..n).map(|i| fixture::repository(i, 1_000_000 + i as u64)));
    let peak = delta(meter.peak(), base);
    drop(side);
    StoreMemory {
        store: W::LABEL.to_owned(),
        steady_bytes: steady,
        per_object: steady as f64 / n.max(1) as f64,
        relist_peak_bytes: peak,
    }
}

/// Measures every store at `n` objects.
pub fn run(meter: &dyn Meter, n: usize) -> MemoryReport {
    let before = meter.current();
    let one = Arc::new(fixture::repository(1, 1));
    let object_bytes = delta(meter.current(), before);
    drop(one);
    MemoryReport {
        objects: n,
        object_bytes,
        stores: vec![
            measure::<Repocache>(meter, n),
            measure::<KubeStore>(meter, n),
            measure::<LockedMap>(meter, n),
        ],
    }
}
