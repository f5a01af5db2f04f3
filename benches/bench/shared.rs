//! Shared-store section of `peerdex bench`: REGISTER and LIST_USERS with the registry
//! in Redis (`--store`), one and two servers, as ratios of the embedded journal in
//! the same run (issue 29).
//!
//! Systems: (e) `peerdex server --data-dir` (the embedded journal, no fsync, no
//! logger); (r1) one `peerdex server --store redis://...`; (r2) two of them on the
//! same Redis, client threads alternating between them. Redis is a redis-server
//! child on a free loopback port with its AOF on and `appendfsync everysec` (like
//! the journal without `--fsync`: a change survives either process being killed,
//! not a power loss). The mixes and the reply checks are the index section's; LIST_USERS
//! lists the same 100 connected users everywhere. Skipped (said so) when
//! redis-server is not installed.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::index::{self, Mix, Sample};
use super::report::Table;
use super::{BenchError, Peerdex, Plan, arg, spawn_server};

/// A redis-server child, killed when dropped.
struct RedisChild {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Result<Option<RedisChild>, BenchError> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--dir", &arg(dir.path()), "--save", ""])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let redis = RedisChild {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(BenchError::Start("redis-server did not listen".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(redis))
}

/// One measured system: its servers (one registry).
struct System {
    name: &'static str,
    servers: Vec<Peerdex>,
    _dir: Option<tempfile::TempDir>,
}

impl System {
    fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.child.id()).collect()
    }
}

fn start_systems(redis: &RedisChild) -> Result<Vec<System>, BenchError> {
    let dir = tempfile::tempdir()?;
    let data = arg(&dir.path().join("data"));
    let embedded = spawn_server(
        "peerdex server (journal)",
        &["--data-dir", &data, "--no-logger", "--quiet"],
    )?;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let opts = ["--store", &url, "--no-logger", "--quiet"];
    let one = spawn_server("peerdex server --store", &opts)?;
    let two = vec![
        spawn_server("peerdex server --store (1 of 2)", &opts)?,
        spawn_server("peerdex server --store (2 of 2)", &opts)?,
    ];
    Ok(vec![
        System {
            name: "(e) embedded journal",
            servers: vec![embedded],
            _dir: Some(dir),
        },
        System {
            name: "(r1) one server, --store redis",
            servers: vec![one],
            _dir: None,
        },
        System {
            name: "(r2) two servers, one redis",
            servers: two,
            _dir: None,
        },
    ])
}

/// Runs the section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    println!("## Several servers on one Redis (--store)\n");
    let Some(redis) = start_redis()? else {
        println!("skipped: redis-server is not installed (apt-get install redis-server)\n");
        return Ok(());
    };
    let peer_port = index::peer_listener()?;
    let clients = plan.clients.iter().copied().max().unwrap_or(1);
    let systems = start_systems(&redis)?;
    // (r1) and (r2) share one Redis: prepared once (through r1), read by all three.
    index::prepare(systems[0].addrs()[0], peer_port, clients)?;
    index::prepare(systems[1].addrs()[0], peer_port, 0)?;
    println!(
        "{} s per measurement, {} round(s) after a warm-up, systems alternated; medians; one TCP connection per operation; {clients} clients (with two servers, half on each); ratios against (e) of the same run; server CPU µs/op: the peerdex servers' (not Redis's), redis CPU µs/op: redis-server's. Target (issue 29): reads (LIST_USERS) at 0.9 or more of (e); writes as measured.\n",
        plan.seconds, plan.rounds
    );
    let mut table = Table::new(&[
        "mix",
        "system",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "ops/s vs (e)",
        "server CPU µs/op",
        "redis CPU µs/op",
    ]);
    let mut failure = None;
    for mix in [Mix::Register, Mix::ListUsers] {
        let cells = measure_mix(plan, &systems, &redis, mix, clients, peer_port);
        let base = cells[0].0.ops_per_sec.max(1e-9);
        for (s, (sample, redis_us)) in systems.iter().zip(&cells) {
            if sample.errors > 0 && failure.is_none() {
                failure = Some(BenchError::Protocol {
                    system: s.name.into(),
                    mix: format!(
                        "{} (first: {})",
                        mix.name(),
                        sample.first_error.as_deref().unwrap_or("?")
                    ),
                    errors: sample.errors,
                });
            }
            table.row(vec![
                mix.name().into(),
                s.name.into(),
                format!("{:.0}", sample.ops_per_sec),
                sample.p50_us.to_string(),
                sample.p99_us.to_string(),
                format!("{:.2}", sample.ops_per_sec / base),
                format!("{:.0}", sample.cpu_us_per_op),
                format!("{redis_us:.0}"),
            ]);
        }
    }
    table.print();
    failure.map_or(Ok(()), Err)
}

/// The median sample of each system over the rounds (by ops/s), with Redis's CPU
/// per operation.
fn measure_mix(
    plan: &Plan,
    systems: &[System],
    redis: &RedisChild,
    mix: Mix,
    clients: usize,
    peer_port: u16,
) -> Vec<(Sample, f64)> {
    for s in systems {
        index::measure_on(
            &s.addrs(),
            true,
            mix,
            clients,
            plan.warmup_seconds,
            peer_port,
        );
    }
    let mut rounds: Vec<Vec<(Sample, f64)>> = systems.iter().map(|_| Vec::new()).collect();
    for _ in 0..plan.rounds {
        for (i, s) in systems.iter().enumerate() {
            let redis_pid = [redis.child.id()];
            let (before, redis_before) = (index::cpu_us(&s.pids()), index::cpu_us(&redis_pid));
            let mut sample =
                index::measure_on(&s.addrs(), true, mix, clients, plan.seconds, peer_port);
            let ops = sample.ops.max(1) as f64;
            sample.cpu_us_per_op = index::cpu_us(&s.pids()).saturating_sub(before) as f64 / ops;
            let redis_us = index::cpu_us(&redis_pid).saturating_sub(redis_before) as f64 / ops;
            rounds[i].push((sample, redis_us));
        }
    }
    rounds
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.0.ops_per_sec.total_cmp(&b.0.ops_per_sec));
            let errors: u64 = r.iter().map(|s| s.0.errors).sum();
            let first = r.iter().find_map(|s| s.0.first_error.clone());
            let mut mid = r.swap_remove(r.len() / 2);
            mid.0.errors = errors;
            mid.0.first_error = first;
            mid
        })
        .collect()
}
