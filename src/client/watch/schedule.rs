//! When a watch searches next: a base interval (`--watch-interval`), jittered so
//! that shells started together do not search together, doubled after each search
//! that finds nothing new (or fails) up to [`MAX_BACKOFF`], back to the base when
//! something new is found, and never less than [`FLOOR`] after the previous search
//! of the same pattern, whatever the settings.
//!
//! Owns: the arithmetic of one pattern's timing, on instants given by the caller (no
//! clock read here, so it is tested without waiting). Does not own: the searches
//! (`poll`).

use std::time::{Duration, Instant};

/// Default of `--watch-interval`, in seconds: a new file is picked up within a
/// minute or so, and an idle watch costs the index one request a minute.
pub(crate) const DEFAULT_INTERVAL_SECS: u64 = 60;

/// Smallest `--watch-interval`: the floor below.
pub(crate) const MIN_INTERVAL_SECS: u64 = 5;

/// Largest `--watch-interval`: the backoff's ceiling.
pub(crate) const MAX_INTERVAL_SECS: u64 = 900;

/// Never two SEARCHes of one pattern closer than this (issue 28 item 4): a watch is
/// a background chore and must not load the index like a user typing.
pub(crate) const FLOOR: Duration = Duration::from_secs(MIN_INTERVAL_SECS);

/// The longest wait between two searches of a pattern that keeps finding nothing
/// (15 min): a file published meanwhile is still picked up the same lab session.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(MAX_INTERVAL_SECS);

/// Each wait is the interval times a factor in `1 +- JITTER`.
const JITTER: f64 = 0.2;

/// The timing of one watched pattern.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    base: Duration,
    /// The wait after the next search, before jitter.
    current: Duration,
    next: Instant,
    last: Option<Instant>,
}

impl Schedule {
    /// A pattern due at once (or once the floor has passed since its `last`
    /// search), waiting `base` between searches while they find something.
    pub(super) fn new(base: Duration, now: Instant, last: Option<Instant>) -> Schedule {
        Schedule {
            base,
            current: base,
            next: last.map_or(now, |l| (l + FLOOR).max(now)),
            last,
        }
    }

    /// When the next search is due.
    pub(super) fn next(&self) -> Instant {
        self.next
    }

    /// When the last search was sent.
    pub(super) fn last(&self) -> Option<Instant> {
        self.last
    }

    /// Whether a search may be sent at `now`: it is due, and the floor has passed.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.next && self.last.is_none_or(|l| now.duration_since(l) >= FLOOR)
    }

    /// A search was sent at `now`: `found` when it brought a match not seen before.
    /// The next one is due after the current interval (jittered by `rng`, at least
    /// the floor); the interval doubles when nothing new came, up to the ceiling.
    pub(super) fn searched(&mut self, now: Instant, found: bool, rng: &mut fastrand::Rng) {
        if found {
            self.current = self.base;
        }
        let wait = jittered(self.current, rng).max(FLOOR);
        self.last = Some(now);
        self.next = now + wait;
        if !found {
            self.current = (self.current * 2).min(MAX_BACKOFF.max(self.base));
        }
    }
}

/// `d` times a random factor in `[1 - JITTER, 1 + JITTER]`.
fn jittered(d: Duration, rng: &mut fastrand::Rng) -> Duration {
    d.mul_f64(1.0 + JITTER * (2.0 * rng.f64() - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_are_jittered_within_20_percent() {
        let mut rng = fastrand::Rng::with_seed(7);
        let base = 60 * S;
        let (mut low, mut high) = (base, base);
        for _ in 0..2000 {
            let w = jittered(base, &mut rng);
            assert!(w >= 48 * S && w <= 72 * S, "{w:?}");
            low = low.min(w);
            high = high.max(w);
        }
        // The jitter is used, both ways.
        assert!(low < 50 * S && high > 70 * S, "{low:?} {high:?}");
    }

    #[test]
    fn backs_off_while_nothing_is_found_and_resets_when_something_is() {
        let mut rng = fastrand::Rng::with_seed(1);
        let t0 = Instant::now();
        let mut s = Schedule::new(60 * S, t0, None);
        assert!(s.due(t0));
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            s.searched(now, false, &mut rng);
            waits.push(s.next() - now);
            now = s.next();
        }
        // 60, 120, 240, 480, then the 15 min ceiling: each within the jitter.
        let bases = [60, 120, 240, 480, 900, 900, 900, 900];
        for (w, b) in waits.iter().zip(bases) {
            let b = b as f64;
            assert!(
                w.as_secs_f64() >= b * 0.8 && w.as_secs_f64() <= b * 1.2,
                "{waits:?}"
            );
        }
        s.searched(now, true, &mut rng);
        let w = (s.next() - now).as_secs_f64();
        assert!((48.0..=72.0).contains(&w), "{w}");
    }

    #[test]
    fn never_two_searches_of_a_pattern_within_5_s_whatever_the_interval() {
        let mut rng = fastrand::Rng::with_seed(3);
        let t0 = Instant::now();
        // A base far below the option's range, as a bug or a test might set it.
        let mut s = Schedule::new(Duration::from_millis(1), t0, None);
        let mut now = t0;
        for i in 0..100 {
            s.searched(now, i % 2 == 0, &mut rng);
            assert!(s.next() - now >= FLOOR);
            assert!(!s.due(now + FLOOR - Duration::from_millis(1)));
            now = s.next();
            assert!(s.due(now));
        }
        // The lowest setting, jittered down to 4 s, still waits 5.
        let mut s = Schedule::new(FLOOR, t0, None);
        for _ in 0..200 {
            s.searched(t0, true, &mut rng);
            assert!(s.next() - t0 >= FLOOR);
            assert!(s.next() - t0 <= FLOOR.mul_f64(1.2));
        }
        // Watched again 1 s after its last search: due 4 s later, not at once.
        let later = t0 + S;
        let again = Schedule::new(S, later, Some(t0));
        assert!(!again.due(later));
        assert_eq!(again.next(), t0 + FLOOR);
    }
}
