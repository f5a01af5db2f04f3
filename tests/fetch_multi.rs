//! Issue 28 item 3: FETCH from several owners at once, every block verified. Real
//! processes: an index server, `peerdex client` owners (rate-limited with
//! `--max-upload-rate`), a downloading shell, and fake peers on raw sockets where an
//! owner must lie.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
use support::*;

const MIB: usize = 1024 * 1024;

/// The discovery request and a peerdex peer's answer naming the block operations.
const PROBE: &[u8] = b"GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0";
const PROBE_ANSWER: &[u8] = b"\0peerdex GET_FILE_RANGE GET_FILE_HASHES GET_FILE_BLOCK\0";

/// An owner: a client sharing `share` with its own state folder, connected as
/// `user`, that published `file`.
struct OwnerProc {
    /// Runs (and serves) until dropped.
    _client: Client,
    _state: tempfile::TempDir,
}

/// How long a test waits for a line on stderr.
const WAIT: Duration = Duration::from_secs(60);

fn owner(s: &Server, share: &Path, user: &str, file: &str, extra: &[&str]) -> OwnerProc {
    let state = tempfile::tempdir().unwrap();
    let mut client = Client::with_state(s.addr, share, state.path(), extra);
    client.register_connect(user);
    assert_eq!(client.cmd(&format!("PUBLISH {file} data")), "c> PUBLISH OK");
    OwnerProc {
        _client: client,
        _state: state,
    }
}

/// Rate limit of the owners: `--max-upload-rate` in bytes per second.
fn rate(bytes_per_sec: usize) -> [String; 2] {
    ["--max-upload-rate".into(), bytes_per_sec.to_string()]
}

fn args(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The GET_FILE_HASHES reply of `file` at `port`, once the tree is ready (code 3
/// means still being computed: asked again).
fn tree_reply(port: u16, file: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    let ready = wait_until(Duration::from_secs(60), || {
        let addr = ([127, 0, 0, 1], port).into();
        reply = exchange(addr, &fields(&["GET_FILE_HASHES", file]));
        reply.first() == Some(&0)
    });
    assert!(ready, "no tree of {file} at {port}: {reply:?}");
    reply
}

fn downloader(s: &Server, down: &Path, user: &str, extra: &[&str]) -> (Client, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let mut c = Client::with_state(s.addr, down, state.path(), extra);
    c.register_connect(user);
    (c, state)
}

/// Seconds from sending `line` to its message, which must be `expect`.
fn timed(c: &mut Client, line: &str, expect: &str) -> f64 {
    let t0 = Instant::now();
    assert_eq!(c.cmd(line), expect, "{:?}", c.stderr());
    t0.elapsed().as_secs_f64()
}

#[test]
fn three_rate_limited_owners_fetch_in_at_most_0_6_of_one_owner() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 24 * MIB, 281);
    let limit = rate(4 * MIB);
    let owners: Vec<OwnerProc> = ["ann", "ben", "cat"]
        .iter()
        .map(|u| owner(&s, share.path(), u, "big.bin", &args(&limit)))
        .collect();
    for u in ["ann", "ben", "cat"] {
        tree_reply(peer_port(s.addr, u), "big.bin");
    }
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    let one = timed(&mut bob, "GET_FILE ann big.bin one.bin", "c> GET_FILE OK");
    let three = timed(&mut bob, "FETCH big.bin three.bin", "c> FETCH OK");
    let want = file_hash(&share.path().join("big.bin"));
    assert_eq!(file_hash(&down.path().join("one.bin")), want);
    assert_eq!(file_hash(&down.path().join("three.bin")), want);
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH big.bin from ");
    assert!(served.contains("(3 sources): 24.0 MiB in "), "{served}");
    eprintln!("GET_FILE from one owner {one:.2} s, FETCH from three {three:.2} s");
    // The criterion, timed in this run: at most 0.6 of one owner.
    assert!(
        three <= 0.6 * one,
        "FETCH from 3 owners took {three:.2} s, GET_FILE from one {one:.2} s"
    );
    drop(owners);
}

