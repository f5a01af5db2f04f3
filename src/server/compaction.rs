//! Compacting the journal into a snapshot: when it is due, and its steps, in the
//! order they run.
//!
//! Owns: the compaction threshold, the one compaction that may run at a time, and
//! the order of its steps. Does not own: what the state is (`registry` captures it
//! under its write lock), the file names and the snapshot format (`journal`).
//!
//! # Steps
//! When the journal passes `--compact-after` and the size of the last snapshot, the
//! change that passed it claims the compaction ([`Compaction::due`]) and, still under
//! the registry's write lock:
//! 1. rotates the journal to generation `G+1` (a file create; with `--fsync` plus one
//!    fsync of the old journal): later changes go to the new file;
//! 2. captures the state (names, addresses, shared pointers to each user's files;
//!    users changed afterwards are copied on write), so the capture is the state just
//!    before the first change of `journal.<G+1>.jsonl`, and releases the lock.
//!
//! A background thread then:
//! 3. writes the capture to `snapshot.jsonl.tmp`, its header carrying `G+1`;
//! 4. fsyncs it;
//! 5. renames it over `snapshot.jsonl` and fsyncs the directory;
//! 6. removes the journals older than `G+1`.
//!
//! A crash at any step leaves either the old snapshot with journals `G` and `G+1`
//! (both replayed) or the new snapshot with a stale journal `G` (skipped and
//! removed): a change is never applied twice nor lost. The header's `G+1` keeps the
//! snapshot from being mixed with a journal it does not precede. A failed step 1
//! tries again after as many bytes again; a failed later step leaves the old
//! snapshot and both journals (valid) and tries again at the next change.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use indexmap::IndexMap;
use parking_lot::Mutex;

use super::change::PeerAddr;
use super::journal::{
    self, IO_BUFFER, Journal, JournalError, SNAPSHOT, SNAPSHOT_TMP, SnapshotUser, io_err,
    journal_name, sync_dir,
};

/// ... and the journal must also be this many times the last snapshot: rewriting a
/// large registry is spread over as many bytes of changes (at most one byte of
/// snapshot written per byte journaled), and a start reads at most about twice the
/// size of the live state (snapshot plus journal), so start-up follows the state.
pub(crate) const COMPACT_SNAPSHOT_RATIO: u64 = 1;

/// A user's files: file name -> description, in publication order.
pub(crate) type Files = IndexMap<String, String>;

/// The registry's state as captured under its write lock (step 2): every user with a
/// shared pointer to its files, and the connected users' addresses.
#[derive(Debug)]
pub(crate) struct Capture<U> {
    pub(crate) users: Vec<(String, Arc<U>)>,
    pub(crate) connected: Vec<(String, PeerAddr)>,
}

/// The compaction of one data directory.
#[derive(Debug)]
pub(crate) struct Compaction {
    progress: Arc<Progress>,
    /// The last compaction thread (joined on drop, so a clean stop leaves no
    /// half-written snapshot behind).
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Progress {
    /// `--compact-after`.
    compact_after: u64,
    /// A compaction is claimed when the journal passes this many bytes.
    threshold: AtomicU64,
    /// A compaction is claimed and not finished.
    running: AtomicBool,
}

impl Progress {
    fn claim(&self) -> bool {
        self.running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The claimed compaction is over; the next is due past `threshold`, if given.
    fn release(&self, threshold: Option<u64>) {
        if let Some(threshold) = threshold {
            self.threshold.store(threshold, Ordering::Release);
        }
        self.running.store(false, Ordering::Release);
    }
}

fn threshold(compact_after: u64, snapshot_bytes: u64) -> u64 {
    compact_after.max(snapshot_bytes.saturating_mul(COMPACT_SNAPSHOT_RATIO))
}

impl Drop for Compaction {
    fn drop(&mut self) {
        if let Some(handle) = self.thread.get_mut().take() {
            let _ = handle.join();
        }
    }
}

impl Compaction {
    /// The compaction of `journal`'s directory, as found at start.
    pub(crate) fn new(journal: &Journal) -> Self {
        let compact_after = journal.options().compact_after;
        let (_, snapshot_bytes) = journal.found_at_start();
        Compaction {
            progress: Arc::new(Progress {
                compact_after,
                threshold: AtomicU64::new(threshold(compact_after, snapshot_bytes)),
                running: AtomicBool::new(false),
            }),
            thread: Mutex::default(),
        }
    }

