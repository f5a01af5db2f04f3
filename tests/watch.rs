//! Issue 28 item 4, watches (PROTOCOL.md section 5, client extensions): WATCH,
//! UNWATCH, WATCHES. Real processes: an index server (or a counting fake one) and
//! scripted `peerdex client` shells with `--watch-interval 5`, the smallest.

mod support;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// How long a test waits for a watch to act: a few 5 s intervals (jittered, backing
/// off) on a loaded machine.
const WATCH_WAIT: Duration = Duration::from_secs(60);

const FAST: [&str; 2] = ["--watch-interval", "5"];

/// The watch list file of `user` at `server` under `state`.
fn watch_file(state: &Path, server: std::net::SocketAddr, user: &str) -> PathBuf {
    state
        .join("watches")
        .join(format!("{}%3A{}", server.ip(), server.port()))
        .join(format!("{user}.json"))
}

#[test]
fn a_watch_fetches_a_file_published_after_it_and_survives_a_restart() {
    let s = Server::start(&[]);
    let (share_a, share_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ann = Client::with_state(s.addr, share_a.path(), state_a.path(), &FAST);
    ann.register_connect("ann");
    assert_eq!(ann.cmd("WATCH .pdf"), "c> WATCH OK");
    assert_eq!(ann.cmd("WATCH .pdf"), "c> WATCH OK");
    assert!(ann.stderr_has("WATCH .pdf: already watched"));

    // Published after the watch was set.
    let mut bob = Client::with_state(s.addr, share_b.path(), state_b.path(), &[]);
    bob.register_connect("bob");
    write_random(&share_b.path().join("notes.pdf"), 300_000, 28);
    std::fs::write(share_b.path().join("notes.txt"), b"not a match").unwrap();
    assert_eq!(bob.cmd("PUBLISH notes.pdf week 3"), "c> PUBLISH OK");
    assert_eq!(bob.cmd("PUBLISH notes.txt week 3"), "c> PUBLISH OK");
    let published = Instant::now();

    let told = ann.wait_stderr(WATCH_WAIT, "WATCH .pdf: new match notes.pdf");
    assert!(
        told.ends_with("new match notes.pdf from bob, fetching (job 1)"),
        "{told}"
    );
    assert_eq!(ann.next_message(), "c> FETCH OK");
    eprintln!(
        "watch: notes.pdf fetched {:.1} s after its PUBLISH (--watch-interval 5)",
        published.elapsed().as_secs_f64()
    );
    let got = share_a.path().join("notes.pdf");
    assert_eq!(
        file_hash(&got),
        file_hash(&share_b.path().join("notes.pdf"))
    );
    assert!(!share_a.path().join("notes.txt").exists());
    // Remembered once the job's end reached the watch.
    let file = watch_file(state_a.path(), s.addr, "ann");
    assert!(
        wait_until(WATCH_WAIT, || std::fs::read_to_string(&file)
            .is_ok_and(|t| t.contains("notes.pdf"))),
        "notes.pdf not remembered"
    );
    assert_eq!(ann.cmd("QUIT"), "c> DISCONNECT OK");
    assert!(ann.wait_exit().success());

    // A restart: the list is loaded at CONNECT, and what it fetched is not fetched
    // again even without the local copy.
    std::fs::remove_file(&got).unwrap();
    let mut ann = Client::with_state(s.addr, share_a.path(), state_a.path(), &FAST);
    assert_eq!(ann.cmd("CONNECT ann"), "c> CONNECT OK");
    let (msg, lines) = ann.cmd_list("WATCHES", 1);
    assert_eq!(msg, "c> WATCHES OK");
    assert_eq!(lines, ["\t.pdf fetched 1"]);
    write_random(&share_b.path().join("new.pdf"), 100_000, 29);
    assert_eq!(bob.cmd("PUBLISH new.pdf later"), "c> PUBLISH OK");
    ann.wait_stderr(
        WATCH_WAIT,
        "WATCH .pdf: new match new.pdf from bob, fetching",
    );
    assert_eq!(ann.next_message(), "c> FETCH OK");
    assert_eq!(
        file_hash(&share_a.path().join("new.pdf")),
        file_hash(&share_b.path().join("new.pdf"))
    );
    // The searches that found new.pdf listed notes.pdf too.
    assert!(
        !ann.stderr()
            .iter()
            .any(|l| l.contains("new match notes.pdf")),
        "{:?}",
        ann.stderr()
    );
    assert!(!got.exists());

    assert_eq!(ann.cmd("UNWATCH .pdf"), "c> UNWATCH OK");
    assert_eq!(ann.cmd("UNWATCH .pdf"), "c> UNWATCH FAIL");
    assert!(ann.stderr_has("UNWATCH .pdf: not watched"));
    assert_eq!(ann.cmd("WATCHES"), "c> WATCHES OK");
    assert!(!std::fs::read_to_string(&file).unwrap().contains(".pdf"));
    assert_eq!(ann.cmd("QUIT"), "c> DISCONNECT OK");
    // A script whose command failed (the second UNWATCH) exits 1.
    assert_eq!(ann.wait_exit().code(), Some(1));
    let mut ann = Client::with_state(s.addr, share_a.path(), state_a.path(), &FAST);
    assert_eq!(ann.cmd("CONNECT ann"), "c> CONNECT OK");
    ann.send("WATCHES");
    assert_eq!(ann.next_message(), "c> WATCHES OK");
    assert_eq!(ann.cmd("LIST_USERS"), "c> LIST_USERS OK");
    assert!(
        !ann.proc.lines().iter().any(|l| l.contains(".pdf fetched")),
        "{:?}",
        ann.proc.lines()
    );
}

#[test]
fn watches_need_a_connected_user() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = Client::with_state(s.addr, share.path(), state.path(), &FAST);
    assert_eq!(c.cmd("WATCH .pdf"), "c> WATCH FAIL");
    assert!(c.stderr_has("WATCH: no user is connected in this shell (CONNECT first)"));
    assert_eq!(c.cmd("WATCHES"), "c> WATCHES FAIL");
    assert_eq!(c.cmd("watch"), "c> usage: WATCH <pattern>");
    c.register_connect("cy");
    assert_eq!(c.cmd("WATCH .pdf"), "c> WATCH OK");
    assert_eq!(c.cmd("DISCONNECT cy"), "c> DISCONNECT OK");
    assert_eq!(c.cmd("UNWATCH .pdf"), "c> UNWATCH FAIL");
    // UNREGISTER forgets the list: the next owner of the name starts without it.
    let file = watch_file(state.path(), s.addr, "cy");
    assert!(file.exists());
    assert_eq!(c.cmd("UNREGISTER cy"), "c> UNREGISTER OK");
    assert!(!file.exists());
    c.register_connect("cy");
    assert_eq!(c.cmd("WATCHES"), "c> WATCHES OK");
    assert_eq!(c.cmd("WATCH lab"), "c> WATCH OK");
    // Leaving stops the watch thread at once.
    let started = Instant::now();
    c.close_stdin();
    // Exits 1: commands failed.
    assert_eq!(c.wait_exit().code(), Some(1));
    eprintln!(
        "watch: the shell ended {:.2} s after the end of its input",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_bad_watch_file_is_set_aside_with_a_warning() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let file = watch_file(state.path(), s.addr, "dee");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"{\"watches\": [{\"pattern\": \"\\u001b[2J\"").unwrap();
    let mut c = Client::with_state(s.addr, share.path(), state.path(), &FAST);
    c.register_connect("dee");
    let warning = c.wait_stderr(WATCH_WAIT, "watch list");
    assert!(
        warning.contains("not used") && warning.contains("set aside as"),
        "{warning}"
    );
    assert_eq!(
        c.stderr()
            .iter()
            .filter(|l| l.contains("watch list"))
            .count(),
        1
    );
    let mut bad = file.clone().into_os_string();
    bad.push(".bad");
    assert!(Path::new(&bad).exists() && !file.exists());
    assert_eq!(c.cmd("WATCHES"), "c> WATCHES OK");
    // The list starts afresh and is written anew.
    assert_eq!(c.cmd("WATCH lab"), "c> WATCH OK");
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"lab\""));
}

