//! Where the shell's commands come from: a line editor with history when stdin is a
//! terminal, plain lines when it is a pipe or a file, and SIGINT/SIGTERM.
//!
//! Owns: the input thread, the signal thread, the terminal mode saved at start, and
//! the hand-over of one line (or the answer to a question) at a time to the thread
//! that runs commands (the next prompt is shown only after the previous command
//! printed its message). Does not own: what a line means (`session`), where text
//! goes (`output`, which this module hands the line editor's printer).

use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;

use super::complete::{SharedNames, ShellHelper};
use super::output::Output;

/// The prompt of PROTOCOL.md section 5, shown by the line editor in a terminal.
pub(crate) const PROMPT: &str = "c> ";

/// Longest command line read from a pipe or file. A command is at most a few fields
/// of at most 256 bytes; 64 KiB is generous and caps what a runaway input can make
/// the shell buffer.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Longest answer to a question read from a pipe: a yes or a no.
const MAX_ANSWER: u64 = 256;

/// Entries kept in the history file across sessions: a few weeks of lab use, and a
/// file small enough (tens of KiB) to load at every start without notice.
const HISTORY_ENTRIES: usize = 1000;

/// How long the start line waits for the index server to accept a connection: a
/// server on the lab network answers in milliseconds, and a person waits for this
/// before the first prompt.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Events queued for the shell: one line (the input thread waits for the command
/// to finish before reading on) plus room for signals.
const EVENT_QUEUE: usize = 4;

/// What the shell reacts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A command line.
    Line(String),
    /// A line too long to be a command.
    Overlong,
    /// End of input (Ctrl+D at an empty prompt, or the end of a script).
    Eof,
    /// Ctrl+C at an empty prompt.
    Interrupt,
    /// SIGTERM, or SIGINT to a script: the session ends.
    Signal,
    /// The answer to a question ([`Input::ask`]); empty at Ctrl+C or Ctrl+D.
    Answer(String),
}

/// What the input thread reads next.
enum Next {
    /// A command line.
    Line,
    /// The answer to this question.
    Answer(&'static str),
}

/// The stream of events, and the hand-over the input thread waits for before
/// reading again.
pub(crate) struct Input {
    events: Receiver<Event>,
    next: Sender<Next>,
}

impl Input {
    /// Starts the input and signal threads. `cancel` is raised on SIGINT (Ctrl+C while
    /// a command runs) and SIGTERM so a running command (a download) stops early; the
    /// shell lowers it after each command. SIGTERM, and SIGINT when stdin is not a
    /// terminal (a script), also end the session. In a terminal, Tab completes from
    /// `names` and from paths under `share`, and `out` prints through the line
    /// editor.
    pub(crate) fn start(
        cancel: Arc<AtomicBool>,
        names: SharedNames,
        share: PathBuf,
        out: Arc<Output>,
    ) -> io::Result<Input> {
        let (tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (next, wanted) = crossbeam_channel::bounded(1);
        let interactive = io::stdin().is_terminal();
        watch_signals(tx.clone(), cancel, interactive)?;
        let input = thread::Builder::new().name("input".into());
        if interactive {
            let helper = ShellHelper::new(names, share);
            input.spawn(move || read_terminal(&tx, &wanted, helper, &out))?;
        } else {
            input.spawn(move || read_lines(&tx, &wanted, &out))?;
        }
        Ok(Input { events, next })
    }

    /// The events, for a `select` with other sources.
    pub(crate) fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The command of the last line is finished: the next line may be read.
    pub(crate) fn done(&self) {
        let _ = self.next.try_send(Next::Line);
    }

    /// Reads the answer to `question` next (it arrives as [`Event::Answer`]).
    pub(crate) fn ask(&self, question: &'static str) {
        let _ = self.next.try_send(Next::Answer(question));
    }
}

/// The line a person sees at start (on stderr, terminal sessions only): the index
/// server this shell talks to, whether it accepts a connection now, and where to go
/// next.
pub(super) fn start_line(server: &str) -> String {
    use std::net::ToSocketAddrs;
    let answer = match server.to_socket_addrs() {
        Ok(addrs) => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            let reached = addrs.into_iter().any(|addr| {
                crate::net::connect(addr, PROBE_TIMEOUT)
                    .map_err(|e| last = e)
                    .is_ok()
            });
            if reached {
                "answers".to_owned()
            } else {
                format!("does not answer ({last}): commands fail until it runs")
            }
        }
        Err(e) => format!("cannot be resolved ({e})"),
    };
    format!("peerdex client: index server {server} {answer}. Type HELP for the commands.")
}

/// Puts the terminal mode of stdin saved at start back when dropped (every return
/// from the shell, unwinding included); a panic hook does it too. The session may
/// end (SIGTERM) while the line editor holds the terminal in raw mode: without this
/// the user's terminal would be left without echo.
pub(crate) struct TerminalGuard {
    saved: Option<rustix::termios::Termios>,
}

impl TerminalGuard {
    /// Saves the mode of stdin if it is a terminal (before the line editor exists,
    /// so never its raw mode) and installs a panic hook that restores it. Call
    /// first, before the input thread starts.
    pub(crate) fn save() -> TerminalGuard {
        let saved = rustix::termios::tcgetattr(rustix::stdio::stdin()).ok();
        if let Some(mode) = saved.clone() {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal(&mode);
                previous(info);
            }));
        }
        TerminalGuard { saved }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(mode) = &self.saved {
            restore_terminal(mode);
        }
    }
}

