//! Every component on its own host (tests/netbed): what only shows once the system
//! leaves 127.0.0.1. Needs root and network namespaces; skipped with a reason
//! elsewhere, required in CI (PEERDEX_REQUIRE_SYSTEM_TESTS=1).
//!
//! The scenario follows the README's "Multi-host deployment" section step by step.

mod support;

use std::time::Duration;

use support::bed::Bed;
use support::*;

const DT: &str = "22/11/2026 09:05:07";
const PEERS: [&str; 3] = ["peer1", "peer2", "peer3"];

/// Starts the index server on the server host and returns it with its port.
fn start_server(bed: &Bed, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["server", "-p", "0", "--ephemeral"];
    args.extend_from_slice(extra);
    let server = bed.peerdex("server", &args);
    let line = server
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("s> init server ")
        })
        .expect("server init line");
    let port = line.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        line.starts_with("s> init server 10.77.0.10:"),
        "init line shows the host address: {line}"
    );
    (server, port)
}

/// Starts the time service on the time host; returns it and its URL.
fn start_time(bed: &Bed) -> (Proc, String) {
    let time = bed.peerdex("time", &["time", "--port", "8000"]);
    let line = time
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("time service on ")
        })
        .expect("time service start line");
    assert_eq!(line, "time service on http://10.77.0.12:8000/");
    (time, "http://10.77.0.12:8000/".to_owned())
}

#[test]
fn list_users_shows_each_peer_with_its_own_host_address() {
    let Some(bed) = Bed::up() else { return };
    let (_server, port) = start_server(&bed, &["--no-logger"]);
    let server = Bed::addr("server", port);
    for (i, host) in PEERS.into_iter().enumerate() {
        let user = format!("user{}", i + 1);
        let codes = bed.on(host, move || {
            (
                code(server, &["REGISTER", DT, &user]),
                code(server, &["CONNECT", DT, &user, &(7000 + i).to_string()]),
            )
        });
        assert_eq!(codes, (0, 0), "{host}");
    }
    let listed = bed.on("peer1", move || {
        list_fields(&call(server, &["LIST_USERS", DT, "user1"]))
    });
    assert_eq!(
        listed,
        [
            "3",
            "user1",
            "10.77.0.21",
            "7000",
            "user2",
            "10.77.0.22",
            "7001",
            "user3",
            "10.77.0.23",
            "7002"
        ]
    );
}

#[test]
fn three_peers_share_files_across_hosts() {
    let Some(bed) = Bed::up() else { return };
    let (_time, time_url) = start_time(&bed);
    let (server_proc, port) = start_server(&bed, &["--no-logger"]);
    let server = Bed::addr("server", port);
    let dirs: Vec<_> = PEERS.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut clients: Vec<Client> = PEERS
        .iter()
        .zip(&dirs)
        .map(|(host, dir)| bed.client(host, server, dir.path(), &time_url, &[]))
        .collect();

    // Everyone registers, connects and publishes a file of its own.
    for (i, c) in clients.iter_mut().enumerate() {
        let name = format!("peer{}", i + 1);
        write_random(
            &dirs[i].path().join(format!("{name}.bin")),
            3 << 20,
            i as u64 + 7,
        );
        c.register_connect(&name);
        assert_eq!(
            c.cmd(&format!("PUBLISH {name}.bin data of {name}")),
            "c> PUBLISH OK"
        );
    }
    // The clients reached the time service on its host: no fallback warning.
    for c in &clients {
        assert!(
            !c.stderr().iter().any(|l| l.contains("local clock")),
            "a client fell back to its clock: {:?}",
            c.stderr()
        );
    }

    // LIST_USERS on each shows every peer with its own host address, and the port
    // its listener really has.
    for c in clients.iter_mut() {
        let (msg, lines) = c.cmd_list("LIST_USERS", 3);
        assert_eq!(msg, "c> LIST_USERS OK");
        for (i, line) in lines.iter().enumerate() {
            let f: Vec<&str> = line.trim().split(' ').collect();
            assert_eq!(f[0], format!("peer{}", i + 1));
            assert_eq!(f[1], format!("10.77.0.2{}", i + 1), "{line}");
        }
    }

    // Each client downloads from each other peer, compared by hash.
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..PEERS.len() {
            if i == j {
                continue;
            }
            let owner = format!("peer{}", j + 1);
            let local = format!("from-{owner}.bin");
            assert_eq!(
                c.cmd(&format!("GET_FILE {owner} {owner}.bin {local}")),
                "c> GET_FILE OK",
                "peer{} from {owner}",
                i + 1
            );
            assert_eq!(
                file_hash(&dirs[i].path().join(&local)),
                file_hash(&dirs[j].path().join(format!("{owner}.bin")))
            );
        }
    }
    for c in clients.iter_mut() {
        c.send("QUIT");
        assert_eq!(c.next_message(), "c> DISCONNECT OK");
    }
    assert!(
        server_proc
            .wait_line(Duration::from_secs(5), |l| l == "s> DISCONNECT FROM peer3")
            .is_some()
    );
}

