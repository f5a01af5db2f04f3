//! The hash trees of the published files (docs/DESIGN.md, "Blocks and hashes"):
//! computed by one background thread, held in a table for the listener, and cached
//! on disk across sessions.
//!
//! The listener never hashes: it asks [`Hashes::get`] for the tree of the VERSION it
//! just opened, and answers 3 (not ready) while there is none. A name is queued when
//! it is published (and when it is served again at CONNECT), and again whenever a
//! request finds the file at another VERSION than its tree's. The queue is bounded
//! ([`QUEUE`]); a name that does not fit is queued by the next request for it.
//!
//! Cache: `STATE/hashes/<sha256(name)>.tree`, holding [`CACHE_MAGIC`], the name, and
//! the encoded tree (`proto::tree`). A cache file is used only when its name and
//! VERSION are the file's; one that is not a regular file of this client or does not
//! decode is ignored and replaced. Written to a temporary file renamed over it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::files::{SharedFiles, open_state_file};
use crate::proto::tree::{HashTree, MAX_BLOCKS, read_tree};
use crate::proto::wire::{Field, FieldReader, MAX_FIELD, put_str};

/// Names waiting for their tree at most.
const QUEUE: usize = 1024;

/// First field of a cache file: its format and version.
const CACHE_MAGIC: &str = "peerdex-tree 1";

/// Largest cache file read: the hashes of the largest file ([`MAX_BLOCKS`] of 32
/// bytes and the root) and room for the fields before them.
const MAX_CACHE_BYTES: u64 = (MAX_BLOCKS + 1) * 32 + 1024;

/// A tree ready to serve: the tree and its encoding (the GET_FILE_HASHES reply after
/// its code 0), made once.
#[derive(Clone)]
pub(super) struct Ready {
    pub(super) tree: Arc<HashTree>,
    pub(super) encoded: Arc<[u8]>,
}

impl Ready {
    fn new(tree: HashTree) -> Ready {
        Ready {
            encoded: tree.encode().into(),
            tree: Arc::new(tree),
        }
    }
}

enum Slot {
    /// Queued or being computed.
    Pending,
    Ready(Ready),
}

type Table = Arc<Mutex<HashMap<String, Slot>>>;

/// The trees of one table of shared files, and the queue of their worker.
pub(super) struct Hashes {
    table: Table,
    queue: Sender<String>,
    cache: Option<PathBuf>,
}

impl Hashes {
    /// Starts the worker for `files` (which own this), caching under `cache` when
    /// given. The worker ends when `files` is dropped.
    pub(super) fn start(files: Weak<SharedFiles>, cache: Option<PathBuf>) -> Hashes {
        let (queue, jobs) = crossbeam_channel::bounded(QUEUE);
        let table = Table::default();
        let worker = Worker {
            files,
            cache: cache.clone(),
            table: Arc::clone(&table),
        };
        if let Err(e) = std::thread::Builder::new()
            .name("peer-hashes".into())
            .spawn(move || worker.run(&jobs))
        {
            log::warn!("no hash trees this session: cannot start their thread: {e}");
        }
        Hashes {
            table,
            queue,
            cache,
        }
    }

    /// Queues `name` for its tree (it was just published), unless it is queued.
    pub(super) fn want(&self, name: &str) {
        let mut table = self.table.lock();
        if !matches!(table.get(name), Some(Slot::Pending)) {
            self.enqueue(&mut table, name);
        }
    }

    /// The tree of `name` at `version`, when ready; otherwise `None`, with `name`
    /// queued unless it is already (a tree of another VERSION is never returned).
    pub(super) fn get(&self, name: &str, version: &str) -> Option<Ready> {
        let mut table = self.table.lock();
        match table.get(name) {
            Some(Slot::Ready(r)) if r.tree.version == version => return Some(r.clone()),
            Some(Slot::Pending) => return None,
            _ => {}
        }
        self.enqueue(&mut table, name);
        None
    }

    fn enqueue(&self, table: &mut HashMap<String, Slot>, name: &str) {
        match self.queue.try_send(name.to_owned()) {
            Ok(()) => {
                table.insert(name.to_owned(), Slot::Pending);
            }
            Err(TrySendError::Full(_)) => {
                log::info!("hashes of {name}: {QUEUE} files queued already: later");
                table.remove(name);
            }
            Err(TrySendError::Disconnected(_)) => {
                table.remove(name);
            }
        }
    }

