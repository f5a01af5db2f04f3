//! The client shell against the real index server, a scripted fake index server (to
//! reach every result code), no server at all, and a fake time service. Most tests
//! run the shell in process ([`TestShell`]: lines in, messages and notes out); those
//! about the process itself (its exit status, the end of input, signals) drive
//! `peerdex client` through stdin.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use peerdex::internals::TestShell;
use support::*;

/// A shell in this process for the index server at `server`, sharing `share`, its
/// publication record in `state`, the local clock unless `extra` names a time URL.
fn shell_with(server: SocketAddr, share: &Path, state: &Path, extra: &[&str]) -> TestShell {
    let (ip, port) = (server.ip().to_string(), server.port().to_string());
    let mut args = vec![
        "-s",
        ip.as_str(),
        "-p",
        port.as_str(),
        "--share",
        share.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ];
    if !extra.contains(&"--time-url") {
        args.extend(["--time-url", NO_TIME_SERVICE]);
    }
    args.extend_from_slice(extra);
    TestShell::start(&args).expect("start the shell")
}

/// A shell in process with a state folder of its own (kept as long as the shell).
struct Shell {
    shell: TestShell,
    _state: tempfile::TempDir,
}

impl std::ops::Deref for Shell {
    type Target = TestShell;
    fn deref(&self) -> &TestShell {
        &self.shell
    }
}

impl std::ops::DerefMut for Shell {
    fn deref_mut(&mut self) -> &mut TestShell {
        &mut self.shell
    }
}

fn shell(server: SocketAddr, share: &Path, extra: &[&str]) -> Shell {
    let state = tempfile::tempdir().unwrap();
    Shell {
        shell: shell_with(server, share, state.path(), extra),
        _state: state,
    }
}

impl Shell {
    /// The message line of a command.
    fn cmd(&mut self, line: &str) -> String {
        self.shell.cmd(line).message
    }

    /// A list command's message and its entry lines.
    fn cmd_list(&mut self, line: &str) -> (String, Vec<String>) {
        let said = self.shell.cmd(line);
        (said.message, said.lines)
    }

    fn register_connect(&mut self, user: &str) {
        assert_eq!(self.cmd(&format!("REGISTER {user}")), "c> REGISTER OK");
        assert_eq!(self.cmd(&format!("CONNECT {user}")), "c> CONNECT OK");
    }
}