/// When each SEARCH for a pattern reached the fake index.
struct Searches {
    times: Vec<(String, Instant)>,
}

impl Searches {
    fn update(&mut self, index: &FakeIndex) {
        self.times = index
            .timed_requests()
            .into_iter()
            // OP, DATETIME, user, pattern.
            .filter(|(_, r)| r[0] == "SEARCH")
            .map(|(t, r)| (r[3].clone(), t))
            .collect();
    }

    fn of(&self, pattern: &str) -> Vec<Instant> {
        let mine = self.times.iter().filter(|(p, _)| p == pattern);
        mine.map(|(_, t)| *t).collect()
    }

    /// Polls until `pattern` has been searched `n` times.
    fn wait(&mut self, index: &FakeIndex, pattern: &str, n: usize) -> Vec<Instant> {
        let deadline = Instant::now() + WATCH_WAIT;
        loop {
            self.update(index);
            if self.of(pattern).len() >= n {
                return self.of(pattern);
            }
            assert!(Instant::now() < deadline, "{:?}", self.times);
            thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn unwatch_stops_the_searches_and_a_pattern_is_never_searched_twice_within_5_s() {
    let index = FakeIndex::start();
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = Client::with_state(index.addr, share.path(), state.path(), &FAST);
    assert_eq!(c.cmd("CONNECT ann"), "c> CONNECT OK");
    assert_eq!(c.cmd("WATCH gone"), "c> WATCH OK");
    assert_eq!(c.cmd("WATCH kept"), "c> WATCH OK");
    let mut s = Searches { times: Vec::new() };
    s.wait(&index, "gone", 1);
    s.wait(&index, "kept", 1);
    // Both were searched once; the next search is at least 5 s away.
    assert_eq!(c.cmd("UNWATCH gone"), "c> UNWATCH OK");
    let unwatched = Instant::now();
    // Watched again at once: still not searched within 5 s of its last search.
    assert_eq!(c.cmd("WATCH again"), "c> WATCH OK");
    assert_eq!(c.cmd("UNWATCH again"), "c> UNWATCH OK");
    assert_eq!(c.cmd("WATCH again"), "c> WATCH OK");
    let again = s.wait(&index, "again", 2);
    // Two more searches of "kept" (the second at least 8 s after the UNWATCH, when
    // "gone" would have been searched by 6 s).
    let kept = s.wait(&index, "kept", 3);
    assert!(kept[2] > unwatched);
    assert_eq!(s.of("gone").len(), 1, "{:?}", s.times);
    for times in [&kept, &again] {
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(5), "{:?}", s.times);
        }
    }
    c.close_stdin();
    assert!(c.wait_exit().success());
}

/// An index server that answers every request with code 0 (and an empty list for
/// LIST_CONTENT) except SEARCH, which it never answers; returns its address and the
/// number of SEARCHes held.
fn stalling_index() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<usize>>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(0));
    let count = std::sync::Arc::clone(&held);
    thread::spawn(move || {
        let mut stuck = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(b"SEARCH\0") {
                *count.lock().unwrap() += 1;
                stuck.push(s);
                continue;
            }
            let reply: &[u8] = if buf[..n].starts_with(b"LIST_CONTENT\0") {
                b"\x000\0"
            } else {
                b"\x00"
            };
            let _ = s.write_all(reply);
        }
    });
    (addr, held)
}

