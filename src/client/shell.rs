//! Where the shell's commands come from: a line editor with history when stdin is a
//! terminal, plain lines when it is a pipe or a file, and SIGINT/SIGTERM.
//!
//! Owns: the input thread, the signal thread, and the hand-over of one line at a
//! time to the thread that runs commands (the next prompt is shown only after the
//! previous command printed its message). Does not own: what a line means (`client`).

use std::io::{self, BufRead, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crossbeam_channel::{Receiver, Sender};

/// The prompt of PROTOCOL.md section 5, shown by the line editor in a terminal.
pub(super) const PROMPT: &str = "c> ";

/// Longest command line read from a pipe or file. A command is at most a few fields
/// of at most 256 bytes; 64 KiB is generous and caps what a runaway input can make
/// the shell buffer.
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Events queued for the shell: one line (the input thread waits for the command
/// to finish before reading on) plus room for signals.
const EVENT_QUEUE: usize = 4;

/// What the shell reacts to.
#[derive(Debug)]
pub(super) enum Event {
    /// A command line.
    Line(String),
    /// A line too long to be a command.
    Overlong,
    /// End of input (Ctrl+D, or the end of a script).
    Eof,
    /// Ctrl+C at the prompt, SIGINT or SIGTERM.
    Interrupt,
}

/// The stream of events, and the acknowledgement the input thread waits for before
/// reading the next line.
pub(super) struct Input {
    events: Receiver<Event>,
    done: Sender<()>,
    terminal: Option<TerminalMode>,
}

impl Input {
    /// Starts the input and signal threads. `interrupted` is raised on SIGINT and
    /// SIGTERM so a running command (a download) can stop early.
    pub(super) fn start(interrupted: Arc<AtomicBool>) -> io::Result<Input> {
        let (tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (done, ack) = crossbeam_channel::bounded(1);
        let interactive = io::stdin().is_terminal();
        watch_signals(tx.clone(), interrupted)?;
        let spawned = if interactive {
            thread::Builder::new()
                .name("input".into())
                .spawn(move || read_terminal(&tx, &ack))
        } else {
            thread::Builder::new()
                .name("input".into())
                .spawn(move || read_lines(&tx, &ack))
        };
        spawned?;
        Ok(Input {
            events,
            done,
            terminal: if interactive {
                TerminalMode::save()
            } else {
                None
            },
        })
    }

    /// The next event (blocks).
    pub(super) fn next(&self) -> Event {
        self.events.recv().unwrap_or(Event::Eof)
    }

    /// The command of the last line is finished: the next line may be read.
    pub(super) fn done(&self) {
        let _ = self.done.try_send(());
    }

    /// Puts the terminal back as it was at start. The shell may end (SIGTERM) while
    /// the line editor holds the terminal in raw mode; without this the user's
    /// terminal would be left without echo.
    pub(super) fn restore_terminal(&self) {
        if let Some(mode) = &self.terminal {
            mode.restore();
        }
    }
}

/// The terminal settings of stdin at start.
struct TerminalMode(libc::termios);

impl TerminalMode {
    fn save() -> Option<TerminalMode> {
        // SAFETY: tcgetattr writes a termios into the zeroed value we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(libc::STDIN_FILENO, &mut t) == 0).then_some(TerminalMode(t))
        }
    }

    fn restore(&self) {
        // SAFETY: a termios obtained from tcgetattr on the same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &self.0);
        }
    }
}

fn watch_signals(tx: Sender<Event>, interrupted: Arc<AtomicBool>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                log::info!("signal {sig}: quitting");
                interrupted.store(true, Ordering::SeqCst);
                // If the queue is full the shell still sees the flag after the
                // command it is running.
                let _ = tx.try_send(Event::Interrupt);
            }
        })?;
    Ok(())
}

fn read_terminal(tx: &Sender<Event>, ack: &Receiver<()>) {
    use rustyline::error::ReadlineError;
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("peerdex: no line editor ({e}); reading plain lines");
            return read_lines(tx, ack);
        }
    };
    loop {
        let lines = match editor.readline(PROMPT) {
            Ok(text) => {
                if !text.trim().is_empty() {
                    let _ = editor.add_history_entry(text.as_str());
                }
                // A bracketed paste of several lines arrives as one string: run its
                // lines one by one, as a script would.
                text.lines().map(|l| Event::Line(l.to_owned())).collect()
            }
            Err(ReadlineError::Interrupted) => vec![Event::Interrupt],
            Err(ReadlineError::Eof) => vec![Event::Eof],
            Err(e) => {
                eprintln!("peerdex: input: {e}");
                vec![Event::Eof]
            }
        };
        for event in lines {
            let last = !matches!(event, Event::Line(_));
            if tx.send(event).is_err() || last || ack.recv().is_err() {
                return;
            }
        }
    }
}

fn read_lines(tx: &Sender<Event>, ack: &Receiver<()>) {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let event = match read_bounded_line(&mut input, &mut buf) {
            Ok(LineRead::Line) => Event::Line(String::from_utf8_lossy(&buf).into_owned()),
            Ok(LineRead::Overlong) => Event::Overlong,
            Ok(LineRead::Eof) => Event::Eof,
            Err(e) => {
                eprintln!("peerdex: input: {e}");
                Event::Eof
            }
        };
        let last = matches!(event, Event::Eof);
        if tx.send(event).is_err() || last || ack.recv().is_err() {
            return;
        }
    }
}

enum LineRead {
    Line,
    Overlong,
    Eof,
}

/// Reads one line (without its end) of at most [`MAX_LINE`] bytes into `buf`; a
/// longer line is skipped up to its end.
fn read_bounded_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    let mut overlong = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if overlong {
                LineRead::Overlong
            } else if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line
            });
        }
        let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !overlong {
            if buf.len() + take > MAX_LINE {
                overlong = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(take + usize::from(end));
        if end {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(if overlong {
                LineRead::Overlong
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut r = io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_bounded_line(&mut r, &mut buf).unwrap() {
                LineRead::Line => out.push(String::from_utf8(buf.clone()).unwrap()),
                LineRead::Overlong => out.push("<overlong>".into()),
                LineRead::Eof => return out,
            }
        }
    }

    #[test]
    fn splits_lines_across_buffer_refills() {
        assert_eq!(
            lines(b"REGISTER alice\r\nLIST_USERS\n\nQUIT"),
            ["REGISTER alice", "LIST_USERS", "", "QUIT"]
        );
    }

    #[test]
    fn skips_an_overlong_line_and_goes_on() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nQUIT\n");
        assert_eq!(lines(&input), ["<overlong>", "QUIT"]);
    }
}
