//! A cheap monotonic clock: instants stored as nanoseconds since an epoch, so that a snapshot's
//! confirmation time fits in an atomic and can move forward without a lock.

use std::time::{Duration, Instant};

/// How far before its creation a clock's epoch lies (when the platform's `Instant` reaches
/// back that far): 400 days.
const BACKDATE: Duration = Duration::from_secs(400 * 24 * 3600);

/// Converts between [`Instant`]s and nanoseconds since a fixed epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose epoch lies up to [`BACKDATE`] before now, so that an instant that long
    /// ago (a warm-start file's write time) is representable.
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        let mut back = BACKDATE;
        let epoch = loop {
            if let Some(epoch) = now.checked_sub(back) {
                break epoch;
            }
            if back.is_zero() {
                break now;
            }
            back /= 2;
        };
        Self { epoch }
    }

    /// The current instant.
    pub(crate) fn now(&self) -> Instant {
        Instant::now()
    }

    /// Nanoseconds from the epoch to `at` (0 for instants before the epoch; saturating).
    pub(crate) fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant `nanos` after the epoch.
    pub(crate) fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }
}

/// `at + d`, or `None` when that is beyond what an [`Instant`] can represent ("never").
pub(crate) fn later(at: Instant, d: Duration) -> Option<Instant> {
    at.checked_add(d)
}

/// `at + d`, saturating: an instant that cannot be represented becomes the latest one that can
/// be found by halving `d` (for a display or a `since` field, never for a deadline).
pub(crate) fn saturating_add(at: Instant, d: Duration) -> Instant {
    let mut d = d;
    loop {
        if let Some(t) = at.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}
