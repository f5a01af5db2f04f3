//! FETCH (download a file by name from whichever connected user shares it), the
//! transfer GET_FILE and FETCH both run (in the foreground or as a background job),
//! and re-sharing a completed download (`--reshare`, `RESHARE on|off`).
//!
//! Owns: the owner lookup of FETCH (SEARCH for the exact name as the connected user,
//! owners in random order so load spreads), the failover to the next owner (a kept
//! GET_FILE_RANGE prefix is resumed when that owner answers the same SIZE and
//! VERSION), the result messages of a transfer, and the stderr notes on which owner
//! served it. Does not own: the peer protocol and the partial files
//! (`peer::download`), the job table (`jobs`), PUBLISH and the publication record
//! (`client`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::command::Kind;
use super::index::Index;
use super::messages::End;
use super::peer::{self, DownloadError, Progress, Source};
use super::progress::{human, summary};
use crate::proto::index::Status;
use crate::proto::text::escape_for_terminal;

/// A detail for stderr.
fn note(text: &str) {
    eprintln!("peerdex: {text}");
}

/// One user that shares the file, where its peer listens, and the description it
/// published the file with (when known: FETCH has it from SEARCH).
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) user: String,
    pub(super) addr: SocketAddr,
    pub(super) description: Option<String>,
}

/// A download to run: the owners to try in order, the remote name, the local file.
#[derive(Debug)]
pub(super) struct Transfer {
    pub(super) kind: Kind,
    pub(super) owners: Vec<Owner>,
    pub(super) remote: String,
    /// The local name as typed (published under it when re-sharing).
    pub(super) local: String,
    pub(super) target: PathBuf,
}

/// How a transfer ended, and which owner completed it.
pub(super) struct Ran {
    pub(super) end: End,
    pub(super) served_by: Option<Owner>,
}

/// Reports a resumed start (and a start over after a failover) on stderr, then
/// passes progress on.
struct Noting<'a> {
    inner: &'a mut dyn Progress,
    remote: &'a str,
    owner: &'a str,
    /// Bytes kept by the previous owner's failed attempt.
    kept: u64,
    /// FETCH notes; GET_FILE's bar says it its own way.
    enabled: bool,
}

impl Progress for Noting<'_> {
    fn start(&mut self, size: Option<u64>, from: u64) {
        if let (Some(size), true) = (size, self.enabled) {
            if from > 0 {
                eprintln!(
                    "peerdex: FETCH {}: {} answers the same SIZE and VERSION: resuming at {} \
                     of {}, not restarting",
                    self.remote,
                    self.owner,
                    human(from),
                    human(size)
                );
            } else if self.kept > 0 {
                eprintln!(
                    "peerdex: FETCH {}: {}'s copy differs (SIZE or VERSION): starting over",
                    self.remote, self.owner
                );
            }
        }
        self.inner.start(size, from);
    }

    fn advance(&mut self, position: u64) {
        self.inner.advance(position);
    }
}

impl Transfer {
    /// Downloads from the owners in order until one completes it. `cancel` stops it.
    pub(super) fn run(&self, cancel: &AtomicBool, progress: &mut dyn Progress) -> Ran {
        let kind = self.kind;
        let remote = escape_for_terminal(&self.remote);
        let mut kept = 0;
        for owner in &self.owners {
            let user = escape_for_terminal(&owner.user);
            let src = Source {
                addr: owner.addr,
                owner: &owner.user,
                remote: &self.remote,
                any_owner: kind == Kind::Fetch,
            };
            if kind == Kind::Fetch {
                note(&format!("FETCH {remote} from {user} {}", owner.addr));
            }
            let mut noting = Noting {
                inner: &mut *progress,
                remote: &remote,
                owner: &user,
                kept,
                enabled: kind == Kind::Fetch,
            };
            let end = match peer::download(&src, &self.target, cancel, &mut noting) {
                Ok(done) => {
                    log::info!(
                        "{} {user} {remote}: {} bytes into {} by {}",
                        kind.name(),
                        done.size,
                        self.target.display(),
                        done.via
                    );
                    let from = match kind {
                        Kind::Fetch => format!(" from {user}"),
                        Kind::GetFile => String::new(),
                    };
                    note(&format!(
                        "{} {remote}{from}: {}",
                        kind.name(),
                        summary(&done)
                    ));
                    return Ran {
                        end: End::Done,
                        served_by: Some(owner.clone()),
                    };
                }
                Err(DownloadError::NotFound) if kind == Kind::GetFile => End::NotFound,
                Err(e) if cancelled(&e) => {
                    note(&format!("{} {remote}: {e}", kind.name()));
                    End::Cancelled
                }
                Err(e) => {
                    note(&format!(
                        "{} {remote} from {user} ({}): {e}",
                        kind.name(),
                        owner.addr
                    ));
                    if let DownloadError::Kept { kept: k, .. } = &e {
                        kept = *k;
                    }
                    // A local problem is the same with every owner.
                    let local = matches!(e, DownloadError::Local { .. } | DownloadError::Busy(_));
                    if kind == Kind::Fetch && !local {
                        continue;
                    }
                    End::Failed
                }
            };
            return Ran {
                end,
                served_by: None,
            };
        }
        if kind == Kind::Fetch && !self.owners.is_empty() {
            note(&format!("FETCH {remote}: every owner failed"));
        }
        Ran {
            end: End::Failed,
            served_by: None,
        }
    }
}