/// Whether something accepts connections on this loopback port.
fn listens(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn every_command_against_the_real_server() {
    let s = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"week 3").unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let mut a = shell(s.addr, dir.path(), &[]);

    // Nobody connected in this shell: acting commands answer "not connected"
    // without a user to act as.
    assert_eq!(
        a.cmd("PUBLISH notes.txt x"),
        "c> PUBLISH FAIL, USER NOT CONNECTED"
    );
    assert_eq!(
        a.cmd("DELETE notes.txt"),
        "c> DELETE FAIL, USER NOT CONNECTED"
    );
    assert_eq!(
        a.cmd("LIST_USERS"),
        "c> LIST_USERS FAIL, USER NOT CONNECTED"
    );
    assert_eq!(
        a.cmd("LIST_CONTENT x"),
        "c> LIST_CONTENT FAIL, USER NOT CONNECTED"
    );
    assert_eq!(a.cmd("SEARCH x"), "c> SEARCH FAIL, USER NOT CONNECTED");
    assert_eq!(a.cmd("GET_FILE x y z"), "c> GET_FILE FAIL");

    assert_eq!(a.cmd("REGISTER alice"), "c> REGISTER OK");
    assert_eq!(a.cmd("register alice"), "c> USERNAME IN USE");
    let long = "x".repeat(300);
    assert_eq!(a.cmd(&format!("REGISTER {long}")), "c> REGISTER FAIL");
    assert_eq!(a.cmd("UNREGISTER nobody"), "c> USER DOES NOT EXIST");
    assert_eq!(
        a.cmd("CONNECT nobody"),
        "c> CONNECT FAIL, USER DOES NOT EXIST"
    );
    assert_eq!(
        a.cmd("DISCONNECT nobody"),
        "c> DISCONNECT FAIL / USER DOES NOT EXIST"
    );
    assert_eq!(
        a.cmd("DISCONNECT alice"),
        "c> DISCONNECT FAIL / USER NOT CONNECTED"
    );
    assert_eq!(a.cmd("Connect alice"), "c> CONNECT OK");
    assert_eq!(a.cmd("CONNECT alice"), "c> USER ALREADY CONNECTED");
    assert_eq!(a.cmd("UNREGISTER alice"), "c> UNREGISTER FAIL");
    assert!(a.noted("alice is connected: DISCONNECT alice first"));

    // A second shell: the server says alice is already connected.
    let other = tempfile::tempdir().unwrap();
    let mut b = shell(s.addr, other.path(), &[]);
    assert_eq!(b.cmd("CONNECT alice"), "c> USER ALREADY CONNECTED");
    b.register_connect("bob");
    // One user per shell.
    assert_eq!(b.cmd("CONNECT alice"), "c> CONNECT FAIL");

    // PUBLISH: refused locally for a missing file or a folder, without a request.
    assert_eq!(a.cmd("PUBLISH missing.txt some text"), "c> PUBLISH FAIL");
    assert_eq!(a.cmd("PUBLISH folder some text"), "c> PUBLISH FAIL");
    assert!(a.noted("missing.txt"), "{:?}", a.notes());
    assert_eq!(
        a.cmd("PUBLISH notes.txt \"week 3  notes\""),
        "c> PUBLISH OK"
    );
    assert_eq!(
        a.cmd("PUBLISH notes.txt again"),
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED"
    );
    assert_eq!(
        a.cmd("DELETE other.txt"),
        "c> DELETE FAIL, CONTENT NOT PUBLISHED"
    );

    let alice_port = peer_port(s.addr, "alice");
    let bob_port = peer_port(s.addr, "bob");
    assert_eq!(a.peer_port(), Some(alice_port));
    let (msg, users) = a.cmd_list("LIST_USERS");
    assert_eq!(msg, "c> LIST_USERS OK");
    assert_eq!(users.len(), 3, "{users:?}");
    assert!(
        users.contains(&format!("\talice 127.0.0.1 {alice_port}")),
        "{users:?}"
    );
    assert!(
        users.contains(&format!("\tbob 127.0.0.1 {bob_port}")),
        "{users:?}"
    );
    let (msg, files) = b.cmd_list("LIST_CONTENT alice");
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, ["\tnotes.txt \"week 3  notes\""]);
    assert_eq!(
        b.cmd("LIST_CONTENT carol"),
        "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST"
    );
    let (msg, hits) = b.cmd_list("SEARCH notes");
    assert_eq!(msg, "c> SEARCH OK");
    assert_eq!(
        hits,
        [format!(
            "\tnotes.txt \"week 3  notes\" alice 127.0.0.1 {alice_port}"
        )]
    );
    let (msg, hits) = b.cmd_list("SEARCH zzz");
    assert_eq!((msg.as_str(), hits.len()), ("c> SEARCH OK", 0));

    assert_eq!(a.cmd("DELETE notes.txt"), "c> DELETE OK");
    let (msg, files) = b.cmd_list("LIST_CONTENT alice");
    assert_eq!((msg.as_str(), files.len()), ("c> LIST_CONTENT OK", 0));

    // HELP, usage lines, unknown words: one message each, the shell goes on.
    let help = a.shell.cmd("HELP");
    assert_eq!(
        help.message,
        "c> commands (the command word is case-insensitive):"
    );
    assert_eq!(help.ok, None);
    assert_eq!(a.cmd("REGISTER"), "c> usage: REGISTER <user>");
    assert_eq!(
        a.cmd("PUBLISH onlyfile"),
        "c> usage: PUBLISH <file> <description...>"
    );
    assert_eq!(
        a.cmd("get_file a"),
        "c> usage: GET_FILE <user> <remote_file> [<local_file>]"
    );
    assert_eq!(a.cmd("LIST_USERS extra"), "c> usage: LIST_USERS");
    assert!(a.cmd("FROB").starts_with("c> unknown command FROB"));
    // One line per command: its usage, then what it does.
    assert!(
        help.lines
            .iter()
            .any(|l| l.starts_with("\tSEARCH <pattern> ") && l.contains("contains the pattern")),
        "{help:?}"
    );
    assert!(a.printed().contains(&help.lines[0]));

    assert_eq!(a.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(a.peer_port(), None);
    assert!(!listens(alice_port));
    assert_eq!(
        a.cmd("PUBLISH notes.txt x"),
        "c> PUBLISH FAIL, USER NOT CONNECTED"
    );
    assert_eq!(a.cmd("UNREGISTER alice"), "c> UNREGISTER OK");
    // The script had failed commands (it would exit 1); QUIT with nobody connected
    // prints nothing.
    assert!(a.failed());
    assert_eq!(a.printed().last().unwrap(), "c> UNREGISTER OK");
    let Shell { shell, _state } = a;
    assert_eq!(shell.quit(), None);
}

