//! The scheduler with fake sources (fast, slow, lying, stalling, of other content),
//! through `Transfer::several`, into a real partial file in a temporary folder.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

use super::super::{Kind, Ran, Transfer};
use super::*;
use crate::client::messages::End;
use crate::proto::tree::BLOCK_SIZE;

/// How a fake owner behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Acts {
    /// Sends the right bytes, `pace` per block.
    Honest { pace: Duration },
    /// Sends the honest tree and junk blocks.
    Liar,
    /// Sends one block, then fails as the min-rate check would.
    Stalls,
    /// Sends nothing and waits until cancelled.
    Hangs,
    /// Sends nothing for 10 s whatever the cancel flag (a socket read blocked until
    /// its idle timeout), then fails.
    Silent,
    /// Does not speak the extension.
    Plain,
}

struct Fake {
    content: Arc<Vec<u8>>,
    tree: HashTree,
    acts: Acts,
    /// Blocks it was asked for (twice when twice), and which.
    asked: AtomicU64,
    which: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
}

#[derive(Default)]
struct Fakes {
    by_addr: parking_lot::Mutex<HashMap<SocketAddr, Arc<Fake>>>,
}

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000 + n))
}

impl Fakes {
    fn add(&self, n: u16, content: &Arc<Vec<u8>>, acts: Acts) {
        let tree = tree_of(content);
        let fake = Fake {
            content: Arc::clone(content),
            tree,
            acts,
            asked: AtomicU64::new(0),
            which: Default::default(),
        };
        self.by_addr.lock().insert(addr(n), Arc::new(fake));
    }

    fn get(&self, addr: SocketAddr) -> Arc<Fake> {
        Arc::clone(&self.by_addr.lock()[&addr])
    }

    fn asked(&self, n: u16) -> u64 {
        self.get(addr(n)).asked.load(Ordering::SeqCst)
    }

    fn which(&self, n: u16) -> std::collections::BTreeSet<u64> {
        self.get(addr(n)).which.lock().clone()
    }
}

impl BlockSource for Fakes {
    fn speaks_blocks(&self, addr: SocketAddr) -> Result<bool, DownloadError> {
        Ok(self.get(addr).acts != Acts::Plain)
    }

    fn hash_tree(&self, addr: SocketAddr, _: &str) -> Result<HashTree, DownloadError> {
        Ok(self.get(addr).tree.clone())
    }

    fn read_blocks(
        &self,
        addr: SocketAddr,
        _: &str,
        tree: &HashTree,
        blocks: std::ops::Range<u64>,
        cancel: &AtomicBool,
        out: &mut BlockSink<'_>,
    ) -> Result<(), DownloadError> {
        let (first, count) = (blocks.start, blocks.end - blocks.start);
        let fake = self.get(addr);
        fake.asked.fetch_add(count, Ordering::SeqCst);
        fake.which.lock().extend(first..first + count);
        assert_eq!(tree, &fake.tree, "asked with its own tree");
        for i in first..first + count {
            let (o, l) = fake.tree.span(i);
            let block = &fake.content[o as usize..(o + l) as usize];
            match fake.acts {
                Acts::Honest { pace } => {
                    // The peer's pace; the cancel flag is seen as a socket read would.
                    let until = Instant::now() + pace;
                    while Instant::now() < until {
                        if cancel.load(Ordering::SeqCst) {
                            return Err(DownloadError::Cancelled);
                        }
                        thread::sleep(pace.min(Duration::from_millis(5)));
                    }
                }
                Acts::Liar => return out(i, &vec![0x55; block.len()]),
                Acts::Stalls if i > first => {
                    return Err(DownloadError::Timeout { received: l });
                }
                Acts::Silent => {
                    // The peer's silence, as long as an idle timeout.
                    thread::sleep(Duration::from_secs(10));
                    return Err(DownloadError::Timeout { received: 0 });
                }
                Acts::Hangs => {
                    while !cancel.load(Ordering::SeqCst) {
                        // The fake peer's silence, ended by the cancel it watches.
                        thread::sleep(Duration::from_millis(5));
                    }
                    return Err(DownloadError::Cancelled);
                }
                _ => {}
            }
            out(i, block)?;
        }
        Ok(())
    }
}

fn tree_of(content: &[u8]) -> HashTree {
    HashTree::compute(&mut &content[..], content.len() as u64, "v").unwrap()
}

/// `blocks` whole blocks and a short one, each byte depending on `seed`.
fn content(blocks: u64, seed: u8) -> Arc<Vec<u8>> {
    let len = blocks * BLOCK_SIZE + 1000;
    Arc::new(
        (0..len)
            .map(|i| (i % 253) as u8 ^ seed ^ (i >> 20) as u8)
            .collect(),
    )
}

