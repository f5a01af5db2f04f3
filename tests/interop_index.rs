//! The index protocol between peerdex and programs written to either year's statement
//! (issue 25 items 1, 2 and 7; ../shared/STATEMENTS.md): partners in
//! tests/partners/index, written here from the statement.
//!
//! - Student clients (statement_client.py) of 2023-24 and 2024-25 against the peerdex
//!   server, default and `--statement 2025`: LIST_CONTENT in the year's layout,
//!   CONNECT with an IP field, every operation's code.
//! - The peerdex client against student servers (statement_server.py) of both years,
//!   sending result codes as a byte, as `"0\0"` text, and as 4-byte integers.
//!
//! Skips with a message when python3 is missing; fails instead when
//! PEERDEX_REQUIRE_SYSTEM_TESTS=1 (CI).

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::partner::{StudentServer, have_python};
use support::*;

/// A student's client running `requests` in turn, each on its own connection; the
/// printed reply of each (`code N`, entries sorted, `trailing N`).
fn students(server: SocketAddr, options: &[&str], requests: &[&[&str]]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("requests");
    let lines: Vec<String> = requests.iter().map(|r| r.join("\t") + "\n").collect();
    std::fs::write(&input, lines.concat()).unwrap();
    let done = run_to_exit(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec python3 \"$0\" \"$@\" --batch < '{}'",
                input.display()
            ))
            .arg(partner::path("index/statement_client.py"))
            .arg(server.ip().to_string())
            .arg(server.port().to_string())
            .args(options),
        Duration::from_secs(60),
        "statement_client.py",
    )
    .unwrap();
    assert!(
        done.status.success(),
        "statement_client.py {options:?} {requests:?}: {}",
        done.stderr
    );
    let replies: Vec<String> = done
        .stdout
        .split(".\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let mut lines: Vec<&str> = block.lines().collect();
            let end =
                lines.len() - usize::from(lines.last().is_some_and(|l| l.starts_with("trailing ")));
            if end > 1 {
                lines[1..end].sort();
            }
            lines.join("\n")
        })
        .collect();
    assert_eq!(replies.len(), requests.len(), "{}", done.stdout);
    replies
}

/// One request of a student's client.
fn student(server: SocketAddr, options: &[&str], request: &[&str]) -> String {
    students(server, options, &[request]).remove(0)
}

/// One whole session of a student's client of `year` against `s`, each reply as
/// the year's client reads it; `ip`: CONNECT declares that address.
fn session(s: &Server, year: &str, ip: Option<&str>) {
    let mut opts = vec!["--statement", year];
    if let Some(ip) = ip {
        opts.extend(["--ip", ip]);
    }
    // 2025 publishes absolute paths, 2024 names.
    let (a, b) = if year == "2025" {
        ("/home/alice/notes.txt", "/home/alice/b.txt")
    } else {
        ("notes.txt", "b.txt")
    };
    let content = if year == "2025" {
        format!("code 0\n{b}\n{a}")
    } else {
        format!("code 0\n{b}\tthe b file\n{a}\tmy notes")
    };
    let script: Vec<(Vec<&str>, &str)> = vec![
        (vec!["REGISTER", "alice"], "code 0"),
        (vec!["REGISTER", "alice"], "code 1"),
        (vec!["REGISTER", "bob"], "code 0"),
        (vec!["PUBLISH", "alice", a, "my notes"], "code 2"),
        (vec!["CONNECT", "alice", "4000"], "code 0"),
        (vec!["CONNECT", "alice", "4000"], "code 2"),
        (vec!["CONNECT", "bob", "4001"], "code 0"),
        (vec!["PUBLISH", "alice", a, "my notes"], "code 0"),
        (vec!["PUBLISH", "alice", a, "again"], "code 3"),
        (vec!["PUBLISH", "alice", b, "the b file"], "code 0"),
        (
            vec!["LIST_USERS", "bob"],
            "code 0\nalice\t127.0.0.1\t4000\nbob\t127.0.0.1\t4001",
        ),
        (vec!["LIST_CONTENT", "bob", "alice"], &content),
        (vec!["LIST_CONTENT", "bob", "nobody"], "code 3"),
        (vec!["DELETE", "alice", a], "code 0"),
        (vec!["DELETE", "alice", a], "code 3"),
        (vec!["DISCONNECT", "alice"], "code 0"),
        (vec!["DISCONNECT", "alice"], "code 2"),
        (vec!["UNREGISTER", "alice"], "code 0"),
        (vec!["UNREGISTER", "alice"], "code 1"),
    ];
    let requests: Vec<&[&str]> = script.iter().map(|(r, _)| r.as_slice()).collect();
    let replies = students(s.addr, &opts, &requests);
    for ((request, want), got) in script.iter().zip(&replies) {
        assert_eq!(got, want, "{request:?} from a {year} client");
    }
}

