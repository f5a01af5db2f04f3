//! FETCH from several owners at once, every block verified (docs/DESIGN.md,
//! "Multi-source FETCH").
//!
//! Owns: the survey (each owner that speaks the block extension is asked for its hash
//! tree, a few at a time, within deadlines), the grouping of owners by content (size
//! and root; groups are never mixed), the scheduler (one worker thread per source, at
//! most `--max-sources`, each taking the next run of missing blocks from a shared
//! queue, so a faster owner takes more), the verification of every block on arrival,
//! and dropping an owner that lies, stalls or whose file changed (its run goes back to
//! the queue, a spare owner of the same content takes its place). Does not own: the
//! wire (`peer::blocks`), the partial file and its record of verified blocks
//! (`peer::BlockFile`), the single-source path (`fetch`), what the steps look like.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Owner, Report, Step};
use crate::client::peer::{
    BlockFile, BlockSink, Done, DownloadError, Downloader, Via, is_disk_full,
};
use crate::proto::tree::HashTree;

/// Default of `--max-sources`: owners a FETCH downloads from at once.
pub(crate) const DEFAULT_MAX_SOURCES: u16 = 4;

/// Largest `--max-sources`: each source holds a thread, a connection and a buffer of
/// up to a run of blocks; past 16 the runs a file splits into get too few to share.
pub(crate) const MAX_MAX_SOURCES: i64 = 16;

/// Blocks asked for in one GET_FILE_BLOCK at most (the most a peer serves at once).
const RUN_BLOCKS: u64 = 16;

/// Runs each source gets on average at least, when the file is small enough that
/// runs of [`RUN_BLOCKS`] would leave some sources idle or end unevenly: the runs are
/// shortened to give every source this many.
const RUNS_PER_SOURCE: u64 = 4;

/// Owners asked for their trees at once.
const SURVEY_THREADS: usize = 8;

/// How long an owner that answers "hashes not ready yet" (code 3) is asked again: a
/// file just published is hashed at about 1 GiB/s, so a few seconds cover the files
/// a lab shares; an owner still not ready is left out of this FETCH.
const NOT_READY_PATIENCE: Duration = Duration::from_secs(10);

/// How long an idle worker waits for a run to come back before looking at the
/// cancel flag again.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// What the scheduler needs of the peers (the session's `Downloader`; a fake in the
/// unit tests).
pub(crate) trait BlockSource: Send + Sync {
    /// Whether `addr` speaks GET_FILE_HASHES and GET_FILE_BLOCK (discovery, cached).
    fn speaks_blocks(&self, addr: SocketAddr) -> Result<bool, DownloadError>;
    /// GET_FILE_HASHES; `DownloadError::NotReady` while the peer computes them.
    fn hash_tree(&self, addr: SocketAddr, remote: &str) -> Result<HashTree, DownloadError>;
    /// GET_FILE_BLOCK of the `blocks`, each whole block given to `out` in order;
    /// not verified.
    fn read_blocks(
        &self,
        addr: SocketAddr,
        remote: &str,
        tree: &HashTree,
        blocks: Range<u64>,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError>;
}

/// An owner of the chosen content, with the tree it sent (its own VERSION).
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) owner: usize,
    tree: HashTree,
}

/// What the survey found: the groups of owners of the same content, largest first
/// (ties: the group of the earlier owner), and the owners that sent no tree.
pub(super) struct Survey {
    pub(super) groups: Vec<Vec<Member>>,
    pub(super) plain: Vec<usize>,
}

/// Asks every owner for its tree (those that speak the extension), a few at once.
pub(super) fn survey(
    source: &dyn BlockSource,
    owners: &[Owner],
    remote: &str,
    cancel: &AtomicBool,
) -> Survey {
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<Option<HashTree>>> = Mutex::new(vec![None; owners.len()]);
    let ask = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(owner) = owners.get(i) else { break };
            let tree = ask_tree(source, owner, remote, cancel);
            found.lock()[i] = tree;
        }
    };
    thread::scope(|s| {
        for _ in 1..owners.len().min(SURVEY_THREADS) {
            // A thread that cannot start leaves its share to the others.
            let _ = thread::Builder::new()
                .name("survey".into())
                .spawn_scoped(s, ask);
        }
        ask();
    });
    group(found.into_inner())
}

