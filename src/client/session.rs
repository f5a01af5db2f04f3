//! One shell's session: the user it is connected as (and its peer listener), the
//! table of files it serves, and what each [`Command`] does, as an [`Outcome`].
//!
//! Owns: CONNECT/DISCONNECT/UNREGISTER and the publication record, PUBLISH/DELETE,
//! the list commands, GET_FILE/FETCH (the local name, the owners, then the transfer
//! in the foreground or as a job), JOBS/CANCEL/RESHARE, and re-sharing a download
//! when its job reports it done; it starts the user's watches at CONNECT and stops
//! them at DISCONNECT. Does not own: the requests (`index`), the transfer (`fetch`),
//! the jobs (`jobs`), WATCH/UNWATCH/WATCHES and their thread (`watch`), where text
//! goes (`output`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::proto::index::{Body, Op, Status};
use crate::proto::text::escape_for_terminal;

use super::command::{self, Command, Download, Kind};
use super::complete::SharedNames;
use super::fetch::{self, Owner, Transfer};
use super::index::{Index, IndexError, Listed};
use super::jobs::{Finished, Jobs};
use super::messages::{self, End};
use super::outcome::Outcome;
use super::output::Output;
use super::peer::{Downloader, PeerListener, ServeOptions, SharedFiles};
use super::progress::Foreground;
use super::published::{self, Record};
use super::timeclock::TimeClock;
use super::watch::{self, JobEnds, Watches};

/// What a session is made of, from the command line.
pub(crate) struct Settings {
    /// `host:port` of the index server.
    pub(crate) server: String,
    pub(crate) clock: TimeClock,
    pub(crate) no_datetime: bool,
    /// The share folder, canonical.
    pub(crate) share: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) serve: ServeOptions,
    pub(crate) reshare: bool,
    /// `--watch-interval`.
    pub(crate) watch_interval: std::time::Duration,
    /// `--max-sources`: owners FETCH downloads from at once.
    pub(crate) max_sources: usize,
    /// Whether stdout is a terminal (progress bars).
    pub(crate) terminal_out: bool,
}

/// The user this shell is connected as, and its listener.
struct Connected {
    user: String,
    listener: PeerListener,
    /// What this user published from this client: the only files served.
    record: Option<Record>,
}

pub(crate) struct Session {
    index: Index,
    state_dir: PathBuf,
    files: Arc<SharedFiles>,
    serve: ServeOptions,
    /// Shared by every transfer of the session: what each peer address speaks.
    downloader: Downloader,
    connected: Option<Connected>,
    /// Raised by Ctrl+C: stops the foreground transfer.
    interrupted: Arc<AtomicBool>,
    terminal_out: bool,
    /// Background transfers.
    jobs: Arc<Jobs>,
    /// Whether completed downloads are published (`--reshare`, `RESHARE`).
    reshare: bool,
    max_sources: usize,
    /// Names from the last list replies, for Tab completion.
    names: SharedNames,
    /// WATCH's patterns and their poll thread (while connected).
    watches: Watches,
    out: Arc<Output>,
}

impl Session {
    pub(crate) fn new(
        settings: Settings,
        out: Arc<Output>,
        jobs: Arc<Jobs>,
        interrupted: Arc<AtomicBool>,
        names: SharedNames,
        job_ends: JobEnds,
    ) -> Session {
        let index = Index::new(
            settings.server,
            settings.clock,
            settings.no_datetime,
            Arc::clone(&out),
        );
        Session {
            index,
            files: SharedFiles::for_statement(
                settings.share,
                settings.serve.statement,
                Some(settings.state_dir.join("hashes")),
            ),
            state_dir: settings.state_dir,
            serve: settings.serve,
            downloader: Downloader::default(),
            connected: None,
            interrupted,
            terminal_out: settings.terminal_out,
            jobs,
            reshare: settings.reshare,
            max_sources: settings.max_sources,
            names,
            watches: Watches::new(settings.watch_interval, job_ends, Arc::clone(&out)),
            out,
        }
    }

    /// The user this shell is connected as.
    pub(crate) fn user(&self) -> Option<&str> {
        self.connected.as_ref().map(|c| c.user.as_str())
    }

    /// The port of the peer listener, while connected.
    pub(crate) fn peer_port(&self) -> Option<u16> {
        self.connected.as_ref().map(|c| c.listener.port())
    }

