//! Issue 14, items 6 and 7 on a real client's peer listener: stalled downloaders
//! holding every upload slot do not lock a legitimate download out, and a request
//! trickled byte by byte is cut at the request timeout (before it completes). Issue
//! 26 item 7 on a real small file system: a download that does not fit is refused
//! before it starts (also a plain GET_FILE whose reply announces its size, as the
//! 2025 statement's does), and one that fills the disk leaves no partial file.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
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

/// A connection to `port` from the source address `src`, with a small receive
/// buffer.
fn connect_from(src: std::net::Ipv4Addr, port: SocketAddr) -> TcpStream {
    let so = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    so.set_recv_buffer_size(4096).unwrap();
    so.bind(&SocketAddr::from((src, 0)).into()).unwrap();
    so.connect(&port.into()).unwrap();
    so.into()
}

/// How many of the `stalled` downloads the peer has closed (its side of the
/// connection is no longer ESTABLISHED).
fn closed_far_ends(stalled: &[TcpStream]) -> usize {
    far_end_states(stalled)
        .into_iter()
        .filter(|&s| s != Some(1))
        .count()
}

/// Takes every upload slot of the peer at `port` with a downloader (from 127.0.0.1)
/// that sends its request for `name` and reads nothing; returns once every one of
/// those uploads has started (its first bytes have arrived).
fn stall(port: SocketAddr, name: &str) -> Vec<TcpStream> {
    let mut stalled = Vec::new();
    for _ in 0..MAX_UPLOADS {
        let mut c = connect_from(std::net::Ipv4Addr::LOCALHOST, port);
        c.write_all(&get(name)).unwrap();
        stalled.push(c);
    }
    assert!(
        wait_until(Duration::from_secs(60), || stalled
            .iter()
            .all(has_reply_or_closed)),
        "the stalled downloads did not all start"
    );
    stalled
}

#[test]
fn stalled_downloaders_do_not_lock_a_download_out() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), BIG, 7);
    let alice = serving(s.addr, share.path(), &["big.bin"]);
    let port = peer(peer_port(s.addr, "alice"));

    let stalled = stall(port, "big.bin");
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
    // The content is read at once, on a thread of its own: a download this test left
    // unread while it looked at the stalled ones would itself be a stalled one.
    let body = std::thread::spawn(move || read_until_closed(&mut c, Duration::from_secs(60)));
    // It got in by evicting a stalled upload, not because they all timed out on
    // their own (10 s without progress): when its code came, the peer had closed
    // some, but not all, of them.
    let closed = closed_far_ends(&stalled);
    assert!(
        (1..MAX_UPLOADS).contains(&closed),
        "{closed} of {MAX_UPLOADS} stalled uploads closed when the download started"
    );
    let rest = body.join().unwrap().expect("download not done");
    // Plain GET_FILE: the content follows the code, no size (PROTOCOL.md section 2).
    assert_eq!(rest.len(), BIG, "whole file; alice: {:?}", alice.stderr());
    eprintln!(
        "legitimate download: header after {header_after:?}, done after {:?}",
        started.elapsed()
    );
    drop(stalled);
}

/// The stderr line of `c` that says a download had no space (stderr is read by
/// another thread than the message: waited for, up to 30 s).
fn no_space_line(c: &Client) -> String {
    support::wait_until(Duration::from_secs(30), || {
        c.stderr().iter().any(|l| l.contains("no space"))
    });
    c.stderr()
        .into_iter()
        .find(|l| l.contains("no space"))
        .unwrap_or_else(|| panic!("{:?}", c.stderr()))
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_before_it_starts() {
    let Some(disk) = Tmpfs::mount("peer no-space check", "1m") else {
        return;
    };
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 4 * 1024 * 1024, 41);
    let _alice = serving(s.addr, share.path(), &["big.bin"]);
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, disk.path(), state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE alice big.bin got"), "c> GET_FILE FAIL");
    let said = no_space_line(&bob);
    assert!(said.contains("needs 4194304 bytes"), "{said}");
    assert!(said.contains("are free there"), "{said}");
    assert_eq!(dir_names(disk.path()), Vec::<String>::new());
}

