//! The peer protocol between real client processes: downloads of every size, many at
//! once, peers that die or stall, and a listener that serves nothing it should not,
//! checked in raw bytes.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const MIB: usize = 1024 * 1024;

/// Sends raw bytes to a peer listener and returns everything it answers.
fn raw_get(port: u16, bytes: &[u8]) -> Vec<u8> {
    exchange(SocketAddr::from(([127, 0, 0, 1], port)), bytes)
}

fn get_file_request(name: &str) -> Vec<u8> {
    fields(&["GET_FILE", name])
}

/// No `.part` or other temporary file left in `dir` beside the expected names.
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(dir_names(dir), expected);
}

#[test]
fn downloads_of_0_1_and_64_mib_bytes_arrive_intact() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("empty"), b"").unwrap();
    std::fs::write(share.path().join("one"), b"\x07").unwrap();
    write_random(&share.path().join("big.bin"), 64 * MIB, 42);
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    for f in ["empty", "one", "big.bin"] {
        assert_eq!(
            alice.cmd(&format!("PUBLISH {f} test data")),
            "c> PUBLISH OK"
        );
    }
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE alice empty e"), "c> GET_FILE OK");
    assert_eq!(bob.cmd("GET_FILE alice one o"), "c> GET_FILE OK");
    assert_eq!(bob.cmd("GET_FILE alice big.bin b"), "c> GET_FILE OK");
    // An absolute local name is used as it is.
    let abs = down.path().join("abs.bin");
    assert_eq!(
        bob.cmd(&format!("GET_FILE alice one {}", abs.display())),
        "c> GET_FILE OK"
    );
    assert_eq!(std::fs::read(down.path().join("e")).unwrap(), b"");
    assert_eq!(std::fs::read(down.path().join("o")).unwrap(), b"\x07");
    assert_eq!(std::fs::read(&abs).unwrap(), b"\x07");
    assert_eq!(
        file_hash(&down.path().join("b")),
        file_hash(&share.path().join("big.bin"))
    );
    assert_only(down.path(), &["abs.bin", "b", "e", "o"]);

    // Not published, or deleted since: FILE NOT EXIST, and no local file.
    assert_eq!(
        bob.cmd("GET_FILE alice nothing n"),
        "c> GET_FILE FAIL / FILE NOT EXIST"
    );
    assert_eq!(alice.cmd("DELETE one"), "c> DELETE OK");
    assert_eq!(
        bob.cmd("GET_FILE alice one o2"),
        "c> GET_FILE FAIL / FILE NOT EXIST"
    );
    // A user who is not connected.
    assert_eq!(bob.cmd("GET_FILE carol one o3"), "c> GET_FILE FAIL");
    // A local folder that does not exist.
    assert_eq!(
        bob.cmd("GET_FILE alice empty no/such/dir"),
        "c> GET_FILE FAIL"
    );
    assert_only(down.path(), &["abs.bin", "b", "e", "o"]);
}

#[test]
fn eight_clients_download_the_same_64_mib_file_at_once() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 64 * MIB, 7);
    let want = file_hash(&share.path().join("big.bin"));
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH big.bin shared by all"), "c> PUBLISH OK");
    let peak_before = alice.proc.peak_rss_kib();

    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut clients: Vec<Client> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut c = Client::start(s.addr, d.path());
            c.register_connect(&format!("d{i}"));
            c
        })
        .collect();
    for c in &mut clients {
        c.send("GET_FILE alice big.bin copy.bin");
    }
    for c in &mut clients {
        assert_eq!(c.next_message(), "c> GET_FILE OK");
    }
    for d in &dirs {
        assert_eq!(file_hash(&d.path().join("copy.bin")), want);
        assert_only(d.path(), &["copy.bin"]);
    }
    // Streaming from the file: serving 8 x 64 MiB does not load the file in memory.
    let peak = alice.proc.peak_rss_kib();
    assert!(
        peak < peak_before + 32 * 1024,
        "serving peer grew from {peak_before} KiB to {peak} KiB"
    );
}

/// The hidden files a failed GET_FILE_RANGE transfer into `name` keeps.
fn kept(name: &str) -> [String; 2] {
    [
        format!(".{name}.peerdex-partial"),
        format!(".{name}.peerdex-partial.info"),
    ]
}

