//! The index server's state: registered users, where connected users listen, and what
//! each user published, behind one `parking_lot::RwLock`.
//!
//! Owns: the state rules of PROTOCOL.md section 1 and the result codes that follow
//! from the state (user exists, is connected, already published, ...). Every change
//! is a [`Change`] value applied by one function, so a journal can record exactly
//! what was applied. Lists are encoded under the read lock into a reply buffer, so
//! readers run in parallel and writers hold the lock only for a map update. With a
//! data directory ([`Registry::open`]) each applied change is appended to the journal
//! under the same write lock, so journal order is application order, and the result
//! code is returned only after the append (and, with `--fsync`, the group fsync).
//! Does not own: request decoding or field validation (`index`), the entry encoding
//! (`proto::index`), sockets (`server`), the files and their format (`journal`),
//! when and how the journal is compacted (`compaction`), the search index and its
//! table (`search`), the dashboard's queries (`http`, through [`View`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::{RwLock, RwLockReadGuard};

pub(crate) use super::change::{Change, PeerAddr};
use super::compaction::{Capture, Compaction, Files};
use super::journal::{Journal, JournalError, Recovered, Replay, RestoredUser, StoreOptions};
use super::search::{self, Catalog, Match, Placement, Progress, SearchTable, Step};
use crate::proto::index::{self, OK, SearchList, Statement};
use crate::proto::wire::MAX_FIELD;

/// Default of `--max-search-results`: the most matches a SEARCH reply lists. 1000
/// entries are about 100 KB, a screenful of choices many times over, and what
/// OpenNap's MAX_RESULTS defaults to in spirit; `SEARCH ""` over a million
/// publications would otherwise be tens of megabytes for a 30-byte request.
pub(crate) const DEFAULT_MAX_SEARCH_RESULTS: usize = 1000;

/// Longest SEARCH pattern (bytes): the protocol's field limit, so no file name can be
/// longer than a pattern that is accepted. A longer one gets the any-other-error code.
pub(crate) const MAX_PATTERN: usize = MAX_FIELD;

/// How the registry answers SEARCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Most matches per reply (the count string says how many follow).
    pub max_results: usize,
    /// Scan every connected user's files instead of keeping an index (the bench's
    /// baseline; `--search-scan`).
    pub scan: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            max_results: DEFAULT_MAX_SEARCH_RESULTS,
            scan: false,
        }
    }
}

/// A request refused because it came from another host than the one `user`
/// connected from (see [`Registry::apply_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The address the user connected from.
    pub connected_from: IpAddr,
}

/// Shared (`Arc`) so that a compaction can capture the state in a few milliseconds
/// under the lock and write it out after releasing it: a user changed meanwhile is
/// copied on write (`Arc::make_mut`), the others are never copied.
#[derive(Debug, Default, Clone)]
struct User {
    /// File name -> description, in publication order.
    files: Files,
    /// When the registry keeps an index: where the user's files are in it.
    search: Placement,
}

impl AsRef<Files> for User {
    fn as_ref(&self) -> &Files {
        &self.files
    }
}

#[derive(Debug, Default)]
struct State {
    /// By name: the dashboard pages through them in order.
    users: BTreeMap<String, Arc<User>>,
    connected: Connected,
    /// `None`: SEARCH scans the connected users' files (`--search-scan`).
    search: Option<SearchTable>,
}

/// The connected users by name (sorted, so LIST_USERS is stable), with the encoded
/// LIST_USERS entries cached between changes: every user asking gets the same list,
/// so it is encoded once per change of the set, not once per request. The cache
/// cannot go stale: the map is only changed through [`Connected::insert`] and
/// [`Connected::remove`], which drop it.
#[derive(Debug, Default)]
struct Connected {
    map: BTreeMap<String, PeerAddr>,
    /// The count and the entries of a LIST_USERS reply (everything after the code).
    listing: OnceLock<Vec<u8>>,
}

impl Connected {
    fn insert(&mut self, user: String, addr: PeerAddr) {
        self.map.insert(user, addr);
        self.listing = OnceLock::new();
    }

    fn remove(&mut self, user: &str) {
        if self.map.remove(user).is_some() {
            self.listing = OnceLock::new();
        }
    }

    fn get(&self, user: &str) -> Option<&PeerAddr> {
        self.map.get(user)
    }

    fn contains_key(&self, user: &str) -> bool {
        self.map.contains_key(user)
    }

