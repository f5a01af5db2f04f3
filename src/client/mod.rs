//! `peerdex client`: the shell of PROTOCOL.md section 5.
//!
//! Owns: parsing command lines, one index request per operation (one TCP connection
//! each, stamped with the time service's DATETIME), the connected user of this shell
//! and its peer listener, the table of published files, and GET_FILE (look the user
//! up, then download directly from the peer). Does not own: the peer protocol and
//! downloads (`peer`), the message texts (`messages`), where lines come from
//! (`shell`), the DATETIME (`timeclock`).
//!
//! Output: exactly one message line per command on stdout (list commands add one
//! `\t`-indented line per entry), so a script's output is exactly the messages of the
//! protocol. Details of a failure (why a download failed, a file that cannot be
//! shared) go to stderr.

mod complete;
mod fetch;
mod jobs;
mod messages;
pub(crate) mod peer;
mod published;
mod shell;
mod soap_time;
mod timeclock;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::net;
use crate::proto::index::{self, Body, Op, Request};
use crate::proto::wire::{Field, FieldReader, WireError};
use fetch::{Kind, Owner, Transfer, lock};
use jobs::Jobs;
use peer::{Done, Downloader, PeerListener, Progress, ServeOptions, SharedFiles};
use published::Record;

pub(crate) use messages::{help, reply, usage};
pub(crate) use timeclock::TimeClock;

/// Connect, read and write timeout of one index request. The server answers at once;
/// 5 s covers a loaded server on a slow link without leaving the shell hanging long
/// when the server is gone.
pub(crate) const INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest user name, file name or description the client sends: a C server written
/// to the statement keeps them in `char[256]` with the NUL (PROTOCOL.md section 5),
/// so a longer one would be cut or overflow there. Refused locally instead.
pub(crate) const STATEMENT_MAX_FIELD: usize = 255;

/// Downloads at least this large show a progress bar (in a terminal). Smaller ones
/// finish before a bar would be readable.
pub(crate) const PROGRESS_MIN_SIZE: u64 = 8 * 1024 * 1024;

/// Command-line options of `peerdex client`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = messages::client_after_help())]
pub struct ClientArgs {
    /// Index server host.
    #[arg(short, long)]
    pub server: String,
    /// Index server port.
    #[arg(short, long)]
    pub port: u16,
    /// Time service asked for the DATETIME of every request: http://HOST:PORT/ (plain
    /// GET), or a SOAP service's WSDL, http://HOST:PORT/?wsdl. Default: $WSDL_URL (a
    /// WSDL), else http://127.0.0.1:8000/. The local clock is used when it cannot be
    /// reached.
    #[arg(long, value_name = "URL")]
    pub time_url: Option<String>,
    /// Folder that relative file names (PUBLISH, GET_FILE's local file) resolve
    /// against.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub share: PathBuf,
    /// Where this client keeps its record of what its users published from here
    /// (default: $XDG_STATE_HOME/peerdex or ~/.local/state/peerdex). Only files in that
    /// record are ever served.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Send requests in the first-version layout, without DATETIME (for index servers
    /// written to part 1 of the statement); the time service is not asked.
    #[arg(long)]
    pub no_datetime: bool,
    /// In a script (stdin not a terminal), exit 0 even when commands failed. Without
    /// it a script exits 1 after any FAIL message or usage error.
    #[arg(long)]
    pub keep_going: bool,
    /// Upload rate limit per download served, in bytes per second (default: none).
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_upload_rate: Option<u64>,
    /// Serve plain GET_FILE with `SIZE\0` after the result byte 0, as some course
    /// slides show it (the statement sends no size; its downloaders then store the
    /// size text as part of the file).
    #[arg(long)]
    pub get_file_size_header: bool,
    /// Background transfers (`GET_FILE ... &`, `FETCH ... &`) run at once; the rest
    /// wait in order.
    #[arg(long, default_value_t = jobs::DEFAULT_MAX_DOWNLOADS, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=jobs::MAX_MAX_DOWNLOADS))]
    pub max_downloads: u16,
    /// PUBLISH every completed download under its local name with the remote
    /// description (the shell's `RESHARE on|off` toggles it).
    #[arg(long)]
    pub reshare: bool,
}

