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

use super::open::{Opened, open_state_file};
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
    pub(super) fn start(files: Weak<dyn Published>, cache: Option<PathBuf>) -> Hashes {
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

/// The published files the worker hashes (the table of shared files): it opens a
/// name as it would be served, and is gone when the session ends.
pub(super) trait Published: Send + Sync {
    /// The file published as `name`, opened as for serving; `None` when it cannot be
    /// served.
    fn open_to_hash(&self, name: &str) -> Option<Opened>;
}

/// The background thread's share.
struct Worker {
    files: Weak<dyn Published>,
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
        let opened = self.files.upgrade()?.open_to_hash(name)?;
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
    files: &'a Weak<dyn Published>,
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
mod tests;
