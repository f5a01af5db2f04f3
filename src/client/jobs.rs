//! Background transfers: `GET_FILE ... &` and `FETCH ... &` (PROTOCOL.md section 5,
//! client extensions), owned by a job manager that reports [`JobEvent`]s.
//!
//! Owns: the table of jobs (number, command, bytes, size when known, rate, state),
//! the bounded set of worker threads (`--max-downloads` at once; the rest wait in
//! the order they were typed), each job's cancel flag, and the events of a job
//! (started, progress, resumed, a step in words, done, failed). Does not own: the
//! transfer (`fetch`), what is shown of an event or done about it (the shell's
//! observer: it renders them above the prompt and re-shares a done download).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::command::Kind;
use super::fetch::{Owner, Report, Step, Transfer, names, sources};
use super::messages::End;
use super::units::{human, summary};
use crate::proto::text::escape_for_terminal;

/// Default of `--max-downloads`: transfers running at once. Four keep a typical
/// uplink busy without splitting it into trickles, as the other lab systems' queues do.
pub(crate) const DEFAULT_MAX_DOWNLOADS: u16 = 4;

/// Largest `--max-downloads`: each running transfer holds a thread and a 256 KiB
/// buffer; 64 parallel downloads are more than any link splits usefully.
pub(crate) const MAX_MAX_DOWNLOADS: i64 = 64;

/// Jobs kept in the table (finished ones are dropped oldest first to make room). A
/// user types commands by hand: 256 is far more than one session starts, and bounds
/// the memory a script looping on `&` can take.
pub(crate) const MAX_JOBS: usize = 256;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl State {
    fn finished(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }

    fn of(end: End) -> State {
        match end {
            End::Done => State::Done,
            End::Cancelled => State::Cancelled,
            End::NotFound | End::Failed => State::Failed,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        })
    }
}

/// Why a job was not started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobsError {
    #[error("{MAX_JOBS} transfers are queued or running")]
    Full,
}

/// What a finished job was and how it ended.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) kind: Kind,
    /// The command as typed (without `&`).
    pub(crate) command: String,
    pub(crate) remote: String,
    pub(crate) local: String,
    pub(crate) end: End,
    /// The owner that completed it.
    pub(crate) served_by: Option<Owner>,
    /// Size, time and rate of a completed download.
    pub(crate) summary: Option<String>,
}

/// Something that happened to job `job`.
#[derive(Debug)]
pub(crate) struct JobEvent {
    pub(crate) job: u64,
    pub(crate) what: What,
}

#[derive(Debug)]
pub(crate) enum What {
    /// A worker took it.
    Started,
    /// The file is complete up to `position`.
    Progress {
        position: u64,
    },
    /// The content continues a kept prefix at `from`.
    Resumed {
        from: u64,
        size: u64,
    },
    /// A step of the transfer in words (which owner; why one failed).
    Note(String),
    Done(Finished),
    /// Failed, cancelled, or not found.
    Failed(Finished),
}

/// Whoever is told of the events (any thread may call it).
pub(crate) type Observer = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// Bytes, size and rate of one job.
#[derive(Debug, Default, Clone, Copy)]
struct Meter {
    size: Option<u64>,
    from: u64,
    position: u64,
    since: Option<Instant>,
    ended: Option<Instant>,
    /// Sources of a multi-source FETCH downloading now.
    sources: Option<usize>,
}

impl Meter {
    /// Bytes per second received by the current transfer.
    fn rate(&self) -> u64 {
        let Some(since) = self.since else { return 0 };
        let end = self.ended.unwrap_or_else(Instant::now);
        let secs = end.saturating_duration_since(since).as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        (self.position.saturating_sub(self.from) as f64 / secs) as u64
    }
}

struct Job {
    id: u64,
    command: String,
    state: State,
    cancel: Arc<AtomicBool>,
    meter: Meter,
    /// Taken by the worker that runs it.
    transfer: Option<Transfer>,
}

struct Table {
    jobs: VecDeque<Job>,
    next_id: u64,
    workers: usize,
}

/// The background transfers of one shell.
pub(crate) struct Jobs {
    table: Mutex<Table>,
    /// Signalled when a job ends (QUIT waits on it).
    ended: Condvar,
    max_workers: usize,
    observer: Observer,
}

