//! client-go's client-side rate limiter: a token bucket (`golang.org/x/time/rate`) that starts
//! full with `burst` tokens and refills at `qps` tokens per second. client-go's defaults are 5
//! requests/s with a burst of 10: the 11th request of a burst waits 200 ms, the 12th 400 ms...

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// client-go's default requests per second.
pub const DEFAULT_QPS: f64 = 5.0;
/// client-go's default burst.
pub const DEFAULT_BURST: u32 = 10;

#[derive(Debug)]
struct State {
    /// Tokens available at `at` (negative: reserved ahead).
    tokens: f64,
    at: Instant,
}

/// A token bucket. Each [`acquire`](Self::acquire) takes one token, waiting for it when the
/// bucket is empty; waiters are served in order (a reservation is made at once, then slept).
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<State>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `qps` per second. A `qps` that is not
    /// positive and finite disables limiting (like client-go's negative QPS).
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            state: Mutex::new(State {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// Whether the bucket limits at all.
    pub fn is_limiting(&self) -> bool {
        self.qps.is_finite() && self.qps > 0.0
    }

    /// Reserves one token at `now` and returns how long its holder must wait.
    pub fn reserve_at(&self, now: Instant) -> Duration {
        if !self.is_limiting() {
            return Duration::ZERO;
        }
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.qps).min(self.burst);
        state.at = state.at.max(now);
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.qps)
        }
    }

    /// Takes one token, sleeping until it is available; returns the time waited.
    pub async fn acquire(&self) -> Duration {
        let wait = self.reserve_at(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_free_then_requests_are_spaced_at_the_rate() {
        let bucket = TokenBucket::new(5.0, 10);
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(bucket.reserve_at(now), Duration::ZERO);
        }
        assert_eq!(ms(bucket.reserve_at(now)), 200);
        assert_eq!(ms(bucket.reserve_at(now)), 400);
        // 100 ms later half a token has come back: the debt is 1.5 tokens, plus this one.
        assert_eq!(ms(bucket.reserve_at(now + Duration::from_millis(100))), 500);
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_up_to_its_burst_only() {
        let bucket = TokenBucket::new(5.0, 2);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        assert_eq!(ms(bucket.reserve_at(later)), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_sleeps_the_reserved_time() {
        let bucket = TokenBucket::new(10.0, 1);
        let start = Instant::now();
        assert_eq!(bucket.acquire().await, Duration::ZERO);
        let waited = bucket.acquire().await;
        assert_eq!(ms(waited), 100);
        assert_eq!(ms(Instant::now() - start), 100);
    }

    #[test]
    fn a_non_positive_rate_does_not_limit() {
        let bucket = TokenBucket::new(0.0, 1);
        assert!(!bucket.is_limiting());
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(bucket.reserve_at(now), Duration::ZERO);
        }
    }
}
