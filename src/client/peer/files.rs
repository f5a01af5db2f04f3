//! The table of files this client serves and the safe way to open them.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use super::hashes::{Hashes, Published, Ready};
use super::open::{Opened, open_no_symlinks};
use crate::proto::index::Statement;
use crate::proto::peer::{CODE_NOT_FOUND, CODE_OTHER};

/// Why a file could not be shared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShareError {
    /// The path does not resolve to an existing file.
    #[error("cannot share {}: {source}", path.display())]
    Missing { path: PathBuf, source: io::Error },
    /// The path exists but is not a regular file (a directory, a device, a FIFO).
    #[error("cannot share {}: not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// 2025 statement: the file is not inside the share folder.
    #[error(
        "cannot share {}: it is not inside the share folder {} (--share)",
        path.display(),
        root.display()
    )]
    OutsideShare { path: PathBuf, root: PathBuf },
    /// 2025 statement: the absolute path cannot be sent as it is (a space, which the
    /// statement's clients split on, or bytes that are not UTF-8).
    #[error(
        "cannot share {}: its absolute path {why}, and the 2025 statement sends it as \
         the file name",
        path.display()
    )]
    Unsendable { path: PathBuf, why: &'static str },
}

/// The files this client serves: published name -> canonical path, resolved when
/// the name was published (relative names against the share folder), and their hash
/// trees (`hashes`).
///
/// The published name is what PUBLISH and DELETE send and what a downloader asks
/// for: under the 2024 statement the name as typed, under the 2025 one the file's
/// canonical absolute path (STATEMENTS.md), which must then lie inside the share
/// folder, when it is published and every time it is served.
pub(crate) struct SharedFiles {
    root: PathBuf,
    /// 2025: names are absolute paths inside `root`.
    absolute: bool,
    files: RwLock<HashMap<String, PathBuf>>,
    hashes: Hashes,
}

impl Published for SharedFiles {
    fn open_to_hash(&self, name: &str) -> Option<Opened> {
        self.open(name).ok()
    }
}

impl SharedFiles {
    /// An empty table whose relative names resolve against `root` (2024 statement);
    /// hash trees are kept in memory only.
    #[cfg(test)]
    pub(crate) fn new(root: PathBuf) -> Arc<Self> {
        Self::for_statement(root, Statement::Y2024, None)
    }

    /// As [`SharedFiles::new`], with the hash trees also cached in `cache`.
    #[cfg(test)]
    pub(crate) fn with_hash_cache(root: PathBuf, cache: PathBuf) -> Arc<Self> {
        Self::for_statement(root, Statement::Y2024, Some(cache))
    }

    /// An empty table for the given statement year (`root` is canonical), whose hash
    /// trees are also cached in `cache` (`STATE/hashes`) when given.
    pub(crate) fn for_statement(
        root: PathBuf,
        statement: Statement,
        cache: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| SharedFiles {
            root,
            absolute: statement == Statement::Y2025,
            files: RwLock::new(HashMap::new()),
            hashes: Hashes::start(me.clone() as Weak<dyn Published>, cache),
        })
    }

    /// What PUBLISH sends for the file typed as `typed`, and the canonical path it
    /// is served from. 2024: the name as typed. 2025: the canonical absolute path,
    /// refused unless it is inside the share folder and has no space.
    pub(crate) fn to_publish(&self, typed: &str) -> Result<(String, PathBuf), ShareError> {
        let canonical = self.resolve(typed)?;
        if !self.absolute {
            return Ok((typed.to_owned(), canonical));
        }
        if !canonical.starts_with(&self.root) {
            return Err(ShareError::OutsideShare {
                path: canonical,
                root: self.root.clone(),
            });
        }
        let unsendable = |why| ShareError::Unsendable {
            path: canonical.clone(),
            why,
        };
        let field = canonical
            .to_str()
            .ok_or_else(|| unsendable("is not UTF-8"))?;
        if field.contains(' ') {
            return Err(unsendable("has a space"));
        }
        Ok((field.to_owned(), canonical.clone()))
    }

    /// What DELETE sends for `typed`. 2024: the name as typed. 2025: an absolute
    /// path as it is; a relative name becomes the published path of the file it
    /// resolves to, else (the file is gone) the path it names inside the share folder.
    pub(crate) fn to_delete(&self, typed: &str) -> String {
        if !self.absolute || Path::new(typed).is_absolute() {
            return typed.to_owned();
        }
        if let Ok(canonical) = self.resolve(typed)
            && let Some(name) = self.name_of(&canonical)
        {
            return name;
        }
        let path: PathBuf = self
            .root
            .join(typed)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        path.to_string_lossy().into_owned()
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
            Ok(now) if self.absolute && !now.starts_with(&self.root) => {
                log::warn!(
                    "peer: {name} not served: it is not inside the share folder {}",
                    self.root.display()
                );
                return Err(CODE_NOT_FOUND);
            }
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
            Ok(m) if m.is_file() => Ok(Opened::new(file, &m)),
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::client::peer::open::open_state_file;

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

    #[test]
    fn the_2025_statement_publishes_absolute_paths_inside_the_share_and_serves_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        let secret = std::fs::canonicalize(outside.path()).unwrap().join("s");
        std::fs::write(&secret, b"key").unwrap();
        let y2024 = SharedFiles::new(root.clone());
        let (field, _) = y2024.to_publish("sub/a.txt").unwrap();
        assert_eq!(field, "sub/a.txt");
        assert_eq!(y2024.to_delete("sub/a.txt"), "sub/a.txt");
        let files = SharedFiles::for_statement(root.clone(), Statement::Y2025, None);
        let abs = root.join("sub/a.txt");
        let (field, path) = files.to_publish("sub/./a.txt").unwrap();
        assert_eq!(field, abs.to_str().unwrap());
        assert_eq!(path, abs);
        assert_eq!(files.to_publish(abs.to_str().unwrap()).unwrap().0, field);
        assert!(matches!(
            files.to_publish(secret.to_str().unwrap()),
            Err(ShareError::OutsideShare { .. })
        ));
        std::fs::write(root.join("sp ace"), b"x").unwrap();
        assert!(matches!(
            files.to_publish("sp ace"),
            Err(ShareError::Unsendable { .. })
        ));
        files.insert(&field, path);
        assert_eq!(files.open(&field).unwrap().size, 5);
        assert_eq!(files.open("a.txt").err(), Some(CODE_NOT_FOUND));
        assert_eq!(files.open("sub/a.txt").err(), Some(CODE_NOT_FOUND));
        assert_eq!(files.to_delete("sub/a.txt"), field);
        assert_eq!(files.to_delete(&field), field);
        std::fs::remove_file(&abs).unwrap();
        assert_eq!(files.to_delete("./sub/a.txt"), field);
        // An edited record: a path outside the share is never served in 2025.
        let name = secret.to_str().unwrap();
        files.insert(name, secret.clone());
        assert_eq!(files.open(name).err(), Some(CODE_NOT_FOUND));
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
