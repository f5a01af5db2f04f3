//! Issue 14, items 6 and 7 on a real client's peer listener: stalled downloaders
//! holding every upload slot do not lock a legitimate download out, and a request
//! trickled byte by byte is cut at the request timeout.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// The peer listener's request timeout (src/client/peer/mod.rs `REQUEST_TIMEOUT`).
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    let started = Instant::now();
    let mut w = c.try_clone().unwrap();
    // 20 bytes at one per 2 s: 40 s, far past the request timeout.
    let trickler = thread::spawn(move || {
        for b in b"abcdefghijklmnopqrs\0" {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(2));
        }
    });
    let reply = read_until_closed(&mut c, Duration::from_secs(25))
        .expect("the trickled request was not cut");
    let took = started.elapsed();
    assert_eq!(reply, [2], "the any-other-error code");
    assert!(
        took < PEER_REQUEST_TIMEOUT + Duration::from_secs(5),
        "closed after {took:?}"
    );
    drop(c);
    let _ = trickler.join();
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
    // Past the uploads' grace period, in which they are not evicted.
    thread::sleep(Duration::from_secs(3));

    // A legitimate download: its code comes well before a stalled upload would
    // time out on its own (10 s without progress), and the whole file follows.
    let started = Instant::now();
    let mut c = TcpStream::connect(port).unwrap();
    c.write_all(&get("big.bin")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut first = [0u8; 1];
    c.read_exact(&mut first)
        .expect("no reply within 8 s: locked out by stalled downloaders");
    assert_eq!(first[0], 0, "code");
    let header_after = started.elapsed();
    let rest = read_until_closed(&mut c, Duration::from_secs(60)).expect("download not done");
    // Plain GET_FILE: the content follows the code, no size (PROTOCOL.md section 2).
    assert_eq!(rest.len(), BIG, "whole file");
    eprintln!(
        "legitimate download: header after {header_after:?}, done after {:?}",
        started.elapsed()
    );
    drop(stalled);
}
