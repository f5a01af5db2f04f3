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
//! Does not own: request decoding or field validation (`index`), sockets (`server`),
//! the files and their format (`journal`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

pub(crate) use super::change::{Change, PeerAddr};
use super::journal::{
    Journal, JournalError, Recovered, Replay, RestoredUser, SnapshotUser, StoreOptions,
};
use crate::proto::index::{self, OK};
use crate::proto::wire::put_number;

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
    files: IndexMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<String, Arc<User>>,
    connected: Connected,
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
            put_number(&mut out, self.map.len() as u64);
            for (name, addr) in &self.map {
                index::put_user_entry(&mut out, name, addr.ip, addr.port);
            }
            out
        })
    }
}

impl State {
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
        match change {
            Change::Register { user } => {
                self.users.insert(user, Arc::default());
            }
            Change::Unregister { user } => {
                self.users.remove(&user);
            }
            Change::Connect { user, ip, port } => {
                self.connected.insert(user, PeerAddr { ip, port });
            }
            Change::Disconnect { user } => {
                self.connected.remove(&user);
            }
            Change::Publish {
                user,
                file,
                description,
            } => {
                if let Some(u) = self.users.get_mut(&user) {
                    Arc::make_mut(u).files.insert(file, description);
                }
            }
            Change::Delete { user, file } => {
                if let Some(u) = self.users.get_mut(&user) {
                    Arc::make_mut(u).files.shift_remove(&file);
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

impl State {
    /// The files of connected users whose name contains `pattern`, by owner then
    /// publication order: the one search behind SEARCH and the dashboard's search.
    fn matches<'a>(
        &'a self,
        pattern: &'a str,
    ) -> impl Iterator<Item = (&'a str, PeerAddr, &'a str, &'a str)> + 'a {
        self.connected.iter().flat_map(move |(owner, addr)| {
            self.users
                .get(owner)
                .into_iter()
                .flat_map(|u| u.files.iter())
                .filter(move |(f, _)| f.contains(pattern))
                .map(move |(f, d)| (owner.as_str(), *addr, f.as_str(), d.as_str()))
        })
    }
}

/// One search result for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchHit {
    pub(crate) user: String,
    pub(crate) addr: PeerAddr,
    pub(crate) file: String,
    pub(crate) description: String,
}

impl Replay for State {
    fn restore(&mut self, user: RestoredUser) -> bool {
        if self.users.contains_key(&user.user) {
            return false;
        }
        if let Some(peer) = user.peer {
            self.connected.insert(user.user.clone(), peer);
        }
        self.users
            .insert(user.user, Arc::new(User { files: user.files }));
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

/// The registry shared by all connection threads.
#[derive(Debug, Default)]
pub struct Registry {
    state: RwLock<State>,
    /// The data directory's journal; `None` when ephemeral.
    journal: Option<Arc<Journal>>,
    /// The last compaction thread (joined on drop, so a clean stop leaves no
    /// half-written snapshot behind).
    compaction: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(handle) = self.compaction.get_mut().take() {
            let _ = handle.join();
        }
    }
}

impl Registry {
    /// An ephemeral registry: kept in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A durable registry kept in `dir`: replays its snapshot and journal (compacting
    /// right away when they are due) and journals every later change.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Registry, Recovered), JournalError> {
        let mut state = State::default();
        let (journal, recovered) = Journal::open(dir, opts, &mut state)?;
        let registry = Registry {
            state: RwLock::new(state),
            journal: Some(Arc::new(journal)),
            compaction: Mutex::default(),
        };
        if let Some(journal) = &registry.journal
            && journal.due_at_start()
        {
            registry.compact(journal, registry.state.write());
        }
        Ok((registry, recovered))
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
        let Some(journal) = &self.journal else {
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
        if appended.compact {
            self.compact(journal, state);
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

    /// Compacts the journal into a snapshot: under the write lock, rotates the journal
    /// and captures the state (names, addresses and shared pointers to each user's
    /// files: no file is copied); a background thread writes the snapshot from the
    /// capture while requests go on. At most one compaction runs at a time.
    fn compact(&self, journal: &Arc<Journal>, state: RwLockWriteGuard<'_, State>) {
        let generation = match journal.rotate() {
            Ok(g) => g,
            Err(e) => {
                log::error!("compaction not started: {e}");
                return;
            }
        };
        let started = Instant::now();
        // Two sequential scans, no per-user lookups (a B-tree search per user would
        // dominate the time the lock is held).
        let users: Vec<(String, Arc<User>)> = state
            .users
            .iter()
            .map(|(name, u)| (name.clone(), Arc::clone(u)))
            .collect();
        let connected: Vec<(String, PeerAddr)> = state
            .connected
            .iter()
            .map(|(name, addr)| (name.clone(), *addr))
            .collect();
        drop(state);
        log::info!(
            "compaction: state of {} users captured under the lock in {:?}",
            users.len(),
            started.elapsed()
        );
        let worker = Arc::clone(journal);
        let spawned = std::thread::Builder::new()
            .name("compaction".into())
            .spawn(move || {
                let peers: HashMap<&str, PeerAddr> =
                    connected.iter().map(|(n, a)| (n.as_str(), *a)).collect();
                let records = users.iter().map(|(name, u)| SnapshotUser {
                    user: name,
                    peer: peers.get(name.as_str()).copied(),
                    files: &u.files,
                });
                let written = worker.write_snapshot(generation, users.len(), records);
                worker.finish_compaction(generation, written);
            });
        match spawned {
            Ok(handle) => {
                // The previous compaction has finished (one at a time): reap it.
                if let Some(previous) = self.compaction.lock().replace(handle) {
                    let _ = previous.join();
                }
            }
            Err(e) => {
                log::error!("compaction thread not started: {e}");
                journal.finish_compaction(
                    generation,
                    Err(JournalError::Io {
                        action: "start a thread for",
                        path: journal.dir().to_path_buf(),
                        source: e,
                    }),
                );
            }
        }
    }

    /// Writes a complete LIST_USERS reply (result code first) as `user` into `out`;
    /// refused (nothing written) when `user` is connected from another host.
    pub fn list_users(
        &self,
        user: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let state = self.state.read();
        state.may_act(user, host)?;
        let code = state.check_connected(user);
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
        let state = self.state.read();
        state.may_act(user, host)?;
        let mut code = state.check_connected(user);
        let target = state.users.get(target);
        if code == OK && target.is_none() {
            code = index::NO_SUCH_TARGET;
        }
        out.push(code);
        let Some(target) = target.filter(|_| code == OK) else {
            return Ok(());
        };
        put_number(out, target.files.len() as u64);
        for (file, description) in &target.files {
            index::put_file_entry(out, file, description);
        }
        Ok(())
    }

    /// Writes a complete SEARCH reply for `pattern` as `user` into `out`: the files of
    /// connected users whose name contains `pattern`, by owner then publication order.
    pub fn search(
        &self,
        user: &str,
        pattern: &str,
        host: Option<IpAddr>,
        out: &mut Vec<u8>,
    ) -> Result<(), Refused> {
        let state = self.state.read();
        state.may_act(user, host)?;
        let code = state.check_connected(user);
        out.push(code);
        if code != OK {
            return Ok(());
        }
        let mut body = Vec::new();
        let mut count = 0u64;
        for (owner, addr, file, description) in state.matches(pattern) {
            index::put_search_entry(&mut body, file, description, owner, addr.ip, addr.port);
            count += 1;
        }
        put_number(out, count);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// At most `cap` results of a SEARCH for `pattern` (the same matches, in the same
    /// order, as [`Registry::search`]), for the dashboard: owner, address, file,
    /// description.
    pub(crate) fn search_results(&self, pattern: &str, cap: usize) -> Vec<SearchHit> {
        let state = self.state.read();
        state
            .matches(pattern)
            .take(cap)
            .map(|(owner, addr, file, description)| SearchHit {
                user: owner.to_owned(),
                addr,
                file: file.to_owned(),
                description: description.to_owned(),
            })
            .collect()
    }

    /// Every registered user, by name: whether and where it is connected, and how
    /// many files it publishes (the dashboard's user table).
    pub(crate) fn users_overview(&self) -> Vec<(String, Option<PeerAddr>, usize)> {
        let state = self.state.read();
        let mut all: Vec<_> = state
            .users
            .iter()
            .map(|(name, u)| {
                (
                    name.clone(),
                    state.connected.get(name).copied(),
                    u.files.len(),
                )
            })
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// At most `cap` publications (owner, file, description), of `user` only when
    /// given, by owner then publication order (the dashboard's file lists).
    pub(crate) fn publications(&self, user: Option<&str>, cap: usize) -> Vec<[String; 3]> {
        let state = self.state.read();
        let mut owners: Vec<(&String, &Arc<User>)> = match user {
            Some(name) => state.users.get_key_value(name).into_iter().collect(),
            None => state.users.iter().collect(),
        };
        owners.sort_unstable_by(|a, b| a.0.cmp(b.0));
        owners
            .into_iter()
            .flat_map(|(owner, u)| {
                u.files
                    .iter()
                    .map(move |(f, d)| [owner.clone(), f.clone(), d.clone()])
            })
            .take(cap)
            .collect()
    }

    /// Number of connected users.
    pub(crate) fn connected_count(&self) -> usize {
        self.state.read().connected.map.len()
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
mod tests {
    use super::*;
    use crate::proto::index::{read_file_list, read_search_list, read_user_list};
    use crate::proto::wire::FieldReader;

    fn reg(user: &str) -> Change {
        Change::Register { user: user.into() }
    }
    fn conn(user: &str, port: u16) -> Change {
        Change::Connect {
            user: user.into(),
            ip: "10.0.0.1".parse().unwrap(),
            port,
        }
    }
    fn publish(user: &str, file: &str) -> Change {
        Change::Publish {
            user: user.into(),
            file: file.into(),
            description: format!("about {file}"),
        }
    }

    #[test]
    fn register_twice_is_code_1() {
        let r = Registry::new();
        assert_eq!(r.apply(&reg("a")), 0);
        assert_eq!(r.apply(&reg("a")), 1);
    }

    #[test]
    fn unregister_codes() {
        let r = Registry::new();
        assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 1);
        r.apply(&reg("a"));
        r.apply(&conn("a", 1));
        assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 2);
        r.apply(&Change::Disconnect { user: "a".into() });
        assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 0);
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn connect_and_disconnect_codes() {
        let r = Registry::new();
        assert_eq!(r.apply(&conn("a", 1)), 1);
        r.apply(&reg("a"));
        assert_eq!(r.apply(&conn("a", 1)), 0);
        assert_eq!(r.apply(&conn("a", 2)), 2);
        assert_eq!(r.peer_addr("a").unwrap().port, 1);
        assert_eq!(r.apply(&Change::Disconnect { user: "a".into() }), 0);
        assert_eq!(r.apply(&Change::Disconnect { user: "a".into() }), 2);
        assert_eq!(r.apply(&Change::Disconnect { user: "b".into() }), 1);
    }

    #[test]
    fn the_prober_drops_a_user_only_at_the_address_it_probed() {
        let r = Registry::new();
        r.apply(&reg("a"));
        r.apply(&conn("a", 1));
        let old = r.peer_addr("a").unwrap();
        // Reconnected on another port between the probe and its verdict.
        r.apply(&Change::Disconnect { user: "a".into() });
        r.apply(&conn("a", 2));
        assert!(!r.disconnect_if_at("a", old), "dropped at its new address");
        assert_eq!(r.peer_addr("a").unwrap().port, 2);
        let new = r.peer_addr("a").unwrap();
        assert!(r.disconnect_if_at("a", new));
        assert!(r.peer_addr("a").is_none());
        assert!(!r.disconnect_if_at("a", new), "already disconnected");
    }

    #[test]
    fn publish_and_delete_codes() {
        let r = Registry::new();
        assert_eq!(r.apply(&publish("a", "f")), 1);
        r.apply(&reg("a"));
        assert_eq!(r.apply(&publish("a", "f")), 2);
        r.apply(&conn("a", 1));
        assert_eq!(r.apply(&publish("a", "f")), 0);
        assert_eq!(r.apply(&publish("a", "f")), 3);
        let del = |f: &str| Change::Delete {
            user: "a".into(),
            file: f.into(),
        };
        assert_eq!(r.apply(&del("g")), 3);
        assert_eq!(r.apply(&del("f")), 0);
        assert_eq!(r.apply(&del("f")), 3);
    }

    #[test]
    fn same_file_name_for_different_users() {
        let r = Registry::new();
        for u in ["a", "b"] {
            r.apply(&reg(u));
            r.apply(&conn(u, 1));
            assert_eq!(r.apply(&publish(u, "same")), 0);
        }
        assert_eq!(r.counts(), (2, 2));
    }

    /// The cached LIST_USERS encoding follows every change of the connected set,
    /// whichever path makes it (request, liveness drop).
    #[test]
    fn list_users_follows_each_change_of_the_connected_set() {
        let r = Registry::new();
        let listed = |r: &Registry| {
            let mut out = Vec::new();
            r.list_users("a", None, &mut out).unwrap();
            assert_eq!(out[0], 0);
            read_user_list(&mut FieldReader::new(&out[1..]))
                .unwrap()
                .into_iter()
                .map(|u| format!("{}:{}", u.user, u.port))
                .collect::<Vec<_>>()
        };
        r.apply(&reg("a"));
        r.apply(&conn("a", 1));
        assert_eq!(listed(&r), ["a:1"]);
        r.apply(&reg("b"));
        assert_eq!(listed(&r), ["a:1"], "a registration alone lists nobody new");
        r.apply(&conn("b", 2));
        assert_eq!(listed(&r), ["a:1", "b:2"]);
        r.apply(&Change::Disconnect { user: "b".into() });
        assert_eq!(listed(&r), ["a:1"]);
        r.apply(&conn("b", 3));
        assert_eq!(listed(&r), ["a:1", "b:3"], "a reconnect shows the new port");
        let at = r.peer_addr("b").unwrap();
        assert!(r.disconnect_if_at("b", at));
        assert_eq!(listed(&r), ["a:1"]);
    }

    #[test]
    fn list_users_shows_only_connected_users() {
        let r = Registry::new();
        for (u, p) in [("b", 2), ("a", 1), ("c", 3)] {
            r.apply(&reg(u));
            r.apply(&conn(u, p));
        }
        r.apply(&Change::Disconnect { user: "c".into() });
        let mut out = Vec::new();
        r.list_users("a", None, &mut out).unwrap();
        assert_eq!(out[0], 0);
        let users = read_user_list(&mut FieldReader::new(&out[1..])).unwrap();
        let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let mut out = Vec::new();
        r.list_users("c", None, &mut out).unwrap();
        assert_eq!(out, [2]);
        let mut out = Vec::new();
        r.list_users("nobody", None, &mut out).unwrap();
        assert_eq!(out, [1]);
    }

    #[test]
    fn list_content_keeps_publication_order_and_survives_disconnect() {
        let r = Registry::new();
        r.apply(&reg("a"));
        r.apply(&conn("a", 1));
        for f in ["z", "a", "m"] {
            r.apply(&publish("a", f));
        }
        r.apply(&Change::Delete {
            user: "a".into(),
            file: "a".into(),
        });
        r.apply(&publish("a", "b"));
        r.apply(&Change::Disconnect { user: "a".into() });
        r.apply(&reg("q"));
        r.apply(&conn("q", 2));
        let mut out = Vec::new();
        r.list_content("q", "a", None, &mut out).unwrap();
        assert_eq!(out[0], 0);
        let files = read_file_list(&mut FieldReader::new(&out[1..])).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(names, ["z", "m", "b"]);
        assert_eq!(files[0].description, "about z");
        let mut out = Vec::new();
        r.list_content("q", "nobody", None, &mut out).unwrap();
        assert_eq!(out, [3]);
        let mut out = Vec::new();
        r.list_content("a", "q", None, &mut out).unwrap();
        assert_eq!(out, [2]);
    }

    #[test]
    fn search_matches_substrings_of_connected_owners_only() {
        let r = Registry::new();
        for u in ["a", "b", "c"] {
            r.apply(&reg(u));
            r.apply(&conn(u, 7));
        }
        r.apply(&publish("a", "notes-1.txt"));
        r.apply(&publish("b", "Notes-2.txt"));
        r.apply(&publish("c", "notes-3.txt"));
        r.apply(&publish("a", "song.mp3"));
        r.apply(&Change::Disconnect { user: "c".into() });
        let mut out = Vec::new();
        r.search("a", "notes", None, &mut out).unwrap();
        assert_eq!(out[0], 0);
        let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].file, "notes-1.txt");
        assert_eq!(hits[0].owner, "a");
        assert_eq!(hits[0].port, 7);
        let mut out = Vec::new();
        r.search("a", "", None, &mut out).unwrap();
        let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
        assert_eq!(hits.len(), 3);
    }
}
