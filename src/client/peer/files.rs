//! The table of files this client serves and the safe way to open them.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use super::hashes::{Hashes, Ready};
use crate::proto::peer::{CODE_NOT_FOUND, CODE_OTHER};

/// Why a file could not be shared.
#[derive(Debug)]
pub(crate) enum ShareError {
    /// The path does not resolve to an existing file.
    Missing { path: PathBuf, source: io::Error },
    /// The path exists but is not a regular file (a directory, a device, a FIFO).
    NotRegular(PathBuf),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::Missing { path, source } => {
                write!(f, "cannot share {}: {source}", path.display())
            }
            ShareError::NotRegular(path) => {
                write!(f, "cannot share {}: not a regular file", path.display())
            }
        }
    }
}

impl std::error::Error for ShareError {}

/// The files this client serves: published name -> canonical path, resolved when
/// the name was published (relative names against the share folder), and their hash
/// trees (`hashes`).
pub(crate) struct SharedFiles {
    root: PathBuf,
    files: RwLock<HashMap<String, PathBuf>>,
    hashes: Hashes,
}

impl SharedFiles {
    /// An empty table whose relative names resolve against `root`; hash trees are
    /// kept in memory only.
    #[cfg(test)]
    pub(crate) fn new(root: PathBuf) -> Arc<Self> {
        Self::build(root, None)
    }

    /// An empty table whose hash trees are also cached in `cache`
    /// (`STATE/hashes`).
    pub(crate) fn with_hash_cache(root: PathBuf, cache: PathBuf) -> Arc<Self> {
        Self::build(root, Some(cache))
    }

    fn build(root: PathBuf, cache: Option<PathBuf>) -> Arc<Self> {
        Arc::new_cyclic(|me| SharedFiles {
            root,
            files: RwLock::new(HashMap::new()),
            hashes: Hashes::start(me.clone(), cache),
        })
    }

    /// Where a local name points: absolute names as they are, relative ones inside
    /// the share folder.
    pub(crate) fn local_path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Resolves `name` to the canonical path of an existing regular file, without
    /// adding it. The shell calls this before asking the server to PUBLISH.
    pub(crate) fn resolve(&self, name: &str) -> Result<PathBuf, ShareError> {
        let path = self.local_path(name);
        let canonical = std::fs::canonicalize(&path).map_err(|source| ShareError::Missing {
            path: path.clone(),
            source,
        })?;
        let meta = std::fs::metadata(&canonical).map_err(|source| ShareError::Missing {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ShareError::NotRegular(path));
        }
        Ok(canonical)
    }

    /// Adds a published name with the path it resolved to, and queues its hash
    /// tree.
    pub(crate) fn insert(&self, name: &str, canonical: PathBuf) {
        self.files.write().insert(name.to_owned(), canonical);
        self.hashes.want(name);
    }

    /// Removes a name (after DELETE OK).
    pub(crate) fn remove(&self, name: &str) {
        self.files.write().remove(name);
        self.hashes.forget(name);
    }

    /// Empties the table (before it is restored at CONNECT).
    pub(crate) fn clear(&self) {
        self.files.write().clear();
        self.hashes.clear();
    }

    /// The hash tree of `name` at `version` (what [`SharedFiles::open`] just said),
    /// when it is ready; otherwise `None`, and it is being computed.
    pub(super) fn tree(&self, name: &str, version: &str) -> Option<Ready> {
        self.hashes.get(name, version)
    }

    /// The published name served from `canonical`, if any.
    pub(crate) fn name_of(&self, canonical: &Path) -> Option<String> {
        self.files
            .read()
            .iter()
            .find(|(_, path)| path.as_path() == canonical)
            .map(|(name, _)| name.clone())
    }

    fn lookup(&self, name: &str) -> Option<PathBuf> {
        self.files.read().get(name).cloned()
    }

