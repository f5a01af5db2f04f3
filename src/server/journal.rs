//! The durable side of the registry: an append-only journal of applied changes (JSON
//! lines), a snapshot of the live state that the journal is compacted into, replay at
//! start, and group-commit fsync.
//!
//! Owns: the files of the data directory, their format, the order and the steps that
//! make every step crash-safe, and what "acknowledged" means on disk. Does not own:
//! the state rules (`registry` decides which change applies and calls [`Journal::append`]
//! under its write lock, so journal order is application order) or sockets (`server`).
//!
//! # Files
//! - `journal.<G>.jsonl`: one [`Change`] per line, in the order they were applied, for
//!   every change applied after snapshot generation `G`.
//! - `snapshot.jsonl`: a header line `{"peerdex_snapshot":1,"generation":G,"users":N}`
//!   then one line per user (name, peer address if connected, files in publication
//!   order). It is the state just before the first change of `journal.<G>.jsonl`.
//! - `snapshot.jsonl.tmp`: a snapshot being written (removed at start).
//! - `lock`: held (`flock`) by the running server, so two servers never share a
//!   directory.
//!
//! # Durability
//! Each change is written with one `write` of one complete line before its result
//! code is sent. Without `--fsync` the line is in the kernel's page cache when the
//! client sees 0: it survives the server being killed (SIGKILL, panic, OOM) but not
//! the machine losing power or crashing (the last few seconds of changes can be
//! lost; a torn last line is dropped at start). With `--fsync` every acknowledgement
//! also waits for `fdatasync` of the journal: it survives power loss too. Concurrent
//! writers share one fsync (group commit): the first waiting writer syncs for
//! everybody whose line is written, the others wait on a condition variable.
//!
//! # Compaction
//! The steps that compact the journal into a new snapshot, and why a crash at any of
//! them is safe, are in `compaction`; this file gives it the rotation to a new
//! journal generation ([`Journal::rotate`]), the snapshot format
//! ([`write_snapshot`]) and the file names.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use super::change::{Change, PeerAddr};
use crate::linefile::LineFile;

/// Journal size past which it is compacted into a snapshot. 16 MiB is about 150,000
/// changes: replaying that many takes well under a second, and the disk used stays
/// small, while a registry that changes slowly is not rewritten often.
pub const COMPACT_MIN_BYTES: u64 = 16 << 20;

/// Buffer for reading and writing snapshots and reading journals: large sequential
/// I/O, few system calls.
pub(super) const IO_BUFFER: usize = 1 << 20;

/// Version of the snapshot format, in its header line.
const SNAPSHOT_FORMAT: u32 = 1;

pub(super) const SNAPSHOT: &str = "snapshot.jsonl";
pub(super) const SNAPSHOT_TMP: &str = "snapshot.jsonl.tmp";
const LOCK: &str = "lock";
const JOURNAL_PREFIX: &str = "journal.";
const JOURNAL_SUFFIX: &str = ".jsonl";

/// How the journal is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Wait for fdatasync before acknowledging (group commit).
    pub fsync: bool,
    /// Minimum journal size (bytes) before compaction.
    pub compact_after: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            fsync: false,
            compact_after: COMPACT_MIN_BYTES,
        }
    }
}