    fn iter(&self) -> impl Iterator<Item = (&String, &PeerAddr)> {
        self.map.iter()
    }

    /// The LIST_USERS reply after its code, encoded on first use since the last
    /// change (a reader arriving meanwhile waits for that one encoding).
    fn listing(&self) -> &[u8] {
        self.listing.get_or_init(|| {
            let mut out = Vec::with_capacity(16 + self.map.len() * 32);
            let users = self.map.iter().map(|(n, a)| (n.as_str(), a.ip, a.port));
            index::put_user_list(&mut out, users);
            out
        })
    }
}

/// The state rules.
impl State {
    fn new(search: SearchOptions) -> Self {
        State {
            search: (!search.scan).then(SearchTable::default),
            ..State::default()
        }
    }

    /// Applies `change` if the state allows it. Returns the operation's result code:
    /// 0 when applied, otherwise the code of PROTOCOL.md section 1 and nothing changed.
    fn apply(&mut self, change: &Change) -> u8 {
        let code = self.check(change);
        if code == OK {
            self.mutate(change.clone());
        }
        code
    }

    /// The result code `change` would get, without changing anything.
    fn check(&self, change: &Change) -> u8 {
        match change {
            Change::Register { user } => {
                if self.users.contains_key(user) {
                    return index::NAME_IN_USE;
                }
                OK
            }
            Change::Unregister { user } | Change::Connect { user, .. } => {
                if !self.users.contains_key(user) {
                    return index::NO_SUCH_USER;
                }
                if self.connected.contains_key(user) {
                    return index::ALREADY_CONNECTED;
                }
                OK
            }
            Change::Disconnect { user } => self.check_connected(user),
            Change::Publish { user, file, .. } | Change::Delete { user, file } => {
                let code = self.check_connected(user);
                if code != OK {
                    return code;
                }
                let published = self
                    .users
                    .get(user)
                    .is_some_and(|u| u.files.contains_key(file));
                match (change, published) {
                    (Change::Publish { .. }, true) => index::ALREADY_PUBLISHED,
                    (Change::Delete { .. }, false) => index::NOT_PUBLISHED,
                    _ => OK,
                }
            }
        }
    }

    /// Makes a change that [`State::check`] accepted (taking its strings).
    fn mutate(&mut self, change: Change) {
        let table = self.search.as_mut();
        match change {
            Change::Register { user } => {
                self.users.insert(user, Arc::default());
            }
            Change::Unregister { user } => {
                if let Some(u) = self.users.remove(&user)
                    && let Some(table) = table
                {
                    table.unregister(&u.files, &u.search);
                }
            }
            Change::Connect { user, ip, port } => {
                let addr = PeerAddr { ip, port };
                if let (Some(table), Some(u)) = (table, self.users.get_mut(&user)) {
                    let u = Arc::make_mut(u);
                    table.connect(&user, addr, &u.files, &mut u.search);
                }
                self.connected.insert(user, addr);
            }
            Change::Disconnect { user } => {
                if let (Some(table), Some(u)) = (table, self.users.get(&user)) {
                    table.disconnect(&u.search);
                }
                self.connected.remove(&user);
            }
            Change::Publish {
                user,
                file,
                description,
            } => {
                if let Some(u) = self.users.get_mut(&user) {
                    let u = Arc::make_mut(u);
                    if let Some(table) = table {
                        table.publish(&user, &u.files, &mut u.search, &file);
                    }
                    u.files.insert(file, description);
                }
            }
            Change::Delete { user, file } => {
                if let Some(u) = self.users.get_mut(&user) {
                    let u = Arc::make_mut(u);
                    if let Some((i, file, _)) = u.files.shift_remove_full(&file)
                        && let Some(table) = table
                    {
                        table.delete(&mut u.search, i, &file);
                    }
                }
            }
        }
    }

    /// Whether a request from `host` may act for `user`: anyone while `user` is not
    /// connected; once it is, only the host it connected from. `None` is the server
    /// itself (replay, the liveness prober), which may always act.
    fn may_act(&self, user: &str, host: Option<IpAddr>) -> Result<(), Refused> {
        match (host, self.connected.get(user)) {
            (Some(host), Some(addr)) if addr.ip != host => Err(Refused {
                connected_from: addr.ip,
            }),
            _ => Ok(()),
        }
    }

