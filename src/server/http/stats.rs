//! The request path's figures as both of their readers see them: the result-code
//! slots, the latency histogram and the counters' snapshot. The hub
//! ([`super::events`]) counts into them; `/metrics` ([`super::metrics`]) and
//! `/api/stats` read them. Kept apart so that neither of those imports the other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::proto::index::Op;

/// Result codes counted apart per operation: 0..=4 (the most any operation defines,
/// PROTOCOL.md section 1), and one slot for any other byte.
pub(crate) const RESULTS: usize = 6;

/// The counter slot of result `code`.
pub(crate) fn result_index(code: u8) -> usize {
    usize::from(code).min(RESULTS - 1)
}

/// Upper bounds (seconds) of the latency buckets: 100 µs (a code reply on a quiet
/// server) to 5 s (a large list on a loaded one).
pub(super) const LATENCY_BOUNDS: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// A fixed-bucket histogram of durations; lock-free, one add per bucket hit.
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last is past every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (the last for +Inf) and the sum in seconds.
    pub(super) fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (cumulative, sum)
    }
}

/// The counters of `/api/stats` and `/metrics` that come from the request path.
pub(crate) struct Counters {
    /// Per operation: the total, and the count per result code index.
    pub(crate) requests: Vec<(Op, u64, [u64; RESULTS])>,
    pub(crate) per_second: f64,
    pub(crate) uptime: Duration,
    pub(crate) event_clients: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (cum, sum) = h.snapshot();
        assert_eq!(cum[0], 1, "50 µs <= 100 µs");
        assert_eq!(cum[4], 1, "3 ms > 2.5 ms");
        assert_eq!(cum[5], 2, "3 ms <= 5 ms");
        assert_eq!(cum[LATENCY_BOUNDS.len() - 1], 2);
        assert_eq!(*cum.last().unwrap(), 3, "60 s only in +Inf");
        assert!((sum - 60.003_05).abs() < 1e-6, "{sum}");
    }
}