/// Waits until `dir` holds a partial file with some content; returns its name.
fn wait_partial(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for name in dir_names(dir) {
            if name.ends_with(".peerdex-partial")
                && std::fs::metadata(dir.join(&name))
                    .map(|m| m.len())
                    .unwrap_or(0)
                    > 0
            {
                return name;
            }
        }
        assert!(Instant::now() < deadline, "no transfer started in {dir:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_peer_killed_mid_transfer_leaves_only_the_hidden_partial() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("slow.bin"), 16 * MIB, 3);
    // 1 MiB/s: the transfer takes 16 s, so the kill lands in the middle of it.
    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &[
            "--time-url",
            NO_TIME_SERVICE,
            "--max-upload-rate",
            "1048576",
        ],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH slow.bin slow"), "c> PUBLISH OK");
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    bob.send("GET_FILE alice slow.bin got.bin");
    let partial = wait_partial(down.path());
    assert_eq!(partial, ".got.bin.peerdex-partial");
    alice.proc.signal("KILL");
    assert_eq!(bob.next_message(), "c> GET_FILE FAIL");
    // Nothing under the requested name; the received part stays hidden beside it.
    let k = kept("got.bin");
    assert_only(down.path(), &[&k[0], &k[1]]);
    assert!(bob.stderr_has("short"), "{:?}", bob.stderr());
}

/// The discovery request a peerdex downloader sends first (docs/PROTOCOL.md,
/// "Discovery"), and the answer of a peerdex peer from before the hash trees (it
/// speaks GET_FILE_RANGE alone).
const PROBE: &[u8] = b"GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0";
const PROBE_ANSWER: &[u8] = b"\0peerdex GET_FILE_RANGE\0";

/// A fake peer registered as `user` on the server. It answers up to three
/// connections: the discovery as a peerdex peer when `range` is given (else as a
/// statement peer, 1 for a missing file), a GET_FILE_RANGE request with `range` (or
/// a close without a byte when `None`, as a statement peer does), a GET_FILE with
/// `plain`; then it closes or stays silent for `linger`.
fn fake_peer(
    server: SocketAddr,
    user: &str,
    range: Option<&'static [u8]>,
    plain: &'static [u8],
    linger: Duration,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    assert_eq!(code(server, &["REGISTER", user]), 0);
    assert_eq!(code(server, &["CONNECT", user, &port]), 0);
    thread::spawn(move || {
        for _ in 0..3 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(PROBE) {
                let _ = s.write_all(if range.is_some() {
                    PROBE_ANSWER
                } else {
                    b"\x01"
                });
                continue;
            }
            let reply = if buf[..n].starts_with(b"GET_FILE_RANGE\0") {
                range
            } else {
                Some(plain)
            };
            if let Some(reply) = reply {
                let _ = s.write_all(reply);
                // The fake peer's behaviour (it stays silent this long before it
                // closes), not a wait for anything.
                thread::sleep(linger);
            }
        }
    });
}

#[test]
fn a_short_transfer_fails_and_leaves_no_file() {
    let s = Server::start(&[]);
    let down = tempfile::tempdir().unwrap();
    // Announces 1000 bytes with GET_FILE_RANGE and sends 10.
    let liar = b"\x001000\0v1\0only ten b";
    fake_peer(s.addr, "liar", Some(liar), b"\x01", Duration::ZERO);
    // No GET_FILE_RANGE; GET_FILE answered with an unknown code.
    fake_peer(s.addr, "odd", None, b"\x07", Duration::ZERO);
    // A malformed GET_FILE_RANGE header, then a GET_FILE closed before its code.
    fake_peer(s.addr, "garbled", Some(b"\x00ten\0"), b"", Duration::ZERO);
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE liar f got"), "c> GET_FILE FAIL");
    assert!(bob.stderr_has("short"), "{:?}", bob.stderr());
    let k = kept("got");
    assert_only(down.path(), &[&k[0], &k[1]]);
    assert_eq!(
        std::fs::read(down.path().join(&k[0])).unwrap(),
        b"only ten b"
    );
    assert_eq!(bob.cmd("GET_FILE odd f got2"), "c> GET_FILE FAIL");
    assert_eq!(bob.cmd("GET_FILE garbled f got3"), "c> GET_FILE FAIL");
    assert_only(down.path(), &[&k[0], &k[1]]);
}

