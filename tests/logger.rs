//! The audit logger and the server's shipper as real processes on real sockets:
//! raw ONC-RPC bytes over TCP and UDP, every reject path, hostile input, and the
//! fault runs (logger killed mid-run, server killed mid-run).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

const PROG: u32 = 0x2000_0001;

// ---- raw RPC bytes, written here independently of the crate's encoder ----

fn be(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn xdr_string(s: &[u8]) -> Vec<u8> {
    let mut out = be(s.len() as u32).to_vec();
    out.extend_from_slice(s);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

/// AUTH_NONE credential or verifier.
fn auth_none() -> Vec<u8> {
    [be(0), be(0)].concat()
}

/// AUTH_SYS credential: stamp, machine name, uid, gid, gids.
fn auth_sys() -> Vec<u8> {
    let mut body = be(1234).to_vec();
    body.extend(xdr_string(b"testhost"));
    body.extend(be(1000));
    body.extend(be(1000));
    body.extend(be(1));
    body.extend(be(27));
    [be(1).to_vec(), be(body.len() as u32).to_vec(), body].concat()
}

/// A call message without record mark.
fn call_with(
    xid: u32,
    rpcvers: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred: &[u8],
    args: &[u8],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend(be(xid));
    m.extend(be(0)); // CALL
    m.extend(be(rpcvers));
    m.extend(be(prog));
    m.extend(be(vers));
    m.extend(be(proc_));
    m.extend_from_slice(cred);
    m.extend(auth_none());
    m.extend_from_slice(args);
    m
}

fn call(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    call_with(xid, 2, prog, vers, proc_, &auth_none(), args)
}

fn record(msg: &[u8]) -> Vec<u8> {
    let mut r = be(msg.len() as u32 | 1 << 31).to_vec();
    r.extend_from_slice(msg);
    r
}

fn v2_args(server: u64, seq: u64, user: &str, op: &str, dt: &str) -> Vec<u8> {
    let mut a = server.to_be_bytes().to_vec();
    a.extend(seq.to_be_bytes());
    a.extend(xdr_string(user.as_bytes()));
    a.extend(xdr_string(op.as_bytes()));
    a.extend(xdr_string(dt.as_bytes()));
    a
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// accept_stat and what follows it.
    Accepted(u32, Vec<u8>),
    /// reject_stat and what follows it.
    Denied(u32, Vec<u8>),
}

const SUCCESS: u32 = 0;
const PROG_UNAVAIL: u32 = 1;
const PROG_MISMATCH: u32 = 2;
const PROC_UNAVAIL: u32 = 3;
const GARBAGE_ARGS: u32 = 4;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
}

fn parse_reply(xid: u32, msg: &[u8]) -> Reply {
    assert_eq!(word(msg, 0), xid, "reply xid");
    assert_eq!(word(msg, 1), 1, "message type REPLY");
    match word(msg, 2) {
        0 => {
            // verifier: flavor, length, body
            let vlen = word(msg, 4) as usize;
            let at = 20 + vlen.div_ceil(4) * 4;
            Reply::Accepted(word(&msg[at..], 0), msg[at + 4..].to_vec())
        }
        1 => Reply::Denied(word(msg, 3), msg[16..].to_vec()),
        s => panic!("bad reply_stat {s}"),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to logger");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one single-fragment reply record; None when the logger closed.
fn read_reply(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).ok()?;
    let h = u32::from_be_bytes(h);
    assert!(h & 1 << 31 != 0, "replies are single fragments");
    let mut body = vec![0u8; (h & !(1 << 31)) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn tcp(addr: SocketAddr, msg: &[u8]) -> Reply {
    let mut s = connect(addr);
    s.write_all(&record(msg)).unwrap();
    let body = read_reply(&mut s).expect("a reply");
    parse_reply(word(msg, 0), &body)
}

fn udp(addr: SocketAddr, msg: &[u8]) -> Option<Reply> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // UDP may lose a datagram even on loopback under load: try three times.
    for _ in 0..3 {
        s.send_to(msg, addr).unwrap();
        let mut buf = [0u8; 2048];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(parse_reply(word(msg, 0), &buf[..n]));
        }
    }
    None
}

fn status(r: Reply) -> i32 {
    match r {
        Reply::Accepted(SUCCESS, rest) => {
            assert_eq!(rest.len(), 4, "one int result");
            word(&rest, 0) as i32
        }
        other => panic!("LOG v2 failed: {other:?}"),
    }
}

fn logger(dir: &Path, extra: &[&str]) -> Logger {
    let audit = dir.join("audit.jsonl");
    let mut args = vec!["--no-portmap", "--audit", audit.to_str().unwrap()];
    args.extend_from_slice(extra);
    Logger::start(&args)
}

fn audit_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
        .collect()
}

// ---- the interface ----

#[test]
fn null_answers_in_every_version_over_tcp_and_udp() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    for vers in [1, 2, 3] {
        assert_eq!(
            tcp(l.addr(), &call(10 + vers, PROG, vers, 0, &[])),
            Reply::Accepted(SUCCESS, vec![])
        );
        assert_eq!(
            udp(l.addr(), &call(20 + vers, PROG, vers, 0, &[])),
            Some(Reply::Accepted(SUCCESS, vec![]))
        );
    }
}

