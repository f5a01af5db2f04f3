//! Index section of `peerdex bench`: ops/s and p50/p99 latency of the index
//! operations against three systems, and the ceiling server they are compared with.
//!
//! Systems: (a) `peerdex server` as `make run` deploys it (journal in a temp
//! `--data-dir`, audit records shipped to a real `peerdex logger` child, spool in a
//! temp dir, console on, default probe interval); (b) `peerdex server --ephemeral
//! --no-logger`; (c) the ceiling, a `peerdex bench --serve-ceiling` child: a thread
//! per connection that reads exactly the request's fields, answers 0 (an empty list
//! for the list operations) and closes. Its threads start the way peerdex starts
//! them (`net::spawn_connection_thread`), so it is the cheapest thread per
//! connection this code base knows; (d), the same ceiling on `std::thread`, is shown
//! for reference only (what that thread start costs).
//!
//! Mixes (one TCP connection per operation, every reply parsed whole, any wrong or
//! missing answer counted as an error, and a run with errors is not a result):
//! - REGISTER: a new user name per operation.
//! - CONNECT+PUBLISH: each client thread owns a user registered during setup; one
//!   iteration is CONNECT (to the bench's peer listener), PUBLISH of a new file name,
//!   DISCONNECT; each of the three is one counted operation with its own latency.
//! - LIST_USERS: 100 users connected (to the bench's peer listener), asked by one of
//!   them; the reply must list exactly those 100 at that port.
//! - LIST_CONTENT: each of those 100 users published 10 files; one asks for the
//!   content of another; the reply must list exactly those 10.
//!
//! Connected users give the port of one listener in the bench that accepts and closes,
//! so that the server's liveness prober finds them alive and does not drop them.
//!
//! Does not own: the servers (children, talked to over sockets only).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::report::{Table, verdict};
use super::{
    BenchError, Peerdex, Plan, arg, median, peerdex_exe, percentile, spawn, spawn_exe,
    spawn_server, spawn_server_from,
};
use peerdex::internals as net;
use peerdex::internals::index::{self, Body, Request};
use peerdex::internals::{FieldReader, MAX_FIELD};
use std::path::Path;

/// Connected users that LIST_USERS returns (the figure).
pub const LISTED_USERS: usize = 100;
/// Files each of them published, which LIST_CONTENT returns (the figure).
pub const FILES_EACH: usize = 10;
/// Client threads the setup prepares a CONNECT+PUBLISH user for (the largest
/// client count; more threads share users and would collide, so it is the cap).
pub const MAX_CLIENTS: usize = 256;
/// Connect, read and write timeout of one benchmark operation: generous, a loaded
/// 2-core machine with 64 clients answers in milliseconds.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// The DATETIME every benchmark request carries.
const DATETIME: &str = "22/11/2026 09:05:07";
/// Ops/s ratio to the ceiling that system (a) must reach at 16 and 64 clients.
const TARGET_DEPLOYED: f64 = 0.8;
/// Ops/s ratio to the ceiling that system (b) must reach at 16 and 64 clients.
const TARGET_EPHEMERAL: f64 = 0.9;
/// The p99 latency may be at most this multiple of the ceiling's.
const TARGET_P99: f64 = 2.0;

/// Unique tags for user and file names across every measurement of a run.
static RUN: AtomicU64 = AtomicU64::new(0);

/// One measured system.
pub struct System {
    pub name: &'static str,
    /// The processes that serve it (the server, and its logger for (a)).
    pub pids: Vec<u32>,
    pub addr: SocketAddr,
    /// Whether list replies carry the prepared entries (the ceiling's are empty).
    pub lists: bool,
    _server: Peerdex,
    _logger: Option<Peerdex>,
    _dir: Option<tempfile::TempDir>,
}

/// A listener that accepts and closes every connection: the "peer" the benchmark's
/// connected users point at, alive for the liveness prober. Lives as long as the run.
pub fn peer_listener() -> Result<u16, BenchError> {
    let listener = net::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = listener.local_addr()?.port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    Ok(port)
}

