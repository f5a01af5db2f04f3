//! The local side of a multi-source FETCH (`client::swarm`): the hidden partial file
//! of `download` written block by block at each block's offset, and the record of
//! the blocks verified so far, so a later FETCH of the same content resumes block by
//! block, from any owners of it.
//!
//! Files beside the target `DIR/NAME` (the partial and its lock are `download`'s):
//! - `DIR/.NAME.peerdex-partial`: the file's bytes at their offsets, holes where a
//!   block has not arrived; renamed to `DIR/NAME` when every block is verified.
//! - `DIR/.NAME.peerdex-partial.blocks`: the record: a magic line, the root of the
//!   hash tree, the size, and a bitmap of the verified blocks in hex. At most
//!   [`MAX_RECORD`] bytes are read back; a record of another root or size is
//!   ignored. It is never trusted: every block it names is read back and verified
//!   against the tree before it counts (a bit flipped by hand, or bytes edited in
//!   the partial, only cost a download of that block).
//!
//! A range download's `.info` does not survive a block download (the partial is no
//! longer a prefix); without a record, the whole blocks the partial holds are
//! verified instead, so a prefix a GET_FILE_RANGE left is not lost either.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::download::{Beside, DownloadError, check_space};
use super::open::read_state_text;
use crate::proto::tree::{HashTree, MAX_BLOCKS};

/// First line of a block record: its format and version.
const RECORD_MAGIC: &str = "peerdex-blocks 1";

/// Longest block record read back: the bitmap of [`MAX_BLOCKS`] blocks in hex, and
/// the short lines before it.
const MAX_RECORD: u64 = MAX_BLOCKS / 4 + 4096;

/// The record is rewritten at most this often while blocks arrive (and once more at
/// the end): a record lost in a crash costs at most this long of downloading.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Which blocks are verified in the partial file.
struct Have {
    bits: Vec<u8>,
    blocks: u64,
    bytes: u64,
    saved: Instant,
}

impl Have {
    fn new(count: u64) -> Have {
        Have {
            bits: vec![0; count.div_ceil(8) as usize],
            blocks: 0,
            bytes: 0,
            saved: Instant::now(),
        }
    }

    fn has(&self, i: u64) -> bool {
        self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    /// Marks block `i` of `len` bytes; false when it already was.
    fn set(&mut self, i: u64, len: u64) -> bool {
        if self.has(i) {
            return false;
        }
        self.bits[(i / 8) as usize] |= 1 << (i % 8);
        self.blocks += 1;
        self.bytes += len;
        true
    }
}

/// The partial file of one multi-source FETCH, locked while it is open.
pub(crate) struct BlockFile {
    beside: Beside,
    file: File,
    tree: HashTree,
    have: Mutex<Have>,
}

impl BlockFile {
    /// Opens (locks) the partial beside `target` for the content `tree` describes,
    /// keeping the blocks it already holds that verify, and checks the free space for
    /// the rest.
    pub(crate) fn open(target: &Path, tree: &HashTree) -> Result<BlockFile, DownloadError> {
        let beside = Beside::new(target);
        let file = beside.open_partial()?;
        let local = beside.local_err(&beside.partial);
        let len = file.metadata().map_err(&local)?.len();
        let candidates = match read_record(&beside, tree) {
            Some(bits) => bits,
            None => whole_blocks_below(tree, len),
        };
        let block = BlockFile {
            have: Mutex::new(Have::new(tree.block_count())),
            tree: tree.clone(),
            beside,
            file,
        };
        block.reverify(&candidates, len)?;
        let _ = std::fs::remove_file(&block.beside.info);
        let kept = block.have.lock().bytes;
        check_space(
            &block.beside.dir,
            tree.size - kept,
            len.saturating_sub(tree.size),
        )?;
        block.file.set_len(tree.size).map_err(&local)?;
        block.save()?;
        Ok(block)
    }