    /// Opens a published name for serving: the file, its size and version, or the
    /// code to answer.
    pub(super) fn open(&self, name: &str) -> Result<Opened, u8> {
        let Some(path) = self.lookup(name) else {
            return Err(CODE_NOT_FOUND);
        };
        // The record the path came from is a file anyone with write access to the
        // state folder may edit: the name is served only from the path it resolves
        // to now (relative names inside --share), never from another one.
        match self.resolve(name) {
            Ok(now) if now == path => {}
            Ok(now) => {
                log::warn!(
                    "peer: {name} not served: recorded as {}, but it is {} now",
                    path.display(),
                    now.display()
                );
                return Err(CODE_NOT_FOUND);
            }
            Err(e) => {
                log::info!("peer: {name} not served: {e}");
                return Err(CODE_NOT_FOUND);
            }
        }
        let file = match open_no_symlinks(&path) {
            Ok(f) => f,
            Err(e) => {
                log::info!("peer: {name} ({}) not served: {e}", path.display());
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => CODE_NOT_FOUND,
                    _ if e.raw_os_error() == Some(libc::ELOOP) => CODE_NOT_FOUND,
                    _ => CODE_OTHER,
                });
            }
        };
        match file.metadata() {
            Ok(m) if m.is_file() => {
                let identity = Identity::of(&m);
                Ok(Opened {
                    size: m.len(),
                    version: identity.version(),
                    identity,
                    file,
                })
            }
            Ok(_) => {
                log::info!("peer: {name} is no longer a regular file: not served");
                Err(CODE_NOT_FOUND)
            }
            Err(e) => {
                log::info!("peer: {name}: {e}");
                Err(CODE_OTHER)
            }
        }
    }
}

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
fn open_no_symlinks(path: &Path) -> io::Result<File> {
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

/// Options of the peer listener.
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn table_serves_only_published_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let files = SharedFiles::new(root.clone());
        assert!(matches!(
            files.resolve("missing"),
            Err(ShareError::Missing { .. })
        ));
        assert!(matches!(
            files.resolve("sub"),
            Err(ShareError::NotRegular(_))
        ));
        let path = files.resolve("a.txt").unwrap();
        files.insert("a.txt", path);
        let opened = files.open("a.txt").unwrap();
        assert_eq!(opened.size, 5);
        assert!(!opened.version.is_empty());
        assert_eq!(files.open("sub").err(), Some(CODE_NOT_FOUND));
        assert_eq!(files.open("../a.txt").err(), Some(CODE_NOT_FOUND));
        files.remove("a.txt");
        assert_eq!(files.open("a.txt").err(), Some(CODE_NOT_FOUND));
    }

    #[test]
    fn symlink_swapped_in_after_publishing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("secret"), b"secret").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"public").unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("d/f", files.resolve("d/f").unwrap());
        files.insert("g", {
            std::fs::write(root.join("g"), b"g").unwrap();
            files.resolve("g").unwrap()
        });
        // Last component swapped.
        std::fs::remove_file(root.join("g")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("g")).unwrap();
        assert_eq!(files.open("g").err(), Some(CODE_NOT_FOUND));
        // A directory along the path swapped.
        std::fs::rename(root.join("d"), root.join("d.old")).unwrap();
        std::fs::create_dir(root.join("e")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("e/f")).unwrap();
        std::os::unix::fs::symlink(root.join("e"), root.join("d")).unwrap();
        assert_eq!(files.open("d/f").err(), Some(CODE_NOT_FOUND));
    }

    #[test]
    fn a_same_size_rewrite_with_its_mtime_put_back_changes_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), b"old content").unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("f", files.resolve("f").unwrap());
        let before = files.open("f").unwrap();
        assert!(before.unchanged().unwrap());
        let mtime = std::fs::metadata(root.join("f"))
            .unwrap()
            .modified()
            .unwrap();
        // What `cp -p` over it does: same size, new bytes, the mtime put back.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("f"))
            .unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"new content", 0).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        let after = files.open("f").unwrap();
        assert_eq!(after.size, before.size);
        assert_ne!(after.version, before.version);
        // The file opened before sees the change too.
        assert!(!before.unchanged().unwrap());
    }

    #[test]
    fn a_recorded_path_that_is_not_where_the_name_resolves_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("notes.txt"), b"notes").unwrap();
        let secret = std::fs::canonicalize(outside.path())
            .unwrap()
            .join("id_rsa");
        std::fs::write(&secret, b"key").unwrap();
        let files = SharedFiles::new(root.clone());
        // What an edited record restores: the name, another path.
        files.insert("notes.txt", secret.clone());
        assert_eq!(files.open("notes.txt").err(), Some(CODE_NOT_FOUND));
        files.insert("other", root.join("notes.txt"));
        assert_eq!(files.open("other").err(), Some(CODE_NOT_FOUND));
        // The true paths are served, an absolute name from where it is.
        files.insert("notes.txt", root.join("notes.txt"));
        assert_eq!(files.open("notes.txt").unwrap().size, 5);
        let abs = secret.to_str().unwrap();
        files.insert(abs, secret.clone());
        assert_eq!(files.open(abs).unwrap().size, 3);
    }

    /// Makes a FIFO at `path`.
    pub(crate) fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn state_files_are_regular_files_with_one_link() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        assert!(open_state_file(&f).unwrap().is_none());
        std::fs::write(&f, b"x").unwrap();
        assert!(open_state_file(&f).unwrap().is_some());
        std::fs::hard_link(&f, dir.path().join("g")).unwrap();
        assert!(open_state_file(&f).is_err());
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        assert!(open_state_file(&fifo).is_err());
        std::os::unix::fs::symlink(dir.path().join("h"), dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("h"), b"h").unwrap();
        assert!(open_state_file(&dir.path().join("link")).is_err());
    }

    #[test]
    fn a_file_replaced_by_a_regular_file_is_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), b"v1").unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("f", files.resolve("f").unwrap());
        std::fs::write(root.join("f.new"), b"version 2").unwrap();
        std::fs::rename(root.join("f.new"), root.join("f")).unwrap();
        assert_eq!(files.open("f").unwrap().size, 9);
    }
}
