//! Issue 19, client extensions (PROTOCOL.md section 5): FETCH by name from any
//! connected owner with failover and resume across owners, background transfers
//! (`&`, JOBS, CANCEL, QUIT waiting in a script), and re-sharing a download.
//! Real processes: an index server and scripted `peerdex client` shells.

mod support;

use std::path::Path;

use support::*;

const MIB: usize = 1024 * 1024;

/// The next `n` messages, sorted (background results arrive in any order).
fn messages(c: &mut Client, n: usize) -> Vec<String> {
    let mut m: Vec<String> = (0..n).map(|_| c.next_message()).collect();
    m.sort();
    m
}

#[test]
/// The second owner's copy is the same file, but what the first sent is not
/// resumed: SIZE and VERSION can be replayed by a liar (issue 26 item 4,
/// tests/peer.rs `a_prefix_a_liar_sent_with_replayed_size_and_version_is_not_resumed`).
fn fetch_fails_over_to_the_second_owner_and_starts_over() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    write_random(&share.path().join("slow.bin"), 8 * MIB, 91);
    // Two owners serving the same file (one folder, as on a shared lab filesystem):
    // same SIZE and VERSION.
    let owners: Vec<(String, Client)> = ["alice", "carol"]
        .iter()
        .zip(&states)
        .map(|(user, state)| {
            let mut c = Client::with_state(
                s.addr,
                share.path(),
                state.path(),
                &["--max-upload-rate", "2097152"],
            );
            c.register_connect(user);
            assert_eq!(c.cmd("PUBLISH slow.bin lab image"), "c> PUBLISH OK");
            (user.to_string(), c)
        })
        .collect();
    // One owner at a time: the failover path (two owners of one content would
    // otherwise both serve blocks at once, tests/fetch_multi.rs).
    let mut bob = Client::with_state(
        s.addr,
        down.path(),
        states[2].path(),
        &["--max-sources", "1"],
    );
    bob.register_connect("bob");
    bob.send("FETCH slow.bin got.bin");
    let line = bob.wait_stderr(CMD_TIMEOUT, "peerdex: FETCH slow.bin from ");
    let first = line["peerdex: FETCH slow.bin from ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    wait_bytes(&down.path().join(".got.bin.peerdex-partial"), 512 * 1024);
    let i = owners.iter().position(|(u, _)| *u == first).unwrap();
    owners[i].1.proc.signal("KILL");
    assert_eq!(bob.next_message(), "c> FETCH OK");
    let second = &owners[1 - i].0;
    let over = bob.wait_stderr(CMD_TIMEOUT, "came from another owner and is not trusted");
    assert!(
        over.contains(second) && over.ends_with("starting over"),
        "{over}"
    );
    assert!(bob.stderr_has(&format!(
        "peerdex: FETCH slow.bin from {second}: 8.0 MiB in "
    )));
    assert!(!bob.stderr_has("(resumed at "), "{:?}", bob.stderr());
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("slow.bin"))
    );
    assert_eq!(dir_names(down.path()), ["got.bin"]);
}

#[test]
fn fetch_without_an_owner_is_file_not_exist() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(share.path().join("notes.txt.old"), b"old").unwrap();
    let mut alice = Client::with_state(s.addr, share.path(), sa.path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt.old old"), "c> PUBLISH OK");
    let mut bob = Client::with_state(s.addr, down.path(), sb.path(), &[]);
    // Not connected: no user to search as.
    assert_eq!(bob.cmd("FETCH notes.txt"), "c> FETCH FAIL");
    bob.register_connect("bob");
    // SEARCH matches notes.txt.old as a substring; FETCH wants the exact name.
    assert_eq!(bob.cmd("FETCH notes.txt"), "c> FETCH FAIL / FILE NOT EXIST");
    assert_eq!(
        bob.cmd("FETCH notes.txt mine.txt &"),
        "c> FETCH FAIL / FILE NOT EXIST"
    );
    assert_eq!(bob.cmd("FETCH"), "c> usage: FETCH <file> [local_file] [&]");
    assert_eq!(dir_names(down.path()), Vec::<String>::new());
}

