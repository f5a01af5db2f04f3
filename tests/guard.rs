//! Issue 8 on loopback: once a user is connected, only the host it connected from may
//! act for it. Linux answers all of 127.0.0.0/8, so a socket bound to 127.0.0.2 before
//! it connects is "another host" to a real server process; every operation is tried
//! in both request layouts (with and without DATETIME), in raw bytes.

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use support::*;

const HOME: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The two request layouts of PROTOCOL.md section 1.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `OP\0 DATETIME\0 USER\0 ARGS...`
    Dated,
    /// The first lab version: `OP\0 USER\0 ARGS...`
    Old,
}

/// A request client: sends requests in one layout from one source address.
struct Host {
    ip: Ipv4Addr,
    layout: Layout,
    server: SocketAddr,
}

impl Host {
    fn call(&self, op: &str, user: &str, args: &[&str]) -> Vec<u8> {
        let mut parts = vec![op];
        if let Layout::Dated = self.layout {
            parts.push("22/11/2026 02:40:00");
        }
        parts.push(user);
        parts.extend_from_slice(args);
        call_from(self.ip, self.server, &parts)
    }

    /// The result code of a request that must get exactly one byte back.
    fn code(&self, op: &str, user: &str, args: &[&str]) -> u8 {
        let reply = self.call(op, user, args);
        assert_eq!(reply.len(), 1, "{op} {user} {args:?}: reply {reply:?}");
        reply[0]
    }

    /// LIST_USERS as `user`: (name, ip, port) of every connected user.
    fn users(&self, user: &str) -> Vec<(String, String, String)> {
        let f = list_fields(&self.call("LIST_USERS", user, &[]));
        assert_eq!(f[0].parse::<usize>().unwrap() * 3, f.len() - 1, "{f:?}");
        f[1..]
            .chunks(3)
            .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
            .collect()
    }

    /// LIST_CONTENT of `target` as `user`: the file names.
    fn files(&self, user: &str, target: &str) -> Vec<String> {
        let f = list_fields(&self.call("LIST_CONTENT", user, &[target]));
        assert_eq!(f[0].parse::<usize>().unwrap() * 2, f.len() - 1, "{f:?}");
        f[1..].chunks(2).map(|c| c[0].clone()).collect()
    }
}

/// Waits for the console line of a refused request.
fn assert_refused(s: &Server, op: &str, user: &str, connected: Ipv4Addr, from: Ipv4Addr) {
    let want =
        format!("s> {op} FROM {user} REFUSED: connected from {connected}, request from {from}");
    assert!(
        s.proc
            .wait_line(Duration::from_secs(10), |l| l == want)
            .is_some(),
        "no console line {want:?}; console: {:?}",
        s.proc.lines()
    );
}

