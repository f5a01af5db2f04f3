//! The console lines a service prints on stdout (`s> ...` for the server, the record
//! lines of the logger).
//!
//! Owns: one writer thread per process that batches lines into a buffered stdout, so
//! request threads neither contend on the stdout lock nor pay a write system call per
//! line; under load it writes at most once per `BATCH_WINDOW`. Lines go through a bounded channel; if stdout is stuck (a paused terminal)
//! and the channel is full, lines are counted and dropped rather than stalling
//! requests. Notes (`Console::note`) are extra lines for a person watching the
//! terminal (the meaning of a failure): they go to stderr, so stdout stays exactly
//! the statement's console, through the same writer, so they follow the stdout line
//! they explain. Does not own: diagnostics, which go through `log` to stderr.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Lines buffered before new ones are dropped.
const CAPACITY: usize = 1 << 16;

/// How long the writer lets lines gather after each write.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// One queued line and the stream it goes to.
enum Line {
    Out(String),
    Note(String),
}

/// A handle for printing console lines; cheap to clone.
#[derive(Clone)]
pub(crate) struct Console {
    tx: Option<Sender<Line>>,
    dropped: Arc<AtomicU64>,
}

/// The writer thread; [`ConsoleWriter::finish`] waits until every line sent before
/// the last `Console` was dropped is on stdout.
pub(crate) struct ConsoleWriter {
    thread: Option<JoinHandle<()>>,
}

impl Console {
    /// Starts the writer thread on stdout.
    pub(crate) fn stdout() -> (Console, ConsoleWriter) {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || write_lines(rx, d))
            .ok();
        (
            Console {
                tx: Some(tx),
                dropped,
            },
            ConsoleWriter { thread },
        )
    }

    /// A console that prints nothing.
    pub(crate) fn silent() -> Console {
        Console {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues one line (without its newline).
    pub(crate) fn line(&self, line: String) {
        self.send(Line::Out(line));
    }

    /// Queues one note for stderr (without its newline), written after every stdout
    /// line queued before it.
    pub(crate) fn note(&self, note: String) {
        self.send(Line::Note(note));
    }

    fn send(&self, line: Line) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ConsoleWriter {
    /// Waits for the writer to drain (all `Console` handles must be dropped first).
    pub(crate) fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_lines(rx: Receiver<Line>, dropped: Arc<AtomicU64>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut reported = 0;
    while let Ok(line) = rx.recv() {
        let mut ok = write_line(&mut out, line);
        // Batch whatever else is already queued, then flush once.
        for line in rx.try_iter().take(4096) {
            ok &= write_line(&mut out, line);
        }
        let d = dropped.load(Ordering::Relaxed);
        if d != reported {
            let _ = writeln!(
                out,
                "({} console lines dropped: stdout too slow)",
                d - reported
            );
            reported = d;
        }
        if !ok || out.flush().is_err() {
            // stdout is gone (closed pipe): keep draining so senders never fill up.
            for _ in rx.iter() {}
            return;
        }
        // Let the next lines gather: under load the writer wakes once per window and
        // finds a batch, instead of parking and being woken between single lines.
        // After a quiet spell the first line is written at once.
        std::thread::sleep(BATCH_WINDOW);
    }
}

/// Writes one line; a note first flushes the stdout lines before it. False when
/// stdout is gone.
fn write_line(out: &mut impl Write, line: Line) -> bool {
    match line {
        Line::Out(text) => writeln!(out, "{text}").is_ok(),
        Line::Note(text) => {
            let flushed = out.flush().is_ok();
            let _ = writeln!(std::io::stderr().lock(), "{text}");
            flushed
        }
    }
}