/// A tiny HTTP server answering every GET with `body`; counts the requests.
fn fake_time(body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            h.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, hits)
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            2 | 5 => c == b'/',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn every_result_code_reaches_its_message() {
    let idx = FakeIndex::start();
    let (time_url, time_hits) = fake_time("01/02/2003 04:05:06");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"x").unwrap();
    let mut c = shell(idx.addr, dir.path(), &["--time-url", &time_url]);
    // The port of the listener the last CONNECT offered.
    let offered = |idx: &FakeIndex| -> u16 {
        let requests = idx.requests();
        let connect = requests.iter().rev().find(|r| r[0] == "CONNECT").unwrap();
        connect[3].parse().unwrap()
    };

    // Codes 0..=4 and an unknown code, per command. "" marks a code not tried here.
    let before_connect: [(&str, [&str; 6]); 3] = [
        (
            "REGISTER u",
            [
                "c> REGISTER OK",
                "c> USERNAME IN USE",
                "c> REGISTER FAIL",
                "c> REGISTER FAIL",
                "c> REGISTER FAIL",
                "c> REGISTER FAIL",
            ],
        ),
        (
            "UNREGISTER u",
            [
                "c> UNREGISTER OK",
                "c> USER DOES NOT EXIST",
                "c> UNREGISTER FAIL",
                "c> UNREGISTER FAIL",
                "c> UNREGISTER FAIL",
                "c> UNREGISTER FAIL",
            ],
        ),
        (
            "CONNECT u",
            [
                "",
                "c> CONNECT FAIL, USER DOES NOT EXIST",
                "c> USER ALREADY CONNECTED",
                "c> CONNECT FAIL",
                "c> CONNECT FAIL",
                "c> CONNECT FAIL",
            ],
        ),
    ];
    let codes = [0u8, 1, 2, 3, 4, 200];
    for (line, expected) in before_connect {
        for (code, want) in codes.iter().zip(expected) {
            if want.is_empty() {
                continue;
            }
            idx.set(*code);
            assert_eq!(c.cmd(line), want, "{line} answered {code}");
        }
    }
    // A refused CONNECT closed its listener again.
    assert_eq!(c.peer_port(), None);
    assert!(!listens(offered(&idx)));

    idx.set(0);
    assert_eq!(c.cmd("CONNECT u"), "c> CONNECT OK");
    let port = offered(&idx);
    assert_eq!(c.peer_port(), Some(port));
    assert!(listens(port));

    let connected: [(&str, [&str; 6]); 6] = [
        (
            "PUBLISH f.txt some words",
            [
                "c> PUBLISH OK",
                "c> PUBLISH FAIL, USER DOES NOT EXIST",
                "c> PUBLISH FAIL, USER NOT CONNECTED",
                "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
                "c> PUBLISH FAIL",
                "c> PUBLISH FAIL",
            ],
        ),
        (
            "DELETE f.txt",
            [
                "c> DELETE OK",
                "c> DELETE FAIL, USER DOES NOT EXIST",
                "c> DELETE FAIL, USER NOT CONNECTED",
                "c> DELETE FAIL, CONTENT NOT PUBLISHED",
                "c> DELETE FAIL",
                "c> DELETE FAIL",
            ],
        ),
        (
            "LIST_USERS",
            [
                "c> LIST_USERS OK",
                "c> LIST_USERS FAIL, USER DOES NOT EXIST",
                "c> LIST_USERS FAIL, USER NOT CONNECTED",
                "c> LIST_USERS FAIL",
                "c> LIST_USERS FAIL",
                "c> LIST_USERS FAIL",
            ],
        ),
        (
            "LIST_CONTENT v",
            [
                "c> LIST_CONTENT OK",
                "c> LIST_CONTENT FAIL, USER DOES NOT EXIST",
                "c> LIST_CONTENT FAIL, USER NOT CONNECTED",
                "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
                "c> LIST_CONTENT FAIL",
                "c> LIST_CONTENT FAIL",
            ],
        ),
        (
            "SEARCH p",
            [
                "c> SEARCH OK",
                "c> SEARCH FAIL, USER DOES NOT EXIST",
                "c> SEARCH FAIL, USER NOT CONNECTED",
                "c> SEARCH FAIL",
                "c> SEARCH FAIL",
                "c> SEARCH FAIL",
            ],
        ),
        // Another user: this shell's user stays connected.
        (
            "DISCONNECT v",
            [
                "c> DISCONNECT OK",
                "c> DISCONNECT FAIL / USER DOES NOT EXIST",
                "c> DISCONNECT FAIL / USER NOT CONNECTED",
                "c> DISCONNECT FAIL",
                "c> DISCONNECT FAIL",
                "c> DISCONNECT FAIL",
            ],
        ),
    ];
    for (line, expected) in connected {
        for (code, want) in codes.iter().zip(expected) {
            idx.set(*code);
            assert_eq!(c.cmd(line), want, "{line} answered {code}");
        }
    }
    // GET_FILE: the owner is not in the (empty) LIST_USERS reply, or LIST_USERS fails.
    idx.set(0);
    assert_eq!(c.cmd("GET_FILE v f.txt out"), "c> GET_FILE FAIL");
    idx.set(2);
    assert_eq!(c.cmd("GET_FILE v f.txt out"), "c> GET_FILE FAIL");
    assert_eq!(c.peer_port(), Some(port));

    // Every request carried the served DATETIME and acted as the connected user.
    let requests = idx.requests();
    assert!(time_hits.load(Ordering::SeqCst) >= requests.len());
    for r in &requests {
        assert_eq!(r[1], "01/02/2003 04:05:06", "{r:?}");
    }
    let acting: Vec<_> = requests
        .iter()
        .filter(|r| {
            matches!(
                r[0].as_str(),
                "PUBLISH" | "DELETE" | "LIST_USERS" | "SEARCH"
            )
        })
        .collect();
    assert!(!acting.is_empty());
    assert!(acting.iter().all(|r| r[2] == "u"), "{acting:?}");
    let publish = requests.iter().find(|r| r[0] == "PUBLISH").unwrap();
    assert_eq!(&publish[3..5], ["f.txt", "some words"]);

    // DISCONNECT of this shell's user stops the listener even when the server says
    // the user was not connected; then nothing acts as that user any more.
    idx.set(2);
    assert_eq!(
        c.cmd("DISCONNECT u"),
        "c> DISCONNECT FAIL / USER NOT CONNECTED"
    );
    assert_eq!(c.peer_port(), None);
    assert!(!listens(port));
    let sent = idx.requests().len();
    assert_eq!(
        c.cmd("PUBLISH f.txt x"),
        "c> PUBLISH FAIL, USER NOT CONNECTED"
    );
    assert_eq!(
        idx.requests().len(),
        sent,
        "a request was sent without a user"
    );
    assert!(
        c.notes().iter().all(|l| !l.contains("local clock")),
        "{:?}",
        c.notes()
    );
}