    /// Runs one line as typed: parsed, then executed, or refused.
    pub(crate) fn run_line(&mut self, line: &str) -> Outcome {
        match command::parse(line) {
            Ok(Some(command)) => self.execute(command),
            Ok(None) => Outcome::Silent,
            Err(refusal) => Outcome::Refused(refusal),
        }
    }

    pub(crate) fn execute(&mut self, command: Command) -> Outcome {
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
            Command::Download(download) => self.download(download),
            Command::Jobs => Outcome::Jobs(self.jobs.lines()),
            Command::Cancel(job) => self.cancel_job(job),
            Command::Reshare(on) => {
                self.reshare = on;
                Outcome::Reshare
            }
            Command::Watch(pattern) => {
                let (outcome, patterns) = self.watches.watch(&pattern);
                self.set_watched(&patterns);
                outcome
            }
            Command::Unwatch(pattern) => {
                let (outcome, patterns) = self.watches.unwatch(&pattern);
                self.set_watched(&patterns);
                outcome
            }
            Command::Watches => self.watches.lines(),
            Command::Help => Outcome::Help(command::help()),
            Command::Quit => Outcome::Quit,
        }
    }

    /// The status of a request without a list, `None` (said on stderr) without one.
    fn status(&mut self, user: &str, body: Body) -> Option<Status> {
        let op = body.op();
        self.index
            .ask(user, body)
            .map_err(|e| self.out.note(format!("{}: {e}", op.name())))
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
            self.out.note(format!(
                "CONNECT: {me} is connected in this shell: DISCONNECT {me} first"
            ));
            return Outcome::reply(Op::Connect, None);
        }
        let listener = match PeerListener::start(Arc::clone(&self.files), self.serve) {
            Ok(l) => l,
            Err(e) => {
                self.out
                    .note(format!("CONNECT: cannot open the peer listener: {e}"));
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
        self.start_watches(user);
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
                    self.out.note(format!(
                        "UNREGISTER: cannot remove the publication record: {e}"
                    ));
                }
                if let Err(e) = watch::forget(&self.state_dir, self.index.server(), user) {
                    self.out
                        .note(format!("UNREGISTER: cannot remove the watch list: {e}"));
                }
            }
            // UNREGISTER's "any other error": the server answers it for a user that
            // is connected (PROTOCOL.md section 2).
            Some(Status::OtherError) => {
                self.out.note(format!(
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
                self.out.note(format!(
                    "nothing is served: cannot read the publication record: {e}"
                ));
                return;
            }
        };
        match self.index.files(user, user) {
            Ok(listed) => {
                let mut on_server = HashSet::new();
                for e in listed.entries {
                    match record.get(&e.file) {
                        Some(path) => self.files.insert(&e.file, path.to_path_buf()),
                        None => self.out.note(format!(
                            "the server lists {} for {user}, but it was not published \
                             from this client: not served",
                            escape_for_terminal(&e.file)
                        )),
                    }
                    on_server.insert(e.file);
                }
                // Deleted from elsewhere (or the user was unregistered): forget it.
                if let Err(e) = record.retain(|name| on_server.contains(name)) {
                    self.out
                        .note(format!("cannot update the publication record: {e}"));
                }
            }
            Err(e) => self
                .out
                .note(format!("cannot restore the published files: {e}")),
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
        self.watches.stop();
        if let Some(c) = self.connected.take() {
            c.listener.stop();
        }
        self.files.clear();
    }

    fn publish(&mut self, file: &str, description: &str) -> Outcome {
        if self.me().is_some()
            && let Some(name) = self.spaced_name(file, description)
        {
            self.out.note(format!(
                "PUBLISH refused: \"{}\" has a space, and names cannot contain spaces \
                 (the protocol separates fields with them): rename the file",
                escape_for_terminal(&name)
            ));
            return Outcome::reply(Op::Publish, None);
        }
        Outcome::reply(Op::Publish, self.publish_status(file, description))
    }

    /// The file a PUBLISH line meant when `file` does not exist but `file` and the
    /// next words of the line name one (`PUBLISH my notes.txt ...`).
    fn spaced_name(&self, file: &str, description: &str) -> Option<String> {
        /// Words of the description tried: a file name longer than this many words
        /// is not worth guessing.
        const MAX_WORDS: usize = 8;
        if self.files.local_path(file).exists() {
            return None;
        }
        let mut name = file.to_owned();
        for word in description.split(' ').take(MAX_WORDS) {
            name.push(' ');
            name.push_str(word);
            if self.files.local_path(&name).is_file() {
                return Some(name);
            }
        }
        None
    }

    /// PUBLISH (typed, or a re-shared download): the status, `None` when refused
    /// here or without a reply.
    fn publish_status(&mut self, file: &str, description: &str) -> Option<Status> {
        let Some(me) = self.me() else {
            return Some(Status::NotConnected);
        };
        // The file field: the name as typed (2024), or the absolute path (2025).
        let (field, path) = match self.files.to_publish(file) {
            Ok(p) => p,
            Err(e) => {
                self.out.note(format!("PUBLISH refused: {e}"));
                return None;
            }
        };
        let body = Body::Publish {
            file: field.clone(),
            description: description.to_owned(),
        };
        let status = self.status(&me, body);
        if status == Some(Status::Ok) {
            self.remember(|r| r.insert(&field, path.clone()));
            self.files.insert(&field, path);
        }
        status
    }

    fn delete(&mut self, file: &str) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::Delete);
        };
        let file = self.files.to_delete(file);
        let status = self.status(&me, Body::Delete { file: file.clone() });
        if status == Some(Status::Ok) {
            self.remember(|r| r.remove(&file));
            self.files.remove(&file);
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
                    self.out
                        .note(format!("cannot read the publication record: {e}"));
                    return;
                }
            }
        }
        if let Some(Err(e)) = c.record.as_mut().map(change) {
            self.out
                .note(format!("cannot write the publication record: {e}"));
        }
    }

    /// The outcome of a list request: its status and one line per entry.
    fn listed<T>(
        &self,
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
                self.out.note(format!("{}: {e}", op.name()));
                (Outcome::reply(op, None), Vec::new())
            }
        }
    }

    fn list_users(&mut self) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::ListUsers);
        };
        let result = self.index.users(&me);
        let (outcome, users) = self.listed(Op::ListUsers, result, |u| {
            format!("{} {} {}", escape_for_terminal(&u.user), u.ip, u.port)
        });
        self.names
            .lock()
            .set_users(users.iter().map(|u| u.user.as_str()));
        outcome
    }

    /// LIST_CONTENT of `target`, or of the connected user without one.
    fn list_content(&mut self, target: Option<String>) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::ListContent);
        };
        let target = target.unwrap_or_else(|| me.clone());
        let result = self.index.files(&me, &target);
        let (outcome, files) = self.listed(Op::ListContent, result, |f| {
            let file = escape_for_terminal(&f.file);
            match &f.description {
                Some(d) => format!("{file} \"{}\"", escape_for_terminal(d)),
                None => file.into_owned(),
            }
        });
        self.names
            .lock()
            .set_files(files.iter().map(|f| f.file.as_str()));
        outcome
    }

    fn search(&mut self, pattern: &str) -> Outcome {
        let Some(me) = self.me() else {
            return Outcome::not_connected(Op::Search);
        };
        let result = self.index.search(&me, pattern);
        let (outcome, found) = self.listed(Op::Search, result, |s| {
            format!(
                "{} \"{}\" {} {} {}",
                escape_for_terminal(&s.file),
                escape_for_terminal(&s.description),
                escape_for_terminal(&s.owner),
                s.ip,
                s.port
            )
        });
        self.names
            .lock()
            .set_users(found.iter().map(|s| s.owner.as_str()));
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
            self.out.note(format!(
                "{op}: {} is published here as {name}: choose another local name \
                 (or DELETE {name} first)",
                target.display()
            ));
            return None;
        }
        self.out.note(format!(
            "{op}: {} exists: it is replaced when the download completes",
            target.display()
        ));
        Some(target)
    }

    /// GET_FILE and FETCH: the local name, the owners (LIST_USERS or SEARCH), then
    /// the transfer, in the foreground or as a background job.
    fn download(&mut self, download: Download) -> Outcome {
        let kind = download.kind;
        let failed = Outcome::Transfer {
            kind,
            end: End::Failed,
        };
        let Some(local) = download.local_name() else {
            self.out.note(format!(
                "{}: {} has no file name to save under: give a local name",
                kind.name(),
                escape_for_terminal(&download.remote)
            ));
            return failed;
        };
        let Some(target) = self.local_target(kind, local) else {
            return failed;
        };
        let Some(me) = self.me() else {
            self.out.note(format!(
                "{}: no user is connected in this shell (CONNECT first)",
                kind.name()
            ));
            return failed;
        };
        let owners = match &download.owner {
            Some(owner) => fetch::owner_of(&mut self.index, &me, owner),
            None => fetch::owners_of(&mut self.index, &me, &download.remote),
        };
        let owners = match owners {
            Ok(owners) => owners,
            Err(none) => {
                self.out.note(none.why);
                return Outcome::Transfer {
                    kind,
                    end: none.end,
                };
            }
        };
        let transfer = Transfer {
            kind,
            owners,
            remote: download.remote.clone(),
            local: local.to_owned(),
            target,
            downloader: self.downloader.clone(),
            max_sources: self.max_sources,
        };
        self.transfer(transfer, download.to_string(), download.background)
    }

    /// Loads `user`'s watch list and starts polling it (CONNECT).
    fn start_watches(&mut self, user: &str) {
        let live = watch::Live {
            index: self.index.twin(),
            me: user.to_owned(),
            jobs: Arc::clone(&self.jobs),
            files: Arc::clone(&self.files),
            downloader: self.downloader.clone(),
            max_sources: self.max_sources,
            out: Arc::clone(&self.out),
        };
        let patterns = self.watches.start(&self.state_dir, live);
        self.set_watched(&patterns);
    }

    /// The watched patterns, for UNWATCH's completion.
    fn set_watched(&self, patterns: &[String]) {
        self.names
            .lock()
            .set_watched(patterns.iter().map(String::as_str));
    }

    /// Stops searching for watched patterns (the session ends: nothing new may be
    /// started while the shell waits for its transfers).
    pub(crate) fn stop_watches(&mut self) {
        self.watches.stop();
    }

    /// Disconnects the connected user, if any (QUIT, end of input, signals).
    pub(crate) fn quit(&mut self) -> Option<Outcome> {
        let me = self.me()?;
        Some(self.disconnect(&me))
    }
}

