//! SEARCH over the registry's publications: the substring index ([`trigram`]), the
//! table beside it that turns an id into an owner and a file name, and the one walk
//! over the matches ([`search_step`]) behind both SEARCH and the dashboard.
//!
//! Owns: which publications are indexed and when, the id -> (owner, file name) table,
//! the owners' encoded SEARCH fields, and the order of results. Does not own: the
//! state rules or the users' files (`registry`, read through [`Catalog`]), nor the
//! reply encoding (`proto::index`).
//!
//! A user's files join the index at its first CONNECT since the start (or at the
//! start, for users connected then) and stay until DELETE or UNREGISTER; PUBLISH
//! inserts. Only connected users' files may match: a candidate whose owner is not
//! connected is skipped while verifying, so DISCONNECT and every later CONNECT cost
//! one update of the owner's entry, and the start indexes only the connected users.
//! Results come in ascending id order, at most the result cap. Without a table
//! (`--search-scan`, the bench's baseline) the connected users' files are scanned,
//! by owner name then publication order.

mod trigram;

use indexmap::IndexMap;

use super::change::PeerAddr;
use crate::proto::index;
pub(crate) use trigram::{Progress, Step};
use trigram::{PubId, SearchIndex};

/// What a search reads from the registry's state.
pub(crate) trait Catalog {
    /// The files of `user`: file name -> description, in publication order.
    fn files_of(&self, user: &str) -> Option<&IndexMap<String, String>>;
    /// The connected users with their addresses, by name.
    fn connected(&self) -> impl Iterator<Item = (&str, PeerAddr)>;
}

/// One match of a search: a file of a connected user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Match<'a> {
    pub(crate) owner: &'a str,
    pub(crate) addr: PeerAddr,
    pub(crate) file: &'a str,
    pub(crate) description: &'a str,
    /// The owner's three fields of a SEARCH entry (name, IP, port), encoded once at
    /// CONNECT rather than for every match; `None` without a table.
    pub(crate) owner_fields: Option<&'a [u8]>,
}

/// Passes to `f` the files of connected users whose name contains `pattern`, at
/// most `step.cap` of them: through `table` in id order from `step.from` on,
/// offering at most `step.candidates` publications to the check (a search in steps,
/// see [`Progress::resume`]); or without a table by owner name then publication
/// order, all in one step.
pub(crate) fn search_step<'a>(
    table: Option<&'a SearchTable>,
    catalog: &'a impl Catalog,
    pattern: &str,
    step: Step,
    mut f: impl FnMut(Match<'a>),
) -> Progress {
    let Some(table) = table else {
        return Progress {
            found: scan(catalog, pattern, step.cap, f),
            ..Progress::default()
        };
    };
    let emit = |id: PubId| {
        let Some((file, owner, live)) = table.live(id) else {
            return;
        };
        let description = catalog
            .files_of(&owner.name)
            .and_then(|files| files.get(file))
            .map_or("", String::as_str);
        f(Match {
            owner: &owner.name,
            addr: live.addr,
            file,
            description,
            owner_fields: Some(&live.fields),
        });
    };
    table
        .index
        .search_step(pattern, step, |id| table.name_of(id), emit)
}

/// [`search_step`] without an index: every connected user's files, checked in turn.
fn scan<'a>(
    catalog: &'a impl Catalog,
    pattern: &str,
    cap: usize,
    mut f: impl FnMut(Match<'a>),
) -> usize {
    let mut found = 0;
    for (owner, addr) in catalog.connected() {
        let Some(files) = catalog.files_of(owner) else {
            continue;
        };
        for (file, description) in files.iter().filter(|(f, _)| f.contains(pattern)) {
            if found == cap {
                return found;
            }
            f(Match {
                owner,
                addr,
                file,
                description,
                owner_fields: None,
            });
            found += 1;
        }
    }
    found
}

