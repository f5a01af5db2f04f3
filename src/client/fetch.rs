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
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::jobs::{Outcome, State, Work};
use super::messages;
use super::peer::{DownloadError, Downloader, Progress, Source};
use super::{IndexError, Session, human, say, summary};
use crate::proto::index::{self, Body};

/// Which command a transfer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    GetFile,
    Fetch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::GetFile => "GET_FILE",
            Kind::Fetch => "FETCH",
        }
    }

    fn ok(self) -> &'static str {
        match self {
            Kind::GetFile => messages::GET_FILE_OK,
            Kind::Fetch => messages::FETCH_OK,
        }
    }

    pub(super) fn fail(self) -> &'static str {
        match self {
            Kind::GetFile => messages::GET_FILE_FAIL,
            Kind::Fetch => messages::FETCH_FAIL,
        }
    }
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
    pub(super) outcome: Outcome,
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
    pub(super) fn run(
        &self,
        downloader: &Downloader,
        cancel: &AtomicBool,
        progress: &mut dyn Progress,
    ) -> Ran {
        let kind = self.kind;
        let remote = self.remote.as_str();
        let mut kept = 0;
        for owner in &self.owners {
            let src = Source {
                addr: owner.addr,
                owner: &owner.user,
                remote,
                any_owner: kind == Kind::Fetch,
            };
            if kind == Kind::Fetch {
                eprintln!("peerdex: FETCH {remote} from {} {}", owner.user, owner.addr);
            }
            let mut noting = Noting {
                inner: &mut *progress,
                remote,
                owner: &owner.user,
                kept,
                enabled: kind == Kind::Fetch,
            };
            let result = downloader.download(&src, &self.target, cancel, &mut noting);
            let (state, message) = match result {
                Ok(done) => {
                    log::info!(
                        "{} {} {remote}: {} bytes into {} by {}",
                        kind.name(),
                        owner.user,
                        done.size,
                        self.target.display(),
                        done.via
                    );
                    let from = match kind {
                        Kind::Fetch => format!(" from {}", owner.user),
                        Kind::GetFile => String::new(),
                    };
                    eprintln!(
                        "peerdex: {} {remote}{from}: {}",
                        kind.name(),
                        summary(&done)
                    );
                    return Ran {
                        outcome: Outcome {
                            state: State::Done,
                            message: kind.ok(),
                        },
                        served_by: Some(owner.clone()),
                    };
                }
                Err(DownloadError::NotFound) if kind == Kind::GetFile => {
                    (State::Failed, messages::GET_FILE_NOT_EXIST)
                }
                Err(e) if cancelled(&e) => {
                    eprintln!("peerdex: {} {remote}: {e}", kind.name());
                    (State::Cancelled, kind.fail())
                }
                Err(e) => {
                    eprintln!(
                        "peerdex: {} {remote} from {} ({}): {e}",
                        kind.name(),
                        owner.user,
                        owner.addr
                    );
                    if let DownloadError::Kept { kept: k, .. } = &e {
                        kept = *k;
                    }
                    // A local problem is the same with every owner.
                    let local = matches!(e, DownloadError::Local { .. } | DownloadError::Busy(_));
                    if kind == Kind::Fetch && !local {
                        continue;
                    }
                    (State::Failed, kind.fail())
                }
            };
            return Ran {
                outcome: Outcome { state, message },
                served_by: None,
            };
        }
        if kind == Kind::Fetch && !self.owners.is_empty() {
            eprintln!("peerdex: FETCH {remote}: every owner failed");
        }
        Ran {
            outcome: Outcome {
                state: State::Failed,
                message: kind.fail(),
            },
            served_by: None,
        }
    }
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

/// The local name FETCH uses when none is given: the last component of the remote
/// name (a remote name may be a path on its owner's machine).
fn default_local(remote: &str) -> &str {
    match remote.rsplit('/').next() {
        Some(last) if !last.is_empty() => last,
        _ => remote,
    }
}