/// What is wrong with a line of a data file.
#[derive(Debug, thiserror::Error)]
pub enum Corruption {
    /// Not a JSON record of the expected shape.
    #[error("{}", syntax(.0))]
    Syntax(#[source] serde_json::Error),
    /// A line without its newline in a journal that is not the newest.
    #[error("a line without its newline before the newest journal")]
    Incomplete,
    /// A journal record that does not apply to the state before it (result code).
    #[error("the change does not apply to the state before it (result code {code})")]
    Rejected { code: u8 },
    /// A snapshot line naming a user already restored.
    #[error("user {0:?} appears twice")]
    DuplicateUser(String),
    /// The snapshot header is not one this version reads.
    #[error("not a peerdex snapshot header (format 1)")]
    BadHeader,
    /// The snapshot ends before the number of users its header announces.
    #[error("the snapshot ends after {found} of the {expected} users its header announces")]
    Truncated { expected: u64, found: u64 },
    /// Lines after the last user the snapshot header announces.
    #[error("data after the last user")]
    TrailingData,
    /// A journal generation between the snapshot and the newest journal is missing.
    #[error("journal generation {generation} is missing (changes would be lost)")]
    MissingJournal { generation: u64 },
}

/// A JSON syntax error without serde_json's line (always 1: it is given one line;
/// the file line is in [`JournalError::Corrupt`]'s prefix), with its column.
fn syntax(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let message = text.split(" at line ").next().unwrap_or(&text);
    format!("not a valid record (column {}: {message})", e.column())
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("data: cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "data: {} is in use by another peerdex server (or pick another --data-dir)",
        dir.display()
    )]
    Locked { dir: PathBuf },
    /// A data file is damaged somewhere other than a torn last journal line.
    #[error(
        "data: corrupt {}:{line}: {what}; the server will not start on damaged data (repair or move the file away)",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        line: u64,
        #[source]
        what: Corruption,
    },
    /// An earlier write or fsync failed: the journal refuses further changes.
    #[error("data: the journal failed earlier and refuses changes")]
    Failed,
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One user line of a snapshot, as written (borrowing the live state).
#[derive(Serialize)]
pub(crate) struct SnapshotUser<'a> {
    pub user: &'a str,
    pub peer: Option<PeerAddr>,
    pub files: &'a IndexMap<String, String>,
}

/// One user line of a snapshot, as read.
#[derive(Deserialize)]
pub(crate) struct RestoredUser {
    pub user: String,
    pub peer: Option<PeerAddr>,
    pub files: IndexMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    peerdex_snapshot: u32,
    generation: u64,
    users: u64,
}

/// The state a replay builds (implemented by the registry's state).
pub(crate) trait Replay {
    /// Adds a user from a snapshot; false when the user is already there.
    fn restore(&mut self, user: RestoredUser) -> bool;
    /// Applies a journaled change; a change the rules refuse is `Err` with its result
    /// code (a journal only holds changes that were accepted).
    fn replay(&mut self, change: Change) -> Result<(), u8>;
}

/// What a start found in the data directory.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Users restored from the snapshot.
    pub snapshot_users: u64,
    /// Changes replayed from journals.
    pub changes: u64,
    /// A torn last line that was dropped: file, line number and bytes cut.
    pub dropped_tail: Option<(PathBuf, u64, u64)>,
    pub elapsed: Duration,
}

/// An appended change: its sequence number (for [`Journal::wait_durable`]) and the
/// journal's size after it (whether it is due for compaction).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub seq: u64,
    pub journal_bytes: u64,
}

struct Writer {
    /// The current journal file (its length: all complete lines).
    file: LineFile,
    generation: u64,
    /// Changes appended by this process (all generations).
    seq: u64,
    /// Reused line buffer: one allocation for the life of the server.
    buf: Vec<u8>,
    failed: bool,
}

#[derive(Default)]
struct SyncState {
    /// Every change with a sequence number up to this is on disk.
    durable: u64,
    /// A writer is running fdatasync for the others.
    leader: bool,
    failed: bool,
}

