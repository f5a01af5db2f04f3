//! Scale section of `peerdex bench`: a registry of 100,000 users and 1,000,000
//! publications, written as a journal in a temp `--data-dir`: the server's start-up
//! time on it (journal replay, then again on the snapshot the first start compacts
//! it into), its memory, and REGISTER / LIST_CONTENT ops/s and latency on it against
//! the same server with an empty registry, alternated.
//!
//! The registry holds the index section's 100 listed users (connected to the bench's
//! peer listener, 10 files each; they make the LIST_CONTENT mix) and 99,900 other
//! users (connected to publish, then disconnected) with 10 publications each.
//!
//! Owns: writing the journal file. Does not own: the server (a child) or the load
//! loop (borrowed from [`super::index`]).

use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::index::{self, LISTED_USERS, Mix, Sample, listed_user, summarize};
use super::report::{Table, verdict};
use super::{BenchError, Peerdex, Plan, arg, spawn_server, status_kib};
use peerdex::internals::COMPACT_MIN_BYTES;
use peerdex::internals::Change;

/// The registry: 100,000 users ...
const USERS: usize = 100_000;
/// ... with 10 publications each, 1,000,000 in all.
const FILES_PER_USER: usize = 10;
/// Users in smoke mode.
const SMOKE_USERS: usize = 1_000;
/// Client threads of the latency measurements (the middle figure).
const CLIENTS: usize = 16;
/// Longest wait for the compaction a start on a long journal triggers.
const COMPACTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Targets of the issue.
const TARGET_REPLAY_S: f64 = 3.0;
const TARGET_RSS_KIB: u64 = 400 * 1000 * 1000 / 1024;
const TARGET_LATENCY: f64 = 1.2;

fn err(what: impl Into<String>) -> BenchError {
    BenchError::Section {
        section: "scale",
        what: what.into(),
    }
}

/// Writes the journal of `users` users (see the module doc); returns its size.
fn write_journal(data: &Path, users: usize, peer_port: u16) -> Result<u64, BenchError> {
    write_users_journal(data, users, peer_port, |u, user, listed| {
        (0..FILES_PER_USER)
            .map(|j| {
                if listed {
                    (format!("shared-{j}.txt"), format!("file {j} of {user}"))
                } else {
                    (
                        format!("music/album-{j:02}/track-{u:06}.mp3"),
                        format!("track {j} of user {u}, 320 kbit/s"),
                    )
                }
            })
            .collect()
    })
}