#[test]
fn a_silent_peer_times_out_and_leaves_no_file() {
    let s = Server::start(&[]);
    let down = tempfile::tempdir().unwrap();
    // Announces 1000 bytes, sends 10, then says nothing for longer than the
    // downloader's 10 s idle timeout.
    fake_peer(
        s.addr,
        "mute",
        Some(b"\x001000\0v1\0ten bytes."),
        b"\x01",
        Duration::from_secs(20),
    );
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE mute f got"), "c> GET_FILE FAIL");
    let k = kept("got");
    assert_only(down.path(), &[&k[0], &k[1]]);
    assert!(bob.stderr_has("timeout"), "{:?}", bob.stderr());
}

#[test]
fn the_listener_serves_only_what_was_published() {
    let s = Server::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let share = root.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(root.path().join("secret.txt"), b"top secret").unwrap();
    std::fs::write(share.join("public.txt"), b"hello").unwrap();
    std::fs::write(share.join("swap.txt"), b"innocent").unwrap();
    std::fs::write(share.join("unpublished.txt"), b"private").unwrap();
    std::fs::create_dir(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/inner.txt"), b"inner").unwrap();
    let mut alice = Client::start(s.addr, &share);
    alice.register_connect("alice");
    for f in ["public.txt", "swap.txt", "sub/inner.txt"] {
        assert_eq!(alice.cmd(&format!("PUBLISH {f} d")), "c> PUBLISH OK");
    }
    let abs = share.join("public.txt").display().to_string();
    let port = peer_port(s.addr, "alice");

    // A published name: code 0, content, close (the statement's GET_FILE: no size).
    assert_eq!(raw_get(port, &get_file_request("public.txt")), b"\x00hello");
    assert_eq!(
        raw_get(port, &get_file_request("sub/inner.txt")),
        b"\x00inner"
    );
    // Unpublished, traversal, an unpublished absolute path (even the absolute path
    // of a published file: only the published name is served).
    for name in [
        "unpublished.txt",
        "../secret.txt",
        "../../etc/passwd",
        "sub/../public.txt",
        "/etc/passwd",
        abs.as_str(),
        "sub",
        "",
    ] {
        assert_eq!(raw_get(port, &get_file_request(name)), [1], "{name:?}");
    }
    // A symlink swapped in after publishing, at the file or at a folder on its path.
    std::fs::remove_file(share.join("swap.txt")).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), share.join("swap.txt")).unwrap();
    assert_eq!(raw_get(port, &get_file_request("swap.txt")), [1]);
    std::fs::rename(share.join("sub"), root.path().join("sub.old")).unwrap();
    std::fs::create_dir(root.path().join("evil")).unwrap();
    std::os::unix::fs::symlink(
        root.path().join("secret.txt"),
        root.path().join("evil/inner.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.path().join("evil"), share.join("sub")).unwrap();
    assert_eq!(raw_get(port, &get_file_request("sub/inner.txt")), [1]);

    // Malformed requests: code 2 (any other error), nothing else.
    assert_eq!(raw_get(port, &fields(&["PUT_FILE", "public.txt"])), [2]);
    let long = "a".repeat(300);
    assert_eq!(raw_get(port, &get_file_request(&long)), [2]);
    // A connection closed without a request (a liveness probe) costs nothing, and
    // the listener goes on serving.
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert_eq!(raw_get(port, &get_file_request("public.txt")), b"\x00hello");
}

#[test]
fn a_connection_that_sends_no_request_is_closed_after_the_timeout() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    let port = peer_port(s.addr, "alice");
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Half a request, then silence: the listener gives up after its 10 s request
    // timeout (answering "any other error"), long before this read's own limit.
    silent.write_all(b"GET_FI").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let mut reply = Vec::new();
    silent.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, [2]);
    // Meanwhile and afterwards the listener serves others.
    assert_eq!(raw_get(port, &get_file_request("nothing")), [1]);
}