/// What a lying owner was asked.
#[derive(Default)]
struct Asked {
    blocks: AtomicUsize,
    hashes: AtomicUsize,
}

/// The fields of a request so far, when it is complete: the discovery and
/// GET_FILE_HASHES have 2, GET_FILE_RANGE 3, GET_FILE_BLOCK 5.
fn request(s: &mut TcpStream) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let nuls = buf.iter().filter(|&&b| b == 0).count();
        let need = if buf.starts_with(b"GET_FILE_BLOCK\0") {
            5
        } else if buf.starts_with(b"GET_FILE_RANGE\0") {
            3
        } else {
            2
        };
        if nuls >= need || buf.len() > 4096 {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// A fake peerdex peer registered as `user`, sharing `file` by replaying `tree` (an
/// honest owner's GET_FILE_HASHES reply: its SIZE, VERSION and hashes) and sending
/// junk for every block; GET_FILE_RANGE gets the replayed SIZE and VERSION and junk.
fn liar(s: &Server, user: &str, file: &str, tree: Vec<u8>) -> Arc<Asked> {
    fake_owner(s, user, file, tree, Blocks::Junk)
}

/// What a fake owner sends for GET_FILE_BLOCK.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Blocks {
    /// Code 0 and junk of the right length.
    Junk,
    /// Code 0, then nothing, the connection held open for a minute.
    Silence,
}

/// [`liar`], with `blocks` as its answer to GET_FILE_BLOCK.
fn fake_owner(s: &Server, user: &str, file: &str, tree: Vec<u8>, blocks: Blocks) -> Arc<Asked> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    assert_eq!(code(s.addr, &["REGISTER", user]), 0);
    assert_eq!(code(s.addr, &["CONNECT", user, &port]), 0);
    assert_eq!(code(s.addr, &["PUBLISH", user, file, "junk"]), 0);
    let header: Vec<&[u8]> = tree[1..].splitn(3, |&b| b == 0).collect();
    let size: u64 = std::str::from_utf8(header[0]).unwrap().parse().unwrap();
    let mut range_reply = vec![0u8];
    range_reply.extend_from_slice(&tree[1..header[0].len() + header[1].len() + 3]);
    range_reply.extend(std::iter::repeat_n(b'J', 256 * 1024));
    let asked = Arc::new(Asked::default());
    let told = Arc::clone(&asked);
    thread::spawn(move || {
        for stream in listener.incoming().take(500) {
            let Ok(mut c) = stream else { return };
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let req = request(&mut c);
            let reply: Vec<u8> = match req[0].as_slice() {
                b"GET_FILE_HASHES" => {
                    told.hashes.fetch_add(1, Ordering::SeqCst);
                    tree.clone()
                }
                b"GET_FILE_BLOCK" if req.len() >= 5 => {
                    told.blocks.fetch_add(1, Ordering::SeqCst);
                    let num =
                        |f: &[u8]| -> u64 { std::str::from_utf8(f).unwrap().parse().unwrap() };
                    let (first, count) = (num(&req[3]), num(&req[4]));
                    let start = (first * MIB as u64).min(size);
                    let end = ((first + count) * MIB as u64).min(size);
                    let mut r = vec![0u8];
                    if blocks == Blocks::Junk {
                        r.extend(std::iter::repeat_n(0x4a, (end - start) as usize));
                    }
                    r
                }
                b"GET_FILE_RANGE" => range_reply.clone(),
                b"GET_FILE" if req.len() > 1 && req[1] == PROBE[9..PROBE.len() - 1] => {
                    PROBE_ANSWER.to_vec()
                }
                _ => vec![1],
            };
            let _ = c.write_all(&reply);
            if blocks == Blocks::Silence && req[0] == b"GET_FILE_BLOCK" {
                // The fake peer's stall (it holds the connection and says nothing).
                thread::spawn(move || {
                    thread::sleep(Duration::from_secs(60));
                    drop(c);
                });
            }
        }
    });
    asked
}

