//! Tab completion for the line editor: command words, user names and remote file
//! names the shell saw in its last list replies, and local paths under the share
//! folder.
//!
//! Owns: which word of a line is being completed and its candidates, and the names
//! remembered from list replies ([`Names`], filled by the session, read here). Does
//! not own: the line editor (`shell`) or the list requests (`client`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;

use super::command::{self, COMMANDS, Param};

/// Names remembered from one list reply. A server may list many users or files; the
/// completer only needs enough to be useful, and the shell must not keep an unbounded
/// copy of whatever a server sends.
const MAX_NAMES: usize = 10_000;

/// Directory entries looked at for one path completion: enough for any lab folder,
/// and a Tab in a huge folder still answers at once.
const MAX_DIR_ENTRIES: usize = 10_000;

/// Names seen in the last list replies, for completion.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// From the last LIST_USERS or SEARCH (the owners).
    users: Vec<String>,
    /// From the last LIST_CONTENT.
    files: Vec<String>,
    /// The watch list's patterns (for UNWATCH).
    watched: Vec<String>,
}

/// The names shared by the session (which writes them after list commands) and the
/// line editor's helper (which reads them on Tab).
pub(super) type SharedNames = Arc<Mutex<Names>>;

impl Names {
    pub(super) fn set_users<'a>(&mut self, users: impl IntoIterator<Item = &'a str>) {
        self.users = bounded_unique(users);
    }

    pub(super) fn set_files<'a>(&mut self, files: impl IntoIterator<Item = &'a str>) {
        self.files = bounded_unique(files);
    }

    pub(super) fn set_watched<'a>(&mut self, patterns: impl IntoIterator<Item = &'a str>) {
        self.watched = bounded_unique(patterns);
    }
}

fn bounded_unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = names
        .into_iter()
        .take(MAX_NAMES)
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a word of a command line is, for completion.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    Command,
    User,
    RemoteFile,
    LocalPath,
    Watched,
    Nothing,
}

/// The slot of argument `index` (1 is the first argument) of `command`, from the
/// command table.
fn slot(command: &str, index: usize) -> Slot {
    if index == 0 {
        return Slot::Command;
    }
    let param = command::find(command).and_then(|c| c.params.get(index - 1));
    match param {
        Some(Param::User) => Slot::User,
        Some(Param::ListedFile) => Slot::RemoteFile,
        Some(Param::LocalPath) => Slot::LocalPath,
        Some(Param::Watched) => Slot::Watched,
        Some(Param::NewUser | Param::Pattern | Param::Description | Param::Job | Param::Switch)
        | None => Slot::Nothing,
    }
}

/// The line editor's helper: completion only (no hints, colours or validation).
pub(super) struct ShellHelper {
    names: SharedNames,
    share: PathBuf,
}

impl ShellHelper {
    pub(super) fn new(names: SharedNames, share: PathBuf) -> ShellHelper {
        ShellHelper { names, share }
    }

    /// Where the replaced word starts in `line`, and its candidates.
    fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(char::is_whitespace).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &before[start..];
        let mut words = before[..start].split_whitespace();
        let command = words.next().unwrap_or("");
        let index = if command.is_empty() {
            0
        } else {
            1 + words.count()
        };
        let found = match slot(command, index) {
            Slot::Command => {
                let upper = word.to_ascii_uppercase();
                COMMANDS
                    .iter()
                    .map(|c| c.word)
                    .filter(|w| w.starts_with(&upper))
                    .map(|w| pair(w, format!("{w} ")))
                    .collect()
            }
            Slot::User => self.matching(word, |n| &n.users),
            Slot::RemoteFile => self.matching(word, |n| &n.files),
            Slot::LocalPath => paths(&self.share, word),
            Slot::Watched => self.matching(word, |n| &n.watched),
            Slot::Nothing => Vec::new(),
        };
        (start, found)
    }

    fn matching(&self, word: &str, list: impl Fn(&Names) -> &Vec<String>) -> Vec<Pair> {
        let names = self.names.lock();
        list(&names)
            .iter()
            .filter(|n| n.starts_with(word))
            .map(|n| pair(n, format!("{n} ")))
            .collect()
    }
}

fn pair(display: &str, replacement: String) -> Pair {
    Pair {
        display: crate::proto::text::escape_for_terminal(display).into_owned(),
        replacement,
    }
}

