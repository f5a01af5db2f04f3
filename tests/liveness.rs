//! Issue 8, dead peers: the server's liveness prober against real client processes.
//! A peer killed with SIGKILL leaves LIST_USERS within three probe rounds plus a
//! margin (its publications stay); a peer busy serving 8 downloads is never dropped;
//! a user that reconnects on a new port does not inherit its old address's failures.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const MIB: usize = 1024 * 1024;

/// Probe rounds past three failures that a dead peer may stay listed: the round in
/// which it was killed, and the round that dropped it still finishing.
const MARGIN_ROUNDS: usize = 2;

/// A raw user connected with a live listener owned by the test, used to ask the
/// server questions and to count probe rounds: every round probes it once, and each
/// probe is one accepted connection.
struct Watcher {
    server: SocketAddr,
    name: &'static str,
    probes: Arc<AtomicUsize>,
}

impl Watcher {
    fn start(server: SocketAddr, name: &'static str) -> Watcher {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let probes = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&probes);
        // Lives until the test process ends; a probe closes at once, so each accept
        // is one probe.
        thread::spawn(move || {
            for conn in listener.incoming() {
                if conn.is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        assert_eq!(code(server, &["REGISTER", name]), 0);
        assert_eq!(code(server, &["CONNECT", name, &port]), 0);
        Watcher {
            server,
            name,
            probes,
        }
    }

    /// Connected users and their ports (the watcher included).
    fn users(&self) -> Vec<(String, u16)> {
        let f = list_fields(&call(self.server, &["LIST_USERS", self.name]));
        f[1..]
            .chunks(3)
            .map(|c| (c[0].clone(), c[2].parse().unwrap()))
            .collect()
    }

    fn is_connected(&self, user: &str) -> bool {
        self.users().iter().any(|(u, _)| u == user)
    }

    /// File names `user` published.
    fn files(&self, user: &str) -> Vec<String> {
        let f = list_fields(&call(self.server, &["LIST_CONTENT", self.name, user]));
        f[1..].chunks(2).map(|c| c[0].clone()).collect()
    }

    /// Waits until `n` more probe rounds have reached the watcher (at most 30 s).
    fn wait_rounds(&self, n: usize) {
        let target = self.probes.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.probes.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the prober stopped probing");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// No console line says `user` was dropped.
fn assert_never_dropped(s: &Server, user: &str) {
    let prefix = format!("peerdex: DISCONNECT {user}: peer unreachable");
    assert!(
        !s.proc.err_lines().iter().any(|l| l.starts_with(&prefix)),
        "{user} was dropped: {:?}",
        s.proc.err_lines()
    );
}

#[test]
fn a_killed_peer_leaves_the_list_and_keeps_its_files() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let mut s = Server::start(&["--probe-interval", "0.3", "--data-dir", data_dir]);
    let watch = Watcher::start(s.addr, "watch");
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("notes.txt"), b"hello").unwrap();
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt my notes"), "c> PUBLISH OK");
    let port = peer_port_of(&watch, "alice");
    // A live peer survives rounds of probes.
    watch.wait_rounds(4);
    assert!(watch.is_connected("alice"));

    alice.proc.signal("KILL");
    alice
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("killed");
    // Gone within three failed probes: counted in probe rounds (the watcher is
    // probed once a round), not in time, which a loaded machine stretches.
    let at_kill = watch.probes.load(Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(120), || !watch.is_connected("alice")),
        "alice still listed after the kill; console {:?}",
        s.proc.lines()
    );
    let rounds = watch.probes.load(Ordering::SeqCst) - at_kill;
    assert!(
        rounds <= 3 + MARGIN_ROUNDS,
        "alice was listed for {rounds} probe rounds after the kill"
    );
    let want = format!("peerdex: DISCONNECT alice: peer unreachable at 127.0.0.1:{port}");
    assert!(
        s.proc
            .wait_err_line(Duration::from_secs(5), |l| l == want)
            .is_some(),
        "no {want:?} in {:?}",
        s.proc.err_lines()
    );
    // Not a request: stdout keeps only the statement's lines.
    assert!(
        !s.proc.lines().iter().any(|l| l.contains("unreachable")),
        "{:?}",
        s.proc.lines()
    );
    // Marked disconnected, not removed: publications kept, the user still exists.
    assert_eq!(watch.files("alice"), ["notes.txt"]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 1);
    assert!(watch.is_connected("watch"), "the live watcher was dropped");

    // The drop is journaled like a DISCONNECT: a restarted server agrees.
    s.proc.signal("INT");
    assert!(s.proc.wait_exit(Duration::from_secs(20)).is_some());
    let s = Server::start(&["--probe-interval", "0", "--data-dir", data_dir]);
    let again = Watcher {
        server: s.addr,
        name: "watch",
        probes: Arc::new(AtomicUsize::new(0)),
    };
    let users: Vec<String> = again.users().into_iter().map(|(u, _)| u).collect();
    assert_eq!(users, ["watch"]);
    assert_eq!(again.files("alice"), ["notes.txt"]);
}

fn peer_port_of(watch: &Watcher, user: &str) -> u16 {
    watch
        .users()
        .into_iter()
        .find(|(u, _)| u == user)
        .unwrap_or_else(|| panic!("{user} not connected"))
        .1
}

#[test]
fn a_peer_busy_with_eight_downloads_is_never_dropped() {
    let s = Server::start(&["--probe-interval", "0.3"]);
    let watch = Watcher::start(s.addr, "watch");
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 8 * MIB, 11);
    let want = file_hash(&share.path().join("big.bin"));
    // 2 MiB/s per download: each of the 8 lasts about 4 s, a dozen probe intervals.
    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &[
            "--time-url",
            NO_TIME_SERVICE,
            "--max-upload-rate",
            "2097152",
        ],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH big.bin big"), "c> PUBLISH OK");
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut clients: Vec<Client> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = Client::start(s.addr, d.path());
            c.register_connect(&format!("d{i}"));
            c
        })
        .collect();
    for c in &mut clients {
        c.send("GET_FILE alice big.bin copy.bin");
    }
    // While they run (about 4 s, paced by the upload limit, whatever the load): still
    // listed, round after round.
    for _ in 0..6 {
        watch.wait_rounds(1);
        assert!(
            watch.is_connected("alice"),
            "alice dropped while serving; console {:?}",
            s.proc.lines()
        );
    }
    for c in &mut clients {
        assert_eq!(c.next_message(), "c> GET_FILE OK");
    }
    for d in &dirs {
        assert_eq!(file_hash(&d.path().join("copy.bin")), want);
    }
    assert!(watch.is_connected("alice"));
    assert_never_dropped(&s, "alice");
}