/// (a): the server as `make run` deploys it, with its logger.
pub fn start_deployed(event_clients: usize) -> Result<System, BenchError> {
    let dir = tempfile::tempdir()?;
    let audit = arg(&dir.path().join("audit.jsonl"));
    let logger = spawn(
        "peerdex logger",
        &[
            "logger",
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--no-portmap",
            "--audit",
            &audit,
        ],
        "l> init logger",
    )?;
    let target = logger.addr.to_string();
    let data = arg(&dir.path().join("data"));
    let spool = arg(&dir.path().join("spool"));
    let http = dashboard_args(event_clients)?;
    let mut extra = vec!["--data-dir", &data, "--logger", &target, "--spool", &spool];
    extra.extend(http.iter().map(String::as_str));
    let server = spawn_server("peerdex server (deployed)", &extra)?;
    open_event_readers(&http, event_clients)?;
    Ok(System {
        name: "(a) peerdex deployed",
        pids: vec![server.child.id(), logger.child.id()],
        addr: server.addr,
        lists: true,
        _server: server,
        _logger: Some(logger),
        _dir: Some(dir),
    })
}

/// (b): the ephemeral server without audit shipping; from `exe` when given (named
/// `name`), else from this binary.
pub fn start_ephemeral(
    exe: Option<&Path>,
    name: &'static str,
    event_clients: usize,
) -> Result<System, BenchError> {
    let this = peerdex_exe();
    let http = dashboard_args(event_clients)?;
    let mut extra = vec!["--ephemeral", "--no-logger"];
    extra.extend(http.iter().map(String::as_str));
    let server = spawn_server_from(exe.unwrap_or(&this), "peerdex server --ephemeral", &extra)?;
    open_event_readers(&http, event_clients)?;
    Ok(System {
        name,
        pids: vec![server.child.id()],
        addr: server.addr,
        lists: true,
        _server: server,
        _logger: None,
        _dir: None,
    })
}

/// The dashboard options for a server with `event_clients` event-stream clients
/// (none when 0): a free loopback port.
fn dashboard_args(event_clients: usize) -> Result<Vec<String>, BenchError> {
    if event_clients == 0 {
        return Ok(Vec::new());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(vec![
        "--http".into(),
        port.to_string(),
        "--http-bind".into(),
        "127.0.0.1".into(),
    ])
}

/// Opens `n` clients of the dashboard started with `http` ([`dashboard_args`]), each
/// reading `/api/events` as fast as it comes (like `curl -N`) until the server goes.
fn open_event_readers(http: &[String], n: usize) -> Result<(), BenchError> {
    let Some(port) = http.get(1) else {
        return Ok(());
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|_| BenchError::Start("dashboard address".into()))?;
    for _ in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.write_all(b"GET /api/events HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    Ok(())
}

/// (c): the ceiling; with `std_threads`, (d): the same ceiling starting its
/// threads with `std::thread` (what a plain Rust thread-per-connection server
/// pays), shown for reference.
pub fn start_ceiling(std_threads: bool) -> Result<System, BenchError> {
    let mut args = vec!["--serve-ceiling", "0"];
    if std_threads {
        args.push("--ceiling-std-threads");
    }
    let server = spawn_exe(
        &std::env::current_exe()?,
        "ceiling",
        &args,
        "ceiling listening on",
    )?;
    Ok(System {
        name: if std_threads {
            "(d) ceiling on std::thread (reference)"
        } else {
            "(c) ceiling"
        },
        pids: vec![server.child.id()],
        addr: server.addr,
        lists: false,
        _server: server,
        _logger: None,
        _dir: None,
    })
}

/// The operation mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    Register,
    ConnectPublish,
    ListUsers,
    ListContent,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Register => "REGISTER",
            Mix::ConnectPublish => "CONNECT+PUBLISH+DISCONNECT",
            Mix::ListUsers => "LIST_USERS (100 connected)",
            Mix::ListContent => "LIST_CONTENT (10 files)",
        }
    }
}

pub fn request(user: String, body: Body) -> Vec<u8> {
    Request {
        datetime: Some(DATETIME.into()),
        user,
        body,
    }
    .encode()
}

/// Name of the LIST_USERS / LIST_CONTENT user `i`.
pub fn listed_user(i: usize) -> String {
    format!("lu-{i}")
}

/// Name of file `j` of a listed user.
fn listed_file(j: usize) -> String {
    format!("shared-{j}.txt")
}

/// Name of the CONNECT+PUBLISH user of client thread `t`.
fn cp_user(t: usize) -> String {
    format!("cp-{t}")
}

/// What a reply must contain.
#[derive(Clone, Copy)]
pub enum Expect {
    /// Code 0 and nothing more.
    Ok,
    /// Code 0 and exactly these many users, all at `port`.
    Users { n: usize, port: u16 },
    /// Code 0 and exactly these many files, named `listed_file(0..n)`.
    Files { n: usize },
    /// Code 0 and a count of exactly `n` entries of `fields` fields each (SEARCH: 5).
    Entries { n: usize, fields: usize },
}

