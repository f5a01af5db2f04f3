//! Issue 13, peer protocol interop (PROTOCOL.md section 2) with programs peerdex did
//! not write: the statement's downloader (tests/partners/statement_get.py) against a
//! peerdex peer, and a peerdex client against statement peers of every dialect
//! (tests/partners/statement_peer.py: statement, slides, one). Also GET_FILE_RANGE in
//! raw bytes, and a cut GET_FILE_RANGE transfer resumed (or started over when the
//! file changed meanwhile).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;

const MIB: usize = 1024 * 1024;

fn partner(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/partners")
        .join(name)
}

/// Whether python3 runs; the test is skipped (or fails in CI) otherwise.
fn have_python(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = if ok { vec![] } else { vec!["python3".into()] };
    require_tools(test, &missing)
}

/// A running statement_peer.py, killed on drop; its stderr request lines collected.
struct StatementPeer {
    child: Child,
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl StatementPeer {
    fn start(dir: &Path, dialect: &str, extra: &[&str]) -> StatementPeer {
        let mut child = Command::new("python3")
            .arg(partner("statement_peer.py"))
            .args(["--port", "0", "--host", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(["--dialect", dialect])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start statement_peer.py");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("statement_peer.py did not say `listening`");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("statement_peer.py said {line:?}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        StatementPeer {
            child,
            port,
            requests,
        }
    }

    /// Its stderr so far (`request <op> <name> -> <what>` per connection), waiting
    /// up to 5 s for at least `n` requests.
    fn log(&self, n: usize) -> String {
        let text = || self.requests.lock().unwrap().concat();
        wait_until(Duration::from_secs(5), || {
            text().matches("request ").count() >= n
        });
        text()
    }
}

impl Drop for StatementPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers `user` on the index server as connected at `port` of 127.0.0.1 (raw
/// index protocol, as a statement client would) and publishes `files`.
fn register_fake(server: SocketAddr, user: &str, port: u16, files: &[&str]) {
    assert_eq!(code(server, &["REGISTER", user]), 0);
    assert_eq!(code(server, &["CONNECT", user, &port.to_string()]), 0);
    for f in files {
        assert_eq!(code(server, &["PUBLISH", user, f, "partner file"]), 0);
    }
}

#[test]
fn the_statement_downloader_gets_identical_bytes_from_a_peerdex_peer() {
    if !have_python("statement_get interop") {
        return;
    }
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("data.bin"), MIB + 7, 11);
    std::fs::write(share.path().join("empty"), b"").unwrap();
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    assert_eq!(alice.cmd("PUBLISH empty d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "alice").to_string();
    let get = |name: &str, out: &Path| {
        run_to_exit(
            Command::new("python3")
                .arg(partner("statement_get.py"))
                .args(["127.0.0.1", &port, name])
                .arg(out),
            Duration::from_secs(30),
            "statement_get.py",
        )
        .unwrap()
    };
    // Before the fix the peerdex peer sent `1048583\0` first and this file started
    // with it.
    let out = down.path().join("data.bin");
    let r = get("data.bin", &out);
    assert!(r.status.success(), "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stdout.trim(), format!("ok {}", MIB + 7));
    assert_eq!(file_hash(&out), file_hash(&share.path().join("data.bin")));
    let out = down.path().join("empty");
    let r = get("empty", &out);
    assert!(r.status.success(), "{} {}", r.stdout, r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"");
    let r = get("missing", &down.path().join("missing"));
    assert_eq!(r.stdout.trim(), "code 1");
    assert!(!down.path().join("missing").exists());
}

/// Runs statement_get.py with `args` (HOST PORT NAME OUT ...) to its exit.
fn statement_get(args: &[&str], out: &Path) -> Finished {
    run_to_exit(
        Command::new("python3")
            .arg(partner("statement_get.py"))
            .args(&args[..3])
            .arg(out)
            .args(&args[3..]),
        Duration::from_secs(30),
        "statement_get.py",
    )
    .unwrap()
}

#[test]
fn a_2025_statement_downloader_gets_the_size_string_and_identical_bytes() {
    if !have_python("statement_get interop") {
        return;
    }
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("data.bin"), MIB + 7, 12);
    std::fs::write(share.path().join("empty"), b"").unwrap();
    // The 2024-25 statement's reply: the bytes of --get-file-size-header
    // (src/client/peer/listener.rs tests both).
    let mut alice =
        Client::with_state(s.addr, share.path(), state.path(), &["--statement", "2025"]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    assert_eq!(alice.cmd("PUBLISH empty d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "alice").to_string();
    for f in ["data.bin", "empty"] {
        let out = down.path().join(f);
        let r = statement_get(&["127.0.0.1", &port, f, "--statement", "2025"], &out);
        assert!(r.status.success(), "{f}: {} {}", r.stdout, r.stderr);
        assert_eq!(file_hash(&out), file_hash(&share.path().join(f)), "{f}");
    }
    // A 2024 peer sends no size: the 2025 downloader says so and keeps nothing.
    let share24 = tempfile::tempdir().unwrap();
    let state24 = tempfile::tempdir().unwrap();
    write_random(&share24.path().join("data.bin"), MIB, 13);
    let mut dave = Client::with_state(s.addr, share24.path(), state24.path(), &[]);
    dave.register_connect("dave");
    assert_eq!(dave.cmd("PUBLISH data.bin d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "dave").to_string();
    let out = down.path().join("from-2024");
    let r = statement_get(
        &["127.0.0.1", &port, "data.bin", "--statement", "2025"],
        &out,
    );
    assert_eq!(r.status.code(), Some(2), "{} {}", r.stdout, r.stderr);
    assert!(!out.exists());
}

#[test]
fn peerdex_downloads_from_statement_slides_and_one_peers() {
    if !have_python("statement_peer interop") {
        return;
    }
    let s = Server::start(&[]);
    let files = tempfile::tempdir().unwrap();
    write_random(&files.path().join("data.bin"), 3 * MIB + 5, 21);
    // Content that itself starts like a size: 5 announced, 3 follow. It is not a
    // size, so it must arrive as it is (and through the slides' size, intact too).
    std::fs::write(files.path().join("lead.bin"), b"5\0abc").unwrap();
    std::fs::write(files.path().join("empty"), b"").unwrap();
    let dialects: [(&str, &str, &[&str]); 4] = [
        ("statement", "stmt", &[]),
        ("statement", "stmt2", &["--unknown", "two"]),
        ("slides", "slides", &[]),
        ("one", "one", &[]),
    ];
    let peers: Vec<StatementPeer> = dialects
        .iter()
        .map(|(dialect, user, extra)| {
            let p = StatementPeer::start(files.path(), dialect, extra);
            register_fake(s.addr, user, p.port, &["data.bin", "lead.bin", "empty"]);
            p
        })
        .collect();
    let down = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, down.path(), state.path(), &[]);
    bob.register_connect("bob");
    for ((dialect, user, _), peer) in dialects.iter().zip(&peers) {
        for f in ["data.bin", "lead.bin", "empty"] {
            let local = format!("{user}-{f}");
            let got = bob.cmd(&format!("GET_FILE {user} {f} {local}"));
            if *dialect == "one" && f == "empty" {
                // 1 and the close: the one dialect's empty file cannot be told from
                // a missing one (PROTOCOL.md section 2, rule 2).
                assert_eq!(got, "c> GET_FILE FAIL / FILE NOT EXIST");
                continue;
            }
            assert_eq!(got, "c> GET_FILE OK", "{dialect} {f}: {:?}", bob.stderr());
            assert_eq!(
                file_hash(&down.path().join(&local)),
                file_hash(&files.path().join(f)),
                "{dialect} {f}"
            );
        }
        assert_eq!(
            bob.cmd(&format!("GET_FILE {user} missing {user}-missing")),
            "c> GET_FILE FAIL / FILE NOT EXIST",
            "{dialect}"
        );
        // Never an operation a statement peer may not know: one discovery (a
        // GET_FILE of a name no file has, answered 1), then one GET_FILE per
        // download. Its threads print without a lock, so lines may even merge:
        // count in the whole text.
        let log = peer.log(5);
        let probes = log.matches("request GET_FILE /proc/0/peerdex/").count();
        let ranges = log.matches("request GET_FILE_RANGE ").count();
        let plain = log.matches("request GET_FILE ").count();
        assert_eq!((probes, ranges, plain), (1, 0, 5), "{dialect}: {log:?}");
        assert!(
            log.contains("GET_FILE_RANGE -> no such file, sent 1"),
            "{log:?}"
        );
    }
    // Every download complete, nothing else left behind.
    let names = dir_names(down.path());
    assert_eq!(names.len(), 11, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn a_statement_peer_dying_mid_transfer_leaves_no_file() {
    if !have_python("statement_peer interop") {
        return;
    }
    let s = Server::start(&[]);
    let files = tempfile::tempdir().unwrap();
    write_random(&files.path().join("data.bin"), 2 * MIB, 5);
    let peer = StatementPeer::start(files.path(), "statement", &["--die-after", "300000"]);
    register_fake(s.addr, "dies", peer.port, &["data.bin"]);
    let down = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, down.path(), state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE dies data.bin got"), "c> GET_FILE FAIL");
    assert!(bob.stderr_has("reset"), "{:?}", bob.stderr());
    // A plain GET_FILE cannot be resumed: nothing at all is kept.
    assert_eq!(dir_names(down.path()), Vec::<String>::new());
}

#[test]
fn a_statement_peer_that_dies_on_an_unknown_request_serves_every_download() {
    if !have_python("statement_peer interop") {
        return;
    }
    let s = Server::start(&[]);
    let files = tempfile::tempdir().unwrap();
    write_random(&files.path().join("data.bin"), MIB + 3, 8);
    std::fs::write(files.path().join("small.txt"), b"small").unwrap();
    let mut peer = StatementPeer::start(files.path(), "statement", &["--unknown", "die"]);
    register_fake(s.addr, "fragile", peer.port, &["data.bin", "small.txt"]);
    let down = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, down.path(), state.path(), &[]);
    bob.register_connect("bob");
    // A fresh download, a second one, and the first file again (its discovery is
    // remembered); then a new session, which asks again.
    for (remote, local) in [("data.bin", "a"), ("small.txt", "b"), ("data.bin", "c")] {
        assert_eq!(
            bob.cmd(&format!("GET_FILE fragile {remote} {local}")),
            "c> GET_FILE OK",
            "{:?}",
            bob.stderr()
        );
        assert_eq!(
            file_hash(&down.path().join(local)),
            file_hash(&files.path().join(remote))
        );
    }
    let mut carol = Client::with_state(s.addr, down.path(), state.path(), &[]);
    carol.register_connect("carol");
    assert_eq!(carol.cmd("GET_FILE fragile data.bin d"), "c> GET_FILE OK");
    assert_eq!(
        carol.cmd("FETCH small.txt e"),
        "c> FETCH OK",
        "{:?}",
        carol.stderr()
    );
    let log = peer.log(7);
    assert!(!log.contains("dying"), "{log:?}");
    assert_eq!(
        log.matches("request GET_FILE /proc/0/peerdex/").count(),
        2,
        "{log:?}"
    );
    assert_eq!(log.matches("-> sent statement").count(), 5, "{log:?}");
    assert!(
        peer.child.try_wait().unwrap().is_none(),
        "the statement peer exited: {log:?}"
    );
}

#[test]
fn the_dying_partner_really_dies_on_an_unknown_request() {
    // The partner's --unknown die is what the test above relies on: one
    // GET_FILE_RANGE takes it off the network.
    if !have_python("statement_peer interop") {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("f"), b"f").unwrap();
    let mut peer = StatementPeer::start(files.path(), "statement", &["--unknown", "die"]);
    assert_eq!(raw(peer.port, b"GET_FILE_RANGE\0f\x000\0"), b"\x02");
    assert!(wait_until(Duration::from_secs(5), || peer
        .child
        .try_wait()
        .unwrap()
        .is_some()));
}

/// Sends raw bytes to 127.0.0.1:`port` and returns the whole answer.
fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    exchange(SocketAddr::from(([127, 0, 0, 1], port)), bytes)
}

/// Splits a GET_FILE_RANGE reply into (code, SIZE, VERSION, content).
fn split_range(reply: &[u8]) -> (u8, u64, String, Vec<u8>) {
    let code = reply[0];
    let rest = &reply[1..];
    let a = rest.iter().position(|&b| b == 0).expect("SIZE");
    let b = a + 1 + rest[a + 1..].iter().position(|&b| b == 0).expect("VERSION");
    (
        code,
        std::str::from_utf8(&rest[..a]).unwrap().parse().unwrap(),
        String::from_utf8(rest[a + 1..b].to_vec()).unwrap(),
        rest[b + 1..].to_vec(),
    )
}

#[test]
fn get_file_range_in_raw_bytes() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(share.path().join("f.bin"), &content).unwrap();
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH f.bin d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "alice");
    let range = |offset: &str| raw(port, &fields(&["GET_FILE_RANGE", "f.bin", offset]));
    // The discovery, a GET_FILE of a name no file has: a peerdex peer answers 0 and
    // its marker (docs/PROTOCOL.md, "Discovery").
    assert_eq!(
        raw(port, b"GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0"),
        b"\0peerdex GET_FILE_RANGE GET_FILE_HASHES GET_FILE_BLOCK\0"
    );

    let (code, size, version, body) = split_range(&range("0"));
    assert_eq!((code, size), (0, 1000));
    assert!(!version.is_empty());
    assert_eq!(body, content);
    let (code, size, v, body) = split_range(&range("400"));
    assert_eq!((code, size, &v), (0, 1000, &version));
    assert_eq!(body, &content[400..]);
    let (code, size, v, body) = split_range(&range("1000"));
    assert_eq!((code, size, &v), (0, 1000, &version));
    assert!(body.is_empty());
    // Past the end, not decimal: code 2 and nothing else.
    for bad in ["1001", "99999999999999999999", "-1", "abc", "", " 1", "1 "] {
        assert_eq!(range(bad), [2], "{bad:?}");
    }
    // Not published: 1. Truncated before the offset: 2.
    assert_eq!(
        raw(port, &fields(&["GET_FILE_RANGE", "nope.bin", "0"])),
        [1]
    );
    let mut cut = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    cut.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    cut.write_all(b"GET_FILE_RANGE\0f.bin\0").unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = cut.read_to_end(&mut reply);
    assert_eq!(reply, [2]);
    // Plain GET_FILE: the content alone, no size.
    let mut plain = vec![0u8];
    plain.extend_from_slice(&content);
    assert_eq!(raw(port, &fields(&["GET_FILE", "f.bin"])), plain);

    // A new content of the same size is a new VERSION. Its modification time is set
    // a second later than the old one's (the clock need not have moved meanwhile).
    let path = share.path().join("f.bin");
    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, vec![b'x'; 1000]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old_mtime + Duration::from_secs(1))
        .unwrap();
    let (_, size, v2, body) = split_range(&range("998"));
    assert_eq!(size, 1000);
    assert_ne!(v2, version);
    assert_eq!(body, b"xx");

    // --get-file-size-header: plain GET_FILE carries the slides' size, GET_FILE_RANGE
    // is unchanged.
    let share2 = tempfile::tempdir().unwrap();
    let state2 = tempfile::tempdir().unwrap();
    std::fs::write(share2.path().join("g"), b"hello").unwrap();
    let mut carol = Client::with_state(
        s.addr,
        share2.path(),
        state2.path(),
        &["--get-file-size-header"],
    );
    carol.register_connect("carol");
    assert_eq!(carol.cmd("PUBLISH g d"), "c> PUBLISH OK");
    let port = peer_port(s.addr, "carol");
    assert_eq!(raw(port, &fields(&["GET_FILE", "g"])), b"\x005\0hello");
    let (code, size, _, body) = split_range(&raw(port, &fields(&["GET_FILE_RANGE", "g", "1"])));
    assert_eq!((code, size, body.as_slice()), (0, 5, &b"ello"[..]));
    // And a peerdex client strips that size again.
    let down = tempfile::tempdir().unwrap();
    let state3 = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, down.path(), state3.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE carol g g"), "c> GET_FILE OK");
    assert_eq!(std::fs::read(down.path().join("g")).unwrap(), b"hello");
}

/// Starts a rate-limited alice serving `slow.bin` from `share`, lets bob download a
/// part of it into `got.bin`, kills alice, and checks the part is kept. Returns the
/// kept length.
fn cut_transfer(
    server: SocketAddr,
    share: &Path,
    state: &Path,
    bob: &mut Client,
    down: &Path,
) -> u64 {
    let mut alice = Client::with_state(server, share, state, &["--max-upload-rate", "2097152"]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH slow.bin slow"), "c> PUBLISH OK");
    bob.send("GET_FILE alice slow.bin got.bin");
    let partial = down.join(".got.bin.peerdex-partial");
    wait_bytes(&partial, 512 * 1024);
    alice.proc.signal("KILL");
    assert_eq!(bob.next_message(), "c> GET_FILE FAIL");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < 8 * MIB as u64, "{kept}");
    assert!(!down.join("got.bin").exists());
    kept
}

/// Starts alice again on the same share and record (the server still lists the
/// killed one: DISCONNECT first, from the same host).
fn restart_alice(server: SocketAddr, share: &Path, state: &Path) -> Client {
    let mut alice = Client::with_state(server, share, state, &[]);
    assert_eq!(alice.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    alice
}

#[test]
fn a_cut_transfer_resumes_to_the_same_bytes() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let bstate = tempfile::tempdir().unwrap();
    write_random(&share.path().join("slow.bin"), 8 * MIB, 77);
    let mut bob = Client::with_state(s.addr, down.path(), bstate.path(), &[]);
    bob.register_connect("bob");
    let kept = cut_transfer(s.addr, share.path(), state.path(), &mut bob, down.path());

    let _alice = restart_alice(s.addr, share.path(), state.path());
    assert_eq!(bob.cmd("GET_FILE alice slow.bin got.bin"), "c> GET_FILE OK");
    assert!(
        bob.stderr_has("resuming at ") && bob.stderr_has(" of 8.0 MiB"),
        "{:?}",
        bob.stderr()
    );
    let line = bob
        .stderr()
        .into_iter()
        .find(|l| l.contains("resuming at"))
        .unwrap();
    eprintln!("kept {kept} bytes; bob said: {line}");
    // One line after the download: size, time, rate.
    assert!(
        bob.stderr_has("peerdex: GET_FILE slow.bin: 8.0 MiB in "),
        "{:?}",
        bob.stderr()
    );
    eprintln!("{:?}", bob.stderr().last());
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("slow.bin"))
    );
    assert_eq!(dir_names(down.path()), ["got.bin"]);
}

#[test]
fn a_file_changed_between_cut_and_resume_starts_over() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let bstate = tempfile::tempdir().unwrap();
    write_random(&share.path().join("slow.bin"), 8 * MIB, 78);
    let mut bob = Client::with_state(s.addr, down.path(), bstate.path(), &[]);
    bob.register_connect("bob");
    cut_transfer(s.addr, share.path(), state.path(), &mut bob, down.path());

    // Same name, same size, other bytes, written in place.
    write_random(&share.path().join("slow.bin"), 8 * MIB, 79);
    let _alice = restart_alice(s.addr, share.path(), state.path());
    assert_eq!(bob.cmd("GET_FILE alice slow.bin got.bin"), "c> GET_FILE OK");
    assert!(
        !bob.stderr().iter().any(|l| l.contains("resuming at")),
        "{:?}",
        bob.stderr()
    );
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("slow.bin"))
    );
    assert_eq!(dir_names(down.path()), ["got.bin"]);
}