    /// 0 when `user` exists and is connected, 1 when it does not exist, 2 when it is
    /// not connected: the first codes of every operation a user performs.
    fn check_connected(&self, user: &str) -> u8 {
        if !self.users.contains_key(user) {
            index::NO_SUCH_USER
        } else if !self.connected.contains_key(user) {
            index::NOT_CONNECTED
        } else {
            OK
        }
    }
}

/// Searching: what the search table reads, and the one walk over the matches.
impl State {
    /// Builds the search table from scratch over the connected users' files (the
    /// others join at their first CONNECT).
    fn build_search(&mut self) {
        let mut table = SearchTable::default();
        for (name, user) in &mut self.users {
            if let Some(addr) = self.connected.get(name) {
                let user = Arc::make_mut(user);
                table.connect(name, *addr, &user.files, &mut user.search);
            }
        }
        self.search = Some(table);
    }

    /// One step of a search for `pattern` through the index if there is one
    /// ([`search::search_step`]).
    fn search_step<'a>(&'a self, pattern: &str, step: Step, f: impl FnMut(Match<'a>)) -> Progress {
        search::search_step(self.search.as_ref(), self, pattern, step, f)
    }
}

/// Candidates a search verifies under the read lock before it lets a waiting
/// writer in (`bump`): about a millisecond of work, so a REGISTER waits at most
/// about that long behind a search however many run (measured in `make bench`'s
/// flood section).
const SEARCH_CHUNK: usize = 1024;

/// Most candidates one search verifies (SEARCH, or one page of the dashboard's):
/// a pattern whose trigrams are all common while the pattern itself is rare (or
/// whose matches mostly belong to disconnected users) made each SEARCH check 100k
/// names (74 ms, issue 26 item 2). Past it the reply lists the matches found so
/// far. A plain search finds its matches among the first candidates: every match
/// is a candidate, and the result cap (1000) comes first.
pub(crate) const MAX_CANDIDATES: usize = 20_000;