#[test]
fn a_liar_replaying_the_honest_tree_and_sending_junk_blocks_is_dropped_and_named() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f.bin"), 12 * MIB, 282);
    let limit = rate(4 * MIB);
    let _ann = owner(&s, share.path(), "ann", "f.bin", &args(&limit));
    let _ben = owner(&s, share.path(), "ben", "f.bin", &args(&limit));
    // Issue 26 item 4 through the multi path: SIZE and VERSION (and here the whole
    // tree) replayed, junk for content.
    let tree = tree_reply(peer_port(s.addr, "ann"), "f.bin");
    let asked = liar(&s, "mallory", "f.bin", tree);
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    assert_eq!(
        bob.cmd("FETCH f.bin got.bin"),
        "c> FETCH OK",
        "{:?}",
        bob.stderr()
    );
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("f.bin"))
    );
    assert!(
        asked.blocks.load(Ordering::SeqCst) > 0,
        "the liar was asked"
    );
    let dropped = bob.wait_stderr(WAIT, "mallory sent a wrong block ");
    assert!(dropped.ends_with(": dropped"), "{dropped}");
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH f.bin from ");
    assert!(!served.contains("mallory"), "{served}");
    assert_eq!(dir_names(down.path()), ["got.bin"]);
}

#[test]
fn with_one_honest_owner_and_a_replaying_liar_the_result_is_correct() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f.bin"), 6 * MIB, 283);
    let _ann = owner(&s, share.path(), "ann", "f.bin", &args(&rate(2 * MIB)));
    let tree = tree_reply(peer_port(s.addr, "ann"), "f.bin");
    let asked = liar(&s, "mallory", "f.bin", tree);
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    for round in 0..3 {
        let got = format!("got{round}.bin");
        let reply = bob.cmd(&format!("FETCH f.bin {got}"));
        assert_eq!(reply, "c> FETCH OK", "{:?}", bob.stderr());
        assert_eq!(
            file_hash(&down.path().join(&got)),
            file_hash(&share.path().join("f.bin")),
            "round {round}"
        );
    }
    assert!(
        asked.blocks.load(Ordering::SeqCst) > 0,
        "the liar was asked"
    );
    assert!(bob.stderr_has("mallory sent a wrong block "));
}

#[test]
fn an_owner_of_other_content_with_the_same_name_and_size_is_never_mixed() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f.bin"), 8 * MIB, 284);
    write_random(&other.path().join("f.bin"), 8 * MIB, 296);
    let limit = rate(4 * MIB);
    let _ann = owner(&s, share.path(), "ann", "f.bin", &args(&limit));
    let _ben = owner(&s, share.path(), "ben", "f.bin", &args(&limit));
    let _dan = owner(&s, other.path(), "dan", "f.bin", &[]);
    for u in ["ann", "ben", "dan"] {
        tree_reply(peer_port(s.addr, u), "f.bin");
    }
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    assert_eq!(bob.cmd("FETCH f.bin got.bin"), "c> FETCH OK");
    let got = std::fs::read(down.path().join("got.bin")).unwrap();
    assert!(got == std::fs::read(share.path().join("f.bin")).unwrap());
    // No block of dan's file is in it.
    let dans = std::fs::read(other.path().join("f.bin")).unwrap();
    for (i, (mine, theirs)) in got.chunks(MIB).zip(dans.chunks(MIB)).enumerate() {
        assert!(mine != theirs, "block {i} is dan's");
    }
    let spread = bob.wait_stderr(WAIT, "owners have the same content");
    assert!(spread.contains("FETCH f.bin: 2 owners"), "{spread}");
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH f.bin from ");
    assert!(!served.contains("dan"), "{served}");
}