#[test]
fn log_v1_prints_the_string_and_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    // The result is an int 0, which `void` and `int` clients both decode
    // (issue 25).
    let args = xdr_string(b"alice    REGISTER    17/12/2014 13:20:35");
    assert_eq!(
        tcp(l.addr(), &call(1, PROG, 1, 1, &args)),
        Reply::Accepted(SUCCESS, vec![0; 4])
    );
    let args = xdr_string(b"bob over udp");
    assert_eq!(
        udp(l.addr(), &call(2, PROG, 1, 1, &args)),
        Some(Reply::Accepted(SUCCESS, vec![0; 4]))
    );
    assert!(
        l.proc
            .wait_line(Duration::from_secs(5), |x| x == "bob over udp")
            .is_some()
    );
    assert_eq!(
        count_lines(&l.proc, "alice    REGISTER    17/12/2014 13:20:35"),
        1
    );
    let lines = audit_lines(dir.path());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[1]["text"], "bob over udp");
}

#[test]
fn log_v2_stores_once_and_acknowledges_duplicates_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = logger(dir.path(), &[]);
    let a = v2_args(77, 1, "alice", "PUBLISH notes.txt", "17/12/2014 13:20:35");
    assert_eq!(status(tcp(l.addr(), &call(1, PROG, 2, 1, &a))), 0);
    assert_eq!(status(tcp(l.addr(), &call(2, PROG, 2, 1, &a))), 1);
    let b = v2_args(77, 2, "bob", "LIST_USERS", "17/12/2014 13:20:36");
    // Over TCP too: datagrams for a server whose records came over TCP are refused.
    assert_eq!(status(tcp(l.addr(), &call(3, PROG, 2, 1, &b))), 0);
    assert!(
        l.proc
            .wait_line(Duration::from_secs(5), |x| x
                == "bob    LIST_USERS    17/12/2014 13:20:36")
            .is_some()
    );
    assert_eq!(
        count_lines(&l.proc, "alice    PUBLISH notes.txt    17/12/2014 13:20:35"),
        1
    );
    // A new logger process on the same audit file still knows both records.
    l.proc.signal("INT");
    assert!(l.proc.wait_exit(Duration::from_secs(10)).is_some());
    let l = logger(dir.path(), &[]);
    assert_eq!(status(tcp(l.addr(), &call(4, PROG, 2, 1, &a))), 1);
    assert_eq!(status(tcp(l.addr(), &call(5, PROG, 2, 1, &b))), 1);
    let c = v2_args(78, 1, "carol", "REGISTER", "17/12/2014 13:20:37");
    assert_eq!(status(tcp(l.addr(), &call(6, PROG, 2, 1, &c))), 0);
    let lines = audit_lines(dir.path());
    let users: Vec<&str> = lines.iter().map(|v| v["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["alice", "bob", "carol"]);
    assert_eq!(lines[0]["server"], "000000000000004d");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["operation"], "PUBLISH notes.txt");
}

