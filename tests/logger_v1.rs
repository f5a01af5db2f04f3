//! The index server shipping to a statement logger that has only `void LOG(string)`
//! in version 1 (PROTOCOL.md section 3): built from tests/partners/v1_logger with
//! rpcgen, gcc and libtirpc, registered with the running rpcbind. The server finds it
//! through the portmapper, sends it the printed lines, and goes back to version 3
//! records when a peerdex logger takes the program over.
//!
//! Skips with a message when rpcgen, gcc, libtirpc or rpcbind are missing; fails
//! instead when PEERDEX_REQUIRE_SYSTEM_TESTS=1 (CI).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;

/// A program number of this test run's own (other test binaries use other ranges).
fn program() -> u32 {
    0x2000_1000 + std::process::id() % 4096
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn missing() -> Vec<String> {
    let mut out: Vec<String> = ["rpcgen", "gcc", "rpcinfo"]
        .iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("`{t}` on PATH"))
        .collect();
    if !Path::new("/usr/include/tirpc/rpc/rpc.h").exists() {
        out.push("libtirpc headers (libtirpc-dev)".into());
    }
    if !support::pmap::running() {
        out.push("a running portmapper on 127.0.0.1:111 (rpcbind -w)".into());
    }
    out
}

fn partners() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/partners")
}

fn request(s: &Server, parts: &[&str]) {
    assert_eq!(code(s.addr, parts), 0, "{parts:?}");
}

#[test]
fn a_version_1_logger_gets_printed_lines_and_a_version_2_logger_records_again() {
    if !require_tools("v1 logger test", &missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prog = program();
    let built = dir.path().join("v1");
    let out = Command::new("bash")
        .arg(partners().join("v1_logger/build.sh"))
        .arg(&built)
        .arg(prog.to_string())
        .output()
        .expect("run build.sh");
    assert!(
        out.status.success(),
        "build.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v1 = Proc::start_with(Command::new(built.join("logv1_server")).stdin(Stdio::null()));
    // rpcgen's main registers before svc_run: wait until the portmapper lists it.
    assert!(
        wait_until(Duration::from_secs(10), || {
            support::pmap::getport(prog, 1).is_some_and(|port| port != 0)
        }),
        "the v1 logger did not register program {prog}"
    );

    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        "127.0.0.1",
        "--program",
        &prog.to_string(),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    request(&s, &["REGISTER", "17/12/2014 13:20:35", "alice"]);
    request(&s, &["CONNECT", "17/12/2014 13:20:36", "alice", "4000"]);
    request(
        &s,
        &[
            "PUBLISH",
            "17/12/2014 13:20:37",
            "alice",
            "notes.txt",
            "my notes",
        ],
    );
    let want = [
        "alice    REGISTER    17/12/2014 13:20:35",
        "alice    CONNECT    17/12/2014 13:20:36",
        "alice    PUBLISH notes.txt    17/12/2014 13:20:37",
    ];
    assert!(
        wait_until(Duration::from_secs(20), || {
            let lines = v1.lines();
            want.iter().all(|w| lines.iter().any(|x| x == w))
        }),
        "the v1 logger printed {:?}",
        v1.lines()
    );

    // A peerdex logger (versions 1 to 3) takes the program over.
    v1.signal("TERM");
    assert!(
        v1.wait_exit(Duration::from_secs(10)).is_some(),
        "v1 logger exit"
    );
    let audit = dir.path().join("audit.jsonl");
    let mut l = Logger::start(&[
        "--program",
        &prog.to_string(),
        "--audit",
        audit.to_str().unwrap(),
    ]);
    l.proc
        .wait_line(Duration::from_secs(10), |x| x.starts_with("l> registered"))
        .unwrap_or_else(|| panic!("logger did not register: {:?}", l.proc.lines()));
    request(&s, &["LIST_USERS", "17/12/2014 13:20:38", "alice"]);
    let later = "alice    LIST_USERS    17/12/2014 13:20:38";
    assert!(
        wait_until(Duration::from_secs(30), || l
            .proc
            .lines()
            .iter()
            .any(|x| x == later)),
        "the peerdex logger printed {:?}",
        l.proc.lines()
    );
    // It arrived as a version 3 record (a version 1 call would be stored as text).
    let text = std::fs::read_to_string(&audit).unwrap_or_default();
    let record = text
        .lines()
        .map(|x| serde_json::from_str::<serde_json::Value>(x).expect("audit JSON"))
        .find(|v| v["operation"] == "LIST_USERS")
        .unwrap_or_else(|| panic!("no LIST_USERS record in {text}"));
    assert_eq!(record["version"], 3, "{record}");
    assert_eq!(record["result"], 0, "{record}");
    assert_eq!(record["user"], "alice");
    l.proc.signal("INT");
    assert!(
        l.proc.wait_exit(Duration::from_secs(10)).is_some(),
        "logger exit"
    );
}

// ---- Without rpcbind: a hand-written version 1 logger behind --logger HOST:PORT ----

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i..i + 4].try_into().unwrap())
}

