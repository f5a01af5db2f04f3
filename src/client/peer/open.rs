//! Opening local files safely: a published file for serving ([`Opened`], with the
//! identity its VERSION comes from), opened one path component at a time without
//! following a symlink ([`open_no_symlinks`]), and this client's own state files
//! ([`open_state_file`], [`check_own`]).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// A published file opened for serving.
pub(super) struct Opened {
    pub(super) file: File,
    pub(super) size: u64,
    /// The GET_FILE_RANGE VERSION token: see [`Identity::version`].
    pub(super) version: String,
    /// What the file was when opened, to tell whether it changed while sent.
    identity: Identity,
}

impl Opened {
    /// `file`, opened for serving, as its metadata `m` says it is now.
    pub(super) fn new(file: File, m: &std::fs::Metadata) -> Opened {
        let identity = Identity::of(m);
        Opened {
            size: m.len(),
            version: identity.version(),
            identity,
            file,
        }
    }

    /// Whether the open file is still what it was when opened: same size, same
    /// modification and change times, same inode. Any write changes the mtime and
    /// the ctime (utimensat can put the mtime back, never the ctime), so a file
    /// rewritten in place while it is sent, even with the same size, fails this.
    pub(super) fn unchanged(&self) -> io::Result<bool> {
        Ok(Identity::of(&self.file.metadata()?) == self.identity)
    }
}

/// What identifies one content of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The VERSION token (docs/PROTOCOL.md, "Serving"): device, inode, size,
    /// modification time and change time to the nanosecond, in hexadecimal. Any
    /// rewrite changes the ctime (and the mtime or the size unless put back), a
    /// replacement by rename changes the inode, so a resumed download never splices
    /// two different contents of one file.
    fn version(&self) -> String {
        format!(
            "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }
}

/// Why a state file could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateReadError {
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("larger than the limit")]
    TooLarge,
}

/// Reads a state file of this client whole, `Ok(None)` when there is none. Never
/// through a link, never blocking on a FIFO, only a regular file with one link (see
/// `open_state_file`), and never more than `max` bytes into memory.
pub(crate) fn read_state(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StateReadError> {
    let Some(file) = open_state_file(path).map_err(StateReadError::Io)? else {
        return Ok(None);
    };
    let mut text = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut text)
        .map_err(StateReadError::Io)?;
    if text.len() as u64 > max {
        return Err(StateReadError::TooLarge);
    }
    Ok(Some(text))
}

/// The text of the small state file at `path` (at most `max` bytes), when there is
/// one that [`read_state`] takes and that is UTF-8; a bad one is logged and ignored
/// (the caller starts without it).
pub(super) fn read_state_text(path: &Path, max: u64) -> Option<String> {
    match read_state(path, max) {
        Ok(bytes) => String::from_utf8(bytes?).ok(),
        Err(e) => {
            log::warn!("{}: ignored: {e}", path.display());
            None
        }
    }
}

/// Opens a state file of this client (a partial download's info, a publication
/// record) for reading, as a file it wrote itself must be: never through a symbolic
/// link (`O_NOFOLLOW`), never blocking (`O_NONBLOCK`: a FIFO put in its place cannot
/// hang the shell), and only a regular file with one link (a hard link to another
/// file, a published one say, is not this client's to read or rewrite). `Ok(None)`
/// when there is none.
pub(crate) fn open_state_file(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    check_own(&file.metadata()?)?;
    Ok(Some(file))
}

/// Refuses what is not a regular file with exactly one link.
pub(crate) fn check_own(m: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if m.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("has {} hard links, not one", m.nlink()),
        ));
    }
    Ok(())
}

/// Opens an absolute path for reading, refusing a symlink in any component
/// (`O_NOFOLLOW` on each step, `ELOOP` when one is met). The last step also uses
/// `O_NONBLOCK`, so a FIFO swapped in cannot block the open; it is then refused as
/// not a regular file.
#[cfg(unix)]
pub(super) fn open_no_symlinks(path: &Path) -> io::Result<File> {
    use std::os::fd::OwnedFd;

    use std::path::Component;

    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(n),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a canonical path",
                ));
            }
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    use rustix::fs::{Mode, OFlags};
    let open_at = |dir: &OwnedFd, name: &std::ffi::OsStr, flags: OFlags| {
        rustix::fs::openat(
            dir,
            name,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(io::Error::from)
    };
    let root = File::open("/")?;
    let mut dir: OwnedFd = root.into();
    for name in dirs {
        dir = open_at(&dir, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
    }
    let fd = open_at(&dir, last, OFlags::RDONLY | OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}
