//! `peerdex bench`: the project's load generator and its baselines.
//!
//! Owns: starting the measured systems as child processes on free loopback ports, the
//! operation mixes, the load loop (one TCP connection per operation, whole replies
//! parsed and checked), the ceiling server, and the markdown report. Measurements
//! alternate the systems (A B A B ...) after a warm-up and report medians and ratios
//! against the ceiling measured in the same run, because absolute numbers on shared
//! machines drift. Does not own: anything the server does (it only talks to it over
//! sockets).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::index::{self, Body, Request};
use crate::net;
use crate::wire::{Field, FieldReader};

/// Command-line options of `peerdex bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Measured rounds per system (after one warm-up round).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// A few seconds in all: checks that the benchmark runs without protocol errors.
    #[arg(long)]
    pub smoke: bool,
    /// Internal: run the ceiling server on this port and print its address.
    #[arg(long, hide = true, value_name = "PORT")]
    pub serve_ceiling: Option<u16>,
}

/// Why a benchmark could not produce a result.
#[derive(Debug)]
pub enum BenchError {
    Io(io::Error),
    /// A child process did not start or did not report its address.
    Start(String),
    /// Wrong or missing answers: the run is not a result.
    Protocol {
        system: String,
        mix: String,
        errors: u64,
    },
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Io(e) => write!(f, "io: {e}"),
            BenchError::Start(what) => write!(f, "start: {what}"),
            BenchError::Protocol {
                system,
                mix,
                errors,
            } => {
                write!(
                    f,
                    "protocol: {errors} wrong or missing answers from {system} in {mix}"
                )
            }
        }
    }
}

impl std::error::Error for BenchError {}

impl From<io::Error> for BenchError {
    fn from(e: io::Error) -> Self {
        BenchError::Io(e)
    }
}

/// Connected users set up for LIST_USERS.
const LISTED_USERS: usize = 100;

/// One measured system.
struct System {
    name: &'static str,
    addr: SocketAddr,
    /// Entries a LIST_USERS reply must carry (the ceiling answers an empty list).
    listed: u64,
    child: Child,
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `peerdex <args>` and reads the listening port from the first stdout line
/// that contains `marker`; stdout is drained afterwards so the child never blocks.
fn spawn(
    name: &'static str,
    args: &[&str],
    marker: &str,
    listed: u64,
) -> Result<System, BenchError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Start(name.into()))?;
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let port = loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Err(BenchError::Start(format!("{name} exited before listening")));
        }
        if let Some(rest) = line.trim().strip_prefix(marker) {
            let port = rest.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            break port.ok_or_else(|| BenchError::Start(format!("{name}: bad line {line:?}")))?;
        }
    };
    thread::spawn(move || {
        let mut sink = [0u8; 64 * 1024];
        while matches!(lines.read(&mut sink), Ok(n) if n > 0) {}
    });
    Ok(System {
        name,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        listed,
        child,
    })
}

/// The operation mixes.
#[derive(Clone, Copy, Debug)]
enum Mix {
    Register,
    ListUsers,
}

impl Mix {
    fn name(self) -> &'static str {
        match self {
            Mix::Register => "REGISTER",
            Mix::ListUsers => "LIST_USERS (100 connected)",
        }
    }

    fn request(self, tag: &str, thread: usize, n: u64) -> Request {
        match self {
            Mix::Register => Request {
                datetime: Some("22/11/2026 09:05:07".into()),
                user: format!("{tag}-{thread}-{n}"),
                body: Body::Register,
            },
            Mix::ListUsers => Request {
                datetime: Some("22/11/2026 09:05:07".into()),
                user: format!("bench-user-{}", thread % LISTED_USERS),
                body: Body::ListUsers,
            },
        }
    }
}