#[test]
fn a_reconnected_user_does_not_inherit_the_old_address_failures() {
    let s = Server::start(&["--probe-interval", "0.5"]);
    let watch = Watcher::start(s.addr, "watch");
    // alice connects at a port where nothing listens: every probe of it fails.
    let dead_port = free_port().to_string();
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 0);
    assert_eq!(code(s.addr, &["CONNECT", "alice", &dead_port]), 0);
    // Two rounds seen at the watcher after the CONNECT: the second one began after it,
    // so alice has failed one or two probes, not yet three.
    watch.wait_rounds(2);
    assert!(watch.is_connected("alice"), "dropped before three failures");
    // It reconnects from a new port that is live.
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_port = live.local_addr().unwrap().port();
    assert_eq!(code(s.addr, &["DISCONNECT", "alice"]), 0);
    assert_eq!(
        code(s.addr, &["CONNECT", "alice", &live_port.to_string()]),
        0
    );
    watch.wait_rounds(6);
    assert_eq!(peer_port_of(&watch, "alice"), live_port);
    assert_never_dropped(&s, "alice");

    // The same with a real client: DISCONNECT closes its listener, CONNECT opens a
    // new one; the old port's failures never count against the new one.
    let share = tempfile::tempdir().unwrap();
    let mut bob = Client::start(s.addr, share.path());
    bob.register_connect("bob");
    watch.wait_rounds(1);
    assert_eq!(bob.cmd("DISCONNECT bob"), "c> DISCONNECT OK");
    assert_eq!(bob.cmd("CONNECT bob"), "c> CONNECT OK");
    let second = peer_port_of(&watch, "bob");
    watch.wait_rounds(6);
    assert_eq!(peer_port_of(&watch, "bob"), second);
    assert_never_dropped(&s, "bob");
}