/// Runs a search for `pattern` from id `from` in steps of [`SEARCH_CHUNK`]
/// candidates, letting waiting writers take the lock between steps, until `cap`
/// results, [`MAX_CANDIDATES`] candidates or the end. Returns the results found and
/// where a next search would resume (`None`: nothing more to look at). Results
/// come in id order; changes made between steps are seen from where the search
/// has got to.
fn search_chunked(
    state: &mut RwLockReadGuard<'_, State>,
    pattern: &str,
    from: u32,
    cap: usize,
    mut f: impl FnMut(Match<'_>),
) -> (usize, Option<u32>) {
    let (mut found, mut left, mut from) = (0, MAX_CANDIDATES, from);
    loop {
        let step = Step {
            from,
            cap: cap - found,
            candidates: left.min(SEARCH_CHUNK),
        };
        let p = state.search_step(pattern, step, &mut f);
        found += p.found;
        left -= p.checked.min(left);
        match p.resume {
            Some(next) if found < cap && left > 0 => {
                from = next;
                RwLockReadGuard::bump(state);
            }
            resume => return (found, resume),
        }
    }
}

impl Catalog for State {
    fn files_of(&self, user: &str) -> Option<&Files> {
        self.users.get(user).map(|u| &u.files)
    }

    fn connected(&self) -> impl Iterator<Item = (&str, PeerAddr)> {
        self.connected
            .iter()
            .map(|(name, addr)| (name.as_str(), *addr))
    }
}

/// Restoring the state from the data directory.
impl Replay for State {
    fn restore(&mut self, user: RestoredUser) -> bool {
        if self.users.contains_key(&user.user) {
            return false;
        }
        let mut restored = User {
            files: user.files,
            ..User::default()
        };
        if let Some(peer) = user.peer {
            if let Some(table) = &mut self.search {
                table.connect(&user.user, peer, &restored.files, &mut restored.search);
            }
            self.connected.insert(user.user.clone(), peer);
        }
        self.users.insert(user.user, Arc::new(restored));
        true
    }

    fn replay(&mut self, change: Change) -> Result<(), u8> {
        let code = self.check(&change);
        if code != OK {
            return Err(code);
        }
        self.mutate(change);
        Ok(())
    }
}

/// A durable registry's data directory: its journal and the journal's compaction.
#[derive(Debug)]
struct Durable {
    journal: Arc<Journal>,
    compaction: Compaction,
}

/// The registry shared by all connection threads.
#[derive(Debug)]
pub struct Registry {
    state: RwLock<State>,
    /// Most matches per SEARCH reply.
    max_results: usize,
    /// `None` when ephemeral.
    durable: Option<Durable>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Making a registry, and changing it.
impl Registry {
    /// An ephemeral registry: kept in memory only.
    pub fn new() -> Self {
        Self::with_search(SearchOptions::default())
    }

    /// An ephemeral registry answering SEARCH as `search` says.
    pub fn with_search(search: SearchOptions) -> Self {
        Registry {
            state: RwLock::new(State::new(search)),
            max_results: search.max_results,
            durable: None,
        }
    }

    /// A durable registry kept in `dir`: replays its snapshot and journal (compacting
    /// right away when they are due) and journals every later change.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Registry, Recovered), JournalError> {
        Self::open_with(dir, opts, SearchOptions::default())
    }

    /// [`Registry::open`] answering SEARCH as `search` says (the index is rebuilt
    /// during the replay).
    pub fn open_with(
        dir: &Path,
        opts: StoreOptions,
        search: SearchOptions,
    ) -> Result<(Registry, Recovered), JournalError> {
        // Replayed without an index, which is built once from the final state:
        // indexing every PUBLISH of the journal would also index, then take out again,
        // the files of every user that was connected for a while (measured on the
        // bench's million publications: 7 s to start instead of about 2).
        let mut state = State::new(SearchOptions {
            scan: true,
            ..search
        });
        let (journal, recovered) = Journal::open(dir, opts, &mut state)?;
        if !search.scan {
            state.build_search();
        }
        let compaction = Compaction::new(&journal);
        let registry = Registry {
            state: RwLock::new(state),
            max_results: search.max_results,
            durable: Some(Durable {
                journal: Arc::new(journal),
                compaction,
            }),
        };
        if let Some(d) = &registry.durable
            && d.compaction.due_at_start(&d.journal)
        {
            d.compaction
                .start(&d.journal, registry.state.write(), |s| capture(s));
        }
        Ok((registry, recovered))
    }

    /// Replaces the whole state with what `load` restores and replays into an empty
    /// one (a replica of a shared store rebuilding from its snapshot and stream); on
    /// an error the state is left as it was. The search index is built once at the
    /// end, as by [`Registry::open_with`].
    pub(crate) fn rebuild_from<T, E>(
        &self,
        load: impl FnOnce(&mut dyn Replay) -> Result<T, E>,
    ) -> Result<T, E> {
        let indexed = self.state.read().search.is_some();
        let mut state = State::new(SearchOptions {
            max_results: self.max_results,
            scan: true,
        });
        let out = load(&mut state)?;
        if indexed {
            state.build_search();
        }
        *self.state.write() = state;
        Ok(out)
    }

    /// Applies a change; returns its result code (0 when applied). A durable registry
    /// returns 0 only once the change is in the journal (and on disk with `--fsync`);
    /// if it cannot be journaled it is not applied and the operation's "any other
    /// error" code is returned.
    pub fn apply(&self, change: &Change) -> u8 {
        self.apply_if(change, |_| Ok(()))
            .unwrap_or_else(|_| change.other_error())
    }

    /// Applies a change requested from `host`: refused, with nothing changed, when its
    /// user is connected from another host. Otherwise as [`Registry::apply`].
    /// REGISTER is not an act on behalf of an existing user: a taken name gets 1
    /// whoever asks.
    pub fn apply_as(&self, change: &Change, host: IpAddr) -> Result<u8, Refused> {
        if let Change::Register { .. } = change {
            return Ok(self.apply(change));
        }
        self.apply_if(change, |state| state.may_act(change.user(), Some(host)))
    }

    /// Disconnects `user` only if it is still connected at `addr` (the liveness
    /// prober: a user that reconnected meanwhile is left alone). Returns whether it
    /// was disconnected.
    pub fn disconnect_if_at(&self, user: &str, addr: PeerAddr) -> bool {
        let change = Change::Disconnect { user: user.into() };
        let still_there = |state: &State| match state.connected.get(user) {
            Some(a) if *a == addr => Ok(()),
            _ => Err(Refused {
                connected_from: addr.ip,
            }),
        };
        self.apply_if(&change, still_there) == Ok(OK)
    }

    /// The one path of every change: under the write lock, `allowed` decides, then
    /// the state rules; an accepted change is journaled, then made.
    fn apply_if(
        &self,
        change: &Change,
        allowed: impl FnOnce(&State) -> Result<(), Refused>,
    ) -> Result<u8, Refused> {
        let mut state = self.state.write();
        allowed(&state)?;
        let Some(Durable {
            journal,
            compaction,
        }) = &self.durable
        else {
            return Ok(state.apply(change));
        };
        let code = state.check(change);
        if code != OK {
            return Ok(code);
        }
        let appended = match journal.append(change) {
            Ok(a) => a,
            Err(e) => {
                log::error!("change not applied: {e}");
                return Ok(change.other_error());
            }
        };
        state.mutate(change.clone());
        if compaction.due(appended.journal_bytes) {
            compaction.start(journal, state, |s| capture(s));
        } else {
            drop(state);
        }
        match journal.wait_durable(appended.seq) {
            Ok(()) => Ok(OK),
            Err(e) => {
                log::error!("change applied but not known to be on disk: {e}");
                Ok(change.other_error())
            }
        }
    }
}

/// The state for a compaction: names, addresses and shared pointers to each user's
/// files (no file is copied). Two sequential scans, no per-user lookups (a B-tree
/// search per user would dominate the time the lock is held).
fn capture(state: &State) -> Capture<User> {
    Capture {
        users: state
            .users
            .iter()
            .map(|(name, u)| (name.clone(), Arc::clone(u)))
            .collect(),
        connected: state
            .connected
            .iter()
            .map(|(name, addr)| (name.clone(), *addr))
            .collect(),
    }
}

/// Answering the list requests (LIST_USERS, LIST_CONTENT, SEARCH).
impl Registry {
    /// The first step of every list request: the state, read-locked, and the code
    /// of `user` asking (OK when connected); refused when `user` is connected from
    /// another host.
    fn list_request(
        &self,
        user: &str,
        host: Option<IpAddr>,
    ) -> Result<(RwLockReadGuard<'_, State>, u8), Refused> {
        let state = self.state.read();
        state.may_act(user, host)?;
        let code = state.check_connected(user);
        Ok((state, code))
    }

    /// Writes a complete LIST_USERS reply (result code first) as `user` into `out`;
    /// refused (nothing written) when `user` is connected from another host.
    pub fn list_users(
        &self,
        user: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let (state, code) = self.list_request(user, host)?;
        out.push(code);
        if code != OK {
            return Ok(());
        }
        out.extend_from_slice(state.connected.listing());
        Ok(())
    }

    /// Writes a complete LIST_CONTENT reply for `target` as `user` into `out`;
    /// refused like [`Registry::list_users`].
    pub fn list_content(
        &self,
        user: &str,
        target: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        self.list_content_for(user, target, host, out, Statement::Y2024)
    }

    /// [`Registry::list_content`] in the entry layout of `statement` (2025: the
    /// names only).
    pub fn list_content_for(
        &self,
        user: &str,
        target: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
        statement: Statement,
    ) -> Result<(), Refused> {
        let (state, mut code) = self.list_request(user, host)?;
        // The target's files as they are now, shared: encoded after the lock is
        // released, so a 20,000-file list does not hold writers up (issue 26 item
        // 2); a change to the target meanwhile copies its files (Arc::make_mut).
        let target = state.users.get(target).map(Arc::clone);
        drop(state);
        if code == OK && target.is_none() {
            code = index::NO_SUCH_TARGET;
        }
        out.push(code);
        let Some(target) = target.filter(|_| code == OK) else {
            return Ok(());
        };
        let files = target.files.iter().map(|(f, d)| (f.as_str(), d.as_str()));
        index::put_file_list_for(out, files, statement);
        Ok(())
    }

    /// Writes a complete SEARCH reply for `pattern` as `user` into `out`: the files of
    /// connected users whose name contains `pattern`, at most the result cap, in the
    /// index's id order (by owner name, then publication order, with
    /// `--search-scan`). A pattern over [`MAX_PATTERN`] bytes gets code 3.
    pub fn search(
        &self,
        user: &str,
        pattern: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let (mut state, mut code) = self.list_request(user, host)?;
        if code == OK && pattern.len() > MAX_PATTERN {
            code = index::Op::Search.other_error();
        }
        out.push(code);
        if code != OK {
            return Ok(());
        }
        let mut list = SearchList::default();
        search_chunked(&mut state, pattern, 0, self.max_results, |m| {
            match m.owner_fields {
                Some(fields) => list.push_with_owner(m.file, m.description, fields),
                None => list.push(m.file, m.description, m.owner, m.addr.ip, m.addr.port),
            }
        });
        list.write_to(out);
        Ok(())
    }
}

/// A read-locked view of the state, for what is not a request (the dashboard): held
/// like a LIST_USERS reply, only as long as one answer takes.
pub(crate) struct View<'a> {
    state: RwLockReadGuard<'a, State>,
    max_results: usize,
}

