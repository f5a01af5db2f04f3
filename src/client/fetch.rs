//! The transfer GET_FILE and FETCH both run, in the foreground or as a background
//! job: the owners to try (GET_FILE's one owner from LIST_USERS, FETCH's from
//! SEARCH), the failover to the next owner, and the [`Step`]s a transfer reports.
//!
//! Owns: the owner lookups (FETCH: the exact name, owners in random order so load
//! spreads), the failover (the next owner starts at 0: a prefix another owner sent
//! is not trusted, since SIZE and VERSION can be replayed; a local problem stops at
//! once), and
//! the words of each step. Does not own: the peer protocol and the partial files
//! (`peer::download`), who shows the steps (`progress` in the foreground, `jobs` in
//! the background), PUBLISH and re-sharing (`session`).

mod multi;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::command::Kind;
use super::index::Index;
use super::messages::End;
use super::peer::{Done, DownloadError, Downloader, Progress, Source};
use super::units::{human, summary};
use crate::proto::index::{SearchEntry, Status};
use crate::proto::text::escape_for_terminal;
pub(crate) use multi::{BlockSource, DEFAULT_MAX_SOURCES, MAX_MAX_SOURCES};

/// One user that shares the file, where its peer listens, and the description it
/// published the file with (when known: FETCH has it from SEARCH).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub(crate) user: String,
    pub(crate) addr: SocketAddr,
    pub(crate) description: Option<String>,
}

/// A download to run: the owners to try in order, the remote name, the local file,
/// and the session's downloader (what each peer address was found to speak).
pub(crate) struct Transfer {
    pub(crate) kind: Kind,
    pub(crate) owners: Vec<Owner>,
    pub(crate) remote: String,
    /// The local name as typed or defaulted (published under it when re-sharing).
    pub(crate) local: String,
    pub(crate) target: PathBuf,
    pub(crate) downloader: Downloader,
    /// FETCH: owners of the same content downloaded from at once (`--max-sources`);
    /// 1 downloads from one owner at a time.
    pub(crate) max_sources: usize,
}

/// How a transfer ended, and which owner completed it.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) end: End,
    pub(crate) served_by: Option<Owner>,
}

