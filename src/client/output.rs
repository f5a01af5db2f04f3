//! Where the shell's text goes: [`Output`], one value per shell, owning the colour
//! of messages, whether any command failed (a script's exit status), and printing
//! above the line being typed while the line editor runs.
//!
//! Owns: rendering an [`Outcome`] (its note on stderr, its message and lines on
//! stdout, one write each) and notes from any thread. Does not own: what the text
//! says (`outcome`, `messages`) or the line editor (`shell`, which hands over its
//! printer).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::messages::{self, Verdict};
use super::outcome::Outcome;

/// Which of the two streams a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Messages of the protocol (`c> ...`) and list lines.
    Out,
    /// Notes: why a command failed, what a transfer does.
    Err,
}

/// The destination of the text: the process's stdout and stderr, or a recorder in
/// tests.
pub(crate) trait Screen: Send + Sync {
    /// Writes `text` (whole lines, each ending in a newline) in one piece.
    fn write(&self, stream: Stream, text: &str);
}

/// The process's stdout and stderr.
pub(crate) struct Stdio;

impl Screen for Stdio {
    fn write(&self, stream: Stream, text: &str) {
        let _ = match stream {
            Stream::Out => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            Stream::Err => io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

/// The line editor's way of printing above the line being typed.
pub(crate) type Printer = Box<dyn rustyline::ExternalPrinter + Send>;

/// The output of one shell.
pub(crate) struct Output {
    /// Messages in colour (stdout is a terminal and NO_COLOR is not set).
    colour: bool,
    /// Raised by any failed command or job: a script then exits non-zero.
    failed: AtomicBool,
    screen: Box<dyn Screen>,
    /// While the line editor exists: text goes through it, above the prompt.
    printer: Mutex<Option<Printer>>,
}

impl Output {
    pub(crate) fn new(colour: bool, screen: Box<dyn Screen>) -> Arc<Output> {
        Arc::new(Output {
            colour,
            failed: AtomicBool::new(false),
            screen,
            printer: Mutex::new(None),
        })
    }

    /// From now on text is printed by the line editor (above its prompt while it
    /// reads a line, plainly otherwise).
    pub(crate) fn print_through(&self, printer: Printer) {
        *self.lock_printer() = Some(printer);
    }

    fn lock_printer(&self) -> MutexGuard<'_, Option<Printer>> {
        self.printer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes whole lines: through the line editor's printer when there is one (a
    /// terminal: both streams are the same screen), else to the screen.
    pub(crate) fn write(&self, stream: Stream, text: String) {
        let mut printer = self.lock_printer();
        if let Some(p) = printer.as_mut() {
            match p.print(text.clone()) {
                Ok(()) => return,
                Err(e) => log::info!("the line editor's printer failed ({e}): printing plainly"),
            }
        }
        self.screen.write(stream, &text);
    }

    /// A note on stderr: `peerdex: ` and the text.
    pub(crate) fn note(&self, text: impl AsRef<str>) {
        self.write(Stream::Err, format!("peerdex: {}\n", text.as_ref()));
    }

    /// Renders an outcome: its own note, then its message and lines in one write.
    pub(crate) fn outcome(&self, outcome: &Outcome) {
        let verdict = outcome.verdict();
        if verdict == Some(Verdict::Fail) {
            self.fail();
        }
        if let Some(note) = outcome.note() {
            self.note(note);
        }
        if let Some(block) = self.block(outcome) {
            self.write(Stream::Out, block);
        }
    }

    /// The stdout text of an outcome, `None` when it has none.
    pub(crate) fn block(&self, outcome: &Outcome) -> Option<String> {
        let message = outcome.message()?;
        let mut block = if self.colour {
            messages::painted(&message, outcome.verdict())
        } else {
            message
        };
        block.push('\n');
        block.push_str(&outcome.details());
        Some(block)
    }

    /// A note and an outcome's text printed together (above the prompt, one after
    /// the other), or each to its stream when there is no line editor.
    pub(crate) fn together(&self, note: &str, outcome: &Outcome) {
        if outcome.verdict() == Some(Verdict::Fail) {
            self.fail();
        }
        let note = format!("peerdex: {note}\n");
        let block = self.block(outcome).unwrap_or_default();
        let mut printer = self.lock_printer();
        if let Some(p) = printer.as_mut()
            && p.print(format!("{note}{block}")).is_ok()
        {
            return;
        }
        drop(printer);
        self.screen.write(Stream::Err, &note);
        self.screen.write(Stream::Out, &block);
    }

    /// Remembers a failure that was said some other way (a background job's).
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// Whether any command or job failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A screen that keeps what was written, stream by stream (tests, in process).
#[derive(Default)]
pub(crate) struct Recorder {
    text: Mutex<Vec<(Stream, String)>>,
}

impl Recorder {
    /// Every line written to `stream` so far, without its newline.
    pub(crate) fn lines(&self, stream: Stream) -> Vec<String> {
        let text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, t)| t.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

impl Screen for Arc<Recorder> {
    fn write(&self, stream: Stream, text: &str) {
        let mut all = self.text.lock().unwrap_or_else(|e| e.into_inner());
        all.push((stream, text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::index::{Op, Status};

    #[test]
    fn outcomes_are_coloured_by_verdict_and_failures_remembered() {
        let recorder = Arc::new(Recorder::default());
        let out = Output::new(true, Box::new(Arc::clone(&recorder)));
        out.outcome(&Outcome::reply(Op::Register, Some(Status::Ok)));
        assert!(!out.failed());
        out.outcome(&Outcome::not_connected(Op::Delete));
        assert!(out.failed());
        out.note("why");
        assert_eq!(
            recorder.lines(Stream::Out),
            [
                "\x1b[32mc> REGISTER OK\x1b[0m",
                "\x1b[31mc> DELETE FAIL, USER NOT CONNECTED\x1b[0m"
            ]
        );
        assert_eq!(recorder.lines(Stream::Err), ["peerdex: why"]);
    }
}