#[test]
fn a_2025_client_reads_names_only_from_a_2025_server() {
    if !have_python("2025 client, 2025 server") {
        return;
    }
    let s = Server::start(&["--statement", "2025"]);
    session(&s, "2025", None);
}

#[test]
fn a_2024_client_reads_names_and_descriptions_from_the_default_server() {
    if !have_python("2024 client, default server") {
        return;
    }
    let s = Server::start(&[]);
    session(&s, "2024", None);
}

#[test]
fn the_year_decides_what_a_client_of_the_other_year_meets() {
    if !have_python("a client of the other year") {
        return;
    }
    // Why the setting exists: the bytes of LIST_CONTENT cannot say their year. A
    // 2025 client of a default (2024) server finds the descriptions left over;
    // with --statement 2025 it reads exactly what it expects.
    let requests: [&[&str]; 4] = [
        &["REGISTER", "alice"],
        &["CONNECT", "alice", "4000"],
        &["PUBLISH", "alice", "/a.txt", "about a"],
        &["LIST_CONTENT", "alice", "alice"],
    ];
    for (server, last) in [
        (
            &[][..],
            format!("code 0\n/a.txt\ntrailing {}", "about a".len() + 1),
        ),
        (&["--statement", "2025"][..], "code 0\n/a.txt".to_owned()),
    ] {
        let s = Server::start(server);
        let replies = students(s.addr, &["--statement", "2025"], &requests);
        assert_eq!(
            replies,
            ["code 0", "code 0", "code 0", last.as_str()],
            "{server:?}"
        );
    }
}

#[test]
fn connect_with_an_ip_field_works_in_both_years() {
    if !have_python("CONNECT with an IP field") {
        return;
    }
    let s = Server::start(&["--statement", "2025"]);
    session(&s, "2025", Some("127.0.0.1"));
    let s = Server::start(&[]);
    session(&s, "2024", Some("127.0.0.1"));
    // A declared address that is not the connection's: the connection's is kept
    // (every later request is checked against it).
    let s = Server::start(&[]);
    let op = |req: &[&str]| student(s.addr, &["--ip", "10.1.2.3"], req);
    assert_eq!(op(&["REGISTER", "carol"]), "code 0");
    assert_eq!(op(&["CONNECT", "carol", "4002"]), "code 0");
    assert_eq!(
        op(&["LIST_USERS", "carol"]),
        "code 0\ncarol\t127.0.0.1\t4002"
    );
}

// ---- The other way: the peerdex client against student servers ----

/// The raw reply bytes of a student server to `parts`.
fn raw(s: &StudentServer, parts: &[&str]) -> Vec<u8> {
    call(s.addr, parts)
}

#[test]
fn the_student_servers_send_the_codes_they_say() {
    if !have_python("student server codes") {
        return;
    }
    for (codes, ok, in_use) in [
        ("byte", &b"\x00"[..], &b"\x01"[..]),
        ("text", b"0\0", b"1\0"),
        ("int", b"\0\0\0\0", b"\0\0\0\x01"),
        ("int-le", b"\0\0\0\0", b"\x01\0\0\0"),
    ] {
        let s = StudentServer::start(&["--codes", codes, "--statement", "2025"]);
        let d = "17/12/2014 13:20:35";
        assert_eq!(raw(&s, &["REGISTER", d, "alice"]), ok, "{codes}");
        assert_eq!(raw(&s, &["REGISTER", d, "alice"]), in_use, "{codes}");
        let mut want = ok.to_vec();
        want.extend_from_slice(b"0\0");
        assert_eq!(raw(&s, &["CONNECT", d, "alice", "4000"]), ok, "{codes}");
        assert_eq!(raw(&s, &["LIST_CONTENT", d, "alice", "alice"]), want);
    }
}