#[test]
fn a_download_that_fills_the_disk_leaves_no_partial_file() {
    let Some(disk) = Tmpfs::mount("peer disk-full cleanup", "4m") else {
        return;
    };
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 3 * 1024 * 1024, 42);
    // 256 KiB/s: the disk fills while the transfer runs.
    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &["--time-url", NO_TIME_SERVICE, "--max-upload-rate", "262144"],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH big.bin b"), "c> PUBLISH OK");
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, disk.path(), state.path(), &[]);
    bob.register_connect("bob");
    bob.send("GET_FILE alice big.bin got");
    wait_bytes(&disk.path().join(".got.peerdex-partial"), 0);
    disk.fill();
    assert_eq!(bob.next_message(), "c> GET_FILE FAIL", "{:?}", bob.stderr());
    // Before the fix the partial stayed, holding the space the disk lacks.
    assert_eq!(dir_names(disk.path()), vec!["filler".to_string()]);
    assert!(bob.stderr_has("No space left"), "{:?}", bob.stderr());
}

/// A statement peer registered as `user` with `file`: it answers the discovery with
/// 1 (no such file), and a GET_FILE with 0, the size string when `sized` (2025),
/// and `size` bytes (sent until the downloader stops reading).
fn statement_peer(server: SocketAddr, user: &str, file: &str, size: usize, sized: bool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    assert_eq!(code(server, &["REGISTER", user]), 0);
    assert_eq!(code(server, &["CONNECT", user, &port]), 0);
    assert_eq!(code(server, &["PUBLISH", user, file, "big"]), 0);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(b"GET_FILE\0/proc/0/peerdex/") {
                let _ = s.write_all(b"\x01");
                continue;
            }
            let header = if sized {
                format!("\0{size}\0")
            } else {
                "\0".to_owned()
            };
            let _ = s.write_all(header.as_bytes());
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size && s.write_all(&chunk).is_ok() {
                sent += chunk.len();
            }
        }
    });
}

#[test]
fn a_plain_get_file_announcing_more_than_the_free_space_is_refused_before_writing() {
    let Some(disk) = Tmpfs::mount("plain GET_FILE no-space check", "1m") else {
        return;
    };
    let s = Server::start(&["--probe-interval", "0"]);
    statement_peer(
        s.addr,
        "carol",
        "/home/carol/big.bin",
        4 * 1024 * 1024,
        true,
    );
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, disk.path(), state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(
        bob.cmd("GET_FILE carol /home/carol/big.bin got"),
        "c> GET_FILE FAIL"
    );
    // Before the fix: the disk filled, then "No space left on device".
    let said = no_space_line(&bob);
    assert!(said.contains("needs 4194304 bytes"), "{said}");
    // Nothing was written, nothing is left.
    assert_eq!(dir_names(disk.path()), Vec::<String>::new());
}

#[test]
fn a_plain_get_file_without_a_size_that_fills_the_disk_leaves_no_file() {
    let Some(disk) = Tmpfs::mount("plain GET_FILE disk-full cleanup", "1m") else {
        return;
    };
    let s = Server::start(&["--probe-interval", "0"]);
    // The 2024 statement's reply: no size to check beforehand.
    statement_peer(s.addr, "carol", "big.bin", 4 * 1024 * 1024, false);
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, disk.path(), state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE carol big.bin got"), "c> GET_FILE FAIL");
    assert!(bob.stderr_has("No space left"), "{:?}", bob.stderr());
    // The temporary file went with the failure.
    assert_eq!(dir_names(disk.path()), Vec::<String>::new());
}

#[test]
fn another_address_is_served_while_one_address_holds_every_slot() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), BIG, 9);
    let alice = serving(s.addr, share.path(), &["big.bin"]);
    let port = peer(peer_port(s.addr, "alice"));
    // One address holds every slot with downloads young enough (inside the eviction
    // grace) that none may be evicted as the slowest.
    let stalled = stall(port, "big.bin");
    // A downloader from another address, with no upload running, gets in at once.
    let mut c = connect_from(OTHER_HOST, port);
    c.write_all(&get("big.bin")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut first = [0u8; 1];
    // Before the fix: code 2, all 64 slots busy.
    c.read_exact(&mut first)
        .expect("no reply within 3 s: locked out by another address");
    assert_eq!(first[0], 0, "code");
    let body = std::thread::spawn(move || read_until_closed(&mut c, Duration::from_secs(60)));
    // It took the slot of one of the address holding them all.
    let closed = closed_far_ends(&stalled);
    assert!(
        (1..MAX_UPLOADS).contains(&closed),
        "{closed} of {MAX_UPLOADS} stalled uploads closed"
    );
    let rest = body.join().unwrap().expect("download not done");
    assert_eq!(rest.len(), BIG, "whole file; alice: {:?}", alice.stderr());
    drop(stalled);
}
