//! Background transfers: `GET_FILE ... &` and `FETCH ... &` (PROTOCOL.md section 5,
//! client extensions).
//!
//! Owns: the table of jobs (number, command text, bytes, size when known, rate,
//! state), the bounded set of worker threads (`--max-downloads` at once; the rest
//! wait in the order they were typed), each job's cancel flag, and printing a job's
//! result message when it ends. Does not own: what a job does (`fetch`), where the
//! message goes (`shell::print_async`).

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use super::peer::Progress;
use super::progress::human;
use super::shell;

/// Default of `--max-downloads`: transfers running at once. Four keep a typical
/// uplink busy without splitting it into trickles, as the other lab systems' queues do.
pub(crate) const DEFAULT_MAX_DOWNLOADS: u16 = 4;

/// Largest `--max-downloads`: each running transfer holds a thread and a 256 KiB
/// buffer; 64 parallel downloads are more than any link splits usefully.
pub(crate) const MAX_MAX_DOWNLOADS: i64 = 64;

/// Jobs kept in the table (finished ones are dropped oldest first to make room). A
/// user types commands by hand: 256 is far more than one session starts, and bounds
/// the memory a script looping on `&` can take.
const MAX_JOBS: usize = 256;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
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

/// How a job ended: its state and its command's usual result message.
pub(super) struct Ended {
    pub(super) state: State,
    pub(super) message: &'static str,
}

/// Why a job was not started.
#[derive(Debug)]
pub(super) enum JobsError {
    Full,
}

impl fmt::Display for JobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobsError::Full => write!(f, "{MAX_JOBS} transfers are queued or running"),
        }
    }
}

impl std::error::Error for JobsError {}

/// What a job runs: the transfer, given its cancel flag and its meter.
pub(super) type Work = Box<dyn FnOnce(&AtomicBool, &mut Meter) -> Ended + Send>;

/// Bytes, size and rate of one job, updated by the download loop.
#[derive(Debug, Default, Clone)]
pub(super) struct Meter {
    size: Option<u64>,
    from: u64,
    position: u64,
    since: Option<Instant>,
    ended: Option<Instant>,
    shared: Option<Arc<Mutex<Meter>>>,
}

impl Meter {
    fn publish(&self) {
        if let Some(shared) = &self.shared {
            let mut m = lock(shared);
            m.size = self.size;
            m.from = self.from;
            m.position = self.position;
            m.since = self.since;
        }
    }

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

impl Progress for Meter {
    fn start(&mut self, size: Option<u64>, from: u64) {
        self.size = size;
        self.from = from;
        self.position = from;
        self.since = Some(Instant::now());
        self.publish();
    }

    fn advance(&mut self, position: u64) {
        self.position = position;
        self.publish();
    }
}

struct Job {
    id: u64,
    command: String,
    state: State,
    cancel: Arc<AtomicBool>,
    meter: Arc<Mutex<Meter>>,
    /// The message printed when the job is cancelled before it starts.
    fail: &'static str,
    work: Option<Work>,
}

struct Table {
    jobs: VecDeque<Job>,
    next_id: u64,
    workers: usize,
}

/// The background transfers of one shell.
pub(super) struct Jobs {
    table: Mutex<Table>,
    /// Signalled when a job ends (QUIT waits on it).
    ended: Condvar,
    max_workers: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    pub(super) fn new(max_workers: usize) -> Arc<Jobs> {
        Arc::new(Jobs {
            table: Mutex::new(Table {
                jobs: VecDeque::new(),
                next_id: 1,
                workers: 0,
            }),
            ended: Condvar::new(),
            max_workers: max_workers.max(1),
        })
    }

