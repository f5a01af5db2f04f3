//! Watches (issue 28 item 4): `WATCH <pattern>` remembers a SEARCH pattern, and while
//! the shell is connected one background thread searches for each pattern now and
//! then and FETCHes every new match in the background, as `FETCH <name> &` would.
//!
//! Owns: the commands WATCH, UNWATCH and WATCHES, the list of the connected user
//! (loaded at CONNECT), starting the poll thread at CONNECT and stopping it at
//! DISCONNECT and QUIT, and what the thread acts on ([`Live`]: its own index
//! connection, the job manager, the share folder). Does not own: the list's bounds
//! and file (`list`), the timing (`schedule`), the loop (`poll`), the transfer
//! (`fetch`, `jobs`).

mod list;
mod poll;
mod schedule;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::command::WatchOp;
use super::fetch::{self, Transfer};
use super::index::Index;
use super::jobs::{Jobs, Observer, What};
use super::messages::End;
use super::outcome::Outcome;
use super::output::Output;
use super::peer::{Downloader, SharedFiles};
use crate::proto::index::{SearchEntry, Status};
use crate::proto::text::escape_for_terminal;

pub(crate) use schedule::{DEFAULT_INTERVAL_SECS, MAX_INTERVAL_SECS, MIN_INTERVAL_SECS};

use list::{Added, List};
use poll::{Poller, World};

/// How long DISCONNECT or QUIT waits for the poll thread to end. It ends at once
/// unless a request is on its way (at most the index timeout, 5 s); past this the
/// shell goes on, and the thread ends after that request without starting a fetch
/// (it checks after every request). Half a second is not felt at a prompt.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// Job ends the poll thread has not read yet: one per job the table can hold.
const ENDS_QUEUE: usize = super::jobs::MAX_JOBS;

/// The ends of the session's background jobs, for the poll thread.
pub(crate) type JobEnds = Receiver<(u64, End)>;

/// `inner` (the shell's observer of its jobs) that also hands each job's end to the
/// watches, so a watch remembers a name once its fetch succeeded.
pub(crate) fn observing(inner: Observer) -> (Observer, JobEnds) {
    let (ends, read) = crossbeam_channel::bounded(ENDS_QUEUE);
    let observer: Observer = Arc::new(move |event| {
        if let What::Done(f) | What::Failed(f) = &event.what {
            // Full only while no poll thread reads: those ends are no watch's.
            let _ = ends.try_send((event.job, f.end));
        }
        inner(event);
    });
    (observer, read)
}

/// What the poll thread of a connected user acts on.
pub(crate) struct Live {
    /// The thread's own connection to the index server (the shell's stays free).
    pub(crate) index: Index,
    pub(crate) me: String,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) files: Arc<SharedFiles>,
    pub(crate) downloader: Downloader,
    /// `--max-sources`: a watch's fetch is what FETCH's is.
    pub(crate) max_sources: usize,
    pub(crate) out: Arc<Output>,
}

impl World for Live {
    fn search(&mut self, pattern: &str) -> Result<Vec<SearchEntry>, String> {
        let listed = self
            .index
            .search(&self.me, pattern)
            .map_err(|e| e.to_string())?;
        if listed.status != Status::Ok {
            let why = listed.status.meaning();
            return Err(format!("the server refused SEARCH ({why})"));
        }
        let me = &self.me;
        let mut entries = listed.entries;
        entries.retain(|e| e.owner != *me && list::valid(&e.file));
        Ok(entries)
    }

    fn present(&self, local: &str) -> bool {
        self.files.local_path(local).symlink_metadata().is_ok()
    }

    /// As `FETCH <remote> &` with the owners the watch's SEARCH found: a job of the
    /// job manager.
    fn fetch(&mut self, remote: &str, local: &str, found: Vec<SearchEntry>) -> Result<u64, String> {
        let owners = fetch::owners_in(found, &self.me, remote);
        if owners.is_empty() {
            return Err("no owner other than this shell's user".into());
        }
        let target = self.files.local_path(local);
        let transfer = Transfer::fetch(
            owners,
            remote,
            local,
            target,
            self.downloader.clone(),
            self.max_sources,
        );
        // JOBS and the job's end show it: the name came from the index.
        let line = format!("FETCH {}", escape_for_terminal(remote));
        self.jobs.submit(line, transfer).map_err(|e| e.to_string())
    }

    fn tell(&self, note: String) {
        self.out.note(note);
    }
}

/// The poll thread of the connected user.
struct Running {
    list: Arc<Mutex<List>>,
    /// Dropped to stop the thread; a message wakes it after a change of the list.
    control: Sender<()>,
    /// Closed when the thread has ended.
    done: Receiver<()>,
}

