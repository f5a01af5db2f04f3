//! The project's benchmark (`make bench`, i.e. `cargo bench --bench bench`), every figure a ratio against a baseline
//! measured in the same run (absolute numbers on shared machines drift).
//!
//! Owns: the command line of `peerdex bench`, the order of the sections, starting
//! child processes (`peerdex` subcommands, compiled baselines) on free loopback ports,
//! and the helpers the sections share (medians, percentiles, machine description).
//! The sections live in their own modules: [`index`] (index operations against the
//! ceiling server), [`downloads`] (GET_FILE against sendfile), [`sources`] (FETCH
//! from 1, 2 and 4 rate-limited owners, against one), [`logger`] (LOG calls
//! against an rpcgen C server), [`scale`] (a registry of 100,000 users), [`search`]
//! (SEARCH over a million publications against a linear scan), [`flood`] (REGISTER
//! while readers flood the server, against REGISTER alone), [`shared`] (the registry
//! in Redis, one and two servers, against the embedded journal); [`report`]
//! prints the markdown tables. Does not own: anything the measured programs do (it
//! only talks to them over sockets, pipes and /proc).

mod downloads;
mod flood;
mod index;
mod logger;
mod report;
mod scale;
mod search;
mod shared;
mod sources;

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Command-line options of the benchmark (after `cargo bench --bench bench --`).
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "bench",
    about = "peerdex benchmark: every figure a ratio against a baseline in the same run"
)]
pub struct BenchArgs {
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
    /// Concurrent clients for the index section, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Seconds per index measurement.
    #[arg(long, default_value_t = 1.5)]
    pub seconds: f64,
    /// Measured rounds per system (after one warm-up round), at least 3 in a full run.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Index mixes to run, comma-separated.
    #[arg(
        long,
        default_value = "register,connect-publish,list-users,list-content",
        value_delimiter = ','
    )]
    pub mixes: Vec<index::Mix>,
    /// Sections to run, comma-separated (index, downloads, sources, logger, scale,
    /// search, flood, shared).
    #[arg(
        long,
        default_value = "index,downloads,sources,logger,scale,search,flood,shared",
        value_delimiter = ','
    )]
    pub sections: Vec<String>,
    /// A few seconds in all: a tiny version of every section, to check that the
    /// benchmark runs without protocol errors (no timing assertions).
    #[arg(long)]
    pub smoke: bool,
    /// Also measure system (b) started from this other peerdex binary (e.g. a build
    /// from before a change), in the same run.
    #[arg(long, value_name = "PATH")]
    pub compare_bin: Option<std::path::PathBuf>,
    /// Start systems (a) and (b) with the dashboard on and this many event-stream
    /// clients reading `/api/events` throughout (as `curl -N` would), to measure what
    /// the dashboard costs the index protocol.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub event_clients: usize,
    /// Internal: run the ceiling server on this port and print its address.
    #[arg(long, hide = true, value_name = "PORT")]
    pub serve_ceiling: Option<u16>,
    /// Internal: the ceiling starts its threads with std::thread.
    #[arg(long, hide = true, requires = "serve_ceiling")]
    pub ceiling_std_threads: bool,
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
    /// A section could not complete (a transfer failed, a baseline did not build).
    Section {
        section: &'static str,
        what: String,
    },
    /// An unknown section name on the command line.
    UnknownSection(String),
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
            } => write!(
                f,
                "protocol: {errors} wrong or missing answers from {system} in {mix}"
            ),
            BenchError::Section { section, what } => write!(f, "{section}: {what}"),
            BenchError::UnknownSection(s) => {
                write!(f, "unknown section {s:?} (known: {})", SECTIONS.join(", "))
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

/// The sections, in the order they run.
const SECTIONS: [&str; 8] = [
    "index",
    "downloads",
    "sources",
    "logger",
    "scale",
    "search",
    "flood",
    "shared",
];

/// Fewest measured rounds a full run accepts (the issue asks for at least 3).
const MIN_ROUNDS: usize = 3;

/// How the sections size themselves.
#[derive(Debug, Clone)]
pub struct Plan {
    pub smoke: bool,
    pub clients: Vec<usize>,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub rounds: usize,
    pub compare_bin: Option<std::path::PathBuf>,
    pub mixes: Vec<index::Mix>,
    /// Event-stream clients kept open on systems (a) and (b).
    pub event_clients: usize,
}

fn main() -> std::process::ExitCode {
    let args = <BenchArgs as clap::Parser>::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The `peerdex` binary under measurement (built by cargo with this target).
pub fn peerdex_exe() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_peerdex"))
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> Result<(), BenchError> {
    if let Some(port) = args.serve_ceiling {
        return index::serve_ceiling(port, args.ceiling_std_threads);
    }
    for s in &args.sections {
        if !SECTIONS.contains(&s.as_str()) {
            return Err(BenchError::UnknownSection(s.clone()));
        }
    }
    if args.smoke {
        index::self_check::run();
        report::judge_no_targets();
    }
    let plan = if args.smoke {
        Plan {
            smoke: true,
            clients: vec![4],
            seconds: 0.2,
            warmup_seconds: 0.05,
            rounds: 1,
            compare_bin: args.compare_bin.clone(),
            mixes: args.mixes.clone(),
            event_clients: args.event_clients,
        }
    } else {
        Plan {
            smoke: false,
            clients: args.clients.clone(),
            seconds: args.seconds,
            warmup_seconds: (args.seconds / 3.0).min(0.5),
            rounds: args.rounds.max(MIN_ROUNDS),
            compare_bin: args.compare_bin.clone(),
            mixes: args.mixes.clone(),
            event_clients: args.event_clients,
        }
    };
    let started = Instant::now();
    println!(
        "# peerdex benchmark{}\n",
        if plan.smoke { " --smoke" } else { "" }
    );
    println!("machine: {}\n", machine());
    let wanted = |s: &str| args.sections.iter().any(|x| x == s);
    if wanted("index") {
        index::run(&plan)?;
    }
    if wanted("downloads") {
        downloads::run(&plan)?;
    }
    if wanted("sources") {
        sources::run(&plan)?;
    }
    if wanted("logger") {
        logger::run(&plan)?;
    }
    if wanted("scale") {
        scale::run(&plan)?;
    }
    if wanted("search") {
        search::run(&plan)?;
    }
    if wanted("flood") {
        flood::run(&plan)?;
    }
    if wanted("shared") {
        shared::run(&plan)?;
    }
    println!(
        "whole benchmark: {:.0} s",
        started.elapsed().as_secs_f64().ceil()
    );
    Ok(())
}

/// Cores, kernel and CPU model of this machine.
pub fn machine() -> String {
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores ({cpu}), Linux {kernel}")
}

/// The median of `v` (0 for an empty vector).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `p` quantile (0..1) of sorted values (0 for none).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(0)
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM), 0 when unreadable.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// How long a child may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A `peerdex` child process, killed when dropped.
pub struct Peerdex {
    pub child: Child,
    pub addr: SocketAddr,
    /// Spawn to listening line.
    pub started: Duration,
}

impl Drop for Peerdex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `peerdex <args>` and reads the listening port from the first stdout line
/// that starts with `marker` (the token after it is `HOST:PORT`); stdout is drained
/// afterwards so the child never blocks on a full pipe.
pub fn spawn(name: &str, args: &[&str], marker: &str) -> Result<Peerdex, BenchError> {
    spawn_exe(&peerdex_exe(), name, args, marker)
}

/// Starts `peerdex server` on a free loopback port with `extra` options, and waits
/// for its init line.
pub fn spawn_server(name: &str, extra: &[&str]) -> Result<Peerdex, BenchError> {
    spawn_server_from(&peerdex_exe(), name, extra)
}

/// [`spawn_server`] from another binary.
pub fn spawn_server_from(exe: &Path, name: &str, extra: &[&str]) -> Result<Peerdex, BenchError> {
    let mut args = vec!["server", "-p", "0", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    spawn_exe(exe, name, &args, "s> init server")
}

/// [`spawn`] of another binary.
pub fn spawn_exe(
    exe: &Path,
    name: &str,
    args: &[&str],
    marker: &str,
) -> Result<Peerdex, BenchError> {
    let t0 = Instant::now();
    let mut command = Command::new(exe);
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            // The child goes with the bench, also when it is interrupted (Ctrl+C)
            // before it could kill its children.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Start(name.into()))?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let marker = marker.to_owned();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let port = loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
            if let Some(rest) = line.trim().strip_prefix(marker.as_str()) {
                break rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
            }
        };
        let _ = tx.send(port);
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(lines.read(&mut sink), Ok(n) if n > 0) {}
    });
    let port = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(port)) => port,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Start(format!(
                "{name} did not print its listening line"
            )));
        }
    };
    Ok(Peerdex {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        started: t0.elapsed(),
    })
}

/// A path as an argument (the bench only makes UTF-8 temp paths).
pub fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
