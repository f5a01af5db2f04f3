//! This server's in-memory copy of the shared registry, fed from the changes stream.
//!
//! Owns: the follower thread (a blocking `XREAD` of the stream after the last change
//! applied, each entry applied to the registry in stream order), the number of the
//! last change applied and waiting for it, rebuilding from the snapshot plus the
//! stream (at start, after a gap, or when Redis lost what was applied), and writing
//! snapshots (by the one server holding the snapshot lease). Does not own: the keys
//! and scripts (`redis`), the rules (the registry applies what the stream says, and a
//! change it refuses means the copy diverged: it is rebuilt).
//!
//! The follower is the only writer of the registry in this mode, so between two
//! entries the registry is exactly the shared state at the last applied number: a
//! snapshot taken there by the follower itself is consistent without any lock.

use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use super::redis::{self, DataError, RedisStore, StoreError, Stream};
use crate::net::Shutdown;
use crate::server::change::Change;
use crate::server::journal::{Replay, RestoredUser, SnapshotUser};
use crate::server::registry::Registry;

/// How long one `XREAD` blocks: also the longest a stop waits for the follower.
const BLOCK: Duration = Duration::from_millis(500);

/// Longest pause between two attempts to reach Redis again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The snapshot format's version (header `peerdex_snapshot`).
const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    peerdex_snapshot: u32,
    /// The last change the snapshot includes.
    seq: u64,
    users: u64,
}

/// How the follower keeps the stream short.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotPolicy {
    /// Changes past the last snapshot after which a new one is written.
    pub every: u64,
    /// Who this server is (the lease's holder).
    pub holder: String,
}

/// The last change applied, and a way to wait for one.
pub(crate) struct Replica {
    registry: Arc<Registry>,
    applied: Mutex<u64>,
    advanced: Condvar,
}

impl Replica {
    /// Builds the copy from the store's snapshot and stream (before the server
    /// answers anything); returns it with the number of the last change applied.
    pub(crate) fn open(
        registry: Arc<Registry>,
        store: &RedisStore,
    ) -> Result<(Arc<Replica>, u64), StoreError> {
        let mut conn = store.connect(store.timeout())?;
        // A snapshot stored (and the stream trimmed) while it was read shows as a
        // gap: read again.
        let mut attempt = 0;
        let (seq, _) = loop {
            attempt += 1;
            match rebuild(store, &mut conn, &registry) {
                Err(StoreError::Data { .. }) if attempt < 3 => continue,
                done => break done?,
            }
        };
        let replica = Arc::new(Replica {
            registry,
            applied: Mutex::new(seq),
            advanced: Condvar::new(),
        });
        Ok((replica, seq))
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn applied(&self) -> u64 {
        *self.applied.lock()
    }

    fn set_applied(&self, seq: u64) {
        *self.applied.lock() = seq;
        self.advanced.notify_all();
    }

    /// Waits until change `seq` is applied here, at most until `deadline`; whether it
    /// was.
    pub(crate) fn wait_for(&self, seq: u64, deadline: Instant) -> bool {
        let mut applied = self.applied.lock();
        while *applied < seq {
            if self.advanced.wait_until(&mut applied, deadline).timed_out() {
                return *applied >= seq;
            }
        }
        true
    }

    /// Starts the follower thread; it stops when `stop` is raised.
    pub(crate) fn follow(
        self: &Arc<Self>,
        store: Arc<RedisStore>,
        policy: SnapshotPolicy,
        stop: Shutdown,
    ) -> std::io::Result<JoinHandle<()>> {
        let replica = Arc::clone(self);
        std::thread::Builder::new()
            .name("replica".into())
            .spawn(move || Follower::new(replica, store, policy).run(&stop))
    }
}

/// The follower thread's state.
struct Follower {
    replica: Arc<Replica>,
    store: Arc<RedisStore>,
    policy: SnapshotPolicy,
    conn: Option<::redis::Connection>,
    /// The last snapshot's number as this server knows it.
    snapshot_seq: u64,
    stale: bool,
}

impl Follower {
    fn new(replica: Arc<Replica>, store: Arc<RedisStore>, policy: SnapshotPolicy) -> Follower {
        Follower {
            snapshot_seq: replica.applied(),
            replica,
            store,
            policy,
            conn: None,
            stale: false,
        }
    }