#[test]
fn without_a_time_service_the_local_clock_is_used_and_said_once() {
    let idx = FakeIndex::start();
    let dir = tempfile::tempdir().unwrap();
    let (garbage_url, _) = fake_time("not a time");
    for url in [NO_TIME_SERVICE, garbage_url.as_str()] {
        let mut c = shell(idx.addr, dir.path(), &["--time-url", url]);
        idx.set(0);
        assert_eq!(c.cmd("REGISTER u"), "c> REGISTER OK");
        assert_eq!(c.cmd("UNREGISTER u"), "c> UNREGISTER OK");
        assert_eq!(c.cmd("REGISTER w"), "c> REGISTER OK");
        let warnings = c
            .notes()
            .iter()
            .filter(|l| l.contains("using the local clock"))
            .count();
        assert_eq!(warnings, 1, "{url}: {:?}", c.notes());
    }
    let requests = idx.requests();
    assert_eq!(requests.len(), 6);
    for r in requests {
        assert!(looks_like_datetime(&r[1]), "{r:?}");
    }
}

#[test]
fn with_the_server_down_every_command_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"x").unwrap();
    let nowhere: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut c = shell(nowhere, dir.path(), &[]);
    assert_eq!(c.cmd("REGISTER u"), "c> REGISTER FAIL");
    assert_eq!(c.cmd("UNREGISTER u"), "c> UNREGISTER FAIL");
    assert_eq!(c.cmd("CONNECT u"), "c> CONNECT FAIL");
    assert_eq!(c.peer_port(), None);
    assert_eq!(c.cmd("DISCONNECT u"), "c> DISCONNECT FAIL");

    // Connected, then the server goes away.
    let mut s = Server::start(&[]);
    let mut c = shell(s.addr, dir.path(), &[]);
    c.register_connect("u");
    let port = c.peer_port().unwrap();
    s.proc.signal("KILL");
    s.proc.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(c.cmd("PUBLISH f.txt x"), "c> PUBLISH FAIL");
    assert_eq!(c.cmd("DELETE f.txt"), "c> DELETE FAIL");
    assert_eq!(c.cmd("LIST_USERS"), "c> LIST_USERS FAIL");
    assert_eq!(c.cmd("LIST_CONTENT u"), "c> LIST_CONTENT FAIL");
    assert_eq!(c.cmd("SEARCH f"), "c> SEARCH FAIL");
    assert_eq!(c.cmd("GET_FILE u f.txt g.txt"), "c> GET_FILE FAIL");
    assert!(listens(port));
    assert_eq!(c.cmd("DISCONNECT u"), "c> DISCONNECT FAIL");
    assert_eq!(c.peer_port(), None);
    assert!(!listens(port));
    // Every command failed: a script says so in its exit status.
    assert!(c.failed());
}