/// GET_FILE's owner: where `owner`'s peer listens, from LIST_USERS as `me`. A user
/// LIST_USERS does not list is either not connected or unknown: LIST_CONTENT of it
/// tells which (the index says "remote user does not exist" only for the latter).
pub(super) fn owner_of(index: &mut Index, me: &str, owner: &str) -> Result<Vec<Owner>, End> {
    let users = match index.users(me) {
        Ok(listed) if listed.status == Status::Ok => listed.entries,
        Ok(listed) => {
            note(&format!(
                "GET_FILE: the server refused LIST_USERS ({})",
                listed.status.meaning()
            ));
            return Err(End::Failed);
        }
        Err(e) => {
            note(&format!("GET_FILE: LIST_USERS: {e}"));
            return Err(End::Failed);
        }
    };
    if let Some(u) = users.into_iter().find(|u| u.user == owner) {
        return Ok(vec![Owner {
            user: u.user,
            addr: SocketAddr::new(u.ip, u.port),
            description: None,
        }]);
    }
    let shown = escape_for_terminal(owner);
    match index.files(me, owner).map(|l| l.status) {
        Ok(Status::NoSuchTarget) => {
            note(&format!(
                "GET_FILE: {shown} does not exist (no such user at the index server)"
            ));
        }
        _ => note(&format!("GET_FILE: {shown} is not connected")),
    }
    Err(End::Failed)
}

/// FETCH's owners: every connected user but `me` that shares exactly `remote`
/// (SEARCH as `me` matches substrings), once each, in random order so load spreads.
pub(super) fn owners_of(index: &mut Index, me: &str, remote: &str) -> Result<Vec<Owner>, End> {
    let entries = match index.search(me, remote) {
        Ok(listed) if listed.status == Status::Ok => listed.entries,
        Ok(listed) => {
            note(&format!(
                "FETCH: the server refused SEARCH ({})",
                listed.status.meaning()
            ));
            return Err(End::Failed);
        }
        Err(e) => {
            note(&format!("FETCH: SEARCH: {e}"));
            return Err(End::Failed);
        }
    };
    let mut owners: Vec<Owner> = Vec::new();
    for e in entries {
        if e.file == remote && e.owner != me && !owners.iter().any(|o| o.user == e.owner) {
            owners.push(Owner {
                user: e.owner,
                addr: SocketAddr::new(e.ip, e.port),
                description: Some(e.description),
            });
        }
    }
    if owners.is_empty() {
        note(&format!(
            "FETCH: no connected user other than {me} shares {}",
            escape_for_terminal(remote)
        ));
        return Err(End::NotFound);
    }
    fastrand::shuffle(&mut owners);
    Ok(owners)
}

/// Whether a download ended because it was cancelled (Ctrl+C, CANCEL, the end of
/// the session), also when its prefix was kept.
fn cancelled(e: &DownloadError) -> bool {
    match e {
        DownloadError::Cancelled => true,
        DownloadError::Kept { cause, .. } => cancelled(cause),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cancels_count_as_cancelled() {
        assert!(cancelled(&DownloadError::Cancelled));
        let kept = DownloadError::Kept {
            cause: Box::new(DownloadError::Cancelled),
            kept: 1,
            size: 2,
            partial: PathBuf::from("p"),
        };
        assert!(cancelled(&kept));
        assert!(!cancelled(&DownloadError::NotFound));
    }
}