/// A peerdex client session against `s`: every command's message as the
/// statement's client prints it. `names_only`: the server's LIST_CONTENT has no
/// descriptions (2025).
fn peerdex_session(s: &StudentServer, names_only: bool) {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("notes.txt"), b"some notes\n").unwrap();
    let state = dir.path().join("state");
    let mut c = Client::with_state(s.addr, &share, &state, &[]);
    assert_eq!(c.cmd("REGISTER alice"), "c> REGISTER OK");
    assert_eq!(c.cmd("REGISTER alice"), "c> USERNAME IN USE");
    assert_eq!(c.cmd("CONNECT alice"), "c> CONNECT OK");
    assert_eq!(c.cmd("PUBLISH notes.txt my notes"), "c> PUBLISH OK");
    assert_eq!(
        c.cmd("PUBLISH notes.txt my notes"),
        "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED"
    );
    let (msg, users) = c.cmd_list("LIST_USERS", 1);
    assert_eq!(msg, "c> LIST_USERS OK");
    assert!(users[0].starts_with("\talice 127.0.0.1 "), "{users:?}");
    let (msg, files) = c.cmd_list("LIST_CONTENT alice", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    if names_only {
        assert!(files[0].starts_with("\tnotes.txt"), "{files:?}");
    } else {
        assert_eq!(files, ["\tnotes.txt \"my notes\""]);
    }
    assert_eq!(
        c.cmd("LIST_CONTENT nobody"),
        "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST"
    );
    assert_eq!(c.cmd("DELETE notes.txt"), "c> DELETE OK");
    assert_eq!(
        c.cmd("DELETE notes.txt"),
        "c> DELETE FAIL, CONTENT NOT PUBLISHED"
    );
    assert_eq!(c.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(c.cmd("UNREGISTER alice"), "c> UNREGISTER OK");
    assert_eq!(c.cmd("UNREGISTER alice"), "c> USER DOES NOT EXIST");
    c.send("QUIT");
    c.close_stdin();
    c.wait_exit();
    // What reached the student server: the statement's fields, a DATETIME first.
    let reqs = s.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert!(
            r.len() >= 3 && r[1].len() == 19 && r[1].contains(' '),
            "{r:?}"
        );
    }
}

fn peerdex_client_against(test: &str, options: &[&str]) {
    if !have_python(test) {
        return;
    }
    let s = StudentServer::start(options);
    peerdex_session(&s, options.contains(&"2025"));
}

#[test]
fn the_peerdex_client_works_with_a_2024_server_sending_byte_codes() {
    peerdex_client_against(
        "peerdex client, 2024 server, byte codes",
        &["--statement", "2024", "--codes", "byte"],
    );
}

// The client still reads one result byte (`read_u8`); src/client is switching to
// `proto::index::read_status`. Failed here: text "0\0" gave "c> REGISTER FAIL" for OK;
// an int's first byte (0) gave "c> REGISTER OK" for USERNAME IN USE.
#[test]
fn the_peerdex_client_works_with_a_2024_server_sending_text_codes() {
    peerdex_client_against(
        "peerdex client, 2024 server, text codes",
        &["--statement", "2024", "--codes", "text"],
    );
}

// The client still reads one result byte (`read_u8`); src/client is switching to
// `proto::index::read_status`. Failed here: text "0\0" gave "c> REGISTER FAIL" for OK;
// an int's first byte (0) gave "c> REGISTER OK" for USERNAME IN USE.
#[test]
fn the_peerdex_client_works_with_a_2024_server_sending_int_codes() {
    peerdex_client_against(
        "peerdex client, 2024 server, int codes",
        &["--statement", "2024", "--codes", "int"],
    );
}

#[test]
fn the_peerdex_client_works_with_a_2025_server_sending_byte_codes() {
    peerdex_client_against(
        "peerdex client, 2025 server, byte codes",
        &["--statement", "2025", "--codes", "byte"],
    );
}

// The client still reads one result byte (`read_u8`); src/client is switching to
// `proto::index::read_status`. Failed here: text "0\0" gave "c> REGISTER FAIL" for OK;
// an int's first byte (0) gave "c> REGISTER OK" for USERNAME IN USE.
#[test]
fn the_peerdex_client_works_with_a_2025_server_sending_text_codes() {
    peerdex_client_against(
        "peerdex client, 2025 server, text codes",
        &["--statement", "2025", "--codes", "text"],
    );
}

// The client still reads one result byte (`read_u8`); src/client is switching to
// `proto::index::read_status`. Failed here: text "0\0" gave "c> REGISTER FAIL" for OK;
// an int's first byte (0) gave "c> REGISTER OK" for USERNAME IN USE.
#[test]
fn the_peerdex_client_works_with_a_2025_server_sending_little_endian_int_codes() {
    peerdex_client_against(
        "peerdex client, 2025 server, int-le codes",
        &["--statement", "2025", "--codes", "int-le"],
    );
}

#[test]
fn the_peerdex_client_works_with_a_server_that_lists_users_without_the_requester() {
    if !have_python("LIST_USERS without the requester") {
        return;
    }
    let s = StudentServer::start(&["--without-requester"]);
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let state = dir.path().join("state");
    let mut c = Client::with_state(s.addr, &share, &state, &[]);
    c.register_connect("alice");
    let mut b = Client::with_state(s.addr, &share, &dir.path().join("state_b"), &[]);
    b.register_connect("bob");
    let (msg, users) = c.cmd_list("LIST_USERS", 1);
    assert_eq!(msg, "c> LIST_USERS OK");
    assert!(users[0].starts_with("\tbob 127.0.0.1 "), "{users:?}");
    // Nothing more: the next command's message is the next line.
    assert_eq!(c.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(b.cmd("DISCONNECT bob"), "c> DISCONNECT OK");
}