    /// Forgets the tree of `name` (no longer published: DELETE), and removes its
    /// cache file, so the cache holds no more than what is published.
    pub(super) fn forget(&self, name: &str) {
        self.table.lock().remove(name);
        if let Some(dir) = &self.cache {
            let path = cache_path(dir, name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    log::info!("{}: not removed: {e}", path.display());
                }
                _ => {}
            }
        }
    }

    /// Forgets every tree.
    pub(super) fn clear(&self) {
        self.table.lock().clear();
    }
}

/// The background thread's share.
struct Worker {
    files: Weak<SharedFiles>,
    cache: Option<PathBuf>,
    table: Table,
}

impl Worker {
    fn run(&self, jobs: &Receiver<String>) {
        for name in jobs {
            let ready = self.tree_of(&name).map(Ready::new);
            let mut table = self.table.lock();
            // Only a name still waiting gets it (not one deleted meanwhile).
            if matches!(table.get(&name), Some(Slot::Pending)) {
                match ready {
                    Some(r) => table.insert(name, Slot::Ready(r)),
                    None => table.remove(&name),
                };
            }
        }
    }

    /// The tree of the current content of `name`: from the cache, or computed (and
    /// cached). `None` when the file cannot be served or changed while hashed.
    fn tree_of(&self, name: &str) -> Option<HashTree> {
        let opened = self.files.upgrade()?.open(name).ok()?;
        let path = self.cache.as_ref().map(|dir| cache_path(dir, name));
        if let Some(tree) = path.as_ref().and_then(|p| read_cache(p, name))
            && tree.version == opened.version
        {
            log::debug!("hashes of {name}: from the cache");
            return Some(tree);
        }
        let started = Instant::now();
        let mut reader = Abandon {
            file: &opened.file,
            files: &self.files,
        };
        let tree = match HashTree::compute(&mut reader, opened.size, &opened.version) {
            Ok(t) if opened.unchanged().unwrap_or(false) => t,
            Ok(_) => {
                log::info!("hashes of {name}: the file changed while hashed: later");
                return None;
            }
            Err(e) => {
                log::info!("hashes of {name}: {e}");
                return None;
            }
        };
        log::info!(
            "hashes of {name}: {} blocks in {:.3} s",
            tree.block_count(),
            started.elapsed().as_secs_f64()
        );
        if let Some(p) = &path
            && let Err(e) = write_cache(p, name, &tree)
        {
            log::warn!("hashes of {name}: not cached in {}: {e}", p.display());
        }
        Some(tree)
    }
}

/// Reads an opened file for hashing, and stops once the table of shared files is
/// gone (the session ended): a large file is not read to its end for nothing.
struct Abandon<'a> {
    file: &'a std::fs::File,
    files: &'a Weak<SharedFiles>,
}

impl Read for Abandon<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.files.strong_count() == 0 {
            return Err(io::Error::other("abandoned: the session ended"));
        }
        self.file.read(buf)
    }
}

/// Where the tree of `name` is cached: `DIR/<sha256(name) in hex>.tree`.
fn cache_path(dir: &Path, name: &str) -> PathBuf {
    let mut file = String::with_capacity(69);
    for b in Sha256::digest(name.as_bytes()) {
        let _ = write!(file, "{b:02x}");
    }
    file.push_str(".tree");
    dir.join(file)
}

/// The tree cached at `path` for `name`, if there is a valid one.
fn read_cache(path: &Path, name: &str) -> Option<HashTree> {
    let file = match open_state_file(path) {
        Ok(f) => f?,
        Err(e) => {
            log::info!("{}: ignored: {e}", path.display());
            return None;
        }
    };
    let mut r = FieldReader::new(file.take(MAX_CACHE_BYTES));
    let head = r
        .read_bytes(Field::Op, 64)
        .map(|m| m == CACHE_MAGIC.as_bytes())
        .and_then(|ok| Ok(ok && r.read_bytes(Field::File, MAX_FIELD)? == name.as_bytes()));
    match head {
        Ok(true) => {}
        _ => {
            log::info!("{}: ignored: not the tree of {name}", path.display());
            return None;
        }
    }
    read_tree(&mut r)
        .map_err(|e| log::info!("{}: ignored: {e}", path.display()))
        .ok()
}