/// The longest reply the load generator accepts (100 users or 10 files are a few
/// KiB).
const MAX_REPLY: usize = 1 << 20;

/// One operation: connect, send, read the whole reply up to the server's close, and
/// check it field by field. `buf` is the calling thread's reply buffer, reused so the
/// load generator spends its (shared) CPU on the protocol, not on allocation.
pub fn one_op(
    addr: SocketAddr,
    request: &[u8],
    expect: Expect,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let mut stream = net::connect(addr, OP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("send: {e}"))?;
    buf.clear();
    // Until end of stream: the server must close after the reply.
    (&mut stream)
        .take(MAX_REPLY as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| format!("reply (or no close after it): {e}"))?;
    if buf.len() > MAX_REPLY {
        return Err(format!("reply longer than {MAX_REPLY} bytes"));
    }
    check_reply(buf, expect)
}

/// Checks a whole reply against `expect`: result code 0, then exactly the expected
/// NUL-terminated fields and nothing after them.
pub fn check_reply(reply: &[u8], expect: Expect) -> Result<(), String> {
    let Some((&code, rest)) = reply.split_first() else {
        return Err("closed without a reply".into());
    };
    if code != index::OK {
        return Err(format!("result code {code}"));
    }
    let mut fields = Fields(rest);
    match expect {
        Expect::Ok => {}
        Expect::Users { n, port } => {
            fields.count(n)?;
            for _ in 0..n {
                let user = fields.next("user")?;
                if user.is_empty() {
                    return Err("empty user name".into());
                }
                let ip = fields.next("address")?;
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| format!("{user} listed at address {ip:?}"))?;
                let listed = fields.next("port")?;
                if listed.parse::<u16>() != Ok(port) {
                    return Err(format!("{user} listed at port {listed}, expected {port}"));
                }
            }
        }
        Expect::Files { n } => {
            fields.count(n)?;
            for j in 0..n {
                let file = fields.next("file")?;
                let number = file
                    .strip_prefix("shared-")
                    .and_then(|f| f.strip_suffix(".txt"));
                if number.and_then(|k| k.parse::<usize>().ok()) != Some(j) {
                    return Err(format!("file {j} is {file:?}"));
                }
                fields.next("description")?;
            }
        }
        Expect::Entries { n, fields: each } => {
            fields.count(n)?;
            for _ in 0..n * each {
                fields.next("entry field")?;
            }
        }
    }
    if !fields.0.is_empty() {
        return Err("bytes after the reply".into());
    }
    Ok(())
}

/// The NUL-terminated UTF-8 fields of a reply, read in place.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("reply ends inside the {what} field"))?;
        if end > MAX_FIELD {
            return Err(format!("{what} field longer than {MAX_FIELD} bytes"));
        }
        let field =
            std::str::from_utf8(&self.0[..end]).map_err(|_| format!("{what} is not UTF-8"))?;
        self.0 = &self.0[end + 1..];
        Ok(field)
    }

    /// The list count, which must be `n`.
    fn count(&mut self, n: usize) -> Result<(), String> {
        let count = self.next("count")?;
        match count.parse::<usize>() {
            Ok(c) if c == n => Ok(()),
            _ => Err(format!("{count} entries listed, expected {n}")),
        }
    }
}

/// Prepares a peerdex system: the CONNECT+PUBLISH users, and the listed users,
/// connected at `peer_port`, with their files.
pub fn prepare(addr: SocketAddr, peer_port: u16, cp_users: usize) -> Result<(), BenchError> {
    let mut reqs = Vec::new();
    for t in 0..cp_users {
        reqs.push(request(cp_user(t), Body::Register));
    }
    for i in 0..LISTED_USERS {
        let user = listed_user(i);
        reqs.push(request(user.clone(), Body::Register));
        reqs.push(request(user.clone(), Body::Connect { port: peer_port }));
        for j in 0..FILES_EACH {
            reqs.push(request(
                user.clone(),
                Body::Publish {
                    file: listed_file(j),
                    description: format!("file {j} of {user}"),
                },
            ));
        }
    }
    let mut buf = Vec::new();
    for r in reqs {
        one_op(addr, &r, Expect::Ok, &mut buf).map_err(|e| BenchError::Section {
            section: "index setup",
            what: e,
        })?;
    }
    Ok(())
}