/// Groups the owners' trees by (size, root).
fn group(trees: Vec<Option<HashTree>>) -> Survey {
    let mut groups: Vec<Vec<Member>> = Vec::new();
    let mut plain = Vec::new();
    for (owner, tree) in trees.into_iter().enumerate() {
        let Some(tree) = tree else {
            plain.push(owner);
            continue;
        };
        let same =
            |g: &&mut Vec<Member>| g[0].tree.size == tree.size && g[0].tree.root == tree.root;
        match groups.iter_mut().find(same) {
            Some(g) => g.push(Member { owner, tree }),
            None => groups.push(vec![Member { owner, tree }]),
        }
    }
    // A stable sort: equal groups keep the order of their first owners.
    groups.sort_by_key(|g| Reverse(g.len()));
    Survey { groups, plain }
}

/// The tree of one owner, `None` when it does not speak the extension, fails, or
/// sends a tree that does not hold together (its root not the hash of its blocks,
/// or the wrong number of blocks for its size: a liar could otherwise join the
/// honest group with an honest root and its own block hashes).
fn ask_tree(
    source: &dyn BlockSource,
    owner: &Owner,
    remote: &str,
    cancel: &AtomicBool,
) -> Option<HashTree> {
    match source.speaks_blocks(owner.addr) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            log::info!("{}: discovery: {e}", owner.addr);
            return None;
        }
    }
    let deadline = Instant::now() + NOT_READY_PATIENCE;
    let mut pause = Duration::from_millis(50);
    loop {
        match source.hash_tree(owner.addr, remote) {
            // A source other than the wire (the unit tests' fakes) gets the checks too.
            Ok(tree) if tree.check().is_ok() => return Some(tree),
            Ok(_) => log::warn!("{}: a hash tree whose root is not its blocks'", owner.addr),
            Err(e) if is_not_ready(&e) && Instant::now() + pause < deadline => {
                if cancel.load(Ordering::SeqCst) {
                    return None;
                }
                // The peer said when: later. Polite backoff, bounded by the deadline.
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(e) => log::info!("{}: GET_FILE_HASHES: {e}", owner.addr),
        }
        return None;
    }
}

/// Whether a GET_FILE_HASHES answer is code 3 (not ready yet).
fn is_not_ready(e: &DownloadError) -> bool {
    matches!(e, DownloadError::NotReady)
}

/// A run of consecutive missing blocks.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    count: u64,
}

/// Cuts the missing blocks (in order) into runs of consecutive blocks, at most
/// [`RUN_BLOCKS`] long, short enough that each of `workers` sources gets about
/// [`RUNS_PER_SOURCE`] of them.
fn runs_of(missing: &[u64], workers: usize) -> VecDeque<Run> {
    let most = (missing.len() as u64 / (workers as u64 * RUNS_PER_SOURCE)).clamp(1, RUN_BLOCKS);
    let mut runs: VecDeque<Run> = VecDeque::new();
    for &i in missing {
        match runs.back_mut() {
            Some(r) if r.first + r.count == i && r.count < most => r.count += 1,
            _ => runs.push_back(Run { first: i, count: 1 }),
        }
    }
    runs
}

/// A run being fetched, by which owner; `shared` once a second worker fetches it too.
struct Busy {
    id: u64,
    owner: usize,
    run: Run,
    shared: bool,
}

/// The runs waiting, those being fetched, and whether the transfer stops.
struct Queue {
    runs: VecDeque<Run>,
    busy: Vec<Busy>,
    next_id: u64,
    stop: bool,
}

/// What the workers share.
struct Board {
    file: BlockFile,
    queue: Mutex<Queue>,
    changed: Condvar,
    /// Owners of the content not yet used, in order.
    spares: Mutex<VecDeque<Member>>,
    /// A local failure that stops every worker.
    fatal: Mutex<Option<DownloadError>>,
    /// Raised when the transfer ends (complete, cancelled, a local failure): the
    /// cancel flag of every GET_FILE_BLOCK, so a straggler stops at its next read.
    halt: AtomicBool,
}