/// Starts a server and a shell connected as `user`; returns both.
fn connected(user: &str, dir: &std::path::Path) -> (Server, Client) {
    let s = Server::start(&[]);
    let mut c = Client::start(s.addr, dir);
    c.register_connect(user);
    assert!(connected_users(s.addr).iter().any(|(u, _)| u == user));
    (s, c)
}

fn assert_disconnected(s: &Server, user: &str) {
    let users = connected_users(s.addr);
    assert!(
        users.iter().all(|(u, _)| u != user),
        "{user} still listed: {users:?}"
    );
}

#[test]
fn quit_disconnects_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c) = connected("alice", dir.path());
    assert_eq!(c.cmd("quit"), "c> DISCONNECT OK");
    assert!(c.wait_exit().success());
    assert_disconnected(&s, "alice");
}

#[test]
fn end_of_input_disconnects_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c) = connected("alice", dir.path());
    c.close_stdin();
    assert_eq!(c.next_message(), "c> DISCONNECT OK");
    assert!(c.wait_exit().success());
    assert_disconnected(&s, "alice");
}

#[test]
fn ctrl_c_disconnects_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c) = connected("alice", dir.path());
    c.proc.signal("INT");
    assert_eq!(c.next_message(), "c> DISCONNECT OK");
    assert!(c.wait_exit().success());
    assert_disconnected(&s, "alice");
}

#[test]
fn sigterm_disconnects_first() {
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c) = connected("alice", dir.path());
    c.proc.signal("TERM");
    assert_eq!(c.next_message(), "c> DISCONNECT OK");
    assert!(c.wait_exit().success());
    assert_disconnected(&s, "alice");
}

/// Issue 15, defect 3: GET_FILE never writes over a file this client publishes (others
/// would download the wrong content); writing over another existing file is said.
#[test]
fn get_file_refuses_to_overwrite_a_published_file_and_warns_on_others() {
    let s = Server::start(&[]);
    let adir = tempfile::tempdir().unwrap();
    let bdir = tempfile::tempdir().unwrap();
    std::fs::write(adir.path().join("notes.txt"), b"alice's notes").unwrap();
    std::fs::write(bdir.path().join("mine.txt"), b"bob's own").unwrap();
    std::fs::write(bdir.path().join("old.txt"), b"old").unwrap();
    let mut a = shell(s.addr, adir.path(), &[]);
    let mut b = shell(s.addr, bdir.path(), &[]);
    a.register_connect("alice");
    assert_eq!(a.cmd("PUBLISH notes.txt n"), "c> PUBLISH OK");
    b.register_connect("bob");
    assert_eq!(b.cmd("PUBLISH mine.txt m"), "c> PUBLISH OK");

    assert_eq!(
        b.cmd("GET_FILE alice notes.txt mine.txt"),
        "c> GET_FILE FAIL"
    );
    assert!(b.noted("is published here as mine.txt"));
    assert_eq!(
        std::fs::read(bdir.path().join("mine.txt")).unwrap(),
        b"bob's own"
    );

    assert_eq!(b.cmd("GET_FILE alice notes.txt old.txt"), "c> GET_FILE OK");
    assert!(b.noted("old.txt exists: it is replaced"));
    assert_eq!(
        std::fs::read(bdir.path().join("old.txt")).unwrap(),
        b"alice's notes"
    );
    // A new name: nothing said.
    assert_eq!(b.cmd("GET_FILE alice notes.txt new.txt"), "c> GET_FILE OK");
    assert!(!b.notes().iter().any(|l| l.contains("new.txt")));
}

