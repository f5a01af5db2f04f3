//! The watch list of one user at one index server: its patterns and, per pattern,
//! the names it has fetched, kept in `<state>/watches/<server>/<user>.json`.
//!
//! Owns: the bounds of the list, its file format, validating what a file holds, and
//! setting aside a file that cannot be trusted (renamed `.bad`, one warning). Does
//! not own: reading and writing state files (`published::read_state`,
//! `published::write_atomically`), when patterns are searched (`poll`).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::index::STATEMENT_MAX_FIELD;
use crate::client::published::{self, StateReadError};
use crate::proto::text::escape_for_terminal;

/// Watches of one user at one server. Each costs one SEARCH per interval: 64 at the
/// 60 s default are about one request a second, the most a shell should add to a
/// lab's index server by itself.
pub(crate) const MAX_WATCHES: usize = 64;

/// Fetched names one watch remembers. Past this the oldest is forgotten (a local
/// file of that name still keeps it from being fetched again); 256 bounds the file
/// and the time a match is looked up in.
pub(crate) const MAX_REMEMBERED: usize = 256;

/// Largest watch file read: the largest list this client writes (every pattern and
/// name 255 bytes, each byte escaped to two in JSON, plus the punctuation), so a file
/// above it was not written by this client and is not read into memory.
const MAX_FILE_BYTES: u64 =
    (MAX_WATCHES * (MAX_REMEMBERED + 1) * (2 * STATEMENT_MAX_FIELD + 16) + 1024) as u64;

/// The file as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    watches: Vec<StoredWatch>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredWatch {
    pattern: String,
    fetched: Vec<String>,
}

/// Why a watch file is not trusted.
#[derive(Debug, thiserror::Error)]
enum Untrusted {
    #[error("{0}")]
    Read(#[source] StateReadError),
    #[error("not a watch list: {0}")]
    Parse(#[source] serde_json::Error),
    #[error("more than {MAX_WATCHES} watches")]
    TooManyWatches,
    #[error("more than {MAX_REMEMBERED} names in one watch")]
    TooManyNames,
    #[error(
        "{what} \"{shown}\" is not 1 to {STATEMENT_MAX_FIELD} bytes without control \
         characters or blanks",
        shown = escape_for_terminal(.value)
    )]
    Invalid { what: &'static str, value: String },
}

/// Why WATCH did not add a pattern.
#[derive(Debug, thiserror::Error)]
pub(super) enum AddError {
    #[error("{MAX_WATCHES} patterns are watched: UNWATCH one first")]
    Full,
    #[error("a pattern is 1 to {STATEMENT_MAX_FIELD} bytes without control characters")]
    Invalid,
    #[error("cannot write the watch list: {0}")]
    Save(#[source] io::Error),
}

/// What WATCH did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Added {
    New,
    AlreadyWatched,
}

/// One watched pattern and the names it fetched, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watch {
    pattern: String,
    fetched: VecDeque<String>,
}

/// The watch list of one user at one index server.
#[derive(Debug)]
pub(super) struct List {
    path: PathBuf,
    watches: Vec<Watch>,
}

/// Whether `s` may be a pattern or a remembered name: what the index takes as a field
/// (1 to 255 bytes) and prints safely (no control characters), with no blank (the
/// shell reads a pattern as one word; the index refuses names with spaces).
pub(super) fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= STATEMENT_MAX_FIELD
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

impl List {
    /// The list of `user` at `server` (`host:port`), and a warning when its file was
    /// set aside. A file that cannot be read as a list this client wrote (not a
    /// regular file, too big, not JSON, out of bounds, a name that is not one) is
    /// renamed `<user>.json.bad` and the list starts empty: it is never trusted.
    pub(super) fn load(state_dir: &Path, server: &str, user: &str) -> (List, Option<String>) {
        let path = published::user_file(state_dir, "watches", server, user);
        let empty = |path| List {
            path,
            watches: Vec::new(),
        };
        let read = match published::read_state(&path, MAX_FILE_BYTES) {
            Ok(None) => return (empty(path), None),
            Ok(Some(text)) => parse(&text),
            Err(e) => Err(Untrusted::Read(e)),
        };
        match read {
            Ok(watches) => (List { path, watches }, None),
            Err(why) => {
                let warning = set_aside(&path, &why);
                (empty(path), Some(warning))
            }
        }
    }

