//! Issue 8, bad-input sweep of a real client's peer listener (found through
//! LIST_USERS), in raw bytes: names at and past the 256-byte limit, a name that never
//! ends, unknown operations, silent connections, and 1,000 connections at once while
//! legitimate 64 MiB downloads go on.
//!
//! Already covered in tests/peer.rs and not repeated here: PUT_FILE and a 300-byte
//! name answered 2, a connection closed without a request (a liveness probe), and half
//! a request followed by silence closed after the request timeout.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const MIB: usize = 1024 * 1024;

/// The peer listener's request timeout (src/client/peer/mod.rs `REQUEST_TIMEOUT`).
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long past the peer's request timeout a test waits for it to close a
/// connection: a loaded 2-core machine.
const CLOSE_MARGIN: Duration = Duration::from_secs(15);

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Sends raw bytes to the peer and returns everything it answers.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    exchange(peer(port), bytes)
}

fn get(name: &[u8]) -> Vec<u8> {
    let mut out = b"GET_FILE\0".to_vec();
    out.extend_from_slice(name);
    out.push(0);
    out
}

/// A shell `alice` serving `share`, connected, with `files` published.
fn serving(server: SocketAddr, share: &Path, extra: &[&str], files: &[&str]) -> Client {
    let mut args = vec!["--time-url", NO_TIME_SERVICE];
    args.extend_from_slice(extra);
    let mut alice = Client::start_with(server, share, &args);
    alice.register_connect("alice");
    for f in files {
        assert_eq!(alice.cmd(&format!("PUBLISH {f} test")), "c> PUBLISH OK");
    }
    alice
}

/// Threads of a process (from /proc).
fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn bad_requests_get_code_2_and_the_listener_keeps_serving() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("ok.txt"), b"hello").unwrap();
    // A published name of 255 bytes (the most the client sends to an index
    // server, PROTOCOL.md section 5), one of 256 (the peer's limit, not published)
    // and one of 257 (a valid path, but one byte over the limit; each component
    // stays under NAME_MAX).
    std::fs::create_dir(share.path().join("d")).unwrap();
    let name255 = format!("d/{}", "a".repeat(253));
    let name256 = format!("d/{}", "c".repeat(254));
    let name257 = format!("d/{}", "b".repeat(255));
    std::fs::write(share.path().join(&name255), b"limit").unwrap();
    std::fs::write(share.path().join(&name256), b"limit").unwrap();
    std::fs::write(share.path().join(&name257), b"over").unwrap();
    let alice = serving(s.addr, share.path(), &[], &["ok.txt", &name255]);
    let port = peer_port(s.addr, "alice");

    // A silent connection, watched on its own thread while the sweep goes on.
    let silent = thread::spawn(move || {
        let mut c = TcpStream::connect(peer(port)).unwrap();
        read_until_closed(&mut c, PEER_REQUEST_TIMEOUT + CLOSE_MARGIN)
    });

    // Names at, just past and far past the limit.
    assert_eq!(raw(port, &get(name255.as_bytes())), b"\x00limit");
    assert_eq!(raw(port, &get(name256.as_bytes())), [1]);
    assert_eq!(name257.len(), 257);
    assert_eq!(raw(port, &get(name257.as_bytes())), [2]);
    assert_eq!(raw(port, &get(&vec![b'x'; 64 * 1024])), [2]);
    // A name that is not UTF-8.
    assert_eq!(raw(port, &get(b"\xff\xfe.txt")), [2]);

    // Unknown operations: code 2, nothing else, whatever follows.
    let unknown: [&[u8]; 8] = [
        b"get_file\0ok.txt\0",
        b"GET_FILES\0ok.txt\0",
        b"GET_FILE \0ok.txt\0",
        b"\0ok.txt\0",
        b"LIST_USERS\0alice\0",
        b"\xff\xfe\xfd\0ok.txt\0",
        b"GET\0FILE\0ok.txt\0",
        b"\x00\x00\x00\x00",
    ];
    for req in unknown {
        assert_eq!(raw(port, req), [2], "{req:?}");
    }
    // An operation far over its limit, terminated or not.
    let mut long_op = vec![b'G'; 100_000];
    long_op.push(0);
    assert_eq!(raw(port, &long_op), [2]);

    // A name that never ends: 16 MiB without a NUL. The peer answers 2 (or resets
    // while the rest is still arriving) and closes; its memory does not follow.
    let rss_before = alice.proc.rss_kib();
    assert!(rss_before > 0, "no VmRSS for the peer");
    let mut c = TcpStream::connect(peer(port)).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = c.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let chunk = vec![b'n'; MIB];
        let _ = writer.write_all(b"GET_FILE\0");
        for _ in 0..16 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let reply = read_until_closed(&mut c, Duration::from_secs(20))
        .expect("the peer did not close an endless name");
    assert!(reply.is_empty() || reply == [2], "{reply:?}");
    sender.join().unwrap();
    let rss_after = alice.proc.rss_kib();
    eprintln!("peer VmRSS: {rss_before} KiB before, {rss_after} KiB after the endless name");
    assert!(
        rss_after < rss_before + 4 * 1024,
        "peer memory grew from {rss_before} KiB to {rss_after} KiB"
    );

    // The silent connection is closed by the peer's request timeout (with code 2 or
    // nothing), not left open.
    let reply = silent
        .join()
        .unwrap()
        .expect("a silent connection was never closed");
    assert!(reply.is_empty() || reply == [2], "{reply:?}");

    // Through all of it the listener serves, raw and to a real client.
    assert_eq!(raw(port, &get(b"ok.txt")), b"\x00hello");
    let down = tempfile::tempdir().unwrap();
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE alice ok.txt got.txt"), "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(down.path().join("got.txt")).unwrap(),
        b"hello"
    );
}

