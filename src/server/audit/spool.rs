//! The server's durable audit spool: records wait here, on disk, until the logger
//! has acknowledged them.
//!
//! Owns: one append-only spool file per server instance, `DIR/<id>.spool`, named
//! by the instance's random 64-bit id and holding one JSON line per record with
//! its sequence number; numbering the records (1, 2, 3, ... per instance);
//! reading them back in order; trimming what is acknowledged; finding the spools
//! that crashed or stopped instances left behind (an exclusive `flock` on each
//! file tells a live owner from a dead one). Does not own: talking to the logger
//! (`shipper`), or the record type (`audit`).
//!
//! Durability: a record is written (one `write` to an `O_APPEND` file) before the
//! request thread replies to its client, so it survives the process being killed
//! (it is in the kernel's page cache); it is not `fsync`ed, so a power cut can
//! lose the last seconds. A record the file cannot take (disk full) is kept in
//! a bounded memory queue and still shipped: delivered to a live logger, but lost
//! if the server dies before that (the log says so). The (id, seq) pair travels to the logger, which stores
//! each pair once: a record resent after a crash is not stored twice.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::linefile::LineFile;
use crate::proto::audit::AuditRecord;

/// Largest spool file. Past it new records are dropped (and counted in the log)
/// rather than filling the disk while the logger stays away: about a million
/// records at ~200 bytes each.
pub(crate) const MAX_SPOOL_BYTES: u64 = 256 * 1024 * 1024;

/// Acknowledged bytes at the head of the file before it is compacted: large
/// enough that compaction is rare, small enough to keep the file small.
pub(crate) const COMPACT_AFTER: u64 = 4 * 1024 * 1024;

/// Largest unacknowledged tail copied by a compaction, which holds the append
/// lock while it copies: bounds how long request threads can wait on it.
pub(crate) const COMPACT_TAIL_MAX: u64 = 1024 * 1024;

/// Longest valid line: three bounded fields (at most 600 bytes) even fully
/// escaped by JSON (6 bytes per byte) fit. A longer line is damage.
pub(crate) const MAX_LINE: usize = 8 * 1024;

/// Records kept in memory, in order, while the spool file cannot take them (its
/// disk full, or the file at [`MAX_SPOOL_BYTES`]): the shipper sends them from
/// there, so a live logger still gets every record (issue 26 item 11). Records
/// are at most ~600 bytes of strings, so this holds a few MiB: minutes of a busy
/// lab's requests, while an operator frees the disk. Past it records are dropped
/// and counted.
pub(crate) const MEMORY_RECORDS: usize = 8192;

/// File name suffix of spool files.
const SUFFIX: &str = "spool";

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool: {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The spool reached [`MAX_SPOOL_BYTES`].
    #[error("spool: full ({MAX_SPOOL_BYTES} bytes)")]
    Full,
    /// The spool was closed at shutdown.
    #[error("spool: closed")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One line of a spool file. Written from the request's record without copying its
/// strings (borrowed), read back owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry<'a> {
    pub seq: u64,
    pub user: Cow<'a, str>,
    pub operation: Cow<'a, str>,
    pub datetime: Cow<'a, str>,
    /// The request's result code (see `AuditRecord::result`). Absent in lines
    /// written before results were recorded: those ship as version 2 records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<i32>,
}

impl Entry<'_> {
    fn into_owned(self) -> Entry<'static> {
        Entry {
            seq: self.seq,
            user: Cow::Owned(self.user.into_owned()),
            operation: Cow::Owned(self.operation.into_owned()),
            datetime: Cow::Owned(self.datetime.into_owned()),
            result: self.result,
        }
    }
}

/// The append side, shared by request threads.
pub(crate) struct Spool {
    id: u64,
    path: PathBuf,
    inner: Mutex<Writer>,
    doorbell: Sender<()>,
    dropped: AtomicU64,
    /// The sequence number of the last record the logger acknowledged.
    acked_seq: AtomicU64,
}

struct Writer {
    /// `None` once closed. Its length is the bytes of whole lines in the file.
    file: Option<LineFile>,
    next_seq: u64,
    /// Records the file could not take, oldest first (at most
    /// [`MEMORY_RECORDS`]). All of them come after every record in the file:
    /// while any waits here, new records join it, and the next append moves
    /// them to the file first, in order. Not crash-safe: said in the log.
    memory: VecDeque<Entry<'static>>,
    /// The file failed to take a record and has not taken one since: said
    /// once in the log when it starts, and once when it ends.
    degraded: bool,
}