/// Puts `items` in a random order (Fisher-Yates with xorshift64 seeded from the clock
/// and the process id: spreading load needs no cryptographic randomness).
fn shuffle<T>(items: &mut [T]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        items.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

impl Session {
    /// `FETCH <file> [local_file]`: the owners of exactly `remote` from SEARCH, then
    /// the transfer (in the background with `&`).
    pub(super) fn fetch(&mut self, remote: &str, local: Option<&str>, line: &str, bg: bool) {
        let local = local.unwrap_or_else(|| default_local(remote)).to_owned();
        let Some(target) = self.local_target("FETCH", &local) else {
            return say(messages::FETCH_FAIL);
        };
        let Some(me) = self.me() else {
            eprintln!("peerdex: FETCH: no user is connected in this shell (CONNECT first)");
            return say(messages::FETCH_FAIL);
        };
        let found = self
            .request(
                &me,
                Body::Search {
                    pattern: remote.to_owned(),
                },
            )
            .and_then(|(code, mut r)| match code {
                index::OK => index::read_search_list(&mut r)
                    .map_err(IndexError::Reply)
                    .map(Some),
                _ => Ok(None),
            });
        let entries = match found {
            Ok(Some(entries)) => entries,
            Ok(None) => {
                eprintln!("peerdex: FETCH: the server refused SEARCH");
                return say(messages::FETCH_FAIL);
            }
            Err(e) => {
                eprintln!("peerdex: FETCH: SEARCH: {e}");
                return say(messages::FETCH_FAIL);
            }
        };
        // SEARCH matches substrings: only the exact name counts, once per owner,
        // never this shell's own user.
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
            eprintln!("peerdex: FETCH: no connected user other than {me} shares {remote}");
            return say(messages::FETCH_NOT_EXIST);
        }
        shuffle(&mut owners);
        let transfer = Transfer {
            kind: Kind::Fetch,
            owners,
            remote: remote.to_owned(),
            local,
            target,
        };
        self.transfer(transfer, line, bg);
    }

    /// Runs a transfer now (the shell waits, Ctrl+C cancels it) or as a background job.
    pub(super) fn transfer(&mut self, transfer: Transfer, line: &str, background: bool) {
        if !background {
            let mut bar = super::Bar::new(self.terminal_out);
            let ran = transfer.run(&self.downloader, &self.interrupted, &mut bar);
            bar.finish();
            if let Some(owner) = &ran.served_by {
                self.reshare(&transfer, owner);
            }
            return say(ran.outcome.message);
        }
        let fail = transfer.kind.fail();
        let session = self.this.clone();
        let downloader = self.downloader.clone();
        let work: Work = Box::new(move |cancel, meter| {
            let ran = transfer.run(&downloader, cancel, meter);
            if let (Some(owner), Some(session)) = (&ran.served_by, session.upgrade()) {
                lock(&session).reshare(&transfer, owner);
            }
            ran.outcome
        });
        match self.jobs.submit(line, fail, work) {
            Ok(id) => eprintln!("peerdex: [{id}] started"),
            Err(e) => {
                eprintln!("peerdex: not started: {e}");
                say(fail);
            }
        }
    }

    /// Publishes a completed download under its local name with the remote
    /// description, as PUBLISH would, when re-sharing is on.
    fn reshare(&mut self, transfer: &Transfer, owner: &Owner) {
        if !self.reshare {
            return;
        }
        let local = transfer.local.as_str();
        if self.me().is_none() {
            eprintln!("peerdex: {local} not re-shared: no user is connected");
            return;
        }
        let description = match &owner.description {
            Some(d) => d.clone(),
            None => self.remote_description(&owner.user, &transfer.remote),
        };
        let code = self.publish_code(local, &description);
        if code == Some(index::OK) {
            eprintln!("peerdex: re-shared {local} \"{description}\"");
        } else {
            eprintln!(
                "peerdex: {local} not re-shared: {}",
                super::reply(index::Op::Publish, code)
            );
        }
    }

    /// The description `owner` published `remote` with (LIST_CONTENT), or the remote
    /// name when it cannot be had.
    fn remote_description(&mut self, owner: &str, remote: &str) -> String {
        let Some(me) = self.me() else {
            return remote.to_owned();
        };
        let listed = self
            .request(
                &me,
                Body::ListContent {
                    target: owner.to_owned(),
                },
            )
            .and_then(|(code, mut r)| match code {
                index::OK => index::read_file_list(&mut r).map_err(IndexError::Reply),
                _ => Ok(Vec::new()),
            });
        listed
            .ok()
            .and_then(|l| l.into_iter().find(|f| f.file == remote))
            .map(|f| f.description)
            .unwrap_or_else(|| remote.to_owned())
    }

    /// `JOBS`: the background transfers.
    pub(super) fn list_jobs(&self) {
        let mut out = format!("{}\n", messages::JOBS_OK);
        for line in self.jobs.lines() {
            out.push('\t');
            out.push_str(&line);
            out.push('\n');
        }
        say(&out);
    }

    /// `CANCEL <n>`.
    pub(super) fn cancel_job(&self, n: &str) {
        let ok = n.parse().is_ok_and(|id| self.jobs.cancel(id));
        if !ok {
            eprintln!("peerdex: CANCEL: no queued or running transfer {n} (JOBS lists them)");
        }
        say(if ok {
            messages::CANCEL_OK
        } else {
            messages::CANCEL_FAIL
        });
    }

    /// `RESHARE on|off`.
    pub(super) fn set_reshare(&mut self, value: &str) {
        match value.to_ascii_lowercase().as_str() {
            "on" => self.reshare = true,
            "off" => self.reshare = false,
            _ => return say(&format!("c> usage: {}", messages::usage("RESHARE"))),
        }
        say(messages::RESHARE_OK);
    }
}

/// Locks the session, also after a panic elsewhere (its state stays usable).
pub(super) fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_name_is_the_last_component() {
        assert_eq!(default_local("notes.txt"), "notes.txt");
        assert_eq!(default_local("/home/a/notes.txt"), "notes.txt");
        assert_eq!(default_local("dir/"), "dir/");
    }

    #[test]
    fn shuffle_keeps_every_item() {
        let mut v: Vec<u32> = (0..50).collect();
        shuffle(&mut v);
        v.sort();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