/// alice serving `files` (`size` bytes each) at 1 MiB/s per download.
fn slow_alice(s: &Server, share: &Path, state: &Path, files: &[&str], size: usize) -> Client {
    for (i, f) in files.iter().enumerate() {
        write_random(&share.join(f), size, 100 + i as u64);
    }
    let mut alice = Client::with_state(s.addr, share, state, &["--max-upload-rate", "1048576"]);
    alice.register_connect("alice");
    for f in files {
        assert_eq!(alice.cmd(&format!("PUBLISH {f} data")), "c> PUBLISH OK");
    }
    alice
}

#[test]
fn three_background_downloads_leave_the_shell_answering() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _alice = slow_alice(
        &s,
        share.path(),
        sa.path(),
        &["a.bin", "b.bin", "c.bin"],
        4 * MIB,
    );
    let mut bob = Client::with_state(s.addr, down.path(), sb.path(), &[]);
    bob.register_connect("bob");
    bob.send("GET_FILE alice a.bin a.bin &");
    bob.send("FETCH b.bin &");
    bob.send("get_file alice c.bin c2.bin&");
    bob.wait_stderr(CMD_TIMEOUT, "peerdex: [3] started");
    // Each transfer takes about 4 s; the shell answers at once meanwhile.
    let (msg, users) = bob.cmd_list("LIST_USERS", 2);
    assert_eq!(msg, "c> LIST_USERS OK");
    assert_eq!(users.len(), 2);
    let (msg, jobs) = bob.cmd_list("JOBS", 3);
    assert_eq!(msg, "c> JOBS OK");
    assert!(jobs[0].starts_with("\t1 running ") || jobs[0].starts_with("\t1 done "));
    assert!(jobs[0].ends_with(" GET_FILE alice a.bin a.bin"), "{jobs:?}");
    assert!(jobs[1].ends_with(" FETCH b.bin"), "{jobs:?}");
    // The size shows once the peer's reply arrived; on a loaded machine the third
    // transfer may not have its first reply yet (`running 0 bytes`).
    assert!(
        jobs[2].contains("/4194304 bytes ") || jobs[2].contains(" running 0 bytes "),
        "{jobs:?}"
    );
    assert!(
        jobs[2].ends_with(" GET_FILE alice c.bin c2.bin"),
        "{jobs:?}"
    );
    assert_eq!(
        messages(&mut bob, 3),
        ["c> FETCH OK", "c> GET_FILE OK", "c> GET_FILE OK"]
    );
    for (local, remote) in [("a.bin", "a.bin"), ("b.bin", "b.bin"), ("c2.bin", "c.bin")] {
        assert_eq!(
            file_hash(&down.path().join(local)),
            file_hash(&share.path().join(remote))
        );
    }
    let (_, jobs) = bob.cmd_list("JOBS", 3);
    assert!(
        jobs.iter()
            .all(|j| j.contains(" done ") && j.contains(" 100% ")),
        "{jobs:?}"
    );
}

#[test]
fn cancel_stops_a_running_background_download() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _alice = slow_alice(&s, share.path(), sa.path(), &["big.bin"], 16 * MIB);
    let mut bob = Client::with_state(s.addr, down.path(), sb.path(), &[]);
    bob.register_connect("bob");
    bob.send("GET_FILE alice big.bin got.bin &");
    bob.wait_stderr(CMD_TIMEOUT, "peerdex: [1] started");
    wait_bytes(&down.path().join(".got.bin.peerdex-partial"), 256 * 1024);
    bob.send("CANCEL 1");
    // CANCEL's message and the job's end, in either order.
    assert_eq!(messages(&mut bob, 2), ["c> CANCEL OK", "c> GET_FILE FAIL"]);
    let (_, jobs) = bob.cmd_list("JOBS", 1);
    assert!(jobs[0].starts_with("\t1 cancelled "), "{jobs:?}");
    assert_eq!(bob.cmd("CANCEL 1"), "c> CANCEL FAIL");
    assert_eq!(bob.cmd("CANCEL 7"), "c> CANCEL FAIL");
    assert_eq!(bob.cmd("CANCEL x"), "c> CANCEL FAIL");
    assert!(!down.path().join("got.bin").exists());
}