/// Every step in words (and the sources counts), in order.
#[derive(Default)]
struct Steps(Vec<String>);

impl Report for Steps {
    fn step(&mut self, step: Step<'_>) {
        if let Step::Sources(n) = step {
            self.0.push(format!("sources {n}"));
        } else if let Some(line) = step.describe(Kind::Fetch, "f") {
            self.0.push(line);
        }
    }
}

fn transfer(dir: &Path, owners: &[u16], max_sources: usize) -> Transfer {
    Transfer {
        kind: Kind::Fetch,
        owners: owners
            .iter()
            .map(|&n| Owner {
                user: format!("u{n}"),
                addr: addr(n),
                description: None,
            })
            .collect(),
        remote: "f".into(),
        local: "f".into(),
        target: dir.join("f"),
        downloader: Default::default(),
        max_sources,
    }
}

fn fetch(fakes: &Arc<Fakes>, t: &Transfer, cancel: &AtomicBool) -> (Option<Ran>, Vec<String>) {
    let mut steps = Steps::default();
    let ran = t.several(
        Arc::clone(fakes) as Arc<dyn BlockSource>,
        cancel,
        &mut steps,
    );
    (ran, steps.0)
}

fn honest(ms: u64) -> Acts {
    Acts::Honest {
        pace: Duration::from_millis(ms),
    }
}

#[test]
fn a_liar_is_dropped_named_and_its_blocks_fetched_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(40, 1);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, honest(5));
    fakes.add(2, &good, Acts::Liar);
    fakes.add(3, &good, honest(5));
    let t = transfer(dir.path(), &[1, 2, 3], 3);
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    let ran = ran.expect("several owners speak blocks");
    assert_eq!(ran.end, End::Done, "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
    assert!(fakes.asked(2) > 0, "the liar was asked: {steps:?}");
    let dropped: Vec<&String> = steps.iter().filter(|s| s.ends_with(": dropped")).collect();
    assert_eq!(dropped.len(), 1, "{steps:?}");
    assert!(
        dropped[0].starts_with("FETCH f: u2 sent a wrong block "),
        "{steps:?}"
    );
    let served = steps.last().unwrap();
    // The sources in the order of their first block: either may come first.
    let both = [
        "FETCH f from u1 and u3 (2 sources): ",
        "FETCH f from u3 and u1 (2 sources): ",
    ];
    assert!(both.iter().any(|b| served.starts_with(b)), "{steps:?}");
    assert!(!dir.path().join(".f.peerdex-partial.blocks").exists());
}

#[test]
fn owners_of_other_content_are_never_mixed_and_the_larger_group_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (good, other) = (content(20, 1), content(20, 2));
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &other, honest(0));
    fakes.add(2, &good, honest(1));
    fakes.add(3, &good, honest(1));
    let t = transfer(dir.path(), &[1, 2, 3], 4);
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Done, "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
    assert_eq!(
        fakes.asked(1),
        0,
        "the other content's owner got no request"
    );
    assert!(
        steps[0].starts_with("FETCH f: 2 owners have the same content"),
        "{steps:?}"
    );
}

#[test]
fn a_faster_owner_takes_more_runs_and_a_staller_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(64, 3);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, honest(0));
    fakes.add(2, &good, honest(30));
    fakes.add(3, &good, Acts::Stalls);
    let t = transfer(dir.path(), &[1, 2, 3], 3);
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Done, "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
    assert!(
        fakes.asked(1) > fakes.asked(2),
        "{} {}",
        fakes.asked(1),
        fakes.asked(2)
    );
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("FETCH f: u3 timeout: ") && s.ends_with("dropped")),
        "{steps:?}"
    );
}

#[test]
fn a_slow_owner_does_not_hold_up_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(8, 9);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, honest(0));
    fakes.add(2, &good, honest(10_000));
    let t = transfer(dir.path(), &[1, 2], 2);
    let started = Instant::now();
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Done, "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
    // The fast owner fetched every block, also the slow one's run (which stopped at
    // the end); on a busy machine the slow owner may not have asked for its run
    // before the fast one had fetched everything.
    assert_eq!(fakes.asked(1), 9, "{steps:?}");
    assert!(fakes.asked(2) <= 1, "{steps:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!steps.iter().any(|s| s.ends_with(": dropped")), "{steps:?}");
}

