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

mod command;
mod complete;
mod fetch;
mod index;
mod jobs;
mod messages;
mod outcome;
pub(crate) mod peer;
mod progress;
mod published;
mod shell;
mod soap_time;
mod timeclock;

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::proto::index::{Body, Op, Status};
use crate::proto::text::escape_for_terminal;
use command::{Command, Kind, base_name};
use fetch::{Owner, Transfer};
use index::{Index, IndexError, Listed};
use jobs::{Ended, Jobs, State, Work};
use messages::{End, Verdict};
use outcome::Outcome;
use peer::{PeerListener, ServeOptions, SharedFiles};
use progress::Bar;
use published::Record;

pub(crate) use timeclock::TimeClock;

/// Command-line options of `peerdex client`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = client_after_help())]
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
    let clock = {
        let env = std::env::var("WSDL_URL").ok();
        let (url, soap) = timeclock::choose_url(args.time_url.as_deref(), env.as_deref());
        TimeClock::new(url, soap)
    };
    let session = Arc::new(Mutex::new(Session {
        index: Index::new(server, clock, args.no_datetime),
        state_dir,
        files: SharedFiles::new(share),
        serve: ServeOptions {
            max_rate: args.max_upload_rate,
            size_header: args.get_file_size_header,
        },
        connected: None,
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
                let outcome = match command::parse(&line) {
                    Ok(Some(command)) => lock(&session).execute(command),
                    Ok(None) => Outcome::Silent,
                    Err(refusal) => Outcome::Refused(refusal),
                };
                say(&outcome);
                if outcome == Outcome::Quit && quit_now(&jobs, interactive) {
                    // No done(): the input thread must not show another prompt.
                    break;
                }
                // A Ctrl+C during the command cancelled it (its FAIL message is
                // out); the next command starts afresh.
                interrupted.store(false, Ordering::SeqCst);
                input.done();
            }
            shell::Event::Overlong => {
                say(&Outcome::Overlong(shell::MAX_LINE));
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
    if let Some(outcome) = lock(&session).quit() {
        say(&outcome);
    }
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

/// Prints an outcome: its note on stderr, then its message (coloured in a terminal)
/// and the lines after it on stdout in one write; a failure is remembered.
fn say(outcome: &Outcome) {
    let verdict = outcome.verdict();
    if verdict == Some(Verdict::Fail) {
        FAILED.store(true, Ordering::Relaxed);
    }
    if let Some(n) = outcome.note() {
        note(&n);
    }
    let Some(message) = outcome.message() else {
        return;
    };
    let mut block = if COLOUR.load(Ordering::Relaxed) {
        messages::painted(&message, verdict)
    } else {
        message
    };
    block.push('\n');
    block.push_str(&outcome.details());
    let mut out = io::stdout().lock();
    let _ = out.write_all(block.as_bytes());
    let _ = out.flush();
}

/// The end of `peerdex client --help`: the shell's commands and a few examples.
fn client_after_help() -> String {
    let mut out = command::command_list();
    out.push_str(
        "\nIn a terminal: line editing, history (~/.local/state/peerdex/history), Tab\n\
         completion of commands, user and file names and local paths.\n\
         \nExamples:\n  \
         peerdex client -s 127.0.0.1 -p 9090 --share ~/peerdex-share\n  \
         peerdex client -s host -p 9090 --time-url http://host:8000/ < script.txt\n  \
         printf 'REGISTER ann\\nCONNECT ann\\nLIST_USERS\\n' | peerdex client -s host -p 9090\n\
         \nA script exits 1 if any command failed (--keep-going: 0).",
    );
    out
}

/// The user this shell is connected as, and its listener.
struct Connected {
    user: String,
    listener: PeerListener,
    /// What this user published from this client: the only files served.
    record: Option<Record>,
}

struct Session {
    index: Index,
    state_dir: PathBuf,
    files: Arc<SharedFiles>,
    serve: ServeOptions,
    connected: Option<Connected>,
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

/// A detail for stderr (why a command failed, what a transfer does).
fn note(text: &str) {
    eprintln!("peerdex: {text}");
}

impl Session {
    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Register(user) => self.simple(&user, Body::Register),
            Command::Unregister(user) => self.unregister(&user),
            Command::Connect(user) => self.connect(&user),
            Command::Disconnect(user) => self.disconnect(&user),
            Command::Publish { file, description } => self.publish(&file, &description),
            Command::Delete(file) => self.delete(&file),
            Command::ListUsers => self.list_users(),
            Command::ListContent(user) => self.list_content(user),
            Command::Search(pattern) => self.search(&pattern),
            Command::GetFile { .. } | Command::Fetch { .. } => self.transfer_command(command),
            Command::Jobs => self.list_jobs(),
            Command::Cancel(job) => self.cancel_job(job),
            Command::Reshare(on) => {
                self.reshare = on;
                Outcome::Reshare
            }
            Command::Help => Outcome::Help(command::help()),
            Command::Quit => Outcome::Quit,
        }
    }

    /// The status of a request without a list, `None` (said on stderr) without one.
    fn status(&mut self, user: &str, body: Body) -> Option<Status> {
        let op = body.op();
        self.index
            .ask(user, body)
            .map_err(|e| note(&format!("{}: {e}", op.name())))
            .ok()
    }

    fn simple(&mut self, user: &str, body: Body) -> Outcome {
        let op = body.op();
        Outcome::reply(op, self.status(user, body))
    }

    fn me(&self) -> Option<String> {
        self.connected.as_ref().map(|c| c.user.clone())
    }

    fn connect(&mut self, user: &str) -> Outcome {
        if let Some(me) = self.me() {
            if me == user {
                return self.reconnect(user);
            }
            note(&format!(
                "CONNECT: {me} is connected in this shell: DISCONNECT {me} first"
            ));
            return Outcome::reply(Op::Connect, None);
        }
        let listener = match PeerListener::start(Arc::clone(&self.files), self.serve) {
            Ok(l) => l,
            Err(e) => {
                note(&format!("CONNECT: cannot open the peer listener: {e}"));
                return Outcome::reply(Op::Connect, None);
            }
        };
        let port = listener.port();
        let status = self.status(user, Body::Connect { port });
        if status != Some(Status::Ok) {
            listener.stop();
            return Outcome::reply(Op::Connect, status);
        }
        self.connected = Some(Connected {
            user: user.to_owned(),
            listener,
            record: None,
        });
        self.restore_table(user);
        Outcome::reply(Op::Connect, status)
    }

    /// CONNECT of the user this shell believes connected: the server is the truth
    /// (a DISCONNECT from another shell, or an UNREGISTER, changed it behind this
    /// shell's back), so ask it with this shell's peer port and follow its answer.
    fn reconnect(&mut self, user: &str) -> Outcome {
        let Some(port) = self.connected.as_ref().map(|c| c.listener.port()) else {
            return Outcome::reply(Op::Connect, None);
        };
        let status = self.status(user, Body::Connect { port });
        match status {
            // The server had it disconnected: connected again, with this listener.
            Some(Status::Ok) => self.restore_table(user),
            Some(Status::AlreadyConnected) | None => {}
            // Unregistered elsewhere: nothing to serve as this user any more.
            Some(_) => self.drop_connection(),
        }
        Outcome::reply(Op::Connect, status)
    }

    fn unregister(&mut self, user: &str) -> Outcome {
        let status = self.status(user, Body::Unregister);
        match status {
            Some(Status::Ok) => {
                // The name is free for anyone to register again: what this client
                // published under it must not be served to the next owner of the name.
                let cleared = Record::load(&self.state_dir, self.index.server(), user)
                    .and_then(|mut r| r.clear());
                if let Err(e) = cleared {
                    note(&format!(
                        "UNREGISTER: cannot remove the publication record: {e}"
                    ));
                }
            }
            // UNREGISTER's "any other error": the server answers it for a user that
            // is connected (PROTOCOL.md section 2).
            Some(Status::OtherError) => {
                note(&format!(
                    "UNREGISTER: {user} is connected: DISCONNECT {user} first"
                ));
            }
            _ => {}
        }
        Outcome::reply(Op::Unregister, status)
    }

    /// Refills the table of served files at CONNECT: the names this client's record
    /// says its user published from here and the server still lists. The server's
    /// list is not trusted on its own: a name it lists without a local record was
    /// published by someone else in this user's name (or invented by the server) and
    /// is reported, not served.
    fn restore_table(&mut self, user: &str) {
        self.files.clear();
        let mut record = match Record::load(&self.state_dir, self.index.server(), user) {
            Ok(r) => r,
            Err(e) => {
                note(&format!(
                    "nothing is served: cannot read the publication record: {e}"
                ));
                return;
            }
        };
        match self.index.files(user, user) {
            Ok(listed) => {
                let mut on_server = std::collections::HashSet::new();
                for e in listed.entries {
                    match record.get(&e.file) {
                        Some(path) => self.files.insert(&e.file, path.to_path_buf()),
                        None => note(&format!(
                            "the server lists {} for {user}, but it was not published \
                             from this client: not served",
                            escape_for_terminal(&e.file)
                        )),
                    }
                    on_server.insert(e.file);
                }
                // Deleted from elsewhere (or the user was unregistered): forget it.
                if let Err(e) = record.retain(|name| on_server.contains(name)) {
                    note(&format!("cannot update the publication record: {e}"));
                }
            }
            Err(e) => note(&format!("cannot restore the published files: {e}")),
        }
        if let Some(c) = self.connected.as_mut() {
            c.record = Some(record);
        }
    }

    fn disconnect(&mut self, user: &str) -> Outcome {
        let status = self.status(user, Body::Disconnect);
        if self.me().as_deref() == Some(user) {
            self.drop_connection();
        }
        Outcome::reply(Op::Disconnect, status)
    }

    fn drop_connection(&mut self) {
        if let Some(c) = self.connected.take() {
            c.listener.stop();
        }
        self.files.clear();
    }

    fn publish(&mut self, file: &str, description: &str) -> Outcome {
        Outcome::reply(Op::Publish, self.publish_status(file, description))
    }

    /// PUBLISH (typed, or a re-shared download): the status, `None` when refused
    /// here or without a reply.
    fn publish_status(&mut self, file: &str, description: &str) -> Option<Status> {
        let Some(me) = self.me() else {
            return Some(Status::NotConnected);
        };
        let path = match self.files.resolve(file) {
            Ok(p) => p,
            Err(e) => {
                note(&format!("PUBLISH refused: {e}"));
                return None;
            }
        };
        let body = Body::Publish {
            file: file.to_owned(),
            description: description.to_owned(),
        };
        let status = self.status(&me, body);
        if status == Some(Status::Ok) {
            self.remember(|r| r.insert(file, path.clone()));
            self.files.insert(file, path);
        }
        status
    }

    fn delete(&mut self, file: &str) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::Delete);
        };
        let status = self.status(
            &me,
            Body::Delete {
                file: file.to_owned(),
            },
        );
        if status == Some(Status::Ok) {
            self.remember(|r| r.remove(file));
            self.files.remove(file);
        }
        Outcome::reply(Op::Delete, status)
    }

    /// Applies a change to the connected user's publication record (loaded at
    /// CONNECT, or now if that failed); a failure to write it is said on stderr.
    fn remember(&mut self, change: impl FnOnce(&mut Record) -> Result<(), published::RecordError>) {
        let Some(c) = self.connected.as_mut() else {
            return;
        };
        if c.record.is_none() {
            match Record::load(&self.state_dir, self.index.server(), &c.user) {
                Ok(r) => c.record = Some(r),
                Err(e) => {
                    note(&format!("cannot read the publication record: {e}"));
                    return;
                }
            }
        }
        if let Some(Err(e)) = c.record.as_mut().map(change) {
            note(&format!("cannot write the publication record: {e}"));
        }
    }

    /// The outcome of a list request: its status and one line per entry.
    fn listed<T>(
        op: Op,
        result: Result<Listed<T>, IndexError>,
        line: impl Fn(&T) -> String,
    ) -> (Outcome, Vec<T>) {
        match result {
            Ok(listed) => {
                let entries = listed.entries.iter().map(line).collect();
                let outcome = Outcome::Reply {
                    op,
                    status: Some(listed.status),
                    entries,
                };
                (outcome, listed.entries)
            }
            Err(e) => {
                note(&format!("{}: {e}", op.name()));
                (Outcome::reply(op, None), Vec::new())
            }
        }
    }

    fn list_users(&mut self) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::ListUsers);
        };
        let result = self.index.users(&me);
        let (outcome, users) = Session::listed(Op::ListUsers, result, |u| {
            format!("{} {} {}", escape_for_terminal(&u.user), u.ip, u.port)
        });
        if let Ok(mut names) = self.names.lock() {
            names.set_users(users.iter().map(|u| u.user.as_str()));
        }
        outcome
    }

    /// LIST_CONTENT of `target`, or of the connected user without one.
    fn list_content(&mut self, target: Option<String>) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::ListContent);
        };
        let target = target.unwrap_or_else(|| me.clone());
        let result = self.index.files(&me, &target);
        let (outcome, files) = Session::listed(Op::ListContent, result, |f| {
            let file = escape_for_terminal(&f.file);
            match &f.description {
                Some(d) => format!("{file} \"{}\"", escape_for_terminal(d)),
                None => file.into_owned(),
            }
        });
        if let Ok(mut names) = self.names.lock() {
            names.set_files(files.iter().map(|f| f.file.as_str()));
        }
        outcome
    }

    fn search(&mut self, pattern: &str) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::Search);
        };
        let result = self.index.search(&me, pattern);
        let (outcome, found) = Session::listed(Op::Search, result, |s| {
            format!(
                "{} \"{}\" {} {} {}",
                escape_for_terminal(&s.file),
                escape_for_terminal(&s.description),
                escape_for_terminal(&s.owner),
                s.ip,
                s.port
            )
        });
        if let Ok(mut names) = self.names.lock() {
            names.set_users(found.iter().map(|s| s.owner.as_str()));
        }
        outcome
    }

    /// Where a transfer may write `local`, or `None` (the reason on stderr): never
    /// over a file this client publishes (others would then download the wrong
    /// content); over any other existing file, said on stderr.
    fn local_target(&self, kind: Kind, local: &str) -> Option<PathBuf> {
        let op = kind.name();
        let target = self.files.local_path(local);
        let Ok(canonical) = std::fs::canonicalize(&target) else {
            return Some(target);
        };
        if let Some(name) = self.files.name_of(&canonical) {
            note(&format!(
                "{op}: {} is published here as {name}: choose another local name \
                 (or DELETE {name} first)",
                target.display()
            ));
            return None;
        }
        note(&format!(
            "{op}: {} exists: it is replaced when the download completes",
            target.display()
        ));
        Some(target)
    }

    /// GET_FILE and FETCH: the local name, the owners (LIST_USERS or SEARCH), then
    /// the transfer, in the foreground or as a background job.
    fn transfer_command(&mut self, command: Command) -> Outcome {
        let (kind, remote, local, background) = match &command {
            Command::GetFile {
                remote,
                local,
                background,
                ..
            } => (Kind::GetFile, remote, local, *background),
            Command::Fetch {
                remote,
                local,
                background,
            } => (Kind::Fetch, remote, local, *background),
            _ => return Outcome::Silent,
        };
        let failed = Outcome::Transfer {
            kind,
            end: End::Failed,
        };
        let Some(local) = local.as_deref().or_else(|| base_name(remote)) else {
            note(&format!(
                "{}: {} has no file name to save under: give a local name",
                kind.name(),
                escape_for_terminal(remote)
            ));
            return failed;
        };
        let Some(target) = self.local_target(kind, local) else {
            return failed;
        };
        let Some(me) = self.me() else {
            note(&format!(
                "{}: no user is connected in this shell (CONNECT first)",
                kind.name()
            ));
            return failed;
        };
        let owners = match &command {
            Command::GetFile { owner, .. } => fetch::owner_of(&mut self.index, &me, owner),
            _ => fetch::owners_of(&mut self.index, &me, remote),
        };
        let owners = match owners {
            Ok(owners) => owners,
            Err(end) => return Outcome::Transfer { kind, end },
        };
        let transfer = Transfer {
            kind,
            owners,
            remote: remote.clone(),
            local: local.to_owned(),
            target,
        };
        self.transfer(transfer, &command.to_string(), background)
    }

    /// Disconnects the connected user, if any (QUIT, end of input, signals).
    fn quit(&mut self) -> Option<Outcome> {
        let me = self.me()?;
        Some(self.disconnect(&me))
    }
}

