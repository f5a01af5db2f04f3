//! The one thread of a session that searches for its watched patterns and starts
//! a background FETCH of each new match.
//!
//! Owns: which patterns are due (one [`Schedule`] each), what counts as a new match
//! (a name this watch has not fetched, not already in the share folder, not being
//! fetched), at most [`MAX_RUNNING`] fetches per watch, remembering a name once its
//! fetch succeeded, and stopping when its control channel closes. Does not own: the
//! SEARCH and the FETCH themselves (the [`World`], which the session gives it), the
//! list's file (`list`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use parking_lot::Mutex;

use super::list::{List, MAX_REMEMBERED, MAX_WATCHES};
use super::schedule::{FLOOR, Schedule};
use crate::client::command::base_name;
use crate::client::messages::End;
use crate::proto::index::SearchEntry;
use crate::proto::text::escape_for_terminal;

/// Fetches one watch runs at once: a burst of new files is fetched a few at a time
/// and the rest at the next searches, so one pattern cannot fill the job table.
pub(super) const MAX_RUNNING: usize = 3;

/// Matches seen this session (pattern, name) that do not reset the backoff again
/// when seen again (a failing fetch): forgotten all at once past this bound.
const MAX_SEEN: usize = MAX_WATCHES * MAX_REMEMBERED;

/// The longest sleep without looking at the list (a WATCH also wakes the thread).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What the thread acts on: the index, the share folder, the job manager, the user.
pub(super) trait World: Send {
    /// SEARCH for `pattern`: the files of other users it matches, or why not.
    fn search(&mut self, pattern: &str) -> Result<Vec<SearchEntry>, String>;
    /// Whether a file `local` exists in the share folder.
    fn present(&self, local: &str) -> bool;
    /// Starts a background FETCH of `remote` into `local` from the owners among
    /// `found` (the entries of the SEARCH that matched it): the job's number.
    fn fetch(&mut self, remote: &str, local: &str, found: Vec<SearchEntry>) -> Result<u64, String>;
    /// Tells the user (above the prompt).
    fn tell(&self, note: String);
}

/// A fetch a watch started.
#[derive(Debug)]
struct Running {
    pattern: String,
    name: String,
    local: String,
}

/// Why the loop ends: its control channel closed.
struct Stopped;

pub(super) struct Poller<W: World> {
    pub(super) world: W,
    pub(super) list: Arc<Mutex<List>>,
    /// Closed (every sender dropped) to stop; a message wakes the thread after a
    /// change of the list.
    pub(super) control: Receiver<()>,
    /// Ends of the session's background jobs (number, how it ended).
    pub(super) ends: Receiver<(u64, End)>,
    pub(super) base: Duration,
    pub(super) rng: fastrand::Rng,
    schedules: HashMap<String, Schedule>,
    /// When each pattern unwatched within the last [`FLOOR`] was last searched.
    recent: HashMap<String, Instant>,
    running: HashMap<u64, Running>,
    seen: HashSet<(String, String)>,
    /// Cancelled by the user: not fetched again this session.
    refused: HashSet<(String, String)>,
    /// Patterns whose last search failed (said once until one succeeds).
    failing: HashSet<String>,
}

impl<W: World> Poller<W> {
    pub(super) fn new(
        world: W,
        list: Arc<Mutex<List>>,
        control: Receiver<()>,
        ends: Receiver<(u64, End)>,
        base: Duration,
    ) -> Poller<W> {
        Poller {
            world,
            list,
            control,
            ends,
            base,
            rng: fastrand::Rng::new(),
            schedules: HashMap::new(),
            recent: HashMap::new(),
            running: HashMap::new(),
            seen: HashSet::new(),
            refused: HashSet::new(),
            failing: HashSet::new(),
        }
    }

    /// Runs until the control channel closes.
    pub(super) fn run(mut self) {
        // Ends of jobs from before this thread are not its own.
        while self.ends.try_recv().is_ok() {}
        while self.step().is_ok() {}
    }