    /// Removes the list of `user` at `server` (the user was unregistered: the next
    /// owner of the name starts without it).
    pub(super) fn forget(state_dir: &Path, server: &str, user: &str) -> io::Result<()> {
        let path = published::user_file(state_dir, "watches", server, user);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn patterns(&self) -> Vec<String> {
        self.watches.iter().map(|w| w.pattern.clone()).collect()
    }

    fn find(&self, pattern: &str) -> Option<usize> {
        self.watches.iter().position(|w| w.pattern == pattern)
    }

    /// Adds a pattern and writes the list (unchanged in memory when that fails).
    pub(super) fn add(&mut self, pattern: &str) -> Result<Added, AddError> {
        if !valid(pattern) {
            return Err(AddError::Invalid);
        }
        if self.find(pattern).is_some() {
            return Ok(Added::AlreadyWatched);
        }
        if self.watches.len() >= MAX_WATCHES {
            return Err(AddError::Full);
        }
        self.watches.push(Watch {
            pattern: pattern.to_owned(),
            fetched: VecDeque::new(),
        });
        if let Err(e) = self.save() {
            self.watches.pop();
            return Err(AddError::Save(e));
        }
        Ok(Added::New)
    }

    /// Removes a pattern and writes the list; `Ok(false)` when it was not watched.
    pub(super) fn remove(&mut self, pattern: &str) -> io::Result<bool> {
        let Some(i) = self.find(pattern) else {
            return Ok(false);
        };
        let removed = self.watches.remove(i);
        if let Err(e) = self.save() {
            self.watches.insert(i, removed);
            return Err(e);
        }
        Ok(true)
    }

    /// Whether the watch of `pattern` fetched `name` before.
    pub(super) fn fetched(&self, pattern: &str, name: &str) -> bool {
        self.find(pattern)
            .is_some_and(|i| self.watches[i].fetched.iter().any(|n| n == name))
    }

    /// Remembers that the watch of `pattern` fetched `name`, and writes the list.
    /// Returns the name forgotten to make room, if one was. Nothing happens when the
    /// pattern is no longer watched.
    pub(super) fn remember(&mut self, pattern: &str, name: &str) -> io::Result<Option<String>> {
        let Some(i) = self.find(pattern) else {
            return Ok(None);
        };
        let fetched = &mut self.watches[i].fetched;
        if !valid(name) || fetched.iter().any(|n| n == name) {
            return Ok(None);
        }
        let forgotten = if fetched.len() >= MAX_REMEMBERED {
            fetched.pop_front()
        } else {
            None
        };
        fetched.push_back(name.to_owned());
        self.save().map(|()| forgotten)
    }

    /// One line per watch for WATCHES: the pattern (escaped) and how many names it
    /// remembers.
    pub(super) fn lines(&self) -> Vec<String> {
        self.watches
            .iter()
            .map(|w| {
                format!(
                    "{} fetched {}",
                    escape_for_terminal(&w.pattern),
                    w.fetched.len()
                )
            })
            .collect()
    }

    fn save(&self) -> io::Result<()> {
        let stored = Stored {
            watches: self
                .watches
                .iter()
                .map(|w| StoredWatch {
                    pattern: w.pattern.clone(),
                    fetched: w.fetched.iter().cloned().collect(),
                })
                .collect(),
        };
        let text = serde_json::to_vec_pretty(&stored).map_err(io::Error::other)?;
        published::write_atomically(&self.path, &text)
    }
}

/// The watches a file holds, checked against every bound; duplicates are dropped.
fn parse(text: &[u8]) -> Result<Vec<Watch>, Untrusted> {
    let stored: Stored = serde_json::from_slice(text).map_err(Untrusted::Parse)?;
    if stored.watches.len() > MAX_WATCHES {
        return Err(Untrusted::TooManyWatches);
    }
    let mut watches: Vec<Watch> = Vec::with_capacity(stored.watches.len());
    for w in stored.watches {
        if w.fetched.len() > MAX_REMEMBERED {
            return Err(Untrusted::TooManyNames);
        }
        let invalid = |what, value: &str| Untrusted::Invalid {
            what,
            value: value.to_owned(),
        };
        if !valid(&w.pattern) {
            return Err(invalid("pattern", &w.pattern));
        }
        if let Some(bad) = w.fetched.iter().find(|n| !valid(n)) {
            return Err(invalid("file name", bad));
        }
        if watches.iter().any(|o| o.pattern == w.pattern) {
            continue;
        }
        let mut fetched = VecDeque::with_capacity(w.fetched.len());
        for name in w.fetched {
            if !fetched.contains(&name) {
                fetched.push_back(name);
            }
        }
        watches.push(Watch {
            pattern: w.pattern,
            fetched,
        });
    }
    Ok(watches)
}

/// Renames an untrusted watch file to `<name>.bad`; the warning to show.
fn set_aside(path: &Path, why: &Untrusted) -> String {
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    let bad = PathBuf::from(bad);
    match std::fs::rename(path, &bad) {
        Ok(()) => format!(
            "watch list {} not used ({why}): set aside as {}; no pattern is watched",
            path.display(),
            bad.display()
        ),
        Err(e) => format!(
            "watch list {} not used ({why}), and it cannot be set aside ({e}); no \
             pattern is watched",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:9090";

    fn loaded(dir: &Path) -> List {
        let (list, warning) = List::load(dir, SERVER, "ann");
        assert_eq!(warning, None);
        list
    }

    #[test]
    fn a_list_survives_a_reload_per_server_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = loaded(dir.path());
        assert_eq!(l.add(".pdf").unwrap(), Added::New);
        assert_eq!(l.add(".pdf").unwrap(), Added::AlreadyWatched);
        l.add("lab").unwrap();
        l.remember(".pdf", "a.pdf").unwrap();
        l.remember(".pdf", "a.pdf").unwrap();
        // Not watched: nothing remembered.
        l.remember("nope", "x").unwrap();
        let l = loaded(dir.path());
        assert_eq!(l.patterns(), [".pdf", "lab"]);
        assert!(l.fetched(".pdf", "a.pdf"));
        assert!(!l.fetched("lab", "a.pdf"));
        assert_eq!(l.lines(), [".pdf fetched 1", "lab fetched 0"]);
        let (other, _) = List::load(dir.path(), SERVER, "bob");
        assert!(other.patterns().is_empty());
        let mut l = l;
        assert!(l.remove(".pdf").unwrap());
        assert!(!l.remove(".pdf").unwrap());
        assert_eq!(loaded(dir.path()).patterns(), ["lab"]);
        List::forget(dir.path(), SERVER, "ann").unwrap();
        List::forget(dir.path(), SERVER, "ann").unwrap();
        assert!(loaded(dir.path()).patterns().is_empty());
    }

    #[test]
    fn at_most_64_watches_and_256_names_each() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = loaded(dir.path());
        for i in 0..MAX_WATCHES {
            l.add(&format!("p{i}")).unwrap();
        }
        assert!(matches!(l.add("one-more"), Err(AddError::Full)));
        assert_eq!(l.add("p0").unwrap(), Added::AlreadyWatched);
        for i in 0..MAX_REMEMBERED {
            assert_eq!(l.remember("p0", &format!("f{i}")).unwrap(), None);
        }
        assert_eq!(
            l.remember("p0", "newest").unwrap().as_deref(),
            Some("f0"),
            "the oldest name is forgotten"
        );
        let l = loaded(dir.path());
        assert!(l.fetched("p0", "newest") && l.fetched("p0", "f1"));
        assert!(!l.fetched("p0", "f0"));
        let bytes = std::fs::metadata(&l.path).unwrap().len();
        assert!(bytes < MAX_FILE_BYTES, "{bytes}");
    }

    #[test]
    fn patterns_and_names_must_be_one_printable_field() {
        assert!(valid(".pdf") && valid("ñandú") && valid(&"x".repeat(255)));
        for bad in ["", "a b", "a\x1bb", "a\nb", &"x".repeat(256)] {
            assert!(!valid(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut l = loaded(dir.path());
        assert!(matches!(l.add("a\x07"), Err(AddError::Invalid)));
    }

    fn set_aside_with(contents: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = published::user_file(dir.path(), "watches", SERVER, "ann");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        let (l, warning) = List::load(dir.path(), SERVER, "ann");
        assert!(l.patterns().is_empty());
        assert!(!path.exists());
        let mut bad = path.into_os_string();
        bad.push(".bad");
        assert_eq!(std::fs::read(&bad).unwrap(), contents);
        warning.expect("a warning")
    }

    #[test]
    fn an_untrusted_file_is_set_aside_with_one_warning() {
        let w = set_aside_with(b"{not json");
        assert!(
            w.contains("not a watch list") && w.contains(".json.bad"),
            "{w}"
        );
        let w = set_aside_with(br#"{"watches":[{"pattern":"a","fetched":["x\u001b[2J"]}]}"#);
        assert!(
            w.contains("file name \"x\\x1b[2J\" is not 1 to 255 bytes"),
            "{w}"
        );
        assert!(!w.contains('\x1b'));
        let w = set_aside_with(br#"{"watches":[],"extra":1}"#);
        assert!(w.contains("unknown field"), "{w}");
        let many: Vec<String> = (0..=MAX_WATCHES)
            .map(|i| format!(r#"{{"pattern":"p{i}","fetched":[]}}"#))
            .collect();
        let w = set_aside_with(format!(r#"{{"watches":[{}]}}"#, many.join(",")).as_bytes());
        assert!(w.contains("more than 64 watches"), "{w}");
    }

    #[test]
    fn a_file_that_is_not_a_regular_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = published::user_file(dir.path(), "watches", SERVER, "ann");
        std::fs::create_dir_all(&path).unwrap();
        let (l, warning) = List::load(dir.path(), SERVER, "ann");
        assert!(l.patterns().is_empty());
        assert!(warning.unwrap().contains("set aside"));
        let mut bad = path.clone().into_os_string();
        bad.push(".bad");
        assert!(Path::new(&bad).is_dir() && !path.exists());
    }

    #[test]
    fn duplicates_in_a_file_are_dropped() {
        let watches = parse(
            br#"{"watches":[{"pattern":"a","fetched":["x","x"]},{"pattern":"a","fetched":[]}]}"#,
        )
        .unwrap();
        assert_eq!(watches.len(), 1);
        assert_eq!(watches[0].fetched.len(), 1);
    }
}
