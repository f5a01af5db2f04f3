//! Measures what the journal costs: REGISTER and PUBLISH throughput with 64 clients
//! against `--ephemeral`, the journal (default) and `--fsync`, alternated in one run;
//! and start-up replay time and memory for a large registry.
//!
//! ```text
//! cargo bench --bench journal_load -- throughput [SECONDS] [ROUNDS] [CLIENTS]
//! cargo bench --bench journal_load -- replay [USERS] [FILES_PER_USER]
//! cargo bench --bench journal_load -- apply [THREADS] [CHANGES_PER_THREAD]
//! ```
//! The peerdex binary is the one cargo builds with this target (`PEERDEX_BIN` overrides).
//!
//! `cargo bench --bench bench` (benches/bench/) is the benchmark of record: its scale section does the
//! replay measurement with the issue's figures, its index section compares the deployed
//! server (journal on) with `--ephemeral`. This example stays for what the bench does
//! not cover: `--fsync`, and the in-process cost of `Registry::apply`.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use peerdex::internals::Change;

fn bin() -> String {
    std::env::var("PEERDEX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_peerdex").into())
}

struct Server {
    child: Child,
    addr: SocketAddr,
    /// Time from spawn to the init line.
    started: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    let t0 = Instant::now();
    let mut child = Command::new(bin())
        .args([
            "server",
            "-p",
            "0",
            "--bind",
            "127.0.0.1",
            "--quiet",
            "--no-logger",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start peerdex (set PEERDEX_BIN)");
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.trim().strip_prefix("s> init server ") {
            break rest.parse().unwrap();
        }
    };
    let started = t0.elapsed();
    thread::spawn(move || {
        let mut sink = [0u8; 4096];
        while matches!(lines.read(&mut sink), Ok(n) if n > 0) {}
    });
    Server {
        child,
        addr,
        started,
    }
}

fn request(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

fn op(addr: SocketAddr, req: &[u8]) -> u8 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(req).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    b[0]
}

/// Runs `clients` threads for `seconds`; returns acknowledged ops/s.
fn measure(addr: SocketAddr, mix: &str, tag: &str, clients: usize, seconds: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, count, mix, tag) = (
                stop.clone(),
                count.clone(),
                mix.to_string(),
                tag.to_string(),
            );
            thread::spawn(move || {
                let user = format!("{tag}-c{c}");
                if mix == "PUBLISH" {
                    assert_eq!(op(addr, &request(&["REGISTER", &user])), 0);
                    assert_eq!(op(addr, &request(&["CONNECT", &user, "4000"])), 0);
                }
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = if mix == "PUBLISH" {
                        request(&[
                            "PUBLISH",
                            "22/11/2026 02:00:00",
                            &user,
                            &format!("file-{n}.txt"),
                            "a shared file",
                        ])
                    } else {
                        request(&["REGISTER", "22/11/2026 02:00:00", &format!("{user}-{n}")])
                    };
                    assert_eq!(op(addr, &req), 0, "{mix}");
                    n += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Setup (PUBLISH users) is not counted: start counting once everybody runs.
    thread::sleep(Duration::from_millis(200));
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs_f64(seconds));
    let ops = count.load(Ordering::Relaxed) - c0;
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    ops as f64 / elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn throughput(seconds: f64, rounds: usize, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let fsync_dir = dir.path().join("fsync");
    let systems = [
        ("ephemeral", start(&["--ephemeral"])),
        (
            "journal",
            start(&["--data-dir", journal_dir.to_str().unwrap()]),
        ),
        (
            "journal --fsync",
            start(&["--data-dir", fsync_dir.to_str().unwrap(), "--fsync"]),
        ),
    ];
    println!("| mix | clients | system | ops/s (median of {rounds}) | vs ephemeral |");
    println!("|---|---|---|---|---|");
    for mix in ["REGISTER", "PUBLISH"] {
        let mut samples = vec![Vec::new(); systems.len()];
        for (i, (_, s)) in systems.iter().enumerate() {
            measure(
                s.addr,
                mix,
                &format!("warm{i}{mix}"),
                clients,
                seconds / 3.0,
            );
        }
        for round in 0..rounds {
            for (i, (_, s)) in systems.iter().enumerate() {
                samples[i].push(measure(
                    s.addr,
                    mix,
                    &format!("r{round}s{i}{mix}"),
                    clients,
                    seconds,
                ));
            }
        }
        let base = median(samples[0].clone());
        for (i, (name, _)) in systems.iter().enumerate() {
            let m = median(samples[i].clone());
            println!("| {mix} | {clients} | {name} | {m:.0} | {:.2} |", m / base);
        }
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn replay(users: usize, per_user: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let t0 = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(data.join("journal.0.jsonl")).unwrap());
    let mut line = |c: &Change| {
        serde_json::to_writer(&mut out, c).unwrap();
        out.write_all(b"\n").unwrap();
    };
    for u in 0..users {
        let user = format!("user-{u:06}");
        line(&Change::Register { user: user.clone() });
        line(&Change::Connect {
            user: user.clone(),
            ip: "10.1.2.3".parse().unwrap(),
            port: 4000 + (u % 1000) as u16,
        });
        for f in 0..per_user {
            line(&Change::Publish {
                user: user.clone(),
                file: format!("music/album-{f:02}/track-{u:06}.mp3"),
                description: format!("track {f} of user {u}, 320 kbit/s"),
            });
        }
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(data.join("journal.0.jsonl"))
        .unwrap()
        .len();
    println!(
        "journal of {users} users and {} publications: {} MB, written in {:?}",
        users * per_user,
        size >> 20,
        t0.elapsed()
    );
    let d = data.to_str().unwrap();
    for what in [
        "replay of the journal (then compaction at start)",
        "replay of the snapshot",
    ] {
        let s = start(&["--data-dir", d]);
        let pid = s.child.id();
        // Counts checked: one LIST_CONTENT as a connected user.
        let reply = {
            let mut st = TcpStream::connect(s.addr).unwrap();
            st.write_all(&request(&["LIST_CONTENT", "user-000000", "user-000001"]))
                .unwrap();
            let mut v = Vec::new();
            st.read_to_end(&mut v).unwrap();
            v
        };
        assert_eq!(reply[0], 0);
        // Let a compaction started at start-up finish before the next start.
        let t0 = Instant::now();
        while !data.join("snapshot.jsonl").exists() || data.join("snapshot.jsonl.tmp").exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "compaction did not finish"
            );
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(300));
        println!(
            "{what}: init line after {:?}; VmRSS {} MiB, VmHWM {} MiB",
            s.started,
            status_kib(pid, "VmRSS:") >> 10,
            status_kib(pid, "VmHWM:") >> 10
        );
        let files: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!(
                    "{} ({} MB)",
                    e.file_name().to_string_lossy(),
                    e.metadata().unwrap().len() >> 20
                )
            })
            .collect();
        println!("  files: {}", files.join(", "));
    }
}

