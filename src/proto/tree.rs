//! Content hashes of a published file (docs/PROTOCOL.md, "GET_FILE_HASHES"): the
//! SHA-256 of each 1 MiB block, and the root that names the whole content.
//!
//! Owns: the block size and its limits, computing a tree from a reader, checking a
//! block against it, and the tree's encoding (the body of a GET_FILE_HASHES reply
//! after its code 0, and of the peer's cache file) with a bounded decoder. Does not
//! own: reading files or sockets (`client::peer`), the requests (`peer`).
//!
//! Block `i` covers bytes `[i * BLOCK_SIZE, min(size, (i + 1) * BLOCK_SIZE))`, so
//! every block but the last is whole. The root is the SHA-256 of the block hashes
//! concatenated in order; an empty file has no block and the root of no bytes.

use std::fmt::Write as _;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::proto::peer::read_version;
use crate::proto::wire::{Field, FieldReader, WireError, put_number, put_str};

/// Bytes per block: 1 MiB.
pub(crate) const BLOCK_SIZE: u64 = 1 << 20;

/// Most blocks a tree may have: files up to 1 TiB (32 MiB of hashes).
pub(crate) const MAX_BLOCKS: u64 = 1 << 20;

/// One SHA-256 digest.
pub(crate) type Hash = [u8; 32];

/// The hashes of one content (SIZE and VERSION) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HashTree {
    pub(crate) size: u64,
    pub(crate) version: String,
    pub(crate) blocks: Vec<Hash>,
    pub(crate) root: Hash,
}

/// Why an encoded tree was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    /// A field is missing, malformed, or did not arrive in time.
    #[error("{0}")]
    Wire(#[source] WireError),
    /// More blocks than any file may have.
    #[error("{count} blocks, more than the {MAX_BLOCKS} allowed")]
    TooMany { count: u64 },
    /// The block count is not the one SIZE gives.
    #[error("{count} blocks for {size} bytes, which have {expected}")]
    Count {
        size: u64,
        count: u64,
        expected: u64,
    },
    /// The root is not the hash of the block hashes.
    #[error("the root does not match the block hashes")]
    Root,
}

impl From<WireError> for TreeError {
    fn from(e: WireError) -> Self {
        TreeError::Wire(e)
    }
}

/// How many blocks a file of `size` bytes has.
pub(crate) fn blocks_of(size: u64) -> u64 {
    size.div_ceil(BLOCK_SIZE)
}

/// The root of a list of block hashes.
fn root_of(blocks: &[Hash]) -> Hash {
    let mut h = Sha256::new();
    for b in blocks {
        h.update(b);
    }
    h.finalize().into()
}

impl HashTree {
    /// Hashes the `size` bytes `r` yields, one block at a time (one 1 MiB buffer,
    /// whatever the size). Fails if `r` ends before `size` bytes, or `size` is past
    /// [`MAX_BLOCKS`] blocks.
    pub(crate) fn compute(r: &mut impl Read, size: u64, version: &str) -> io::Result<HashTree> {
        let count = blocks_of(size);
        if count > MAX_BLOCKS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{size} bytes: more than {MAX_BLOCKS} blocks"),
            ));
        }
        let mut buf = vec![0u8; BLOCK_SIZE as usize];
        let mut blocks = Vec::with_capacity(count as usize);
        let mut left = size;
        while left > 0 {
            let len = left.min(BLOCK_SIZE) as usize;
            r.read_exact(&mut buf[..len])?;
            blocks.push(Sha256::digest(&buf[..len]).into());
            left -= len as u64;
        }
        Ok(HashTree {
            size,
            version: version.to_owned(),
            root: root_of(&blocks),
            blocks,
        })
    }

    /// A tree from its parts as received: the count must be the one `size` gives,
    /// and `root` the hash of `blocks`.
    pub(crate) fn from_parts(
        size: u64,
        version: String,
        blocks: Vec<Hash>,
        root: Hash,
    ) -> Result<HashTree, TreeError> {
        let tree = HashTree {
            size,
            version,
            blocks,
            root,
        };
        tree.check()?;
        Ok(tree)
    }

    /// Whether the tree holds together: as many blocks as its size gives, and a root
    /// that is the hash of its block hashes.
    pub(crate) fn check(&self) -> Result<(), TreeError> {
        check_count(self.size, self.blocks.len() as u64)?;
        if root_of(&self.blocks) != self.root {
            return Err(TreeError::Root);
        }
        Ok(())
    }

    pub(crate) fn block_count(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Offset and length of block `index`: the last block may be short; past the
    /// last block, `(size, 0)`.
    pub(crate) fn span(&self, index: u64) -> (u64, u64) {
        let offset = index.saturating_mul(BLOCK_SIZE).min(self.size);
        (offset, (self.size - offset).min(BLOCK_SIZE))
    }

    /// Whether `data` is block `index`: its length and its SHA-256.
    pub(crate) fn verify(&self, index: u64, data: &[u8]) -> bool {
        let Some(want) = self.blocks.get(index as usize) else {
            return false;
        };
        data.len() as u64 == self.span(index).1 && Sha256::digest(data)[..] == want[..]
    }

    /// The root as 64 lowercase hexadecimal digits.
    pub(crate) fn root_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.root {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// The encoded tree: `SIZE\0VERSION\0COUNT\0`, the block hashes, the root (the
    /// reply to GET_FILE_HASHES after its code 0).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.version.len() + 32 * (self.blocks.len() + 1));
        put_number(&mut out, self.size);
        put_str(&mut out, &self.version);
        put_number(&mut out, self.block_count());
        for b in &self.blocks {
            out.extend_from_slice(b);
        }
        out.extend_from_slice(&self.root);
        out
    }
}