impl Writer {
    fn len(&self) -> u64 {
        self.file.as_ref().map_or(0, LineFile::len)
    }

    /// Appends one line to the file (one `write`); a write cut short leaves no
    /// part of it behind.
    fn write(&mut self, entry: &Entry<'_>, path: &Path) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        let file = self.file.as_mut().ok_or(SpoolError::Closed)?;
        if file.len().saturating_add(line.len() as u64) > MAX_SPOOL_BYTES {
            return Err(SpoolError::Full);
        }
        file.append(&line).map_err(io_err(path))
    }

    /// Moves the records held in memory to the file, oldest first, as far as
    /// the file takes them.
    fn drain_memory(&mut self, path: &Path) -> Result<(), SpoolError> {
        if self.memory.is_empty() {
            return Ok(());
        }
        while let Some(entry) = self.memory.pop_front() {
            if let Err(e) = self.write(&entry, path) {
                self.memory.push_front(entry);
                return Err(e);
            }
        }
        Ok(())
    }
}

fn spool_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.{SUFFIX}"))
}

impl Spool {
    /// Creates this instance's spool file in `dir` (created if missing) and locks
    /// it. The receiver rings whenever a record is appended.
    pub(crate) fn create(dir: &Path) -> Result<(Spool, Receiver<()>), SpoolError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // A random instance id (fastrand is seeded from the OS per thread).
        let id = fastrand::u64(..);
        let path = spool_path(dir, id);
        let file = LineFile::create_new(&path).map_err(io_err(&path))?;
        file.file().try_lock().map_err(|e| SpoolError::Io {
            path: path.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        let (doorbell, rx) = crossbeam_channel::bounded(1);
        Ok((
            Spool {
                id,
                path,
                inner: Mutex::new(Writer {
                    file: Some(file),
                    next_seq: 1,
                    memory: VecDeque::new(),
                    degraded: false,
                }),
                doorbell,
                dropped: AtomicU64::new(0),
                acked_seq: AtomicU64::new(0),
            },
            rx,
        ))
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record with the next sequence number (one `write`). When the
    /// file cannot take it (disk full, spool full), the record is kept in memory
    /// for the shipper, up to [`MEMORY_RECORDS`]; an error means it was dropped.
    pub(crate) fn append(&self, rec: &AuditRecord) -> Result<u64, SpoolError> {
        let mut guard = self.inner.lock();
        let w = &mut *guard;
        if w.file.is_none() {
            return Err(SpoolError::Closed);
        }
        let seq = w.next_seq;
        let entry = Entry {
            seq,
            user: Cow::Borrowed(&rec.user),
            operation: Cow::Borrowed(&rec.operation),
            datetime: Cow::Borrowed(&rec.datetime),
            result: Some(rec.result),
        };
        // Records held in memory go first: the file stays in sequence order.
        let written = w
            .drain_memory(&self.path)
            .and_then(|()| w.write(&entry, &self.path));
        match written {
            Ok(()) if w.degraded => {
                w.degraded = false;
                log::warn!(
                    "audit spool {} takes records again: audit is crash-safe again",
                    self.path.display()
                );
            }
            Ok(()) => {}
            Err(e) => {
                if !w.degraded {
                    w.degraded = true;
                    log::warn!(
                        "audit record not spooled ({e}): records are kept in memory (at most {MEMORY_RECORDS}) and still shipped, but audit is not crash-safe until the spool takes records again"
                    );
                }
                if w.memory.len() >= MEMORY_RECORDS {
                    return Err(e);
                }
                w.memory.push_back(entry.into_owned());
            }
        }
        w.next_seq += 1;
        drop(guard);
        let _ = self.doorbell.try_send(());
        Ok(seq)
    }

    /// The shipper's next records from memory, once it has read the whole file
    /// (`pos`, its offset, at the end): every record held in memory comes after
    /// the file's. Each comes with `pos` as its end offset (nothing more of the
    /// file is acknowledged by it). Copies: they leave memory when acknowledged
    /// ([`Spool::acked_up_to`]) or moved to the file.
    pub(crate) fn memory_batch(&self, pos: u64, max: usize) -> Vec<(Entry<'static>, u64)> {
        let w = self.inner.lock();
        if pos < w.len() {
            return Vec::new();
        }
        w.memory
            .iter()
            .take(max)
            .map(|e| (e.clone(), pos))
            .collect()
    }

    /// Records held in memory (not crash-safe).
    pub(crate) fn in_memory(&self) -> usize {
        self.inner.lock().memory.len()
    }

    /// Appends, counting a failure instead of returning it (the request path).
    pub(crate) fn append_or_count(&self, rec: &AuditRecord) {
        if let Err(e) = self.append(rec) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                log::warn!(
                    "audit record lost ({e}, and {MEMORY_RECORDS} records already wait in memory): {n} records lost so far"
                );
            }
        }
    }

