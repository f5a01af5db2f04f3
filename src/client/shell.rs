//! Where the shell's commands come from: a line editor with history when stdin is a
//! terminal, plain lines when it is a pipe or a file, and SIGINT/SIGTERM.
//!
//! Owns: the input thread, the signal thread, and the hand-over of one line at a
//! time to the thread that runs commands (the next prompt is shown only after the
//! previous command printed its message). Does not own: what a line means (`client`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::complete::{SharedNames, ShellHelper};

/// The prompt of PROTOCOL.md section 5, shown by the line editor in a terminal.
pub(super) const PROMPT: &str = "c> ";

/// Longest command line read from a pipe or file. A command is at most a few fields
/// of at most 256 bytes; 64 KiB is generous and caps what a runaway input can make
/// the shell buffer.
pub(super) const MAX_LINE: usize = 64 * 1024;

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
#[derive(Debug)]
pub(super) enum Event {
    /// A command line.
    Line(String),
    /// A line too long to be a command.
    Overlong,
    /// End of input (Ctrl+D, or the end of a script).
    Eof,
    /// Ctrl+C at an empty prompt, SIGTERM, or SIGINT to a script.
    Interrupt,
}

/// The stream of events, and the acknowledgement the input thread waits for before
/// reading the next line.
pub(super) struct Input {
    events: Receiver<Event>,
    done: Sender<()>,
}

impl Input {
    /// Starts the input and signal threads. `cancel` is raised on SIGINT (Ctrl+C while
    /// a command runs) and SIGTERM so a running command (a download) stops early; the
    /// shell lowers it after each command. SIGTERM, and SIGINT when stdin is not a
    /// terminal (a script), also end the session.
    /// In a terminal, Tab completes from `names` and from paths under `share`.
    pub(super) fn start(
        cancel: Arc<AtomicBool>,
        names: SharedNames,
        share: PathBuf,
    ) -> io::Result<Input> {
        let (tx, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let (done, ack) = crossbeam_channel::bounded(1);
        let interactive = io::stdin().is_terminal();
        watch_signals(tx.clone(), cancel, interactive)?;
        let spawned = if interactive {
            thread::Builder::new()
                .name("input".into())
                .spawn(move || read_terminal(&tx, &ack, ShellHelper::new(names, share)))
        } else {
            thread::Builder::new()
                .name("input".into())
                .spawn(move || read_lines(&tx, &ack))
        };
        spawned?;
        Ok(Input { events, done })
    }

    /// The next event (blocks).
    pub(super) fn next(&self) -> Event {
        self.events.recv().unwrap_or(Event::Eof)
    }

    /// The command of the last line is finished: the next line may be read.
    pub(super) fn done(&self) {
        let _ = self.done.try_send(());
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

/// The terminal settings of stdin as they were before anything touched the terminal
/// (saved before the line editor exists, so never its raw mode), for every exit path
/// to put back: the end of the session, signals (which end it), and panics (a hook).
static SAVED_MODE: OnceLock<rustix::termios::Termios> = OnceLock::new();

/// Puts the saved terminal mode back when dropped (every return from the shell,
/// unwinding included).
pub(super) struct TerminalGuard(());

impl TerminalGuard {
    /// Saves the mode of stdin if it is a terminal and installs a panic hook that
    /// restores it. Call first, before the input thread starts.
    pub(super) fn save() -> TerminalGuard {
        let saved = rustix::termios::tcgetattr(rustix::stdio::stdin()).ok();
        if let Some(t) = saved
            && SAVED_MODE.set(t).is_ok()
        {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                previous(info);
            }));
        }
        TerminalGuard(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Puts back the terminal mode saved at start, if any. The session may end (SIGTERM)
/// while the line editor holds the terminal in raw mode; without this the user's
/// terminal would be left without echo.
fn restore_terminal() {
    if let Some(t) = SAVED_MODE.get() {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            t,
        );
    }
}

fn watch_signals(tx: Sender<Event>, cancel: Arc<AtomicBool>, interactive: bool) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let watched: &[i32] = if interactive {
        // SIGINT is caught by `catch_sigint`: the line editor replaces any handler
        // installed before it exists, signal-hook's included.
        catch_sigint(&cancel)?;
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
                let _ = tx.try_send(Event::Interrupt);
            }
        })?;
    Ok(())
}

/// The flag SIGINT raises in a terminal session: Ctrl+C while a command runs cancels
/// that command (at the prompt the line editor reads Ctrl+C as a key, since it turns
/// the terminal's signals off while it edits).
static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe: an atomic load and an atomic store.
    if let Some(cancel) = CANCEL.get() {
        cancel.store(true, Ordering::SeqCst);
    }
}