#[test]
fn quit_in_a_script_waits_for_a_running_transfer() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _alice = slow_alice(&s, share.path(), sa.path(), &["big.bin"], 3 * MIB);
    let mut bob = Client::with_state(s.addr, down.path(), sb.path(), &[]);
    bob.register_connect("bob");
    bob.send("GET_FILE alice big.bin got.bin &");
    bob.send("QUIT");
    bob.close_stdin();
    assert!(bob.wait_exit().success());
    assert!(bob.stderr_has("QUIT: waiting for 1 transfer(s) to end"));
    let lines = bob.proc.lines();
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["c> GET_FILE OK", "c> DISCONNECT OK"]);
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("big.bin"))
    );
}

#[test]
fn a_reshared_download_is_fetched_from_the_resharer() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let (bdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let states: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    write_random(&share.path().join("doc.bin"), MIB, 7);
    let mut alice = Client::with_state(s.addr, share.path(), states[0].path(), &[]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH doc.bin week 3 notes"), "c> PUBLISH OK");
    let mut bob = Client::with_state(s.addr, bdir.path(), states[1].path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("RESHARE maybe"), "c> usage: RESHARE on|off");
    assert_eq!(bob.cmd("RESHARE on"), "c> RESHARE OK");
    bob.send("FETCH doc.bin &");
    assert_eq!(bob.next_message(), "c> FETCH OK");
    assert!(bob.stderr_has("peerdex: re-shared doc.bin \"week 3 notes\""));
    // A GET_FILE is re-shared too, with the description LIST_CONTENT gives.
    assert_eq!(bob.cmd("GET_FILE alice doc.bin copy.bin"), "c> GET_FILE OK");
    assert!(bob.stderr_has("peerdex: re-shared copy.bin \"week 3 notes\""));
    let (msg, files) = bob.cmd_list("LIST_CONTENT bob", 2);
    assert_eq!(msg, "c> LIST_CONTENT OK");
    assert_eq!(
        files,
        ["\tdoc.bin \"week 3 notes\"", "\tcopy.bin \"week 3 notes\""]
    );

    // The original owner leaves; a third user gets the file from the re-sharer.
    assert_eq!(alice.cmd("QUIT"), "c> DISCONNECT OK");
    let mut carol = Client::with_state(s.addr, cdir.path(), states[2].path(), &[]);
    carol.register_connect("carol");
    assert_eq!(carol.cmd("FETCH doc.bin"), "c> FETCH OK");
    assert!(carol.stderr_has("peerdex: FETCH doc.bin from bob "));
    assert_eq!(
        file_hash(&cdir.path().join("doc.bin")),
        file_hash(&share.path().join("doc.bin"))
    );
    // Without re-sharing, nothing is published.
    assert_eq!(carol.cmd("FETCH doc.bin again.bin"), "c> FETCH OK");
    let (msg, files) = carol.cmd_list("LIST_CONTENT carol", 0);
    assert_eq!((msg.as_str(), files.len()), ("c> LIST_CONTENT OK", 0));
}

/// Issue 23: a background GET_FILE that resumes a kept prefix says so, tagged with
/// its job.
#[test]
fn a_background_resume_says_so() {
    let s = Server::start(&["--probe-interval", "0"]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = slow_alice(&s, share.path(), sa.path(), &["slow.bin"], 4 * MIB);
    let mut bob = Client::with_state(s.addr, down.path(), sb.path(), &[]);
    bob.register_connect("bob");
    bob.send("GET_FILE alice slow.bin got.bin &");
    wait_bytes(&down.path().join(".got.bin.peerdex-partial"), 256 * 1024);
    alice.proc.signal("KILL");
    assert_eq!(bob.next_message(), "c> GET_FILE FAIL");
    alice.wait_exit();
    // alice again, from the same folder and record.
    let mut alice = Client::with_state(s.addr, share.path(), sa.path(), &[]);
    assert_eq!(alice.cmd("DISCONNECT alice"), "c> DISCONNECT OK");
    assert_eq!(alice.cmd("CONNECT alice"), "c> CONNECT OK");
    bob.send("GET_FILE alice slow.bin got.bin &");
    assert_eq!(bob.next_message(), "c> GET_FILE OK");
    assert!(
        bob.stderr_has("peerdex: [2] resuming at "),
        "{:?}",
        bob.stderr()
    );
    assert!(bob.stderr_has("peerdex: [2] GET_FILE alice slow.bin got.bin: 4.0 MiB in "));
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("slow.bin"))
    );
}
