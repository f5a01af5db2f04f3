//! Where the shell's text goes: [`Output`], one value per shell, owning the colour
//! of messages, whether any command failed (a script's exit status), and printing
//! above the line being typed while the line editor runs.
//!
//! Owns: rendering an [`Outcome`] (its note on stderr, its message and lines on
//! stdout, one write each) and notes from any thread. Does not own: what the text
//! says (`outcome`, `messages`) or the line editor (`shell`, which hands over its
//! printer).

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, MutexGuard};

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

/// Pieces of text waiting for the printer thread: far more than a burst of notes.
/// When it is full (the line editor stopped taking text), text is written plainly.
const PRINT_QUEUE: usize = 1024;

/// How long the end of the session waits for queued text to reach the screen.
const PRINT_DRAIN: Duration = Duration::from_secs(2);

/// The printer thread's queue, and its sign that it printed everything.
struct Printing {
    queue: Sender<(Stream, String)>,
    drained: Receiver<()>,
}

/// The output of one shell.
pub(crate) struct Output {
    /// Messages in colour (stdout is a terminal and NO_COLOR is not set).
    colour: bool,
    /// Raised by any failed command or job: a script then exits non-zero.
    failed: AtomicBool,
    screen: Arc<dyn Screen>,
    /// While the line editor exists: text goes to a thread that prints it through
    /// the editor, above its prompt. The editor's printer can wait for the editor
    /// (it hands text over through a one-place channel); that thread waits, never a
    /// command or a job.
    printing: Mutex<Option<Printing>>,
}

impl Output {
    pub(crate) fn new(colour: bool, screen: Arc<dyn Screen>) -> Arc<Output> {
        Arc::new(Output {
            colour,
            failed: AtomicBool::new(false),
            screen,
            printing: Mutex::new(None),
        })
    }

    /// From now on text is printed by the line editor (above its prompt while it
    /// reads a line, plainly otherwise), from a thread of its own.
    pub(crate) fn print_through(&self, mut printer: Printer) -> io::Result<()> {
        let (queue, texts) = crossbeam_channel::bounded::<(Stream, String)>(PRINT_QUEUE);
        let (done, drained) = crossbeam_channel::bounded(1);
        let screen = Arc::clone(&self.screen);
        thread::Builder::new()
            .name("printer".into())
            .spawn(move || {
                for (stream, text) in texts {
                    if let Err(e) = printer.print(text.clone()) {
                        log::info!("the line editor's printer failed ({e}): printing plainly");
                        screen.write(stream, &text);
                    }
                }
                let _ = done.send(());
            })?;
        *self.lock_printing() = Some(Printing { queue, drained });
        Ok(())
    }

    fn lock_printing(&self) -> MutexGuard<'_, Option<Printing>> {
        self.printing.lock()
    }

    /// Writes whole lines: through the line editor when there is one (a terminal:
    /// both streams are the same screen), else to the screen.
    pub(crate) fn write(&self, stream: Stream, text: String) {
        let text = match self.lock_printing().as_ref() {
            Some(p) => match p.queue.try_send((stream, text)) {
                Ok(()) => return,
                Err(full) => full.into_inner().1,
            },
            None => text,
        };
        self.screen.write(stream, &text);
    }

    /// Waits (a little) until the text queued for the line editor is printed: the
    /// session ends.
    pub(crate) fn finish(&self) {
        if let Some(p) = self.lock_printing().take() {
            drop(p.queue);
            let _ = p.drained.recv_timeout(PRINT_DRAIN);
        }
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
        if self.lock_printing().is_some() {
            return self.write(Stream::Out, format!("{note}{block}"));
        }
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
        let text = self.text.lock();
        text.iter()
            .filter(|(s, _)| *s == stream)
            .flat_map(|(_, t)| t.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

impl Screen for Recorder {
    fn write(&self, stream: Stream, text: &str) {
        let mut all = self.text.lock();
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
        let out = Output::new(true, Arc::clone(&recorder) as Arc<dyn Screen>);
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
