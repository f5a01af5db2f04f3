//! The dashboard's questions to the registry: the user table, the file lists and
//! the search box, each answered under one read lock ([`Registry::view`]).
//!
//! Owns: what each table shows, its order and its cap. Does not own: the state or
//! the search itself (`registry`, `search`), the JSON shapes (`http`).

use crate::server::registry::{PeerAddr, Registry};

/// One search result for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchHit {
    pub(crate) user: String,
    pub(crate) addr: PeerAddr,
    pub(crate) file: String,
    pub(crate) description: String,
}

/// Every registered user, by name: whether and where it is connected, and how many
/// files it publishes (the dashboard's user table).
pub(crate) fn users_overview(registry: &Registry) -> Vec<(String, Option<PeerAddr>, usize)> {
    let view = registry.view();
    let mut all: Vec<_> = view
        .users()
        .map(|(name, addr, files)| (name.to_owned(), addr, files.len()))
        .collect();
    all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    all
}

/// At most `cap` publications (owner, file, description), of `user` only when given,
/// by owner then publication order (the dashboard's file lists).
pub(crate) fn publications(
    registry: &Registry,
    user: Option<&str>,
    cap: usize,
) -> Vec<[String; 3]> {
    let view = registry.view();
    let mut owners: Vec<_> = match user {
        Some(name) => view.user(name).into_iter().collect(),
        None => view.users().map(|(name, _, files)| (name, files)).collect(),
    };
    owners.sort_unstable_by(|a, b| a.0.cmp(b.0));
    owners
        .into_iter()
        .flat_map(|(owner, files)| {
            files
                .iter()
                .map(move |(f, d)| [owner.to_owned(), f.clone(), d.clone()])
        })
        .take(cap)
        .collect()
}

/// At most `cap` results of a SEARCH for `pattern`: the same matches as SEARCH,
/// through the same index, never more than its `--max-search-results`.
pub(crate) fn search_results(registry: &Registry, pattern: &str, cap: usize) -> Vec<SearchHit> {
    let view = registry.view();
    let mut hits = Vec::new();
    view.for_each_match(pattern, cap, |m| {
        hits.push(SearchHit {
            user: m.owner.to_owned(),
            addr: m.addr,
            file: m.file.to_owned(),
            description: m.description.to_owned(),
        });
    });
    hits
}