impl Jobs {
    pub(crate) fn new(max_workers: usize, observer: Observer) -> Arc<Jobs> {
        Arc::new(Jobs {
            table: Mutex::new(Table {
                jobs: VecDeque::new(),
                next_id: 1,
                workers: 0,
            }),
            ended: Condvar::new(),
            max_workers: max_workers.max(1),
            observer,
        })
    }

    /// Queues `transfer` (typed as `command`) and starts a worker for it if fewer
    /// than the maximum run. Returns the job's number.
    pub(crate) fn submit(
        self: &Arc<Self>,
        command: String,
        transfer: Transfer,
    ) -> Result<u64, JobsError> {
        let mut t = self.table.lock();
        if t.jobs.len() >= MAX_JOBS {
            let i = t
                .jobs
                .iter()
                .position(|j| j.state.finished())
                .ok_or(JobsError::Full)?;
            t.jobs.remove(i);
        }
        let id = t.next_id;
        t.next_id += 1;
        t.jobs.push_back(Job {
            id,
            command,
            state: State::Queued,
            cancel: Arc::new(AtomicBool::new(false)),
            meter: Meter::default(),
            transfer: Some(transfer),
        });
        if t.workers < self.max_workers {
            let jobs = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("transfer".into())
                .spawn(move || jobs.work_loop());
            match spawned {
                Ok(_) => t.workers += 1,
                // The job stays queued: the next worker to free up takes it.
                Err(e) => {
                    drop(t);
                    (self.observer)(JobEvent {
                        job: id,
                        what: What::Note(format!("waits: cannot start a worker: {e}")),
                    });
                }
            }
        }
        Ok(id)
    }

    /// The next queued job, now running; `None` (and one worker less) when none is
    /// left.
    fn take_next(&self) -> Option<(u64, String, Transfer, Arc<AtomicBool>)> {
        let mut t = self.table.lock();
        let next = t
            .jobs
            .iter_mut()
            .find(|j| j.state == State::Queued && j.transfer.is_some());
        match next {
            Some(j) => {
                j.state = State::Running;
                let transfer = j.transfer.take()?;
                Some((j.id, j.command.clone(), transfer, Arc::clone(&j.cancel)))
            }
            None => {
                t.workers -= 1;
                self.ended.notify_all();
                None
            }
        }
    }

    /// A worker: runs queued jobs in order until none is left.
    fn work_loop(self: Arc<Self>) {
        while let Some((id, command, transfer, cancel)) = self.take_next() {
            (self.observer)(JobEvent {
                job: id,
                what: What::Started,
            });
            let mut report = JobReport {
                jobs: &self,
                job: id,
                kind: transfer.kind,
                remote: &transfer.remote,
                summary: None,
            };
            let ran = transfer.run(&cancel, &mut report);
            let summary = report.summary.take();
            let finished = Finished {
                kind: transfer.kind,
                command,
                remote: transfer.remote,
                local: transfer.local,
                end: ran.end,
                served_by: ran.served_by,
                summary,
            };
            self.finish(id, finished);
        }
    }

    /// Tells the observer that job `id` ended, then records it: whoever waits for
    /// the jobs to end ([`Jobs::wait_all`]) finds the observer told.
    fn finish(&self, id: u64, finished: Finished) {
        let state = State::of(finished.end);
        let what = match finished.end {
            End::Done => What::Done(finished),
            _ => What::Failed(finished),
        };
        (self.observer)(JobEvent { job: id, what });
        let mut t = self.table.lock();
        if let Some(j) = t.jobs.iter_mut().find(|j| j.id == id) {
            j.state = state;
            j.meter.ended = Some(Instant::now());
        }
        self.ended.notify_all();
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Meter)) {
        if let Some(j) = self.table.lock().jobs.iter_mut().find(|j| j.id == id) {
            change(&mut j.meter);
        }
    }

    /// Stops job `id` (queued or running). False when there is no such job or it has
    /// ended.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut t = self.table.lock();
        let Some(j) = t.jobs.iter_mut().find(|j| j.id == id) else {
            return false;
        };
        match j.state {
            State::Queued => {
                let Some(transfer) = j.transfer.take() else {
                    return false;
                };
                let finished = Finished {
                    kind: transfer.kind,
                    command: j.command.clone(),
                    remote: transfer.remote,
                    local: transfer.local,
                    end: End::Cancelled,
                    served_by: None,
                    summary: None,
                };
                drop(t);
                self.finish(id, finished);
                true
            }
            State::Running => {
                j.cancel.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Cancels every job (the session ends).
    pub(crate) fn cancel_all(&self) {
        let ids: Vec<u64> = self
            .table
            .lock()
            .jobs
            .iter()
            .filter(|j| !j.state.finished())
            .map(|j| j.id)
            .collect();
        for id in ids {
            self.cancel(id);
        }
    }

    /// Jobs queued or running.
    pub(crate) fn active(&self) -> usize {
        self.table
            .lock()
            .jobs
            .iter()
            .filter(|j| !j.state.finished())
            .count()
    }

    /// Waits until every job has ended.
    pub(crate) fn wait_all(&self) {
        let mut t = self.table.lock();
        while t.jobs.iter().any(|j| !j.state.finished()) || t.workers > 0 {
            self.ended.wait(&mut t);
        }
    }

    /// One line per job for JOBS: number, state, bytes (of the size when known),
    /// percentage, rate, command. Finished jobs are shown this once, then dropped.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut t = self.table.lock();
        let lines = t.jobs.iter().map(line).collect();
        t.jobs.retain(|j| !j.state.finished());
        lines
    }
}