    fn run(mut self, stop: &Shutdown) {
        let mut backoff = Duration::from_millis(50);
        while !stop.is_triggered() {
            match self.step() {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    redis::note(format_args!("replica"), &e);
                    self.conn = None;
                    if stop.wait_timeout(backoff) {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One read of the stream (or a rebuild when the copy is stale).
    fn step(&mut self) -> Result<(), StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self
                .conn
                .insert(self.store.connect(BLOCK + self.store.timeout())?),
        };
        let registry = Arc::clone(&self.replica.registry);
        if self.stale {
            let (seq, snap) = rebuild(&self.store, conn, &registry)?;
            log::info!("replica rebuilt at change {seq}");
            self.stale = false;
            self.snapshot_seq = self.snapshot_seq.max(snap);
            self.replica.set_applied(seq);
            return Ok(());
        }
        let applied = self.replica.applied();
        let batch = redis::read_after(conn, Stream::Changes, &applied.to_string(), Some(BLOCK))
            .map_err(|e| self.store.failed(e))?;
        self.store.reachable();
        if batch.is_empty() {
            // Idle: a Redis that lost what was applied here (restarted without its
            // AOF) has a lower last number; its state is what counts.
            if self.store.last_seq()? < applied {
                log::warn!("replica: redis has fewer changes than applied here: rebuilding");
                self.stale = true;
            }
            return Ok(());
        }
        let mut seq = applied;
        for (id, json) in batch {
            match apply_entry(&registry, seq, &id, &json) {
                Ok(next) => seq = next,
                Err(why) => {
                    log::warn!("replica: {why}: rebuilding from the snapshot");
                    self.stale = true;
                    break;
                }
            }
        }
        self.replica.set_applied(seq);
        self.maybe_snapshot(seq);
        Ok(())
    }

    /// Writes a snapshot when enough changes passed and this server holds the lease.
    fn maybe_snapshot(&mut self, seq: u64) {
        if seq < self.snapshot_seq + self.policy.every {
            return;
        }
        let ttl = Duration::from_secs(60);
        match self.store.lease("snapshot", &self.policy.holder, ttl) {
            Ok(true) => {}
            Ok(false) => {
                // Another server writes them; look again after as many changes.
                self.snapshot_seq = seq;
                return;
            }
            Err(e) => {
                redis::note(format_args!("replica: snapshot lease"), &e);
                return;
            }
        }
        let started = Instant::now();
        let blob = dump(&self.replica.registry, seq);
        match self.store.save_snapshot(seq, &blob) {
            Ok(saved) => {
                self.snapshot_seq = seq;
                log::info!(
                    "snapshot at change {seq} ({} bytes, {:?}){}",
                    blob.len(),
                    started.elapsed(),
                    if saved { "" } else { ": a later one was there" }
                );
            }
            Err(e) => redis::note(format_args!("replica: snapshot not saved"), &e),
        }
    }
}

/// Stream entry `id` read as the change after `applied`: its number and the change,
/// or why the copy is stale (a gap: the stream was trimmed past this copy; an entry
/// that does not parse). One step for the follower and for a rebuild.
fn next_change(applied: u64, id: &str, json: &[u8]) -> Result<(u64, Change), DataError> {
    let seq = redis::seq_of(id).ok_or_else(|| DataError::NotAChange(id.to_owned()))?;
    if seq != applied + 1 {
        return Err(DataError::Gap { applied, seq });
    }
    let change =
        serde_json::from_slice(json).map_err(|source| DataError::Unreadable { seq, source })?;
    Ok((seq, change))
}

/// Applies stream entry `id` after change `applied`; the new last number, or why the
/// copy is stale ([`next_change`], or a change the rules refuse).
fn apply_entry(registry: &Registry, applied: u64, id: &str, json: &[u8]) -> Result<u64, DataError> {
    let (seq, change) = next_change(applied, id, json)?;
    match registry.apply(&change) {
        0 => Ok(seq),
        code => Err(DataError::Refused { seq, code }),
    }
}

/// Replaces the registry with the store's snapshot plus every change after it.
/// Returns the last change applied and the snapshot's number.
fn rebuild(
    store: &RedisStore,
    conn: &mut ::redis::Connection,
    registry: &Registry,
) -> Result<(u64, u64), StoreError> {
    let snapshot = store.snapshot()?;
    registry.rebuild_from(|state| {
        let snap = match &snapshot {
            Some(blob) => restore(blob, state).map_err(|e| store.data_error(e))?,
            None => 0,
        };
        let mut seq = snap;
        loop {
            let batch = redis::read_after(conn, Stream::Changes, &seq.to_string(), None)
                .map_err(|e| store.failed(e))?;
            if batch.is_empty() {
                return Ok((seq, snap));
            }
            for (id, json) in batch {
                seq = replay_entry(state, seq, &id, &json).map_err(|e| store.data_error(e))?;
            }
        }
    })
}

/// [`apply_entry`] into a state being rebuilt.
fn replay_entry(
    state: &mut dyn Replay,
    applied: u64,
    id: &str,
    json: &[u8],
) -> Result<u64, DataError> {
    let (seq, change) = next_change(applied, id, json)?;
    state
        .replay(change)
        .map_err(|code| DataError::Refused { seq, code })?;
    Ok(seq)
}

/// Restores a snapshot blob into `state`; its change number.
fn restore(blob: &[u8], state: &mut dyn Replay) -> Result<u64, DataError> {
    let mut lines = blob.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let header: Header = lines
        .next()
        .ok_or(DataError::SnapshotEmpty)
        .and_then(|l| serde_json::from_slice(l).map_err(DataError::SnapshotHeader))?;
    if header.peerdex_snapshot != SNAPSHOT_FORMAT {
        return Err(DataError::SnapshotFormat(header.peerdex_snapshot));
    }
    let mut users = 0;
    for line in lines {
        let user: RestoredUser = serde_json::from_slice(line).map_err(DataError::SnapshotLine)?;
        let name = user.user.clone();
        if !state.restore(user) {
            return Err(DataError::SnapshotTwice(name));
        }
        users += 1;
    }
    if users != header.users {
        return Err(DataError::SnapshotCount {
            found: users,
            header: header.users,
        });
    }
    Ok(header.seq)
}

/// The registry as a snapshot at change `seq` (the journal's user lines), written
/// under one read lock.
fn dump(registry: &Registry, seq: u64) -> Vec<u8> {
    let view = registry.view();
    let users = view.users_after(std::ops::Bound::Unbounded).count();
    let mut out = Vec::new();
    let header = Header {
        peerdex_snapshot: SNAPSHOT_FORMAT,
        seq,
        users: users as u64,
    };
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &header);
    for (user, peer, files) in view.users_after(std::ops::Bound::Unbounded) {
        out.push(b'\n');
        let _ = serde_json::to_writer(&mut out, &SnapshotUser { user, peer, files });
    }
    let _ = out.write_all(b"\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::SearchOptions;

    fn apply_all(r: &Registry, changes: &[Change]) {
        for c in changes {
            assert_eq!(r.apply(c), 0, "{c:?}");
        }
    }

    /// A snapshot restores exactly the registry it was taken from (users, addresses,
    /// files in publication order), and a rebuild replaces what was there.
    #[test]
    fn a_dump_restores_the_same_registry_over_an_older_one() {
        let ip = "10.0.0.1".parse().unwrap();
        let a = Registry::new();
        let mut changes = Vec::new();
        for u in ["carol", "alice", "bob"] {
            changes.push(Change::Register { user: u.into() });
            changes.push(Change::Connect {
                user: u.into(),
                ip,
                port: 7,
            });
            for f in ["z.txt", "a.txt", "m.txt"] {
                changes.push(Change::Publish {
                    user: u.into(),
                    file: format!("{u}-{f}"),
                    description: format!("about {f}"),
                });
            }
        }
        changes.push(Change::Disconnect { user: "bob".into() });
        changes.push(Change::Register {
            user: "dave".into(),
        });
        apply_all(&a, &changes);
        let blob = dump(&a, 42);
        let b = Registry::with_search(SearchOptions::default());
        apply_all(
            &b,
            &[Change::Register {
                user: "stale".into(),
            }],
        );
        let seq = b.rebuild_from(|state| restore(&blob, state)).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(b.dump(), a.dump());
        b.check_search_table();
        // A damaged blob leaves the registry as it was.
        let cut = &blob[..blob.len() - 10];
        assert!(b.rebuild_from(|state| restore(cut, state)).is_err());
        assert_eq!(b.dump(), a.dump());
    }

    #[test]
    fn stream_entries_apply_only_in_order() {
        let r = Registry::new();
        let reg = br#"{"REGISTER":{"user":"a"}}"#;
        assert!(matches!(apply_entry(&r, 0, "1-0", reg), Ok(1)));
        assert!(matches!(
            apply_entry(&r, 1, "3-0", reg),
            Err(DataError::Gap { applied: 1, seq: 3 })
        ));
        assert!(matches!(
            apply_entry(&r, 1, "2-0", reg),
            Err(DataError::Refused { seq: 2, .. })
        ));
        assert!(matches!(
            apply_entry(&r, 1, "2-0", b"{"),
            Err(DataError::Unreadable { seq: 2, .. })
        ));
        assert!(matches!(
            apply_entry(&r, 1, "2-5", reg),
            Err(DataError::NotAChange(_))
        ));
    }
}