#[test]
fn every_reject_path_answers_like_an_rpcgen_server() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let a = l.addr();
    // Another program.
    assert_eq!(
        tcp(a, &call(1, PROG + 1, 1, 0, &[])),
        Reply::Accepted(PROG_UNAVAIL, vec![])
    );
    // Another version: PROG_MISMATCH low 1 high 3.
    let mismatch = Reply::Accepted(PROG_MISMATCH, [be(1), be(3)].concat());
    assert_eq!(tcp(a, &call(2, PROG, 4, 0, &[])), mismatch);
    assert_eq!(tcp(a, &call(3, PROG, 0, 0, &[])), mismatch);
    // Another procedure.
    assert_eq!(
        tcp(a, &call(4, PROG, 1, 2, &[])),
        Reply::Accepted(PROC_UNAVAIL, vec![])
    );
    assert_eq!(
        tcp(a, &call(5, PROG, 2, 9, &[])),
        Reply::Accepted(PROC_UNAVAIL, vec![])
    );
    // Undecodable arguments: truncated, over a bound, not UTF-8, trailing bytes.
    let garbage = Reply::Accepted(GARBAGE_ARGS, vec![]);
    assert_eq!(tcp(a, &call(6, PROG, 1, 1, &be(10))), garbage);
    assert_eq!(tcp(a, &call(7, PROG, 2, 1, &[0; 12])), garbage);
    let long_user = v2_args(1, 1, &"u".repeat(257), "REGISTER", "x");
    assert_eq!(tcp(a, &call(8, PROG, 2, 1, &long_user)), garbage);
    assert_eq!(
        tcp(a, &call(9, PROG, 1, 1, &xdr_string(&[0xff, 0xfe]))),
        garbage
    );
    let mut trailing = v2_args(1, 1, "u", "REGISTER", "x");
    trailing.extend(be(0));
    assert_eq!(tcp(a, &call(10, PROG, 2, 1, &trailing)), garbage);
    // RPC version other than 2: MSG_DENIED RPC_MISMATCH low 2 high 2.
    assert_eq!(
        tcp(a, &call_with(11, 3, PROG, 1, 0, &auth_none(), &[])),
        Reply::Denied(RPC_MISMATCH, [be(2), be(2)].concat())
    );
    // AUTH_SYS accepted; other flavors get AUTH_ERROR AUTH_REJECTEDCRED (2).
    assert_eq!(
        tcp(a, &call_with(12, 2, PROG, 2, 0, &auth_sys(), &[])),
        Reply::Accepted(SUCCESS, vec![])
    );
    let short = [be(2).to_vec(), be(4).to_vec(), b"abcd".to_vec()].concat();
    assert_eq!(
        tcp(a, &call_with(13, 2, PROG, 2, 0, &short, &[])),
        Reply::Denied(AUTH_ERROR, be(2).to_vec())
    );
    // The same over UDP.
    assert_eq!(
        udp(a, &call(14, PROG + 1, 1, 0, &[])),
        Some(Reply::Accepted(PROG_UNAVAIL, vec![]))
    );
    assert_eq!(udp(a, &call(15, PROG, 7, 0, &[])), Some(mismatch));
    assert_eq!(
        udp(a, &call(16, PROG, 1, 5, &[])),
        Some(Reply::Accepted(PROC_UNAVAIL, vec![]))
    );
    assert_eq!(udp(a, &call(17, PROG, 2, 1, &[1, 2])), Some(garbage));
    assert_eq!(
        udp(a, &call_with(18, 1, PROG, 1, 0, &auth_none(), &[])),
        Some(Reply::Denied(RPC_MISMATCH, [be(2), be(2)].concat()))
    );
    // None of that was stored.
    assert!(audit_lines(dir.path()).is_empty());
}

#[test]
fn a_record_of_several_fragments_is_joined() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let msg = call(5, PROG, 2, 1, &v2_args(9, 1, "frag", "REGISTER", "d"));
    let mut bytes = Vec::new();
    let chunks: Vec<&[u8]> = msg.chunks(7).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { 1 << 31 } else { 0 };
        bytes.extend(be(c.len() as u32 | last));
        bytes.extend_from_slice(c);
    }
    let mut s = connect(l.addr());
    s.write_all(&bytes).unwrap();
    let body = read_reply(&mut s).unwrap();
    assert_eq!(status(parse_reply(5, &body)), 0);
    assert_eq!(audit_lines(dir.path())[0]["user"], "frag");
}