/// Writes the cache file of `name` whole and renames it into place: whatever was at
/// `path` (a link, a FIFO, a corrupt file) is replaced, never written through.
fn write_cache(path: &Path, name: &str, tree: &HashTree) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut head = Vec::new();
    put_str(&mut head, CACHE_MAGIC);
    put_str(&mut head, name);
    let mut temp = tempfile::Builder::new().prefix(".tree.").tempfile_in(dir)?;
    temp.write_all(&head)?;
    temp.write_all(&tree.encode())?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A table of shared files with a cache, publishing `f` with `content`.
    fn published(content: &[u8]) -> (tempfile::TempDir, Arc<SharedFiles>, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), content).unwrap();
        let cache = root.join("state/hashes");
        let files = SharedFiles::with_hash_cache(root.clone(), cache.clone());
        files.insert("f", files.resolve("f").unwrap());
        (dir, files, cache)
    }

    /// Polls the table until the tree of `f` at its current VERSION is ready.
    fn wait_tree(files: &SharedFiles) -> Arc<HashTree> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let opened = files.open("f").unwrap();
            if let Some(r) = files.tree("f", &opened.version) {
                return r.tree;
            }
            assert!(Instant::now() < deadline, "no tree in 60 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_published_file_gets_its_tree_and_a_cache_file() {
        let (_dir, files, cache) = published(b"hello");
        let tree = wait_tree(&files);
        assert_eq!(tree.size, 5);
        assert_eq!(tree.blocks[0][..], Sha256::digest(b"hello")[..]);
        let path = cache_path(&cache, "f");
        assert_eq!(read_cache(&path, "f").as_ref(), Some(&*tree));
        assert_eq!(read_cache(&path, "g"), None);
        // A new table (the next session) takes it from the cache.
        let again = SharedFiles::with_hash_cache(files.local_path(""), cache.clone());
        again.insert("f", files.resolve("f").unwrap());
        assert_eq!(*wait_tree(&again), *tree);
    }

    #[test]
    fn a_new_version_is_hashed_again_and_the_old_tree_is_never_given() {
        let (_dir, files, cache) = published(b"old bytes");
        let old = wait_tree(&files);
        std::fs::write(files.local_path("f"), b"new bytes!").unwrap();
        let opened = files.open("f").unwrap();
        assert_ne!(opened.version, old.version);
        // Asked for the VERSION the file has now, the old tree is never the answer.
        if let Some(r) = files.tree("f", &opened.version) {
            assert_eq!(r.tree.version, opened.version);
        }
        let new = wait_tree(&files);
        assert_eq!(new.version, opened.version);
        assert_eq!(new.blocks[0][..], Sha256::digest(b"new bytes!")[..]);
        assert_eq!(
            read_cache(&cache_path(&cache, "f"), "f").map(|t| t.version),
            Some(opened.version)
        );
    }

    #[test]
    fn a_bad_cache_file_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), b"content").unwrap();
        let cache = root.join("hashes");
        std::fs::create_dir_all(&cache).unwrap();
        let path = cache_path(&cache, "f");
        for bad in ["junk", "fifo", "link", "stale"] {
            let _ = std::fs::remove_file(&path);
            match bad {
                "junk" => std::fs::write(&path, b"peerdex-tree 1\0f\x005\0").unwrap(),
                "fifo" => super::super::files::tests::mkfifo(&path),
                "link" => std::os::unix::fs::symlink(root.join("f"), &path).unwrap(),
                _ => {
                    let stale = HashTree::compute(&mut &b"other"[..], 5, "v0").unwrap();
                    write_cache(&path, "f", &stale).unwrap();
                }
            }
            let files = SharedFiles::with_hash_cache(root.clone(), cache.clone());
            files.insert("f", files.resolve("f").unwrap());
            let tree = wait_tree(&files);
            assert_eq!(tree.blocks[0][..], Sha256::digest(b"content")[..], "{bad}");
            let cached = read_cache(&path, "f");
            assert_eq!(cached.as_ref(), Some(&*tree), "{bad}");
            assert!(std::fs::symlink_metadata(&path).unwrap().is_file(), "{bad}");
        }
        // The file the link pointed to is untouched.
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"content");
    }

    #[test]
    fn a_deleted_name_has_no_tree_nor_cache_file_and_the_queue_is_bounded() {
        let (_dir, files, cache) = published(b"x");
        wait_tree(&files);
        assert!(cache_path(&cache, "f").is_file());
        files.remove("f");
        assert!(!cache_path(&cache, "f").exists());
        // CONNECT's clear keeps the cache for the names served again.
        files.insert("f", files.resolve("f").unwrap());
        wait_tree(&files);
        files.clear();
        assert!(cache_path(&cache, "f").is_file());
        let (queue, _jobs) = crossbeam_channel::bounded(1);
        let hashes = Hashes {
            table: Table::default(),
            queue,
            cache: None,
        };
        assert!(hashes.get("a", "v").is_none());
        assert!(matches!(hashes.table.lock().get("a"), Some(Slot::Pending)));
        // The queue is full: "b" is not pending, and is asked again next time.
        assert!(hashes.get("b", "v").is_none());
        assert!(hashes.table.lock().get("b").is_none());
        hashes.forget("a");
        assert!(hashes.table.lock().is_empty());
    }
}