#[test]
fn a_peer_cut_off_mid_download_fails_cleanly_while_others_complete() {
    let Some(bed) = Bed::up() else { return };
    let (_time, time_url) = start_time(&bed);
    let (_server, port) = start_server(&bed, &["--no-logger", "--probe-interval", "0"]);
    let server = Bed::addr("server", port);
    let dirs: Vec<_> = PEERS.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    // peer3 serves slowly, so the cut lands in the middle of its transfer.
    let mut clients: Vec<Client> = PEERS
        .iter()
        .zip(&dirs)
        .map(|(host, dir)| {
            let extra: &[&str] = if *host == "peer3" {
                &["--max-upload-rate", "1000000"]
            } else {
                &[]
            };
            bed.client(host, server, dir.path(), &time_url, extra)
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let name = format!("peer{}", i + 1);
        write_random(&dirs[i].path().join("big.bin"), 16 << 20, i as u64 + 1);
        c.register_connect(&name);
        assert_eq!(c.cmd("PUBLISH big.bin a big file"), "c> PUBLISH OK");
    }
    // peer1 downloads from peer3 (to be cut); peer2 downloads from peer1 meanwhile.
    clients[0].send("GET_FILE peer3 big.bin cut.bin");
    // The download is under way: its bytes arrive in the hidden partial file.
    wait_bytes(&dirs[0].path().join(".cut.bin.peerdex-partial"), 0);
    bed.cut("peer3");
    assert_eq!(
        clients[1].cmd("GET_FILE peer1 big.bin whole.bin"),
        "c> GET_FILE OK"
    );
    assert_eq!(
        file_hash(&dirs[1].path().join("whole.bin")),
        file_hash(&dirs[0].path().join("big.bin"))
    );
    // Abandoned (the shell's wait for the message is bounded), not hung.
    assert_eq!(clients[0].next_message(), "c> GET_FILE FAIL");
    // Nothing under the requested name; only the hidden part a later GET_FILE
    // resumes from (PROTOCOL.md section 2, rule 3).
    assert!(
        dir_names(dirs[0].path()).iter().all(|n| n == "big.bin"
            || n == ".cut.bin.peerdex-partial"
            || n == ".cut.bin.peerdex-partial.info"),
        "partial or temporary files left: {:?}",
        dir_names(dirs[0].path())
    );
    // The shell is still usable.
    let (msg, _) = clients[0].cmd_list("LIST_USERS", 3);
    assert_eq!(msg, "c> LIST_USERS OK");
}

#[test]
fn the_server_finds_the_logger_through_its_hosts_portmapper_and_refuses_impersonation() {
    let Some(bed) = Bed::up() else { return };
    let work = tempfile::tempdir().unwrap();
    let program = "0x20000001";
    let _rpcbind = bed.rpcbind("logger");
    let audit = work.path().join("audit.jsonl");
    let logger = bed.peerdex(
        "logger",
        &[
            "logger",
            "--port",
            "0",
            "--program",
            program,
            "--audit",
            audit.to_str().unwrap(),
        ],
    );
    logger
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("l> registered program")
        })
        .unwrap_or_else(|| panic!("logger did not register: {:?}", logger.lines()));
    // The logger's host answers rpcinfo from the server's host.
    let out = bed
        .command("server", "rpcinfo")
        .args(["-p", "10.77.0.11"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    for (version, proto) in [("1", "tcp"), ("1", "udp"), ("2", "tcp"), ("2", "udp")] {
        assert!(
            listing.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() >= 3 && f[0] == "536870913" && f[1] == version && f[2] == proto
            }),
            "rpcinfo -p 10.77.0.11 lacks version {version} {proto}:\n{listing}"
        );
    }

    // The server is given the logger's host only: it asks that host's portmapper.
    let spool = work.path().join("spool");
    let (_time, time_url) = start_time(&bed);
    let (server_proc, port) = start_server(
        &bed,
        &[
            "--logger",
            "10.77.0.11",
            "--program",
            program,
            "--spool",
            spool.to_str().unwrap(),
        ],
    );
    let server = Bed::addr("server", port);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut peer1 = bed.client("peer1", server, dirs[0].path(), &time_url, &[]);
    let mut peer2 = bed.client("peer2", server, dirs[1].path(), &time_url, &[]);
    std::fs::write(dirs[0].path().join("a.txt"), "from peer1").unwrap();
    peer1.register_connect("peer1");
    assert_eq!(peer1.cmd("PUBLISH a.txt first file"), "c> PUBLISH OK");
    peer2.register_connect("peer2");
    assert_eq!(peer2.cmd("GET_FILE peer1 a.txt b.txt"), "c> GET_FILE OK");

    // Every record reaches the logger on its host, stamped by the time service.
    for record in [
        "peer1    REGISTER    ",
        "peer1    PUBLISH a.txt    ",
        "peer2    CONNECT    ",
        "peer2    LIST_USERS    ",
    ] {
        assert!(
            logger
                .wait_line(Duration::from_secs(15), |l| l.starts_with(record))
                .is_some(),
            "no logger line {record:?}: {:?}",
            logger.lines()
        );
    }

    // peer2's host tries every operation as peer1 (connected from peer1's host).
    let attempts: Vec<(Vec<&'static str>, u8)> = vec![
        (vec!["DISCONNECT", DT, "peer1"], 3),
        (vec!["PUBLISH", DT, "peer1", "evil.txt", "x"], 4),
        (vec!["DELETE", DT, "peer1", "a.txt"], 4),
        (vec!["LIST_USERS", DT, "peer1"], 3),
        (vec!["LIST_CONTENT", DT, "peer1", "peer2"], 4),
        (vec!["SEARCH", DT, "peer1", "a"], 3),
        (vec!["CONNECT", DT, "peer1", "9"], 3),
        (vec!["UNREGISTER", DT, "peer1"], 2),
    ];
    for (parts, expected) in attempts {
        let reply = bed.on("peer2", {
            let parts = parts.clone();
            move || call(server, &parts)
        });
        assert_eq!(reply, [expected], "{parts:?} from peer2's host");
    }
    // State unchanged, and the rightful host still works.
    let (msg, files) = peer1.cmd_list("LIST_CONTENT peer1", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, ["\ta.txt \"first file\""]);
    let (_, users) = peer1.cmd_list("LIST_USERS", 2);
    assert!(users[0].contains("peer1 10.77.0.21 "), "{users:?}");
    assert!(
        server_proc
            .wait_line(Duration::from_secs(5), |l| {
                l == "s> DISCONNECT FROM peer1 REFUSED: connected from 10.77.0.21, request from 10.77.0.22"
            })
            .is_some()
    );
    // The refusals are in the audit log on the logger's host.
    assert!(
        logger
            .wait_line(Duration::from_secs(15), |l| {
                l.starts_with("peer1    PUBLISH evil.txt REFUSED from 10.77.0.22    ")
            })
            .is_some(),
        "{:?}",
        logger.lines()
    );
    let refused = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .matches("REFUSED from 10.77.0.22")
            .count()
    };
    wait_until(Duration::from_secs(60), || refused() >= 8);
    assert_eq!(refused(), 8, "refusals in the audit file");
    peer1.send("QUIT");
    assert_eq!(peer1.next_message(), "c> DISCONNECT OK");
}

