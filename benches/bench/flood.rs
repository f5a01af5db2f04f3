//! Flood section of `peerdex bench` (issue 26 items 1-2): how much of its REGISTER
//! rate the server keeps while readers flood it with the most expensive list
//! requests there are: 8 SEARCH clients whose pattern's trigrams match 100,000
//! names of connected users while the pattern matches none (every name is a
//! candidate to verify), 32 dashboard clients (`/api/users` of 40,000 users and
//! `/api/search` with that pattern, alternately), 64 LIST_CONTENT clients of a user
//! with 20,000 files. Each flood runs in threads of the bench from a little before
//! a REGISTER measurement to its end; measurements alone and flooded alternate,
//! medians over the rounds. The target: at least half the REGISTER rate kept.
//!
//! Owns: the flood loads and the table. Does not own: the REGISTER load loop
//! ([`super::index::measure`]) or the journal writer ([`super::scale`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::index::{self, Mix, Sample, listed_user, request, summarize};
use super::report::{Table, verdict};
use super::scale::write_users_journal;
use super::{BenchError, Peerdex, Plan, arg, median, spawn_server};
use peerdex::internals::index::Body;

/// Registered users, for `/api/users` (the 40,000).
const USERS: usize = 40_000;
/// The user listed by the LIST_CONTENT flood (`lu-0`) publishes this many files.
const BIG_FILES: usize = 20_000;
/// Each other connected user (`lu-1` to `lu-99`) publishes this many files whose
/// names have every trigram of [`PATTERN`] but not the pattern: about 100,000.
const DECOY_FILES: usize = 1_010;
/// The flood's SEARCH pattern: trigrams `abc` and `bcd`, in no name.
const PATTERN: &str = "abcd";
/// Smoke mode: a tiny registry.
const SMOKE_USERS: usize = 500;
const SMOKE_BIG_FILES: usize = 200;
const SMOKE_DECOY_FILES: usize = 20;
/// REGISTER clients of every measurement.
const CLIENTS: usize = 16;
/// The target: the share of the REGISTER rate kept under each flood.
const TARGET_KEPT: f64 = 0.5;
/// How long a flood request may take before its thread gives up on it.
const FLOOD_TIMEOUT: Duration = Duration::from_secs(30);

fn err(what: impl Into<String>) -> BenchError {
    BenchError::Section {
        section: "flood",
        what: what.into(),
    }
}

/// A kind of flood: how many threads, and what each asks in a loop.
#[derive(Debug, Clone, Copy)]
enum Flood {
    Search,
    Dashboard,
    ListContent,
}

impl Flood {
    const ALL: [Flood; 3] = [Flood::Search, Flood::Dashboard, Flood::ListContent];

    fn threads(self) -> usize {
        match self {
            Flood::Search => 8,
            Flood::Dashboard => 32,
            Flood::ListContent => 64,
        }
    }

    fn name(self) -> String {
        match self {
            Flood::Search => format!("8 SEARCH \"{PATTERN}\" (100k candidates, no match)"),
            Flood::Dashboard => "32 dashboard (/api/users of 40k users, /api/search)".into(),
            Flood::ListContent => "64 LIST_CONTENT (a user with 20,000 files)".into(),
        }
    }

    /// The bytes of request `n` of a flood thread.
    fn request(self, n: u64) -> Vec<u8> {
        match self {
            Flood::Search => request(
                listed_user(1),
                Body::Search {
                    pattern: PATTERN.into(),
                },
            ),
            Flood::Dashboard if n.is_multiple_of(2) => {
                b"GET /api/users HTTP/1.0\r\nHost: bench\r\n\r\n".to_vec()
            }
            Flood::Dashboard => {
                format!("GET /api/search?q={PATTERN} HTTP/1.0\r\nHost: bench\r\n\r\n").into_bytes()
            }
            Flood::ListContent => request(
                listed_user(1),
                Body::ListContent {
                    target: listed_user(0),
                },
            ),
        }
    }
}