#[test]
fn pipelined_calls_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let mut bytes = Vec::new();
    for i in 0..300u32 {
        let args = v2_args(3, u64::from(i) + 1, &format!("u{i}"), "REGISTER", "d");
        bytes.extend(record(&call(1000 + i, PROG, 2, 1, &args)));
    }
    let mut s = connect(l.addr());
    s.write_all(&bytes).unwrap();
    for i in 0..300u32 {
        let body = read_reply(&mut s).expect("reply");
        assert_eq!(status(parse_reply(1000 + i, &body)), 0);
    }
    let users: Vec<String> = audit_lines(dir.path())
        .iter()
        .map(|v| v["user"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    assert_eq!(users, want);
}

// ---- hostile input ----

#[test]
fn a_2gb_fragment_header_costs_bounded_memory_and_the_logger_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    for _ in 0..20 {
        let mut s = connect(l.addr());
        s.write_all(&be(0xffff_fff0)).unwrap();
        s.write_all(&[0u8; 1000]).unwrap();
        // The logger closes the connection instead of waiting for 2 GB.
        let mut buf = [0u8; 16];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    assert!(
        l.proc.peak_rss_kib() < 64 * 1024,
        "{} KiB",
        l.proc.peak_rss_kib()
    );
    assert_eq!(
        tcp(l.addr(), &call(1, PROG, 1, 0, &[])),
        Reply::Accepted(SUCCESS, vec![])
    );
}

#[test]
fn truncated_records_and_garbage_headers_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    // A record cut short by the client closing.
    {
        let mut s = connect(l.addr());
        s.write_all(&be(100 | 1 << 31)).unwrap();
        s.write_all(&[0u8; 10]).unwrap();
    }
    // A complete record that is not a call: no reply, connection closed.
    let mut s = connect(l.addr());
    s.write_all(&record(&[0, 0, 0, 1, 0, 0, 0, 1])).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    // A credential that runs past the end of the message.
    let mut s = connect(l.addr());
    let mut bad = call(3, PROG, 1, 0, &[]);
    bad.truncate(28);
    bad.extend(be(1000));
    s.write_all(&record(&bad)).unwrap();
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    assert_eq!(
        tcp(l.addr(), &call(4, PROG, 2, 0, &[])),
        Reply::Accepted(SUCCESS, vec![])
    );
}

#[test]
fn garbage_datagrams_are_dropped_and_udp_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for junk in [
        &[][..],
        &[1, 2, 3][..],
        &[0xff; 1500][..],
        &[0, 0, 0, 1, 0, 0, 0, 1][..],
    ] {
        s.send_to(junk, l.addr()).unwrap();
    }
    let mut buf = [0u8; 64];
    assert!(s.recv_from(&mut buf).is_err(), "garbage got an answer");
    assert_eq!(
        udp(l.addr(), &call(9, PROG, 1, 0, &[])),
        Some(Reply::Accepted(SUCCESS, vec![]))
    );
}

#[test]
fn without_a_portmapper_it_says_so_once_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let l = Logger::start(&[
        "--portmapper",
        &dead.to_string(),
        "--audit",
        audit.to_str().unwrap(),
    ]);
    let line = l
        .proc
        .wait_line(Duration::from_secs(10), |x| {
            x.starts_with("l> no portmapper")
        })
        .expect("no-portmapper line");
    assert!(line.contains(&format!("port {}", l.port)), "{line}");
    assert_eq!(
        tcp(l.addr(), &call(1, PROG, 1, 0, &[])),
        Reply::Accepted(SUCCESS, vec![])
    );
    let n = l
        .proc
        .lines()
        .iter()
        .filter(|x| x.starts_with("l> no portmapper"))
        .count();
    assert_eq!(n, 1);
}

#[test]
fn sigint_stops_the_logger_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = logger(dir.path(), &["--program", "0x20000777"]);
    assert_eq!(
        tcp(l.addr(), &call(1, 0x2000_0777, 1, 0, &[])),
        Reply::Accepted(SUCCESS, vec![])
    );
    l.proc.signal("INT");
    let status = l.proc.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(status.success());
    assert!(l.proc.lines().iter().any(|x| x == "l> logger stopped"));
}

// ---- the server side ----

fn users_in_audit(dir: &Path) -> Vec<String> {
    audit_lines(dir)
        .iter()
        .filter(|v| v["version"] != 1)
        .map(|v| v["user"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn server_records_reach_the_logger_as_protocol_lines() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    assert_eq!(
        code(s.addr, &["REGISTER", "17/12/2014 13:20:35", "alice"]),
        0
    );
    assert_eq!(
        code(s.addr, &["CONNECT", "17/12/2014 13:20:36", "alice", "4000"]),
        0
    );
    assert_eq!(
        code(
            s.addr,
            &[
                "PUBLISH",
                "17/12/2014 13:20:37",
                "alice",
                "notes.txt",
                "my notes"
            ]
        ),
        0
    );
    assert_eq!(
        code(
            s.addr,
            &["DELETE", "17/12/2014 13:20:38", "alice", "notes.txt"]
        ),
        0
    );
    assert_eq!(
        code(s.addr, &["LIST_USERS", "17/12/2014 13:20:39", "alice"]),
        0
    );
    let want = [
        "alice    REGISTER    17/12/2014 13:20:35",
        "alice    CONNECT    17/12/2014 13:20:36",
        "alice    PUBLISH notes.txt    17/12/2014 13:20:37",
        "alice    DELETE notes.txt    17/12/2014 13:20:38",
        "alice    LIST_USERS    17/12/2014 13:20:39",
    ];
    assert!(
        wait_until(Duration::from_secs(20), || {
            let lines = l.proc.lines();
            want.iter().all(|w| lines.iter().any(|x| x == w))
        }),
        "logger printed {:?}",
        l.proc.lines()
    );
    let printed: Vec<String> = l
        .proc
        .lines()
        .into_iter()
        .filter(|x| !x.starts_with("l> "))
        .collect();
    assert_eq!(printed, want);
}

#[test]
fn logger_host_from_the_environment_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let spool = dir.path().join("spool");
    let mut cmd = Command::new(bin());
    cmd.args([
        "server",
        "-p",
        "0",
        "--bind",
        "127.0.0.1",
        "--ephemeral",
        "--spool",
    ])
    .arg(&spool)
    .env("LOGGER_HOST", format!("127.0.0.1:{}", l.port));
    let p = Proc::start_with(&mut cmd);
    let line = p
        .wait_line(Duration::from_secs(10), |x| {
            x.starts_with("s> init server ")
        })
        .unwrap();
    let addr: SocketAddr = line["s> init server ".len()..].parse().unwrap();
    assert_eq!(code(addr, &["REGISTER", "envuser"]), 0);
    assert!(wait_until(Duration::from_secs(20), || users_in_audit(
        dir.path()
    ) == ["envuser"]));
}

#[test]
fn no_logger_creates_no_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = Server::start(&["--no-logger", "--spool", spool.to_str().unwrap()]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 0);
    assert!(!spool.exists());
}

