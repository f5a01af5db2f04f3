//! Issue 26, the audit path under an adversary's or an operator's conditions: a
//! logger that closes idle connections is not an outage (item 13).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// A logger at `port` (0: any) writing `audit`, closing connections idle for
/// `idle` seconds, with its info lines on stderr (where it says it closed one).
fn logger(audit: &Path, port: u16, idle: &str) -> Logger {
    let mut cmd = Command::new(bin());
    cmd.env("RUST_LOG", "peerdex=info").args([
        "logger",
        "--bind",
        "127.0.0.1",
        "--no-portmap",
        "--port",
        &port.to_string(),
        "--idle-timeout",
        idle,
        "--audit",
        audit.to_str().unwrap(),
    ]);
    let proc = Proc::start_with(&mut cmd);
    let line = proc
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("l> init logger ")
        })
        .expect("logger did not print its init line");
    let addr: SocketAddr = line["l> init logger ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Logger {
        proc,
        port: addr.port(),
    }
}

/// The users of the records in the logger's audit file.
fn audited(audit: &Path) -> Vec<String> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["user"].as_str().map(str::to_owned))
        .collect()
}

fn register_audited(s: &Server, audit: &Path, user: &str) {
    assert_eq!(code(s.addr, &["REGISTER", "17/12/2014 13:20:35", user]), 0);
    assert!(
        wait_until(Duration::from_secs(20), || audited(audit)
            .contains(&user.to_owned())),
        "{user}'s record never reached the logger: {:?}",
        audited(audit)
    );
}

fn said(s: &Server, text: &str) -> usize {
    s.proc
        .err_lines()
        .iter()
        .filter(|l| l.contains(text))
        .count()
}

/// Issue 26 item 13: after the logger closed an idle connection, the next
/// request used to print "audit logger ... unreachable" and then "reachable
/// again" (seen on main). The shipper now redials silently; a real outage is
/// still said once, and its end once.
#[test]
fn an_idle_close_is_silent_and_a_real_outage_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let l = logger(&audit, 0, "0.5");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        dir.path().join("spool").to_str().unwrap(),
    ]);
    for round in 0..3 {
        register_audited(&s, &audit, &format!("idle{round}"));
        // The logger closes the shipper's connection once it is idle.
        let closed = wait_until(Duration::from_secs(20), || count_closes(&l) > round);
        assert!(closed, "the logger never closed the idle connection");
    }
    register_audited(&s, &audit, "after_idle");
    assert_eq!(said(&s, "unreachable"), 0, "{:?}", s.proc.err_lines());
    assert_eq!(said(&s, "reachable again"), 0, "{:?}", s.proc.err_lines());

    // A real outage: the logger is gone while requests come.
    let port = l.port;
    drop(l);
    assert_eq!(
        code(s.addr, &["REGISTER", "17/12/2014 13:20:35", "down1"]),
        0
    );
    assert!(
        s.proc
            .wait_err_line(Duration::from_secs(20), |x| x.contains("unreachable"))
            .is_some(),
        "the outage was not reported"
    );
    assert_eq!(
        code(s.addr, &["REGISTER", "17/12/2014 13:20:35", "down2"]),
        0
    );
    let l = logger(&audit, port, "0.5");
    for u in ["down1", "down2"] {
        assert!(
            wait_until(Duration::from_secs(30), || audited(&audit)
                .contains(&u.to_owned())),
            "{u} lost: {:?}",
            audited(&audit)
        );
    }
    assert!(
        s.proc
            .wait_err_line(Duration::from_secs(10), |x| x.contains("reachable again"))
            .is_some()
    );
    assert_eq!(said(&s, "unreachable"), 1, "{:?}", s.proc.err_lines());
    assert_eq!(said(&s, "reachable again"), 1, "{:?}", s.proc.err_lines());
    drop(l);
}

/// Connections the logger closed after their silence (its info line).
fn count_closes(l: &Logger) -> usize {
    l.proc
        .err_lines()
        .iter()
        .filter(|x| x.contains("closing the connection"))
        .count()
}