impl Board {
    /// The next run for `owner` to fetch, and its number: a waiting one; when none
    /// waits, the largest rest of a run another owner is fetching, so a slow owner
    /// does not hold up the end (each run is fetched twice at most). `None` when
    /// nothing is left or the transfer stops.
    fn take(&self, owner: usize) -> Option<(u64, Run)> {
        let mut q = self.queue.lock();
        loop {
            if q.stop || self.halt.load(Ordering::SeqCst) {
                return None;
            }
            let waiting = std::iter::from_fn(|| q.runs.pop_front()).find_map(|r| self.rest(r));
            let run = match waiting {
                Some(run) => Some(run),
                None => self.twin(&mut q, owner),
            };
            if let Some(run) = run {
                let id = q.next_id;
                q.next_id += 1;
                let shared = waiting.is_none();
                q.busy.push(Busy {
                    id,
                    owner,
                    run,
                    shared,
                });
                return Some((id, run));
            }
            if q.busy.is_empty() {
                return None;
            }
            // A run may yet come back, or end.
            self.changed.wait_for(&mut q, IDLE_CHECK);
        }
    }

    /// A run another owner is fetching alone, with the most blocks left, marked shared.
    fn twin(&self, q: &mut Queue, owner: usize) -> Option<Run> {
        let busy = q
            .busy
            .iter_mut()
            .filter(|b| !b.shared && b.owner != owner)
            .filter_map(|b| self.rest(b.run).map(|r| (b, r)))
            .max_by_key(|(_, r)| r.count)?;
        busy.0.shared = true;
        Some(busy.1)
    }

    /// What of `run` is not verified yet, from its first missing block.
    fn rest(&self, run: Run) -> Option<Run> {
        let end = run.first + run.count;
        let first = (run.first..end).find(|&i| !self.file.has(i))?;
        Some(Run {
            first,
            count: end - first,
        })
    }

    /// Run `id` ends; what is left of it (when `rest.count > 0`) is fetched first.
    fn ended(&self, id: u64, rest: Run) {
        let mut q = self.queue.lock();
        q.busy.retain(|b| b.id != id);
        if rest.count > 0 {
            q.runs.push_front(rest);
        }
        self.changed.notify_all();
    }

    fn stopped(&self) -> bool {
        self.halt.load(Ordering::SeqCst) || self.queue.lock().stop
    }

    fn fail(&self, e: DownloadError) {
        self.fatal.lock().get_or_insert(e);
        self.queue.lock().stop = true;
        self.halt.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }
}

/// What a worker tells the transfer's thread.
enum Event {
    /// A source starts.
    Joined,
    /// A block from this owner was verified and written.
    Block(usize),
    /// A source was dropped, and why ("sent a wrong block 7").
    Dropped { owner: usize, why: String },
}

/// Why a run stopped before its end.
enum Halt {
    /// A twin fetching the same run got this block first.
    Overtaken,
    Failed(DownloadError),
}

/// How a worker's use of one owner ended.
enum Used {
    /// No run is left (or the transfer stops).
    Finished,
    /// The owner is dropped for this reason.
    Dropped(String),
}

/// How a multi-source attempt at one group ended.
pub(super) enum Outcome {
    /// Complete: the file is in place; the owners that sent blocks (and were not
    /// dropped), in the order of their first block.
    Done {
        done: Done,
        used: Vec<usize>,
    },
    /// Every owner of the group was dropped; the verified blocks are kept.
    Gone {
        verified: u64,
        blocks: u64,
    },
    Cancelled,
    /// A local failure (the file system; another download into the name).
    Local(DownloadError),
}

/// One multi-source FETCH.
pub(super) struct Swarm<'a> {
    pub(super) source: &'a Arc<dyn BlockSource>,
    pub(super) owners: &'a [Owner],
    pub(super) remote: &'a str,
    pub(super) target: &'a Path,
    pub(super) max_sources: usize,
    pub(super) cancel: &'a AtomicBool,
}

