//! Where the registry's changes are made: this server's own registry (in memory or
//! journaled in its data directory), or a registry shared by several servers in Redis
//! (`--store redis://HOST:PORT[/DB]`) with this server's copy as a replica.
//!
//! Owns: the choice between the two, what a request does before reading (with a
//! shared store: wait until the replica has applied every change acknowledged before
//! the request started, on any server), the prober's view (`liveness::Peers`: one
//! server probes at a time), and the dashboard feed of every server. Does not own:
//! the rules (`registry`, and the Lua script of `redis` that checks the same rules),
//! the request cycle (`server`).

mod feed;
mod redis;
mod replica;

use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::change::{Change, PeerAddr};
use super::http::Hub;
use super::liveness::Peers;
use super::registry::{Refused, Registry};
use crate::net::{self, Shutdown};
use crate::proto::index::Op;
use crate::proto::text::escape_for_terminal;
use redis::{RedisStore, Written};
use replica::{Replica, SnapshotPolicy};

pub(crate) use redis::StoreError;

/// Changes between two snapshots of a shared registry by default: the stream then
/// holds at most about this many entries (some 10 MB), and a server starting or
/// rebuilding replays at most that many after the snapshot.
pub(crate) const SNAPSHOT_EVERY: u64 = 100_000;

/// The shared-store options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Keep the registry in Redis, shared by every server given the same URL
    /// (redis://HOST:PORT[/DB], or rediss:// for TLS, trusting the system's CA
    /// certificates or SSL_CERT_FILE); no data directory is used. Run Redis with
    /// `appendonly yes` and `appendfsync always` (see the README).
    #[arg(long, value_name = "URL", conflicts_with_all = ["ephemeral", "fsync", "data_dir", "compact_after"])]
    pub store: Option<String>,
    /// Seconds to wait for Redis (connecting, each reply, the replica catching up)
    /// before a request gets its error code.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS", value_parser = net::parse_seconds)]
    pub store_timeout: f64,
    /// Internal (tests): changes between two snapshots of a shared registry.
    #[arg(long, hide = true, default_value_t = SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_snapshot_every: u64,
}

/// Where changes are made.
pub(crate) enum Store {
    /// This server's own registry.
    Local(Arc<Registry>),
    /// A registry in Redis shared with other servers; reads use the replica.
    Shared(Shared),
}

