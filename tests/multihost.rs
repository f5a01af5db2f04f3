//! Every component on its own host (tests/netbed): what only shows once the system
//! leaves 127.0.0.1. Needs root and network namespaces; skipped with a reason
//! elsewhere, required in CI (PEERDEX_REQUIRE_SYSTEM_TESTS=1).

mod support;

use std::time::Duration;

use support::bed::Bed;
use support::*;

const DT: &str = "22/11/2026 09:05:07";

/// Starts the index server on the server host and returns it with its port.
fn start_server(bed: &Bed, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["server", "-p", "0", "--no-logger", "--ephemeral"];
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

#[test]
fn list_users_shows_each_peer_with_its_own_host_address() {
    let Some(bed) = Bed::up() else { return };
    let (_server, port) = start_server(&bed, &[]);
    let server = Bed::addr("server", port);
    for (i, host) in ["peer1", "peer2", "peer3"].into_iter().enumerate() {
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
