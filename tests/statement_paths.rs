//! Issue 25 item 1, the client side: with `client --statement 2025` the file field of
//! PUBLISH and DELETE, and GET_FILE's remote file, are absolute paths, as the
//! 2024-25 statement says (../shared/STATEMENTS.md). The peer listener serves a file
//! by the absolute path it published, and only by it. Real processes: a peerdex
//! server of the year, peerdex clients, and the partners statement_peer.py (a 2025
//! peer, asked by absolute path) and statement_get.py (a 2025 downloader), and a
//! whole 2025 lab of partners (index/statement_server.py and statement_client.py)
//! around one peerdex client. The default, 2024, is unchanged.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use support::partner::{StatementPeer, StudentServer, have_python, statement_get, student_client};
use support::*;

const MIB: usize = 1024 * 1024;

/// The file names `target` publishes, read as raw LIST_CONTENT fields by a user
/// `observer` (registered and connected on first use): names only from a 2025
/// server, name and description pairs from a 2024 one. Sorted.
fn listed(server: SocketAddr, target: &str) -> Vec<String> {
    let _ = call(server, &["REGISTER", "observer"]);
    let _ = call(server, &["CONNECT", "observer", "1"]);
    let mut f = list_fields(&call(server, &["LIST_CONTENT", "observer", target]));
    let count: usize = f.remove(0).parse().unwrap();
    assert!(f.len() == count || f.len() == 2 * count, "{f:?}");
    let mut names: Vec<String> = if f.len() == count {
        f
    } else {
        f.chunks(2).map(|c| c[0].clone()).collect()
    };
    names.sort();
    names
}

/// A canonical temporary folder (what the client's --share becomes).
fn folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    (dir, path)
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_2025_client_publishes_and_deletes_absolute_paths_that_a_2025_server_lists() {
    let s = Server::start(&["--statement", "2025"]);
    let (_share_dir, share) = folder();
    let (_outside_dir, outside) = folder();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir(share.join("sub")).unwrap();
    std::fs::write(share.join("data.bin"), b"data").unwrap();
    std::fs::write(share.join("sub/notes.txt"), b"notes").unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let mut alice = Client::with_state(s.addr, &share, state.path(), &["--statement", "2025"]);
    alice.register_connect("alice");
    // A relative name and an absolute path inside the share folder.
    assert_eq!(alice.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    let notes = share.join("sub/notes.txt");
    assert_eq!(
        alice.cmd(&format!("PUBLISH {} n", text(&notes))),
        "c> PUBLISH OK"
    );
    // Outside it: refused here, said why.
    let secret = outside.join("secret");
    assert_eq!(
        alice.cmd(&format!("PUBLISH {} s", text(&secret))),
        "c> PUBLISH FAIL"
    );
    assert!(
        alice.stderr_has("is not inside the share folder"),
        "{:?}",
        alice.stderr()
    );
    // Before the fix the server listed `data.bin`, as typed.
    let data = share.join("data.bin");
    let want = vec![text(&data).to_owned(), text(&notes).to_owned()];
    assert_eq!(listed(s.addr, "alice"), want);
    // The client shows them as they are listed (a 2025 server: names only).
    let (msg, mut files) = alice.cmd_list("LIST_CONTENT", 2);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    files.sort();
    let shown: Vec<String> = want.iter().map(|p| format!("\t{p}")).collect();
    assert_eq!(files, shown);
    // DELETE by the name as typed at PUBLISH, and by the absolute path.
    assert_eq!(alice.cmd("DELETE data.bin"), "c> DELETE OK");
    assert_eq!(listed(s.addr, "alice"), vec![text(&notes).to_owned()]);
    assert_eq!(
        alice.cmd(&format!("DELETE {}", text(&notes))),
        "c> DELETE OK"
    );
    assert_eq!(listed(s.addr, "alice"), Vec::<String>::new());
}

#[test]
fn a_2025_client_downloads_from_a_2025_statement_peer_by_absolute_path() {
    if !have_python("2025 peer by absolute path") {
        return;
    }
    let s = Server::start(&["--statement", "2025", "--probe-interval", "0"]);
    let (_peer_dir, peer_files) = folder();
    let data = peer_files.join("data.bin");
    write_random(&data, MIB + 3, 25);
    let peer = StatementPeer::start(&peer_files, "2025", &[]);
    // The partner registers as a 2025 student client does: the absolute path.
    assert_eq!(code(s.addr, &["REGISTER", "carol"]), 0);
    assert_eq!(
        code(s.addr, &["CONNECT", "carol", &peer.port.to_string()]),
        0
    );
    assert_eq!(code(s.addr, &["PUBLISH", "carol", text(&data), "x"]), 0);
    let (_share_dir, share) = folder();
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, &share, state.path(), &["--statement", "2025"]);
    bob.register_connect("bob");
    let (msg, files) = bob.cmd_list("LIST_CONTENT carol", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, [format!("\t{}", text(&data))]);
    // The local name is the remote path's base name.
    assert_eq!(
        bob.cmd(&format!("GET_FILE carol {}", text(&data))),
        "c> GET_FILE OK"
    );
    assert_eq!(file_hash(&share.join("data.bin")), file_hash(&data));
    assert_eq!(
        bob.cmd(&format!("FETCH {} fetched.bin", text(&data))),
        "c> FETCH OK"
    );
    assert_eq!(file_hash(&share.join("fetched.bin")), file_hash(&data));
    // What the peer was asked: the discovery (answered 1), then the absolute path
    // with the statement's GET_FILE; never GET_FILE_RANGE.
    let asked = peer.requests(3);
    let served = format!("request GET_FILE {} -> sent 2025", text(&data));
    assert_eq!(
        asked.iter().filter(|l| **l == served).count(),
        2,
        "{asked:?}"
    );
    assert!(
        !asked
            .iter()
            .any(|l| l.starts_with("request GET_FILE_RANGE ")),
        "{asked:?}"
    );
}