impl Session {
    /// Runs a transfer now (the shell waits, Ctrl+C cancels it) or as a background job.
    fn transfer(&mut self, transfer: Transfer, line: String, background: bool) -> Outcome {
        let kind = transfer.kind;
        if background {
            return match self.jobs.submit(line, transfer) {
                Ok(id) => {
                    self.out.note(format!("[{id}] started"));
                    Outcome::Silent
                }
                Err(e) => {
                    self.out.note(format!("not started: {e}"));
                    Outcome::Transfer {
                        kind,
                        end: End::Failed,
                    }
                }
            };
        }
        let ran = {
            let mut shown = Foreground::new(kind, &transfer.remote, &self.out, self.terminal_out);
            transfer.run(&self.interrupted, &mut shown)
        };
        if let Some(owner) = &ran.served_by {
            self.reshare(&transfer.local, &transfer.remote, owner);
        }
        Outcome::Transfer { kind, end: ran.end }
    }

    /// A background job ended: a completed download is re-shared.
    pub(crate) fn finished(&mut self, job: &Finished) {
        if let Some(owner) = &job.served_by {
            self.reshare(&job.local, &job.remote, owner);
        }
    }

    /// Publishes a completed download under its local name with the remote
    /// description, as PUBLISH would, when re-sharing is on.
    fn reshare(&mut self, local: &str, remote: &str, owner: &Owner) {
        if !self.reshare {
            return;
        }
        if self.me().is_none() {
            self.out
                .note(format!("{local} not re-shared: no user is connected"));
            return;
        }
        let description = match &owner.description {
            Some(d) => d.clone(),
            None => self.remote_description(&owner.user, remote),
        };
        let status = self.publish_status(local, &description);
        if status == Some(Status::Ok) {
            self.out.note(format!(
                "re-shared {local} \"{}\"",
                escape_for_terminal(&description)
            ));
        } else {
            self.out.note(format!(
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

    /// `CANCEL <n>`.
    fn cancel_job(&self, job: u64) -> Outcome {
        let ok = self.jobs.cancel(job);
        if !ok {
            self.out.note(format!(
                "CANCEL: no queued or running transfer {job} (JOBS lists them)"
            ));
        }
        Outcome::Cancel(ok)
    }
}