/// Writes a journal of `users` users into `data` (the scale and search sections'):
/// each registered and connected, publishing what `files(u, user, listed)` gives;
/// the first [`LISTED_USERS`] stay connected (list targets), the others disconnect
/// again (they connected only because publishing takes a connected user). Returns
/// the journal's size.
pub(super) fn write_users_journal(
    data: &Path,
    users: usize,
    peer_port: u16,
    mut files: impl FnMut(usize, &str, bool) -> Vec<(String, String)>,
) -> Result<u64, BenchError> {
    std::fs::create_dir_all(data)?;
    let path = data.join("journal.0.jsonl");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let mut line = |c: &Change| -> Result<(), BenchError> {
        serde_json::to_writer(&mut out, c).map_err(|e| err(format!("journal: {e}")))?;
        out.write_all(b"\n")?;
        Ok(())
    };
    for u in 0..users {
        let listed = u < LISTED_USERS;
        let user = if listed {
            listed_user(u)
        } else {
            format!("user-{u:06}")
        };
        line(&Change::Register { user: user.clone() })?;
        line(&Change::Connect {
            user: user.clone(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: peer_port,
        })?;
        for (file, description) in files(u, &user, listed) {
            line(&Change::Publish {
                user: user.clone(),
                file,
                description,
            })?;
        }
        if !listed {
            line(&Change::Disconnect { user })?;
        }
    }
    out.flush()?;
    drop(out);
    Ok(std::fs::metadata(&path)?.len())
}

fn start_on(data: &Path) -> Result<Peerdex, BenchError> {
    spawn_server(
        "peerdex server",
        &["--no-logger", "--quiet", "--data-dir", &arg(data)],
    )
}

/// Waits until no compaction is in progress, and, when the journal was long enough
/// for one at start (`journal_bytes`), until its snapshot exists.
pub(super) fn wait_compacted(data: &Path, journal_bytes: u64) -> Result<(), BenchError> {
    let due = journal_bytes >= COMPACT_MIN_BYTES;
    let t0 = Instant::now();
    while (due && !data.join("snapshot.jsonl").exists()) || data.join("snapshot.jsonl.tmp").exists()
    {
        if t0.elapsed() > COMPACTION_TIMEOUT {
            return Err(err("the compaction at start did not finish"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs the scale section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let users = if plan.smoke { SMOKE_USERS } else { USERS };
    let clients = if plan.smoke { 4 } else { CLIENTS };
    let peer_port = index::peer_listener()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("big");
    let t0 = Instant::now();
    let journal_bytes = write_journal(&data, users, peer_port)?;
    let written = t0.elapsed().as_secs_f64();

    // First start: the journal is replayed (and compacted into a snapshot).
    let first = start_on(&data)?;
    let replay_journal = first.started.as_secs_f64();
    wait_compacted(&data, journal_bytes)?;
    drop(first);
    // Second start: the snapshot is loaded; this one is measured.
    let big = start_on(&data)?;
    let replay_snapshot = big.started.as_secs_f64();
    // A compaction may follow this start as well; let it finish first.
    wait_compacted(&data, journal_bytes)?;
    thread::sleep(Duration::from_millis(300));
    let rss = status_kib(big.child.id(), "VmRSS:");
    let hwm = status_kib(big.child.id(), "VmHWM:");

    let empty_dir = dir.path().join("empty");
    let empty = start_on(&empty_dir)?;
    index::prepare(empty.addr, peer_port, 0)?;

    let mut rows = Vec::new();
    let mut failure = None;
    for mix in [Mix::ListContent, Mix::Register] {
        for s in [&big, &empty] {
            index::measure(s.addr, true, mix, clients, plan.warmup_seconds, peer_port);
        }
        let (mut b, mut e): (Vec<Sample>, Vec<Sample>) = (Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            b.push(index::measure(
                big.addr,
                true,
                mix,
                clients,
                plan.seconds,
                peer_port,
            ));
            e.push(index::measure(
                empty.addr,
                true,
                mix,
                clients,
                plan.seconds,
                peer_port,
            ));
        }
        let (b, e) = (summarize(&b), summarize(&e));
        for (name, c) in [("large", &b), ("empty", &e)] {
            if c.errors > 0 && failure.is_none() {
                failure = Some(BenchError::Protocol {
                    system: format!("peerdex server ({name} registry)"),
                    mix: format!(
                        "{} (first: {})",
                        mix.name(),
                        c.first_error.as_deref().unwrap_or("?")
                    ),
                    errors: c.errors,
                });
            }
        }
        rows.push((mix, b, e));
    }

    println!("## Scale\n");
    println!(
        "registry of {users} users and {} publications (journal of {} MB, written in {written:.1} s); server with journal on, logger off, console quiet; {clients} clients, {} round(s) after a warm-up, large and empty registry alternated; medians.\n",
        users * FILES_PER_USER,
        journal_bytes / 1_000_000,
        plan.rounds
    );
    let mut t = Table::new(&["measure", "value", "target"]);
    t.row(vec![
        "start on the journal (spawn to listening: replay + snapshot written)".into(),
        format!("{replay_journal:.2} s"),
        verdict(replay_journal < TARGET_REPLAY_S),
    ]);
    t.row(vec![
        "start on the snapshot (spawn to listening)".into(),
        format!("{replay_snapshot:.2} s"),
        verdict(replay_snapshot < TARGET_REPLAY_S),
    ]);
    t.row(vec![
        "server RSS after start (VmRSS / peak VmHWM)".into(),
        format!("{} MiB / {} MiB", rss / 1024, hwm / 1024),
        verdict(hwm < TARGET_RSS_KIB),
    ]);
    t.print();
    let mut l = Table::new(&[
        "mix",
        "registry",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p50 vs empty",
        "p99 vs empty",
        "target",
    ]);
    for (mix, b, e) in &rows {
        let (r50, r99) = (b.p50 / e.p50.max(1.0), b.p99 / e.p99.max(1.0));
        for (name, c) in [("large", b), ("empty", e)] {
            let large = name == "large";
            l.row(vec![
                mix.name().into(),
                name.into(),
                if c.errors > 0 {
                    format!("{} ERRORS", c.errors)
                } else {
                    format!("{:.0}", c.ops)
                },
                format!("{:.0}", c.p50),
                format!("{:.0}", c.p99),
                if large {
                    format!("{r50:.2}")
                } else {
                    "1.00".into()
                },
                if large {
                    format!("{r99:.2}")
                } else {
                    "1.00".into()
                },
                if large {
                    verdict(r50 <= TARGET_LATENCY && r99 <= TARGET_LATENCY)
                } else {
                    "-".into()
                },
            ]);
        }
    }
    l.print();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