#[test]
fn the_end_of_input_is_not_held_up_by_a_search_the_index_never_answers() {
    let (addr, held) = stalling_index();
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = Client::with_state(addr, share.path(), state.path(), &FAST);
    assert_eq!(c.cmd("CONNECT ann"), "c> CONNECT OK");
    assert_eq!(c.cmd("WATCH stuck"), "c> WATCH OK");
    assert!(wait_until(WATCH_WAIT, || *held.lock().unwrap() == 1));
    // The shell answers while the watch's SEARCH hangs (its own connection).
    assert_eq!(c.cmd("WATCHES"), "c> WATCHES OK");
    let started = Instant::now();
    c.close_stdin();
    assert!(c.wait_exit().success());
    let took = started.elapsed();
    eprintln!(
        "watch: the shell ended {:.2} s after the end of its input, a SEARCH pending",
        took.as_secs_f64()
    );
    // The 0.5 s the shell waits for the thread, and the DISCONNECT; not the index's
    // 5 s timeout of the pending SEARCH.
    assert!(took < Duration::from_millis(4500), "{took:?}");
    assert!(c.proc.lines().iter().any(|l| l == "c> DISCONNECT OK"));
}

#[test]
fn a_watch_of_an_exact_name_searches_it_once_per_round() {
    let s = Server::start(&[]);
    let (share_a, share_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ann = Client::with_state(s.addr, share_a.path(), state_a.path(), &FAST);
    ann.register_connect("ann");
    let mut bob = Client::with_state(s.addr, share_b.path(), state_b.path(), &[]);
    bob.register_connect("bob");
    write_random(&share_b.path().join("exact.bin"), 50_000, 30);
    assert_eq!(bob.cmd("PUBLISH exact.bin the one"), "c> PUBLISH OK");
    assert_eq!(ann.cmd("WATCH exact.bin"), "c> WATCH OK");
    let watched = Instant::now();
    assert_eq!(ann.next_message(), "c> FETCH OK");
    let rounds = 1 + (watched.elapsed().as_secs() / 5) as usize;
    // The server's console prints in order: once ann's LIST_USERS is out, so is
    // every SEARCH before it.
    assert_eq!(ann.cmd("LIST_USERS"), "c> LIST_USERS OK");
    let marker = "s> LIST_USERS FROM ann";
    assert!(s.proc.wait_line(WATCH_WAIT, |l| l == marker).is_some());
    let lines = s.proc.lines();
    let before = lines.iter().position(|l| l == marker).unwrap();
    let searches = lines[..before]
        .iter()
        .filter(|l| *l == "s> SEARCH FROM ann")
        .count();
    // One SEARCH per round of the watch: its result gave the owners, with no second
    // SEARCH of the same name at once.
    assert!(
        searches >= 1 && searches <= rounds,
        "{searches} in {rounds} round(s)"
    );
    assert_eq!(
        file_hash(&share_a.path().join("exact.bin")),
        file_hash(&share_b.path().join("exact.bin"))
    );
}
