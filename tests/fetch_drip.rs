//! Issue 26 item 5 at FETCH level: an owner that answers the discovery and a valid
//! GET_FILE_RANGE header, then drips one byte a second, holds no FETCH: the
//! downloader's minimum rate (4 KiB/s over 10 s) fails it, FETCH says which owner was
//! too slow and fails over to the honest owner, and the file is the right one.
//! Real processes: an index server, a peerdex client serving the file, the
//! downloading client; the dripping owner is raw sockets in this test.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const MIB: usize = 1024 * 1024;

/// The discovery request a peerdex downloader sends first (docs/PROTOCOL.md,
/// "Discovery"), and a peerdex peer's answer.
const PROBE: &[u8] = b"GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0";
const PROBE_ANSWER: &[u8] = b"\0peerdex GET_FILE_RANGE\0";

/// How long one FETCH may take: the 10 s rate window, the honest transfer, and a
/// loaded machine.
const FETCH_DEADLINE: Duration = Duration::from_secs(60);

/// Serves one connection of the dripping owner: the discovery as a peerdex peer,
/// GET_FILE_RANGE with a valid header for `size` bytes, then a byte a second.
fn drip(mut s: TcpStream, size: usize) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    if buf[..n].starts_with(PROBE) {
        let _ = s.write_all(PROBE_ANSWER);
        return;
    }
    if !buf[..n].starts_with(b"GET_FILE_RANGE\0") {
        return;
    }
    if s.write_all(format!("\0{size}\0drip-1\0").as_bytes())
        .is_err()
    {
        return;
    }
    for _ in 0..120 {
        if s.write_all(b"x").is_err() {
            return;
        }
        // The dripping peer's pace, not a wait for anything.
        thread::sleep(Duration::from_secs(1));
    }
}

/// Registers `user` as connected at a listener of this test that drips, and
/// publishes `file` for it. Returns its address.
fn dripping_owner(server: SocketAddr, user: &str, file: &str, size: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    assert_eq!(code(server, &["REGISTER", user]), 0);
    assert_eq!(
        code(server, &["CONNECT", user, &addr.port().to_string()]),
        0
    );
    assert_eq!(code(server, &["PUBLISH", user, file, "same file"]), 0);
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            thread::spawn(move || drip(s, size));
        }
    });
    addr
}

/// Waits (up to [`FETCH_DEADLINE`]) for the `n`-th message line of `c` and returns it.
fn message(c: &Client, n: usize) -> String {
    let deadline = Instant::now() + FETCH_DEADLINE;
    loop {
        let messages: Vec<String> = c
            .proc
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("c> "))
            .collect();
        if messages.len() >= n {
            return messages[n - 1].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no message {n}: {:?} {:?}",
            c.proc.lines(),
            c.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fetch_fails_over_from_a_dripping_owner_to_the_honest_one() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let src = share.path().join("shared.bin");
    write_random(&src, MIB, 52);
    let drip_addr = dripping_owner(s.addr, "drip", "shared.bin", MIB);
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH shared.bin same file"), "c> PUBLISH OK");
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    let mut messages = 2;
    // FETCH tries the owners in random order: fetch until the dripping owner came
    // first (each round where alice comes first ends at once; 20 rounds all alice
    // first has a chance of 1 in a million).
    for round in 0..20 {
        let seen = bob.stderr().len();
        let local = format!("got{round}.bin");
        bob.send(&format!("FETCH shared.bin {local}"));
        messages += 1;
        let msg = message(&bob, messages);
        let said: Vec<String> = bob.stderr()[seen..].to_vec();
        let first = said
            .iter()
            .find_map(|l| l.strip_prefix("peerdex: FETCH shared.bin from "))
            .unwrap_or_else(|| panic!("no owner tried: {said:?}"));
        assert_eq!(msg, "c> FETCH OK", "{said:?}");
        assert_eq!(file_hash(&down.path().join(&local)), file_hash(&src));
        if first.starts_with("alice ") {
            continue;
        }
        assert!(first.starts_with("drip "), "{first}");
        // The slow owner is named, with the reason, then alice is asked.
        let slow = format!("peerdex: FETCH shared.bin from drip ({drip_addr}): too slow:");
        assert!(said.iter().any(|l| l.starts_with(&slow)), "{said:?}");
        assert!(
            said.iter()
                .any(|l| l.starts_with("peerdex: FETCH shared.bin from alice ")),
            "{said:?}"
        );
        return;
    }
    panic!("the dripping owner was never tried first in 20 rounds");
}