impl Swarm<'_> {
    /// Downloads the content of `members` (one group) from up to `max_sources` of
    /// them at once.
    pub(super) fn run(&self, members: Vec<Member>, report: &mut dyn Report) -> Outcome {
        let started = Instant::now();
        let tree = members[0].tree.clone();
        let file = match BlockFile::open(self.target, &tree) {
            Ok(f) => f,
            Err(e) => return Outcome::Local(e),
        };
        let (kept, from) = file.verified();
        let group: Vec<Owner> = members
            .iter()
            .map(|m| self.owners[m.owner].clone())
            .collect();
        let workers = self.max_sources.clamp(1, members.len());
        report.step(Step::Spread {
            owners: &group,
            root: tree.root_hex(),
            size: tree.size,
            from,
            blocks: tree.block_count(),
            kept,
            at_once: workers,
        });
        let board = Board {
            queue: Mutex::new(Queue {
                runs: runs_of(&file.missing(), workers),
                busy: Vec::new(),
                next_id: 0,
                stop: false,
            }),
            file,
            changed: Condvar::new(),
            spares: Mutex::new(members.into()),
            fatal: Mutex::new(None),
            halt: AtomicBool::new(false),
        };
        let crew = Arc::new(Crew {
            source: Arc::clone(self.source),
            owners: self.owners.to_vec(),
            remote: self.remote.to_owned(),
            tree,
            board,
        });
        let used = self.spread(&crew, workers, report);
        let fatal = crew.board.fatal.lock().take();
        self.outcome(fatal, &crew, used, from, started)
    }

    /// Starts the source threads and passes their events on as steps until every
    /// one ended, or the file is complete: then they are halted and not waited for (a
    /// silent source would hold FETCH's end up to its idle timeout; it ends on its
    /// own). A cancel or a local failure halts them too, and they are waited for, so
    /// the partial is free again when FETCH ends. Returns the owners used, in the
    /// order of their first block.
    fn spread(&self, crew: &Arc<Crew>, workers: usize, report: &mut dyn Report) -> Vec<usize> {
        let (tx, rx) = crossbeam_channel::bounded::<Event>(256);
        for _ in 0..workers {
            let (crew, tx) = (Arc::clone(crew), tx.clone());
            let work = move || crew.worker(&tx);
            if let Err(e) = thread::Builder::new().name("source".into()).spawn(work) {
                log::warn!("FETCH: a source thread did not start: {e}");
            }
        }
        drop(tx);
        let (board, mut active, mut used) = (&crew.board, 0, Vec::new());
        loop {
            match rx.recv_timeout(IDLE_CHECK) {
                Ok(event) => self.tell(event, &board.file, &mut active, &mut used, report),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            let complete = board.file.verified().0 == crew.tree.block_count();
            if complete || self.cancel.load(Ordering::SeqCst) {
                board.halt.store(true, Ordering::SeqCst);
                board.changed.notify_all();
            }
            if complete {
                for event in rx.try_iter() {
                    self.tell(event, &board.file, &mut active, &mut used, report);
                }
                break;
            }
        }
        used
    }

    fn tell(
        &self,
        event: Event,
        file: &BlockFile,
        active: &mut usize,
        used: &mut Vec<usize>,
        report: &mut dyn Report,
    ) {
        match event {
            Event::Joined => {
                *active += 1;
                report.step(Step::Sources(*active));
            }
            Event::Block(owner) => {
                if !used.contains(&owner) {
                    used.push(owner);
                }
                report.step(Step::Progress(file.verified().1));
            }
            Event::Dropped { owner, why } => {
                *active -= 1;
                used.retain(|&o| o != owner);
                let owner = &self.owners[owner];
                report.step(Step::Dropped { owner, why: &why });
                report.step(Step::Sources(*active));
            }
        }
    }

    /// How the attempt ended, once every worker has.
    fn outcome(
        &self,
        fatal: Option<DownloadError>,
        crew: &Crew,
        used: Vec<usize>,
        from: u64,
        started: Instant,
    ) -> Outcome {
        let (file, tree) = (&crew.board.file, &crew.tree);
        let (verified, bytes) = file.verified();
        // Nothing verified is worth keeping; nor is anything on a full disk, where
        // it would only hold the space the disk lacks.
        let full = fatal.as_ref().is_some_and(is_disk_full);
        let finished = if full || (verified == 0 && tree.block_count() > 0) {
            file.discard();
            Ok(false)
        } else {
            file.finish()
        };
        if let Some(e) = fatal {
            return Outcome::Local(e);
        }
        match finished {
            Ok(true) => Outcome::Done {
                done: Done {
                    size: tree.size,
                    received: bytes - from,
                    resumed_from: from,
                    elapsed: started.elapsed(),
                    via: Via::Blocks,
                },
                used,
            },
            Err(e) => Outcome::Local(e),
            Ok(false) if self.cancel.load(Ordering::SeqCst) => Outcome::Cancelled,
            Ok(false) => Outcome::Gone {
                verified,
                blocks: tree.block_count(),
            },
        }
    }
}