/// Paths that complete `word`: relative ones under `share` (where the shell resolves
/// them), absolute ones as they are. Folders end with `/`; hidden entries only when
/// the typed name starts with a dot.
fn paths(share: &Path, word: &str) -> Vec<Pair> {
    let (dir_part, prefix) = match word.rfind('/') {
        Some(i) => (&word[..=i], &word[i + 1..]),
        None => ("", word),
    };
    let dir = if dir_part.starts_with('/') {
        PathBuf::from(dir_part)
    } else {
        share.join(dir_part)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<Pair> = entries
        .take(MAX_DIR_ENTRIES)
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            // Names with blanks cannot be typed as one argument.
            if name.contains(char::is_whitespace) {
                return None;
            }
            let is_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
            let (display, replacement) = if is_dir {
                (format!("{name}/"), format!("{dir_part}{name}/"))
            } else {
                (name.clone(), format!("{dir_part}{name} "))
            };
            Some(Pair {
                display,
                replacement,
            })
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for ShellHelper {}

impl rustyline::Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(share: &Path) -> ShellHelper {
        let names = SharedNames::default();
        {
            let mut n = names.lock();
            n.set_users(["alice", "bob", "albert"]);
            n.set_files(["notes.txt", "news.md", "big.bin"]);
            n.set_watched([".pdf", "lab"]);
        }
        ShellHelper::new(names, share.to_path_buf())
    }

    fn complete(h: &ShellHelper, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = h.candidates(line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn command_words_by_case_insensitive_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let h = helper(dir.path());
        assert_eq!(complete(&h, "LIST_US"), (0, vec!["LIST_USERS ".into()]));
        assert_eq!(
            complete(&h, "  list"),
            (2, vec!["LIST_USERS ".into(), "LIST_CONTENT ".into()])
        );
        assert_eq!(complete(&h, "xyz").1, Vec::<String>::new());
        assert_eq!(complete(&h, "").1.len(), COMMANDS.len());
    }

    #[test]
    fn user_names_from_the_last_list_in_the_user_argument() {
        let dir = tempfile::tempdir().unwrap();
        let h = helper(dir.path());
        assert_eq!(
            complete(&h, "CONNECT al"),
            (8, vec!["albert ".into(), "alice ".into()])
        );
        assert_eq!(complete(&h, "get_file b"), (9, vec!["bob ".into()]));
        assert_eq!(complete(&h, "LIST_CONTENT ").1.len(), 3);
        // Not a user slot.
        assert!(complete(&h, "SEARCH al").1.is_empty());
        assert!(complete(&h, "CONNECT alice a").1.is_empty());
    }

    #[test]
    fn remote_file_names_from_the_last_list_content() {
        let dir = tempfile::tempdir().unwrap();
        let h = helper(dir.path());
        assert_eq!(
            complete(&h, "GET_FILE alice n"),
            (15, vec!["news.md ".into(), "notes.txt ".into()])
        );
        assert_eq!(complete(&h, "DELETE b"), (7, vec!["big.bin ".into()]));
    }

    #[test]
    fn unwatch_completes_the_watched_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let h = helper(dir.path());
        assert_eq!(complete(&h, "UNWATCH l"), (8, vec!["lab ".into()]));
        assert_eq!(complete(&h, "unwatch ").1.len(), 2);
        // WATCH takes a new pattern: nothing to complete.
        assert!(complete(&h, "WATCH l").1.is_empty());
        assert_eq!(complete(&h, "WATCHE"), (0, vec!["WATCHES ".into()]));
    }

    #[test]
    fn local_paths_relative_to_the_share_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.pdf"), b"x").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("labs")).unwrap();
        std::fs::write(dir.path().join("labs/lab1.txt"), b"x").unwrap();
        let h = helper(dir.path());
        assert_eq!(complete(&h, "PUBLISH re"), (8, vec!["report.pdf ".into()]));
        assert_eq!(
            complete(&h, "PUBLISH "),
            (8, vec!["labs/".into(), "report.pdf ".into()])
        );
        assert_eq!(
            complete(&h, "PUBLISH labs/l"),
            (8, vec!["labs/lab1.txt ".into()])
        );
        assert_eq!(complete(&h, "PUBLISH .h").1, vec![".hidden ".to_owned()]);
        assert_eq!(
            complete(&h, "GET_FILE alice notes.txt rep"),
            (25, vec!["report.pdf ".into()])
        );
        // The description of PUBLISH is free text.
        assert!(complete(&h, "PUBLISH report.pdf re").1.is_empty());
    }

    #[test]
    fn names_are_bounded_and_deduplicated() {
        let mut n = Names::default();
        n.set_users(["b", "a", "b"]);
        assert_eq!(n.users, ["a", "b"]);
        let many: Vec<String> = (0..MAX_NAMES + 5).map(|i| i.to_string()).collect();
        n.set_files(many.iter().map(String::as_str));
        assert_eq!(n.files.len(), MAX_NAMES);
    }
}