/// Starts redis-server on the redis host (AOF on, in `dir`) and waits until it
/// accepts connections there.
fn start_redis(bed: &Bed, dir: &std::path::Path) -> Proc {
    let mut cmd = bed.command("redis", "redis-server");
    cmd.args([
        "--bind",
        "10.77.0.14",
        "--port",
        "6379",
        "--protected-mode",
        "no",
    ])
    .arg("--dir")
    .arg(dir)
    .args([
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let redis = Proc::start_with(&mut cmd);
    let addr = Bed::addr("redis", 6379);
    let up = wait_until(Duration::from_secs(10), || {
        bed.on("redis", move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    });
    assert!(up, "redis-server did not start on the redis host");
    redis
}

/// Starts an index server on `host` with the registry in the redis host's Redis.
fn start_shared_server(bed: &Bed, host: &str) -> (Proc, std::net::SocketAddr) {
    let args = [
        "server",
        "-p",
        "9090",
        "--no-logger",
        "--store",
        "redis://10.77.0.14:6379",
    ];
    let server = bed.peerdex(host, &args);
    let line = server
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("s> init server ")
        })
        .expect("server init line");
    assert!(line.ends_with(":9090"), "{line}");
    (server, Bed::addr(host, 9090))
}

/// Redis on one host, an index server on each of two others, clients on more: what a
/// client does through one server is seen, with its host address, through the other.
#[test]
fn two_index_servers_on_a_redis_host_serve_clients_on_other_hosts() {
    if !support::redis::available("two_index_servers_on_a_redis_host") {
        return;
    }
    let Some(bed) = Bed::up() else { return };
    let dir = tempfile::tempdir().unwrap();
    let _redis = start_redis(&bed, dir.path());
    let (_a, a) = start_shared_server(&bed, "server");
    let (_b, b) = start_shared_server(&bed, "server2");
    // peer1 and peer3 use server A, peer2 server B.
    for (host, via, user, port) in [
        ("peer1", a, "user1", "7001"),
        ("peer2", b, "user2", "7002"),
        ("peer3", a, "user3", "7003"),
    ] {
        let codes = bed.on(host, move || {
            (
                code(via, &["REGISTER", DT, user]),
                code(via, &["CONNECT", DT, user, port]),
                code(via, &["PUBLISH", DT, user, &format!("{user}.txt"), "notes"]),
            )
        });
        assert_eq!(codes, (0, 0, 0), "{host} through {via}");
    }
    // The same name through the other server is taken.
    let taken = bed.on("peer2", move || code(b, &["REGISTER", DT, "user1"]));
    assert_eq!(taken, 1);
    // Through B, peer2 lists everyone at their own hosts' addresses, and finds
    // user1's file (published through A) at peer1.
    let (listed, found) = bed.on("peer2", move || {
        (
            list_fields(&call(b, &["LIST_USERS", DT, "user2"])),
            list_fields(&call(b, &["SEARCH", DT, "user2", "user1.txt"])),
        )
    });
    assert_eq!(
        listed,
        [
            "3",
            "user1",
            "10.77.0.21",
            "7001",
            "user2",
            "10.77.0.22",
            "7002",
            "user3",
            "10.77.0.23",
            "7003"
        ]
    );
    assert_eq!(
        found,
        ["1", "user1.txt", "notes", "user1", "10.77.0.21", "7001"]
    );
    // The host check holds across servers: peer2 cannot act for user1 through B.
    let refused = bed.on("peer2", move || code(b, &["DISCONNECT", DT, "user1"]));
    assert_eq!(refused, 3, "another host acted for user1");
    let dropped = bed.on("peer1", move || code(b, &["DISCONNECT", DT, "user1"]));
    assert_eq!(dropped, 0);
    let after = bed.on("peer3", move || {
        list_fields(&call(a, &["LIST_USERS", DT, "user3"]))
    });
    assert_eq!(after[0], "2", "{after:?}");
}