#[test]
fn a_restarted_client_serves_what_it_published_before() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("kept.txt"), b"kept").unwrap();
    let mut alice = Client::start(s.addr, share.path());
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH kept.txt d"), "c> PUBLISH OK");
    let old_port = peer_port(s.addr, "alice");
    assert_eq!(alice.cmd("QUIT"), "c> DISCONNECT OK");
    alice.wait_exit();
    // The listener is gone with the disconnect.
    assert!(TcpStream::connect(("127.0.0.1", old_port)).is_err());

    let mut alice = Client::start(s.addr, share.path());
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE alice kept.txt k"), "c> GET_FILE OK");
    assert_eq!(std::fs::read(down.path().join("k")).unwrap(), b"kept");

    // DISCONNECT closes the listener at once.
    let port = peer_port(s.addr, "alice");
    assert_eq!(alice.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

// GET_FILE throughput against sendfile, 8 downloads at once and peak RSS are
// measured by `make bench` (`cargo bench --bench bench -- --sections downloads`, benches/bench/downloads.rs).

/// Issue 14.1: anyone may CONNECT as an offline registered user and PUBLISH in that
/// name (and a malicious index server may list anything). The victim's client must
/// not serve those names at its next CONNECT: it serves only what its own record says
/// its user published from it.
#[test]
fn names_published_by_someone_else_in_my_name_are_reported_not_served() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("mine.txt"), b"mine").unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"top secret").unwrap();
    // ../<dir>/secret from the share folder reaches the file outside it.
    let relative_secret = format!(
        "../{}/secret",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    let state = tempfile::tempdir().unwrap();
    let state_arg = state.path().to_str().unwrap();
    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &["--time-url", NO_TIME_SERVICE, "--state-dir", state_arg],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH mine.txt d"), "c> PUBLISH OK");
    assert_eq!(alice.cmd("QUIT"), "c> DISCONNECT OK");
    alice.wait_exit();

    // The attacker, on the raw protocol, acts in alice's name while she is offline.
    let secret_abs = secret.to_str().unwrap();
    assert_eq!(code(s.addr, &["CONNECT", "alice", "1"]), 0);
    assert_eq!(code(s.addr, &["PUBLISH", "alice", secret_abs, "x"]), 0);
    assert_eq!(
        code(s.addr, &["PUBLISH", "alice", &relative_secret, "x"]),
        0
    );
    assert_eq!(code(s.addr, &["DISCONNECT", "alice"]), 0);

    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &["--time-url", NO_TIME_SERVICE, "--state-dir", state_arg],
    );
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    let port = peer_port(s.addr, "alice");
    assert_eq!(raw_get(port, &get_file_request(secret_abs)), [1]);
    assert_eq!(raw_get(port, &get_file_request(&relative_secret)), [1]);
    assert!(alice.stderr_has(&format!("{secret_abs} for alice, but it was not published")));
    assert!(alice.stderr_has(&format!(
        "{relative_secret} for alice, but it was not published"
    )));
    // What alice did publish from this client is still served.
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE alice mine.txt m"), "c> GET_FILE OK");
    assert_eq!(std::fs::read(down.path().join("m")).unwrap(), b"mine");
}

#[test]
fn a_file_rewritten_in_place_mid_transfer_is_never_reported_ok() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let src = share.path().join("big.bin");
    write_random(&src, 8 * MIB, 31);
    // 1 MiB/s: the rewrite lands in the middle of the transfer.
    let mut alice = Client::start_with(
        s.addr,
        share.path(),
        &[
            "--time-url",
            NO_TIME_SERVICE,
            "--max-upload-rate",
            "1048576",
        ],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH big.bin big"), "c> PUBLISH OK");
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    bob.send("GET_FILE alice big.bin got.bin");
    wait_partial(down.path());
    // Before the fix: GET_FILE OK with old and new blocks mixed.
    rewrite_in_place(&src, 32);
    assert_eq!(bob.next_message(), "c> GET_FILE FAIL", "{:?}", bob.stderr());
    assert!(!down.path().join("got.bin").exists());
    // Asked again, the kept prefix is of another VERSION: it starts over and gets
    // the new content whole.
    assert_eq!(bob.cmd("GET_FILE alice big.bin got.bin"), "c> GET_FILE OK");
    assert_eq!(file_hash(&down.path().join("got.bin")), file_hash(&src));
    assert_only(down.path(), &["got.bin"]);
}