fn line(j: &Job) -> String {
    let m = j.meter;
    let mut line = format!("{} {} {}", j.id, j.state, m.position);
    match m.size {
        Some(size) => {
            let pct = if size == 0 {
                100
            } else {
                (m.position.min(size) as u128 * 100 / size as u128) as u64
            };
            line.push_str(&format!("/{size} bytes {pct}%"));
        }
        None => line.push_str(" bytes"),
    }
    line.push_str(&format!(" {}/s", human(m.rate())));
    if let (Some(n), State::Running) = (m.sources, j.state) {
        line.push_str(&format!(" {}", sources(n)));
    }
    line.push_str(&format!(" {}", j.command));
    line
}

/// A running job's steps: the meter updated, the rest told as events.
struct JobReport<'a> {
    jobs: &'a Jobs,
    job: u64,
    kind: Kind,
    remote: &'a str,
    summary: Option<String>,
}

impl JobReport<'_> {
    /// The content starts (or starts again from another owner).
    fn start(&self, size: Option<u64>, from: u64) {
        self.jobs.update(self.job, |m| {
            *m = Meter {
                size,
                from,
                position: from,
                since: Some(Instant::now()),
                ended: None,
                sources: m.sources,
            }
        });
    }

    /// The final count is the file's (a plain GET_FILE has no size).
    fn served(&self, done: &super::peer::Done) {
        let size = done.size;
        self.jobs.update(self.job, |m| {
            m.size = Some(size);
            m.position = size;
        });
    }

    fn tell(&self, what: What) {
        (self.jobs.observer)(JobEvent {
            job: self.job,
            what,
        });
    }
}