    /// Records that could not be spooled.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The shipper's note: the logger acknowledged every record up to `seq`
    /// (those held in memory leave it).
    pub(crate) fn acked_up_to(&self, seq: u64) {
        self.acked_seq.fetch_max(seq, Ordering::Relaxed);
        let mut w = self.inner.lock();
        while w.memory.front().is_some_and(|e| e.seq <= seq) {
            w.memory.pop_front();
        }
    }

    /// Records spooled and not yet acknowledged.
    pub(crate) fn pending(&self) -> u64 {
        let appended = self.inner.lock().next_seq - 1;
        appended.saturating_sub(self.acked_seq.load(Ordering::Relaxed))
    }

    /// Bytes written so far (the end a reader may read up to).
    pub(crate) fn len(&self) -> u64 {
        self.inner.lock().len()
    }

    /// Drops the first `acked` bytes, which the logger has acknowledged, when
    /// that is worth it: the whole file once everything is acknowledged and it
    /// has grown past `truncate_after`, or a copy of the tail once
    /// [`COMPACT_AFTER`] bytes are acknowledged and the tail is small. Returns
    /// how many bytes were removed from the head (reader offsets shift by it).
    pub(crate) fn trim(&self, acked: u64, truncate_after: u64) -> Result<u64, SpoolError> {
        let mut guard = self.inner.lock();
        let w = &mut *guard;
        let Some(file) = w.file.as_mut() else {
            return Ok(0);
        };
        let len = file.len();
        if acked == len && acked >= truncate_after.max(1) {
            file.clear().map_err(io_err(&self.path))?;
            return Ok(acked);
        }
        // The reader never acknowledges past the end of the whole lines; if it
        // did, nothing here may wrap around.
        let Some(tail) = len.checked_sub(acked) else {
            log::warn!(
                "{}: acknowledged offset {acked} is past the end {len}: not trimmed",
                self.path.display(),
            );
            return Ok(0);
        };
        if acked < COMPACT_AFTER || tail > COMPACT_TAIL_MAX {
            return Ok(0);
        }
        let mut rest = Vec::with_capacity(tail as usize);
        let mut reader = File::open(&self.path).map_err(io_err(&self.path))?;
        reader
            .seek(SeekFrom::Start(acked))
            .map_err(io_err(&self.path))?;
        reader
            .take(tail)
            .read_to_end(&mut rest)
            .map_err(io_err(&self.path))?;
        let tmp = self.path.with_extension("tmp");
        // A tmp file left by a crash in the middle of a compaction is stale.
        let _ = std::fs::remove_file(&tmp);
        let new = LineFile::create_new(&tmp)
            .map_err(io_err(&tmp))
            .and_then(|mut new| {
                new.file().try_lock().map_err(|e| SpoolError::Io {
                    path: tmp.clone(),
                    source: io::Error::other(e.to_string()),
                })?;
                new.append(&rest).map_err(io_err(&tmp))?;
                std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
                Ok(new)
            });
        let new = match new {
            Ok(new) => new,
            Err(e) => {
                // A half-written copy (disk full) must not take the space.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        w.file = Some(new);
        Ok(acked)
    }

    /// Stops appending. Removes the file when `acked` covers all of it (nothing
    /// waits), else leaves it for the next server started on this directory.
    /// Returns whether the file was removed.
    pub(crate) fn close(&self, acked: u64) -> bool {
        let mut w = self.inner.lock();
        if w.drain_memory(&self.path).is_err() {
            log::warn!(
                "{} audit records held in memory are lost: the spool {} cannot take them",
                w.memory.len(),
                self.path.display()
            );
        }
        let removed =
            w.memory.is_empty() && acked >= w.len() && std::fs::remove_file(&self.path).is_ok();
        w.file = None;
        removed
    }
}

/// Reads a spool file's entries in order from a byte offset.
pub(crate) struct SpoolReader {
    path: PathBuf,
    reader: BufReader<File>,
    pos: u64,
}

impl SpoolReader {
    pub(crate) fn open(path: &Path) -> Result<SpoolReader, SpoolError> {
        let file = File::open(path).map_err(io_err(path))?;
        Ok(SpoolReader {
            path: path.to_owned(),
            reader: BufReader::new(file),
            pos: 0,
        })
    }

    /// Offset of the next unread line.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reopens the file (after a compaction replaced it) at `pos`.
    pub(crate) fn reopen_at(&mut self, pos: u64) -> Result<(), SpoolError> {
        let mut file = File::open(&self.path).map_err(io_err(&self.path))?;
        file.seek(SeekFrom::Start(pos))
            .map_err(io_err(&self.path))?;
        self.reader = BufReader::new(file);
        self.pos = pos;
        Ok(())
    }

    /// Reads up to `max` whole entries, stopping at `end` (the writer's length,
    /// or `u64::MAX` for a file nobody writes). Each entry comes with the offset
    /// just after it. Undecodable lines are skipped with a warning; a final line
    /// without its newline is left for later (it is being written) unless
    /// `complete` says the file is finished, then it is skipped.
    pub(crate) fn read(
        &mut self,
        max: usize,
        end: u64,
        complete: bool,
    ) -> Result<Vec<(Entry<'static>, u64)>, SpoolError> {
        let mut out = Vec::new();
        let mut line = Vec::with_capacity(256);
        while out.len() < max && self.pos < end {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(io_err(&self.path))?;
            if n == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                if n > MAX_LINE || complete {
                    log::warn!(
                        "{}: damaged line at byte {} skipped",
                        self.path.display(),
                        self.pos
                    );
                    self.pos += n as u64;
                    if n > MAX_LINE {
                        // Skip the rest of the overlong line too.
                        let mut sink = Vec::new();
                        let m = (&mut self.reader)
                            .take(MAX_SPOOL_BYTES)
                            .read_until(b'\n', &mut sink)
                            .map_err(io_err(&self.path))?;
                        self.pos += m as u64;
                    }
                    continue;
                }
                // Not yet complete: read it again next time.
                self.reopen_at(self.pos)?;
                break;
            }
            self.pos += n as u64;
            match serde_json::from_slice::<Entry<'static>>(&line[..n - 1]) {
                Ok(e) => out.push((e, self.pos)),
                Err(e) => log::warn!(
                    "{}: undecodable line before byte {} skipped: {e}",
                    self.path.display(),
                    self.pos
                ),
            }
        }
        Ok(out)
    }
}