#[test]
fn a_logger_that_never_answers_does_not_hold_up_requests() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel does) but never reads or replies.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &silent.local_addr().unwrap().to_string(),
        "--spool",
        spool.to_str().unwrap(),
        "--quiet",
    ]);
    for i in 0..300 {
        assert_eq!(code(s.addr, &["REGISTER", &format!("u{i}")]), 0);
    }
    // Every record is waiting in the spool.
    let spooled: usize = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(spooled, 300);
}

// ---- faults ----

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn logger_killed_and_restarted_mid_run_loses_and_repeats_nothing() {
    const OPS: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut l = logger(dir.path(), &["--port", &port]);
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{port}"),
        "--spool",
        spool.to_str().unwrap(),
        "--quiet",
    ]);
    for i in 0..OPS {
        if i == 1500 {
            l.proc.child.kill().unwrap(); // SIGKILL
            l.proc.wait_exit(Duration::from_secs(10)).unwrap();
        }
        if i == 3000 {
            l = logger(dir.path(), &["--port", &port]);
        }
        assert_eq!(code(s.addr, &["REGISTER", &format!("k{i}")]), 0, "op {i}");
    }
    // One record more, last: the spool is shipped in order, so once it is in the
    // audit file, any record sent again (a duplicate) would have come before it.
    assert_eq!(code(s.addr, &["REGISTER", "last"]), 0);
    let mut want = expected("k", OPS);
    want.push("last".into());
    assert!(
        wait_until(Duration::from_secs(60), || users_in_audit(dir.path())
            .last()
            .is_some_and(|u| u == "last")),
        "only {} of {} records arrived",
        users_in_audit(dir.path()).len(),
        want.len()
    );
    let lines = audit_lines(dir.path());
    assert_eq!(users_in_audit(dir.path()), want);
    let seqs: Vec<u64> = lines.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=want.len() as u64).collect::<Vec<_>>());
    drop(l);
}

#[test]
fn server_killed_mid_run_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let spool = dir.path().join("spool");
    let logger_addr = format!("127.0.0.1:{port}");
    let server_args = [
        "--logger",
        logger_addr.as_str(),
        "--spool",
        spool.to_str().unwrap(),
        "--quiet",
    ];
    let mut l = logger(dir.path(), &["--port", &port]);
    let mut s = Server::start(&server_args);
    let mut acked = Vec::new();
    for i in 0..1000 {
        if i == 400 {
            // The logger goes away: what follows piles up in the spool.
            l.proc.child.kill().unwrap();
            l.proc.wait_exit(Duration::from_secs(10)).unwrap();
        }
        let user = format!("s{i}");
        assert_eq!(code(s.addr, &["REGISTER", &user]), 0);
        acked.push(user);
    }
    s.proc.child.kill().unwrap(); // SIGKILL, mid-run
    s.proc.wait_exit(Duration::from_secs(10)).unwrap();
    drop(s);
    // Both come back; the new server finds the spool the old one left.
    let l = logger(dir.path(), &["--port", &port]);
    let s = Server::start(&server_args);
    assert_eq!(code(s.addr, &["REGISTER", "after"]), 0);
    acked.push("after".into());
    // The new server delivers the dead one's spool first, then its own, each in
    // order: once the dead server's spool file is gone (all of it acknowledged) and
    // "after" (the new server's last record) is in, nothing more is on its way.
    assert!(
        wait_until(Duration::from_secs(60), || {
            std::fs::read_dir(&spool).unwrap().count() == 1
                && users_in_audit(dir.path())
                    .last()
                    .is_some_and(|u| u == "after")
        }),
        "only {} of {} records arrived",
        users_in_audit(dir.path()).len(),
        acked.len()
    );
    assert_eq!(users_in_audit(dir.path()), acked);
    drop(l);
}