/// The open journal of a data directory.
pub(crate) struct Journal {
    dir: PathBuf,
    opts: StoreOptions,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Journal files found at start.
    journals_at_start: usize,
    /// Size of the snapshot found at start (0: none).
    snapshot_bytes_at_start: u64,
    /// Held for the life of the journal: the directory's `flock`.
    _lock: File,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

pub(super) fn journal_name(generation: u64) -> String {
    format!("{JOURNAL_PREFIX}{generation}{JOURNAL_SUFFIX}")
}

fn journal_generation(name: &str) -> Option<u64> {
    name.strip_prefix(JOURNAL_PREFIX)?
        .strip_suffix(JOURNAL_SUFFIX)?
        .parse()
        .ok()
}

/// Creates the data directory if needed and takes its lock (one server per
/// directory); removes a snapshot left half-written by a crash.
fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let lock_path = dir.join(LOCK);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(JournalError::Locked {
                dir: dir.to_path_buf(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
    }
    let tmp = dir.join(SNAPSHOT_TMP);
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
    }
    Ok(lock)
}

/// Restores the snapshot, if any, into `state`: the first journal generation it does
/// not cover, and its size in bytes.
fn restore_snapshot(
    dir: &Path,
    state: &mut dyn Replay,
    recovered: &mut Recovered,
) -> Result<(u64, u64), JournalError> {
    let snapshot_path = dir.join(SNAPSHOT);
    match File::open(&snapshot_path) {
        Ok(f) => {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let (generation, users) = read_snapshot(&snapshot_path, f, state)?;
            recovered.snapshot_users = users;
            Ok((generation, len))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((0, 0)),
        Err(e) => Err(io_err("open", &snapshot_path)(e)),
    }
}

/// The journal generations from `base` on, in order; journals the snapshot covers
/// (left by an interrupted compaction) are removed, and a gap is corruption.
fn journal_generations(dir: &Path, base: u64) -> Result<Vec<u64>, JournalError> {
    let mut generations = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let Some(generation) = entry.file_name().to_str().and_then(journal_generation) else {
            continue;
        };
        if generation < base {
            let path = entry.path();
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        } else {
            generations.push(generation);
        }
    }
    generations.sort_unstable();
    for (i, &generation) in generations.iter().enumerate() {
        let expected = base + i as u64;
        if generation != expected {
            return Err(JournalError::Corrupt {
                path: dir.join(journal_name(generation)),
                line: 0,
                what: Corruption::MissingJournal {
                    generation: expected,
                },
            });
        }
    }
    Ok(generations)
}

/// Replays the journals in order into `state`; a torn last line of the newest is
/// reported (opening the newest journal as a [`LineFile`] cuts it off).
fn replay_journals(
    dir: &Path,
    generations: &[u64],
    state: &mut dyn Replay,
    recovered: &mut Recovered,
) -> Result<(), JournalError> {
    for (i, &generation) in generations.iter().enumerate() {
        let path = dir.join(journal_name(generation));
        let last = i + 1 == generations.len();
        let replayed = replay_journal(&path, last, state)?;
        recovered.changes += replayed.changes;
        if let Some((line, cut)) = replayed.torn {
            log::warn!(
                "{}:{line}: dropping a torn last line ({cut} bytes): a crash interrupted its write",
                path.display()
            );
            recovered.dropped_tail = Some((path, line, cut));
        }
    }
    Ok(())
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

impl Journal {
    /// Opens (creating if needed) the data directory `dir`, replays its snapshot and
    /// journals into `state`, and opens the newest journal for appending. A torn last
    /// journal line is cut off with a warning; any other damage is an error naming the
    /// file and line.
    pub(crate) fn open(
        dir: &Path,
        opts: StoreOptions,
        state: &mut dyn Replay,
    ) -> Result<(Journal, Recovered), JournalError> {
        let started = Instant::now();
        let lock = lock_dir(dir)?;
        let mut recovered = Recovered::default();
        let (base, snapshot_bytes) = restore_snapshot(dir, state, &mut recovered)?;
        let generations = journal_generations(dir, base)?;
        replay_journals(dir, &generations, state, &mut recovered)?;
        let generation = generations.last().copied().unwrap_or(base);
        let path = dir.join(journal_name(generation));
        let (file, _torn_tail) = LineFile::open(&path).map_err(io_err("open", &path))?;
        if generations.is_empty() {
            sync_dir(dir)?;
        }
        recovered.elapsed = started.elapsed();
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                opts,
                writer: Mutex::new(Writer {
                    file,
                    generation,
                    seq: 0,
                    buf: Vec::with_capacity(1024),
                    failed: false,
                }),
                sync: Mutex::new(SyncState::default()),
                synced: Condvar::new(),
                journals_at_start: generations.len(),
                snapshot_bytes_at_start: snapshot_bytes,
                _lock: lock,
            },
            recovered,
        ))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn options(&self) -> StoreOptions {
        self.opts
    }