fn impersonation_sweep(layout: Layout) {
    // Probing off: the ports below are only numbers, and the state must not move
    // under the test.
    let s = Server::start(&["--probe-interval", "0"]);
    let home = Host {
        ip: HOME,
        layout,
        server: s.addr,
    };
    let other = Host {
        ip: OTHER_HOST,
        layout,
        server: s.addr,
    };
    assert_eq!(home.code("REGISTER", "alice", &[]), 0);
    assert_eq!(home.code("CONNECT", "alice", &["4001"]), 0);
    assert_eq!(home.code("PUBLISH", "alice", &["notes.txt", "my notes"]), 0);
    // bob lives on the other host.
    assert_eq!(other.code("REGISTER", "bob", &[]), 0);
    assert_eq!(other.code("CONNECT", "bob", &["4002"]), 0);
    assert_eq!(other.code("PUBLISH", "bob", &["song.mp3", "a song"]), 0);
    let users_before = home.users("alice");
    assert_eq!(
        users_before,
        [
            ("alice".into(), "127.0.0.1".into(), "4001".into()),
            ("bob".into(), "127.0.0.2".into(), "4002".into()),
        ]
    );

    // Every operation as alice from the other host: its "any other error" code,
    // a REFUSED console line, and nothing changed.
    let attempts: [(&str, &[&str], u8); 8] = [
        ("DISCONNECT", &[], 3),
        ("PUBLISH", &["evil.exe", "free stuff"], 4),
        ("DELETE", &["notes.txt"], 4),
        ("LIST_USERS", &[], 3),
        ("LIST_CONTENT", &["alice"], 4),
        ("SEARCH", &["notes"], 3),
        ("CONNECT", &["6666"], 3),
        ("UNREGISTER", &[], 2),
    ];
    for (op, args, other_error) in attempts {
        assert_eq!(
            other.code(op, "alice", args),
            other_error,
            "{op} as alice from {OTHER_HOST}"
        );
        assert_refused(&s, op, "alice", HOME, OTHER_HOST);
    }
    // REGISTER is about a name, not a host: the name is taken.
    assert_eq!(other.code("REGISTER", "alice", &[]), 1);
    assert_eq!(home.users("alice"), users_before);
    assert_eq!(home.files("alice", "alice"), ["notes.txt"]);
    // The same the other way round: 127.0.0.1 cannot act for bob.
    assert_eq!(home.code("DELETE", "bob", &["song.mp3"]), 4);
    assert_refused(&s, "DELETE", "bob", OTHER_HOST, HOME);
    assert_eq!(home.files("alice", "bob"), ["song.mp3"]);
    // The other host still acts for its own user.
    assert_eq!(other.files("bob", "alice"), ["notes.txt"]);

    // The rightful host: every operation works as before.
    assert_eq!(home.code("PUBLISH", "alice", &["more.txt", "more"]), 0);
    assert_eq!(home.code("DELETE", "alice", &["more.txt"]), 0);
    assert_eq!(
        home.code("CONNECT", "alice", &["4001"]),
        2,
        "already connected"
    );
    let hits = list_fields(&home.call("SEARCH", "alice", &["notes"]));
    assert_eq!(hits[..3], ["1", "notes.txt", "my notes"]);
    assert_eq!(home.files("alice", "alice"), ["notes.txt"]);
    assert_eq!(home.code("DISCONNECT", "alice", &[]), 0);
    assert!(
        s.proc
            .wait_line(Duration::from_secs(10), |l| l == "s> DISCONNECT FROM alice")
            .is_some()
    );

    // Documented limitation: a user that is not connected can be taken by whoever
    // connects first. From then on the other host is alice's host.
    assert_eq!(other.code("CONNECT", "alice", &["5001"]), 0);
    assert_eq!(home.code("PUBLISH", "alice", &["x", "y"]), 4);
    assert_refused(&s, "PUBLISH", "alice", OTHER_HOST, HOME);
    assert_eq!(other.files("alice", "alice"), ["notes.txt"]);
    assert_eq!(other.code("DISCONNECT", "alice", &[]), 0);
    // Not connected: anyone may unregister it (the name rule, as before issue 8).
    assert_eq!(home.code("UNREGISTER", "alice", &[]), 0);
    assert_eq!(home.code("UNREGISTER", "alice", &[]), 1);
}

#[test]
fn another_host_cannot_act_for_a_connected_user() {
    impersonation_sweep(Layout::Dated);
}

#[test]
fn another_host_cannot_act_for_a_connected_user_old_layout() {
    impersonation_sweep(Layout::Old);
}

#[test]
fn a_loopback_user_is_served_from_loopback_when_advertising() {
    // A short probe interval: the prober must reach the user's listener even though
    // LIST_USERS shows the advertised address.
    let s = Server::start(&["--advertise", "192.0.2.1", "--probe-interval", "0.2"]);
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("notes.txt"), b"hello").unwrap();
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt my notes"), "c> PUBLISH OK");
    let home = Host {
        ip: HOME,
        layout: Layout::Dated,
        server: s.addr,
    };
    // An observer with a live listener (so the prober keeps it too); each probe of
    // it is one accepted connection, counted: a round of probes.
    let observer = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = observer.local_addr().unwrap().port().to_string();
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&probes);
    std::thread::spawn(move || {
        for conn in observer.incoming() {
            if conn.is_ok() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    assert_eq!(home.code("REGISTER", "obs", &[]), 0);
    assert_eq!(home.code("CONNECT", "obs", &[&port]), 0);
    let users = home.users("obs");
    let alice_entry = users.iter().find(|u| u.0 == "alice").expect("alice listed");
    assert_eq!(alice_entry.1, "192.0.2.1", "advertised address");
    // Several probe rounds (3 failures drop a user): still connected.
    let seen = probes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(60), || probes
            .load(std::sync::atomic::Ordering::SeqCst)
            >= seen + 5),
        "the prober stopped probing"
    );
    assert!(
        home.users("obs").iter().any(|u| u.0 == "alice"),
        "alice dropped; console {:?}",
        s.proc.lines()
    );
    // Requests from 127.0.0.1 are alice's own.
    let (msg, files) = alice.cmd_list("LIST_CONTENT alice", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, ["\tnotes.txt \"my notes\""]);
    assert_eq!(alice.cmd("DELETE notes.txt"), "c> DELETE OK");
    assert_eq!(alice.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert!(
        !s.proc.lines().iter().any(|l| l.contains("REFUSED")),
        "{:?}",
        s.proc.lines()
    );
    assert!(
        !s.proc
            .err_lines()
            .iter()
            .any(|l| l.contains("unreachable at")),
        "{:?}",
        s.proc.err_lines()
    );
}