impl View<'_> {
    /// The registered users from `start` on, by name: name, address if
    /// connected, files.
    pub(crate) fn users_after<'a>(
        &'a self,
        start: Bound<&str>,
    ) -> impl Iterator<Item = (&'a str, Option<PeerAddr>, &'a Files)> {
        let state = &*self.state;
        state
            .users
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(name, u)| {
                let addr = state.connected.get(name).copied();
                (name.as_str(), addr, &u.files)
            })
    }

    /// The user named `name`: its name and files.
    pub(crate) fn user(&self, name: &str) -> Option<(&str, &Files)> {
        let (name, u) = self.state.users.get_key_value(name)?;
        Some((name.as_str(), &u.files))
    }

    /// The matches of a SEARCH for `pattern` (the same as [`Registry::search`],
    /// through the same index, in steps that let writers in) from search id `from`
    /// on, at most `cap` and never more than `--max-search-results`; a pattern over
    /// [`MAX_PATTERN`] bytes matches nothing. Returns where a next page would
    /// resume (`None`: no more matches). `f` copies what it keeps: the lock may be
    /// released between matches.
    pub(crate) fn search(
        &mut self,
        pattern: &str,
        from: u32,
        cap: usize,
        f: impl FnMut(Match<'_>),
    ) -> Option<u32> {
        if pattern.len() > MAX_PATTERN {
            return None;
        }
        let cap = cap.min(self.max_results);
        search_chunked(&mut self.state, pattern, from, cap, f).1
    }
}