fn restore_terminal(mode: &rustix::termios::Termios) {
    let _ = rustix::termios::tcsetattr(
        rustix::stdio::stdin(),
        rustix::termios::OptionalActions::Now,
        mode,
    );
}

/// SIGTERM (and SIGINT in a script) raise `cancel` and end the session; in a
/// terminal SIGINT only raises `cancel`: Ctrl+C while a command runs cancels that
/// command (at the prompt the line editor reads Ctrl+C as a key, since it turns
/// the terminal's signals off while it edits, and puts this handler back after
/// each line).
fn watch_signals(tx: Sender<Event>, cancel: Arc<AtomicBool>, interactive: bool) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let watched: &[i32] = if interactive {
        signal_hook::flag::register(SIGINT, Arc::clone(&cancel))?;
        &[SIGTERM]
    } else {
        &[SIGINT, SIGTERM]
    };
    let mut signals = signal_hook::iterator::Signals::new(watched)?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                log::info!("signal {sig}: quitting");
                cancel.store(true, Ordering::SeqCst);
                // If the queue is full the shell still ends: the events ahead of
                // this one are lines, and the input thread sends nothing more
                // until the shell has taken them.
                let _ = tx.try_send(Event::Signal);
            }
        })?;
    Ok(())
}

/// Ctrl+C in the line editor: clears a half-typed line (as bash and psql do); on an
/// empty line it is [`Event::Interrupt`] (the shell leaves as QUIT does).
struct CtrlC;

impl rustyline::ConditionalEventHandler for CtrlC {
    fn handle(
        &self,
        _evt: &rustyline::Event,
        _n: rustyline::RepeatCount,
        _positive: bool,
        ctx: &rustyline::EventContext<'_>,
    ) -> Option<rustyline::Cmd> {
        if ctx.line().is_empty() {
            None
        } else {
            Some(rustyline::Cmd::Kill(rustyline::Movement::WholeBuffer))
        }
    }
}

type Editor = rustyline::Editor<ShellHelper, FileHistory>;

/// The line editor: Tab as in bash (complete what is unambiguous, list the choices
/// on a second Tab), Ctrl+C clearing a half-typed line, the history of earlier
/// sessions.
fn editor(helper: ShellHelper, out: &Output) -> rustyline::Result<(Editor, Option<PathBuf>)> {
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor = Editor::with_config(config)?;
    editor.set_helper(Some(helper));
    editor.bind_sequence(
        rustyline::KeyEvent::ctrl('C'),
        rustyline::EventHandler::Conditional(Box::new(CtrlC)),
    );
    let history = history_file(out);
    if let Some(path) = &history {
        use rustyline::history::History;
        let _ = editor.history_mut().set_max_len(HISTORY_ENTRIES);
        let _ = editor.history_mut().ignore_dups(true);
        // A missing file is a first session; an unreadable one is said once.
        if path.exists()
            && let Err(e) = editor.load_history(path)
        {
            out.note(format!("history {}: {e}", path.display()));
        }
    }
    Ok((editor, history))
}