#[test]
fn a_source_rewritten_mid_transfer_gives_a_fail_or_the_old_file_never_a_torn_one() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    let src = share.path().join("f.bin");
    write_random(&src, 16 * MIB, 286);
    let before = std::fs::read(&src).unwrap();
    let limit = rate(2 * MIB);
    let _ann = owner(&s, share.path(), "ann", "f.bin", &args(&limit));
    let _ben = owner(&s, share.path(), "ben", "f.bin", &args(&limit));
    for u in ["ann", "ben"] {
        tree_reply(peer_port(s.addr, u), "f.bin");
    }
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    bob.send("FETCH f.bin got.bin");
    bob.wait_stderr(WAIT, "owners have the same content");
    wait_verified(&down.path().join(".got.bin.peerdex-partial.blocks"), 1);
    rewrite_in_place(&src, 7);
    let reply = bob.next_message();
    eprintln!("after the rewrite: {reply}");
    let got = down.path().join("got.bin");
    match reply.as_str() {
        "c> FETCH OK" => assert!(std::fs::read(&got).unwrap() == before, "torn file"),
        "c> FETCH FAIL" => {
            assert!(!got.exists());
            assert!(bob.stderr_has("every source of that content was dropped"));
        }
        other => panic!("{other}: {:?}", bob.stderr()),
    }
}

/// Verified blocks in a `.blocks` record (0 while there is none).
fn verified_blocks(record: &Path) -> u32 {
    let Ok(text) = std::fs::read_to_string(record) else {
        return 0;
    };
    let Some(hex) = text.lines().find_map(|l| l.strip_prefix("have ")) else {
        return 0;
    };
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok())
        .map(u8::count_ones)
        .sum()
}

fn wait_verified(record: &Path, n: u32) {
    let ok = wait_until(Duration::from_secs(60), || verified_blocks(record) >= n);
    assert!(
        ok,
        "{} holds {} blocks",
        record.display(),
        verified_blocks(record)
    );
}

#[test]
fn a_cancelled_fetch_resumes_block_by_block_from_other_owners() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f.bin"), 16 * MIB, 287);
    let limit = rate(MIB);
    let first: Vec<OwnerProc> = ["ann", "ben"]
        .iter()
        .map(|u| owner(&s, share.path(), u, "f.bin", &args(&limit)))
        .collect();
    for u in ["ann", "ben"] {
        tree_reply(peer_port(s.addr, u), "f.bin");
    }
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    bob.send("FETCH f.bin got.bin &");
    bob.wait_stderr(WAIT, "peerdex: [1] started");
    let record: PathBuf = down.path().join(".got.bin.peerdex-partial.blocks");
    wait_verified(&record, 3);
    let (_, jobs) = bob.cmd_list("JOBS", 1);
    assert!(
        jobs[0].contains(" 2 sources FETCH f.bin got.bin"),
        "{jobs:?}"
    );
    bob.send("CANCEL 1");
    let mut ends = [bob.next_message(), bob.next_message()];
    ends.sort();
    assert_eq!(ends, ["c> CANCEL OK", "c> FETCH FAIL"]);
    let kept = verified_blocks(&record);
    assert!((3..16).contains(&kept), "{kept}");
    // ann and ben leave; two other owners of the same content arrive.
    drop(first);
    for u in ["ann", "ben"] {
        assert_eq!(code(s.addr, &["DISCONNECT", u]), 0);
    }
    let _cid = owner(&s, share.path(), "cid", "f.bin", &[]);
    let _dee = owner(&s, share.path(), "dee", "f.bin", &[]);
    for u in ["cid", "dee"] {
        tree_reply(peer_port(s.addr, u), "f.bin");
    }
    assert_eq!(bob.cmd("FETCH f.bin got.bin"), "c> FETCH OK");
    let spread = bob.wait_stderr(WAIT, " verified blocks kept");
    assert!(
        spread.starts_with("peerdex: FETCH f.bin: 2 owners have the same content"),
        "{spread}"
    );
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH f.bin from ");
    assert!(served.contains("(resumed at "), "{served}");
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("f.bin"))
    );
    assert_eq!(dir_names(down.path()), ["got.bin"]);
}