/// Flood threads running until stopped; they count the requests answered.
struct Running {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    fn start(flood: Flood, index: SocketAddr, http: SocketAddr) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let addr = match flood {
            Flood::Dashboard => http,
            _ => index,
        };
        let threads = (0..flood.threads())
            .map(|_| {
                let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
                thread::spawn(move || {
                    let mut buf = Vec::with_capacity(1 << 20);
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if ask(addr, &flood.request(n), &mut buf) {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        Running {
            stop,
            answered,
            threads,
        }
    }

    /// Stops the threads; returns the requests answered.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.answered.load(Ordering::Relaxed)
    }
}

/// One flood request: sent, and its reply read to the server's close; whether a
/// reply came.
fn ask(addr: SocketAddr, req: &[u8], buf: &mut Vec<u8>) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, FLOOD_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(FLOOD_TIMEOUT));
    if s.write_all(req).is_err() {
        return false;
    }
    buf.clear();
    s.take(64 << 20).read_to_end(buf).is_ok() && !buf.is_empty()
}

/// Writes the section's registry (see the module doc) into `data`.
fn write_registry(data: &Path, smoke: bool, peer_port: u16) -> Result<u64, BenchError> {
    let (users, big, decoys) = if smoke {
        (SMOKE_USERS, SMOKE_BIG_FILES, SMOKE_DECOY_FILES)
    } else {
        (USERS, BIG_FILES, DECOY_FILES)
    };
    write_users_journal(data, users, peer_port, |u, _, listed| match (u, listed) {
        (0, _) => (0..big)
            .map(|j| {
                (
                    format!("big-{j:05}.dat"),
                    format!("file {j} of the big user"),
                )
            })
            .collect(),
        (_, true) => (0..decoys)
            .map(|j| (format!("abc_bcd_{u}_{j}.txt"), String::new()))
            .collect(),
        _ => Vec::new(),
    })
}

/// Runs the flood section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let peer_port = index::peer_listener()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    write_registry(&data, plan.smoke, peer_port)?;
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server: Peerdex = spawn_server(
        "peerdex server (flood)",
        &[
            "--no-logger",
            "--quiet",
            "--data-dir",
            &arg(&data),
            "--http",
            &http_port.to_string(),
        ],
    )?;
    let (addr, http) = (server.addr, SocketAddr::from(([127, 0, 0, 1], http_port)));
    let clients = if plan.smoke { 4 } else { CLIENTS };
    let measure = |seconds| index::measure(addr, true, Mix::Register, clients, seconds, peer_port);
    measure(plan.warmup_seconds);
    let mut rows = Vec::new();
    for flood in Flood::ALL {
        let (mut alone, mut flooded, mut rates) = (Vec::<Sample>::new(), Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            alone.push(measure(plan.seconds));
            let running = Running::start(flood, addr, http);
            // Let the flood reach its steady state before measuring.
            thread::sleep(Duration::from_secs_f64(plan.warmup_seconds));
            flooded.push(measure(plan.seconds));
            let answered = running.stop();
            rates.push(answered as f64 / (plan.seconds + plan.warmup_seconds));
        }
        let (a, f) = (summarize(&alone), summarize(&flooded));
        if a.errors + f.errors > 0 {
            return Err(BenchError::Protocol {
                system: "peerdex server (flood)".into(),
                mix: format!(
                    "REGISTER under {} (first: {})",
                    flood.name(),
                    a.first_error.or(f.first_error).as_deref().unwrap_or("?")
                ),
                errors: a.errors + f.errors,
            });
        }
        rows.push((flood, a.ops, f.ops, median(rates)));
    }
    drop(server);
    print_table(plan, clients, &rows);
    if rows.iter().any(|(_, _, _, rate)| *rate == 0.0) {
        return Err(err("a flood got no answer at all"));
    }
    Ok(())
}

fn print_table(plan: &Plan, clients: usize, rows: &[(Flood, f64, f64, f64)]) {
    println!("## Flood\n");
    println!(
        "REGISTER ops/s ({clients} clients) alone and while readers flood the server (issue 26 items 1-2); a registry of {} users, 100 connected, one with {} files, the others with {} files each that SEARCH \"{PATTERN}\" must verify; server with journal and dashboard on, logger off; {} round(s), alone and flooded alternated, medians.\n",
        if plan.smoke { SMOKE_USERS } else { USERS },
        if plan.smoke {
            SMOKE_BIG_FILES
        } else {
            BIG_FILES
        },
        if plan.smoke {
            SMOKE_DECOY_FILES
        } else {
            DECOY_FILES
        },
        plan.rounds
    );
    let mut t = Table::new(&[
        "flood",
        "REGISTER/s alone",
        "REGISTER/s flooded",
        "kept",
        "flood answers/s",
        "target",
    ]);
    for (flood, alone, flooded, rate) in rows {
        let kept = flooded / alone.max(1e-9);
        t.row(vec![
            flood.name(),
            format!("{alone:.0}"),
            format!("{flooded:.0}"),
            format!("{kept:.2}"),
            format!("{rate:.0}"),
            verdict(kept >= TARGET_KEPT),
        ]);
    }
    t.print();
}
