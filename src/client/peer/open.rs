//! Opening local files safely: a published file for serving ([`Opened`], with the
//! identity its VERSION comes from), opened one path component at a time without
//! following a symlink ([`open_no_symlinks`]), and this client's own state files
//! ([`open_state_file`], [`check_own`]).

use std::fs::File;
use std::io;
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
