//! Issue 28 items 1 and 2, content hashes on the peer and block ranges
//! (docs/PROTOCOL.md, "GET_FILE_HASHES" and "GET_FILE_BLOCK"), against a real
//! `peerdex client` process: the tree of a published file matches SHA-256 computed
//! here, a block range is exactly those bytes, a rewritten file never gets its old
//! hashes, hashing a 1 GiB file does not hold the listener up, and a statement peer
//! is never sent the new requests.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use peerdex::internals::fetch_blocks;
use sha2::{Digest, Sha256};
use support::*;

const MIB: u64 = 1 << 20;

/// A GET_FILE_HASHES reply taken apart.
#[derive(Debug)]
struct Tree {
    size: u64,
    version: String,
    blocks: Vec<[u8; 32]>,
    root: [u8; 32],
}

/// Splits `bytes` at its first NUL: the field and the rest.
fn field(bytes: &[u8]) -> (String, &[u8]) {
    let nul = bytes.iter().position(|&b| b == 0).expect("a NUL");
    (
        String::from_utf8(bytes[..nul].to_vec()).unwrap(),
        &bytes[nul + 1..],
    )
}

/// Parses a GET_FILE_HASHES reply whose code is 0, to the byte.
fn parse_tree(reply: &[u8]) -> Tree {
    assert_eq!(reply[0], 0);
    let (size, rest) = field(&reply[1..]);
    let (version, rest) = field(rest);
    let (count, rest) = field(rest);
    let count: usize = count.parse().unwrap();
    assert_eq!(
        rest.len(),
        32 * (count + 1),
        "hashes and root, nothing more"
    );
    let hash = |c: &[u8]| <[u8; 32]>::try_from(c).unwrap();
    Tree {
        size: size.parse().unwrap(),
        version,
        blocks: rest[..32 * count].chunks(32).map(hash).collect(),
        root: hash(&rest[32 * count..]),
    }
}

/// SHA-256 of each 1 MiB block of `data`, and of their concatenation.
fn expected_tree(data: &[u8]) -> (Vec<[u8; 32]>, [u8; 32]) {
    let blocks: Vec<[u8; 32]> = data
        .chunks(MIB as usize)
        .map(|b| Sha256::digest(b).into())
        .collect();
    (blocks.clone(), Sha256::digest(blocks.concat()).into())
}