#[test]
fn a_verified_multi_source_download_is_reshared_and_fetched_from_the_resharer() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let (bdir, cdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_random(&share.path().join("doc.bin"), 3 * MIB, 288);
    let mut owners: Vec<OwnerProc> = ["ann", "ben"]
        .iter()
        .map(|u| owner(&s, share.path(), u, "doc.bin", &[]))
        .collect();
    let (mut bob, _bstate) = downloader(&s, bdir.path(), "bob", &["--reshare"]);
    assert_eq!(bob.cmd("FETCH doc.bin"), "c> FETCH OK");
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH doc.bin from ");
    assert!(served.contains("(2 sources)"), "{served}");
    // Published with the description SEARCH gave, as a one-owner FETCH is.
    assert!(bob.stderr_has("peerdex: re-shared doc.bin \"data\""));
    // The owners leave; a third user gets the file from the re-sharer.
    owners.clear();
    for u in ["ann", "ben"] {
        assert_eq!(code(s.addr, &["DISCONNECT", u]), 0);
    }
    let (mut carl, _cstate) = downloader(&s, cdir.path(), "carl", &[]);
    assert_eq!(carl.cmd("FETCH doc.bin"), "c> FETCH OK");
    assert!(carl.stderr_has("peerdex: FETCH doc.bin from bob"));
    assert_eq!(
        file_hash(&cdir.path().join("doc.bin")),
        file_hash(&share.path().join("doc.bin"))
    );
}

#[test]
fn a_multi_source_fetch_that_fills_the_disk_leaves_no_partial_file() {
    let Some(disk) = Tmpfs::mount("multi-source disk-full cleanup", "4m") else {
        return;
    };
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    write_random(&share.path().join("big.bin"), 3 * MIB, 289);
    // 256 KiB/s each: the disk fills while the transfer runs.
    let limit = rate(256 * 1024);
    let _owners: Vec<OwnerProc> = ["ann", "ben"]
        .iter()
        .map(|u| owner(&s, share.path(), u, "big.bin", &args(&limit)))
        .collect();
    let (mut bob, _state) = downloader(&s, disk.path(), "bob", &[]);
    bob.send("FETCH big.bin got");
    // Some blocks verified (and recorded), some not yet.
    wait_verified(&disk.path().join(".got.peerdex-partial.blocks"), 1);
    disk.fill();
    assert_eq!(bob.next_message(), "c> FETCH FAIL", "{:?}", bob.stderr());
    assert!(bob.stderr_has("No space left"), "{:?}", bob.stderr());
    // Kept, the partial and its record would hold the space the disk lacks.
    assert_eq!(dir_names(disk.path()), ["filler"]);
}

#[test]
fn a_silent_owner_loses_its_run_and_does_not_hold_up_the_end() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let down = tempfile::tempdir().unwrap();
    write_random(&share.path().join("f.bin"), 6 * MIB, 290);
    let _ann = owner(&s, share.path(), "ann", "f.bin", &args(&rate(4 * MIB)));
    let tree = tree_reply(peer_port(s.addr, "ann"), "f.bin");
    let asked = fake_owner(&s, "sid", "f.bin", tree, Blocks::Silence);
    let (mut bob, _state) = downloader(&s, down.path(), "bob", &[]);
    let took = timed(&mut bob, "FETCH f.bin got.bin", "c> FETCH OK");
    assert!(asked.blocks.load(Ordering::SeqCst) > 0, "sid was asked");
    assert_eq!(
        file_hash(&down.path().join("got.bin")),
        file_hash(&share.path().join("f.bin"))
    );
    // ann took sid's run too, and FETCH did not wait for sid's idle timeout (10 s).
    let served = bob.wait_stderr(WAIT, "peerdex: FETCH f.bin from ");
    assert!(served.contains("from ann (1 source)"), "{served}");
    assert!(took < 9.0, "{took:.2} s");
}