    /// Size of the current journal (all complete lines).
    pub(crate) fn len(&self) -> u64 {
        self.writer.lock().file.len()
    }

    /// Journal files found at start, and the size of the snapshot found then.
    pub(crate) fn found_at_start(&self) -> (usize, u64) {
        (self.journals_at_start, self.snapshot_bytes_at_start)
    }

    /// Appends one applied change as one complete line, with one `write`. Call it
    /// under the registry's write lock, in application order. On error nothing of
    /// the line remains in the file (or the journal refuses every later change).
    pub(crate) fn append(&self, change: &Change) -> Result<Appended, JournalError> {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        if w.failed {
            return Err(JournalError::Failed);
        }
        w.buf.clear();
        serde_json::to_writer(&mut w.buf, change).expect("a change always serializes");
        w.buf.push(b'\n');
        if let Err(e) = w.file.append(&w.buf) {
            let path = self.dir.join(journal_name(w.generation));
            log::error!("{}: journal write failed: {e}", path.display());
            if w.file.is_torn() {
                // The line file could not cut the partial line off.
                log::error!("{}: cannot cut a partial line", path.display());
                w.failed = true;
            }
            return Err(io_err("write", &path)(e));
        }
        w.seq += 1;
        Ok(Appended {
            seq: w.seq,
            journal_bytes: w.file.len(),
        })
    }

    /// With `--fsync`: returns once change `seq` is on disk. The first writer to
    /// arrive syncs for every line written so far; the others wait for it (group
    /// commit). Without `--fsync` it returns at once.
    pub(crate) fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        if !self.opts.fsync {
            return Ok(());
        }
        let mut s = self.sync.lock();
        loop {
            if s.durable >= seq {
                return Ok(());
            }
            if s.failed {
                return Err(JournalError::Failed);
            }
            if s.leader {
                self.synced.wait(&mut s);
                continue;
            }
            s.leader = true;
            let result = parking_lot::MutexGuard::unlocked(&mut s, || {
                let (file, upto, generation) = {
                    let w = self.writer.lock();
                    (w.file.handle(), w.seq, w.generation)
                };
                // Older generations were synced when they were rotated out.
                file.sync_data().map(|()| upto).map_err(|e| (e, generation))
            });
            s.leader = false;
            match result {
                Ok(upto) => s.durable = s.durable.max(upto),
                Err((e, generation)) => {
                    // After a failed fsync the kernel may have dropped the dirty pages:
                    // nothing written since the last good fsync can be promised.
                    log::error!(
                        "{}: fsync failed, refusing further changes: {e}",
                        self.dir.join(journal_name(generation)).display()
                    );
                    s.failed = true;
                    self.writer.lock().failed = true;
                }
            }
            self.synced.notify_all();
        }
    }

    /// Starts journal generation `G+1` (compaction, under the registry's write lock:
    /// every later change goes to the new file); returns `G+1`, the generation the
    /// snapshot must carry. With `--fsync` the old journal is synced first. On error
    /// the current journal stays as it was.
    pub(crate) fn rotate(&self) -> Result<u64, JournalError> {
        let mut w = self.writer.lock();
        let next = w.generation + 1;
        let path = self.dir.join(journal_name(next));
        let result = (|| {
            if self.opts.fsync {
                // Lines of the old journal must be on disk before a later group
                // commit, which syncs only the new file, acknowledges past them.
                w.file
                    .sync_data()
                    .map_err(io_err("fsync", &self.dir.join(journal_name(w.generation))))?;
            }
            let (file, _) = LineFile::open(&path).map_err(io_err("create", &path))?;
            if self.opts.fsync {
                sync_dir(&self.dir)?;
            }
            Ok(file)
        })();
        let file = result?;
        w.file = file;
        w.generation = next;
        Ok(next)
    }
}

/// Reads the next line (without its newline) into `buf`; false at end of file. A
/// last line without a newline is returned with `complete == false`.
fn next_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    if r.read_until(b'\n', buf)? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        Ok(Some(true))
    } else {
        Ok(Some(false))
    }
}