/// A user's place in the [`SearchTable`], kept with the user's files.
#[derive(Debug, Default, Clone)]
pub(crate) struct Placement {
    /// The search id of each file, in the order of the user's files.
    ids: Vec<PubId>,
    /// Once the user's files are indexed: its slot in [`SearchTable::owners`].
    slot: Option<u32>,
}

/// The search index over every indexed publication, and what a result needs beside
/// the id: the owner (and whether it is connected) and the file name (the index
/// keeps no names).
#[derive(Debug, Default)]
pub(crate) struct SearchTable {
    index: SearchIndex,
    /// Id -> publication; `None` for a free id.
    pubs: Vec<Option<Indexed>>,
    /// Slot -> owner of indexed publications; `None` for a free slot.
    owners: Vec<Option<Owner>>,
    free_owners: Vec<u32>,
}

/// An indexed publication: its owner's slot and its file name.
#[derive(Debug)]
struct Indexed {
    owner: u32,
    file: Box<str>,
}

/// An owner of indexed publications.
#[derive(Debug)]
struct Owner {
    name: Box<str>,
    /// While the owner is connected: where, and its fields of a SEARCH entry.
    /// `None`: its files match nothing.
    live: Option<Live>,
}

/// A connected owner.
#[derive(Debug)]
struct Live {
    addr: PeerAddr,
    /// Name, IP and port as a SEARCH entry ends (`index::put_user_entry`).
    fields: Box<[u8]>,
}

impl SearchTable {
    /// The owner slot of user `name` with `files`. A user's files join the index the
    /// first time it needs a slot (its first CONNECT since the server started, or the
    /// start itself for users connected then) and stay there until UNREGISTER or
    /// DELETE: DISCONNECT and later CONNECTs only switch its entry.
    fn indexed(&mut self, name: &str, files: &IndexMap<String, String>, at: &mut Placement) -> u32 {
        if let Some(slot) = at.slot {
            return slot;
        }
        let owner = Owner {
            name: name.into(),
            live: None,
        };
        let slot = match self.free_owners.pop() {
            Some(slot) => {
                self.owners[slot as usize] = Some(owner);
                slot
            }
            None => {
                self.owners.push(Some(owner));
                (self.owners.len() - 1) as u32
            }
        };
        at.slot = Some(slot);
        if !files.is_empty() {
            let mut ids = self.index.insert_many(files.keys().map(String::as_str));
            ids.shrink_to_fit();
            for (file, &id) in files.keys().zip(&ids) {
                self.put(id, slot, file);
            }
            at.ids = ids;
        }
        slot
    }

    /// User `name` (with `files`) connected at `addr`: its files match from now on.
    pub(crate) fn connect(
        &mut self,
        name: &str,
        addr: PeerAddr,
        files: &IndexMap<String, String>,
        at: &mut Placement,
    ) {
        let slot = self.indexed(name, files, at);
        let mut fields = Vec::new();
        index::put_user_entry(&mut fields, name, addr.ip, addr.port);
        if let Some(owner) = &mut self.owners[slot as usize] {
            owner.live = Some(Live {
                addr,
                fields: fields.into_boxed_slice(),
            });
        }
    }

    /// The user at `at` disconnected: its files stay indexed but match nothing.
    pub(crate) fn disconnect(&mut self, at: &Placement) {
        if let Some(owner) = at.slot.and_then(|s| self.owners[s as usize].as_mut()) {
            owner.live = None;
        }
    }

    /// The user with `files` at `at` is unregistered: its files leave the index and
    /// its slot is freed.
    pub(crate) fn unregister(&mut self, files: &IndexMap<String, String>, at: &Placement) {
        let items = at.ids.iter().copied().zip(files.keys().map(String::as_str));
        self.index.remove_many(items);
        for &id in &at.ids {
            if let Some(p) = self.pubs.get_mut(id as usize) {
                *p = None;
            }
        }
        if let Some(slot) = at.slot {
            self.owners[slot as usize] = None;
            self.free_owners.push(slot);
        }
    }

