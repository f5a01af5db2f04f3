//! `make run-cluster` (scripts/run-cluster.sh): redis-server, logger, time service and
//! two index servers on one registry from one command; a user registered through one
//! server is listed by the other; Ctrl+C leaves no process behind.

mod support;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::group::{GroupGuard, group_members};
use support::*;

#[test]
fn make_run_cluster_shares_one_registry_and_ctrl_c_stops_everything() {
    if !support::redis::available("make_run_cluster_shares_one_registry") {
        return;
    }
    let run_dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..7).map(|_| free_port()).collect();
    let program = format!("{:#x}", 0x2400_0000u32 + std::process::id() % 0x10000);
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/run-cluster.sh"
    ))
    .env("PEERDEX", bin())
    .env("PORT", ports[0].to_string())
    .env("PORT_B", ports[1].to_string())
    .env("REDIS_PORT", ports[2].to_string())
    .env("TIME_PORT", ports[3].to_string())
    .env("LOGGER_PORT", ports[4].to_string())
    .env("HTTP_PORT", ports[5].to_string())
    .env("HTTP_PORT_B", ports[6].to_string())
    .env("PROGRAM", &program)
    .env("RUN_DIR", run_dir.path())
    .stdin(Stdio::null())
    .process_group(0);
    let mut run = Proc::start_with(&mut cmd);
    let pgid = run.child.id();
    let _guard = GroupGuard(pgid);
    run.wait_line(Duration::from_secs(30), |l| {
        l.contains("peerdex is running")
    })
    .unwrap_or_else(|| panic!("make run-cluster did not start: {:?}", run.lines()));
    let banner = run.lines().join("\n");
    assert!(
        banner.contains(&format!("redis://127.0.0.1:{}", ports[2])),
        "{banner}"
    );
    let a = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let b = SocketAddr::from(([127, 0, 0, 1], ports[1]));
    assert_eq!(code(a, &["REGISTER", "alice"]), 0);
    assert_eq!(
        code(b, &["REGISTER", "alice"]),
        1,
        "B sees A's registration"
    );
    assert_eq!(code(b, &["CONNECT", "alice", "4000"]), 0);
    let listed = list_fields(&call(a, &["LIST_USERS", "alice"]));
    assert_eq!(listed[..2], ["1", "alice"]);
    assert!(
        run_dir.path().join("redis/appendonlydir").is_dir()
            || run_dir.path().join("redis/appendonly.aof").is_file(),
        "no AOF in RUN_DIR/redis"
    );

    // Ctrl+C: SIGINT to the whole foreground group.
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(
        run.wait_exit(Duration::from_secs(20)).is_some(),
        "make run-cluster did not stop: {:?}",
        group_members(pgid)
    );
    wait_until(Duration::from_secs(30), || group_members(pgid).is_empty());
    assert_eq!(
        group_members(pgid),
        Vec::<String>::new(),
        "processes left behind"
    );
}
