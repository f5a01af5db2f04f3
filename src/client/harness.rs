//! The shell in process, for tests: a [`TestShell`] is a session built from the same
//! command line as `peerdex client`, its output kept instead of printed. Lines go in,
//! [`Said`] comes out; background jobs run as in the shell and their ends are
//! reacted to (re-sharing) when the test lets them ([`TestShell::settle`]).
//!
//! Owns: nothing of the shell's behaviour; only the wiring a test needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, FromArgMatches};
use crossbeam_channel::Receiver;

use super::args::ClientArgs;
use super::complete::SharedNames;
use super::jobs::{self, Finished, Jobs, What};
use super::outcome::Outcome;
use super::output::{Output, Recorder, Screen, Stream};
use super::render;
use super::session::Session;
use super::watch;

/// What one command came to, as the shell would print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// The message line (`c> ...`), empty when there is none.
    pub message: String,
    /// The lines after it (list entries), each with its leading tab.
    pub lines: Vec<String>,
    /// `Some(true)` for OK, `Some(false)` for a failure, `None` for neither (HELP).
    pub ok: Option<bool>,
}

/// A shell session in this process.
pub struct TestShell {
    session: Session,
    jobs: Arc<Jobs>,
    out: Arc<Output>,
    screen: Arc<Recorder>,
    finished: Receiver<Finished>,
    /// The furthest position any background job reported.
    progress: Arc<AtomicU64>,
}

impl TestShell {
    /// A session for the options of `peerdex client` (`-s HOST -p PORT --share DIR
    /// ...`), not yet connected.
    pub fn start(args: &[&str]) -> Result<TestShell, String> {
        let cli = ClientArgs::augment_args(clap::Command::new("client"));
        let matches = cli
            .try_get_matches_from(std::iter::once("client").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let args = ClientArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        let settings = args.settings().map_err(|e| e.to_string())?;
        let screen = Arc::new(Recorder::default());
        let out = Output::new(false, Arc::clone(&screen) as Arc<dyn Screen>);
        let (ended, finished) = crossbeam_channel::bounded(jobs::MAX_JOBS);
        let progress = Arc::new(AtomicU64::new(0));
        let furthest = Arc::clone(&progress);
        let shown = render::observer(Arc::clone(&out), ended);
        let (observer, job_ends) = watch::observing(Arc::new(move |event| {
            if let What::Progress { position } = event.what {
                furthest.fetch_max(position, Ordering::SeqCst);
            }
            shown(event);
        }));
        let jobs = Jobs::new(usize::from(args.max_downloads), observer);
        let session = Session::new(
            settings,
            Arc::clone(&out),
            Arc::clone(&jobs),
            Arc::new(AtomicBool::new(false)),
            SharedNames::default(),
            job_ends,
        );
        Ok(TestShell {
            session,
            jobs,
            out,
            screen,
            finished,
            progress,
        })
    }

    /// Runs one line as the shell would, after reacting to the jobs that ended.
    pub fn cmd(&mut self, line: &str) -> Said {
        self.react();
        let outcome = self.session.run_line(line);
        self.out.outcome(&outcome);
        said(&outcome)
    }

    fn react(&mut self) {
        while let Ok(job) = self.finished.try_recv() {
            self.session.finished(&job);
        }
    }

    /// Waits until every background job has ended, then reacts to their ends.
    pub fn settle(&mut self) {
        self.jobs.wait_all();
        self.react();
    }

    /// Waits (at most `timeout`) until a background job has received more than
    /// `bytes`; false when none did.
    pub fn wait_progress(&self, bytes: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.progress.load(Ordering::SeqCst) <= bytes {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Every stdout line so far.
    pub fn printed(&self) -> Vec<String> {
        self.screen.lines(Stream::Out)
    }

    /// Every stderr line so far.
    pub fn notes(&self) -> Vec<String> {
        self.screen.lines(Stream::Err)
    }

    /// Whether a note containing `text` was written.
    pub fn noted(&self, text: &str) -> bool {
        self.notes().iter().any(|l| l.contains(text))
    }

    /// Whether any command or job failed (a script would exit 1).
    pub fn failed(&self) -> bool {
        self.out.failed()
    }

    /// The port this shell's peer listener serves on, while a user is connected.
    pub fn peer_port(&self) -> Option<u16> {
        self.session.peer_port()
    }

    /// The user this shell is connected as.
    pub fn user(&self) -> Option<String> {
        self.session.user().map(str::to_owned)
    }

    /// Ends the session as QUIT does once transfers are over: what it said then.
    pub fn quit(mut self) -> Option<Said> {
        self.settle();
        self.session.quit().map(|o| {
            self.out.outcome(&o);
            said(&o)
        })
    }
}

impl Drop for TestShell {
    fn drop(&mut self) {
        self.jobs.cancel_all();
        self.jobs.wait_all();
        // Stops the peer listener (and tells the server) if still connected.
        let _ = self.session.quit();
    }
}

fn said(outcome: &Outcome) -> Said {
    Said {
        message: outcome.message().unwrap_or_default(),
        lines: outcome.details().lines().map(str::to_owned).collect(),
        ok: outcome.verdict().map(|v| v == super::messages::Verdict::Ok),
    }
}