/// Makes SIGINT raise `cancel` and nothing else. Installed before the line editor
/// exists and again right after: rustyline (without its signal-hook feature, whose
/// input loop stalls on buffered keys) installs its own SIGINT handler when the
/// editor is created, and that handler only wakes its own prompt, so a running
/// command could not be interrupted.
fn catch_sigint(cancel: &Arc<AtomicBool>) -> io::Result<()> {
    let _ = CANCEL.set(Arc::clone(cancel));
    // SAFETY: a zeroed sigaction filled with a handler that only touches atomics.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ctrl+C in the line editor: clears a half-typed line (as bash and psql do); on an
/// empty line it ends the session (rustyline's Interrupted).
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

/// The line editor's printer while background transfers exist (a terminal session).
static PRINTER: Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>> = Mutex::new(None);

/// Whether background transfers are queued or running (set by `jobs`).
static BACKGROUND: AtomicBool = AtomicBool::new(false);

/// Background transfers exist (or no longer do): their messages need the line
/// editor's external printer.
pub(super) fn background_active(active: bool) {
    BACKGROUND.store(active, Ordering::SeqCst);
}

/// Before each prompt: an external printer only while background transfers exist.
/// rustyline's input loop with a printer waits on the terminal with `select`, which
/// misses keys already read into its buffer (several keys in one read stall until
/// the next key): without transfers the shell keeps the plain loop.
fn follow_background<H: rustyline::Helper>(
    editor: &mut rustyline::Editor<H, rustyline::history::FileHistory>,
) {
    let mut printer = PRINTER.lock().unwrap_or_else(|e| e.into_inner());
    match (BACKGROUND.load(Ordering::SeqCst), printer.is_some()) {
        (true, false) => match editor.create_external_printer() {
            Ok(p) => *printer = Some(Box::new(p)),
            Err(e) => log::info!("no external printer ({e}): background messages print plainly"),
        },
        (false, true) => *printer = None,
        _ => {}
    }
}

/// Prints a message from another thread (a background transfer's result): above the
/// line being typed when the line editor runs, plainly on stdout otherwise.
pub(super) fn print_async(text: &str) {
    let mut text = text.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if let Some(printer) = PRINTER.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
        && printer.print(text.clone()).is_ok()
    {
        return;
    }
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn read_terminal(tx: &Sender<Event>, ack: &Receiver<()>, helper: ShellHelper) {
    use rustyline::error::ReadlineError;
    // Tab as in bash: complete what is unambiguous, list the choices on a second Tab.
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut editor =
        match rustyline::Editor::<ShellHelper, rustyline::history::FileHistory>::with_config(config)
        {
            Ok(mut e) => {
                e.set_helper(Some(helper));
                e
            }
            Err(e) => {
                eprintln!("peerdex: no line editor ({e}); reading plain lines");
                return read_lines(tx, ack);
            }
        };
    if let Some(cancel) = CANCEL.get()
        && let Err(e) = catch_sigint(cancel)
    {
        eprintln!("peerdex: Ctrl+C cannot cancel commands: {e}");
    }
    editor.bind_sequence(
        rustyline::KeyEvent::ctrl('C'),
        rustyline::EventHandler::Conditional(Box::new(CtrlC)),
    );
    let history = history_file();
    if let Some(path) = &history {
        use rustyline::history::History;
        let _ = editor.history_mut().set_max_len(HISTORY_ENTRIES);
        let _ = editor.history_mut().ignore_dups(true);
        // A missing file is a first session; an unreadable one is said once.
        if path.exists()
            && let Err(e) = editor.load_history(path)
        {
            eprintln!("peerdex: history {}: {e}", path.display());
        }
    }
    loop {
        follow_background(&mut editor);
        let lines = match editor.readline(PROMPT) {
            Ok(text) => {
                if !text.trim().is_empty() && editor.add_history_entry(text.as_str()).is_ok() {
                    // Appended at once: the session may end by QUIT, Ctrl+D or a
                    // signal, none of which comes back here.
                    if let Some(path) = &history {
                        let _ = editor.append_history(path);
                    }
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

/// Where the line editor keeps its history: `$XDG_STATE_HOME/peerdex/history`, else
/// `~/.local/state/peerdex/history` (the folder is created); `None` (no saved history)
/// when neither is set or the folder cannot be made.
fn history_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })?;
    let dir = base.join("peerdex");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("peerdex: no saved history: {}: {e}", dir.display());
        return None;
    }
    Some(dir.join("history"))
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