    /// Reads back each candidate block below `len` and counts those that verify.
    fn reverify(&self, candidates: &[u8], len: u64) -> Result<(), DownloadError> {
        let mut buf = Vec::new();
        let mut have = self.have.lock();
        for i in 0..self.tree.block_count() {
            if candidates
                .get((i / 8) as usize)
                .is_none_or(|b| b & (1 << (i % 8)) == 0)
            {
                continue;
            }
            let (offset, size) = self.tree.span(i);
            if offset + size > len {
                continue;
            }
            buf.resize(size as usize, 0);
            if self.file.read_exact_at(&mut buf, offset).is_ok() && self.tree.verify(i, &buf) {
                have.set(i, size);
            }
        }
        Ok(())
    }

    /// The blocks not verified yet, in order.
    pub(crate) fn missing(&self) -> Vec<u64> {
        let have = self.have.lock();
        (0..self.tree.block_count())
            .filter(|&i| !have.has(i))
            .collect()
    }

    /// Whether block `i` is verified.
    pub(crate) fn has(&self, i: u64) -> bool {
        self.have.lock().has(i)
    }

    /// Verified blocks and their bytes.
    pub(crate) fn verified(&self) -> (u64, u64) {
        let have = self.have.lock();
        (have.blocks, have.bytes)
    }

    /// Writes block `index` (already verified by the caller) at its offset and
    /// records it; a block verified already is left as it is. Any thread may call it.
    pub(crate) fn put(&self, index: u64, data: &[u8]) -> Result<(), DownloadError> {
        if self.has(index) {
            return Ok(());
        }
        let (offset, _) = self.tree.span(index);
        self.file
            .write_all_at(data, offset)
            .map_err(self.beside.local_err(&self.beside.partial))?;
        let due = {
            let mut have = self.have.lock();
            have.set(index, data.len() as u64);
            have.saved.elapsed() >= SAVE_EVERY
        };
        if due { self.save() } else { Ok(()) }
    }

    /// Rewrites the record whole (a temporary file renamed over it).
    pub(crate) fn save(&self) -> Result<(), DownloadError> {
        let text = {
            let mut have = self.have.lock();
            have.saved = Instant::now();
            render_record(&self.tree, &have.bits)
        };
        let beside = &self.beside;
        let local_err = beside.local_err(&beside.record);
        let name = beside
            .record
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempfile_in(&beside.dir)
            .map_err(&local_err)?;
        temp.write_all(text.as_bytes()).map_err(&local_err)?;
        temp.persist(&beside.record)
            .map_err(|e| local_err(e.error))?;
        Ok(())
    }

    /// Renames the partial into place once every block is verified (else saves the
    /// record and leaves it). True when renamed.
    pub(crate) fn finish(&self) -> Result<bool, DownloadError> {
        let complete = self.have.lock().blocks == self.tree.block_count();
        if !complete {
            self.save()?;
            return Ok(false);
        }
        let beside = &self.beside;
        std::fs::rename(&beside.partial, &beside.target)
            .map_err(beside.local_err(&beside.target))?;
        let _ = std::fs::remove_file(&beside.record);
        let _ = std::fs::remove_file(&beside.info);
        Ok(true)
    }