#[test]
fn a_2025_statement_downloader_gets_a_file_by_the_absolute_path_a_2025_client_published() {
    if !have_python("2025 downloader by absolute path") {
        return;
    }
    let s = Server::start(&["--statement", "2025"]);
    let (_share_dir, share) = folder();
    let state = tempfile::tempdir().unwrap();
    let data = share.join("data.bin");
    write_random(&data, MIB + 5, 26);
    let mut alice = Client::with_state(s.addr, &share, state.path(), &["--statement", "2025"]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "alice");
    let (_down_dir, down) = folder();
    // Before the fix: `code 1` (the file was published, and served, as data.bin).
    let out = down.join("by-path");
    let r = statement_get(port, text(&data), &out, &["--statement", "2025"]);
    assert!(r.status.success(), "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), format!("ok {}", MIB + 5));
    assert_eq!(file_hash(&out), file_hash(&data));
    // A base name, which a 2025 downloader never sends, is not a published name.
    let r = statement_get(
        port,
        "data.bin",
        &down.join("by-name"),
        &["--statement", "2025"],
    );
    assert_eq!(r.stdout.trim(), "code 1", "{}", r.stderr);
    // A peerdex client of the other year asks by the listed path just as well.
    let (_bob_dir, bob_share) = folder();
    let bob_state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, &bob_share, bob_state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(
        bob.cmd(&format!("GET_FILE alice {}", text(&data))),
        "c> GET_FILE OK"
    );
    assert_eq!(file_hash(&bob_share.join("data.bin")), file_hash(&data));
}

#[test]
fn a_2024_client_still_sends_names_as_typed() {
    if !have_python("2024 names") {
        return;
    }
    let s = Server::start(&[]);
    let (_share_dir, share) = folder();
    let (_outside_dir, outside) = folder();
    let state = tempfile::tempdir().unwrap();
    let data = share.join("data.bin");
    write_random(&data, 4096, 27);
    std::fs::write(outside.join("other"), b"other").unwrap();
    let mut alice = Client::with_state(s.addr, &share, state.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    // 2024: an absolute name is published as it is, wherever it is.
    let other = outside.join("other");
    assert_eq!(
        alice.cmd(&format!("PUBLISH {} o", text(&other))),
        "c> PUBLISH OK"
    );
    let mut want = vec!["data.bin".to_owned(), text(&other).to_owned()];
    want.sort();
    assert_eq!(listed(s.addr, "alice"), want);
    let port = peer_port(s.addr, "alice");
    let (_down_dir, down) = folder();
    let out = down.join("data.bin");
    let r = statement_get(port, "data.bin", &out, &[]);
    assert!(r.status.success(), "{} {}", r.stdout, r.stderr);
    assert_eq!(file_hash(&out), file_hash(&data));
    // The path it was not published under is not served.
    let r = statement_get(port, text(&data), &down.join("x"), &[]);
    assert_eq!(r.stdout.trim(), "code 1", "{}", r.stderr);
    assert_eq!(alice.cmd("DELETE data.bin"), "c> DELETE OK");
    assert_eq!(listed(s.addr, "alice"), vec![text(&other).to_owned()]);
}

#[test]
fn a_2025_peerdex_client_works_in_a_lab_of_2025_student_programs() {
    if !have_python("2025 lab of partners") {
        return;
    }
    // A student's 2025 server, a student's peer and a student's client.
    let server = StudentServer::start(&["--statement", "2025"]);
    let (_peer_dir, peer_files) = folder();
    let data = peer_files.join("data.bin");
    write_random(&data, MIB + 9, 28);
    let peer = StatementPeer::start(&peer_files, "2025", &[]);
    let student = |request: &[&str]| student_client(server.addr, &["--statement", "2025"], request);
    assert_eq!(student(&["REGISTER", "carol"]), ["code 0"]);
    let port = peer.port.to_string();
    assert_eq!(student(&["CONNECT", "carol", &port]), ["code 0"]);
    assert_eq!(student(&["PUBLISH", "carol", text(&data), "x"]), ["code 0"]);
    // The peerdex client of the year.
    let (_share_dir, share) = folder();
    let state = tempfile::tempdir().unwrap();
    let notes = share.join("notes.txt");
    std::fs::write(&notes, b"week 3\n").unwrap();
    let mut alice = Client::with_state(server.addr, &share, state.path(), &["--statement", "2025"]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt my notes"), "c> PUBLISH OK");
    // What reached the student server: the absolute path (before the fix: notes.txt).
    let published: Vec<Vec<String>> = server
        .requests()
        .into_iter()
        .filter(|r| r[0] == "PUBLISH" && r.get(2).is_some_and(|u| u == "alice"))
        .collect();
    assert_eq!(published.len(), 1, "{:?}", server.requests());
    assert_eq!(published[0][3], text(&notes), "{published:?}");
    // The student's client lists it as its year does; the student's downloader gets
    // it by that path from the peerdex peer.
    assert_eq!(
        student(&["LIST_CONTENT", "carol", "alice"]),
        ["code 0".to_owned(), text(&notes).to_owned()]
    );
    let users = student(&["LIST_USERS", "carol"]);
    let alice_port: u16 = users
        .iter()
        .find_map(|l| l.strip_prefix("alice\t127.0.0.1\t"))
        .unwrap_or_else(|| panic!("{users:?}"))
        .parse()
        .unwrap();
    let (_down_dir, down) = folder();
    let out = down.join("notes.txt");
    let r = statement_get(alice_port, text(&notes), &out, &["--statement", "2025"]);
    assert!(r.status.success(), "{} {}", r.stdout, r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"week 3\n");
    // And the peerdex client downloads from the student's peer by the listed path.
    let (msg, files) = alice.cmd_list("LIST_CONTENT carol", 1);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(files, [format!("\t{}", text(&data))]);
    assert_eq!(
        alice.cmd(&format!("GET_FILE carol {}", text(&data))),
        "c> GET_FILE OK"
    );
    assert_eq!(file_hash(&share.join("data.bin")), file_hash(&data));
    assert_eq!(alice.cmd("DELETE notes.txt"), "c> DELETE OK");
    assert_eq!(student(&["LIST_CONTENT", "carol", "alice"]), ["code 0"]);
}