/// The watches of one shell.
pub(crate) struct Watches {
    interval: Duration,
    ends: JobEnds,
    running: Option<Running>,
    out: Arc<Output>,
}

impl Watches {
    /// `interval`: `--watch-interval`.
    pub(crate) fn new(interval: Duration, ends: JobEnds, out: Arc<Output>) -> Watches {
        Watches {
            interval,
            ends,
            running: None,
            out,
        }
    }

    /// At CONNECT: loads the list of `live.me` (setting aside a bad file, with one
    /// warning) and starts the poll thread. The patterns, for completion.
    pub(crate) fn start(&mut self, state_dir: &std::path::Path, live: Live) -> Vec<String> {
        self.stop();
        let (list, warning) = List::load(state_dir, live.index.server(), &live.me);
        if let Some(w) = warning {
            self.out.note(escape_for_terminal(&w));
        }
        let patterns = list.patterns();
        let list = Arc::new(Mutex::new(list));
        let (control, control_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let poller = Poller::new(
            live,
            Arc::clone(&list),
            control_rx,
            self.ends.clone(),
            self.interval,
        );
        let spawned = thread::Builder::new().name("watch".into()).spawn(move || {
            poller.run();
            drop(done_tx);
        });
        match spawned {
            Ok(_) => {
                self.running = Some(Running {
                    list,
                    control,
                    done,
                })
            }
            Err(e) => self.out.note(format!(
                "watches are not polled: cannot start a thread: {e}"
            )),
        }
        patterns
    }

    /// At DISCONNECT or QUIT: stops the poll thread (waiting at most [`STOP_WAIT`]).
    pub(crate) fn stop(&mut self) {
        let Some(r) = self.running.take() else { return };
        drop(r.control);
        if !poll::joined(&r.done, STOP_WAIT) {
            log::info!("the watch thread ends after its current request");
        }
    }

    fn list(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    /// Why a command of the list cannot run: no user is connected.
    fn not_connected(&self, op: WatchOp) -> Outcome {
        self.out.note(format!(
            "{}: no user is connected in this shell (CONNECT first)",
            op.name()
        ));
        failed(op)
    }

    /// `WATCH <pattern>`; the patterns after it, for completion.
    pub(crate) fn watch(&mut self, pattern: &str) -> (Outcome, Vec<String>) {
        let op = WatchOp::Watch;
        let Some(r) = self.list() else {
            return (self.not_connected(op), Vec::new());
        };
        let mut list = r.list.lock();
        let shown = escape_for_terminal(pattern);
        let outcome = match list.add(pattern) {
            Ok(Added::New) => {
                // Wake the thread: the new pattern is searched at once.
                let _ = r.control.try_send(());
                done(op)
            }
            Ok(Added::AlreadyWatched) => {
                self.out.note(format!("WATCH {shown}: already watched"));
                done(op)
            }
            Err(e) => {
                self.out.note(format!("WATCH {shown}: {e}"));
                failed(op)
            }
        };
        (outcome, list.patterns())
    }

    /// `UNWATCH <pattern>`; the patterns after it, for completion.
    pub(crate) fn unwatch(&mut self, pattern: &str) -> (Outcome, Vec<String>) {
        let op = WatchOp::Unwatch;
        let Some(r) = self.list() else {
            return (self.not_connected(op), Vec::new());
        };
        let mut list = r.list.lock();
        let shown = escape_for_terminal(pattern);
        let outcome = match list.remove(pattern) {
            Ok(true) => done(op),
            Ok(false) => {
                self.out
                    .note(format!("UNWATCH {shown}: not watched (WATCHES lists them)"));
                failed(op)
            }
            Err(e) => {
                self.out
                    .note(format!("UNWATCH {shown}: cannot write the watch list: {e}"));
                failed(op)
            }
        };
        (outcome, list.patterns())
    }

    /// `WATCHES`: one line per pattern.
    pub(crate) fn lines(&self) -> Outcome {
        let op = WatchOp::Watches;
        let Some(r) = self.list() else {
            return self.not_connected(op);
        };
        Outcome::Watch {
            op,
            ok: true,
            entries: r.list.lock().lines(),
        }
    }
}

/// At UNREGISTER: removes the user's watch list; why not, if it could not be.
pub(crate) fn forget(state_dir: &std::path::Path, server: &str, user: &str) -> std::io::Result<()> {
    List::forget(state_dir, server, user)
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.stop();
    }
}

fn done(op: WatchOp) -> Outcome {
    Outcome::Watch {
        op,
        ok: true,
        entries: Vec::new(),
    }
}

fn failed(op: WatchOp) -> Outcome {
    Outcome::Watch {
        op,
        ok: false,
        entries: Vec::new(),
    }
}
