//! Hash trees and blocks from a peerdex peer (docs/PROTOCOL.md, "GET_FILE_HASHES"
//! and "GET_FILE_BLOCK"): what a download from several owners is built on.
//!
//! Both requests go only to a peer whose discovery answer named them (`speaks`): a
//! statement peer, or a peerdex peer from before them, never sees one
//! ([`DownloadError::NoBlocks`] instead). Each uses the downloader's connect, header
//! deadline, idle timeout, minimum rate and cancel flag (`download`).

use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::sync::atomic::AtomicBool;

use super::download::{
    CONNECT_TIMEOUT, DOWNLOAD_IDLE_TIMEOUT, DownloadError, Downloader, HEADER_TIMEOUT, Incoming,
    connect, receive_into,
};
use super::speaks::{Speaks, Unknown};
use crate::net::DeadlineReader;
use crate::proto::peer::{
    CODE_NOT_FOUND, CODE_NOT_READY, CODE_OK, MAX_BLOCKS_PER_REQUEST, encode_blocks_request,
    encode_hashes_request,
};
use crate::proto::tree::{BLOCK_SIZE, Hash, HashTree, read_tree_header};
use crate::proto::wire::{Field, FieldReader};

/// Where [`Downloader::read_blocks`] hands each whole block: its index and bytes.
pub(crate) type BlockSink<'a> = dyn FnMut(u64, &[u8]) -> Result<(), DownloadError> + 'a;

/// Blocks of one GET_FILE_BLOCK request.
struct Ask<'a> {
    remote: &'a str,
    tree: &'a HashTree,
    first: u64,
    count: u64,
}

impl Downloader {
    /// What `addr` speaks (discovery, cached): lets FETCH pick sources.
    pub(crate) fn speaks_blocks(&self, addr: SocketAddr) -> Result<bool, DownloadError> {
        let speaks = self
            .known
            .speaks(addr, CONNECT_TIMEOUT, HEADER_TIMEOUT)
            .map_err(|Unknown::Connect(source)| DownloadError::Connect { addr, source })?;
        Ok(speaks == Speaks::Blocks)
    }

    fn require_blocks(&self, addr: SocketAddr) -> Result<(), DownloadError> {
        match self.speaks_blocks(addr)? {
            true => Ok(()),
            false => Err(DownloadError::NoBlocks),
        }
    }

    /// GET_FILE_HASHES: the tree of the current content of `remote` on `addr`,
    /// checked (count, root); [`DownloadError::NotReady`] for code 3.
    pub(crate) fn hash_tree(
        &self,
        addr: SocketAddr,
        remote: &str,
    ) -> Result<HashTree, DownloadError> {
        self.require_blocks(addr)?;
        let stream = connect(addr, &encode_hashes_request(remote))?;
        let mut reader = after_code(&stream, DownloadError::NotReady)?;
        let (size, version, count) = read_tree_header(&mut reader).map_err(DownloadError::Tree)?;
        let (_, head) = reader.into_parts();
        // The hashes and the root: up to 32 MiB for the largest file, so they come
        // at the minimum rate like content, into memory that grows as they arrive.
        let never = AtomicBool::new(false);
        let mut incoming = Incoming::new(&stream, &never, self.options)?;
        let mut raw = Vec::new();
        receive_into(&mut incoming, &head, (count + 1) * 32, &mut |data| {
            raw.extend_from_slice(data);
            Ok(())
        })?;
        let (hashes, root) = raw.split_at(raw.len() - 32);
        let blocks = hashes.chunks_exact(32).map(to_hash).collect();
        HashTree::from_parts(size, version, blocks, to_hash(root)).map_err(DownloadError::Tree)
    }

