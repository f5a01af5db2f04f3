//! Issue 14, items 2, 5 and 7 on a real index server: reply memory stays bounded when
//! clients never read, a burst past the connection cap answers every complete request,
//! and a request trickled byte by byte is cut at `--timeout`.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use support::*;

/// Publications and name length: one `SEARCH ""` reply is about 10 MB, as in the
/// issue.
const FILES: usize = 20_000;
const NAME_LEN: usize = 240;

/// Clients that ask for a large list and never read it.
const NON_READERS: usize = 100;

/// The goal for the server with those clients.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

#[test]
fn clients_that_never_read_large_replies_do_not_grow_the_server() {
    // A cap above FILES: `SEARCH ""` must still build the whole 10 MB reply.
    let server = Server::start(&[
        "--quiet",
        "--probe-interval",
        "0",
        "--timeout",
        "10",
        "--max-search-results",
        "100000",
    ]);
    let addr = server.addr;
    assert_eq!(code(addr, &["REGISTER", "alice"]), 0);
    assert_eq!(code(addr, &["CONNECT", "alice", "5000"]), 0);
    // Publish through raw requests, a few connections at a time.
    let workers: Vec<_> = (0..4)
        .map(|w| {
            thread::spawn(move || {
                for i in (w..FILES).step_by(4) {
                    let name = format!("{i:06}{}", "n".repeat(NAME_LEN - 6));
                    let desc = "d".repeat(200);
                    assert_eq!(code(addr, &["PUBLISH", "alice", &name, &desc]), 0);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let before = server.proc.rss_kib();
    // Non-readers: each sends its request and reads nothing, with a small receive
    // buffer so the kernel holds little of the reply for it.
    let mut idle = Vec::new();
    for i in 0..NON_READERS {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&addr.into()).unwrap();
        let mut s: TcpStream = s.into();
        let req = if i % 2 == 0 {
            fields(&["SEARCH", "alice", ""])
        } else {
            fields(&["LIST_CONTENT", "alice", "alice"])
        };
        s.write_all(&req).unwrap();
        idle.push(s);
    }
    // The server has built (or refused) every reply once each non-reader has the
    // start of its reply, or has been closed.
    assert!(
        wait_until(Duration::from_secs(120), || idle
            .iter()
            .all(has_reply_or_closed)),
        "the server did not answer every non-reader"
    );
    // A normal client is still answered.
    let reply = call(addr, &["LIST_USERS", "alice"]);
    assert_eq!(reply.first(), Some(&0), "LIST_USERS: {reply:?}");
    // The high-water mark of its resident memory: every moment counts, not samples.
    let peak = server.proc.peak_rss_kib();
    eprintln!("server RSS: {before} KiB before, peak {peak} KiB with {NON_READERS} non-readers");
    assert!(
        peak < RSS_LIMIT_KIB,
        "server peaked at {peak} KiB with {NON_READERS} non-reading clients"
    );
    drop(idle);
}

/// Clients in the burst and the cap they overrun.
const BURST: usize = 400;
const CAP: &str = "8";

#[test]
fn a_burst_past_the_cap_answers_every_complete_request() {
    let server = Server::start(&["--quiet", "--max-connections", CAP, "--timeout", "10"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..BURST)
        .map(|i| {
            thread::spawn(move || -> Option<u8> {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(20)).ok()?;
                s.write_all(&fields(&["REGISTER", &format!("u{i}")])).ok()?;
                let reply = read_until_closed(&mut s, Duration::from_secs(60))?;
                reply.first().copied()
            })
        })
        .collect();
    let results: Vec<Option<u8>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let unanswered: Vec<usize> = (0..BURST).filter(|&i| results[i].is_none()).collect();
    // No client without a result byte was registered.
    for &i in &unanswered {
        assert_eq!(
            code(addr, &["REGISTER", &format!("u{i}")]),
            0,
            "u{i} got no result byte but was registered"
        );
    }
    for (i, r) in results.iter().enumerate() {
        if let Some(r) = r {
            assert_eq!(*r, 0, "u{i}");
        }
    }
    // Every client sent its whole request at once: every one is answered.
    assert!(
        unanswered.is_empty(),
        "{} of {BURST} complete requests got no result byte: {unanswered:?}",
        unanswered.len()
    );
}

/// `--timeout` of the trickle test, and the pace of the trickle.
const TIMEOUT: u64 = 4;
const TRICKLE: Duration = Duration::from_secs(2);

#[test]
fn a_trickled_request_is_cut_at_the_timeout() {
    let server = Server::start(&["--quiet", "--timeout", &TIMEOUT.to_string()]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"REGISTER\0").unwrap();
    // "slowloris\0": 10 bytes at one per 2 s would take 20 s.
    let trickler = Trickler::start(s.try_clone().unwrap(), b"slowloris\0", TRICKLE);
    let reply = read_until_closed(&mut s, Duration::from_secs(120))
        .expect("the trickled request was not cut");
    // Cut before its last byte: the request never completed (a server that waited
    // for it would have registered "slowloris" and answered 0).
    let written = trickler.written();
    assert_eq!(reply, [2], "REGISTER's any-other-error code");
    assert!(written < 10, "cut after all {written} bytes");
    drop(s);
    trickler.join();
    assert_eq!(code(server.addr, &["REGISTER", "slowloris"]), 0);
}