/// Why the shell could not start.
#[derive(Debug)]
pub(crate) enum ClientError {
    Share {
        path: PathBuf,
        source: io::Error,
    },
    Input(io::Error),
    /// A script ran to its end but some of its commands failed.
    CommandsFailed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Share { path, source } => {
                write!(f, "share folder {}: {source}", path.display())
            }
            ClientError::Input(e) => write!(f, "input: {e}"),
            ClientError::CommandsFailed => {
                write!(f, "some commands failed (see above; --keep-going exits 0)")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Why an index request got no result code.
#[derive(Debug)]
pub(crate) enum IndexError {
    Resolve {
        server: String,
        source: io::Error,
    },
    Connect {
        server: String,
        source: io::Error,
    },
    Send(io::Error),
    Reply(WireError),
    /// A field longer than [`STATEMENT_MAX_FIELD`]: refused before sending.
    TooLong {
        field: &'static str,
        len: usize,
    },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Resolve { server, source } => write!(f, "resolve: {server}: {source}"),
            IndexError::Connect { server, source } => {
                write!(f, "connect: index server {server}: {source}")
            }
            IndexError::Send(e) => write!(f, "send: {e}"),
            IndexError::Reply(e) => write!(f, "reply: {e}"),
            IndexError::TooLong { field, len } => write!(
                f,
                "not sent: the {field} has {len} bytes; index servers written to the \
                 statement take at most {STATEMENT_MAX_FIELD}"
            ),
        }
    }
}

impl std::error::Error for IndexError {}

/// Runs the shell until QUIT, end of input, Ctrl+C at an empty prompt or SIGTERM.
pub fn run(args: ClientArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Before anything touches the terminal; put back on every way out.
    let _terminal = shell::TerminalGuard::save();
    let share = std::fs::canonicalize(&args.share).map_err(|source| ClientError::Share {
        path: args.share.clone(),
        source,
    })?;
    if !share.is_dir() {
        return Err(ClientError::Share {
            path: args.share.clone(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }
        .into());
    }
    let server = format!("{}:{}", args.server, args.port);
    COLOUR.store(
        io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        Ordering::Relaxed,
    );
    if io::stdin().is_terminal() {
        eprintln!("{}", shell::start_line(&server));
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    let names = complete::SharedNames::default();
    let input = shell::Input::start(Arc::clone(&interrupted), Arc::clone(&names), share.clone())
        .map_err(ClientError::Input)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| published::default_state_dir(&share));
    let jobs = Jobs::new(usize::from(args.max_downloads));
    let session = Arc::new(Mutex::new(Session {
        server,
        state_dir,
        no_datetime: args.no_datetime,
        clock: {
            let env = std::env::var("WSDL_URL").ok();
            let (url, soap) = timeclock::choose_url(args.time_url.as_deref(), env.as_deref());
            TimeClock::new(url, soap)
        },
        files: SharedFiles::new(share),
        serve: ServeOptions {
            max_rate: args.max_upload_rate,
            size_header: args.get_file_size_header,
            statement: Default::default(),
        },
        connected: None,
        downloader: Downloader::default(),
        interrupted: Arc::clone(&interrupted),
        terminal_out: io::stdout().is_terminal(),
        jobs: Arc::clone(&jobs),
        reshare: args.reshare,
        this: std::sync::Weak::new(),
        names,
    }));
    lock(&session).this = Arc::downgrade(&session);
    let interactive = io::stdin().is_terminal();
    loop {
        match input.next() {
            shell::Event::Line(line) => {
                let flow = lock(&session).execute(&line);
                if flow == Flow::Quit && quit_now(&jobs, interactive) {
                    // No done(): the input thread must not show another prompt.
                    break;
                }
                // A Ctrl+C during the command cancelled it (its FAIL message is
                // out); the next command starts afresh.
                interrupted.store(false, Ordering::SeqCst);
                input.done();
            }
            shell::Event::Overlong => {
                say(&format!(
                    "c> line longer than {} bytes ignored",
                    shell::MAX_LINE
                ));
                input.done();
            }
            // The end of a script waits for its transfers, as QUIT does.
            shell::Event::Eof if !interactive => {
                quit_now(&jobs, interactive);
                break;
            }
            shell::Event::Eof | shell::Event::Interrupt => break,
        }
    }
    // Whatever still runs is abandoned (a GET_FILE_RANGE prefix stays for a resume).
    jobs.cancel_all();
    jobs.wait_all();
    lock(&session).quit();
    if FAILED.load(Ordering::Relaxed) && !args.keep_going && !interactive {
        return Err(ClientError::CommandsFailed.into());
    }
    Ok(())
}

/// QUIT with background transfers: in a terminal, asks whether to abandon them; in a
/// script, waits for them to end. True when the session may end.
fn quit_now(jobs: &Jobs, interactive: bool) -> bool {
    let running = jobs.active();
    if running == 0 {
        return true;
    }
    if !interactive {
        eprintln!("peerdex: QUIT: waiting for {running} transfer(s) to end");
        jobs.wait_all();
        return true;
    }
    {
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"transfers running: quit anyway? [y/N] ");
        let _ = out.flush();
    }
    let mut answer = String::new();
    // A yes/no answer; a longer line is no answer.
    let read = io::BufRead::read_line(&mut io::Read::take(io::stdin().lock(), 256), &mut answer);
    let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    read.is_err() || yes
}