/// What a running transfer reports.
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// FETCH asks this owner.
    Trying(&'a Owner),
    /// The content starts: `size` bytes in all when known, the first at `from` (a
    /// resume when above 0). `kept` bytes of an earlier owner's attempt were kept.
    Started {
        owner: &'a Owner,
        size: Option<u64>,
        from: u64,
        kept: u64,
    },
    /// The file is complete up to this position.
    Progress(u64),
    Served {
        owner: &'a Owner,
        done: &'a Done,
    },
    /// This owner failed; FETCH goes on to the next unless the problem is local.
    OwnerFailed {
        owner: &'a Owner,
        error: &'a DownloadError,
    },
    Cancelled(&'a DownloadError),
    EveryOwnerFailed,
    /// FETCH spreads the blocks of one content over several of its owners, `at_once`
    /// at a time; `kept` blocks (`from` bytes) were verified on disk already.
    Spread {
        owners: &'a [Owner],
        root: String,
        size: u64,
        from: u64,
        blocks: u64,
        kept: u64,
        at_once: usize,
    },
    /// Sources downloading now.
    Sources(usize),
    /// A source was dropped (a wrong block, a stall, its file changed).
    Dropped {
        owner: &'a Owner,
        why: &'a str,
    },
    /// Every owner of that content was dropped; `verified` of `blocks` are kept.
    Gone {
        verified: u64,
        blocks: u64,
    },
    /// Completed from these sources.
    ServedBySeveral {
        owners: &'a [Owner],
        done: &'a Done,
    },
    /// A local problem ended it (the same with every owner).
    LocalFailure(&'a DownloadError),
}

/// Who is told of a transfer's steps.
pub(crate) trait Report {
    fn step(&mut self, step: Step<'_>);
}

impl Step<'_> {
    /// The step as a note (without `peerdex: `), `None` for those said otherwise
    /// (progress; a fresh start).
    pub(crate) fn describe(&self, kind: Kind, remote: &str) -> Option<String> {
        let op = kind.name();
        let remote = escape_for_terminal(remote);
        let user = |o: &Owner| escape_for_terminal(&o.user).into_owned();
        let line = match self {
            Step::Trying(o) => format!("{op} {remote} from {} {}", user(o), o.addr),
            Step::Started {
                owner,
                size: Some(size),
                from,
                ..
            } if *from > 0 => match kind {
                Kind::Fetch => format!(
                    "FETCH {remote}: {} answers the same SIZE and VERSION: resuming at {} of \
                     {}, not restarting",
                    user(owner),
                    human(*from),
                    human(*size)
                ),
                Kind::GetFile => format!(
                    "GET_FILE {remote}: resuming at {} of {}",
                    human(*from),
                    human(*size)
                ),
            },
            Step::Started { owner, kept, .. } if *kept > 0 => format!(
                "{op} {remote}: the kept prefix came from another owner and is not trusted \
                 from {} (SIZE and VERSION can be replayed): starting over",
                user(owner)
            ),
            Step::Started { .. } | Step::Progress(_) => return None,
            Step::Served { owner, done } => {
                let from = match kind {
                    Kind::Fetch => Cow::Owned(format!(" from {}", user(owner))),
                    Kind::GetFile => Cow::Borrowed(""),
                };
                format!("{op} {remote}{from}: {}", summary(done))
            }
            Step::OwnerFailed { owner, error } => {
                format!(
                    "{op} {remote} from {} ({}): {error}",
                    user(owner),
                    owner.addr
                )
            }
            Step::Cancelled(error) | Step::LocalFailure(error) => format!("{op} {remote}: {error}"),
            Step::EveryOwnerFailed => format!("{op} {remote}: every owner failed"),
            Step::Sources(_) => return None,
            step => return step.describe_multi(&remote),
        };
        Some(line)
    }

    /// The words of the multi-source steps.
    fn describe_multi(&self, remote: &str) -> Option<String> {
        let user = |o: &Owner| escape_for_terminal(&o.user).into_owned();
        let line = match self {
            Step::Spread {
                owners,
                root,
                size,
                blocks,
                kept,
                at_once,
                ..
            } => {
                let mut line = format!(
                    "FETCH {remote}: {} owners have the same content ({} in {blocks} \
                     blocks, root {}): from {at_once} at once, every block verified",
                    owners.len(),
                    human(*size),
                    &root[..root.len().min(16)]
                );
                if *kept > 0 {
                    line.push_str(&format!("; {kept} verified blocks kept"));
                }
                line
            }
            Step::Dropped { owner, why } => {
                format!(
                    "FETCH {remote}: {} {}: dropped",
                    user(owner),
                    escape_for_terminal(why)
                )
            }
            Step::Gone { verified, blocks } => format!(
                "FETCH {remote}: every source of that content was dropped; {verified} of \
                 {blocks} blocks verified and kept for a later FETCH"
            ),
            Step::ServedBySeveral { owners, done } => format!(
                "FETCH {remote} from {} ({}): {}",
                names(owners),
                sources(owners.len()),
                summary(done)
            ),
            _ => return None,
        };
        Some(line)
    }
}

/// "alice, bob and carol", escaped.
pub(crate) fn names(owners: &[Owner]) -> String {
    let names: Vec<String> = owners
        .iter()
        .map(|o| escape_for_terminal(&o.user).into_owned())
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// "1 source", "3 sources".
pub(crate) fn sources(n: usize) -> String {
    if n == 1 {
        "1 source".to_owned()
    } else {
        format!("{n} sources")
    }
}

/// Passes the downloader's progress on as steps.
struct Stepping<'a> {
    report: &'a mut dyn Report,
    owner: &'a Owner,
    /// Bytes kept by the previous owner's failed attempt.
    kept: u64,
}

impl Progress for Stepping<'_> {
    fn start(&mut self, size: Option<u64>, from: u64) {
        self.report.step(Step::Started {
            owner: self.owner,
            size,
            from,
            kept: self.kept,
        });
    }

    fn advance(&mut self, position: u64) {
        self.report.step(Step::Progress(position));
    }
}

impl Transfer {
    /// What `FETCH <remote> <local> &` runs, for a fetch no line typed (a watch's new
    /// match): from `owners` (`owners_of`) into `target`, saved as `local`.
    pub(crate) fn fetch(
        owners: Vec<Owner>,
        remote: &str,
        local: &str,
        target: PathBuf,
        downloader: Downloader,
        max_sources: usize,
    ) -> Transfer {
        Transfer {
            kind: Kind::Fetch,
            owners,
            remote: remote.to_owned(),
            local: local.to_owned(),
            target,
            downloader,
            max_sources,
        }
    }

    /// Downloads the file. FETCH with several owners that speak the block extension
    /// downloads from several of one content at once (`multi`); otherwise, and for
    /// GET_FILE, the owners are tried one at a time. `cancel` stops it.
    pub(crate) fn run(&self, cancel: &AtomicBool, report: &mut dyn Report) -> Ran {
        if self.kind == Kind::Fetch
            && self.max_sources >= 2
            && self.owners.len() >= 2
            && let Some(ran) = self.several(Arc::new(self.downloader.clone()), cancel, report)
        {
            return ran;
        }
        self.one_at_a_time(&self.owners, cancel, report)
    }

    /// Downloads from `owners` in order until one completes it.
    fn one_at_a_time(&self, owners: &[Owner], cancel: &AtomicBool, report: &mut dyn Report) -> Ran {
        let fetch = self.kind == Kind::Fetch;
        let mut kept = 0;
        for owner in owners {
            if fetch {
                report.step(Step::Trying(owner));
            }
            let src = Source {
                addr: owner.addr,
                owner: &owner.user,
                remote: &self.remote,
            };
            let mut stepping = Stepping {
                report: &mut *report,
                owner,
                kept,
            };
            let error = match self
                .downloader
                .download(&src, &self.target, cancel, &mut stepping)
            {
                Ok(done) => {
                    log::info!(
                        "{} {} {}: {} bytes into {} by {}",
                        self.kind.name(),
                        owner.user,
                        self.remote,
                        done.size,
                        self.target.display(),
                        done.via
                    );
                    report.step(Step::Served { owner, done: &done });
                    return self.ran(End::Done, Some(owner));
                }
                Err(e) => e,
            };
            match self.failed(owner, &error, report) {
                Some(end) => return self.ran(end, None),
                None => {
                    if let DownloadError::Kept { kept: k, .. } = &error {
                        kept = *k;
                    }
                }
            }
        }
        if fetch && !owners.is_empty() {
            report.step(Step::EveryOwnerFailed);
        }
        self.ran(End::Failed, None)
    }

    /// The multi-source FETCH: the owners' trees, then the groups of the same
    /// content largest first, then the owners that sent none one at a time. `None`
    /// when fewer than two owners of one content speak the extension: the caller
    /// goes one at a time as before.
    fn several(
        &self,
        source: Arc<dyn BlockSource>,
        cancel: &AtomicBool,
        report: &mut dyn Report,
    ) -> Option<Ran> {
        let survey = multi::survey(&*source, &self.owners, &self.remote, cancel);
        if survey.groups.first().is_none_or(|g| g.len() < 2) {
            return None;
        }
        let swarm = multi::Swarm {
            source: &source,
            owners: &self.owners,
            remote: &self.remote,
            target: &self.target,
            max_sources: self.max_sources,
            cancel,
        };
        for members in survey.groups {
            match swarm.run(members, report) {
                multi::Outcome::Done { done, used } => {
                    let used: Vec<Owner> = used.iter().map(|&i| self.owners[i].clone()).collect();
                    log::info!(
                        "FETCH {}: {} bytes from {} sources",
                        self.remote,
                        done.size,
                        used.len()
                    );
                    report.step(Step::ServedBySeveral {
                        owners: &used,
                        done: &done,
                    });
                    return Some(self.ran(End::Done, used.first()));
                }
                multi::Outcome::Gone { verified, blocks } => {
                    report.step(Step::Gone { verified, blocks });
                }
                multi::Outcome::Cancelled => {
                    report.step(Step::Cancelled(&DownloadError::Cancelled));
                    return Some(self.ran(End::Cancelled, None));
                }
                multi::Outcome::Local(e) => {
                    report.step(Step::LocalFailure(&e));
                    return Some(self.ran(End::Failed, None));
                }
            }
        }
        let plain: Vec<Owner> = survey
            .plain
            .iter()
            .map(|&i| self.owners[i].clone())
            .collect();
        if plain.is_empty() {
            report.step(Step::EveryOwnerFailed);
            return Some(self.ran(End::Failed, None));
        }
        Some(self.one_at_a_time(&plain, cancel, report))
    }

    /// How a failed attempt ends the transfer, `None` when FETCH tries the next
    /// owner.
    fn failed(&self, owner: &Owner, error: &DownloadError, report: &mut dyn Report) -> Option<End> {
        if cancelled(error) {
            report.step(Step::Cancelled(error));
            return Some(End::Cancelled);
        }
        if self.kind == Kind::GetFile && matches!(error, DownloadError::NotFound) {
            return Some(End::NotFound);
        }
        report.step(Step::OwnerFailed { owner, error });
        // A local problem is the same with every owner.
        let local = error.is_local();
        (self.kind == Kind::GetFile || local).then_some(End::Failed)
    }

    fn ran(&self, end: End, served_by: Option<&Owner>) -> Ran {
        Ran {
            end,
            served_by: served_by.cloned(),
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

/// Why there is no owner to download from: how the transfer ends, and the note
/// that says why.
#[derive(Debug)]
pub(crate) struct NoOwner {
    pub(crate) end: End,
    pub(crate) why: String,
}

fn no_owner(end: End, why: String) -> NoOwner {
    NoOwner { end, why }
}

/// GET_FILE's owner: where `owner`'s peer listens, from LIST_USERS as `me`. A user
/// LIST_USERS does not list is either not connected or unknown: LIST_CONTENT of it
/// tells which (the index says "remote user does not exist" only for the latter).
pub(crate) fn owner_of(index: &mut Index, me: &str, owner: &str) -> Result<Vec<Owner>, NoOwner> {
    let failed = |why| Err(no_owner(End::Failed, why));
    let users = match index.users(me) {
        Ok(listed) if listed.status == Status::Ok => listed.entries,
        Ok(listed) => {
            let why = listed.status.meaning();
            return failed(format!("GET_FILE: the server refused LIST_USERS ({why})"));
        }
        Err(e) => return failed(format!("GET_FILE: LIST_USERS: {e}")),
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
        Ok(Status::NoSuchTarget) => failed(format!(
            "GET_FILE: {shown} does not exist (no such user at the index server)"
        )),
        _ => failed(format!("GET_FILE: {shown} is not connected")),
    }
}

/// FETCH's owners: every connected user but `me` that shares exactly `remote`
/// (SEARCH as `me` matches substrings), once each, in random order so load spreads.
pub(crate) fn owners_of(index: &mut Index, me: &str, remote: &str) -> Result<Vec<Owner>, NoOwner> {
    let entries = match index.search(me, remote) {
        Ok(listed) if listed.status == Status::Ok => listed.entries,
        Ok(listed) => {
            let why = listed.status.meaning();
            let why = format!("FETCH: the server refused SEARCH ({why})");
            return Err(no_owner(End::Failed, why));
        }
        Err(e) => return Err(no_owner(End::Failed, format!("FETCH: SEARCH: {e}"))),
    };
    let owners = owners_in(entries, me, remote);
    if owners.is_empty() {
        let why = format!(
            "FETCH: no connected user other than {me} shares {}",
            escape_for_terminal(remote)
        );
        return Err(no_owner(End::NotFound, why));
    }
    Ok(owners)
}

/// FETCH's owners among SEARCH entries (FETCH's own, or a watch's): every user but
/// `me` that shares exactly `remote`, once each, in random order so load spreads.
pub(crate) fn owners_in(entries: Vec<SearchEntry>, me: &str, remote: &str) -> Vec<Owner> {
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
    fastrand::shuffle(&mut owners);
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            user: "al\x1bice".into(),
            addr: "127.0.0.1:5000".parse().unwrap(),
            description: None,
        }
    }

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

    #[test]
    fn steps_in_words_escape_names() {
        let o = owner();
        let trying = Step::Trying(&o).describe(Kind::Fetch, "a\u{202e}b");
        assert_eq!(
            trying.unwrap(),
            "FETCH a\\u{202e}b from al\\x1bice 127.0.0.1:5000"
        );
        let resumed = Step::Started {
            owner: &o,
            size: Some(2048),
            from: 1024,
            kept: 0,
        };
        assert_eq!(
            resumed.describe(Kind::GetFile, "f").unwrap(),
            "GET_FILE f: resuming at 1.0 KiB of 2.0 KiB"
        );
        let fresh = Step::Started {
            owner: &o,
            size: None,
            from: 0,
            kept: 0,
        };
        assert_eq!(fresh.describe(Kind::GetFile, "f"), None);
        let over = Step::Started {
            owner: &o,
            size: Some(9),
            from: 0,
            kept: 3,
        };
        assert!(
            over.describe(Kind::Fetch, "f")
                .unwrap()
                .ends_with("starting over")
        );
    }
}
