//! The index server's state: registered users, where connected users listen, and what
//! each user published, behind one `parking_lot::RwLock`.
//!
//! Owns: the state rules of PROTOCOL.md section 1 and the result codes that follow
//! from the state (user exists, is connected, already published, ...). Every change
//! is a [`Change`] value applied by one function, so a journal can record exactly
//! what was applied. Lists are encoded under the read lock into a reply buffer, so
//! readers run in parallel and writers hold the lock only for a map update. Does not
//! own: request decoding or field validation (`index`), sockets (`server`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use indexmap::IndexMap;
use parking_lot::RwLock;

use crate::index::{self, OK};
use crate::wire::put_number;

/// A state change, as applied to the registry (and, later, as journaled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Register {
        user: String,
    },
    Unregister {
        user: String,
    },
    Connect {
        user: String,
        ip: IpAddr,
        port: u16,
    },
    Disconnect {
        user: String,
    },
    Publish {
        user: String,
        file: String,
        description: String,
    },
    Delete {
        user: String,
        file: String,
    },
}

/// Where a connected user's peer listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    pub ip: IpAddr,
    pub port: u16,
}

#[derive(Debug, Default)]
struct User {
    /// File name -> description, in publication order.
    files: IndexMap<String, String>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<String, User>,
    /// Connected users by name: sorted, so LIST_USERS is stable.
    connected: BTreeMap<String, PeerAddr>,
}

impl State {
    /// Applies `change` if the state allows it. Returns the operation's result code:
    /// 0 when applied, otherwise the code of PROTOCOL.md section 1 and nothing changed.
    fn apply(&mut self, change: &Change) -> u8 {
        match change {
            Change::Register { user } => {
                if self.users.contains_key(user) {
                    return 1;
                }
                self.users.insert(user.clone(), User::default());
                OK
            }
            Change::Unregister { user } => {
                if !self.users.contains_key(user) {
                    return 1;
                }
                if self.connected.contains_key(user) {
                    return 2;
                }
                self.users.remove(user);
                OK
            }
            Change::Connect { user, ip, port } => {
                if !self.users.contains_key(user) {
                    return 1;
                }
                if self.connected.contains_key(user) {
                    return 2;
                }
                self.connected.insert(
                    user.clone(),
                    PeerAddr {
                        ip: *ip,
                        port: *port,
                    },
                );
                OK
            }
            Change::Disconnect { user } => {
                if !self.users.contains_key(user) {
                    return 1;
                }
                if self.connected.remove(user).is_none() {
                    return 2;
                }
                OK
            }
            Change::Publish {
                user,
                file,
                description,
            } => {
                let code = self.check_connected(user);
                if code != OK {
                    return code;
                }
                let Some(u) = self.users.get_mut(user) else {
                    return 1;
                };
                if u.files.contains_key(file) {
                    return 3;
                }
                u.files.insert(file.clone(), description.clone());
                OK
            }
            Change::Delete { user, file } => {
                let code = self.check_connected(user);
                if code != OK {
                    return code;
                }
                let Some(u) = self.users.get_mut(user) else {
                    return 1;
                };
                if u.files.shift_remove(file).is_none() {
                    return 3;
                }
                OK
            }
        }
    }

    /// 0 when `user` exists and is connected, 1 when it does not exist, 2 when it is
    /// not connected: the first codes of every operation a user performs.
    fn check_connected(&self, user: &str) -> u8 {
        if !self.users.contains_key(user) {
            1
        } else if !self.connected.contains_key(user) {
            2
        } else {
            OK
        }
    }
}

/// The registry shared by all connection threads.
#[derive(Debug, Default)]
pub struct Registry {
    state: RwLock<State>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a change; returns its result code (0 when applied).
    pub fn apply(&self, change: &Change) -> u8 {
        self.state.write().apply(change)
    }

    /// Writes a complete LIST_USERS reply (result code first) as `user` into `out`.
    pub fn list_users(&self, user: &str, out: &mut Vec<u8>) {
        let state = self.state.read();
        let code = state.check_connected(user);
        out.push(code);
        if code != OK {
            return;
        }
        put_number(out, state.connected.len() as u64);
        for (name, addr) in &state.connected {
            index::put_user_entry(out, name, addr.ip, addr.port);
        }
    }

    /// Writes a complete LIST_CONTENT reply for `target` as `user` into `out`.
    pub fn list_content(&self, user: &str, target: &str, out: &mut Vec<u8>) {
        let state = self.state.read();
        let mut code = state.check_connected(user);
        let target = state.users.get(target);
        if code == OK && target.is_none() {
            code = 3;
        }
        out.push(code);
        let Some(target) = target.filter(|_| code == OK) else {
            return;
        };
        put_number(out, target.files.len() as u64);
        for (file, description) in &target.files {
            index::put_file_entry(out, file, description);
        }
    }

    /// Writes a complete SEARCH reply for `pattern` as `user` into `out`: the files of
    /// connected users whose name contains `pattern`, by owner then publication order.
    pub fn search(&self, user: &str, pattern: &str, out: &mut Vec<u8>) {
        let state = self.state.read();
        let code = state.check_connected(user);
        out.push(code);
        if code != OK {
            return;
        }
        let mut body = Vec::new();
        let mut count = 0u64;
        for (owner, addr) in &state.connected {
            let Some(u) = state.users.get(owner) else {
                continue;
            };
            for (file, description) in u.files.iter().filter(|(f, _)| f.contains(pattern)) {
                index::put_search_entry(&mut body, file, description, owner, addr.ip, addr.port);
                count += 1;
            }
        }
        put_number(out, count);
        out.extend_from_slice(&body);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{read_file_list, read_search_list, read_user_list};
    use crate::wire::FieldReader;

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

    #[test]
    fn list_users_shows_only_connected_users() {
        let r = Registry::new();
        for (u, p) in [("b", 2), ("a", 1), ("c", 3)] {
            r.apply(&reg(u));
            r.apply(&conn(u, p));
        }
        r.apply(&Change::Disconnect { user: "c".into() });
        let mut out = Vec::new();
        r.list_users("a", &mut out);
        assert_eq!(out[0], 0);
        let users = read_user_list(&mut FieldReader::new(&out[1..])).unwrap();
        let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let mut out = Vec::new();
        r.list_users("c", &mut out);
        assert_eq!(out, [2]);
        let mut out = Vec::new();
        r.list_users("nobody", &mut out);
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
        r.list_content("q", "a", &mut out);
        assert_eq!(out[0], 0);
        let files = read_file_list(&mut FieldReader::new(&out[1..])).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(names, ["z", "m", "b"]);
        assert_eq!(files[0].description, "about z");
        let mut out = Vec::new();
        r.list_content("q", "nobody", &mut out);
        assert_eq!(out, [3]);
        let mut out = Vec::new();
        r.list_content("a", "q", &mut out);
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
        r.search("a", "notes", &mut out);
        assert_eq!(out[0], 0);
        let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].file, "notes-1.txt");
        assert_eq!(hits[0].owner, "a");
        assert_eq!(hits[0].port, 7);
        let mut out = Vec::new();
        r.search("a", "", &mut out);
        let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
        assert_eq!(hits.len(), 3);
    }
}