/// Refuses a block count that is not the one `size` gives, or past [`MAX_BLOCKS`].
fn check_count(size: u64, count: u64) -> Result<(), TreeError> {
    if count > MAX_BLOCKS {
        return Err(TreeError::TooMany { count });
    }
    let expected = blocks_of(size);
    if count != expected {
        return Err(TreeError::Count {
            size,
            count,
            expected,
        });
    }
    Ok(())
}

/// The fields of an encoded tree before its hashes: SIZE, VERSION and the block
/// count, checked (count at most [`MAX_BLOCKS`] and the one SIZE gives).
pub(crate) fn read_tree_header<R: Read>(
    r: &mut FieldReader<R>,
) -> Result<(u64, String, u64), TreeError> {
    let size = r.read_number(Field::Size)?;
    let version = read_version(r)?;
    let count = r.read_number(Field::Count)?;
    check_count(size, count)?;
    Ok((size, version, count))
}

/// Decodes a whole encoded tree (see [`HashTree::encode`]). Memory grows with the
/// hashes that actually arrive, never with what the count claims.
pub(crate) fn read_tree<R: Read>(r: &mut FieldReader<R>) -> Result<HashTree, TreeError> {
    let (size, version, count) = read_tree_header(r)?;
    let mut blocks = Vec::new();
    for _ in 0..count {
        let mut h = [0u8; 32];
        r.read_raw(Field::Hashes, &mut h)?;
        blocks.push(h);
    }
    let mut root = [0u8; 32];
    r.read_raw(Field::Hashes, &mut root)?;
    HashTree::from_parts(size, version, blocks, root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `size` bytes of noise from `seed`.
    fn noise(size: u64, seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..size).map(|_| rng.u8(..)).collect()
    }

    fn tree_of(data: &[u8], version: &str) -> HashTree {
        HashTree::compute(&mut &data[..], data.len() as u64, version).unwrap()
    }

    fn decode(bytes: &[u8]) -> Result<HashTree, TreeError> {
        read_tree(&mut FieldReader::new(bytes))
    }

    #[test]
    fn blocks_are_whole_but_the_last_and_the_root_hashes_the_hashes() {
        let empty = tree_of(b"", "v");
        assert_eq!(empty.block_count(), 0);
        assert_eq!(empty.root[..], Sha256::digest(b"")[..]);
        assert_eq!(
            empty.root_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let data = noise(2 * BLOCK_SIZE + 5, 1);
        let t = tree_of(&data, "v1");
        assert_eq!(t.block_count(), 3);
        assert_eq!(t.span(0), (0, BLOCK_SIZE));
        assert_eq!(t.span(2), (2 * BLOCK_SIZE, 5));
        assert_eq!(t.span(3), (t.size, 0));
        assert_eq!(t.blocks[2][..], Sha256::digest(&data[2 << 20..])[..]);
        let mut cat = Vec::new();
        for b in &t.blocks {
            cat.extend_from_slice(b);
        }
        assert_eq!(t.root[..], Sha256::digest(&cat)[..]);
        assert!(t.verify(2, &data[2 << 20..]));
        assert!(!t.verify(2, &data[(2 << 20) + 1..]));
        assert!(!t.verify(3, b""));
        assert_eq!(t.root_hex().len(), 64);
        assert_eq!(blocks_of(BLOCK_SIZE), 1);
        assert_eq!(blocks_of(BLOCK_SIZE + 1), 2);
    }

    #[test]
    fn a_short_reader_or_a_huge_size_is_an_error() {
        let data = noise(10, 2);
        assert!(HashTree::compute(&mut &data[..], 11, "v").is_err());
        let huge = MAX_BLOCKS * BLOCK_SIZE + 1;
        assert!(HashTree::compute(&mut &data[..], huge, "v").is_err());
    }

    #[test]
    fn the_decoder_refuses_wrong_counts_roots_and_truncation() {
        let t = tree_of(&noise(BLOCK_SIZE + 1, 3), "v1");
        let bytes = t.encode();
        assert_eq!(decode(&bytes).unwrap(), t);
        // The count SIZE does not give, or more than any file has.
        let mut wrong = t.clone();
        wrong.blocks.pop();
        assert!(matches!(
            decode(&wrong.encode()),
            Err(TreeError::Count { expected: 2, .. })
        ));
        let mut huge = b"0\0v\0".to_vec();
        put_number(&mut huge, MAX_BLOCKS + 1);
        assert!(matches!(decode(&huge), Err(TreeError::TooMany { .. })));
        // A root that is not the hashes'.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(decode(&bad), Err(TreeError::Root)));
        for cut in [0, 3, bytes.len() - 33, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "{cut}");
        }
        // A version with a space is not one.
        assert!(decode(b"0\0a b\x000\0").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn encoding_round_trips(size in 0..3 * BLOCK_SIZE + 9, seed: u64, v in "[!-~]{1,40}") {
            let t = tree_of(&noise(size, seed), &v);
            prop_assert_eq!(decode(&t.encode()).unwrap(), t);
        }

        /// Any flipped bits in the encoding are refused by the decoder, or give a tree
        /// under which the true content fails `verify` or whose VERSION the peer
        /// refuses.
        #[test]
        fn corruption_is_refused_or_detected(
            size in 0..2 * BLOCK_SIZE + 9,
            seed: u64,
            at: prop::sample::Index,
            mask in 1..=255u8,
        ) {
            let data = noise(size, seed);
            let t = tree_of(&data, "1-2-3");
            let mut bytes = t.encode();
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
            if let Ok(got) = decode(&bytes) {
                let blocks_ok = got.block_count() == t.block_count()
                    && (0..t.block_count()).all(|b| {
                        let (off, len) = t.span(b);
                        got.verify(b, &data[off as usize..(off + len) as usize])
                    });
                prop_assert!(got.version != t.version || !blocks_ok || got.size != t.size);
                prop_assert!(got != t);
            }
        }

        /// A block with any byte changed fails `verify`.
        #[test]
        fn a_changed_block_fails_verify(size in 1..2 * BLOCK_SIZE + 9, seed: u64, at: prop::sample::Index, mask in 1..=255u8) {
            let mut data = noise(size, seed);
            let t = tree_of(&data, "v");
            let i = at.index(data.len());
            data[i] ^= mask;
            let b = i as u64 / BLOCK_SIZE;
            let (off, len) = t.span(b);
            prop_assert!(!t.verify(b, &data[off as usize..(off + len) as usize]));
        }
    }

    /// How long the tree of 1 GiB takes (docs/DESIGN.md, "Blocks and hashes"):
    /// `cargo test --release --lib proto::tree::tests::one_gib -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn one_gib() {
        let data = noise(BLOCK_SIZE, 4);
        struct Repeat<'a>(&'a [u8], usize);
        impl Read for Repeat<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = out.len().min(self.0.len() - self.1);
                out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 = (self.1 + n) % self.0.len();
                Ok(n)
            }
        }
        let started = std::time::Instant::now();
        let t = HashTree::compute(&mut Repeat(&data, 0), 1 << 30, "v").unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "tree of 1 GiB in memory: {secs:.3} s ({:.0} MiB/s), {} blocks",
            1024.0 / secs,
            t.block_count()
        );
        assert_eq!(t.block_count(), 1024);
        // The same from a sparse 1 GiB file: the read system calls come on top.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let started = std::time::Instant::now();
        let mut file = std::fs::File::open(&path).unwrap();
        let t = HashTree::compute(&mut file, 1 << 30, "v").unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "tree of a sparse 1 GiB file: {secs:.3} s ({:.0} MiB/s)",
            1024.0 / secs
        );
        assert_eq!(t.block_count(), 1024);
    }
}