    /// GET_FILE_BLOCK for `count` blocks from `first` of `tree`'s VERSION (in
    /// requests of at most [`MAX_BLOCKS_PER_REQUEST`]); `out` gets each whole block
    /// with its index, unverified (the caller verifies, block by block).
    /// [`DownloadError::Changed`] for code 3, `Short` for a peer that stopped early.
    pub(crate) fn read_blocks(
        &self,
        addr: SocketAddr,
        remote: &str,
        tree: &HashTree,
        blocks: Range<u64>,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError> {
        let Range { start: first, end } = blocks;
        if first > end || end > tree.block_count() {
            return Err(DownloadError::BlockRange {
                first,
                count: end.saturating_sub(first),
                blocks: tree.block_count(),
            });
        }
        self.require_blocks(addr)?;
        let mut at = first;
        while at < end {
            let n = (end - at).min(MAX_BLOCKS_PER_REQUEST);
            let ask = Ask {
                remote,
                tree,
                first: at,
                count: n,
            };
            self.read_one_request(addr, &ask, cancel, out)?;
            at += n;
        }
        Ok(())
    }

    /// One GET_FILE_BLOCK request and its reply, cut into blocks for `out`.
    fn read_one_request(
        &self,
        addr: SocketAddr,
        ask: &Ask<'_>,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError> {
        let Ask {
            remote,
            tree,
            first,
            count,
        } = *ask;
        let request = encode_blocks_request(remote, &tree.version, first, count);
        let stream = connect(addr, &request)?;
        let (_, head) = after_code(&stream, DownloadError::Changed)?.into_parts();
        let start = tree.span(first).0;
        let (last, last_len) = tree.span(first + count - 1);
        let mut incoming = Incoming::new(&stream, cancel, self.options)?;
        let mut block = Vec::with_capacity(BLOCK_SIZE as usize);
        let mut index = first;
        receive_into(
            &mut incoming,
            &head,
            last + last_len - start,
            &mut |mut data| {
                while !data.is_empty() {
                    let len = tree.span(index).1 as usize;
                    let take = (len - block.len()).min(data.len());
                    block.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if block.len() == len {
                        out(index, &block)?;
                        block.clear();
                        index += 1;
                    }
                }
                Ok(())
            },
        )
    }
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(bytes);
    h
}

/// What [`fetch_blocks`] got.
#[derive(Debug)]
pub struct FetchedBlocks {
    pub size: u64,
    pub version: String,
    /// The root, in hexadecimal.
    pub root: String,
    pub blocks: Vec<[u8; 32]>,
    /// The blocks asked for, each verified against the tree.
    pub data: Vec<u8>,
}

/// The process tests' view of the two requests (tests/peer_hashes.rs, through
/// `internals`): the tree of `remote` on `addr` and blocks `first..first + count`,
/// verified, fetched by a fresh [`Downloader`] as FETCH does; the error's line
/// otherwise.
pub fn fetch_blocks(
    addr: SocketAddr,
    remote: &str,
    first: u64,
    count: u64,
) -> Result<FetchedBlocks, String> {
    let downloader = Downloader::default();
    let tree = downloader
        .hash_tree(addr, remote)
        .map_err(|e| e.to_string())?;
    let mut data = Vec::new();
    let cancel = AtomicBool::new(false);
    downloader
        .read_blocks(
            addr,
            remote,
            &tree,
            first..first + count,
            &cancel,
            &mut |i, block| {
                if !tree.verify(i, block) {
                    return Err(DownloadError::BadBlock(i));
                }
                data.extend_from_slice(block);
                Ok(())
            },
        )
        .map_err(|e| e.to_string())?;
    Ok(FetchedBlocks {
        size: tree.size,
        version: tree.version.clone(),
        root: tree.root_hex(),
        blocks: tree.blocks.clone(),
        data,
    })
}

/// The reader of a GET_FILE_HASHES or GET_FILE_BLOCK reply on `stream`, past its
/// code 0 (within the header deadline); the error its code means otherwise: 1 not
/// published, 3 `code_3` (hashes not ready, or the file changed), any other refused.
fn after_code(
    stream: &TcpStream,
    code_3: DownloadError,
) -> Result<FieldReader<DeadlineReader<'_>>, DownloadError> {
    let timed = DeadlineReader::new(stream, HEADER_TIMEOUT).with_idle(DOWNLOAD_IDLE_TIMEOUT);
    let mut reader = FieldReader::new(timed);
    match reader.read_u8(Field::Code).map_err(DownloadError::Reply)? {
        CODE_OK => Ok(reader),
        CODE_NOT_FOUND => Err(DownloadError::NotFound),
        CODE_NOT_READY => Err(code_3),
        code => Err(DownloadError::Refused(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::peer::{PeerListener, ServeOptions, SharedFiles};
    use crate::proto::tree::TreeError;
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    /// Polls GET_FILE_HASHES until the tree is ready (code 3 before).
    fn ready_tree(d: &Downloader, addr: SocketAddr, name: &str) -> HashTree {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match d.hash_tree(addr, name) {
                Ok(t) => return t,
                Err(DownloadError::NotReady) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn trees_and_blocks_from_a_listener_and_a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let data: Vec<u8> = (0..2 * BLOCK_SIZE + 100).map(|_| rng.u8(..)).collect();
        std::fs::write(root.join("f"), &data).unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("f", files.resolve("f").unwrap());
        let listener = PeerListener::start(files, ServeOptions::default()).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, listener.port()));
        let d = Downloader::default();
        assert!(d.speaks_blocks(addr).unwrap());
        let tree = ready_tree(&d, addr, "f");
        assert_eq!(
            tree,
            HashTree::compute(&mut &data[..], tree.size, &tree.version).unwrap()
        );
        let cancel = AtomicBool::new(false);
        let mut got = Vec::new();
        d.read_blocks(addr, "f", &tree, 1..3, &cancel, &mut |i, b| {
            assert!(tree.verify(i, b), "block {i}");
            got.push((i, b.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, [(1, BLOCK_SIZE as usize), (2, 100)]);
        let past = d.read_blocks(addr, "f", &tree, 2..4, &cancel, &mut |_, _| Ok(()));
        assert!(
            matches!(past, Err(DownloadError::BlockRange { .. })),
            "{past:?}"
        );
        assert!(matches!(
            d.hash_tree(addr, "g"),
            Err(DownloadError::NotFound)
        ));
        // Rewritten: the old VERSION's blocks are refused, the old tree never given.
        std::fs::write(root.join("f"), b"new").unwrap();
        let changed = d.read_blocks(addr, "f", &tree, 0..1, &cancel, &mut |_, _| Ok(()));
        assert!(
            matches!(changed, Err(DownloadError::Changed)),
            "{changed:?}"
        );
        let new = ready_tree(&d, addr, "f");
        assert_ne!(new.version, tree.version);
        assert_eq!(new.size, 3);
        listener.stop();
    }

    /// A fake peerdex peer: the discovery answered with the three extensions, then
    /// one connection per reply in `replies`, each answered with it whatever it asks.
    fn lying_peer(replies: Vec<Vec<u8>>) -> (SocketAddr, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let answers = std::iter::once(crate::proto::peer::encode_probe_answer());
            for reply in answers.chain(replies) {
                let (mut s, _) = listener.accept().unwrap();
                let mut request = [0u8; 512];
                let _ = s.read(&mut request).unwrap();
                let _ = s.write_all(&reply);
            }
        });
        (addr, peer)
    }

    /// GET_FILE_HASHES replies that lie about `good`: a root that is not the hash of
    /// the hashes; a count past the limit (with the SIZE that would have it), to be
    /// refused on the header, before any hash is read or memory reserved; fewer
    /// hashes than the count, then the close.
    fn lying_trees(good: &HashTree) -> Vec<Vec<u8>> {
        let mut bad_root = vec![0u8];
        bad_root.extend_from_slice(&good.encode());
        *bad_root.last_mut().unwrap() ^= 1;
        let mut huge = vec![0u8];
        let blocks = crate::proto::tree::MAX_BLOCKS + 1;
        huge.extend_from_slice(format!("{}\0v\0{blocks}\0", blocks * BLOCK_SIZE).as_bytes());
        let mut short = vec![0u8];
        short.extend_from_slice(b"5\0v1\x001\0");
        short.extend_from_slice(&[7u8; 40]);
        vec![bad_root, huge, short]
    }

    #[test]
    fn a_lying_peers_tree_or_blocks_are_refused() {
        let good = HashTree::compute(&mut &b"hello"[..], 5, "v1").unwrap();
        let mut replies = lying_trees(&good);
        // Blocks: one byte short of the block, then the close; then code 3.
        replies.extend([b"\0hell".to_vec(), vec![3]]);
        let (addr, peer) = lying_peer(replies);
        let d = Downloader::default();
        let tree = |d: &Downloader| d.hash_tree(addr, "f");
        assert!(matches!(
            tree(&d),
            Err(DownloadError::Tree(TreeError::Root))
        ));
        let got = tree(&d);
        assert!(
            matches!(got, Err(DownloadError::Tree(TreeError::TooMany { .. }))),
            "{got:?}"
        );
        let got = tree(&d);
        assert!(
            matches!(
                got,
                Err(DownloadError::Short {
                    expected: 64,
                    received: 40
                })
            ),
            "{got:?}"
        );
        let cancel = AtomicBool::new(false);
        let mut calls = 0;
        let mut read = |d: &Downloader| {
            d.read_blocks(addr, "f", &good, 0..1, &cancel, &mut |_, _| {
                calls += 1;
                Ok(())
            })
        };
        let got = read(&d);
        assert!(
            matches!(
                got,
                Err(DownloadError::Short {
                    expected: 5,
                    received: 4
                })
            ),
            "{got:?}"
        );
        assert!(matches!(read(&d), Err(DownloadError::Changed)));
        assert_eq!(calls, 0, "a partial block was handed out");
        peer.join().unwrap();
    }

    #[test]
    fn a_peer_that_does_not_speak_blocks_is_never_asked() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // An older peerdex peer: it answers the discovery with GET_FILE_RANGE alone.
        let probe = listener.try_clone().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = probe.accept().unwrap();
            let mut request = [0u8; 64];
            let _ = s.read(&mut request).unwrap();
            s.write_all(b"\0peerdex GET_FILE_RANGE\0").unwrap();
        });
        let d = Downloader::default();
        assert!(!d.speaks_blocks(addr).unwrap());
        assert!(matches!(
            d.hash_tree(addr, "f"),
            Err(DownloadError::NoBlocks)
        ));
        let tree = HashTree::compute(&mut &b"x"[..], 1, "v").unwrap();
        let cancel = AtomicBool::new(false);
        let r = d.read_blocks(addr, "f", &tree, 0..1, &cancel, &mut |_, _| Ok(()));
        assert!(matches!(r, Err(DownloadError::NoBlocks)));
        peer.join().unwrap();
        // No connection after the discovery (one would wait in the backlog).
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "a second connection was made");
    }
}
