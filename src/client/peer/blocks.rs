//! Hash trees and blocks from a peerdex peer (docs/PROTOCOL.md, "GET_FILE_HASHES"
//! and "GET_FILE_BLOCK"): what a download from several owners is built on.
//!
//! Both requests go only to a peer whose discovery answer named them (`speaks`): a
//! statement peer, or a peerdex peer from before them, never sees one
//! ([`DownloadError::NoBlocks`] instead). Each uses the downloader's connect, header
//! deadline, idle timeout, minimum rate and cancel flag (`download`).

use std::net::SocketAddr;
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
        let timed = DeadlineReader::new(&stream, HEADER_TIMEOUT).with_idle(DOWNLOAD_IDLE_TIMEOUT);
        let mut reader = FieldReader::new(timed);
        match reader.read_u8(Field::Code).map_err(DownloadError::Reply)? {
            CODE_OK => {}
            CODE_NOT_FOUND => return Err(DownloadError::NotFound),
            CODE_NOT_READY => return Err(DownloadError::NotReady),
            code => return Err(DownloadError::Refused(code)),
        }
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
    #[expect(
        clippy::too_many_arguments,
        reason = "the signature multi codes against"
    )]
    pub(crate) fn read_blocks(
        &self,
        addr: SocketAddr,
        remote: &str,
        tree: &HashTree,
        first: u64,
        count: u64,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError> {
        let blocks = tree.block_count();
        let end = first
            .checked_add(count)
            .filter(|&end| end <= blocks)
            .ok_or(DownloadError::BlockRange {
                first,
                count,
                blocks,
            })?;
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
        let timed = DeadlineReader::new(&stream, HEADER_TIMEOUT).with_idle(DOWNLOAD_IDLE_TIMEOUT);
        let mut reader = FieldReader::new(timed);
        match reader.read_u8(Field::Code).map_err(DownloadError::Reply)? {
            CODE_OK => {}
            CODE_NOT_FOUND => return Err(DownloadError::NotFound),
            CODE_NOT_READY => return Err(DownloadError::Changed),
            code => return Err(DownloadError::Refused(code)),
        }
        let (_, head) = reader.into_parts();
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
            first,
            count,
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