    /// Queues `work` (typed as `command`; `fail` is its FAIL message) and starts a
    /// worker for it if fewer than the maximum run. Returns the job's number.
    pub(super) fn submit(
        self: &Arc<Self>,
        command: &str,
        fail: &'static str,
        work: Work,
    ) -> Result<u64, JobsError> {
        let mut t = lock(&self.table);
        if t.jobs.len() >= MAX_JOBS {
            match t.jobs.iter().position(|j| j.state.finished()) {
                Some(i) => {
                    t.jobs.remove(i);
                }
                None => return Err(JobsError::Full),
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        t.jobs.push_back(Job {
            id,
            command: command.to_owned(),
            state: State::Queued,
            cancel: Arc::new(AtomicBool::new(false)),
            meter: Arc::new(Mutex::new(Meter::default())),
            fail,
            work: Some(work),
        });
        shell::background_active(true);
        if t.workers < self.max_workers {
            let jobs = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("transfer".into())
                .spawn(move || jobs.work_loop());
            match spawned {
                Ok(_) => t.workers += 1,
                // The job stays queued: the next worker to free up takes it.
                Err(e) => eprintln!("peerdex: [{id}] waits: cannot start a worker: {e}"),
            }
        }
        Ok(id)
    }

    /// A worker: runs queued jobs in order until none is left.
    fn work_loop(self: Arc<Self>) {
        loop {
            let next = {
                let mut t = lock(&self.table);
                match t.jobs.iter_mut().find(|j| j.state == State::Queued) {
                    Some(j) => {
                        j.state = State::Running;
                        let work = j.work.take();
                        Some((j.id, work, Arc::clone(&j.cancel), Arc::clone(&j.meter)))
                    }
                    None => {
                        t.workers -= 1;
                        self.ended.notify_all();
                        None
                    }
                }
            };
            let Some((id, work, cancel, shared)) = next else {
                return;
            };
            let outcome = match work {
                Some(work) => {
                    let mut meter = Meter {
                        shared: Some(Arc::clone(&shared)),
                        ..Meter::default()
                    };
                    work(&cancel, &mut meter)
                }
                None => Ended {
                    state: State::Failed,
                    message: "c> FAIL",
                },
            };
            lock(&shared).ended = Some(Instant::now());
            {
                let mut t = lock(&self.table);
                if let Some(j) = t.jobs.iter_mut().find(|j| j.id == id) {
                    j.state = outcome.state;
                }
            }
            shell::print_async(outcome.message);
            shell::background_active(self.active() > 0);
            self.ended.notify_all();
        }
    }

    /// Stops job `id` (queued or running). False when there is no such job or it has
    /// ended.
    pub(super) fn cancel(&self, id: u64) -> bool {
        let mut t = lock(&self.table);
        let Some(j) = t.jobs.iter_mut().find(|j| j.id == id) else {
            return false;
        };
        match j.state {
            State::Queued => {
                j.state = State::Cancelled;
                j.work = None;
                let fail = j.fail;
                drop(t);
                shell::print_async(fail);
                self.ended.notify_all();
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
    pub(super) fn cancel_all(&self) {
        let ids: Vec<u64> = lock(&self.table)
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
    pub(super) fn active(&self) -> usize {
        lock(&self.table)
            .jobs
            .iter()
            .filter(|j| !j.state.finished())
            .count()
    }

    /// Waits until every job has ended.
    pub(super) fn wait_all(&self) {
        let mut t = lock(&self.table);
        while t.jobs.iter().any(|j| !j.state.finished()) || t.workers > 0 {
            t = self.ended.wait(t).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// One line per job for JOBS: number, state, bytes (of the size when known),
    /// percentage, rate, command.
    pub(super) fn lines(&self) -> Vec<String> {
        let t = lock(&self.table);
        t.jobs
            .iter()
            .map(|j| {
                let m = lock(&j.meter).clone();
                let mut line = format!("{} {} {}", j.id, j.state, m.position);
                if let Some(size) = m.size {
                    let pct = if size == 0 {
                        100
                    } else {
                        (m.position.min(size) as u128 * 100 / size as u128) as u64
                    };
                    line.push_str(&format!("/{size} bytes {pct}%"));
                } else {
                    line.push_str(" bytes");
                }
                line.push_str(&format!(" {}/s {}", human(m.rate()), j.command));
                line
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ok_after(wait: Duration) -> Work {
        Box::new(move |cancel: &AtomicBool, meter: &mut Meter| {
            meter.start(Some(10), 0);
            let end = Instant::now() + wait;
            while Instant::now() < end {
                if cancel.load(Ordering::SeqCst) {
                    return Ended {
                        state: State::Cancelled,
                        message: "c> X FAIL",
                    };
                }
                thread::sleep(Duration::from_millis(5));
            }
            meter.advance(10);
            Ended {
                state: State::Done,
                message: "c> X OK",
            }
        })
    }

    #[test]
    fn runs_at_most_the_maximum_and_the_rest_in_order() {
        let jobs = Jobs::new(1);
        let a = jobs
            .submit("A", "c> X FAIL", ok_after(Duration::from_millis(200)))
            .unwrap();
        let b = jobs
            .submit("B", "c> X FAIL", ok_after(Duration::ZERO))
            .unwrap();
        thread::sleep(Duration::from_millis(50));
        let lines = jobs.lines();
        assert!(lines[0].starts_with(&format!("{a} running 0/10 bytes 0%")));
        assert!(lines[1].starts_with(&format!("{b} queued")), "{lines:?}");
        jobs.wait_all();
        let lines = jobs.lines();
        assert!(lines[0].starts_with(&format!("{a} done 10/10 bytes 100%")));
        assert!(lines[1].starts_with(&format!("{b} done")));
        assert_eq!(jobs.active(), 0);
    }

    #[test]
    fn cancels_running_and_queued_jobs() {
        let jobs = Jobs::new(1);
        let a = jobs
            .submit("A", "c> X FAIL", ok_after(Duration::from_secs(30)))
            .unwrap();
        let b = jobs
            .submit("B", "c> X FAIL", ok_after(Duration::ZERO))
            .unwrap();
        assert!(jobs.cancel(b));
        thread::sleep(Duration::from_millis(20));
        assert!(jobs.cancel(a));
        jobs.wait_all();
        let lines = jobs.lines();
        assert!(lines[0].starts_with(&format!("{a} cancelled")), "{lines:?}");
        assert!(lines[1].starts_with(&format!("{b} cancelled")), "{lines:?}");
        assert!(!jobs.cancel(a));
        assert!(!jobs.cancel(99));
    }
}
