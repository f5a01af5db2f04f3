//! SEARCH through the server's index, as a real process on a real socket: the result
//! cap (`--max-search-results`), the pattern length limit, and the index rebuilt by a
//! restart on the data directory (PROTOCOL.md section 1, SEARCH reply).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;

const DT: &str = "17/12/2014 13:20:35";

fn online(addr: SocketAddr, user: &str, port: &str) {
    assert_eq!(code(addr, &["REGISTER", DT, user]), 0);
    assert_eq!(code(addr, &["CONNECT", DT, user, port]), 0);
}

fn publish(addr: SocketAddr, user: &str, file: &str) {
    assert_eq!(code(addr, &["PUBLISH", DT, user, file, "a file"]), 0);
}

/// The file names of a SEARCH reply, checking that its count says how many entries
/// (five fields each) follow.
fn search(addr: SocketAddr, user: &str, pattern: &str) -> Vec<String> {
    let f = list_fields(&call(addr, &["SEARCH", DT, user, pattern]));
    let n: usize = f[0].parse().unwrap();
    assert_eq!(f.len(), 1 + 5 * n, "SEARCH {pattern:?} fields: {f:?}");
    f[1..].chunks(5).map(|c| c[0].clone()).collect()
}

#[test]
fn the_result_cap_bounds_the_reply_and_its_count() {
    let s = Server::start(&["--max-search-results", "5"]);
    let a = s.addr;
    online(a, "u1", "7001");
    online(a, "u2", "7002");
    for i in 0..6 {
        publish(a, "u1", &format!("notes-{i}.txt"));
        publish(a, "u2", &format!("song-{i}.mp3"));
    }
    assert_eq!(search(a, "u1", "").len(), 5, "empty pattern, capped");
    assert_eq!(search(a, "u1", ".txt").len(), 5);
    assert_eq!(search(a, "u1", "t").len(), 5, "one-byte pattern, capped");
    assert_eq!(search(a, "u1", "song-3"), ["song-3.mp3"]);
    assert_eq!(search(a, "u1", "zebra"), Vec::<String>::new());
    // A disconnected owner's files are not listed.
    assert_eq!(code(a, &["DISCONNECT", DT, "u2"]), 0);
    assert_eq!(search(a, "u1", ".mp3"), Vec::<String>::new());
    assert_eq!(call(a, &["SEARCH", DT, "u2x", ""]), [1], "unknown user");
}

#[test]
fn the_default_cap_is_1000() {
    let s = Server::start(&[]);
    let a = s.addr;
    online(a, "u1", "7001");
    for i in 0..1001 {
        publish(a, "u1", &format!("f{i}"));
    }
    assert_eq!(search(a, "u1", "f").len(), 1000);
    assert_eq!(search(a, "u1", "f100").len(), 2, "f100 and f1000");
}

#[test]
fn a_pattern_over_256_bytes_gets_code_3() {
    let s = Server::start(&[]);
    let a = s.addr;
    online(a, "u1", "7001");
    let name = "n".repeat(256);
    publish(a, "u1", &name);
    assert_eq!(search(a, "u1", &name), [name], "256 bytes: accepted");
    let long = "n".repeat(257);
    assert_eq!(call(a, &["SEARCH", DT, "u1", &long]), [3]);
    // The server goes on serving.
    assert_eq!(search(a, "u1", "nnn").len(), 1);
}

#[test]
fn a_restart_rebuilds_the_index_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    {
        let s = Server::start(&["--data-dir", data]);
        let a = s.addr;
        online(a, "u1", "7001");
        online(a, "u2", "7002");
        publish(a, "u1", "lecture-1.pdf");
        publish(a, "u2", "lecture-2.pdf");
        publish(a, "u2", "song.mp3");
        assert_eq!(code(a, &["DELETE", DT, "u2", "song.mp3"]), 0);
        assert_eq!(code(a, &["DISCONNECT", DT, "u1"]), 0);
        let mut proc = s.proc;
        proc.signal("TERM");
        assert!(proc.wait_exit(Duration::from_secs(10)).is_some());
    }
    let s = Server::start(&["--data-dir", data]);
    let a = s.addr;
    assert_eq!(search(a, "u2", "lecture"), ["lecture-2.pdf"]);
    assert_eq!(search(a, "u2", "mp3"), Vec::<String>::new());
    assert_eq!(code(a, &["CONNECT", DT, "u1", "7003"]), 0);
    let mut found = search(a, "u2", "lecture");
    found.sort();
    assert_eq!(found, ["lecture-1.pdf", "lecture-2.pdf"]);
}