/// The result of one measurement.
pub struct Sample {
    pub ops_per_sec: f64,
    /// Successful operations.
    pub ops: u64,
    /// CPU time the serving processes spent per operation, in µs (0 when unknown).
    pub cpu_us_per_op: f64,
    /// CPU time this load generator spent per operation, in µs (0 when unknown).
    pub load_us_per_op: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// The requests of one iteration of `mix` by client thread `t`, with their expected
/// replies.
fn iteration(
    mix: Mix,
    run: u64,
    t: usize,
    n: u64,
    lists: bool,
    peer_port: u16,
) -> Vec<(Vec<u8>, Expect)> {
    match mix {
        Mix::Register => vec![(
            request(format!("r{run}-{t}-{n}"), Body::Register),
            Expect::Ok,
        )],
        Mix::ConnectPublish => {
            let user = cp_user(t);
            vec![
                (
                    request(user.clone(), Body::Connect { port: peer_port }),
                    Expect::Ok,
                ),
                (
                    request(
                        user.clone(),
                        Body::Publish {
                            file: format!("p{run}-{n}.bin"),
                            description: "benchmark file".into(),
                        },
                    ),
                    Expect::Ok,
                ),
                (request(user, Body::Disconnect), Expect::Ok),
            ]
        }
        Mix::ListUsers => {
            let expect = if lists {
                Expect::Users {
                    n: LISTED_USERS,
                    port: peer_port,
                }
            } else {
                Expect::Users { n: 0, port: 0 }
            };
            vec![(
                request(listed_user(t % LISTED_USERS), Body::ListUsers),
                expect,
            )]
        }
        Mix::ListContent => {
            let who = (t + n as usize) % LISTED_USERS;
            let target = listed_user((who + 1) % LISTED_USERS);
            let n = if lists { FILES_EACH } else { 0 };
            vec![(
                request(listed_user(who), Body::ListContent { target }),
                Expect::Files { n },
            )]
        }
    }
}

/// Runs `clients` threads doing `mix` against `system` for `seconds`.
pub fn measure(
    addr: SocketAddr,
    lists: bool,
    mix: Mix,
    clients: usize,
    seconds: f64,
    peer_port: u16,
) -> Sample {
    measure_on(&[addr], lists, mix, clients, seconds, peer_port)
}

/// [`measure`] against servers of one registry: client thread `t` talks to
/// `addrs[t % addrs.len()]`.
pub fn measure_on(
    addrs: &[SocketAddr],
    lists: bool,
    mix: Mix,
    clients: usize,
    seconds: f64,
    peer_port: u16,
) -> Sample {
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|t| {
            let addr = addrs[t % addrs.len()];
            thread::spawn(move || {
                let mut latencies = Vec::with_capacity(1 << 14);
                let mut errors = 0u64;
                let mut first_error = None;
                let mut n = 0u64;
                let mut buf = Vec::with_capacity(16 * 1024);
                while Instant::now() < deadline {
                    for (req, expect) in iteration(mix, run, t, n, lists, peer_port) {
                        let t0 = Instant::now();
                        let ok = one_op(addr, &req, expect, &mut buf);
                        latencies.push(t0.elapsed().as_micros() as u64);
                        if let Err(e) = ok {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                    n += 1;
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        match w.join() {
            Ok((lat, e, first)) => {
                all.extend(lat);
                errors += e;
                if first_error.is_none() {
                    first_error = first;
                }
            }
            Err(_) => {
                errors += 1;
                first_error.get_or_insert_with(|| "load thread panicked".into());
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let ops = (all.len() as u64).saturating_sub(errors);
    Sample {
        ops_per_sec: ops as f64 / elapsed,
        ops,
        cpu_us_per_op: 0.0,
        load_us_per_op: 0.0,
        p50_us: percentile(&all, 0.50),
        p99_us: percentile(&all, 0.99),
        errors,
        first_error,
    }
}

/// Medians over rounds of one system in one cell.
pub struct Cell {
    pub ops: f64,
    pub cpu: f64,
    pub load: f64,
    pub p50: f64,
    pub p99: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub fn summarize(samples: &[Sample]) -> Cell {
    Cell {
        ops: median(samples.iter().map(|s| s.ops_per_sec).collect()),
        cpu: median(samples.iter().map(|s| s.cpu_us_per_op).collect()),
        load: median(samples.iter().map(|s| s.load_us_per_op).collect()),
        p50: median(samples.iter().map(|s| s.p50_us as f64).collect()),
        p99: median(samples.iter().map(|s| s.p99_us as f64).collect()),
        errors: samples.iter().map(|s| s.errors).sum(),
        first_error: samples.iter().find_map(|s| s.first_error.clone()),
    }
}

/// Runs the index section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let peer_port = peer_listener()?;
    let max_clients = plan.clients.iter().copied().max().unwrap_or(1);
    if max_clients > MAX_CLIENTS {
        return Err(BenchError::Section {
            section: "index",
            what: format!("at most {MAX_CLIENTS} clients"),
        });
    }
    let mut systems = vec![
        start_deployed(plan.event_clients)?,
        start_ephemeral(
            None,
            "(b) peerdex --ephemeral --no-logger",
            plan.event_clients,
        )?,
    ];
    if let Some(other) = &plan.compare_bin {
        systems.push(start_ephemeral(
            Some(other),
            "(b') like (b), --compare-bin",
            0,
        )?);
    }
    systems.push(start_ceiling(false)?);
    let ceiling_at = systems.len() - 1;
    systems.push(start_ceiling(true)?);
    for s in &systems[..ceiling_at] {
        prepare(s.addr, peer_port, max_clients)?;
    }
    println!("## Index operations\n");
    println!(
        "{} s per measurement, {} round(s) per system after a warm-up, systems alternated (a b c d a b c d ...); medians over rounds; one TCP connection per operation; ratios against the ceiling of the same run; server CPU µs/op: user+system CPU time of the serving processes (for (a) the server and its logger) per operation, from /proc; load CPU µs/op: the same for this load generator, which shares the machine's cores. Targets at 16 and 64 clients: (a) ops/s >= {TARGET_DEPLOYED} of the ceiling and p99 <= {TARGET_P99}x; (b) ops/s >= {TARGET_EPHEMERAL}.\n",
        plan.seconds, plan.rounds
    );
    let mut table = Table::new(&[
        "mix",
        "clients",
        "system",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "ops/s vs ceiling",
        "p99 vs ceiling",
        "server CPU µs/op",
        "load CPU µs/op",
        "target",
    ]);
    let mut failure = None;
    for &mix in &plan.mixes {
        for &c in &plan.clients {
            for s in &systems {
                measure(s.addr, s.lists, mix, c, plan.warmup_seconds, peer_port);
            }
            let mut samples: Vec<Vec<Sample>> = systems.iter().map(|_| Vec::new()).collect();
            for _ in 0..plan.rounds {
                for (i, s) in systems.iter().enumerate() {
                    let me = [std::process::id()];
                    let (before, load_before) = (cpu_us(&s.pids), cpu_us(&me));
                    let mut sample = measure(s.addr, s.lists, mix, c, plan.seconds, peer_port);
                    let spent = cpu_us(&s.pids).saturating_sub(before);
                    let load = cpu_us(&me).saturating_sub(load_before);
                    sample.cpu_us_per_op = spent as f64 / sample.ops.max(1) as f64;
                    sample.load_us_per_op = load as f64 / sample.ops.max(1) as f64;
                    samples[i].push(sample);
                }
            }
            let cells: Vec<Cell> = samples.iter().map(|s| summarize(s)).collect();
            let ceiling = &cells[ceiling_at];
            for (i, (s, cell)) in systems.iter().zip(&cells).enumerate() {
                let ratio = cell.ops / ceiling.ops.max(1e-9);
                let p99_ratio = cell.p99 / ceiling.p99.max(1.0);
                let target = match (i, c >= 16) {
                    (0, true) => verdict(ratio >= TARGET_DEPLOYED && p99_ratio <= TARGET_P99),
                    (i, true) if i < ceiling_at => verdict(ratio >= TARGET_EPHEMERAL),
                    _ => "-".into(),
                };
                let ops = if cell.errors > 0 {
                    if failure.is_none() {
                        failure = Some(BenchError::Protocol {
                            system: s.name.into(),
                            mix: format!(
                                "{} at {c} clients (first: {})",
                                mix.name(),
                                cell.first_error.as_deref().unwrap_or("?")
                            ),
                            errors: cell.errors,
                        });
                    }
                    format!("{} ERRORS", cell.errors)
                } else {
                    format!("{:.0}", cell.ops)
                };
                table.row(vec![
                    mix.name().into(),
                    c.to_string(),
                    s.name.into(),
                    ops,
                    format!("{:.0}", cell.p50),
                    format!("{:.0}", cell.p99),
                    format!("{ratio:.2}"),
                    format!("{p99_ratio:.2}"),
                    format!("{:.0}", cell.cpu),
                    format!("{:.0}", cell.load),
                    target,
                ]);
            }
        }
    }
    table.print();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// User + system CPU time of `pids` so far, in µs (from /proc/PID/stat).
pub fn cpu_us(pids: &[u32]) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name (which may contain spaces): state is
            // field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks * 1_000_000 / hz)
        })
        .sum()
}

/// `peerdex bench --serve-ceiling PORT`: the ceiling server in its own process.
pub fn serve_ceiling(port: u16, std_threads: bool) -> Result<(), BenchError> {
    let listener = net::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("ceiling listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = if std_threads {
            thread::Builder::new()
                .stack_size(net::CONNECTION_STACK)
                .spawn(move || ceiling_reply(stream))
                .map(drop)
        } else {
            net::spawn_connection_thread(move || ceiling_reply(stream))
        };
    }
    Ok(())
}

/// Reads exactly the request's fields, answers 0 (an empty list for the list
/// operations) and closes.
fn ceiling_reply(stream: TcpStream) {
    let _ = net::set_timeouts(&stream, OP_TIMEOUT);
    let _ = stream.set_nodelay(true);
    let mut reader = FieldReader::new(&stream);
    let Ok(req) = index::read_request(&mut reader) else {
        return;
    };
    let reply: &[u8] = match req.body {
        Body::ListUsers | Body::ListContent { .. } | Body::Search { .. } => b"\x000\0",
        _ => b"\x00",
    };
    let _ = (&stream).write_all(reply);
}

/// The load generator's reply checks, against real replies as the registry encodes
/// them; run at the start of every `--smoke` run (a bench target has no test harness).
pub mod self_check {
    use super::*;
    use peerdex::internals::{Change, Registry};

    pub fn run() {
        whole_replies_pass();
        every_wrong_or_missing_answer_is_an_error();
        println!("self-check: the load generator accepts whole replies and rejects wrong ones\n");
    }

    /// A real LIST_USERS and LIST_CONTENT reply, as the registry encodes them.
    fn replies() -> (Vec<u8>, Vec<u8>) {
        let r = Registry::new();
        for i in 0..3 {
            let user = listed_user(i);
            r.apply(&Change::Register { user: user.clone() });
            r.apply(&Change::Connect {
                user: user.clone(),
                ip: "127.0.0.1".parse().unwrap(),
                port: 4000,
            });
            for j in 0..2 {
                r.apply(&Change::Publish {
                    user: user.clone(),
                    file: listed_file(j),
                    description: format!("file {j} of {user}"),
                });
            }
        }
        let (mut users, mut files) = (Vec::new(), Vec::new());
        r.list_users("lu-0", None, &mut users).unwrap();
        r.list_content("lu-0", "lu-1", None, &mut files).unwrap();
        (users, files)
    }

    fn whole_replies_pass() {
        let (users, files) = replies();
        check_reply(&users, Expect::Users { n: 3, port: 4000 }).unwrap();
        check_reply(&files, Expect::Files { n: 2 }).unwrap();
        check_reply(b"\x00", Expect::Ok).unwrap();
        check_reply(b"\x000\0", Expect::Users { n: 0, port: 0 }).unwrap();
    }

    fn every_wrong_or_missing_answer_is_an_error() {
        let (users, files) = replies();
        let users_ok = Expect::Users { n: 3, port: 4000 };
        let bad: Vec<(Vec<u8>, Expect)> = vec![
            (vec![], Expect::Ok),
            (b"\x01".to_vec(), Expect::Ok),
            (b"\x00\x00".to_vec(), Expect::Ok),
            (users[..users.len() - 1].to_vec(), users_ok),
            ([&users[..], b"x\0"].concat(), users_ok),
            (users.clone(), Expect::Users { n: 3, port: 4001 }),
            (users.clone(), Expect::Users { n: 2, port: 4000 }),
            (files.clone(), Expect::Files { n: 3 }),
            (files[..files.len() - 4].to_vec(), Expect::Files { n: 2 }),
        ];
        for (reply, expect) in bad {
            assert!(
                check_reply(&reply, expect).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
        let swapped = String::from_utf8(files)
            .unwrap()
            .replace("shared-0", "shared-9");
        assert!(check_reply(swapped.as_bytes(), Expect::Files { n: 2 }).is_err());
    }
}
