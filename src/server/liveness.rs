//! Liveness of connected peers: the index server's prober.
//!
//! Owns: the probe loop (every interval, a TCP connection to each connected user's
//! listener with a short timeout, a bounded number at once, on one prober thread and
//! its scoped workers), the count of consecutive failures per user and address, and
//! the decision to drop a user after [`FAILURES_TO_DROP`] failures in a row. A probe
//! opens a connection and closes it without a request; peer listeners treat that
//! quietly. Does not own: the disconnect itself (`Registry::disconnect_if_at`, which
//! journals it like any change) or what is printed and audited (the caller's
//! `on_drop`).
//!
//! A user that connected from loopback is listed at the server's `--advertise`
//! address, which need not be reachable from the server itself (a NAT's public
//! address, a test address); such a user is probed on loopback instead.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

use super::registry::{PeerAddr, Registry};
use crate::net::{self, Shutdown};

/// Consecutive failed probes after which a user is marked disconnected: one lost
/// probe (a full backlog, a brief network hiccup) is not enough.
pub(crate) const FAILURES_TO_DROP: u32 = 3;

/// Longest wait for one probe's connection: a live listener on a LAN answers in
/// milliseconds; an unreachable host would otherwise hold a worker for the kernel's
/// minutes-long SYN retries.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Probes in flight at once: enough to check thousands of peers within an interval,
/// few enough that probing never competes with requests for threads.
pub(crate) const PROBE_PARALLELISM: usize = 16;

/// Liveness options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct LivenessArgs {
    /// Seconds between liveness checks of connected peers; a peer that fails 3 checks
    /// in a row is marked disconnected (0: never check).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS", value_parser = parse_interval)]
    pub probe_interval: f64,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    net::parse_seconds_where(s, |v| (0.0..=86_400.0).contains(&v), "between 0 and 86400")
}

/// Where a user listed at `addr` is probed: on loopback when `addr` is the address
/// the server advertises for loopback users (see the module doc), else at `addr`.
pub(crate) fn probe_target(addr: PeerAddr, advertise: Option<IpAddr>) -> SocketAddr {
    let ip = if Some(addr.ip) == advertise {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip
    };
    SocketAddr::new(ip, addr.port)
}

/// What the prober needs from the registry. With several servers on one shared store,
/// only one of them probes at a time ([`Peers::may_probe`]).
pub(crate) trait Peers: Send + Sync + 'static {
    /// Every connected user with its address.
    fn connected(&self) -> Vec<(String, PeerAddr)>;
    /// Disconnects `user` only if it is still connected at `addr`; whether it was.
    fn disconnect_if_at(&self, user: &str, addr: PeerAddr) -> bool;
    /// Whether this server probes this round.
    fn may_probe(&self) -> bool {
        true
    }
}

impl Peers for Registry {
    fn connected(&self) -> Vec<(String, PeerAddr)> {
        Registry::connected(self)
    }

    fn disconnect_if_at(&self, user: &str, addr: PeerAddr) -> bool {
        Registry::disconnect_if_at(self, user, addr)
    }
}