#[test]
fn a_stuck_stdout_neither_blocks_logging_nor_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let port = free_port();
    // stdout is a pipe that nobody reads: it fills after ~64 KiB of lines.
    let mut child = Command::new(bin())
        .args(["logger", "--bind", "127.0.0.1", "--no-portmap", "--audit"])
        .arg(&audit)
        .arg("--port")
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(
        addr
    )
    .is_ok()));
    let mut s = connect(addr);
    let user = "u".repeat(200);
    for batch in 0..10u32 {
        let mut bytes = Vec::new();
        for i in 0..200u32 {
            let seq = u64::from(batch * 200 + i + 1);
            bytes.extend(record(&call(
                i,
                PROG,
                2,
                1,
                &v2_args(5, seq, &user, "REGISTER", "d"),
            )));
        }
        s.write_all(&bytes).unwrap();
        for i in 0..200u32 {
            let body = read_reply(&mut s).expect("reply while stdout is stuck");
            assert_eq!(status(parse_reply(i, &body)), 0);
        }
    }
    assert_eq!(audit_lines(dir.path()).len(), 2000);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let exited = wait_until(Duration::from_secs(15), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(exited, "the logger hung at exit on a stuck stdout");
}

#[test]
fn records_undelivered_at_a_clean_stop_are_sent_by_the_next_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let spool = dir.path().join("spool");
    let logger_addr = format!("127.0.0.1:{port}");
    let server_args = [
        "--logger",
        logger_addr.as_str(),
        "--spool",
        spool.to_str().unwrap(),
        "--quiet",
    ];
    // No logger yet: the records wait, and SIGINT does not wait for it.
    let mut s = Server::start(&server_args);
    for i in 0..10 {
        assert_eq!(code(s.addr, &["REGISTER", &format!("c{i}")]), 0);
    }
    s.proc.signal("INT");
    let status = s
        .proc
        .wait_exit(Duration::from_secs(15))
        .expect("server exit");
    assert!(status.success());
    drop(s);
    let l = logger(dir.path(), &["--port", &port]);
    let _s = Server::start(&server_args);
    assert!(wait_until(Duration::from_secs(30), || users_in_audit(
        dir.path()
    )
    .len()
        >= 10));
    assert_eq!(users_in_audit(dir.path()), expected("c", 10));
    drop(l);
}

#[test]
fn a_forged_record_cannot_silence_a_servers_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let reg = |user: &str| {
        assert_eq!(code(s.addr, &["REGISTER", "17/12/2014 13:20:35", user]), 0);
    };
    reg("first");
    assert!(wait_until(Duration::from_secs(20), || {
        users_in_audit(dir.path()) == ["first"]
    }));
    // The server's id is no secret (audit file, spool file name).
    let id =
        u64::from_str_radix(audit_lines(dir.path())[0]["server"].as_str().unwrap(), 16).unwrap();
    let forged = |user| v2_args(id, u64::MAX, user, "UNREGISTER", "17/12/2014 13:20:36");
    // LOG_REFUSED, not stored: over UDP (a datagram for a TCP sender, and far
    // past the window) and over TCP (far past the window).
    assert_eq!(
        status(udp(l.addr(), &call(90, PROG, 2, 1, &forged("mallory"))).unwrap()),
        3
    );
    assert_eq!(
        status(tcp(l.addr(), &call(91, PROG, 2, 1, &forged("mallory")))),
        3
    );
    let next = v2_args(id, 2, "mallory", "UNREGISTER", "17/12/2014 13:20:36");
    assert_eq!(
        status(udp(l.addr(), &call(92, PROG, 2, 1, &next)).unwrap()),
        3
    );
    let later = expected("later", 20);
    for u in &later {
        reg(u);
    }
    let want: Vec<String> = std::iter::once("first".to_owned()).chain(later).collect();
    assert!(
        wait_until(Duration::from_secs(20), || users_in_audit(dir.path())
            == want),
        "audit file holds {:?}",
        users_in_audit(dir.path())
    );
    assert_eq!(
        count_lines(&l.proc, "mallory    UNREGISTER    17/12/2014 13:20:36"),
        0
    );
}