/// A spool file left by an instance that is gone, now locked by us.
pub(crate) struct Orphan {
    pub id: u64,
    pub path: PathBuf,
    /// Holds the lock until dropped.
    _lock: File,
}

impl Orphan {
    /// Removes the file (everything in it was acknowledged).
    pub(crate) fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Finds and locks the spool files in `dir` whose owner is gone (no lock held),
/// oldest first. Files another live server holds are left alone.
pub(crate) fn orphans(dir: &Path) -> Vec<Orphan> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SUFFIX) {
            continue;
        }
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| u64::from_str_radix(s, 16).ok())
        else {
            continue;
        };
        let Ok(file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue; // a live server owns it
        }
        // The owner may have replaced the file (compaction) between our open and
        // our lock: only the file now at the path counts.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        let modified = file
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        found.push((
            modified,
            Orphan {
                id,
                path,
                _lock: file,
            },
        ));
    }
    found.sort_by_key(|(m, _)| *m);
    found.into_iter().map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str) -> AuditRecord {
        AuditRecord {
            user: user.into(),
            operation: "REGISTER".into(),
            datetime: "17/12/2014 13:20:35".into(),
            result: 0,
        }
    }

    #[test]
    fn appended_records_read_back_in_order_with_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, bell) = Spool::create(dir.path()).unwrap();
        for u in ["a", "b", "c"] {
            spool.append(&rec(u)).unwrap();
        }
        assert!(bell.try_recv().is_ok());
        let mut r = SpoolReader::open(spool.path()).unwrap();
        let got = r.read(2, spool.len(), false).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.seq, got[0].0.user.as_ref()), (1, "a"));
        let rest = r.read(10, spool.len(), false).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0.seq, 3);
        assert_eq!(rest[0].1, spool.len());
    }

    #[test]
    fn results_are_spooled_and_lines_of_the_previous_release_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        spool
            .append(&AuditRecord {
                result: 2,
                ..rec("a")
            })
            .unwrap();
        let mut r = SpoolReader::open(spool.path()).unwrap();
        assert_eq!(r.read(10, spool.len(), false).unwrap()[0].0.result, Some(2));
        // A line without "result" (written before results were recorded).
        let path = dir.path().join("0000000000000001.spool");
        std::fs::write(
            &path,
            "{\"seq\":1,\"user\":\"a\",\"operation\":\"X\",\"datetime\":\"d\"}\n",
        )
        .unwrap();
        let got = SpoolReader::open(&path)
            .unwrap()
            .read(10, u64::MAX, true)
            .unwrap();
        assert_eq!((got[0].0.seq, got[0].0.result), (1, None));
    }

    #[test]
    fn a_partial_last_line_waits_unless_the_file_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000001.spool");
        std::fs::write(
            &path,
            "{\"seq\":1,\"user\":\"a\",\"operation\":\"X\",\"datetime\":\"d\"}\nnot json\n{\"seq\":3,",
        )
        .unwrap();
        let mut r = SpoolReader::open(&path).unwrap();
        let got = r.read(10, u64::MAX, false).unwrap();
        assert_eq!(got.len(), 1);
        let pos = r.pos();
        assert!(r.read(10, u64::MAX, false).unwrap().is_empty());
        assert_eq!(r.pos(), pos);
        assert!(r.read(10, u64::MAX, true).unwrap().is_empty());
        assert_eq!(r.pos(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn trimming_truncates_when_all_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        spool.append(&rec("a")).unwrap();
        let len = spool.len();
        assert_eq!(spool.trim(len - 1, 0).unwrap(), 0);
        assert_eq!(spool.trim(len, 0).unwrap(), len);
        assert_eq!(spool.len(), 0);
        // Appends continue at the new end, with the next sequence number.
        assert_eq!(spool.append(&rec("b")).unwrap(), 2);
        let mut r = SpoolReader::open(spool.path()).unwrap();
        let got = r.read(10, spool.len(), false).unwrap();
        assert_eq!(got[0].0.user, "b");
    }

    #[test]
    fn compaction_keeps_the_unacknowledged_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        let mut acked = 0;
        while spool.len() < COMPACT_AFTER {
            spool.append(&rec("old")).unwrap();
            acked = spool.len();
        }
        spool.append(&rec("new")).unwrap();
        assert_eq!(spool.trim(acked, u64::MAX).unwrap(), acked);
        let mut r = SpoolReader::open(spool.path()).unwrap();
        let got = r.read(10, spool.len(), false).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.user, "new");
    }

    #[test]
    fn orphans_are_only_files_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (live, _bell) = Spool::create(dir.path()).unwrap();
        live.append(&rec("a")).unwrap();
        assert!(orphans(dir.path()).is_empty(), "a live spool was adopted");
        let path = live.path().to_owned();
        let id = live.id();
        drop(live);
        let found = orphans(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, id);
        assert_eq!(found[0].path, path);
        // While we hold it, nobody else adopts it.
        assert!(orphans(dir.path()).is_empty());
    }

    #[test]
    fn closing_removes_a_fully_acknowledged_spool_only() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        spool.append(&rec("a")).unwrap();
        assert!(!spool.close(0));
        assert!(spool.path().exists());
        assert!(matches!(spool.append(&rec("b")), Err(SpoolError::Closed)));
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        spool.append(&rec("a")).unwrap();
        assert!(spool.close(spool.len()));
        assert!(!spool.path().exists());
    }
}