    /// Removes the partial and its record (nothing was verified: nothing to keep).
    pub(crate) fn discard(&self) {
        self.beside.forget();
    }
}

/// Every block lying wholly below `len`, as a bitmap.
fn whole_blocks_below(tree: &HashTree, len: u64) -> Vec<u8> {
    let mut bits = vec![0u8; tree.block_count().div_ceil(8) as usize];
    for i in 0..tree.block_count() {
        let (offset, size) = tree.span(i);
        if offset + size <= len {
            bits[(i / 8) as usize] |= 1 << (i % 8);
        }
    }
    bits
}

fn render_record(tree: &HashTree, bits: &[u8]) -> String {
    let mut text = format!(
        "{RECORD_MAGIC}\nroot {}\nsize {}\nhave ",
        tree.root_hex(),
        tree.size
    );
    for b in bits {
        text.push_str(&format!("{b:02x}"));
    }
    text.push('\n');
    text
}

/// The bitmap of the record beside the partial, when there is one for this root and
/// size, of the right length.
fn read_record(beside: &Beside, tree: &HashTree) -> Option<Vec<u8>> {
    parse_record(&read_state_text(&beside.record, MAX_RECORD)?, tree)
}

fn parse_record(text: &str, tree: &HashTree) -> Option<Vec<u8>> {
    let mut lines = text.lines();
    if lines.next()? != RECORD_MAGIC {
        return None;
    }
    let mut field = |key: &str| lines.next()?.strip_prefix(key)?.strip_prefix(' ');
    let root = field("root")?;
    let size: u64 = field("size")?.parse().ok()?;
    let hex = field("have")?;
    let want = tree.block_count().div_ceil(8) as usize;
    if root != tree.root_hex() || size != tree.size || hex.len() != want * 2 {
        return None;
    }
    (0..want)
        .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(data: &[u8]) -> HashTree {
        HashTree::compute(&mut &data[..], data.len() as u64, "v1").unwrap()
    }

    fn content(blocks: u64, tail: u64) -> Vec<u8> {
        let len = blocks * crate::proto::tree::BLOCK_SIZE + tail;
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
            .collect()
    }

    #[test]
    fn records_round_trip_and_refuse_other_content() {
        let data = content(9, 5);
        let tree = tree_of(&data);
        let bits = vec![0b1010_0001, 0b1];
        let text = render_record(&tree, &bits);
        assert_eq!(parse_record(&text, &tree), Some(bits.clone()));
        let other = tree_of(&content(9, 6));
        assert_eq!(parse_record(&text, &other), None);
        assert_eq!(
            parse_record(&text.replace("have a1", "have a"), &tree),
            None
        );
        assert_eq!(
            parse_record(&text.replace("have a1", "have zz"), &tree),
            None
        );
        assert_eq!(parse_record("", &tree), None);
    }

    #[test]
    fn resumes_only_blocks_that_verify_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        let data = content(4, 100);
        let tree = tree_of(&data);
        let file = BlockFile::open(&target, &tree).unwrap();
        assert_eq!(file.missing(), [0, 1, 2, 3, 4]);
        for i in [1, 3, 4] {
            let (o, l) = tree.span(i);
            file.put(i, &data[o as usize..(o + l) as usize]).unwrap();
        }
        assert!(!file.finish().unwrap(), "not complete");
        drop(file);
        // Block 3 edited on disk, and the record claiming block 0 too: neither counts.
        let partial = dir.path().join(".f.peerdex-partial");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .unwrap();
        f.write_all_at(b"junk", 3 << 20).unwrap();
        let record = dir.path().join(".f.peerdex-partial.blocks");
        let text = std::fs::read_to_string(&record).unwrap();
        std::fs::write(&record, text.replace("have 1a", "have 1b")).unwrap();
        let file = BlockFile::open(&target, &tree).unwrap();
        assert_eq!(file.missing(), [0, 2, 3]);
        assert_eq!(file.verified().0, 2);
        for i in [0, 2, 3] {
            let (o, l) = tree.span(i);
            file.put(i, &data[o as usize..(o + l) as usize]).unwrap();
        }
        assert!(file.finish().unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert!(!record.exists() && !partial.exists());
    }

    #[test]
    fn a_prefix_without_a_record_is_verified_block_by_block() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        let data = content(3, 7);
        let tree = tree_of(&data);
        // A GET_FILE_RANGE prefix of 2.5 blocks: two whole blocks count.
        std::fs::write(dir.path().join(".f.peerdex-partial"), &data[..5 << 19]).unwrap();
        let file = BlockFile::open(&target, &tree).unwrap();
        assert_eq!(file.missing(), [2, 3]);
        // A file of another content: nothing counts.
        drop(file);
        let other = tree_of(&vec![7u8; data.len()]);
        let file = BlockFile::open(&target, &other).unwrap();
        assert_eq!(file.missing(), [0, 1, 2, 3]);
    }
}