// ---- outcomes: LOG version 3 carries the result code ----

/// The operations, users and results of the server records in the audit file.
fn outcomes(dir: &Path) -> Vec<(u64, String, Option<i64>)> {
    audit_lines(dir)
        .iter()
        .filter(|v| v["version"] != 1)
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["operation"].as_str().unwrap().to_owned(),
                v["result"].as_i64(),
            )
        })
        .collect()
}

/// alice connects from 127.0.0.1; an UNREGISTER for her from 127.0.0.2 (another
/// host) is refused, one for a user who does not exist fails, and her own
/// succeeds. Returns the lines a version 3 logger prints for them.
fn refused_and_real_unregisters(s: &Server) -> Vec<&'static str> {
    let home = Ipv4Addr::LOCALHOST;
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let code_from = |ip, parts: &[&str]| {
        let reply = call_from(ip, s.addr, parts);
        assert_eq!(reply.len(), 1, "{parts:?}: {reply:?}");
        reply[0]
    };
    assert_eq!(
        code_from(home, &["REGISTER", "17/12/2014 13:20:35", "alice"]),
        0
    );
    assert_eq!(
        code_from(home, &["CONNECT", "17/12/2014 13:20:36", "alice", "4000"]),
        0
    );
    assert_eq!(
        code_from(other, &["UNREGISTER", "17/12/2014 13:20:37", "alice"]),
        2
    );
    assert_eq!(
        code_from(home, &["UNREGISTER", "17/12/2014 13:20:38", "bob"]),
        1
    );
    assert_eq!(
        code_from(home, &["DISCONNECT", "17/12/2014 13:20:39", "alice"]),
        0
    );
    assert_eq!(
        code_from(home, &["UNREGISTER", "17/12/2014 13:20:40", "alice"]),
        0
    );
    vec![
        "alice    REGISTER    17/12/2014 13:20:35",
        "alice    CONNECT    17/12/2014 13:20:36",
        "alice    UNREGISTER REFUSED from 127.0.0.2    17/12/2014 13:20:37    FAIL 2 ERROR",
        "bob    UNREGISTER    17/12/2014 13:20:38    FAIL 1 USER DOES NOT EXIST",
        "alice    DISCONNECT    17/12/2014 13:20:39",
        "alice    UNREGISTER    17/12/2014 13:20:40",
    ]
}

fn printed(l: &Logger) -> Vec<String> {
    l.proc
        .lines()
        .into_iter()
        .filter(|x| !x.starts_with("l> "))
        .collect()
}

#[test]
fn a_refused_unregister_and_a_real_one_differ_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    assert!(
        l.proc.lines()[0].ends_with("versions 1-3 tcp udp"),
        "{:?}",
        l.proc.lines()
    );
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let want = refused_and_real_unregisters(&s);
    assert!(
        wait_until(Duration::from_secs(20), || printed(&l).len() >= want.len()),
        "logger printed {:?}",
        l.proc.lines()
    );
    assert_eq!(printed(&l), want);
    let v3 = |op: &str, r| (3, op.to_owned(), Some(r));
    assert_eq!(
        outcomes(dir.path()),
        [
            v3("REGISTER", 0),
            v3("CONNECT", 0),
            v3("UNREGISTER REFUSED from 127.0.0.2", 2),
            v3("UNREGISTER", 1),
            v3("DISCONNECT", 0),
            v3("UNREGISTER", 0),
        ]
    );
    // Raw bytes: a version 3 record whose request got no reply (-1).
    let mut args = v2_args(0x77, 1, "carol", "DISCONNECT (peer unreachable)", "d");
    args.extend((-1i32).to_be_bytes());
    assert_eq!(status(tcp(l.addr(), &call(5, PROG, 3, 1, &args))), 0);
    assert!(
        l.proc
            .wait_line(Duration::from_secs(10), |x| x
                == "carol    DISCONNECT (peer unreachable)    d    NO REPLY")
            .is_some(),
        "{:?}",
        l.proc.lines()
    );
    // A version 2 argument in a version 3 call is garbage, and the reverse.
    let v2 = v2_args(0x78, 1, "carol", "REGISTER", "d");
    assert!(matches!(
        tcp(l.addr(), &call(6, PROG, 3, 1, &v2)),
        Reply::Accepted(GARBAGE_ARGS, _)
    ));
    assert!(matches!(
        tcp(l.addr(), &call(7, PROG, 2, 1, &args)),
        Reply::Accepted(GARBAGE_ARGS, _)
    ));
}