/// Number of connections opened at once against the listener.
const FLOOD: usize = 1000;

#[test]
fn a_thousand_silent_connections_do_not_stop_a_download() {
    // The server probes alice all along: the flood must not make it look dead.
    let s = Server::start(&["--probe-interval", "0.3"]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 64 * MIB, 99);
    let want = file_hash(&share.path().join("big.bin"));
    // 16 MiB/s: a download lasts about 4 s, so the flood lands in the middle of it.
    let alice = serving(
        s.addr,
        share.path(),
        &["--max-upload-rate", "16777216"],
        &["big.bin"],
    );
    let pid = alice.proc.child.id();
    let port = peer_port(s.addr, "alice");
    let threads_idle = threads(pid);
    assert!(threads_idle > 0, "no thread count for the peer");

    let bob_dir = tempfile::tempdir().unwrap();
    let mut bob = Client::start(s.addr, bob_dir.path());
    bob.register_connect("bob");
    bob.send("GET_FILE alice big.bin copy.bin");
    // The download is under way (its request is in: it can no longer be evicted).
    let deadline = Instant::now() + Duration::from_secs(30);
    // (GET_FILE_RANGE writes into the hidden `.copy.bin.peerdex-partial`.)
    let partial = bob_dir.path().join(".copy.bin.peerdex-partial");
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "bob's download did not start");
        thread::sleep(Duration::from_millis(10));
    }

    // 1,000 connections opened at once and left silent.
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let c = TcpStream::connect_timeout(&peer(port), Duration::from_secs(10))
            .expect("the listener stopped accepting");
        flood.push(c);
    }
    // A second download starts while they are open.
    let carol_dir = tempfile::tempdir().unwrap();
    let mut carol = Client::start(s.addr, carol_dir.path());
    carol.register_connect("carol");
    carol.send("GET_FILE alice big.bin copy.bin");
    // The flood holds no more than the listener's cap of threads (64 uploads and 8
    // connections of room for new requests).
    let peak_threads = threads(pid);
    eprintln!("peer threads: {threads_idle} idle, {peak_threads} under the flood");
    assert!(
        peak_threads <= threads_idle + 64 + 8 + 16,
        "{peak_threads} threads in the peer (idle: {threads_idle})"
    );

    assert_eq!(bob.next_message(), "c> GET_FILE OK");
    assert_eq!(carol.next_message(), "c> GET_FILE OK");
    assert_eq!(file_hash(&bob_dir.path().join("copy.bin")), want);
    assert_eq!(file_hash(&carol_dir.path().join("copy.bin")), want);

    // Every silent connection was closed by the peer: evicted to make room, or
    // timed out; none is held open.
    let deadline = Instant::now() + PEER_REQUEST_TIMEOUT + CLOSE_MARGIN;
    for (i, mut c) in flood.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let reply = read_until_closed(&mut c, left.max(Duration::from_millis(100)))
            .unwrap_or_else(|| panic!("silent connection {i} still open"));
        assert!(reply.is_empty() || reply == [2], "{i}: {reply:?}");
    }
    // And the listener is back to normal.
    assert_eq!(raw(port, &get(b"nothing")), [1]);
    assert!(
        !s.proc
            .err_lines()
            .iter()
            .any(|l| l.starts_with("peerdex: DISCONNECT alice: peer unreachable")),
        "alice was dropped during the flood: {:?}",
        s.proc.err_lines()
    );
}