/// Writes a snapshot in the format [`read_snapshot`] reads: the header line for
/// journal generation `generation` and `users` users, then one line per record.
pub(super) fn write_snapshot<'a>(
    out: &mut impl Write,
    generation: u64,
    users: usize,
    records: impl Iterator<Item = SnapshotUser<'a>>,
) -> io::Result<()> {
    let header = SnapshotHeader {
        peerdex_snapshot: SNAPSHOT_FORMAT,
        generation,
        users: users as u64,
    };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")?;
    for record in records {
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn read_snapshot(
    path: &Path,
    file: File,
    state: &mut dyn Replay,
) -> Result<(u64, u64), JournalError> {
    let corrupt = |line: u64, what: Corruption| JournalError::Corrupt {
        path: path.to_path_buf(),
        line,
        what,
    };
    let mut r = BufReader::with_capacity(IO_BUFFER, file);
    let mut buf = Vec::new();
    let read = |r: &mut BufReader<File>, buf: &mut Vec<u8>| {
        next_line(r, buf).map_err(io_err("read", path))
    };
    let header: SnapshotHeader = match read(&mut r, &mut buf)? {
        Some(_) => serde_json::from_slice(&buf).map_err(|e| corrupt(1, Corruption::Syntax(e)))?,
        None => return Err(corrupt(1, Corruption::BadHeader)),
    };
    if header.peerdex_snapshot != SNAPSHOT_FORMAT {
        return Err(corrupt(1, Corruption::BadHeader));
    }
    let mut line = 1;
    for found in 0..header.users {
        line += 1;
        if read(&mut r, &mut buf)?.is_none() {
            return Err(corrupt(
                line,
                Corruption::Truncated {
                    expected: header.users,
                    found,
                },
            ));
        }
        let user: RestoredUser =
            serde_json::from_slice(&buf).map_err(|e| corrupt(line, Corruption::Syntax(e)))?;
        let name = user.user.clone();
        if !state.restore(user) {
            return Err(corrupt(line, Corruption::DuplicateUser(name)));
        }
    }
    if read(&mut r, &mut buf)?.is_some() {
        return Err(corrupt(line + 1, Corruption::TrailingData));
    }
    Ok((header.generation, header.users))
}

struct Replayed {
    changes: u64,
    /// Length of the file up to the end of the last good line.
    good_len: u64,
    /// A torn last line: its number and the bytes cut.
    torn: Option<(u64, u64)>,
}

/// Replays one journal. In the `last` journal a final line without its newline is
/// torn (reported, not applied): a crash interrupted its write. Anything else wrong is
/// corruption, a complete final line that does not parse included: a write that got
/// as far as its newline was whole, so such a line was damaged afterwards (a flipped
/// byte) and dropping it would silently lose an acknowledged change.
fn replay_journal(
    path: &Path,
    last: bool,
    state: &mut dyn Replay,
) -> Result<Replayed, JournalError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let total = file.metadata().map_err(io_err("stat", path))?.len();
    let mut r = BufReader::with_capacity(IO_BUFFER, file);
    let mut buf = Vec::with_capacity(1024);
    let mut done = Replayed {
        changes: 0,
        good_len: 0,
        torn: None,
    };
    let mut line = 0;
    while let Some(complete) = next_line(&mut r, &mut buf).map_err(io_err("read", path))? {
        line += 1;
        let parsed = serde_json::from_slice::<Change>(&buf);
        let at_end = done.good_len + buf.len() as u64 + u64::from(complete) == total;
        if last && at_end && !complete {
            done.torn = Some((line, total - done.good_len));
            break;
        }
        let corrupt = |what| JournalError::Corrupt {
            path: path.to_path_buf(),
            line,
            what,
        };
        if !complete {
            return Err(corrupt(Corruption::Incomplete));
        }
        let change = parsed.map_err(|e| corrupt(Corruption::Syntax(e)))?;
        if let Err(code) = state.replay(change) {
            return Err(corrupt(Corruption::Rejected { code }));
        }
        done.changes += 1;
        done.good_len += buf.len() as u64 + 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replay_props;