fn read_terminal(tx: &Sender<Event>, wanted: &Receiver<Next>, helper: ShellHelper, out: &Output) {
    let (mut editor, history) = match editor(helper, out) {
        Ok(e) => e,
        Err(e) => {
            out.note(format!("no line editor ({e}); reading plain lines"));
            return read_lines(tx, wanted, out);
        }
    };
    // Messages of background transfers go above the line being typed. rustyline 19
    // hands out the keys it already read before it waits on the terminal and the
    // printer (docs/DESIGN.md, "Background transfers"), so a printer never holds
    // typed or pasted input.
    match editor.create_external_printer() {
        Ok(p) => {
            if let Err(e) = out.print_through(Box::new(p)) {
                log::info!("no printer thread ({e}): background messages print plainly");
            }
        }
        Err(e) => log::info!("no external printer ({e}): background messages print plainly"),
    }
    // The lines of a bracketed paste not yet handed over.
    let mut pasted = VecDeque::new();
    let mut next = Next::Line;
    loop {
        let event = match next {
            Next::Line => match pasted.pop_front() {
                Some(line) => Event::Line(line),
                None => read_command(&mut editor, history.as_deref(), &mut pasted, out),
            },
            Next::Answer(question) => read_answer(&mut editor, question, out),
        };
        if tx.send(event).is_err() {
            return;
        }
        match wanted.recv() {
            Ok(n) => next = n,
            Err(_) => return,
        }
    }
}

/// Reads one command line (the rest of a multi-line paste goes to `pasted`).
fn read_command(
    editor: &mut Editor,
    history: Option<&std::path::Path>,
    pasted: &mut VecDeque<String>,
    out: &Output,
) -> Event {
    match editor.readline(PROMPT) {
        Ok(text) => {
            if !text.trim().is_empty() && editor.add_history_entry(text.as_str()).is_ok() {
                // Appended at once: the session may end by QUIT, Ctrl+D or a
                // signal, none of which comes back here.
                if let Some(path) = history {
                    let _ = editor.append_history(path);
                }
            }
            // A bracketed paste of several lines arrives as one string: run its
            // lines one by one, as a script would.
            pasted.extend(text.lines().map(str::to_owned));
            Event::Line(pasted.pop_front().unwrap_or_default())
        }
        Err(ReadlineError::Interrupted) => Event::Interrupt,
        Err(ReadlineError::Eof) => Event::Eof,
        Err(e) => {
            out.note(format!("input: {e}"));
            Event::Eof
        }
    }
}

/// Reads the answer to a question at its own prompt (not kept in the history).
fn read_answer(editor: &mut Editor, question: &str, out: &Output) -> Event {
    match editor.readline(question) {
        Ok(text) => Event::Answer(text),
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => Event::Answer(String::new()),
        Err(e) => {
            out.note(format!("input: {e}"));
            Event::Answer(String::new())
        }
    }
}

/// Where the line editor keeps its history: `$XDG_STATE_HOME/peerdex/history`, else
/// `~/.local/state/peerdex/history`; `None` when neither is set.
pub(crate) fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    Some(base.join("peerdex/history"))
}

/// [`history_path`] with its folder created; `None` (no saved history) when there
/// is no path or the folder cannot be made.
fn history_file(out: &Output) -> Option<PathBuf> {
    let path = history_path()?;
    let dir = path.parent()?;
    if let Err(e) = std::fs::create_dir_all(dir) {
        out.note(format!("no saved history: {}: {e}", dir.display()));
        return None;
    }
    Some(path)
}

/// Reads a script: one command per line, questions answered from the next line.
fn read_lines(tx: &Sender<Event>, wanted: &Receiver<Next>, out: &Output) {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    let mut next = Next::Line;
    loop {
        buf.clear();
        let event = match next {
            Next::Line => match read_bounded_line(&mut input, &mut buf) {
                Ok(LineRead::Line) => Event::Line(String::from_utf8_lossy(&buf).into_owned()),
                Ok(LineRead::Overlong) => Event::Overlong,
                Ok(LineRead::Eof) => Event::Eof,
                Err(e) => {
                    out.note(format!("input: {e}"));
                    Event::Eof
                }
            },
            Next::Answer(_) => {
                let mut answer = String::new();
                let _ = io::Read::take(&mut input, MAX_ANSWER).read_line(&mut answer);
                Event::Answer(answer)
            }
        };
        let last = event == Event::Eof;
        if tx.send(event).is_err() || last {
            return;
        }
        match wanted.recv() {
            Ok(n) => next = n,
            Err(_) => return,
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
    fn start_line_says_whether_the_server_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let line = start_line(&addr);
        assert!(
            line.contains(&format!("index server {addr} answers")),
            "{line}"
        );
        assert!(line.contains("Type HELP"), "{line}");
        drop(listener);
        let line = start_line(&addr);
        assert!(line.contains("does not answer"), "{line}");
        assert!(line.contains("Type HELP"), "{line}");
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