/// Skips an opaque_auth (flavor, length, body) at `at`; returns the offset after it.
fn skip_auth(b: &[u8], at: usize) -> usize {
    at + 8 + (word(b, at + 4) as usize).div_ceil(4) * 4
}

/// One reply message for `xid`: accepted, AUTH_NONE verifier, then `tail`
/// (accept_stat and its data), with its record mark.
fn reply(xid: u32, tail: &[u32]) -> Vec<u8> {
    let mut words = vec![xid, 1, 0, 0, 0];
    words.extend_from_slice(tail);
    let body: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let mut out = (body.len() as u32 | 1 << 31).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// Serves one connection like rpcgen's server for `void LOG(string) = 1` in version
/// 1 only: calls of other versions get PROG_MISMATCH 1..1.
fn serve_v1(mut s: TcpStream, lines: Arc<Mutex<Vec<String>>>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    loop {
        let mut mark = [0u8; 4];
        if s.read_exact(&mut mark).is_err() {
            return;
        }
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        assert!(u32::from_be_bytes(mark) & 1 << 31 != 0 && len <= 65536);
        let mut m = vec![0u8; len];
        if s.read_exact(&mut m).is_err() {
            return;
        }
        let (xid, vers, proc_) = (word(&m, 0), word(&m, 16), word(&m, 20));
        let out = if vers != 1 {
            reply(xid, &[2, 1, 1])
        } else {
            if proc_ == 1 {
                let args = skip_auth(&m, skip_auth(&m, 24));
                let n = word(&m, args) as usize;
                let text = String::from_utf8(m[args + 4..args + 4 + n].to_vec()).unwrap();
                lines.lock().unwrap().push(text);
            }
            reply(xid, &[0])
        };
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

#[test]
fn a_direct_version_1_logger_is_detected_by_prog_mismatch_and_said_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&lines);
    thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let keep = Arc::clone(&keep);
            thread::spawn(move || serve_v1(s, keep));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{port}"),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    let mut want = Vec::new();
    for i in 0..20 {
        let user = format!("u{i}");
        request(&s, &["REGISTER", "17/12/2014 13:20:35", &user]);
        want.push(format!("{user}    REGISTER    17/12/2014 13:20:35"));
    }
    assert!(
        wait_until(Duration::from_secs(20), || lines.lock().unwrap().len()
            >= want.len()),
        "the v1 logger got {:?}",
        lines.lock().unwrap()
    );
    // A steady logger loses and repeats nothing; the switch is said once. The spool
    // is shipped in order, so once a last record arrives, any repeat of the
    // earlier ones would have come before it.
    request(&s, &["REGISTER", "17/12/2014 13:20:36", "last"]);
    want.push("last    REGISTER    17/12/2014 13:20:36".to_owned());
    assert!(
        wait_until(Duration::from_secs(20), || lines
            .lock()
            .unwrap()
            .contains(want.last().unwrap())),
        "the v1 logger got {:?}",
        lines.lock().unwrap()
    );
    assert_eq!(*lines.lock().unwrap(), want);
    let said = s
        .proc
        .err_lines()
        .iter()
        .filter(|l| l.contains("offers only LOG version 1"))
        .count();
    assert_eq!(said, 1, "{:?}", s.proc.err_lines());
}
