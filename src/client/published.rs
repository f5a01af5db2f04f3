//! The local record of what this client's user published from this machine.
//!
//! The peer listener serves a file only if it is in this record: the index server's
//! LIST_CONTENT is not trusted for it (anyone may CONNECT as an offline registered
//! user and PUBLISH `/etc/shadow` in that name, and a malicious index server may list
//! anything). At CONNECT the shell serves the names that are both in the record and
//! listed by the server; listed names without a record are reported, not served.
//!
//! One JSON file per (index server, user) under the state directory:
//! `<state>/published/<host>_<port>/<user>.json`, mapping each published name to the
//! canonical path it resolved to when it was published. Written whole to a temporary
//! file and renamed, so a crash leaves the old or the new record, never half of one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(super) use super::peer::{StateReadError, read_state};

/// A record larger than this is refused (it would be 10,000s of publications; a
/// corrupt or planted huge file must not be read into memory whole).
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// Why the record could not be read or written.
#[derive(Debug)]
pub(super) enum RecordError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    TooLarge(PathBuf),
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            RecordError::TooLarge(path) => {
                write!(
                    f,
                    "{}: larger than {MAX_RECORD_BYTES} bytes",
                    path.display()
                )
            }
            RecordError::Corrupt { path, source } => {
                write!(f, "{}: not a publication record: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// The state directory: `$XDG_STATE_HOME/peerdex`, else `$HOME/.local/state/peerdex`,
/// else `.peerdex-state` in the share folder.
pub(super) fn default_state_dir(share: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("peerdex");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/peerdex");
    }
    share.join(".peerdex-state")
}

/// A name that is safe as one path component: letters, digits, `-` and `.` (not
/// first) kept, every other byte as `%XX` (so distinct names stay distinct).
fn component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The file of one user at one index server in the state folder `kind`:
/// `<state>/<kind>/<server>/<user>.json`, each name one safe path component.
pub(super) fn user_file(state_dir: &Path, kind: &str, server: &str, user: &str) -> PathBuf {
    state_dir
        .join(kind)
        .join(component(server))
        .join(format!("{}.json", component(user)))
}

/// The record of one user at one index server.
#[derive(Debug)]
pub(super) struct Record {
    path: PathBuf,
    files: BTreeMap<String, PathBuf>,
}

impl Record {
    /// Loads the record of `user` at `server` (`host:port`), empty when none exists.
    pub(super) fn load(state_dir: &Path, server: &str, user: &str) -> Result<Record, RecordError> {
        let path = user_file(state_dir, "published", server, user);
        let text = match read_state(&path, MAX_RECORD_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => {
                return Ok(Record {
                    path,
                    files: BTreeMap::new(),
                });
            }
            Err(StateReadError::TooLarge) => return Err(RecordError::TooLarge(path)),
            Err(StateReadError::Io(source)) => return Err(RecordError::Io { path, source }),
        };
        match serde_json::from_slice(&text) {
            Ok(files) => Ok(Record { path, files }),
            Err(source) => Err(RecordError::Corrupt { path, source }),
        }
    }

    /// The path `name` was published from, if this client published it.
    pub(super) fn get(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(PathBuf::as_path)
    }

    /// Records a publication and writes the record.
    pub(super) fn insert(&mut self, name: &str, path: PathBuf) -> Result<(), RecordError> {
        self.files.insert(name.to_owned(), path);
        self.save()
    }

    /// Forgets a publication and writes the record.
    pub(super) fn remove(&mut self, name: &str) -> Result<(), RecordError> {
        if self.files.remove(name).is_some() {
            self.save()?;
        }
        Ok(())
    }

    /// Keeps only the names `keep` accepts; writes the record when that changed it.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> Result<(), RecordError> {
        let before = self.files.len();
        self.files.retain(|name, _| keep(name));
        if self.files.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Forgets everything (the user was unregistered) and removes the file.
    pub(super) fn clear(&mut self) -> Result<(), RecordError> {
        self.files.clear();
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RecordError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn save(&self) -> Result<(), RecordError> {
        let io_err = |source| RecordError::Io {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_vec_pretty(&self.files).expect("a map of strings encodes");
        write_atomically(&self.path, &text).map_err(io_err)
    }
}

/// Writes a state file whole to a temporary file in its folder (created if need
/// be), synced, then renamed over `path`: a crash leaves the old or the new content,
/// never half of one, and a link at `path` is replaced, never written through.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_reload_and_forgets_what_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record::load(dir.path(), "127.0.0.1:9090", "alice").unwrap();
        assert!(r.get("a").is_none());
        r.insert("a", PathBuf::from("/share/a")).unwrap();
        r.insert("b", PathBuf::from("/share/b")).unwrap();
        r.remove("a").unwrap();
        let mut r = Record::load(dir.path(), "127.0.0.1:9090", "alice").unwrap();
        assert_eq!(r.get("b"), Some(Path::new("/share/b")));
        assert!(r.get("a").is_none());
        // Another server or user has a record of its own.
        assert!(
            Record::load(dir.path(), "127.0.0.1:9091", "alice")
                .unwrap()
                .get("b")
                .is_none()
        );
        r.retain(|n| n != "b").unwrap();
        assert!(
            Record::load(dir.path(), "127.0.0.1:9090", "alice")
                .unwrap()
                .get("b")
                .is_none()
        );
    }

    #[test]
    fn names_become_single_distinct_path_components() {
        assert_eq!(component("alice"), "alice");
        assert_eq!(component("../x"), "%2E.%2Fx");
        assert_eq!(component("127.0.0.1:9090"), "127.0.0.1%3A9090");
        assert_ne!(component("a/b"), component("a%2Fb"));
        assert!(!component("..").contains('/'));
        assert_ne!(component(".."), "..");
    }

    #[test]
    fn a_record_that_is_a_fifo_or_a_hard_link_is_refused_and_never_written_through() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record::load(dir.path(), "s:1", "u").unwrap();
        r.insert("a", PathBuf::from("/a")).unwrap();
        let path = r.path.clone();
        // A FIFO: an error at once (it hung the shell).
        std::fs::remove_file(&path).unwrap();
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other precondition.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            Record::load(dir.path(), "s:1", "u"),
            Err(RecordError::Io { .. })
        ));
        // A hard link to another file: refused; a save replaces the name only.
        std::fs::remove_file(&path).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"{}").unwrap();
        std::fs::hard_link(&other, &path).unwrap();
        assert!(matches!(
            Record::load(dir.path(), "s:1", "u"),
            Err(RecordError::Io { .. })
        ));
        r.insert("b", PathBuf::from("/b")).unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"{}");
        let r = Record::load(dir.path(), "s:1", "u").unwrap();
        assert_eq!(r.get("b"), Some(Path::new("/b")));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record::load(dir.path(), "s:1", "u").unwrap();
        r.insert("a", PathBuf::from("/a")).unwrap();
        std::fs::write(&r.path, b"{not json").unwrap();
        assert!(matches!(
            Record::load(dir.path(), "s:1", "u"),
            Err(RecordError::Corrupt { .. })
        ));
    }
}