    /// Waits for the next due search, a job end or a change, and acts on it.
    fn step(&mut self) -> Result<(), Stopped> {
        let now = Instant::now();
        self.sync(now);
        let next = self.schedules.values().map(Schedule::next).min();
        let wait = next.map_or(MAX_SLEEP, |n| {
            n.saturating_duration_since(now).min(MAX_SLEEP)
        });
        crossbeam_channel::select! {
            recv(self.control) -> m => m.map_err(|_| Stopped),
            recv(self.ends) -> end => {
                let (job, end) = end.map_err(|_| Stopped)?;
                self.ended(job, end);
                Ok(())
            }
            default(wait) => self.poll_due(),
        }
    }

    /// A schedule for each watched pattern, due at once when new. An unwatched
    /// pattern's last search is kept until the floor has passed, so an UNWATCH and
    /// WATCH again cannot search it sooner.
    fn sync(&mut self, now: Instant) {
        let patterns = self.list.lock().patterns();
        let base = self.base;
        for p in &patterns {
            let last = self.recent.remove(p);
            self.schedules
                .entry(p.clone())
                .or_insert_with(|| Schedule::new(base, now, last));
        }
        let recent = &mut self.recent;
        self.schedules.retain(|p, s| {
            let watched = patterns.contains(p);
            if let (false, Some(last)) = (watched, s.last()) {
                recent.insert(p.clone(), last);
            }
            watched
        });
        self.recent
            .retain(|_, last| now.duration_since(*last) < FLOOR);
    }

    /// Searches every pattern that is due, one after the other.
    fn poll_due(&mut self) -> Result<(), Stopped> {
        let patterns = self.list.lock().patterns();
        for pattern in patterns {
            let now = Instant::now();
            let due = self.schedules.get(&pattern).is_some_and(|s| s.due(now));
            // Unwatched since the round began: not searched again.
            if !due || !self.list.lock().patterns().contains(&pattern) {
                continue;
            }
            let result = self.world.search(&pattern);
            // Stopped during the search: nothing more is started or written.
            self.check()?;
            let found = match result {
                Ok(matches) => {
                    self.failing.remove(&pattern);
                    self.matched(&pattern, matches)
                }
                Err(why) => {
                    self.search_failed(&pattern, &why);
                    false
                }
            };
            if let Some(s) = self.schedules.get_mut(&pattern) {
                s.searched(Instant::now(), found, &mut self.rng);
            }
        }
        Ok(())
    }

    /// Says once that a pattern's searches fail (not at every retry).
    fn search_failed(&mut self, pattern: &str, why: &str) {
        log::info!("WATCH {pattern}: SEARCH: {why}");
        if self.failing.insert(pattern.to_owned()) {
            self.world.tell(format!(
                "WATCH {}: SEARCH failed ({}): trying again later, less often",
                escape_for_terminal(pattern),
                escape_for_terminal(why)
            ));
        }
    }

    /// Starts a fetch of each new match (up to the watch's limit); true when a match
    /// not seen before this session came.
    fn matched(&mut self, pattern: &str, matches: Vec<SearchEntry>) -> bool {
        let mut found = false;
        let mut done: HashSet<&str> = HashSet::new();
        for m in &matches {
            let running = self.running.values().filter(|r| r.pattern == pattern);
            if running.count() >= MAX_RUNNING {
                break;
            }
            if !done.insert(&m.file) {
                continue;
            }
            let Some(local) = base_name(&m.file).map(str::to_owned) else {
                continue;
            };
            let key = (pattern.to_owned(), m.file.clone());
            let busy = self.running.values().any(|r| r.local == local);
            if busy
                || self.refused.contains(&key)
                || self.list.lock().fetched(pattern, &m.file)
                || self.world.present(&local)
            {
                continue;
            }
            if self.seen.len() >= MAX_SEEN {
                self.seen.clear();
            }
            found |= self.seen.insert(key);
            let owners = matches.iter().filter(|o| o.file == m.file).cloned();
            self.start(pattern, m, local, owners.collect());
        }
        found
    }