#[test]
fn a_dripping_peer_fails_the_download_at_the_minimum_rate() {
    let s = Server::start(&[]);
    let down = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    assert_eq!(code(s.addr, &["REGISTER", "drip"]), 0);
    assert_eq!(code(s.addr, &["CONNECT", "drip", &port]), 0);
    // A peerdex peer's discovery answer and a valid header, then a byte every
    // 100 ms: it never falls silent for the 10 s idle timeout.
    thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(PROBE) {
                let _ = s.write_all(PROBE_ANSWER);
                continue;
            }
            let _ = s.write_all(b"\x001000000\0v1\0");
            for _ in 0..600 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                // The peer's pace, not a wait for anything.
                thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    // Before the fix this waited for the whole minute of the drip.
    assert_eq!(bob.cmd("GET_FILE drip f got"), "c> GET_FILE FAIL");
    assert!(bob.stderr_has("too slow"), "{:?}", bob.stderr());
}

/// The publication record of `user` under `state` (one JSON file per server and user).
fn record_file(state: &Path, user: &str) -> std::path::PathBuf {
    let dir = state.join("published");
    let server = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
    server.path().join(format!("{user}.json"))
}

#[test]
fn an_edited_or_planted_publication_record_serves_nothing_it_should_not() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("notes.txt"), b"notes").unwrap();
    let secret = std::fs::canonicalize(outside.path())
        .unwrap()
        .join("id_rsa");
    std::fs::write(&secret, b"PRIVATE KEY").unwrap();
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt n"), "c> PUBLISH OK");
    assert_eq!(alice.cmd("QUIT"), "c> DISCONNECT OK");
    alice.wait_exit();
    // Someone with write access to the state folder points notes.txt elsewhere.
    let record = record_file(state.path(), "alice");
    let edited = serde_json::json!({ "notes.txt": secret }).to_string();
    std::fs::write(&record, edited).unwrap();
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    let port = peer_port(s.addr, "alice");
    // Before the fix: 0 and PRIVATE KEY.
    assert_eq!(raw_get(port, &get_file_request("notes.txt")), [1]);
    assert_eq!(alice.cmd("QUIT"), "c> DISCONNECT OK");
    alice.wait_exit();
    // A FIFO in the record's place: the shell answers at once, serving nothing.
    std::fs::remove_file(&record).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&record)
            .status()
            .unwrap()
            .success()
    );
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    assert!(
        alice.stderr_has("cannot read the publication record"),
        "{:?}",
        alice.stderr()
    );
    let port = peer_port(s.addr, "alice");
    assert_eq!(raw_get(port, &get_file_request("notes.txt")), [1]);
}

/// Issue 26 item 4: SIZE and VERSION are public (one GET_FILE_RANGE reads them), so a
/// co-owner can replay them, send junk and close. FETCH's failover to the honest
/// owner then must not resume after the junk: a prefix another owner sent is never
/// kept, and the result is the real file.
#[test]
fn a_prefix_a_liar_sent_with_replayed_size_and_version_is_not_resumed() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f"), MIB, 26);
    let mut alice = Client::with_state(s.addr, share.path(), state.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH f honest"), "c> PUBLISH OK");
    // What anyone can read of alice's file: the header of a GET_FILE_RANGE.
    let port = peer_port(s.addr, "alice");
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("GET_FILE_RANGE\0f\0{MIB}\0").as_bytes())
        .unwrap();
    let mut header = Vec::new();
    c.read_to_end(&mut header).unwrap();
    assert_eq!(header[0], 0, "{header:?}");
    assert_eq!(header.iter().filter(|&&b| b == 0).count(), 3, "{header:?}");
    // The liar replays them, then sends 256 KiB of junk and closes.
    let mut liar = header.clone();
    liar.extend(std::iter::repeat_n(b'J', 256 * 1024));
    let liar: &'static [u8] = Box::leak(liar.into_boxed_slice());
    fake_peer(s.addr, "mallory", Some(liar), b"\x01", Duration::ZERO);
    let mut bob = Client::start(s.addr, down.path());
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE mallory f got"), "c> GET_FILE FAIL");
    let k = kept("got");
    assert_only(down.path(), &[&k[0], &k[1]]);
    // mallory leaves; FETCH finds alice, who answers the same SIZE and VERSION.
    assert_eq!(code(s.addr, &["DISCONNECT", "mallory"]), 0);
    assert_eq!(bob.cmd("FETCH f got"), "c> FETCH OK");
    assert!(
        !bob.stderr_has("resuming at"),
        "resumed after the liar's bytes: {:?}",
        bob.stderr()
    );
    assert_eq!(
        file_hash(&down.path().join("got")),
        file_hash(&share.path().join("f"))
    );
    assert_eq!(dir_names(down.path()), ["got"]);
}