/// A shared store and this server's replica of it.
pub(crate) struct Shared {
    redis: Arc<RedisStore>,
    replica: Arc<Replica>,
    /// Who this server is, for leases.
    holder: String,
    /// The prober's lease lasts this long unless renewed.
    probe_lease: Duration,
    stop: Shutdown,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.trigger();
        for t in self.threads.get_mut().drain(..) {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Opens the shared store of `args` with `registry` (empty) as the replica, built
    /// from the store's snapshot and stream before this returns. `probe_interval`:
    /// the prober's (its lease outlives three of them). The line says where the
    /// registry is kept.
    pub(crate) fn open_shared(
        args: &StoreArgs,
        url: &str,
        registry: Arc<Registry>,
        probe_interval: Duration,
    ) -> Result<(Store, String), StoreError> {
        let started = Instant::now();
        let redis = Arc::new(RedisStore::open(
            url,
            Duration::from_secs_f64(args.store_timeout),
        )?);
        let (replica, seq) = Replica::open(registry, &redis)?;
        let holder = format!("{}-{:08x}", std::process::id(), fastrand::u32(..));
        let stop = Shutdown::new();
        let policy = SnapshotPolicy {
            every: args.store_snapshot_every,
            holder: holder.clone(),
        };
        let follower = replica
            .follow(Arc::clone(&redis), policy, stop.clone())
            .map_err(|e| redis.thread_error(e))?;
        let (users, files) = replica.registry().counts();
        let line = format!(
            "data: {url} (shared store; {users} users, {files} publications at change {seq}, read in {} ms)",
            started.elapsed().as_millis()
        );
        let shared = Shared {
            redis,
            replica,
            holder,
            probe_lease: (probe_interval * 3).max(Duration::from_secs(1)),
            stop,
            threads: Mutex::new(vec![follower]),
        };
        Ok((Store::Shared(shared), line))
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        match self {
            Store::Local(r) => r,
            Store::Shared(s) => s.replica.registry(),
        }
    }

    /// Applies a change requested from `host` (see [`Registry::apply_as`]): in a
    /// shared store, checked and made in Redis in one step; any failure there is the
    /// operation's "any other error" code.
    pub(crate) fn apply_as(&self, change: &Change, host: IpAddr) -> Result<u8, Refused> {
        let shared = match self {
            Store::Local(r) => return r.apply_as(change, host),
            Store::Shared(s) => s,
        };
        let host = (!matches!(change, Change::Register { .. })).then_some(host);
        match shared.redis.write(change, host, None) {
            Ok(Written::Applied(_)) => Ok(0),
            Ok(Written::Code(code)) => Ok(code),
            Ok(Written::Refused(ip)) => Err(Refused { connected_from: ip }),
            Err(e) => {
                let user = escape_for_terminal(change.user());
                redis::note(format_args!("{} {user} not made", change.op().name()), &e);
                Ok(change.other_error())
            }
        }
    }

    /// Before a list request reads the registry: with a shared store, waits (within
    /// the store timeout) until the replica has applied every change made before now
    /// on any server. `Err` with the operation's "any other error" code when it could
    /// not.
    pub(crate) fn ready_to_read(&self, op: Op) -> Result<(), u8> {
        let Store::Shared(shared) = self else {
            return Ok(());
        };
        let deadline = Instant::now() + shared.redis.timeout();
        let seq = shared.redis.last_seq().map_err(|e| {
            redis::note(format_args!("{}", op.name()), &e);
            op.other_error()
        })?;
        if shared.replica.wait_for(seq, deadline) {
            return Ok(());
        }
        log::warn!(
            "{}: the replica did not reach change {seq} in time (at {})",
            op.name(),
            shared.replica.applied()
        );
        Err(op.other_error())
    }

    /// Sends this server's dashboard events to the other servers' dashboards, and
    /// theirs to `hub` (with a shared store; nothing otherwise).
    pub(crate) fn share_feed(&self, hub: &Arc<Hub>) {
        let Store::Shared(shared) = self else { return };
        match feed::start(Arc::clone(&shared.redis), hub, &shared.holder, &shared.stop) {
            Ok(threads) => shared.threads.lock().extend(threads),
            Err(e) => log::warn!("dashboard: the feed of the other servers is off: {e}"),
        }
    }

    /// Stops the replica and the feed (a local store has nothing to stop).
    pub(crate) fn stop(&self) {
        if let Store::Shared(shared) = self {
            shared.stop.trigger();
            for t in shared.threads.lock().drain(..) {
                let _ = t.join();
            }
        }
    }
}

impl Peers for Store {
    fn connected(&self) -> Vec<(String, PeerAddr)> {
        self.registry().connected()
    }

    fn disconnect_if_at(&self, user: &str, addr: PeerAddr) -> bool {
        let shared = match self {
            Store::Local(r) => return r.disconnect_if_at(user, addr),
            Store::Shared(s) => s,
        };
        let change = Change::Disconnect { user: user.into() };
        match shared.redis.write(&change, None, Some(addr)) {
            Ok(w) => matches!(w, Written::Applied(_)),
            Err(e) => {
                let user = escape_for_terminal(user);
                redis::note(format_args!("prober: DISCONNECT {user} not made"), &e);
                false
            }
        }
    }

    /// With a shared store, only the server holding the prober's lease probes.
    fn may_probe(&self) -> bool {
        let Store::Shared(shared) = self else {
            return true;
        };
        match shared
            .redis
            .lease("prober", &shared.holder, shared.probe_lease)
        {
            Ok(held) => held,
            Err(e) => {
                redis::note(format_args!("prober: lease not checked"), &e);
                false
            }
        }
    }
}