    /// Starts the fetch of one new match from the owners its SEARCH found (no second
    /// SEARCH: a watch of `notes.pdf` would search `notes.pdf` twice at once).
    fn start(&mut self, pattern: &str, m: &SearchEntry, local: String, owners: Vec<SearchEntry>) {
        let shown = format!(
            "WATCH {}: new match {} from {}",
            escape_for_terminal(pattern),
            escape_for_terminal(&m.file),
            escape_for_terminal(&m.owner)
        );
        match self.world.fetch(&m.file, &local, owners) {
            Ok(job) => {
                self.world.tell(format!("{shown}, fetching (job {job})"));
                let running = Running {
                    pattern: pattern.to_owned(),
                    name: m.file.clone(),
                    local,
                };
                self.running.insert(job, running);
            }
            Err(why) => self.world.tell(format!("{shown}: not fetched: {why}")),
        }
    }

    /// `Err` once the control channel has closed.
    fn check(&self) -> Result<(), Stopped> {
        match self.control.try_recv() {
            Err(TryRecvError::Disconnected) => Err(Stopped),
            _ => Ok(()),
        }
    }

    /// A job ended: a watch's fetch that succeeded is remembered.
    fn ended(&mut self, job: u64, end: End) {
        let Some(r) = self.running.remove(&job) else {
            return;
        };
        let pattern = escape_for_terminal(&r.pattern).into_owned();
        match end {
            End::Done => match self.list.lock().remember(&r.pattern, &r.name) {
                Ok(None) => {}
                Ok(Some(old)) => self.world.tell(format!(
                    "WATCH {pattern}: remembers at most {MAX_REMEMBERED} fetched names: \
                     forgot the oldest, {}",
                    escape_for_terminal(&old)
                )),
                Err(e) => self
                    .world
                    .tell(format!("WATCH {pattern}: cannot write the watch list: {e}")),
            },
            End::Cancelled => {
                self.world.tell(format!(
                    "WATCH {pattern}: {} was cancelled: not fetched again in this session",
                    escape_for_terminal(&r.name)
                ));
                self.refused.insert((r.pattern, r.name));
            }
            // Tried again at a later search.
            End::NotFound | End::Failed => {}
        }
    }
}