#[test]
fn an_older_version_2_logger_still_gets_every_record() {
    let dir = tempfile::tempdir().unwrap();
    // The previous release: versions 1 and 2 only.
    let l = logger(dir.path(), &["--max-version", "2"]);
    assert_eq!(
        tcp(l.addr(), &call(1, PROG, 3, 0, &[])),
        Reply::Accepted(PROG_MISMATCH, [be(1), be(2)].concat())
    );
    let spool = dir.path().join("spool");
    // A spool line the previous release left (no "result"): shipped as version 2
    // by the new server, also to a version 3 logger (see the next test).
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(
        spool.join("00000000000abcde.spool"),
        "{\"seq\":1,\"user\":\"old\",\"operation\":\"REGISTER\",\"datetime\":\"17/12/2014 13:20:30\"}\n",
    )
    .unwrap();
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let mut want = vec!["old    REGISTER    17/12/2014 13:20:30"];
    // Version 2 records carry no result: the lines are the statement's.
    want.extend(refused_and_real_unregisters(&s).into_iter().map(|w| {
        w.trim_end_matches("    FAIL 2 ERROR")
            .trim_end_matches("    FAIL 1 USER DOES NOT EXIST")
    }));
    assert!(
        wait_until(Duration::from_secs(20), || printed(&l).len() >= want.len()),
        "logger printed {:?}",
        l.proc.lines()
    );
    assert_eq!(printed(&l), want);
    let got = outcomes(dir.path());
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().all(|(v, _, r)| *v == 2 && r.is_none()),
        "{got:?}"
    );
    let said = s
        .proc
        .err_lines()
        .iter()
        .filter(|x| x.contains("offers LOG version 2 at most"))
        .count();
    assert_eq!(said, 1, "{:?}", s.proc.err_lines());
}

#[test]
fn spool_lines_without_a_result_reach_a_version_3_logger_as_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(
        spool.join("00000000000abcdf.spool"),
        "{\"seq\":1,\"user\":\"old\",\"operation\":\"REGISTER\",\"datetime\":\"17/12/2014 13:20:30\"}\n",
    )
    .unwrap();
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    assert_eq!(code(s.addr, &["REGISTER", "17/12/2014 13:20:31", "new"]), 0);
    let want = [
        "old    REGISTER    17/12/2014 13:20:30",
        "new    REGISTER    17/12/2014 13:20:31",
    ];
    assert!(
        wait_until(Duration::from_secs(20), || printed(&l).len() >= 2),
        "{:?}",
        l.proc.lines()
    );
    assert_eq!(printed(&l), want);
    assert_eq!(
        outcomes(dir.path()),
        [
            (2, "REGISTER".to_owned(), None),
            (3, "REGISTER".to_owned(), Some(0))
        ]
    );
}

#[test]
fn control_and_bidi_characters_of_direct_records_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let l = logger(dir.path(), &[]);
    let v1 = xdr_string(b"v1 \x1b]52;c;cHduZWQ=\x07 text\nforged v1 line");
    assert_eq!(
        tcp(l.addr(), &call(1, PROG, 1, 1, &v1)),
        // Version 1 answers an int 0, which void and int clients both decode.
        Reply::Accepted(SUCCESS, vec![0; 4])
    );
    let v2 = v2_args(
        78,
        1,
        "eve\x1b[2J",
        "PUBLISH a\u{202E}fdp.exe\nforged v2 line",
        "17/12/2014 13:20:35",
    );
    assert_eq!(status(tcp(l.addr(), &call(2, PROG, 2, 1, &v2))), 0);
    let want = [
        "v1 \\x1b]52;c;cHduZWQ=\\x07 text\\x0aforged v1 line",
        "eve\\x1b[2J    PUBLISH a\\u{202e}fdp.exe\\x0aforged v2 line    17/12/2014 13:20:35",
    ];
    assert!(
        wait_until(Duration::from_secs(10), || {
            let lines = l.proc.lines();
            want.iter().all(|w| lines.iter().any(|x| x == w))
        }),
        "logger printed {:?}",
        l.proc.lines()
    );
    for line in l.proc.lines() {
        assert!(
            !line.contains('\x1b') && !line.contains('\u{202E}'),
            "{line:?}"
        );
        assert!(!line.starts_with("forged"), "a forged line: {line:?}");
    }
    // The audit file keeps what was sent (JSON escapes it).
    let stored = audit_lines(dir.path());
    assert_eq!(stored[1]["user"], "eve\x1b[2J");
}