/// Reading the registry outside requests: the dashboard, the prober, the logs.
impl Registry {
    /// The state under the read lock, for the dashboard's queries.
    pub(crate) fn view(&self) -> View<'_> {
        View {
            state: self.state.read(),
            max_results: self.max_results,
        }
    }

    /// Number of connected users.
    pub(crate) fn connected_count(&self) -> usize {
        self.state.read().connected.map.len()
    }

    /// The SEARCH result cap (`--max-search-results`).
    pub(crate) fn max_search_results(&self) -> usize {
        self.max_results
    }

    /// Publications in the search index and its estimated heap bytes with its id
    /// table; `None` with `--search-scan`. For the start-up log.
    pub fn search_stats(&self) -> Option<(usize, usize)> {
        let state = self.state.read();
        let table = state.search.as_ref()?;
        Some((table.len(), table.memory_bytes()))
    }

    /// Every connected user with its address (for the liveness prober).
    pub fn connected(&self) -> Vec<(String, PeerAddr)> {
        let state = self.state.read();
        state
            .connected
            .iter()
            .map(|(u, a)| (u.clone(), *a))
            .collect()
    }

    /// Where `user` listens, if connected.
    pub fn peer_addr(&self, user: &str) -> Option<PeerAddr> {
        self.state.read().connected.get(user).copied()
    }

    /// Number of registered users and of publications (for start-up messages and
    /// tests).
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.read();
        let files = state.users.values().map(|u| u.files.len()).sum();
        (state.users.len(), files)
    }
}

/// The whole state, sorted: users with their address and files (for tests that
/// compare registries).
#[cfg(test)]
pub(crate) type Dump = Vec<(String, Option<PeerAddr>, Vec<(String, String)>)>;

#[cfg(test)]
impl Registry {
    /// Panics unless the search table holds exactly the files of the users that have
    /// a slot (every connected user has one), with the connected owners' entries set
    /// and the others' cleared.
    pub(crate) fn check_search_table(&self) {
        let state = self.state.read();
        let Some(table) = &state.search else {
            return;
        };
        let mut indexed = 0;
        let mut owners = 0;
        for (name, u) in &state.users {
            let addr = state.connected.get(name).copied();
            if table.check_user(name, &u.files, &u.search, addr) {
                owners += 1;
                indexed += u.files.len();
            }
        }
        table.check_totals(indexed, owners);
    }

    pub(crate) fn dump(&self) -> Dump {
        let state = self.state.read();
        let mut all: Dump = state
            .users
            .iter()
            .map(|(name, u)| {
                let files = u
                    .files
                    .iter()
                    .map(|(f, d)| (f.clone(), d.clone()))
                    .collect();
                (name.clone(), state.connected.get(name).copied(), files)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests;
