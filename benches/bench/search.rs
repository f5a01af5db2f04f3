//! Search section of `peerdex bench`: SEARCH over a registry of 100,000 users and
//! about 1,000,000 publications, the server with its index against the same server
//! with `--search-scan` (the linear scan SEARCH was before the index, with the same
//! result cap), both started on copies of one journal.
//!
//! The registry: 100 users connected (to the bench's peer listener) with 5,005 files
//! each (lecture notes, songs, photos: 500,500 publications that SEARCH can find)
//! and 99,900 disconnected users with 5 files each (499,500 that it cannot). The
//! figures: SEARCH p50 for a selective, a no-match and a broad pattern against
//! LIST_USERS p50 on the same server and against the scan; start time and memory
//! (RSS: with index, with scan, an empty server); PUBLISH+DELETE throughput with and
//! without the index; and the price of the design, DISCONNECT+CONNECT of a user with
//! 5,005 files (the index takes its files out and puts them back).
//!
//! Owns: writing the journal and the load loop of this section. Does not own: the
//! servers (children, talked to over sockets only).

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use super::index::{self, Expect, LISTED_USERS, listed_user, one_op, request};
use super::report::{Table, verdict};
use super::scale::write_users_journal;
use super::{BenchError, Peerdex, Plan, arg, median, percentile, spawn_server, status_kib};
use peerdex::internals::index::Body;

/// Users in the registry (the scale section's figure) ...
const USERS: usize = 100_000;
/// ... of which the first [`LISTED_USERS`] are connected with this many files each ...
const CONNECTED_FILES: usize = 5_005;
/// ... and the others are disconnected with this many: 1,000,000 publications.
const OTHER_FILES: usize = 5;
/// Smoke mode: 1,000 users, 50 files per connected user.
const SMOKE_USERS: usize = 1_000;
const SMOKE_CONNECTED_FILES: usize = 50;
/// The server's default result cap (`--max-search-results`).
const CAP: usize = 1000;
/// Client threads of the latency and throughput measurements: two per core of the
/// bench machine, enough to keep a 2-core server busy without measuring only queues.
const CLIENTS: usize = 4;
/// Targets of issue 17.
const TARGET_VS_LIST_USERS: f64 = 4.0;
const TARGET_VS_SCAN: f64 = 10.0;
const TARGET_START_S: f64 = 3.0;
const TARGET_THROUGHPUT: f64 = 0.9;
/// Repetitions of the DISCONNECT+CONNECT timing.
const RECONNECTS: usize = 9;

fn err(what: impl Into<String>) -> BenchError {
    BenchError::Section {
        section: "search",
        what: what.into(),
    }
}

/// File `j` of connected user `i`.
fn connected_file(i: usize, j: usize) -> String {
    const WORDS: [&str; 16] = [
        "love", "night", "summer", "blue", "river", "dance", "heart", "fire", "rain", "city",
        "dream", "light", "road", "stone", "wild", "gold",
    ];
    let w = |k: usize| WORDS[(i * 7 + j * 13 + k * 5) % WORDS.len()];
    match j % 3 {
        0 => format!("lecture{}_notes_{i}_{j}.pdf", j % 40),
        1 => format!("song_{}_{}_{j}.mp3", w(0), w(1)),
        _ => format!("IMG_{i:03}_{j:05}.jpg"),
    }
}

/// Writes the journal (see the module doc); returns its size.
fn write_journal(
    data: &Path,
    users: usize,
    files: usize,
    peer_port: u16,
) -> Result<u64, BenchError> {
    write_users_journal(data, users, peer_port, |u, user, listed| {
        let (n, name): (usize, &dyn Fn(usize) -> String) = if listed {
            (files, &|j| connected_file(u, j))
        } else {
            (OTHER_FILES, &|j| {
                format!("music/album-{j:02}/track-{u:06}.mp3")
            })
        };
        (0..n)
            .map(|j| (name(j), format!("file {j} of {user}")))
            .collect()
    })
}