    /// Indexes `file`, a new publication of user `name`, whose earlier `files` are
    /// not yet indexed unless it has a slot.
    pub(crate) fn publish(
        &mut self,
        name: &str,
        files: &IndexMap<String, String>,
        at: &mut Placement,
        file: &str,
    ) {
        let slot = self.indexed(name, files, at);
        let id = self.index.insert(file);
        self.put(id, slot, file);
        at.ids.push(id);
    }

    /// Takes out `file`, which was at position `i` of the user's files.
    pub(crate) fn delete(&mut self, at: &mut Placement, i: usize, file: &str) {
        if i >= at.ids.len() {
            return;
        }
        let id = at.ids.remove(i);
        self.index.remove(id, file);
        if let Some(p) = self.pubs.get_mut(id as usize) {
            *p = None;
        }
    }

    /// Records publication `id` in the id table.
    fn put(&mut self, id: PubId, owner: u32, file: &str) {
        let i = id as usize;
        if self.pubs.len() <= i {
            self.pubs.resize_with(i + 1, || None);
        }
        self.pubs[i] = Some(Indexed {
            owner,
            file: file.into(),
        });
    }

    /// The publication `id` as a result: its file name and its owner, if the owner is
    /// connected.
    fn live(&self, id: PubId) -> Option<(&str, &Owner, &Live)> {
        let p = self.pubs.get(id as usize)?.as_ref()?;
        let owner = self.owners.get(p.owner as usize)?.as_ref()?;
        let live = owner.live.as_ref()?;
        Some((&p.file, owner, live))
    }

    /// The name the index verifies a candidate against; `None` (skipped) when its
    /// owner is not connected.
    fn name_of(&self, id: PubId) -> Option<&str> {
        self.live(id).map(|(file, _, _)| file)
    }

    /// Publications in the index.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes of the index and the table (estimated from capacities).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self.pubs.capacity() * std::mem::size_of::<Option<Indexed>>()
            + self
                .pubs
                .iter()
                .flatten()
                .map(|p| p.file.len())
                .sum::<usize>()
            + self.owners.capacity() * std::mem::size_of::<Option<Owner>>()
    }
}

#[cfg(test)]
impl SearchTable {
    /// Panics unless user `name` (with `files`, connected at `addr`) is in the table
    /// as `at` says; returns whether it has a slot.
    pub(crate) fn check_user(
        &self,
        name: &str,
        files: &IndexMap<String, String>,
        at: &Placement,
        addr: Option<PeerAddr>,
    ) -> bool {
        let Some(slot) = at.slot else {
            assert!(addr.is_none(), "{name} connected, no slot");
            assert!(at.ids.is_empty(), "{name} has ids but no slot");
            return false;
        };
        let owner = self.owners[slot as usize].as_ref().unwrap();
        assert_eq!(&*owner.name, name);
        match addr {
            Some(addr) => {
                let mut entry = Vec::new();
                index::put_user_entry(&mut entry, name, addr.ip, addr.port);
                let live = owner.live.as_ref();
                assert_eq!(live.map(|l| &*l.fields), Some(&entry[..]), "{name}");
                assert_eq!(live.map(|l| l.addr), Some(addr), "{name}");
            }
            None => assert!(owner.live.is_none(), "{name} disconnected"),
        }
        assert_eq!(at.ids.len(), files.len(), "{name}");
        for (file, &id) in files.keys().zip(&at.ids) {
            let p = self.pubs[id as usize].as_ref().unwrap();
            assert_eq!((&*p.file, p.owner), (file.as_str(), slot));
            assert!(self.index.is_allocated(id));
        }
        true
    }

    /// Panics unless the table holds exactly `indexed` publications of `owners`
    /// owners.
    pub(crate) fn check_totals(&self, indexed: usize, owners: usize) {
        assert_eq!(self.index.len(), indexed);
        assert_eq!(self.pubs.iter().flatten().count(), indexed);
        assert_eq!(self.owners.iter().flatten().count(), owners);
    }
}