/// One operation: connect, send, read the reply to the end, check it.
fn one_op(addr: SocketAddr, request: &[u8], mix: Mix, listed: u64) -> Result<(), String> {
    let mut stream = net::connect(addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut reader = FieldReader::new(&mut stream);
    let code = reader.read_u8(Field::Code).map_err(|e| e.to_string())?;
    if code != index::OK {
        return Err(format!("code {code}"));
    }
    if let Mix::ListUsers = mix {
        let users = index::read_user_list(&mut reader).map_err(|e| e.to_string())?;
        if users.len() as u64 != listed {
            return Err(format!("{} users listed, expected {listed}", users.len()));
        }
    }
    // The reply must end here: the server closes the connection.
    if !reader.buffered().is_empty() {
        return Err("bytes after the reply".into());
    }
    let mut rest = [0u8; 1];
    match stream.read(&mut rest) {
        Ok(0) => Ok(()),
        Ok(_) => Err("bytes after the reply".into()),
        Err(e) => Err(format!("no close after the reply: {e}")),
    }
}

/// The result of one measurement.
struct Sample {
    ops_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

fn measure(system: &System, mix: Mix, clients: usize, seconds: f64, tag: &str) -> Sample {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let addr = system.addr;
    let listed = system.listed;
    let tag: Arc<str> = Arc::from(tag);
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|t| {
            let tag = Arc::clone(&tag);
            thread::spawn(move || {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let req = mix.request(&tag, t, n).encode();
                    n += 1;
                    let t0 = Instant::now();
                    let ok = one_op(addr, &req, mix, listed);
                    latencies.push(t0.elapsed().as_micros() as u64);
                    if let Err(e) = ok {
                        if errors == 0 {
                            log::warn!("bench: {e}");
                        }
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, e) = w.join().unwrap_or_default();
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Sample {
        ops_per_sec: (all.len() as u64 - errors) as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        errors,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Registers and connects the users that LIST_USERS returns.
fn prepare_list_users(addr: SocketAddr) -> Result<(), BenchError> {
    for i in 0..LISTED_USERS {
        let user = format!("bench-user-{i}");
        for body in [
            Body::Register,
            Body::Connect {
                port: 10_000 + i as u16,
            },
        ] {
            let req = Request {
                datetime: None,
                user: user.clone(),
                body,
            };
            let mut s = net::connect(addr, Duration::from_secs(5))?;
            s.write_all(&req.encode())?;
            let mut code = [0u8; 1];
            s.read_exact(&mut code)?;
        }
    }
    Ok(())
}

/// Runs `peerdex bench`.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    if let Some(port) = args.serve_ceiling {
        return serve_ceiling(port);
    }
    let (seconds, rounds, clients) = if args.smoke {
        (0.3, 1, vec![4])
    } else {
        (args.seconds, args.rounds.max(1), args.clients.clone())
    };
    let peerdex = spawn(
        "peerdex",
        &[
            "server",
            "-p",
            "0",
            "--bind",
            "127.0.0.1",
            "--no-logger",
            "--ephemeral",
            "--probe-interval",
            "0",
        ],
        "s> init server",
        LISTED_USERS as u64,
    )?;
    let ceiling = spawn(
        "ceiling",
        &["bench", "--serve-ceiling", "0"],
        "ceiling listening on",
        0,
    )?;
    prepare_list_users(peerdex.addr)?;
    let systems = [&peerdex, &ceiling];

    println!("## peerdex bench: index operations\n");
    println!(
        "machine: {} cores, kernel {}; {seconds} s per measurement, {rounds} rounds, A B alternated after a warm-up\n",
        cores(),
        kernel()
    );
    println!("| mix | clients | system | ops/s (median) | p50 µs | p99 µs | ratio to ceiling |");
    println!("|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for mix in [Mix::Register, Mix::ListUsers] {
        for &c in &clients {
            // Warm-up: one short pass on each system, not recorded.
            for (i, s) in systems.iter().enumerate() {
                measure(s, mix, c, (seconds / 3.0).min(1.0), &format!("warm{c}{i}"));
            }
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(), Vec::new()];
            for round in 0..rounds {
                for (i, s) in systems.iter().enumerate() {
                    samples[i].push(measure(s, mix, c, seconds, &format!("r{round}c{c}s{i}")));
                }
            }
            let ceiling_ops = median(samples[1].iter().map(|s| s.ops_per_sec).collect());
            for (i, s) in systems.iter().enumerate() {
                let errors: u64 = samples[i].iter().map(|x| x.errors).sum();
                if errors > 0 {
                    failures.push(BenchError::Protocol {
                        system: s.name.into(),
                        mix: mix.name().into(),
                        errors,
                    });
                }
                let ops = median(samples[i].iter().map(|x| x.ops_per_sec).collect());
                let p50 = median(samples[i].iter().map(|x| x.p50_us as f64).collect());
                let p99 = median(samples[i].iter().map(|x| x.p99_us as f64).collect());
                let ratio = if ceiling_ops > 0.0 {
                    ops / ceiling_ops
                } else {
                    0.0
                };
                let errs = if errors > 0 {
                    format!(" ({errors} ERRORS)")
                } else {
                    String::new()
                };
                println!(
                    "| {} | {c} | {} | {ops:.0}{errs} | {p50:.0} | {p99:.0} | {ratio:.2} |",
                    mix.name(),
                    s.name
                );
            }
        }
    }
    match failures.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn cores() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The ceiling: a thread per connection that reads exactly the request's fields,
/// answers 0 (an empty list for the list operations) and closes. No state, no
/// console, no audit, no connection cap.
fn serve_ceiling(port: u16) -> Result<(), BenchError> {
    let listener = net::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    println!("ceiling listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    serve_ceiling_on(listener);
    Ok(())
}

fn serve_ceiling_on(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = thread::Builder::new()
            .stack_size(net::CONNECTION_STACK)
            .spawn(move || ceiling_reply(stream));
    }
}

fn ceiling_reply(stream: TcpStream) {
    let _ = net::set_timeouts(&stream, Duration::from_secs(10));
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