/// Whether messages are coloured: stdout is a terminal and NO_COLOR is not set (set
/// once at start).
static COLOUR: AtomicBool = AtomicBool::new(false);

/// Raised by any failed command (a FAIL message, a usage error): a script then exits
/// non-zero.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Prints one block of output (ends with a newline) in one write. Its first line is
/// the command's message: coloured in a terminal, and remembered when it failed.
fn say(text: &str) {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    if messages::outcome(first) == Some(messages::Outcome::Fail) {
        FAILED.store(true, Ordering::Relaxed);
    }
    let mut block = if COLOUR.load(Ordering::Relaxed) {
        messages::painted(first)
    } else {
        first.to_owned()
    };
    block.push('\n');
    block.push_str(rest);
    if !block.ends_with('\n') {
        block.push('\n');
    }
    let mut out = io::stdout().lock();
    let _ = out.write_all(block.as_bytes());
    let _ = out.flush();
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// The user this shell is connected as, and its listener.
struct Connected {
    user: String,
    listener: PeerListener,
    /// What this user published from this client: the only files served.
    record: Option<Record>,
}

struct Session {
    server: String,
    state_dir: PathBuf,
    clock: TimeClock,
    /// Requests without DATETIME (`--no-datetime`).
    no_datetime: bool,
    files: Arc<SharedFiles>,
    serve: ServeOptions,
    connected: Option<Connected>,
    /// Downloads, and what each peer speaks (asked once per session).
    downloader: Downloader,
    interrupted: Arc<AtomicBool>,
    terminal_out: bool,
    /// Background transfers.
    jobs: Arc<Jobs>,
    /// Whether completed downloads are published (`--reshare`, `RESHARE`).
    reshare: bool,
    /// This session as shared with background jobs (they re-share through it).
    this: std::sync::Weak<Mutex<Session>>,
    /// Names from the last list replies, for Tab completion.
    names: complete::SharedNames,
}

/// A command line split into its word and arguments.
struct Parsed<'a> {
    command: String,
    args: Vec<&'a str>,
    /// Everything after the first argument (a PUBLISH description).
    rest: &'a str,
}