    /// Claims a compaction when the journal, now `journal_bytes` long, is due and none
    /// is running; the caller then runs [`Compaction::start`].
    pub(crate) fn due(&self, journal_bytes: u64) -> bool {
        journal_bytes > self.progress.threshold.load(Ordering::Acquire) && self.progress.claim()
    }

    /// [`Compaction::due`] at start: also when more than one journal was left (by an
    /// interrupted compaction).
    pub(crate) fn due_at_start(&self, journal: &Journal) -> bool {
        let (journals, _) = journal.found_at_start();
        let due = journal.len() > self.progress.threshold.load(Ordering::Acquire) || journals > 1;
        due && self.progress.claim()
    }

    /// Runs a claimed compaction: steps 1 and 2 while `locked` (the registry's write
    /// lock) is held, `capture` reading the state through it; then releases it and
    /// leaves steps 3 to 6 to a background thread.
    pub(crate) fn start<G, U>(
        &self,
        journal: &Arc<Journal>,
        locked: G,
        capture: impl FnOnce(&G) -> Capture<U>,
    ) where
        U: AsRef<Files> + Send + Sync + 'static,
    {
        // Step 1.
        let generation = match journal.rotate() {
            Ok(g) => g,
            Err(e) => {
                // Try again after as many bytes again, not on every change.
                let p = &self.progress;
                p.release(Some(journal.len() + p.compact_after));
                drop(locked);
                log::error!("compaction not started: {e}");
                return;
            }
        };
        // Step 2.
        let started = Instant::now();
        let capture = capture(&locked);
        drop(locked);
        log::info!(
            "compaction: state of {} users captured under the lock in {:?}",
            capture.users.len(),
            started.elapsed()
        );
        let worker = Arc::clone(journal);
        let progress = Arc::clone(&self.progress);
        let spawned = std::thread::Builder::new()
            .name("compaction".into())
            .spawn(move || {
                let written = write_snapshot(&worker, generation, &capture);
                finish(&worker, &progress, generation, written);
            });
        match spawned {
            Ok(handle) => {
                // The previous compaction has finished (one at a time): reap it.
                if let Some(previous) = self.thread.lock().replace(handle) {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                log::error!("compaction thread not started: {e}");
                let error = JournalError::Io {
                    action: "start a thread for",
                    path: journal.dir().to_path_buf(),
                    source: e,
                };
                finish(journal, &self.progress, generation, Err(error));
            }
        }
    }
}

/// Step 3: streams the capture into the temporary snapshot file.
fn write_snapshot<U: AsRef<Files>>(
    journal: &Journal,
    generation: u64,
    capture: &Capture<U>,
) -> Result<File, JournalError> {
    let path = journal.dir().join(SNAPSHOT_TMP);
    let file = File::create(&path).map_err(io_err("create", &path))?;
    let mut out = BufWriter::with_capacity(IO_BUFFER, file);
    let peers: HashMap<&str, PeerAddr> = capture
        .connected
        .iter()
        .map(|(n, a)| (n.as_str(), *a))
        .collect();
    let records = capture.users.iter().map(|(name, u)| SnapshotUser {
        user: name,
        peer: peers.get(name.as_str()).copied(),
        files: (**u).as_ref(),
    });
    journal::write_snapshot(&mut out, generation, capture.users.len(), records)
        .map_err(io_err("write", &path))?;
    out.into_inner()
        .map_err(|e| io_err("write", &path)(e.into_error()))
}

/// Steps 4 to 6, then the next threshold (or, on error, the temporary file
/// removed: the old snapshot and both journals are still valid).
fn finish(
    journal: &Journal,
    progress: &Progress,
    generation: u64,
    written: Result<File, JournalError>,
) {
    let started = Instant::now();
    let dir = journal.dir();
    let tmp = dir.join(SNAPSHOT_TMP);
    let snapshot = dir.join(SNAPSHOT);
    let result = written.and_then(|file| {
        // Step 4.
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        let len = file.metadata().map_err(io_err("stat", &tmp))?.len();
        // Step 5.
        fs::rename(&tmp, &snapshot).map_err(io_err("rename", &tmp))?;
        sync_dir(dir)?;
        // Step 6.
        for old in 0..generation {
            let path = dir.join(journal_name(old));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &path)(e)),
            }
        }
        Ok(len)
    });
    match result {
        Ok(len) => {
            log::info!(
                "compacted into {} (generation {generation}, {len} bytes; fsync, rename and cleanup took {:?})",
                snapshot.display(),
                started.elapsed()
            );
            progress.release(Some(threshold(progress.compact_after, len)));
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            log::error!("compaction failed (the journal keeps growing): {e}");
            progress.release(None);
        }
    }
}
