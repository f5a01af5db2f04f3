//! Several index servers on one real redis-server (`--store`): the same-name race,
//! a change through one server seen through the other, SIGKILL of a server, Redis
//! stopped and restarted from its AOF, stream trimming with replicas that fall
//! behind it, one prober at a time, and the dashboards' shared feed.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::redis::Redis;
use support::{Server, call, code, list_fields, wait_until};

/// A server on `redis` with `extra` options (quiet, no prober unless asked).
fn server(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--store", &url, "--quiet"];
    if !extra.contains(&"--probe-interval") {
        args.extend(["--probe-interval", "0"]);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn register_connect(addr: SocketAddr, user: &str, port: u16) {
    assert_eq!(code(addr, &["REGISTER", user]), 0, "REGISTER {user}");
    assert_eq!(code(addr, &["CONNECT", user, &port.to_string()]), 0);
}

/// The file names of `user`'s LIST_CONTENT through `addr`.
fn files_of(addr: SocketAddr, asker: &str, user: &str) -> Vec<String> {
    let reply = call(addr, &["LIST_CONTENT", asker, user]);
    let fields = list_fields(&reply);
    fields[1..].chunks(2).map(|c| c[0].clone()).collect()
}

#[test]
fn the_same_name_registered_through_two_servers_has_one_winner_each_time() {
    let Some(redis) = Redis::start("the_same_name_registered_through_two_servers") else {
        return;
    };
    let (a, b) = (server(&redis, &[]), server(&redis, &[]));
    for i in 0..200 {
        let name = format!("race-{i}");
        let barrier = Barrier::new(2);
        let codes: Vec<u8> = thread::scope(|s| {
            let racers: Vec<_> = [a.addr, b.addr]
                .into_iter()
                .map(|addr| {
                    let (barrier, name) = (&barrier, &name);
                    s.spawn(move || {
                        barrier.wait();
                        code(addr, &["REGISTER", name])
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1], "round {i}: codes {codes:?} (A, B)");
    }
    assert_eq!(redis.command(&["SCARD", "peerdex:users"]), "200");
}

#[test]
fn a_change_through_one_server_is_seen_through_the_other_on_the_next_request() {
    let Some(redis) = Redis::start("a_change_through_one_server_is_seen_through_the_other") else {
        return;
    };
    let (a, b) = (server(&redis, &[]), server(&redis, &[]));
    register_connect(a.addr, "alice", 5000);
    for i in 0..50 {
        let file = format!("notes-{i}.txt");
        let (to, from) = if i % 2 == 0 {
            (a.addr, b.addr)
        } else {
            (b.addr, a.addr)
        };
        assert_eq!(code(to, &["PUBLISH", "alice", &file, "d"]), 0);
        let found = list_fields(&call(from, &["SEARCH", "alice", &file]));
        assert_eq!(
            found.first().map(String::as_str),
            Some("1"),
            "{file}: {found:?}"
        );
        assert_eq!(code(from, &["DELETE", "alice", &file]), 0, "{file}");
        let found = list_fields(&call(to, &["SEARCH", "alice", &file]));
        assert_eq!(found, ["0"], "{file} deleted through the other server");
    }
    assert_eq!(code(b.addr, &["DISCONNECT", "alice"]), 0);
    assert_eq!(code(a.addr, &["LIST_USERS", "alice"]), 2);
}

#[test]
fn a_server_killed_with_sigkill_loses_nothing() {
    let Some(redis) = Redis::start("a_server_killed_with_sigkill_loses_nothing") else {
        return;
    };
    let mut a = server(&redis, &[]);
    let b = server(&redis, &[]);
    register_connect(a.addr, "alice", 5000);
    for i in 0..20 {
        assert_eq!(
            code(a.addr, &["PUBLISH", "alice", &format!("f{i}"), "d"]),
            0
        );
    }
    a.proc.child.kill().unwrap();
    a.proc.child.wait().unwrap();
    // The other server has everything; so does a new one, built from Redis.
    assert_eq!(files_of(b.addr, "alice", "alice").len(), 20);
    let c = server(&redis, &[]);
    let expected: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    assert_eq!(files_of(c.addr, "alice", "alice"), expected);
    assert_eq!(code(c.addr, &["PUBLISH", "alice", "f20", "d"]), 0);
    assert_eq!(files_of(b.addr, "alice", "alice").len(), 21);
}

/// Sends `parts` and returns the reply with how long it took (never more than 10 s).
fn timed_call(addr: SocketAddr, parts: &[&str]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&support::fields(parts)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (out, started.elapsed())
}

#[test]
fn redis_stopped_gives_prompt_errors_and_its_aof_keeps_every_acknowledged_change() {
    let Some(mut redis) = Redis::start("redis_stopped_gives_prompt_errors") else {
        return;
    };
    let timeout = ["--store-timeout", "1"];
    let (a, b) = (server(&redis, &timeout), server(&redis, &timeout));
    register_connect(a.addr, "alice", 5000);
    // A writer through both servers while Redis is killed: whatever got code 0 must
    // be there after Redis restarts from its AOF.
    let stop = AtomicBool::new(false);
    // Requests answered so far, and of those acknowledged.
    let (answered, acked_count) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let acknowledged: Vec<String> = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let file = format!("f{i}");
                let to = if i % 2 == 0 { a.addr } else { b.addr };
                if call(to, &["PUBLISH", "alice", &file, "d"]) == [0] {
                    acked.push(file);
                    acked_count.fetch_add(1, Ordering::SeqCst);
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
            acked
        });
        // Some writes acknowledged before the kill, and some sent after it.
        assert!(wait_until(Duration::from_secs(30), || {
            acked_count.load(Ordering::SeqCst) >= 20
        }));
        redis.kill();
        let at_kill = answered.load(Ordering::SeqCst);
        assert!(wait_until(Duration::from_secs(30), || {
            answered.load(Ordering::SeqCst) >= at_kill + 4
        }));
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap()
    });
    assert!(
        !acknowledged.is_empty(),
        "nothing acknowledged before the kill"
    );
    // Redis down: every kind of request is answered, with its other-error code,
    // within the store timeout (1 s) plus a margin for a loaded machine.
    for (parts, other) in [
        (&["PUBLISH", "alice", "late", "d"][..], 4),
        (&["LIST_USERS", "alice"][..], 3),
        (&["SEARCH", "alice", "f"][..], 3),
        (&["REGISTER", "bob"][..], 2),
    ] {
        for addr in [a.addr, b.addr] {
            let (reply, took) = timed_call(addr, parts);
            assert_eq!(reply, [other], "{parts:?} with Redis down");
            assert!(took < Duration::from_secs(5), "{parts:?} took {took:?}");
        }
    }
    let said = |s: &Server| {
        s.proc
            .err_lines()
            .iter()
            .filter(|l| l.contains("unreachable"))
            .count()
    };
    assert_eq!(said(&a), 1, "said once: {:?}", a.proc.err_lines());
    redis.restart();
    // Back by itself: requests succeed again, and say so once.
    assert!(wait_until(Duration::from_secs(10), || {
        code(a.addr, &["LIST_USERS", "alice"]) == 0 && code(b.addr, &["LIST_USERS", "alice"]) == 0
    }));
    assert!(
        a.proc
            .wait_err_line(Duration::from_secs(5), |l| l.contains("answers again"))
            .is_some()
    );
    for addr in [a.addr, b.addr] {
        let listed = files_of(addr, "alice", "alice");
        for file in &acknowledged {
            assert!(listed.contains(file), "{file} acknowledged, then lost");
        }
    }
    assert_eq!(said(&a), 1, "said once per outage");
    // Each refused request is not a line of its own (the outage was said once).
    let per_request = a
        .proc
        .err_lines()
        .iter()
        .filter(|l| l.contains("not made"))
        .count();
    assert_eq!(per_request, 0, "{:?}", a.proc.err_lines());
}

/// A list reply's count and entries; SEARCH's sorted (their order is the order of
/// each server's index, which a rebuild from a snapshot builds user by user).
fn listed(addr: SocketAddr, parts: &[&str]) -> Vec<Vec<String>> {
    let fields = list_fields(&call(addr, parts));
    let width = match parts[0] {
        "LIST_USERS" => 3,
        "LIST_CONTENT" => 2,
        _ => 5,
    };
    let mut entries: Vec<Vec<String>> = fields[1..].chunks(width).map(<[String]>::to_vec).collect();
    if parts[0] == "SEARCH" {
        entries.sort();
    }
    entries.insert(0, vec![fields[0].clone()]);
    entries
}

#[test]
fn trimming_the_stream_keeps_every_replica_right() {
    let Some(redis) = Redis::start("trimming_the_stream_keeps_every_replica_right") else {
        return;
    };
    let every = ["--store-snapshot-every", "10"];
    let (a, b) = (server(&redis, &every), server(&redis, &every));
    let behind = server(&redis, &every);
    register_connect(a.addr, "alice", 5000);
    register_connect(b.addr, "bob", 5001);
    // One replica stopped while the stream is trimmed past it: it must notice the gap
    // and rebuild from the snapshot.
    behind.proc.signal("STOP");
    for i in 0..60 {
        let (to, user) = if i % 2 == 0 {
            (a.addr, "alice")
        } else {
            (b.addr, "bob")
        };
        assert_eq!(code(to, &["PUBLISH", user, &format!("f{i}"), "d"]), 0);
    }
    assert_eq!(code(a.addr, &["DELETE", "alice", "f0"]), 0);
    // The snapshot follows the changes and the stream is cut below it.
    assert!(wait_until(Duration::from_secs(10), || {
        redis
            .command(&["GET", "peerdex:snapshot-seq"])
            .parse::<u64>()
            .unwrap_or(0)
            >= 60
    }));
    let len: u64 = redis.command(&["XLEN", "peerdex:changes"]).parse().unwrap();
    assert!(len < 30, "stream not trimmed: {len} entries");
    behind.proc.signal("CONT");
    let fresh = server(&redis, &every);
    let requests: [&[&str]; 4] = [
        &["LIST_USERS", "alice"],
        &["LIST_CONTENT", "alice", "alice"],
        &["LIST_CONTENT", "alice", "bob"],
        &["SEARCH", "alice", "f1"],
    ];
    for parts in requests {
        let expected = listed(a.addr, parts);
        for (name, s) in [("b", &b), ("behind", &behind), ("fresh", &fresh)] {
            assert_eq!(listed(s.addr, parts), expected, "{name}: {parts:?}");
        }
    }
    // It did see the gap (rather than the trimmed entries).
    let rebuilt = behind
        .proc
        .err_lines()
        .iter()
        .any(|l| l.contains("rebuilding"));
    assert!(rebuilt, "{:?}", behind.proc.err_lines());
}

/// Probe connections accepted by `live` during `window`.
fn probes_during(live: &std::net::TcpListener, window: Duration) -> usize {
    live.set_nonblocking(true).unwrap();
    let until = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < until {
        match live.accept() {
            Ok(_) => n += 1,
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    n
}

#[test]
fn one_server_probes_at_a_time_and_another_takes_over() {
    let Some(redis) = Redis::start("one_server_probes_at_a_time") else {
        return;
    };
    let probe = ["--probe-interval", "0.2"];
    let mut servers = [server(&redis, &probe), server(&redis, &probe)];
    let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    register_connect(servers[0].addr, "live", live.local_addr().unwrap().port());
    register_connect(servers[1].addr, "dead", support::free_port());
    let gone = |addr: SocketAddr, user: &str| {
        wait_until(Duration::from_secs(15), || {
            !list_fields(&call(addr, &["LIST_USERS", "live"])).contains(&user.to_owned())
        })
    };
    assert!(gone(servers[0].addr, "dead"), "dead peer never dropped");
    // One prober probes at most once per interval (0.2 s): 3 s hold at most 15
    // rounds (two probers would make about 30).
    let probes = probes_during(&live, Duration::from_secs(3));
    assert!((1..=17).contains(&probes), "{probes} probes in 3 s");
    let drops: usize = servers
        .iter()
        .map(|s| {
            let lines = s.proc.err_lines();
            lines
                .iter()
                .filter(|l| l.contains("DISCONNECT dead: peer unreachable"))
                .count()
        })
        .sum();
    assert_eq!(drops, 1, "dropped once, by one server");
    // The lease names its holder (`<pid>-<random>`): kill it; the other takes over
    // once the lease expires, and drops the next dead peer.
    let holder = redis.command(&["GET", "peerdex:lease:prober"]);
    let pid: u32 = holder
        .split('-')
        .next()
        .unwrap()
        .parse()
        .expect("lease holder");
    let i = servers
        .iter()
        .position(|s| s.proc.child.id() == pid)
        .expect("holder is ours");
    servers[i].proc.child.kill().unwrap();
    let survivor = servers[1 - i].addr;
    register_connect(survivor, "dead2", support::free_port());
    assert!(
        gone(survivor, "dead2"),
        "the surviving server never took over"
    );
}

#[test]
fn every_dashboard_shows_the_events_of_every_server() {
    let Some(redis) = Redis::start("every_dashboard_shows_the_events_of_every_server") else {
        return;
    };
    let port = support::free_port();
    // Events come from the servers that keep them: those with a dashboard.
    let a = server(&redis, &["--http", &support::free_port().to_string()]);
    let _b = server(&redis, &["--http", &port.to_string()]);
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || TcpStream::connect(
        http
    )
    .is_ok()));
    assert_eq!(code(a.addr, &["REGISTER", "only-through-a"]), 0);
    // B's feed (the backlog a new page gets) shows A's REGISTER.
    assert!(
        wait_until(Duration::from_secs(10), || backlog(http)
            .contains("only-through-a")),
        "A's event not in B's feed"
    );
    // And B's whole-registry view has the user.
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(body.contains("only-through-a"), "{body}");
}

/// What `/api/events` sends within half a second of opening (the backlog).
fn backlog(http: SocketAddr) -> String {
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_server_whose_redis_does_not_answer_says_so_in_one_line_and_exits() {
    // Nothing listens on a port that was just free: connection refused.
    let url = format!("redis://127.0.0.1:{}", support::free_port());
    let tls = url.replace("redis://", "rediss://");
    for (store, says) in [
        (url.as_str(), "Connection refused"),
        (tls.as_str(), "Connection refused"),
        ("redis//127.0.0.1", "URL did not parse"),
    ] {
        let mut cmd = std::process::Command::new(support::bin());
        cmd.args(["server", "-p", "0", "--bind", "127.0.0.1", "--no-logger"])
            .args(["--store", store, "--store-timeout", "1"]);
        let done = support::run_to_exit(&mut cmd, Duration::from_secs(10), "server").unwrap();
        assert!(!done.status.success());
        let lines: Vec<&str> = done.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("peerdex: shared store: "), "{lines:?}");
        assert!(lines[0].contains(says), "{lines:?}");
    }
}

#[test]
fn a_server_on_redis_stops_cleanly_on_sigterm_and_its_changes_stay() {
    let Some(redis) = Redis::start("a_server_on_redis_stops_cleanly_on_sigterm") else {
        return;
    };
    let mut a = server(&redis, &["--http", &support::free_port().to_string()]);
    register_connect(a.addr, "alice", 5000);
    a.proc.signal("TERM");
    let status = a.proc.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        a.proc
            .err_lines()
            .iter()
            .any(|l| l == "peerdex: server stopped")
    );
    let b = server(&redis, &[]);
    assert_eq!(
        code(b.addr, &["CONNECT", "alice", "5001"]),
        2,
        "alice still connected"
    );
}

#[test]
fn a_redis_that_hangs_gets_error_replies_within_the_store_timeout() {
    let Some(redis) = Redis::start("a_redis_that_hangs_gets_error_replies") else {
        return;
    };
    let a = server(&redis, &["--store-timeout", "1"]);
    register_connect(a.addr, "alice", 5000);
    // Stopped, Redis keeps its sockets open and answers nothing: only the
    // connection's timeouts end the wait.
    redis.signal("STOP");
    let hung = thread::scope(|s| {
        let calls: Vec<_> = [
            &["PUBLISH", "alice", "f", "d"][..],
            &["LIST_USERS", "alice"][..],
            &["REGISTER", "bob"][..],
        ]
        .into_iter()
        .map(|parts| s.spawn(move || (parts, timed_call(a.addr, parts))))
        .collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    });
    redis.signal("CONT");
    for (parts, (reply, took)) in hung {
        let other = match parts[0] {
            "PUBLISH" => 4,
            "LIST_USERS" => 3,
            _ => 2,
        };
        assert_eq!(reply, [other], "{parts:?} with Redis hung");
        assert!(took < Duration::from_secs(6), "{parts:?} took {took:?}");
    }
    assert!(wait_until(Duration::from_secs(10), || {
        code(a.addr, &["PUBLISH", "alice", "g", "d"]) == 0
    }));
    // The PUBLISH of f timed out here but reached Redis, which ran it once it went
    // on: a write answered with the error code may have been made (as with any
    // request whose reply is lost). Whatever it is, every server says the same.
    let listed = files_of(a.addr, "alice", "alice");
    assert!(listed.ends_with(&["g".to_owned()]), "{listed:?}");
    let b = server(&redis, &[]);
    assert_eq!(files_of(b.addr, "alice", "alice"), listed);
}