/// In-process cost of `Registry::apply` (no sockets): `threads` threads each
/// registering `per_thread` users, for each storage setting.
fn apply(threads: usize, per_thread: usize) {
    use peerdex::internals::{Registry, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    println!("| storage | threads | changes | µs per change (wall) | changes/s |");
    println!("|---|---|---|---|---|");
    for (name, fsync) in [
        ("ephemeral", None),
        ("journal", Some(false)),
        ("journal --fsync", Some(true)),
    ] {
        let registry = match fsync {
            None => Registry::new(),
            Some(fsync) => {
                let opts = StoreOptions {
                    fsync,
                    ..StoreOptions::default()
                };
                Registry::open(&dir.path().join(name.replace(' ', "")), opts)
                    .unwrap()
                    .0
            }
        };
        let t0 = Instant::now();
        thread::scope(|s| {
            for t in 0..threads {
                let registry = &registry;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let change = Change::Register {
                            user: format!("user-{t}-{i}"),
                        };
                        assert_eq!(registry.apply(&change), 0);
                    }
                });
            }
        });
        let n = threads * per_thread;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "| {name} | {threads} | {n} | {:.2} | {:.0} |",
            secs * 1e6 / n as f64,
            n as f64 / secs
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let num = |i: usize, d: f64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(num(1, 3.0), num(2, 3.0) as usize, num(3, 64.0) as usize),
        Some("apply") => apply(num(1, 64.0) as usize, num(2, 2000.0) as usize),
        Some("replay") => replay(num(1, 100_000.0) as usize, num(2, 10.0) as usize),
        _ => eprintln!(
            "usage: journal_load throughput [SECONDS] [ROUNDS] [CLIENTS] | replay [USERS] [FILES_PER_USER] | apply [THREADS] [PER_THREAD]"
        ),
    }
}
