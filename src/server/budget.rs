//! The reply budget: what list replies of the index port and the dashboard's JSON
//! replies may hold in memory at once, and how many are built at once.
//!
//! Owns: the byte budget ([`REPLY_BUDGET`]), the builder gate ([`BUILDERS`]), and the
//! guards that give both back however a connection ends (also by a panic, which
//! the connection thread catches). Does not own: what a reply holds (`registry`,
//! `http`), writing it (`server`, `net::http`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes that all replies waiting to be written may hold at once. A LIST_CONTENT or
/// SEARCH reply is built whole before it is written (one write, PROTOCOL.md) and can
/// be megabytes for a request of 30 bytes; without a cap, clients that send such
/// requests and never read pin a copy each (100 of them took 1.5 GB, issue 14). 64 MiB
/// holds six 10 MB replies at once, far more than a lab's clients read concurrently,
/// and keeps the server well under 256 MiB with its registry. Past it a list request
/// is answered with its any-other-error code (the dashboard: 503).
pub(crate) const REPLY_BUDGET: usize = 64 * 1024 * 1024;

/// Replies built at once. Building is CPU-bound and takes microseconds for a lab's
/// lists, milliseconds for the largest; the memory a reply holds before it is
/// counted in [`REPLY_BUDGET`] is bounded by this many replies; and however many
/// clients ask, list building takes at most this many cores, so the other requests
/// (REGISTER, PUBLISH...) keep CPU time of their own. Measured on 2 cores (`make
/// bench`, flood section, REGISTER/s kept): with 2 builders 0.58 under 8 SEARCH
/// flooders, 0.59 under 32 dashboard flooders, 0.46 under 64 LIST_CONTENT
/// flooders of a 20,000-file user; with 1, 0.61, 0.79 and 0.60. The index
/// section's LIST_CONTENT mix (64 clients, 10 files) was no slower with 1 in the
/// same run (5,027 against 4,197 ops/s, a noisy machine).
pub(crate) const BUILDERS: usize = 1;

/// Replies over this size are counted in [`REPLY_BUDGET`]; smaller ones (every code
/// reply, short lists) cost less than the connection's own buffers.
pub(crate) const SMALL_REPLY: usize = 4096;

/// The reply memory budget: bytes reserved by replies being built or written.
pub(crate) struct ReplyBudget {
    used: AtomicUsize,
    builders: parking_lot::Mutex<usize>,
    builder_freed: parking_lot::Condvar,
    /// Replies that waited for a builder, and requests refused with the budget
    /// spent (for `/metrics`).
    waits: AtomicU64,
    refusals: AtomicU64,
}

/// A reply built within the budget: its bytes, and the part of the budget they hold
/// until it is dropped (after the reply is written).
pub(crate) struct Built<'a> {
    pub(crate) bytes: Vec<u8>,
    pub(crate) held: Reservation<'a>,
}

/// Bytes of a [`ReplyBudget`] held by one reply, released when dropped.
pub(crate) struct Reservation<'a> {
    budget: &'a ReplyBudget,
    bytes: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

impl Reservation<'_> {
    /// Holds `n` more bytes (a copy of the reply made to send it); false (and
    /// nothing more held) when the budget cannot take them, counted as a refusal.
    pub(crate) fn also_hold(&mut self, n: usize) -> bool {
        if n <= SMALL_REPLY {
            return true;
        }
        if !self.budget.reserve(n) {
            self.budget.refusals.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.bytes += n;
        true
    }
}

impl Default for ReplyBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyBudget {
    pub(crate) fn new() -> Self {
        ReplyBudget {
            used: AtomicUsize::new(0),
            builders: parking_lot::Mutex::new(0),
            builder_freed: parking_lot::Condvar::new(),
            waits: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
        }
    }