fn parse(line: &str) -> Option<Parsed<'_>> {
    let line = line.trim();
    let (word, after) = split_word(line);
    if word.is_empty() {
        return None;
    }
    let (_, rest) = split_word(after);
    Some(Parsed {
        command: word.to_ascii_uppercase(),
        args: after.split_whitespace().collect(),
        rest,
    })
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Refuses a request whose user name, file name or description (or LIST_CONTENT
/// target, SEARCH pattern) is longer than [`STATEMENT_MAX_FIELD`] bytes.
fn check_lengths(user: &str, body: &Body) -> Result<(), IndexError> {
    let mut fields = vec![("user name", user)];
    match body {
        Body::Publish { file, description } => {
            fields.push(("file name", file));
            fields.push(("description", description));
        }
        Body::Delete { file } => fields.push(("file name", file)),
        Body::ListContent { target } => fields.push(("user name", target)),
        Body::Search { pattern } => fields.push(("pattern", pattern)),
        Body::Register
        | Body::Unregister
        | Body::Connect { .. }
        | Body::Disconnect
        | Body::ListUsers => {}
    }
    match fields.iter().find(|(_, v)| v.len() > STATEMENT_MAX_FIELD) {
        Some((field, v)) => Err(IndexError::TooLong {
            field,
            len: v.len(),
        }),
        None => Ok(()),
    }
}

/// The last component of a remote file name (what GET_FILE saves it as when no
/// local name is given), or `None` when it has none (`dir/`, `..`).
fn base_name(remote: &str) -> Option<&str> {
    let base = remote.rsplit(['/', '\\']).next()?;
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

/// A description as typed, without one pair of enclosing double quotes (LIST_CONTENT
/// shows descriptions in quotes, so users tend to type them that way).
fn description(rest: &str) -> &str {
    let rest = rest.trim();
    rest.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest)
}

impl Session {
    fn execute(&mut self, line: &str) -> Flow {
        // A trailing `&` runs GET_FILE or FETCH in the background.
        let (line, background) = match line.trim_end().strip_suffix('&') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let Some(p) = parse(line) else {
            return Flow::Continue;
        };
        if background && !matches!(p.command.as_str(), "GET_FILE" | "FETCH") {
            say(&format!(
                "c> {} cannot run in the background (only GET_FILE and FETCH)",
                p.command
            ));
            return Flow::Continue;
        }
        if p.command.starts_with('#') {
            return Flow::Continue;
        }
        let arity = match p.command.as_str() {
            "REGISTER" | "UNREGISTER" | "CONNECT" | "DISCONNECT" | "DELETE" | "SEARCH" => 1..=1,
            "LIST_USERS" | "HELP" | "QUIT" | "JOBS" => 0..=0,
            "CANCEL" | "RESHARE" => 1..=1,
            // LIST_CONTENT alone: your own files; GET_FILE's local name defaults to the
            // remote file's base name.
            "LIST_CONTENT" => 0..=1,
            "GET_FILE" => 2..=3,
            "FETCH" => 1..=2,
            "PUBLISH" => 2..=usize::MAX,
            _ => {
                say(&format!(
                    "c> unknown command {}: HELP lists the commands",
                    p.command
                ));
                return Flow::Continue;
            }
        };
        if !arity.contains(&p.args.len()) {
            say(&format!("c> usage: {}", usage(&p.command)));
            return Flow::Continue;
        }
        let a = &p.args;
        match p.command.as_str() {
            "REGISTER" => self.simple(a[0], Body::Register),
            "UNREGISTER" => self.unregister(a[0]),
            "CONNECT" => self.connect(a[0]),
            "DISCONNECT" => self.disconnect(a[0]),
            "PUBLISH" => self.publish(a[0], description(p.rest)),
            "DELETE" => self.delete(a[0]),
            "LIST_USERS" => self.list_users(),
            "LIST_CONTENT" => match a.first() {
                Some(user) => self.list_content(user),
                None => self.list_own_content(),
            },
            "SEARCH" => self.search(a[0]),
            "GET_FILE" => match a.get(2).copied().or_else(|| base_name(a[1])) {
                Some(local) => self.get_file(a[0], a[1], local, line.trim(), background),
                None => {
                    eprintln!(
                        "peerdex: GET_FILE: {} has no file name to save under: give a local name",
                        a[1]
                    );
                    say(messages::GET_FILE_FAIL);
                }
            },
            "FETCH" => self.fetch(a[0], a.get(1).copied(), line.trim(), background),
            "JOBS" => self.list_jobs(),
            "CANCEL" => self.cancel_job(a[0]),
            "RESHARE" => self.set_reshare(a[0]),
            "HELP" => say(&help()),
            "QUIT" => return Flow::Quit,
            _ => unreachable!("arity table covers every command"),
        }
        Flow::Continue
    }

    /// Sends one request and returns its result code with the reader positioned
    /// after it (for list replies).
    fn request(
        &mut self,
        user: &str,
        body: Body,
    ) -> Result<(u8, FieldReader<TcpStream>), IndexError> {
        check_lengths(user, &body)?;
        let request = Request {
            datetime: if self.no_datetime {
                None
            } else {
                Some(self.clock.now())
            },
            user: user.to_owned(),
            body,
        };
        let stream = self.connect_index()?;
        (&stream)
            .write_all(&request.encode())
            .map_err(IndexError::Send)?;
        let mut reader = FieldReader::new(stream);
        let code = reader.read_u8(Field::Code).map_err(IndexError::Reply)?;
        Ok((code, reader))
    }

    fn connect_index(&self) -> Result<TcpStream, IndexError> {
        let addrs: Vec<SocketAddr> = self
            .server
            .to_socket_addrs()
            .map_err(|source| IndexError::Resolve {
                server: self.server.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match net::connect(addr, INDEX_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(IndexError::Connect {
            server: self.server.clone(),
            source: last,
        })
    }

    /// The result code of a request without a list, or `None` (reported on stderr).
    fn code(&mut self, user: &str, body: Body) -> Option<u8> {
        let op = body.op();
        match self.request(user, body) {
            Ok((code, _)) => Some(code),
            Err(e) => {
                eprintln!("peerdex: {}: {e}", op.name());
                None
            }
        }
    }

    fn simple(&mut self, user: &str, body: Body) {
        let op = body.op();
        let code = self.code(user, body);
        say(reply(op, code));
    }

    fn me(&self) -> Option<String> {
        self.connected.as_ref().map(|c| c.user.clone())
    }

    fn connect(&mut self, user: &str) {
        if let Some(me) = self.me() {
            if me == user {
                return self.reconnect(user);
            } else {
                eprintln!(
                    "peerdex: CONNECT: {me} is connected in this shell: DISCONNECT {me} first"
                );
                say(reply(Op::Connect, None));
            }
            return;
        }
        let listener = match PeerListener::start(Arc::clone(&self.files), self.serve) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("peerdex: CONNECT: cannot open the peer listener: {e}");
                say(reply(Op::Connect, None));
                return;
            }
        };
        let code = self.code(
            user,
            Body::Connect {
                port: listener.port(),
            },
        );
        if code != Some(index::OK) {
            listener.stop();
            say(reply(Op::Connect, code));
            return;
        }
        self.connected = Some(Connected {
            user: user.to_owned(),
            listener,
            record: None,
        });
        self.restore_table(user);
        say(reply(Op::Connect, code));
    }

    /// CONNECT of the user this shell believes connected: the server is the truth
    /// (a DISCONNECT from another shell, or an UNREGISTER, changed it behind this
    /// shell's back), so ask it with this shell's peer port and follow its answer.
    fn reconnect(&mut self, user: &str) {
        let Some(port) = self.connected.as_ref().map(|c| c.listener.port()) else {
            return;
        };
        let code = self.code(user, Body::Connect { port });
        match code {
            // The server had it disconnected: connected again, with this listener.
            Some(index::OK) => self.restore_table(user),
            Some(messages::ALREADY_CONNECTED) => {}
            // Unregistered elsewhere: nothing to serve as this user any more.
            Some(_) => self.drop_connection(),
            None => {}
        }
        say(reply(Op::Connect, code));
    }

    fn unregister(&mut self, user: &str) {
        let code = self.code(user, Body::Unregister);
        if code == Some(index::OK) {
            // The name is free for anyone to register again: what this client
            // published under it must not be served to the next owner of the name.
            if let Err(e) =
                Record::load(&self.state_dir, &self.server, user).and_then(|mut r| r.clear())
            {
                eprintln!("peerdex: UNREGISTER: cannot remove the publication record: {e}");
            }
        } else if code == Some(messages::UNREGISTER_CONNECTED) {
            eprintln!("peerdex: UNREGISTER: {user} is connected: DISCONNECT {user} first");
        }
        say(reply(Op::Unregister, code));
    }

    /// Refills the table of served files at CONNECT: the names this client's record
    /// says its user published from here and the server still lists. The server's
    /// list is not trusted on its own: a name it lists without a local record was
    /// published by someone else in this user's name (or invented by the server) and
    /// is reported, not served.
    fn restore_table(&mut self, user: &str) {
        self.files.clear();
        let mut record = match Record::load(&self.state_dir, &self.server, user) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("peerdex: nothing is served: cannot read the publication record: {e}");
                return;
            }
        };
        let listed = self
            .request(
                user,
                Body::ListContent {
                    target: user.to_owned(),
                },
            )
            .and_then(|(code, mut r)| match code {
                index::OK => index::read_file_list(&mut r).map_err(IndexError::Reply),
                _ => Ok(Vec::new()),
            });
        match listed {
            Ok(entries) => {
                let mut on_server = std::collections::HashSet::new();
                for e in entries {
                    match record.get(&e.file) {
                        Some(path) => self.files.insert(&e.file, path.to_path_buf()),
                        None => eprintln!(
                            "peerdex: the server lists {} for {user}, but it was not published \
                             from this client: not served",
                            e.file
                        ),
                    }
                    on_server.insert(e.file);
                }
                // Deleted from elsewhere (or the user was unregistered): forget it.
                if let Err(e) = record.retain(|name| on_server.contains(name)) {
                    eprintln!("peerdex: cannot update the publication record: {e}");
                }
            }
            Err(e) => eprintln!("peerdex: cannot restore the published files: {e}"),
        }
        if let Some(c) = self.connected.as_mut() {
            c.record = Some(record);
        }
    }

    fn disconnect(&mut self, user: &str) {
        let code = self.code(user, Body::Disconnect);
        if self.me().as_deref() == Some(user) {
            self.drop_connection();
        }
        say(reply(Op::Disconnect, code));
    }

    fn drop_connection(&mut self) {
        if let Some(c) = self.connected.take() {
            c.listener.stop();
        }
        self.files.clear();
    }

    fn publish(&mut self, file: &str, description: &str) {
        let code = self.publish_code(file, description);
        say(reply(Op::Publish, code));
    }

    /// PUBLISH (typed, or a re-shared download): the result code, `None` when refused
    /// here or without a reply.
    fn publish_code(&mut self, file: &str, description: &str) -> Option<u8> {
        let Some(me) = self.me() else {
            return Some(messages::NOT_CONNECTED);
        };
        let path = match self.files.resolve(file) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("peerdex: PUBLISH refused: {e}");
                return None;
            }
        };
        let code = self.code(
            &me,
            Body::Publish {
                file: file.to_owned(),
                description: description.to_owned(),
            },
        );
        if code == Some(index::OK) {
            self.remember(|r| r.insert(file, path.clone()));
            self.files.insert(file, path);
        }
        code
    }

    fn delete(&mut self, file: &str) {
        let Some(me) = self.me() else {
            return say(reply(Op::Delete, Some(messages::NOT_CONNECTED)));
        };
        let code = self.code(
            &me,
            Body::Delete {
                file: file.to_owned(),
            },
        );
        if code == Some(index::OK) {
            self.remember(|r| r.remove(file));
            self.files.remove(file);
        }
        say(reply(Op::Delete, code));
    }

    /// Applies a change to the connected user's publication record (loaded at
    /// CONNECT, or now if that failed); a failure to write it is said on stderr.
    fn remember(&mut self, change: impl FnOnce(&mut Record) -> Result<(), published::RecordError>) {
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        if c.record.is_none() {
            match Record::load(&self.state_dir, &self.server, &c.user) {
                Ok(r) => c.record = Some(r),
                Err(e) => {
                    eprintln!("peerdex: cannot read the publication record: {e}");
                    return;
                }
            }
        }
        if let Some(Err(e)) = c.record.as_mut().map(change) {
            eprintln!("peerdex: cannot write the publication record: {e}");
        }
    }

    /// Runs a list request as the connected user and prints its message and lines.
    fn list<T>(
        &mut self,
        body: Body,
        read: impl FnOnce(&mut FieldReader<TcpStream>) -> Result<Vec<T>, WireError>,
        line: impl Fn(&T) -> String,
    ) -> Option<Vec<T>> {
        let op = body.op();
        let Some(me) = self.me() else {
            say(reply(op, Some(messages::NOT_CONNECTED)));
            return None;
        };
        let result = self.request(&me, body).and_then(|(code, mut r)| {
            if code == index::OK {
                read(&mut r)
                    .map(|l| (code, Some(l)))
                    .map_err(IndexError::Reply)
            } else {
                Ok((code, None))
            }
        });
        match result {
            Ok((code, entries)) => {
                let mut out = format!("{}\n", reply(op, Some(code)));
                for e in entries.iter().flatten() {
                    out.push('\t');
                    out.push_str(&line(e));
                    out.push('\n');
                }
                say(&out);
                entries
            }
            Err(e) => {
                eprintln!("peerdex: {}: {e}", op.name());
                say(reply(op, None));
                None
            }
        }
    }

    fn list_users(&mut self) {
        let users = self.list(Body::ListUsers, index::read_user_list, |u| {
            format!("{} {} {}", u.user, u.ip, u.port)
        });
        if let (Some(users), Ok(mut names)) = (users, self.names.lock()) {
            names.set_users(users.iter().map(|u| u.user.as_str()));
        }
    }

    fn list_content(&mut self, target: &str) {
        let files = self.list(
            Body::ListContent {
                target: target.to_owned(),
            },
            index::read_file_list,
            |f| format!("{} \"{}\"", f.file, f.description),
        );
        if let (Some(files), Ok(mut names)) = (files, self.names.lock()) {
            names.set_files(files.iter().map(|f| f.file.as_str()));
        }
    }

    /// LIST_CONTENT without a user: the connected user's own files.
    fn list_own_content(&mut self) {
        match self.me() {
            Some(me) => self.list_content(&me),
            None => say(reply(Op::ListContent, Some(messages::NOT_CONNECTED))),
        }
    }

    fn search(&mut self, pattern: &str) {
        let found = self.list(
            Body::Search {
                pattern: pattern.to_owned(),
            },
            index::read_search_list,
            |s| {
                format!(
                    "{} \"{}\" {} {} {}",
                    s.file, s.description, s.owner, s.ip, s.port
                )
            },
        );
        if let (Some(found), Ok(mut names)) = (found, self.names.lock()) {
            names.set_users(found.iter().map(|s| s.owner.as_str()));
        }
    }

    /// Where GET_FILE may write `local`, or `None` (the reason on stderr): never over
    /// a file this client publishes (others would then download the wrong content);
    /// over any other existing file, said on stderr.
    fn local_target(&self, op: &str, local: &str) -> Option<PathBuf> {
        let target = self.files.local_path(local);
        let Ok(canonical) = std::fs::canonicalize(&target) else {
            return Some(target);
        };
        if let Some(name) = self.files.name_of(&canonical) {
            eprintln!(
                "peerdex: {op}: {} is published here as {name}: choose another local \
                 name (or DELETE {name} first)",
                target.display()
            );
            return None;
        }
        eprintln!(
            "peerdex: {op}: {} exists: it is replaced when the download completes",
            target.display()
        );
        Some(target)
    }

    fn get_file(&mut self, owner: &str, remote: &str, local: &str, line: &str, bg: bool) {
        let Some(target) = self.local_target("GET_FILE", local) else {
            return say(messages::GET_FILE_FAIL);
        };
        let Some(me) = self.me() else {
            eprintln!("peerdex: GET_FILE: no user is connected in this shell (CONNECT first)");
            return say(messages::GET_FILE_FAIL);
        };
        let users = self
            .request(&me, Body::ListUsers)
            .and_then(|(code, mut r)| {
                if code == index::OK {
                    index::read_user_list(&mut r)
                        .map_err(IndexError::Reply)
                        .map(Some)
                } else {
                    Ok(None)
                }
            });
        let addr = match users {
            Ok(Some(users)) => match users.into_iter().find(|u| u.user == owner) {
                Some(u) => SocketAddr::new(u.ip, u.port),
                None => {
                    eprintln!("peerdex: GET_FILE: {owner} is not connected");
                    return say(messages::GET_FILE_FAIL);
                }
            },
            Ok(None) => {
                eprintln!("peerdex: GET_FILE: the server refused LIST_USERS");
                return say(messages::GET_FILE_FAIL);
            }
            Err(e) => {
                eprintln!("peerdex: GET_FILE: LIST_USERS: {e}");
                return say(messages::GET_FILE_FAIL);
            }
        };
        let transfer = Transfer {
            kind: Kind::GetFile,
            owners: vec![Owner {
                user: owner.to_owned(),
                addr,
                description: None,
            }],
            remote: remote.to_owned(),
            local: local.to_owned(),
            target,
        };
        self.transfer(transfer, line, bg);
    }

    /// Disconnects the connected user, if any (QUIT, end of input, signals).
    fn quit(&mut self) {
        if let Some(me) = self.me() {
            self.disconnect(&me);
        }
    }
}