impl Session {
    /// Runs a transfer now (the shell waits, Ctrl+C cancels it) or as a background job.
    fn transfer(&mut self, transfer: Transfer, line: &str, background: bool) -> Outcome {
        let kind = transfer.kind;
        if !background {
            let mut bar = Bar::new(self.terminal_out);
            let ran = transfer.run(&self.interrupted, &mut bar);
            bar.finish();
            if let Some(owner) = &ran.served_by {
                self.reshare(&transfer, owner);
            }
            return Outcome::Transfer { kind, end: ran.end };
        }
        let fail = messages::transfer(kind, End::Failed);
        let session = self.this.clone();
        let work: Work = Box::new(move |cancel, meter| {
            let ran = transfer.run(cancel, meter);
            if let (Some(owner), Some(session)) = (&ran.served_by, session.upgrade()) {
                lock(&session).reshare(&transfer, owner);
            }
            Ended {
                state: match ran.end {
                    End::Done => State::Done,
                    End::Cancelled => State::Cancelled,
                    End::NotFound | End::Failed => State::Failed,
                },
                message: messages::transfer(kind, ran.end),
            }
        });
        match self.jobs.submit(line, fail, work) {
            Ok(id) => {
                note(&format!("[{id}] started"));
                Outcome::Silent
            }
            Err(e) => {
                note(&format!("not started: {e}"));
                Outcome::Transfer {
                    kind,
                    end: End::Failed,
                }
            }
        }
    }