/// Issue 15, defect 4: after a DISCONNECT from another shell, CONNECT asks the server
/// instead of answering "already connected" from stale local state.
#[test]
fn connect_asks_the_server_even_when_the_shell_believes_it_is_connected() {
    let s = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut a = shell(s.addr, dir.path(), &[]);
    let mut b = shell(s.addr, other.path(), &[]);
    a.register_connect("alice");
    let port = peer_port(s.addr, "alice");
    assert_eq!(b.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert!(!connected_users(s.addr).iter().any(|(u, _)| u == "alice"));
    assert_eq!(a.cmd("CONNECT alice"), "c> CONNECT OK");
    assert_eq!(peer_port(s.addr, "alice"), port, "the shell's listener");
    assert_eq!(a.cmd("CONNECT alice"), "c> USER ALREADY CONNECTED");
    // Unregistered behind its back: the shell drops its connection.
    assert_eq!(b.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(b.cmd("UNREGISTER alice"), "c> UNREGISTER OK");
    assert_eq!(
        a.cmd("CONNECT alice"),
        "c> CONNECT FAIL, USER DOES NOT EXIST"
    );
    assert_eq!(a.user(), None);
    assert_eq!(
        a.cmd("LIST_USERS"),
        "c> LIST_USERS FAIL, USER NOT CONNECTED"
    );
}

#[test]
fn no_datetime_sends_the_first_version_layout() {
    let idx = FakeIndex::start();
    let (time_url, time_hits) = fake_time("01/02/2003 04:05:06");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"x").unwrap();
    let mut c = shell(
        idx.addr,
        dir.path(),
        &["--time-url", &time_url, "--no-datetime"],
    );
    assert_eq!(c.cmd("REGISTER u"), "c> REGISTER OK");
    assert_eq!(c.cmd("CONNECT u"), "c> CONNECT OK");
    assert_eq!(c.cmd("PUBLISH f.txt my notes"), "c> PUBLISH OK");
    assert_eq!(c.cmd("DELETE f.txt"), "c> DELETE OK");
    let requests = idx.requests();
    let port = requests[1][2].clone();
    // Each request as its fields (the split leaves "" after the last NUL).
    let want: Vec<Vec<&str>> = vec![
        vec!["REGISTER", "u", ""],
        vec!["CONNECT", "u", &port, ""],
        vec!["LIST_CONTENT", "u", "u", ""],
        vec!["PUBLISH", "u", "f.txt", "my notes", ""],
        vec!["DELETE", "u", "f.txt", ""],
    ];
    assert_eq!(requests, want);
    assert!(port.parse::<u16>().is_ok(), "{port}");
    assert_eq!(
        time_hits.load(Ordering::SeqCst),
        0,
        "the time service was asked"
    );
}

#[test]
fn fields_over_255_bytes_are_refused_locally_with_the_fail_message() {
    let idx = FakeIndex::start();
    let dir = tempfile::tempdir().unwrap();
    let mut c = shell(idx.addr, dir.path(), &[]);
    let long = "u".repeat(256);
    assert_eq!(c.cmd(&format!("REGISTER {long}")), "c> REGISTER FAIL");
    assert!(c.noted("at most 255"), "{:?}", c.notes());
    assert_eq!(c.cmd(&format!("UNREGISTER {long}")), "c> UNREGISTER FAIL");
    assert!(idx.requests().is_empty(), "{:?}", idx.requests());
    // 255 bytes is still sent.
    let most = "u".repeat(255);
    assert_eq!(c.cmd(&format!("REGISTER {most}")), "c> REGISTER OK");
    assert_eq!(idx.requests().len(), 1);
    assert_eq!(idx.requests()[0][2], most);
    assert_eq!(c.cmd("CONNECT u"), "c> CONNECT OK");
    let sent = idx.requests().len();
    let long_file = "f".repeat(256);
    assert_eq!(c.cmd(&format!("DELETE {long_file}")), "c> DELETE FAIL");
    assert_eq!(
        c.cmd(&format!("LIST_CONTENT {long}")),
        "c> LIST_CONTENT FAIL"
    );
    std::fs::write(dir.path().join("f.txt"), b"x").unwrap();
    let long_desc = "d ".repeat(128) + "d";
    assert_eq!(
        c.cmd(&format!("PUBLISH f.txt {long_desc}")),
        "c> PUBLISH FAIL"
    );
    assert!(c.noted("description has 257 bytes"), "{:?}", c.notes());
    assert_eq!(idx.requests().len(), sent, "{:?}", idx.requests());
}

/// Issue 15: GET_FILE's local name defaults to the remote file's base name;
/// LIST_CONTENT alone lists your own files; a script exits 1 after a failed command
/// unless --keep-going.
#[test]
fn default_local_name_own_content_and_script_exit_status() {
    let s = Server::start(&[]);
    let alice_dir = tempfile::tempdir().unwrap();
    let bob_dir = tempfile::tempdir().unwrap();
    std::fs::write(alice_dir.path().join("notes.txt"), b"week 3").unwrap();
    let mut a = Client::start(s.addr, alice_dir.path());
    assert_eq!(
        a.cmd("LIST_CONTENT"),
        "c> LIST_CONTENT FAIL, USER NOT CONNECTED"
    );
    a.register_connect("alice");
    assert_eq!(a.cmd("PUBLISH notes.txt week 3"), "c> PUBLISH OK");
    let (msg, files) = a.cmd_list("LIST_CONTENT", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, ["\tnotes.txt \"week 3\""]);

    let mut b = Client::start_with(s.addr, bob_dir.path(), &["--keep-going"]);
    b.register_connect("bob");
    assert_eq!(b.cmd("GET_FILE alice notes.txt"), "c> GET_FILE OK");
    assert_eq!(
        std::fs::read(bob_dir.path().join("notes.txt")).unwrap(),
        b"week 3"
    );
    assert_eq!(
        b.cmd("GET_FILE alice nothing.txt"),
        "c> GET_FILE FAIL / FILE NOT EXIST"
    );
    assert_eq!(b.cmd("QUIT"), "c> DISCONNECT OK");
    // A failure, but --keep-going.
    assert!(b.wait_exit().success());

    // Alice's first LIST_CONTENT failed, and she has no --keep-going (a script
    // without failures exits 0: quit_disconnects_first).
    assert_eq!(a.cmd("QUIT"), "c> DISCONNECT OK");
    assert_eq!(a.wait_exit().code(), Some(1));
}

/// An index server that answers each operation with fixed bytes (`[0]` for those
/// not listed) and closes.
fn scripted_index(replies: &[(&str, &[u8])]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let replies: Vec<(String, Vec<u8>)> = replies
        .iter()
        .map(|(op, bytes)| (op.to_string(), bytes.to_vec()))
        .collect();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let op = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
            let reply = replies
                .iter()
                .find(|(name, _)| name.as_bytes() == op)
                .map_or(vec![0], |(_, bytes)| bytes.clone());
            let _ = stream.write_all(&reply);
        }
    });
    addr
}