/// Bytes as a person reads them: `512 B`, `1.2 GiB`.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The one stderr line after a download: size, time, rate (of the bytes this
/// download received).
fn summary(done: &Done) -> String {
    let secs = done.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        human((done.received as f64 / secs) as u64)
    } else {
        human(done.received)
    };
    let mut line = format!("{} in {secs:.2} s, {rate}/s", human(done.size));
    if done.resumed_from > 0 {
        line.push_str(&format!(
            " (resumed at {}, {} received)",
            human(done.resumed_from),
            human(done.received)
        ));
    }
    line
}

/// A progress bar on a terminal for large (or unknown-size) downloads; nothing
/// otherwise. It also says on stderr where a resumed download starts.
struct Bar {
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl Bar {
    fn new(terminal: bool) -> Bar {
        Bar {
            terminal,
            bar: None,
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, size: Option<u64>, from: u64) {
        if let (Some(size), true) = (size, from > 0) {
            eprintln!("peerdex: resuming at {} of {}", human(from), human(size));
        }
        self.finish();
        if !self.terminal || size.is_some_and(|s| s < PROGRESS_MIN_SIZE) {
            return;
        }
        let target = indicatif::ProgressDrawTarget::stdout();
        // With a size: a bar and a percentage; without (plain GET_FILE): bytes and
        // rate only.
        let (bar, template) = match size {
            Some(size) => (
                indicatif::ProgressBar::with_draw_target(Some(size), target),
                "{bar:30} {percent:>3}% {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                indicatif::ProgressBar::with_draw_target(None, target),
                "{spinner} {bytes} {binary_bytes_per_sec}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_position(from);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, position: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_words_case_insensitively_and_keeps_the_description() {
        let p = parse("  publish notes.txt   week 3  notes ").unwrap();
        assert_eq!(p.command, "PUBLISH");
        assert_eq!(p.args, ["notes.txt", "week", "3", "notes"]);
        assert_eq!(p.rest, "week 3  notes");
        assert!(parse("   ").is_none());
        let p = parse("List_Users").unwrap();
        assert_eq!(p.command, "LIST_USERS");
        assert!(p.args.is_empty());
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(human((12 << 30) / 10), "1.2 GiB");
    }

    #[test]
    fn base_name_of_a_remote_file() {
        assert_eq!(base_name("notes.txt"), Some("notes.txt"));
        assert_eq!(base_name("labs/lab1.txt"), Some("lab1.txt"));
        assert_eq!(base_name("C:\\work\\a.pdf"), Some("a.pdf"));
        assert_eq!(base_name("labs/"), None);
        assert_eq!(base_name(".."), None);
    }

    #[test]
    fn strips_one_pair_of_quotes_from_a_description() {
        assert_eq!(description("\"week 3\""), "week 3");
        assert_eq!(description("week \"3\""), "week \"3\"");
        assert_eq!(description("\""), "\"");
    }
}
