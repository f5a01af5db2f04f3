//! `peerdex client`: the shell of PROTOCOL.md section 5.
//!
//! A line is parsed once into a [`command::Command`] (one table gives every command's
//! parameters, usage and help), the [`session::Session`] runs it into an
//! [`outcome::Outcome`], and the [`output::Output`] renders that (colour, the failure
//! flag a script exits with, printing above the prompt). Background transfers belong
//! to the job manager (`jobs`), whose events the shell renders as they happen and
//! reacts to (re-sharing a done download) between commands.
//!
//! Owns: the loop of one shell (lines, job ends, signals, the question before leaving
//! with transfers running). Does not own: where lines come from (`shell`), what a
//! command does (`session`), the protocols (`index`, `peer`).
//!
//! Output: exactly one message line per command on stdout (list commands add one
//! `\t`-indented line per entry), so a script's output is exactly the messages of the
//! protocol. Details (why a command failed, what a transfer does) go to stderr.

mod args;
mod command;
mod complete;
mod fetch;
mod harness;
mod index;
mod jobs;
mod messages;
mod outcome;
mod output;
pub(crate) mod peer;
mod progress;
mod published;
mod render;
mod session;
mod shell;
mod soap_time;
mod timeclock;
mod units;
mod watch;

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Receiver;

use args::ClientError;
use jobs::{Finished, Jobs};
use outcome::Outcome;
use output::{Output, Stdio};
use session::Session;
use shell::{Event, Input};

pub use args::ClientArgs;
pub use harness::{Said, TestShell};
pub use peer::{FetchedBlocks, fetch_blocks};

/// What the shell asks before it leaves with transfers queued or running.
const QUIT_QUESTION: &str = "transfers running: quit anyway? [y/N] ";

/// Runs the shell until QUIT, end of input, Ctrl+C or Ctrl+D at an empty prompt, or
/// SIGTERM.
pub fn run(args: ClientArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Before anything touches the terminal; put back on every way out.
    let _terminal = shell::TerminalGuard::save();
    let settings = args.settings()?;
    let interactive = io::stdin().is_terminal();
    if interactive {
        eprintln!("{}", shell::start_line(&settings.server));
    }
    let out = Output::new(args::colour(), Arc::new(Stdio));
    let (ended, finished) = crossbeam_channel::bounded(jobs::MAX_JOBS);
    let (observer, job_ends) = watch::observing(render::observer(Arc::clone(&out), ended));
    let jobs = Jobs::new(usize::from(args.max_downloads), observer);
    let interrupted = Arc::new(AtomicBool::new(false));
    let names = complete::SharedNames::default();
    let input = Input::start(
        Arc::clone(&interrupted),
        Arc::clone(&names),
        settings.share.clone(),
        Arc::clone(&out),
    )
    .map_err(ClientError::Input)?;
    let session = Session::new(
        settings,
        Arc::clone(&out),
        Arc::clone(&jobs),
        Arc::clone(&interrupted),
        names,
        job_ends,
    );
    let mut shell = Shell {
        session,
        input,
        jobs,
        finished,
        out,
        interactive,
        interrupted,
    };
    shell.run();
    if shell.out.failed() && !args.keep_going && !interactive {
        return Err(ClientError::CommandsFailed.into());
    }
    Ok(())
}

/// One shell: its session, its input, its jobs.
struct Shell {
    session: Session,
    input: Input,
    jobs: Arc<Jobs>,
    /// Ends of background jobs, for the session to react to.
    finished: Receiver<Finished>,
    out: Arc<Output>,
    interactive: bool,
    /// Raised by Ctrl+C while a command runs; lowered after each command.
    interrupted: Arc<AtomicBool>,
}

impl Shell {
    fn run(&mut self) {
        while let Some(event) = self.next_event() {
            if !self.handle(event) {
                break;
            }
        }
        // No watch starts a transfer now; whatever still runs is abandoned (a
        // GET_FILE_RANGE prefix stays for a resume).
        self.session.stop_watches();
        self.jobs.cancel_all();
        self.wait_jobs();
        if let Some(outcome) = self.session.quit() {
            self.out.outcome(&outcome);
        }
        self.out.finish();
    }

    /// The next input event; job ends that arrive meanwhile are reacted to.
    fn next_event(&mut self) -> Option<Event> {
        loop {
            crossbeam_channel::select! {
                recv(self.input.events()) -> event => return event.ok(),
                recv(self.finished) -> job => {
                    if let Ok(job) = job {
                        self.session.finished(&job);
                    }
                }
            }
        }
    }

    /// Reacts to one event; false when the session ends.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Line(line) => return self.line(&line),
            Event::Overlong => self.out.outcome(&Outcome::Overlong(shell::MAX_LINE)),
            // The end of a script waits for its transfers, as QUIT does.
            Event::Eof if !self.interactive => return !self.may_quit(),
            // Ctrl+C or Ctrl+D at an empty prompt: as QUIT.
            Event::Eof | Event::Interrupt => {
                if self.may_quit() {
                    return false;
                }
            }
            Event::Signal => return false,
            // An answer nobody asked for.
            Event::Answer(_) => {}
        }
        self.input.done();
        true
    }

    /// Runs one line; false when it was QUIT and the session may end.
    fn line(&mut self, line: &str) -> bool {
        let outcome = self.session.run_line(line);
        self.out.outcome(&outcome);
        if outcome == Outcome::Quit && self.may_quit() {
            // No done(): the input thread must not show another prompt.
            return false;
        }
        // A Ctrl+C during the command cancelled it (its FAIL message is out); the
        // next command starts afresh.
        self.interrupted.store(false, Ordering::SeqCst);
        self.input.done();
        true
    }

    /// Whether the session may end now: at once without transfers; in a terminal
    /// after asking; in a script once they have ended.
    fn may_quit(&mut self) -> bool {
        let running = self.jobs.active();
        if running == 0 {
            return true;
        }
        if !self.interactive {
            // A watch must not start more while the script waits for these.
            self.session.stop_watches();
            self.out
                .note(format!("QUIT: waiting for {running} transfer(s) to end"));
            self.wait_jobs();
            return true;
        }
        self.input.ask(QUIT_QUESTION);
        loop {
            match self.next_event() {
                Some(Event::Answer(answer)) => {
                    let answer = answer.trim().to_ascii_lowercase();
                    return matches!(answer.as_str(), "y" | "yes");
                }
                // A signal (or the input gone) ends the session anyway.
                Some(Event::Signal) | None => return true,
                Some(_) => {}
            }
        }
    }

    /// Waits for every job to end, then reacts to their ends.
    fn wait_jobs(&mut self) {
        self.jobs.wait_all();
        while let Ok(job) = self.finished.try_recv() {
            self.session.finished(&job);
        }
    }
}