/// Waits for the thread's end signal at most `limit`; false when it did not come.
pub(super) fn joined(done: &Receiver<()>, limit: Duration) -> bool {
    !matches!(done.recv_timeout(limit), Err(RecvTimeoutError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Sender, bounded};

    /// A fake index and job manager: counts the searches of each pattern (with
    /// their times), lists `files`, and records the fetches it was asked for.
    #[derive(Clone, Default)]
    struct Fake {
        searches: Arc<Mutex<Vec<(String, Instant)>>>,
        files: Arc<Mutex<Vec<SearchEntry>>>,
        fetches: Arc<Mutex<Vec<String>>>,
        notes: Arc<Mutex<Vec<String>>>,
        local: Arc<Mutex<Vec<String>>>,
    }

    impl World for Fake {
        fn search(&mut self, pattern: &str) -> Result<Vec<SearchEntry>, String> {
            self.searches
                .lock()
                .push((pattern.to_owned(), Instant::now()));
            let files = self.files.lock();
            Ok(files
                .iter()
                .filter(|m| m.file.contains(pattern))
                .cloned()
                .collect())
        }
        fn present(&self, local: &str) -> bool {
            self.local.lock().iter().any(|l| l == local)
        }
        fn fetch(&mut self, remote: &str, _: &str, found: Vec<SearchEntry>) -> Result<u64, String> {
            assert!(found.iter().all(|e| e.file == remote), "{found:?}");
            let mut f = self.fetches.lock();
            f.push(remote.to_owned());
            Ok(f.len() as u64)
        }
        fn tell(&self, note: String) {
            self.notes.lock().push(note);
        }
    }

    fn file(name: &str) -> SearchEntry {
        SearchEntry {
            file: name.into(),
            description: "d".into(),
            owner: "bob".into(),
            ip: [127, 0, 0, 1].into(),
            port: 5000,
        }
    }

    struct Rig {
        fake: Fake,
        list: Arc<Mutex<List>>,
        control: Sender<()>,
        ends: Sender<(u64, End)>,
        done: Receiver<()>,
        _dir: tempfile::TempDir,
    }

    fn rig(patterns: &[&str], base: Duration) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let (mut list, _) = List::load(dir.path(), "s:1", "ann");
        for p in patterns {
            list.add(p).unwrap();
        }
        let list = Arc::new(Mutex::new(list));
        let fake = Fake::default();
        let (control, control_rx) = bounded(1);
        let (ends, ends_rx) = bounded(16);
        let (done_tx, done) = bounded(1);
        let poller = Poller::new(fake.clone(), Arc::clone(&list), control_rx, ends_rx, base);
        std::thread::spawn(move || {
            poller.run();
            let _ = done_tx.send(());
        });
        Rig {
            fake,
            list,
            control,
            ends,
            done,
            _dir: dir,
        }
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn never_more_than_one_search_per_pattern_per_5_s_and_stops_at_once() {
        // An interval of 1 ms, far below what the option allows: the floor holds.
        let r = rig(&["a", "b"], Duration::from_millis(1));
        let searches = Arc::clone(&r.fake.searches);
        wait_for("second round", || searches.lock().len() >= 4);
        let started = Instant::now();
        drop(r.control);
        assert!(joined(&r.done, Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(2), "slow to stop");
        let searches = searches.lock().clone();
        for p in ["a", "b"] {
            let times: Vec<Instant> = searches
                .iter()
                .filter(|(q, _)| q == p)
                .map(|(_, t)| *t)
                .collect();
            assert!(times.len() >= 2, "{searches:?}");
            for pair in times.windows(2) {
                let gap = pair[1] - pair[0];
                assert!(gap >= Duration::from_secs(5), "{p}: {gap:?}");
            }
        }
    }

    #[test]
    fn a_failing_search_is_said_once_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (list, _) = List::load(dir.path(), "s:1", "ann");
        let (_control, control_rx) = bounded(1);
        let (_ends, ends_rx) = bounded(1);
        let fake = Fake::default();
        let list = Arc::new(Mutex::new(list));
        let mut p = Poller::new(fake.clone(), list, control_rx, ends_rx, FLOOR);
        p.search_failed("a\x1b", "connect: refused");
        p.search_failed("a\x1b", "connect: refused");
        p.search_failed("b", "connect: refused");
        assert_eq!(
            *fake.notes.lock(),
            [
                "WATCH a\\x1b: SEARCH failed (connect: refused): trying again later, less often",
                "WATCH b: SEARCH failed (connect: refused): trying again later, less often",
            ]
        );
        p.failing.remove("a\x1b");
        p.search_failed("a\x1b", "again");
        assert_eq!(fake.notes.lock().len(), 3);
    }

    #[test]
    fn fetches_new_matches_three_at_a_time_and_remembers_only_successes() {
        let r = rig(&[".pdf"], Duration::from_millis(1));
        r.fake
            .files
            .lock()
            .extend(["a.pdf", "b.pdf", "c.pdf", "d.pdf", "e.txt", "there.pdf"].map(file));
        r.fake.local.lock().push("there.pdf".into());
        let fetches = Arc::clone(&r.fake.fetches);
        wait_for("three fetches", || fetches.lock().len() == 3);
        assert_eq!(*fetches.lock(), ["a.pdf", "b.pdf", "c.pdf"]);
        let notes = r.fake.notes.lock().clone();
        assert_eq!(
            notes[0], "WATCH .pdf: new match a.pdf from bob, fetching (job 1)",
            "{notes:?}"
        );
        // Job 1 done, job 2 failed, job 3 cancelled.
        r.ends.send((1, End::Done)).unwrap();
        r.ends.send((2, End::Failed)).unwrap();
        r.ends.send((3, End::Cancelled)).unwrap();
        let list = Arc::clone(&r.list);
        wait_for("a.pdf remembered", || list.lock().fetched(".pdf", "a.pdf"));
        // The next search (5 s on) fetches the failed one again and the fourth;
        // neither the done one nor the cancelled one.
        wait_for("the next fetches", || fetches.lock().len() == 5);
        assert_eq!(fetches.lock()[3..], ["b.pdf", "d.pdf"]);
        assert!(!list.lock().fetched(".pdf", "b.pdf"));
        let notes = r.fake.notes.lock().clone();
        assert!(
            notes.iter().any(|n| n.contains("c.pdf was cancelled")),
            "{notes:?}"
        );
        drop(r.control);
        assert!(joined(&r.done, Duration::from_secs(30)));
    }
}