    /// Publishes a completed download under its local name with the remote
    /// description, as PUBLISH would, when re-sharing is on.
    fn reshare(&mut self, transfer: &Transfer, owner: &Owner) {
        if !self.reshare {
            return;
        }
        let local = transfer.local.as_str();
        if self.me().is_none() {
            note(&format!("{local} not re-shared: no user is connected"));
            return;
        }
        let description = match &owner.description {
            Some(d) => d.clone(),
            None => self.remote_description(&owner.user, &transfer.remote),
        };
        let status = self.publish_status(local, &description);
        if status == Some(Status::Ok) {
            note(&format!(
                "re-shared {local} \"{}\"",
                escape_for_terminal(&description)
            ));
        } else {
            note(&format!(
                "{local} not re-shared: {}",
                messages::reply(Op::Publish, status)
            ));
        }
    }

    /// The description `owner` published `remote` with (LIST_CONTENT), or the remote
    /// name when it cannot be had.
    fn remote_description(&mut self, owner: &str, remote: &str) -> String {
        let Some(me) = self.me() else {
            return remote.to_owned();
        };
        self.index
            .files(&me, owner)
            .ok()
            .and_then(|l| l.entries.into_iter().find(|f| f.file == remote))
            .and_then(|f| f.description)
            .unwrap_or_else(|| remote.to_owned())
    }

    /// `JOBS`: the background transfers.
    fn list_jobs(&self) -> Outcome {
        Outcome::Jobs(self.jobs.lines())
    }

    /// `CANCEL <n>`.
    fn cancel_job(&self, job: u64) -> Outcome {
        let ok = self.jobs.cancel(job);
        if !ok {
            note(&format!(
                "CANCEL: no queued or running transfer {job} (JOBS lists them)"
            ));
        }
        Outcome::Cancel(ok)
    }
}

/// Locks the session, also after a panic elsewhere (its state stays usable).
fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}