    /// Replies that waited for a builder.
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Requests refused because the budget was spent.
    pub(crate) fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Builds a reply with `build` as one of at most [`BUILDERS`] at once, and not
    /// at all while the budget is full, then holds its size in the budget. `None`:
    /// the budget is spent (counted as a refusal); `Err`: what `build` said.
    pub(crate) fn build_gated<E>(
        &self,
        build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Built<'_>>, E> {
        self.building(|| {
            if self.is_full() {
                self.refusals.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            self.build_now(build)
        })
    }

    /// [`ReplyBudget::build_gated`] without the gate, for a reply that is a copy of
    /// one already built (LIST_USERS copies the registry's cached listing).
    pub(crate) fn build_now<E>(
        &self,
        build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Built<'_>>, E> {
        let mut bytes = Vec::with_capacity(128);
        build(&mut bytes)?;
        let mut held = Reservation {
            budget: self,
            bytes: 0,
        };
        if bytes.len() > SMALL_REPLY {
            bytes.shrink_to_fit();
            if !held.also_hold(bytes.capacity()) {
                return Ok(None);
            }
        }
        Ok(Some(Built { bytes, held }))
    }

    /// Reserves `n` bytes; false (nothing reserved) when that would pass the budget.
    fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|&t| t <= REPLY_BUDGET)
            })
            .is_ok()
    }

    /// Whether too little is left for anything but a small reply.
    fn is_full(&self) -> bool {
        self.used.load(Ordering::SeqCst) + SMALL_REPLY > REPLY_BUDGET
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::SeqCst);
    }

    /// Runs `build` as one of at most [`BUILDERS`] at once. The slot is given back
    /// however `build` ends: a panic while building (the connection thread catches
    /// it) must not keep a slot for ever, or [`BUILDERS`] of them wedge every later
    /// list reply (issue 26, item 12).
    fn building<T>(&self, build: impl FnOnce() -> T) -> T {
        let mut n = self.builders.lock();
        if *n >= BUILDERS {
            self.waits.fetch_add(1, Ordering::Relaxed);
        }
        while *n >= BUILDERS {
            self.builder_freed.wait(&mut n);
        }
        *n += 1;
        drop(n);
        let _slot = BuilderSlot(self);
        build()
    }
}

/// One of the [`BUILDERS`] slots of a [`ReplyBudget`], given back when dropped
/// (also while unwinding).
struct BuilderSlot<'a>(&'a ReplyBudget);

impl Drop for BuilderSlot<'_> {
    fn drop(&mut self) {
        *self.0.builders.lock() -= 1;
        self.0.builder_freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Issue 26 item 12: a build that panics gives its slot back. Before the drop
    /// guard, two panics took both slots and the third build waited for ever.
    #[test]
    fn panics_while_building_do_not_keep_builder_slots() {
        let budget = Arc::new(ReplyBudget::new());
        for _ in 0..BUILDERS {
            let b = Arc::clone(&budget);
            let r = std::thread::spawn(move || {
                let _ = b.build_gated(|_: &mut Vec<u8>| -> Result<(), ()> {
                    panic!("injected build panic")
                });
            });
            assert!(r.join().is_err(), "the build did not panic");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let b = Arc::clone(&budget);
        std::thread::spawn(move || {
            let built = b.build_gated(|out| -> Result<(), ()> {
                out.push(7);
                Ok(())
            });
            tx.send(built.ok().flatten().map(|b| b.bytes)).unwrap()
        });
        let built = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            built,
            Ok(Some(vec![7])),
            "a build after panicking builds was wedged"
        );
        assert_eq!(*budget.builders.lock(), 0);
    }

    #[test]
    fn replies_hold_the_budget_until_dropped_and_past_it_are_refused() {
        let budget = ReplyBudget::new();
        let big = |n: usize| {
            move |out: &mut Vec<u8>| -> Result<(), ()> {
                out.resize(n, 0);
                Ok(())
            }
        };
        let small = budget.build_gated(big(100)).unwrap().unwrap();
        assert_eq!(budget.used(), 0, "a small reply is not counted");
        let a = budget.build_gated(big(REPLY_BUDGET / 2)).unwrap().unwrap();
        assert_eq!(budget.used(), REPLY_BUDGET / 2);
        assert!(
            budget
                .build_gated(big(REPLY_BUDGET / 2 + 1))
                .unwrap()
                .is_none()
        );
        assert_eq!(budget.refusals(), 1);
        drop(a);
        assert_eq!(budget.used(), 0);
        let mut b = budget.build_now(big(SMALL_REPLY + 1)).unwrap().unwrap();
        assert!(b.held.also_hold(REPLY_BUDGET / 2));
        assert!(!b.held.also_hold(REPLY_BUDGET / 2));
        drop(b);
        drop(small);
        assert_eq!(budget.used(), 0);
    }
}