/// Latency and throughput of one load run.
struct Load {
    ops_per_sec: f64,
    p50: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs [`CLIENTS`] threads for `seconds`, each sending the requests `make(t, n)`
/// gives for its iteration `n`, one connection per request.
fn load(
    addr: SocketAddr,
    seconds: f64,
    make: impl Fn(usize, u64) -> Vec<(Vec<u8>, Expect)> + Sync,
) -> Load {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let results: Vec<(Vec<u64>, u64, Option<String>)> = thread::scope(|s| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let make = &make;
                s.spawn(move || {
                    let mut latencies = Vec::new();
                    let mut errors = 0;
                    let mut first = None;
                    let mut buf = Vec::with_capacity(256 * 1024);
                    let mut n = 0;
                    while Instant::now() < deadline {
                        for (req, expect) in make(t, n) {
                            let t0 = Instant::now();
                            let ok = one_op(addr, &req, expect, &mut buf);
                            latencies.push(t0.elapsed().as_micros() as u64);
                            if let Err(e) = ok {
                                errors += 1;
                                first.get_or_insert(e);
                            }
                        }
                        n += 1;
                    }
                    (latencies, errors, first)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| (Vec::new(), 1, Some("load thread panicked".into())))
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for (lat, e, first) in results {
        all.extend(lat);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
    }
    all.sort_unstable();
    Load {
        ops_per_sec: (all.len() as u64).saturating_sub(errors) as f64 / elapsed,
        p50: percentile(&all, 0.5),
        errors,
        first_error,
    }
}

/// What one measured request kind sends.
struct Kind {
    name: String,
    body: Body,
    expect: Expect,
}

fn start(data: &Path, scan: bool) -> Result<Peerdex, BenchError> {
    let mut args = vec!["--no-logger", "--quiet"];
    if scan {
        args.push("--search-scan");
    }
    let data = arg(data);
    args.extend(["--data-dir", &data]);
    spawn_server(
        if scan {
            "peerdex server --search-scan"
        } else {
            "peerdex server"
        },
        &args,
    )
}

/// Runs the search section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let (users, files) = if plan.smoke {
        (SMOKE_USERS, SMOKE_CONNECTED_FILES)
    } else {
        (USERS, CONNECTED_FILES)
    };
    let publications = LISTED_USERS * files + (users - LISTED_USERS) * OTHER_FILES;
    let peer_port = index::peer_listener()?;
    let dir = tempfile::tempdir()?;
    let (with_dir, scan_dir) = (dir.path().join("index"), dir.path().join("scan"));
    let journal_bytes = write_journal(&with_dir, users, files, peer_port)?;
    std::fs::create_dir_all(&scan_dir)?;
    std::fs::copy(
        with_dir.join("journal.0.jsonl"),
        scan_dir.join("journal.0.jsonl"),
    )?;

    let with = start(&with_dir, false)?;
    super::scale::wait_compacted(&with_dir, journal_bytes)?;
    let scan = start(&scan_dir, true)?;
    super::scale::wait_compacted(&scan_dir, journal_bytes)?;
    let empty = super::spawn_server(
        "peerdex server (empty)",
        &["--ephemeral", "--no-logger", "--quiet"],
    )?;
    thread::sleep(Duration::from_millis(300));
    let rss = |p: &Peerdex| status_kib(p.child.id(), "VmRSS:");
    let (rss_with, rss_scan, rss_empty) = (rss(&with), rss(&scan), rss(&empty));
    drop(empty);

    // The patterns, and how many matches each must list.
    let connected_names =
        || (0..LISTED_USERS).flat_map(|i| (0..files).map(move |j| connected_file(i, j)));
    let matches = |p: &str| connected_names().filter(|f| f.contains(p)).count().min(CAP);
    let mut kinds = vec![Kind {
        name: format!("LIST_USERS ({LISTED_USERS} connected)"),
        body: Body::ListUsers,
        expect: Expect::Users {
            n: LISTED_USERS,
            port: peer_port,
        },
    }];
    for (what, pattern) in [
        ("selective", "IMG_042_000"),
        ("no match", "zebra"),
        ("broad", ".mp3"),
    ] {
        kinds.push(Kind {
            name: format!("SEARCH {what} {pattern:?} ({} listed)", matches(pattern)),
            body: Body::Search {
                pattern: pattern.into(),
            },
            expect: Expect::Entries {
                n: matches(pattern),
                fields: 5,
            },
        });
    }

    let servers = [("index", &with), ("scan", &scan)];
    let mut failure: Option<BenchError> = None;
    let mut check = |what: &str, l: &Load| {
        if l.errors > 0 && failure.is_none() {
            failure = Some(BenchError::Protocol {
                system: "peerdex server".into(),
                mix: format!(
                    "{what} (first: {})",
                    l.first_error.as_deref().unwrap_or("?")
                ),
                errors: l.errors,
            });
        }
    };
    // p50 per kind and server, medians over rounds, servers alternated.
    let mut p50 = vec![[Vec::new(), Vec::new()]; kinds.len()];
    for (k, kind) in kinds.iter().enumerate() {
        let make = |t: usize, _n: u64| {
            vec![(
                request(listed_user(t % LISTED_USERS), kind.body.clone()),
                kind.expect,
            )]
        };
        for (_, s) in servers {
            load(s.addr, plan.warmup_seconds, make);
        }
        for _ in 0..plan.rounds {
            for (i, (name, s)) in servers.iter().enumerate() {
                let l = load(s.addr, plan.seconds, make);
                check(&format!("{} on {name}", kind.name), &l);
                p50[k][i].push(l.p50 as f64);
            }
        }
    }
    let p50: Vec<[f64; 2]> = p50
        .into_iter()
        .map(|[a, b]| [median(a), median(b)])
        .collect();

    // PUBLISH+DELETE throughput, each client on its own connected user.
    let mut ops = [Vec::new(), Vec::new()];
    for round in 0..=plan.rounds {
        for (i, (name, s)) in servers.iter().enumerate() {
            let make = |t: usize, n: u64| {
                let user = listed_user(t % LISTED_USERS);
                let file = format!("pd-{round}-{t}-{n}.bin");
                vec![
                    (
                        request(
                            user.clone(),
                            Body::Publish {
                                file: file.clone(),
                                description: "benchmark file".into(),
                            },
                        ),
                        Expect::Ok,
                    ),
                    (request(user, Body::Delete { file }), Expect::Ok),
                ]
            };
            let seconds = if round == 0 {
                plan.warmup_seconds
            } else {
                plan.seconds
            };
            let l = load(s.addr, seconds, make);
            check(&format!("PUBLISH+DELETE on {name}"), &l);
            if round > 0 {
                ops[i].push(l.ops_per_sec);
            }
        }
    }
    let [ops_with, ops_scan] = ops.map(median);

    // DISCONNECT+CONNECT of the last connected user (its files leave the index and
    // come back), one at a time.
    let mut reconnect = [Vec::new(), Vec::new()];
    let user = listed_user(LISTED_USERS - 1);
    let mut buf = Vec::new();
    for _ in 0..if plan.smoke { 1 } else { RECONNECTS } {
        for (i, (name, s)) in servers.iter().enumerate() {
            let t0 = Instant::now();
            for body in [Body::Disconnect, Body::Connect { port: peer_port }] {
                if let Err(e) = one_op(s.addr, &request(user.clone(), body), Expect::Ok, &mut buf) {
                    return Err(err(format!("DISCONNECT+CONNECT on {name}: {e}")));
                }
            }
            reconnect[i].push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [reconnect_with, reconnect_scan] = reconnect.map(median);

    println!("## Search\n");
    println!(
        "registry of {users} users and {publications} publications ({} connected users with {files} files each, the others disconnected with {OTHER_FILES}; journal of {} MB); server with its index against the same server with `--search-scan` (the linear scan, same cap of {CAP}), both started on copies of the journal; {CLIENTS} clients, one connection per request, {} round(s) after a warm-up, servers alternated; medians.\n",
        LISTED_USERS,
        journal_bytes / 1_000_000,
        plan.rounds
    );
    let list_users = p50[0][0].max(1.0);
    let mut t = Table::new(&[
        "request",
        "p50 µs (index)",
        "p50 µs (scan)",
        "vs LIST_USERS",
        "scan / index",
        "target",
    ]);
    for (k, kind) in kinds.iter().enumerate() {
        let [w, s] = p50[k];
        let first = k == 0;
        t.row(vec![
            kind.name.clone(),
            format!("{w:.0}"),
            format!("{s:.0}"),
            if first {
                "1.00".into()
            } else {
                format!("{:.2}", w / list_users)
            },
            format!("{:.1}", s / w.max(1.0)),
            if first {
                "-".into()
            } else {
                format!(
                    "{} (<= {TARGET_VS_LIST_USERS}x LIST_USERS), {} (scan >= {TARGET_VS_SCAN}x)",
                    verdict(w / list_users <= TARGET_VS_LIST_USERS),
                    verdict(s / w.max(1.0) >= TARGET_VS_SCAN)
                )
            },
        ]);
    }
    t.print();
    let index_kib = rss_with.saturating_sub(rss_scan);
    let registry_kib = rss_scan.saturating_sub(rss_empty);
    let mut m = Table::new(&["measure", "index", "scan", "target"]);
    m.row(vec![
        "start on the journal (spawn to listening)".into(),
        format!("{:.2} s", with.started.as_secs_f64()),
        format!("{:.2} s", scan.started.as_secs_f64()),
        verdict(with.started.as_secs_f64() < TARGET_START_S),
    ]);
    m.row(vec![
        format!(
            "server RSS after start (empty server: {} MiB)",
            rss_empty / 1024
        ),
        format!("{} MiB", rss_with / 1024),
        format!("{} MiB", rss_scan / 1024),
        "-".into(),
    ]);
    m.row(vec![
        "index memory (RSS index - scan) vs the registry's own (RSS scan - empty)".into(),
        format!("{} MiB", index_kib / 1024),
        format!("{} MiB", registry_kib / 1024),
        format!(
            "{:.2}x: {}",
            index_kib as f64 / registry_kib.max(1) as f64,
            verdict(index_kib < registry_kib)
        ),
    ]);
    m.row(vec![
        format!("PUBLISH+DELETE ops/s ({CLIENTS} clients)"),
        format!("{ops_with:.0}"),
        format!("{ops_scan:.0}"),
        format!(
            "{:.2}: {}",
            ops_with / ops_scan.max(1.0),
            verdict(ops_with >= TARGET_THROUGHPUT * ops_scan)
        ),
    ]);
    m.row(vec![
        format!("DISCONNECT+CONNECT of a user with {files} files, ms"),
        format!("{reconnect_with:.1}"),
        format!("{reconnect_scan:.1}"),
        "-".into(),
    ]);
    m.print();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
