//! The dashboard's questions to the registry: the user table, the file lists and
//! the search box, each answered a page at a time under one read lock
//! ([`Registry::view`]).
//!
//! Owns: what each table shows, its order, its pages (at most [`MAX_PAGE`] rows and
//! about [`PAGE_BYTES`] bytes, continued from a cursor), and the work one page may
//! do under the lock. Does not own: the state or the search itself (`registry`,
//! `search`), the JSON shapes and the reply budget (`http`).
//!
//! Pages are read from the state as it is when each is read: a user or file added
//! or removed between two pages shows or not depending on where it sorts.

use std::ops::Bound;

use crate::server::registry::{PeerAddr, Registry};

/// Rows of a page when the request does not say (`?limit=`).
pub(crate) const DEFAULT_PAGE: usize = 500;

/// Most rows of one page, whatever `?limit=` asks.
pub(crate) const MAX_PAGE: usize = 1000;

/// A page stops before it passes this many bytes of names and descriptions (each
/// row counted with [`ROW_OVERHEAD`]), so a page's JSON is at most a few hundred
/// KiB whatever the names hold (a field is at most 256 bytes; JSON escapes control
/// characters in six).
pub(crate) const PAGE_BYTES: usize = 256 * 1024;

/// What a row costs beyond its strings: keys, punctuation, an address.
const ROW_OVERHEAD: usize = 96;

/// Users without files a `/api/files` page may pass over before it ends (short),
/// with a cursor to go on from: bounds the page's work under the lock when most
/// users publish nothing.
const OWNERS_PER_PAGE: usize = 4 * MAX_PAGE;

/// One page of rows, and the cursor of the next page (`None`: this is the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page<T> {
    pub(crate) rows: Vec<T>,
    pub(crate) next: Option<String>,
}

/// A row of the user table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) name: String,
    pub(crate) addr: Option<PeerAddr>,
    pub(crate) files: usize,
}

/// A row of a file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRow {
    pub(crate) user: String,
    pub(crate) file: String,
    pub(crate) description: String,
}

/// One search result for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchHit {
    pub(crate) user: String,
    pub(crate) addr: PeerAddr,
    pub(crate) file: String,
    pub(crate) description: String,
}

/// Counts rows and bytes against a page's limits.
struct Fill {
    limit: usize,
    bytes: usize,
}

impl Fill {
    fn new(limit: usize) -> Fill {
        Fill {
            limit: limit.clamp(1, MAX_PAGE),
            bytes: 0,
        }
    }

    /// Whether a page of `rows` rows is full before its next row.
    fn full(&self, rows: usize) -> bool {
        rows >= self.limit || self.bytes >= PAGE_BYTES
    }

    fn add(&mut self, strings: &[&str]) {
        self.bytes += ROW_OVERHEAD + strings.iter().map(|s| s.len()).sum::<usize>();
    }
}

/// The registered users after the name `after`, by name: at most `limit` (and
/// [`MAX_PAGE`]) rows; the cursor of the next page is the last name.
pub(crate) fn users_page(registry: &Registry, after: Option<&str>, limit: usize) -> Page<UserRow> {
    let view = registry.view();
    let mut fill = Fill::new(limit);
    let mut rows = Vec::new();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    for (name, addr, files) in view.users_after(start) {
        if fill.full(rows.len()) {
            let next = rows.last().map(|r: &UserRow| r.name.clone());
            return Page { rows, next };
        }
        fill.add(&[name]);
        rows.push(UserRow {
            name: name.to_owned(),
            addr,
            files: files.len(),
        });
    }
    Page { rows, next: None }
}

/// A `/api/files` cursor: the owner and the file of the last row, separated by a
/// space (names hold no whitespace).
fn file_cursor(owner: &str, file: &str) -> String {
    format!("{owner} {file}")
}

/// The publications (owner, file, description) of `user` only when given, by owner
/// then publication order, from after the cursor `after` (see [`file_cursor`]): at
/// most `limit` (and [`MAX_PAGE`]) rows. If the cursor's file was deleted meanwhile,
/// its owner's files are listed again from the first.
pub(crate) fn files_page(
    registry: &Registry,
    user: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Page<FileRow> {
    let view = registry.view();
    let (after_owner, after_file) = match after.map(|a| a.split_once(' ').unwrap_or((a, ""))) {
        Some((o, f)) => (Some(o), f),
        None => (None, ""),
    };
    let owners: Box<dyn Iterator<Item = _>> = match user {
        Some(name) => Box::new(view.user(name).into_iter()),
        None => {
            let start = after_owner.map_or(Bound::Unbounded, Bound::Included);
            Box::new(
                view.users_after(start)
                    .map(|(name, _, files)| (name, files)),
            )
        }
    };
    let mut fill = Fill::new(limit);
    let mut rows: Vec<FileRow> = Vec::new();
    for (visited, (owner, files)) in owners.enumerate() {
        if visited >= OWNERS_PER_PAGE {
            // Passed over many users without files: end the page here.
            let next = file_cursor(owner, "");
            return Page {
                rows,
                next: Some(next),
            };
        }
        let skip = match after_owner {
            Some(o) if o == owner => files.get_index_of(after_file).map_or(0, |i| i + 1),
            _ => 0,
        };
        for (file, description) in files.iter().skip(skip) {
            if fill.full(rows.len()) {
                let next = rows.last().map(|r| file_cursor(&r.user, &r.file));
                return Page { rows, next };
            }
            fill.add(&[owner, file, description]);
            rows.push(FileRow {
                user: owner.to_owned(),
                file: file.clone(),
                description: description.clone(),
            });
        }
    }
    Page { rows, next: None }
}

/// At most `limit` results of a SEARCH for `pattern`, from the search position
/// `after` on: the same matches as SEARCH, through the same index, never more than
/// its `--max-search-results` per page. The cursor of the next page is a search
/// position (a number).
pub(crate) fn search_page(
    registry: &Registry,
    pattern: &str,
    after: Option<u32>,
    limit: usize,
) -> Page<SearchHit> {
    let mut view = registry.view();
    let mut rows = Vec::new();
    let next = view.search(pattern, after.unwrap_or(0), limit, |m| {
        rows.push(SearchHit {
            user: m.owner.to_owned(),
            addr: m.addr,
            file: m.file.to_owned(),
            description: m.description.to_owned(),
        });
    });
    Page {
        rows,
        next: next.map(|id| id.to_string()),
    }
}
