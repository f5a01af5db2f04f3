//! `make run` (scripts/run.sh): the whole service side from one command, two clients
//! through it, and Ctrl+C leaving no process behind.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// `bash scripts/run.sh` with the test build of peerdex (environment to be added).
fn run_script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .env("PEERDEX", bin());
    cmd
}

/// Kills a whole process group on drop, so a failed test leaves nothing behind.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}

/// Processes whose process group is `pgid` (read from /proc).
fn group_members(pgid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) && fields[0] != "Z" {
            out.push(stat.split(')').next().unwrap_or("").to_owned());
        }
    }
    out
}

#[test]
fn make_run_serves_two_clients_and_ctrl_c_stops_everything() {
    let run_dir = tempfile::tempdir().unwrap();
    let (port, time_port, logger_port) = (free_port(), free_port(), free_port());
    let http_port = free_port();
    // A program number of its own, so it never meets another test's logger.
    let program = format!("{:#x}", 0x2300_0000u32 + std::process::id() % 0x10000);
    let script = |cmd: &mut Command| {
        cmd.env("PORT", port.to_string())
            .env("TIME_PORT", time_port.to_string())
            .env("LOGGER_PORT", logger_port.to_string())
            .env("HTTP_PORT", http_port.to_string())
            .env("PROGRAM", &program)
            .env("RUN_DIR", run_dir.path())
            .stdin(std::process::Stdio::null())
            // Its own process group, as a terminal's foreground job would be.
            .process_group(0);
    };
    let mut cmd = run_script();
    script(&mut cmd);
    let mut run = Proc::start_with(&mut cmd);
    let pgid = run.child.id();
    let _guard = GroupGuard(pgid);
    run.wait_line(Duration::from_secs(20), |l| {
        l.contains("peerdex is running")
    })
    .unwrap_or_else(|| panic!("make run did not start: {:?}", run.lines()));
    let client_line = run
        .wait_line(Duration::from_secs(5), |l| {
            l.trim_start().contains(" client -s ")
        })
        .expect("the client command is shown");
    assert!(client_line.contains(&format!("-p {port}")), "{client_line}");
    let dashboard_line = run
        .wait_line(Duration::from_secs(5), |l| {
            l.trim_start().starts_with("dashboard ")
        })
        .expect("the dashboard URL is shown");
    assert!(
        dashboard_line.contains(&format!(":{http_port}/")),
        "{dashboard_line}"
    );

    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let time_url = format!("http://127.0.0.1:{time_port}/");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(a_dir.path().join("notes.txt"), "Lecture notes, week 3\n").unwrap();
    let mut alice = Client::start_with(server, a_dir.path(), &["--time-url", &time_url]);
    let mut bob = Client::start_with(server, b_dir.path(), &["--time-url", &time_url]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt week 3"), "c> PUBLISH OK");
    bob.register_connect("bob");
    assert_eq!(
        bob.cmd("GET_FILE alice notes.txt copy.txt"),
        "c> GET_FILE OK"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.path().join("copy.txt")).unwrap(),
        "Lecture notes, week 3\n"
    );
    assert!(
        !alice.stderr_has("local clock"),
        "the time service was not used"
    );
    // The dashboard sees the two-client session.
    let users = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /api/users HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(
        users.contains(r#""name":"alice""#) && users.contains(r#""name":"bob""#),
        "{users}"
    );
    for c in [&mut alice, &mut bob] {
        c.send("QUIT");
        assert_eq!(c.next_message(), "c> DISCONNECT OK");
    }
    // The logger printed their records, stamped by the time service.
    for record in [
        "alice    PUBLISH notes.txt    ",
        "bob    CONNECT    ",
        "bob    DISCONNECT    ",
    ] {
        assert!(
            run.wait_line(Duration::from_secs(10), |l| l.starts_with(record))
                .is_some(),
            "no logger line {record:?}: {:?}",
            run.lines()
        );
    }
    let audit = std::fs::read_to_string(run_dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"operation\":\"PUBLISH notes.txt\""),
        "{audit}"
    );

    // Ctrl+C: SIGINT to the whole foreground group.
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(
        run.wait_exit(Duration::from_secs(20)).is_some(),
        "make run did not stop: {:?} {:?}",
        run.lines(),
        group_members(pgid)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        group_members(pgid),
        Vec::<String>::new(),
        "processes left behind"
    );
    assert!(run.lines().iter().any(|l| l == "l> logger stopped"));
    assert!(
        std::net::TcpStream::connect(server).is_err(),
        "server still listening"
    );

    // A second run right after starts on the same ports.
    let mut cmd = run_script();
    script(&mut cmd);
    let mut again = Proc::start_with(&mut cmd);
    let pgid2 = again.child.id();
    let _guard2 = GroupGuard(pgid2);
    assert!(
        again
            .wait_line(Duration::from_secs(20), |l| l
                .contains("peerdex is running"))
            .is_some(),
        "second run: {:?}",
        again.lines()
    );
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid2}")])
        .status()
        .unwrap();
    assert!(again.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn make_run_names_a_port_already_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let run_dir = tempfile::tempdir().unwrap();
    let out = run_script()
        .env("PORT", free_port().to_string())
        .env("TIME_PORT", port.to_string())
        .env("LOGGER_PORT", free_port().to_string())
        .env("HTTP_PORT", free_port().to_string())
        .env("RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port} (TIME_PORT")) && err.contains("already in use"),
        "{err}"
    );
}