/// GET_FILE_HASHES of `name` until the peer answers 0 (3, not ready, before).
fn poll_tree(peer: SocketAddr, name: &str) -> Tree {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = call(peer, &["GET_FILE_HASHES", name]);
        match reply.first() {
            Some(0) => return parse_tree(&reply),
            Some(3) if Instant::now() < deadline => {}
            other => panic!("GET_FILE_HASHES {name}: {other:?} (or 60 s of code 3)"),
        }
        // A poll interval, not a wait for a condition (the loop checks it).
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client connected as `user`, with its own state folder, sharing `share`.
fn owner(server: SocketAddr, share: &Path, state: &Path, user: &str) -> (Client, SocketAddr) {
    let mut c = Client::with_state(server, share, state, &[]);
    c.register_connect(user);
    let port = peer_port(server, user);
    (c, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn a_published_files_tree_and_blocks_are_exactly_the_content() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = share.path().join("f.bin");
    write_random(&path, (2 * MIB + MIB / 2) as usize, 28);
    let data = std::fs::read(&path).unwrap();
    let (mut alice, peer) = owner(s.addr, share.path(), state.path(), "alice");
    assert_eq!(alice.cmd("PUBLISH f.bin d"), "c> PUBLISH OK");
    let tree = poll_tree(peer, "f.bin");
    let (blocks, root) = expected_tree(&data);
    assert_eq!(tree.size, data.len() as u64);
    assert_eq!(tree.blocks, blocks);
    assert_eq!(tree.root, root);
    // GET_FILE_RANGE says the same VERSION.
    let range = call(peer, &["GET_FILE_RANGE", "f.bin", &data.len().to_string()]);
    let (_, rest) = field(&range[1..]);
    assert_eq!(field(rest).0, tree.version);
    // Blocks 1 and 2 (the short last one): code 0 and exactly their bytes.
    let reply = call(peer, &["GET_FILE_BLOCK", "f.bin", &tree.version, "1", "2"]);
    assert_eq!(reply[0], 0);
    assert!(
        reply[1..] == data[MIB as usize..],
        "{} bytes",
        reply.len() - 1
    );
    // Past the last block, COUNT 0 or over 16, another VERSION, another name.
    for (first, count, code) in [("2", "2", 2), ("0", "0", 2), ("0", "17", 2)] {
        let reply = call(
            peer,
            &["GET_FILE_BLOCK", "f.bin", &tree.version, first, count],
        );
        assert_eq!(reply, [code], "{first}+{count}");
    }
    assert_eq!(
        call(peer, &["GET_FILE_BLOCK", "f.bin", "1-2-3", "0", "1"]),
        [3]
    );
    assert_eq!(call(peer, &["GET_FILE_HASHES", "other.bin"]), [1]);
    // The downloader's own requests get the same, verified block by block.
    let got = fetch_blocks(peer, "f.bin", 0, 3).unwrap();
    assert_eq!(got.blocks, blocks);
    assert!(got.data == data, "{} bytes", got.data.len());
    assert_eq!(got.root.len(), 64);
    // The tree is cached in the state folder, under the SHA-256 of the name.
    let name_hash: String = Sha256::digest(b"f.bin")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let cache = state.path().join(format!("hashes/{name_hash}.tree"));
    assert!(cache.is_file(), "{} missing", cache.display());
}

#[test]
fn a_file_rewritten_after_publishing_never_gets_its_old_hashes() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = share.path().join("f.bin");
    write_random(&path, (MIB + 10) as usize, 1);
    let (mut alice, peer) = owner(s.addr, share.path(), state.path(), "alice");
    assert_eq!(alice.cmd("PUBLISH f.bin d"), "c> PUBLISH OK");
    let old = poll_tree(peer, "f.bin");
    // Same size, new bytes, in place.
    write_random(&path, (MIB + 10) as usize, 2);
    let new_data = std::fs::read(&path).unwrap();
    let (new_blocks, new_root) = expected_tree(&new_data);
    // The next answer is 3 (being computed) or a tree of the new content under a new
    // VERSION; never the old hashes.
    let reply = call(peer, &["GET_FILE_HASHES", "f.bin"]);
    match reply[0] {
        3 => assert_eq!(reply, [3]),
        0 => {
            let t = parse_tree(&reply);
            assert_ne!(t.version, old.version);
            assert_eq!(t.blocks, new_blocks);
        }
        c => panic!("code {c}"),
    }
    // Blocks of the old VERSION are refused with 3.
    assert_eq!(
        call(peer, &["GET_FILE_BLOCK", "f.bin", &old.version, "0", "1"]),
        [3]
    );
    let new = poll_tree(peer, "f.bin");
    assert_ne!(new.version, old.version);
    assert_eq!((new.blocks, new.root), (new_blocks, new_root));
    // A fresh session of the same user serves the new tree at once from the cache
    // (still checked against the file's VERSION).
    alice.send("QUIT");
    alice.wait_exit();
    let mut again = Client::with_state(s.addr, share.path(), state.path(), &[]);
    assert_eq!(again.cmd("CONNECT alice"), "c> CONNECT OK");
    let peer = SocketAddr::from(([127, 0, 0, 1], peer_port(s.addr, "alice")));
    assert_eq!(poll_tree(peer, "f.bin").version, new.version);
}

#[test]
fn the_listener_keeps_serving_while_a_1_gib_tree_is_computed() {
    let s = Server::start(&[]);
    let share = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // Sparse: 1 GiB to hash, nothing on the disk.
    let big = std::fs::File::create(share.path().join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    std::fs::write(share.path().join("small.txt"), b"small file").unwrap();
    let (mut alice, peer) = owner(s.addr, share.path(), state.path(), "alice");
    assert_eq!(alice.cmd("PUBLISH big.bin d"), "c> PUBLISH OK");
    assert_eq!(alice.cmd("PUBLISH small.txt d"), "c> PUBLISH OK");
    let started = Instant::now();
    // Asked at once, the big tree is not ready (hashing 1 GiB takes far longer than
    // two PUBLISH round trips): the listener answers 3 at once rather than
    // computing it, and the small file's tree waits in the queue behind it.
    let timed = |request: &[&str]| {
        let t = Instant::now();
        let reply = call(peer, request);
        (reply, t.elapsed())
    };
    let (reply, took) = timed(&["GET_FILE_HASHES", "big.bin"]);
    assert_eq!(reply, [3], "answered in {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (reply, took) = timed(&["GET_FILE", "small.txt"]);
    assert_eq!(reply, b"\0small file");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (reply, _) = timed(&["GET_FILE_HASHES", "small.txt"]);
    let big_tree = poll_tree(peer, "big.bin");
    eprintln!(
        "1 GiB tree (sparse, debug build) ready {:.2} s after the small file's GET_FILE; \
         small.txt's tree was {:?} then",
        started.elapsed().as_secs_f64(),
        reply.first()
    );
    let zero: [u8; 32] = Sha256::digest(vec![0u8; MIB as usize]).into();
    assert_eq!(big_tree.blocks.len(), 1024);
    assert!(big_tree.blocks.iter().all(|b| *b == zero));
    assert_eq!(poll_tree(peer, "small.txt").blocks.len(), 1);
}

/// A running tests/partners/statement_peer.py (a peer written to the statement),
/// killed on drop; its stderr lines (one `request <op> <name> -> ...` per request).
struct StatementPeer {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl StatementPeer {
    fn start(dir: &Path) -> StatementPeer {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/partners/statement_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--host", "127.0.0.1", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start statement_peer.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap()
            .parse()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        StatementPeer { child, port, log }
    }

    /// Its log, once it holds `n` requests (at most 30 s).
    fn requests(&self, n: usize) -> Vec<String> {
        let requests = || -> Vec<String> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|l| l.contains("request "))
                .cloned()
                .collect()
        };
        wait_until(Duration::from_secs(30), || requests().len() >= n);
        requests()
    }
}

impl Drop for StatementPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_statement_peer_is_never_sent_get_file_hashes_or_block() {
    let have = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if have { vec![] } else { vec!["python3".into()] };
    if !require_tools("statement peer and block requests", &missing) {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("f.bin"), b"statement content").unwrap();
    let peer = StatementPeer::start(files.path());
    let addr = SocketAddr::from(([127, 0, 0, 1], peer.port));
    // The downloader's block requests: the discovery says GET_FILE alone, so neither
    // request is sent.
    let err = fetch_blocks(addr, "f.bin", 0, 1).unwrap_err();
    assert!(err.starts_with("no blocks: "), "{err}");
    // A peerdex client's GET_FILE and FETCH from it, as a user would.
    let s = Server::start(&[]);
    assert_eq!(code(s.addr, &["REGISTER", "stud"]), 0);
    assert_eq!(
        code(s.addr, &["CONNECT", "stud", &peer.port.to_string()]),
        0
    );
    assert_eq!(code(s.addr, &["PUBLISH", "stud", "f.bin", "d"]), 0);
    let down = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut bob = Client::with_state(s.addr, down.path(), state.path(), &[]);
    bob.register_connect("bob");
    assert_eq!(bob.cmd("GET_FILE stud f.bin a"), "c> GET_FILE OK");
    assert_eq!(bob.cmd("FETCH f.bin b"), "c> FETCH OK");
    for got in ["a", "b"] {
        assert_eq!(
            std::fs::read(down.path().join(got)).unwrap(),
            b"statement content"
        );
    }
    // Its log: the discoveries and two plain GET_FILEs, nothing else.
    let log = peer.requests(4);
    let ops: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split_once("request ").map(|(_, r)| r))
        .filter_map(|r| r.split(' ').next())
        .collect();
    assert!(ops.iter().all(|op| *op == "GET_FILE"), "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("GET_FILE_HASHES") || l.contains("GET_FILE_BLOCK"))
    );
    let plain = log
        .iter()
        .filter(|l| l.contains("request GET_FILE f.bin"))
        .count();
    assert_eq!(plain, 2, "{log:?}");
    // Checked once more a moment later: nothing arrived after the downloads either.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe.write_all(b"GET_FILE\0missing\0").unwrap();
    let mut reply = Vec::new();
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = probe.read_to_end(&mut reply);
    assert_eq!(reply, [1]);
    let log = peer.requests(log.len() + 1);
    assert!(
        !log.iter()
            .any(|l| l.contains("GET_FILE_HASHES") || l.contains("GET_FILE_BLOCK"))
    );
}