#[test]
fn a_silent_owner_does_not_hold_up_the_end_of_a_complete_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(40, 10);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, Acts::Silent);
    fakes.add(2, &good, honest(0));
    let t = transfer(dir.path(), &[1, 2], 2);
    let started = Instant::now();
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Done, "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
    assert!(fakes.asked(1) > 0, "the silent owner was asked");
    assert!(
        steps.last().unwrap().contains("from u2 (1 source)"),
        "{steps:?}"
    );
    // Not waited for: it is still silent when FETCH ends.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn when_every_source_is_gone_the_verified_blocks_are_kept_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(40, 4);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, Acts::Stalls);
    fakes.add(2, &good, Acts::Stalls);
    let t = transfer(dir.path(), &[1, 2], 2);
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Failed, "{steps:?}");
    let gone = steps
        .iter()
        .find(|s| s.contains("every source of that content"));
    assert!(
        gone.is_some_and(|s| s.contains("2 of 41 blocks verified")),
        "{steps:?}"
    );
    assert!(
        !dir.path().join("f").exists(),
        "no file in place after a failure"
    );
    // Other owners of the same content: only the 39 missing blocks are asked for.
    fakes.add(3, &good, honest(0));
    fakes.add(4, &good, honest(0));
    let t = transfer(dir.path(), &[3, 4], 2);
    let (ran, steps) = fetch(&fakes, &t, &AtomicBool::new(false));
    assert_eq!(ran.unwrap().end, End::Done, "{steps:?}");
    let which: std::collections::BTreeSet<u64> =
        fakes.which(3).union(&fakes.which(4)).copied().collect();
    let kept: Vec<u64> = (0..41).filter(|i| !which.contains(i)).collect();
    assert_eq!(
        kept.len(),
        2,
        "only the missing blocks are asked for: {kept:?}"
    );
    assert_eq!(
        fakes
            .which(1)
            .union(&fakes.which(2))
            .filter(|i| kept.contains(i))
            .count(),
        2
    );
    assert!(
        steps
            .last()
            .unwrap()
            .contains("(resumed at 2.0 MiB, 38.0 MiB received)"),
        "{steps:?}"
    );
    assert!(steps[0].ends_with("2 verified blocks kept"), "{steps:?}");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), *good);
}

#[test]
fn cancel_stops_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let good = content(40, 5);
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &good, Acts::Hangs);
    fakes.add(2, &good, Acts::Hangs);
    let t = transfer(dir.path(), &[1, 2], 2);
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| tx.send(fetch(&fakes, &t, &cancel)).unwrap());
        // Both hang in their first run until the cancel.
        let deadline = Instant::now() + Duration::from_secs(30);
        while fakes.asked(1) == 0 || fakes.asked(2) == 0 {
            assert!(Instant::now() < deadline, "the sources were not asked");
            thread::yield_now();
        }
        cancel.store(true, Ordering::SeqCst);
        let (ran, steps) = rx.recv_timeout(Duration::from_secs(30)).expect("stopped");
        assert_eq!(ran.unwrap().end, End::Cancelled, "{steps:?}");
    });
}

#[test]
fn one_owner_of_a_content_or_none_speaking_blocks_goes_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (content(2, 6), content(2, 7));
    let fakes = Arc::new(Fakes::default());
    fakes.add(1, &a, honest(0));
    fakes.add(2, &b, honest(0));
    fakes.add(3, &a, Acts::Plain);
    let t = transfer(dir.path(), &[1, 2, 3], 4);
    assert!(fetch(&fakes, &t, &AtomicBool::new(false)).0.is_none());
    assert_eq!(fakes.asked(1) + fakes.asked(2), 0);
}

#[test]
fn a_tree_whose_root_is_not_its_blocks_is_refused() {
    let good = content(3, 8);
    let mut tree = tree_of(&good);
    assert!(tree.check().is_ok());
    tree.blocks[1] = [0; 32];
    assert!(tree.check().is_err(), "honest root, other block hashes");
    let mut short = tree_of(&good);
    short.blocks.pop();
    assert!(short.check().is_err());
}

#[test]
fn runs_are_consecutive_at_most_sixteen_blocks_and_enough_for_every_source() {
    let runs = |missing: &[u64], workers| -> Vec<(u64, u64)> {
        runs_of(missing, workers)
            .iter()
            .map(|r| (r.first, r.count))
            .collect()
    };
    let missing: Vec<u64> = (0..200).filter(|i| *i != 5).collect();
    let long = runs(&missing, 2);
    assert_eq!(long[..3], [(0, 5), (6, 16), (22, 16)]);
    assert!(long.iter().all(|r| r.1 <= 16));
    // 24 blocks for 3 sources: runs of 2, four for each.
    let small = runs(&(0..24).collect::<Vec<u64>>(), 3);
    assert_eq!(small.len(), 12);
    assert_eq!(runs(&[0, 1, 2], 4), [(0, 1), (1, 1), (2, 1)]);
}
