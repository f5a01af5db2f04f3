//! Issue 14, items 6 and 7 on a real client's peer listener: stalled downloaders
//! holding every upload slot do not lock a legitimate download out, and a request
//! trickled byte by byte is cut at the request timeout (before it completes).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// How long a peer's upload runs before it may be evicted (src/client/peer/listener.rs
/// `UPLOAD_GRACE`).
const UPLOAD_GRACE: Duration = Duration::from_secs(2);

/// The peer's upload slots (src/client/peer/mod.rs `MAX_UPLOADS`).
const MAX_UPLOADS: usize = 64;

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn get(name: &str) -> Vec<u8> {
    format!("GET_FILE\0{name}\0").into_bytes()
}

/// A shell `alice` serving `share`, connected, with `files` published.
fn serving(server: SocketAddr, share: &Path, files: &[&str]) -> Client {
    let mut alice = Client::start_with(server, share, &["--time-url", NO_TIME_SERVICE]);
    alice.register_connect("alice");
    for f in files {
        assert_eq!(alice.cmd(&format!("PUBLISH {f} test")), "c> PUBLISH OK");
    }
    alice
}

#[test]
fn a_trickled_request_is_cut_at_the_request_timeout() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("ok.txt"), b"hello").unwrap();
    let _alice = serving(s.addr, share.path(), &["ok.txt"]);
    let port = peer_port(s.addr, "alice");

    let mut c = TcpStream::connect(peer(port)).unwrap();
    c.write_all(b"GET_FILE\0").unwrap();
    // 20 bytes at one per 2 s: 40 s, far past the request timeout.
    let trickler = Trickler::start(
        c.try_clone().unwrap(),
        b"abcdefghijklmnopqrs\0",
        Duration::from_secs(2),
    );
    let reply = read_until_closed(&mut c, Duration::from_secs(120))
        .expect("the trickled request was not cut");
    // Cut before its last byte: no timing, the request simply never completed.
    let written = trickler.written();
    assert_eq!(reply, [2], "the any-other-error code");
    assert!(written < 20, "cut after all {written} bytes");
    drop(c);
    trickler.join();
}

/// Size of the file the stalled downloaders ask for: far more than the socket
/// buffers of a connection hold, so their uploads block.
const BIG: usize = 64 * 1024 * 1024;

#[test]
fn stalled_downloaders_do_not_lock_a_download_out() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), BIG, 7);
    let _alice = serving(s.addr, share.path(), &["big.bin"]);
    let port = peer(peer_port(s.addr, "alice"));

    // Every upload slot taken by a downloader that sends its request and reads
    // nothing (with a small receive buffer).
    let mut stalled = Vec::new();
    for _ in 0..MAX_UPLOADS {
        let so = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        so.set_recv_buffer_size(4096).unwrap();
        so.connect(&port.into()).unwrap();
        let mut c: TcpStream = so.into();
        c.write_all(&get("big.bin")).unwrap();
        stalled.push(c);
    }
    // Every stalled upload has started: its first bytes have arrived.
    assert!(
        wait_until(Duration::from_secs(60), || stalled
            .iter()
            .all(has_reply_or_closed)),
        "the stalled downloads did not all start"
    );
    // Then past their grace period (counted from each upload's start, before its
    // first byte arrived), in which they are not evicted. The grace is defined on
    // the clock, so this waits on the clock.
    let all_started = Instant::now();
    assert!(wait_until(Duration::from_secs(30), || all_started
        .elapsed()
        > UPLOAD_GRACE));

    // A legitimate download gets its code, and the whole file follows.
    let started = Instant::now();
    let mut c = TcpStream::connect(port).unwrap();
    c.write_all(&get("big.bin")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut first = [0u8; 1];
    c.read_exact(&mut first)
        .expect("no reply: locked out by stalled downloaders");
    assert_eq!(first[0], 0, "code");
    let header_after = started.elapsed();
    // It got in by evicting a stalled upload, not because they all timed out on
    // their own (10 s without progress): when its code came, the peer had closed
    // some, but not all, of them.
    let closed = stalled
        .iter()
        .filter(|s| far_end_state(s) != Some(1))
        .count();
    assert!(
        (1..MAX_UPLOADS).contains(&closed),
        "{closed} of {MAX_UPLOADS} stalled uploads closed when the download started"
    );
    let rest = read_until_closed(&mut c, Duration::from_secs(60)).expect("download not done");
    // Plain GET_FILE: the content follows the code, no size (PROTOCOL.md section 2).
    assert_eq!(rest.len(), BIG, "whole file");
    eprintln!(
        "legitimate download: header after {header_after:?}, done after {:?}",
        started.elapsed()
    );
    drop(stalled);
}