/// Starts the prober thread; `None` when probing is off. `advertise` is the server's
/// `--advertise` address, if any. `on_drop` is called for each user the prober
/// disconnected.
pub(crate) fn start(
    args: &LivenessArgs,
    registry: Arc<impl Peers>,
    shutdown: Shutdown,
    advertise: Option<IpAddr>,
    on_drop: impl Fn(&str, PeerAddr) + Send + 'static,
) -> std::io::Result<Option<JoinHandle<()>>> {
    if args.probe_interval == 0.0 {
        return Ok(None);
    }
    let interval = Duration::from_secs_f64(args.probe_interval);
    // A probe never outlasts the interval it belongs to.
    let timeout = PROBE_TIMEOUT.min(interval);
    let handle = thread::Builder::new()
        .name("liveness".into())
        .spawn(move || {
            let mut failures: HashMap<(String, PeerAddr), u32> = HashMap::new();
            while !shutdown.wait_timeout(interval) {
                if !registry.may_probe() {
                    // Another server probes: its counts are the ones that matter.
                    failures.clear();
                    continue;
                }
                let peers = registry.connected();
                let targets: Vec<SocketAddr> = peers
                    .iter()
                    .map(|(_, addr)| probe_target(*addr, advertise))
                    .collect();
                let alive = probe_all(&targets, timeout);
                let mut seen = HashMap::with_capacity(peers.len());
                for ((user, addr), alive) in peers.into_iter().zip(alive) {
                    let key = (user, addr);
                    let count = failures.get(&key).copied().unwrap_or(0);
                    let count = if alive { 0 } else { count + 1 };
                    if count >= FAILURES_TO_DROP {
                        log::info!(
                            "{}: {count} failed probes of {}:{}",
                            key.0,
                            addr.ip,
                            addr.port
                        );
                        if registry.disconnect_if_at(&key.0, addr) {
                            on_drop(&key.0, addr);
                        }
                        continue;
                    }
                    if count > 0 {
                        log::debug!("{}: probe {count} failed", key.0);
                        seen.insert(key, count);
                    }
                }
                // Users that left or reconnected elsewhere start again from zero.
                failures = seen;
            }
        })?;
    Ok(Some(handle))
}

/// Probes every address, [`PROBE_PARALLELISM`] at a time; `true` where a TCP
/// connection was accepted.
fn probe_all(targets: &[SocketAddr], timeout: Duration) -> Vec<bool> {
    let results = Mutex::new(vec![false; targets.len()]);
    let next = AtomicUsize::new(0);
    let workers = PROBE_PARALLELISM.min(targets.len());
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(target) = targets.get(i) else { break };
                    // Connected, then closed at once without a request.
                    let alive = TcpStream::connect_timeout(target, timeout).is_ok();
                    results.lock()[i] = alive;
                }
            });
        }
    });
    results.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::registry::Change;
    use std::net::TcpListener;

    #[test]
    fn probes_tell_listening_from_closed_ports() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let targets = [addr(live.local_addr().unwrap().port()), addr(dead_port)];
        assert_eq!(probe_all(&targets, Duration::from_secs(1)), [true, false]);
    }

    #[test]
    fn the_advertised_address_is_probed_on_loopback() {
        let adv: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let at = |ip| PeerAddr { ip, port: 4000 };
        assert_eq!(
            probe_target(at(adv), Some(adv)),
            SocketAddr::from(([127, 0, 0, 1], 4000))
        );
        assert_eq!(
            probe_target(at(other), Some(adv)),
            SocketAddr::new(other, 4000)
        );
        assert_eq!(probe_target(at(adv), None), SocketAddr::new(adv, 4000));
    }

    #[test]
    fn a_dead_peer_is_dropped_after_three_failures_and_a_live_one_stays() {
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let registry = Arc::new(Registry::new());
        for (user, port) in [
            ("live", live.local_addr().unwrap().port()),
            ("dead", dead_port),
        ] {
            registry.apply(&Change::Register { user: user.into() });
            registry.apply(&Change::Connect {
                user: user.into(),
                ip: "127.0.0.1".parse().unwrap(),
                port,
            });
        }
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Shutdown::new();
        let d = Arc::clone(&dropped);
        let args = LivenessArgs {
            probe_interval: 0.05,
        };
        let handle = start(
            &args,
            Arc::clone(&registry),
            shutdown.clone(),
            None,
            move |u, _| d.lock().push(u.to_owned()),
        )
        .unwrap()
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while registry.peer_addr("dead").is_some() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        shutdown.trigger();
        handle.join().unwrap();
        assert!(
            registry.peer_addr("dead").is_none(),
            "dead peer still connected"
        );
        assert!(registry.peer_addr("live").is_some(), "live peer dropped");
        assert_eq!(*dropped.lock(), ["dead"]);
        assert_eq!(registry.counts().0, 2, "users stay registered");
    }
}