/// What the source threads of one transfer share. They may outlive the transfer by
/// up to an idle timeout (see [`Swarm::spread`]), so they own it together.
struct Crew {
    source: Arc<dyn BlockSource>,
    owners: Vec<Owner>,
    remote: String,
    tree: HashTree,
    board: Board,
}

impl Crew {
    /// One source thread: takes owners from the spares until runs or owners run out.
    fn worker(&self, tx: &crossbeam_channel::Sender<Event>) {
        let board = &self.board;
        loop {
            let Some(member) = board.spares.lock().pop_front() else {
                return;
            };
            let _ = tx.send(Event::Joined);
            match self.fetch_runs(&member, tx) {
                Used::Finished => return,
                Used::Dropped(why) => {
                    let owner = member.owner;
                    let _ = tx.send(Event::Dropped { owner, why });
                }
            }
        }
    }

    /// Fetches runs from one owner until none is left or the owner is dropped.
    fn fetch_runs(&self, member: &Member, tx: &crossbeam_channel::Sender<Event>) -> Used {
        let board = &self.board;
        while let Some((id, run)) = board.take(member.owner) {
            let end = run.first + run.count;
            let (next, result) = self.fetch_run(member, run, tx);
            // Overtaken: the twin fetching the same run is ahead and has the rest.
            let left = match result {
                Err(Halt::Overtaken) => 0,
                _ => end - next,
            };
            let rest = Run {
                first: next,
                count: left,
            };
            board.ended(id, rest);
            match result {
                Ok(()) if next == end => {}
                Ok(()) => {
                    let got = next - run.first;
                    return Used::Dropped(format!("sent {got} of {} blocks", run.count));
                }
                Err(Halt::Overtaken) => {}
                Err(Halt::Failed(e)) => return self.failed(e),
            }
        }
        Used::Finished
    }

    /// One GET_FILE_BLOCK of `run` from `member`: each block verified, then written
    /// (unless a twin already did). Returns the first block not received.
    fn fetch_run(
        &self,
        member: &Member,
        run: Run,
        tx: &crossbeam_channel::Sender<Event>,
    ) -> (u64, Result<(), Halt>) {
        let (board, tree) = (&self.board, &self.tree);
        let mut next = run.first;
        let mut overtaken = false;
        let mut out = |i: u64, data: &[u8]| {
            if board.stopped() {
                return Err(DownloadError::Cancelled);
            }
            if i != next || !tree.verify(i, data) {
                return Err(DownloadError::BadBlock(next));
            }
            if board.file.has(i) {
                overtaken = true;
                return Err(DownloadError::Cancelled);
            }
            board.file.put(i, data)?;
            next += 1;
            let _ = tx.send(Event::Block(member.owner));
            Ok(())
        };
        let addr = self.owners[member.owner].addr;
        let result = self.source.read_blocks(
            addr,
            &self.remote,
            &member.tree,
            run.first..run.first + run.count,
            &board.halt,
            &mut out,
        );
        let result = match result {
            Err(_) if overtaken => Err(Halt::Overtaken),
            r => r.map_err(Halt::Failed),
        };
        (next, result)
    }

    /// What a failed GET_FILE_BLOCK means for its owner.
    fn failed(&self, e: DownloadError) -> Used {
        match e {
            DownloadError::Cancelled => Used::Finished,
            e if e.is_local() => {
                self.board.fail(e);
                Used::Finished
            }
            DownloadError::BadBlock(index) => Used::Dropped(format!("sent a wrong block {index}")),
            e => Used::Dropped(e.to_string()),
        }
    }
}

impl BlockSource for Downloader {
    fn speaks_blocks(&self, addr: SocketAddr) -> Result<bool, DownloadError> {
        Downloader::speaks_blocks(self, addr)
    }

    fn hash_tree(&self, addr: SocketAddr, remote: &str) -> Result<HashTree, DownloadError> {
        Downloader::hash_tree(self, addr, remote)
    }

    fn read_blocks(
        &self,
        addr: SocketAddr,
        remote: &str,
        tree: &HashTree,
        blocks: Range<u64>,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError> {
        Downloader::read_blocks(self, addr, remote, tree, blocks, cancel, out)
    }
}

#[cfg(test)]
mod tests;