/// Issue 23: result codes as text or 4-byte ints, LIST_CONTENT with names only, a
/// LIST_USERS that counts the requester but leaves it out, and names with control
/// or bidi characters, which reach the screen escaped.
#[test]
fn replies_of_other_servers_are_read_and_their_names_escaped() {
    let idx = scripted_index(&[
        ("REGISTER", b"1\0"),
        ("UNREGISTER", b"\0\0\0\x01"),
        ("LIST_USERS", b"\x002\0ev\x1b[2Jil\x00127.0.0.1\x005000\0"),
        ("LIST_CONTENT", b"\x002\0a\xe2\x80\xaeb\0c\0"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = shell(idx, dir.path(), &[]);
    assert_eq!(c.cmd("REGISTER u"), "c> USERNAME IN USE");
    assert_eq!(c.cmd("UNREGISTER u"), "c> USER DOES NOT EXIST");
    assert_eq!(c.cmd("CONNECT u"), "c> CONNECT OK");
    let (msg, users) = c.cmd_list("LIST_USERS");
    assert_eq!(msg, "c> LIST_USERS OK");
    assert_eq!(users, ["\tev\\x1b[2Jil 127.0.0.1 5000"]);
    let (msg, files) = c.cmd_list("LIST_CONTENT v");
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, ["\ta\\u{202e}b", "\tc"]);
    assert!(
        c.printed().iter().all(|l| !l.contains('\x1b')),
        "{:?}",
        c.printed()
    );
}

/// Issue 23: the notes a new user meets say what is wrong: a file name with a
/// space, a user that does not exist (not "not connected"), a remote name without
/// a file name to save under (GET_FILE and FETCH alike).
#[test]
fn refusals_say_what_is_wrong() {
    let s = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("my notes.txt"), b"x").unwrap();
    let mut a = shell(s.addr, dir.path(), &[]);
    a.register_connect("alice");
    assert_eq!(a.cmd("PUBLISH my notes.txt week 3"), "c> PUBLISH FAIL");
    assert!(
        a.noted("\"my notes.txt\" has a space, and names cannot contain spaces"),
        "{:?}",
        a.notes()
    );
    assert!(!a.noted("No such file"), "{:?}", a.notes());

    assert_eq!(a.cmd("GET_FILE nobody x"), "c> GET_FILE FAIL");
    assert!(
        a.noted("GET_FILE: nobody does not exist"),
        "{:?}",
        a.notes()
    );
    assert_eq!(code(s.addr, &["REGISTER", "bob"]), 0);
    assert_eq!(a.cmd("GET_FILE bob x"), "c> GET_FILE FAIL");
    assert!(a.noted("GET_FILE: bob is not connected"), "{:?}", a.notes());

    assert_eq!(a.cmd("GET_FILE bob x/.."), "c> GET_FILE FAIL");
    assert_eq!(a.cmd("FETCH x/.."), "c> FETCH FAIL");
    let refusals = a
        .notes()
        .iter()
        .filter(|l| l.contains("x/.. has no file name to save under"))
        .count();
    assert_eq!(refusals, 2, "{:?}", a.notes());
}

/// Issue 23: a background job's end names the job next to its message, JOBS shows
/// a finished job once, and a done download is re-shared when the shell reacts to
/// the job's end.
#[test]
fn background_jobs_are_named_shown_once_and_reshared() {
    let s = Server::start(&[]);
    let adir = tempfile::tempdir().unwrap();
    let bdir = tempfile::tempdir().unwrap();
    std::fs::write(adir.path().join("notes.txt"), b"week 3").unwrap();
    let mut a = shell(s.addr, adir.path(), &[]);
    a.register_connect("alice");
    assert_eq!(a.cmd("PUBLISH notes.txt lab notes"), "c> PUBLISH OK");
    let mut b = shell(s.addr, bdir.path(), &["--reshare"]);
    b.register_connect("bob");
    let queued = b.shell.cmd("GET_FILE alice notes.txt copy.txt &");
    assert_eq!((queued.message.as_str(), queued.ok), ("", None));
    assert!(b.noted("peerdex: [1] started"), "{:?}", b.notes());
    b.settle();
    assert_eq!(b.printed().last().unwrap(), "c> GET_FILE OK");
    assert!(
        b.noted("peerdex: [1] GET_FILE alice notes.txt copy.txt: 6 B in "),
        "{:?}",
        b.notes()
    );
    assert!(
        b.noted("re-shared copy.txt \"lab notes\""),
        "{:?}",
        b.notes()
    );
    let (msg, jobs) = b.cmd_list("JOBS");
    assert_eq!(msg, "c> JOBS OK");
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].starts_with("\t1 done 6/6 bytes 100% "), "{jobs:?}");
    assert_eq!(b.cmd_list("JOBS").1.len(), 0, "shown once");
    assert_eq!(
        std::fs::read(bdir.path().join("copy.txt")).unwrap(),
        b"week 3"
    );
    // A failed background job fails a script too.
    assert!(!b.failed());
    b.shell.cmd("GET_FILE alice nothing.txt &");
    b.settle();
    assert_eq!(
        b.printed().last().unwrap(),
        "c> GET_FILE FAIL / FILE NOT EXIST"
    );
    assert!(b.noted("[2] GET_FILE alice nothing.txt: not found"));
    assert!(b.failed());
}

/// Issue 23: `client --help` names the history file this environment gives
/// (XDG_STATE_HOME first).
#[test]
fn help_names_the_history_file_of_this_environment() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["client", "--help"])
        .env("XDG_STATE_HOME", state.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let history = state.path().join("peerdex/history");
    assert!(
        help.contains(&format!("history ({})", history.display())),
        "{help}"
    );
    assert!(help.contains("--state-dir"), "{help}");
}