impl Report for JobReport<'_> {
    fn step(&mut self, step: Step<'_>) {
        match &step {
            Step::Started { size, from, .. } => {
                let (size, from) = (*size, *from);
                self.start(size, from);
                if let (Some(size), true) = (size, from > 0) {
                    self.tell(What::Resumed { from, size });
                    return;
                }
            }
            Step::Spread { size, from, .. } => self.start(Some(*size), *from),
            Step::Sources(n) => {
                let n = *n;
                self.jobs.update(self.job, |m| m.sources = Some(n));
                return;
            }
            Step::ServedBySeveral { owners, done } => {
                self.served(done);
                let line = format!(
                    "{} from {} ({})",
                    summary(done),
                    names(owners),
                    sources(owners.len())
                );
                self.summary = Some(line);
                return;
            }
            Step::Progress(position) => {
                let position = *position;
                self.jobs.update(self.job, |m| m.position = position);
                return self.tell(What::Progress { position });
            }
            Step::Served { owner, done } => {
                self.served(done);
                let mut line = summary(done);
                if self.kind == Kind::Fetch {
                    line.push_str(&format!(" from {}", escape_for_terminal(&owner.user)));
                }
                self.summary = Some(line);
                return;
            }
            _ => {}
        }
        if let Some(note) = step.describe(self.kind, self.remote) {
            self.tell(What::Note(note));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A statement peer: the discovery (a GET_FILE of a name no file has) gets 1,
    /// GET_FILE_RANGE nothing, GET_FILE code 0 and `content` written in `pieces`,
    /// waiting for a go-ahead before each.
    fn peer(content: &'static [u8], pieces: usize) -> (std::net::SocketAddr, mpsc::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, wait) = mpsc::channel::<()>();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"GET_FILE_RANGE\0") {
                    continue;
                }
                if buf[..n].starts_with(b"GET_FILE\0/proc/0/") {
                    let _ = s.write_all(&[1]);
                    continue;
                }
                let _ = s.write_all(&[0]);
                for chunk in content.chunks(content.len().div_ceil(pieces)) {
                    if wait.recv().is_err() {
                        return;
                    }
                    let _ = s.write_all(chunk);
                }
                return;
            }
        });
        (addr, go)
    }

    fn transfer(addr: std::net::SocketAddr, dir: &std::path::Path, name: &str) -> Transfer {
        Transfer {
            kind: Kind::GetFile,
            owners: vec![Owner {
                user: "alice".into(),
                addr,
                description: None,
            }],
            remote: "f".into(),
            local: name.into(),
            target: dir.join(name),
            downloader: Default::default(),
            max_sources: 4,
        }
    }

    fn recording() -> (Observer, mpsc::Receiver<JobEvent>) {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        (Arc::new(move |e| drop(tx.lock().send(e))), rx)
    }

    /// Waits for the first event `pick` accepts.
    fn until<T>(rx: &mpsc::Receiver<JobEvent>, pick: impl Fn(JobEvent) -> Option<T>) -> T {
        loop {
            let e = rx.recv_timeout(Duration::from_secs(30)).expect("no event");
            if let Some(t) = pick(e) {
                return t;
            }
        }
    }

    #[test]
    fn runs_at_most_the_maximum_and_the_rest_in_order_then_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let (observer, events) = recording();
        let jobs = Jobs::new(1, observer);
        let (a_addr, a_go) = peer(b"abcdefghij", 2);
        let (b_addr, b_go) = peer(b"abc", 1);
        let a = jobs
            .submit("A".into(), transfer(a_addr, dir.path(), "a"))
            .unwrap();
        let b = jobs
            .submit("B".into(), transfer(b_addr, dir.path(), "b"))
            .unwrap();
        a_go.send(()).unwrap();
        until(&events, |e| match e.what {
            What::Progress { position: 5 } if e.job == a => Some(()),
            _ => None,
        });
        let lines = jobs.lines();
        assert!(
            lines[0].starts_with(&format!("{a} running 5 bytes")),
            "{lines:?}"
        );
        assert!(lines[1].starts_with(&format!("{b} queued")), "{lines:?}");
        a_go.send(()).unwrap();
        b_go.send(()).unwrap();
        jobs.wait_all();
        let done: Vec<u64> = events
            .try_iter()
            .filter_map(|e| matches!(e.what, What::Done(_)).then_some(e.job))
            .collect();
        assert_eq!(done, [a, b]);
        let lines = jobs.lines();
        assert!(
            lines[0].starts_with(&format!("{a} done 10/10 bytes 100%")),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with(&format!("{b} done 3/3 bytes 100%")),
            "{lines:?}"
        );
        assert!(jobs.lines().is_empty(), "finished jobs are shown once");
        assert_eq!(jobs.active(), 0);
    }

    #[test]
    fn cancels_running_and_queued_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let (observer, events) = recording();
        let jobs = Jobs::new(1, observer);
        let (a_addr, a_go) = peer(b"abcdefghij", 10);
        let (b_addr, _b_go) = peer(b"abc", 1);
        let a = jobs
            .submit("A".into(), transfer(a_addr, dir.path(), "a"))
            .unwrap();
        let b = jobs
            .submit("B".into(), transfer(b_addr, dir.path(), "b"))
            .unwrap();
        assert!(jobs.cancel(b));
        a_go.send(()).unwrap();
        until(&events, |e| {
            matches!(e.what, What::Progress { .. }).then_some(())
        });
        assert!(jobs.cancel(a));
        // The download loop sees the flag at its next read.
        a_go.send(()).unwrap();
        jobs.wait_all();
        let lines = jobs.lines();
        assert!(lines[0].starts_with(&format!("{a} cancelled")), "{lines:?}");
        assert!(lines[1].starts_with(&format!("{b} cancelled")), "{lines:?}");
        assert!(!jobs.cancel(a));
        assert!(!jobs.cancel(99));
        assert!(!dir.path().join("a").exists());
    }
}
