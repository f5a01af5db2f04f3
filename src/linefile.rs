//! An append-only file of whole lines: the one place where peerdex writes records that
//! must survive a crash or a full disk (the server's journal, the audit spool, the
//! logger's audit file).
//!
//! Owns: appending whole lines with one `write`, the fsync policy, and the rule that
//! the file never keeps part of a line. A write cut short (disk full, quota) is cut
//! back to the last whole line at once; if even the cut fails, the next append cuts
//! first, so the remains are never glued to a later line. The in-memory length is
//! the file's length whenever no cut is pending. At open, a last line without its
//! newline (a crash in the middle of a write) is cut off the same way. Does not own:
//! what a line holds (the callers' formats) or reading lines back.
//!
//! Fsync policy: `append` returns once the lines are in the kernel's page cache (they
//! survive the process being killed, not a power cut). A caller that promises more
//! syncs through [`LineFile::sync_data`], or through [`LineFile::handle`] off its lock
//! (the journal's group commit: one writer syncs for all while others append).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// What a line file writes to: a `File`, or a stand-in that fails on demand in tests.
pub(crate) trait Backing {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
}

impl Backing for File {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        let mut f = self;
        Write::write_all(&mut f, bytes)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// An open line file; see the module comment.
#[derive(Debug)]
pub(crate) struct LineFile<B: Backing = File> {
    file: Arc<B>,
    /// Bytes of whole lines: the file's length unless `torn`.
    len: u64,
    /// A failed write left bytes past `len` that a cut has not removed yet.
    torn: bool,
}

impl LineFile<File> {
    /// Opens (creating) `path` for appending. A last line without its newline is
    /// cut off (and synced away); the bytes cut are returned with the file.
    pub(crate) fn open(path: &Path) -> io::Result<(LineFile, u64)> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let end = file.seek(SeekFrom::End(0))?;
        let whole = whole_lines_len(&mut file, end)?;
        if whole < end {
            file.set_len(whole)?;
            file.sync_all()?;
        }
        Ok((LineFile::with_len(file, whole), end - whole))
    }

    /// Creates `path`, which must not exist yet.
    pub(crate) fn create_new(path: &Path) -> io::Result<LineFile> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(LineFile::with_len(file, 0))
    }

    /// The open file (to lock it, or to read its metadata).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl<B: Backing> LineFile<B> {
    /// A line file over `file`, which holds `len` bytes of whole lines.
    pub(crate) fn with_len(file: B, len: u64) -> LineFile<B> {
        LineFile {
            file: Arc::new(file),
            len,
            torn: false,
        }
    }

    /// Appends `lines` (whole lines: empty, or ending in a newline) with one write.
    /// On error nothing of them stays in the file once the cut succeeds (at once,
    /// or first thing in the next append).
    pub(crate) fn append(&mut self, lines: &[u8]) -> io::Result<()> {
        debug_assert!(lines.is_empty() || lines.ends_with(b"\n"), "whole lines");
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        if lines.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(lines) {
            // A write cut short leaves part of a line: cut the file back to its last
            // whole line, or the next line would be glued to the remains.
            if self.file.set_len(self.len).is_err() {
                self.torn = true;
            }
            return Err(e);
        }
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Bytes of whole lines written (where the next line starts).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether a failed write left remains that could not be cut off yet.
    pub(crate) fn is_torn(&self) -> bool {
        self.torn
    }

    /// Empties the file.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        self.torn = false;
        Ok(())
    }

    /// Forces what is written to the disk.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A handle to sync the file without holding the line file (group commit: one
    /// writer syncs for all while others keep appending).
    pub(crate) fn handle(&self) -> Arc<B> {
        Arc::clone(&self.file)
    }
}

/// The length of `file` up to the end of its last newline (`end` is its length).
fn whole_lines_len(file: &mut File, end: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut upto = end;
    while upto > 0 {
        let start = upto.saturating_sub(CHUNK);
        let chunk = &mut buf[..(upto - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        upto = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests;
