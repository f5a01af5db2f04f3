//! Test support: start real peerdex processes on free ports, speak raw bytes to them,
//! and stop them (killed on drop, so a failed test leaves nothing behind).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The peerdex binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_peerdex"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running peerdex process whose stdout lines are collected in the background.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `peerdex <args>` with stdout captured and stderr inherited.
    pub fn start(args: &[&str]) -> Proc {
        Self::start_with(Command::new(bin()).args(args))
    }

    /// Starts a prepared command (stdin null unless set, stdout captured).
    pub fn start_with(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start peerdex");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        collect_lines(stdout, Arc::clone(&lines));
        Proc { child, lines }
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a stdout line satisfies `pred` and returns it.
    pub fn wait_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Sends a signal (e.g. libc SIGINT = 2) with `kill`.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, at most `timeout`; returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Peak resident memory of the process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmHWM:")
    }

    /// Current resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn collect_lines(stdout: ChildStdout, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
    });
}

/// A running index server.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `peerdex server` on a free loopback port with `extra` options and waits
    /// for its `s> init server` line.
    pub fn start(extra: &[&str]) -> Server {
        let mut args = vec!["server", "-p", "0", "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        let proc = Proc::start(&args);
        let line = proc
            .wait_line(Duration::from_secs(10), |l| {
                l.starts_with("s> init server ")
            })
            .expect("server did not print its init line");
        let addr: SocketAddr = line["s> init server ".len()..]
            .parse()
            .expect("init line address");
        Server { proc, addr }
    }
}

/// Sends raw bytes on a new connection and reads everything until the server closes
/// (at most 5 s).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Builds a request from fields: each gets its NUL.
pub fn fields(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

/// Sends a request made of `parts` and returns the reply bytes.
pub fn call(addr: SocketAddr, parts: &[&str]) -> Vec<u8> {
    exchange(addr, &fields(parts))
}

/// Sends a request and returns its result code (panics on an empty reply).
pub fn code(addr: SocketAddr, parts: &[&str]) -> u8 {
    let reply = call(addr, parts);
    assert!(!reply.is_empty(), "no reply to {parts:?}");
    reply[0]
}

/// Splits the NUL-terminated fields of a list reply after its result byte.
pub fn list_fields(reply: &[u8]) -> Vec<String> {
    assert_eq!(reply.first(), Some(&0), "list reply code");
    let body = &reply[1..];
    assert!(
        body.is_empty() || body.ends_with(&[0]),
        "list reply not NUL-terminated"
    );
    body.split(|&b| b == 0)
        .take(body.iter().filter(|&&b| b == 0).count())
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect()
}

/// A running `peerdex logger`.
pub struct Logger {
    pub proc: Proc,
    pub port: u16,
}

impl Logger {
    /// Starts `peerdex logger --bind 127.0.0.1 <extra>` and waits for its init line
    /// (`l> init logger IP:PORT program 0x... ...`).
    pub fn start(extra: &[&str]) -> Logger {
        let mut args = vec!["logger", "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        let proc = Proc::start(&args);
        let line = proc
            .wait_line(Duration::from_secs(10), |l| {
                l.starts_with("l> init logger ")
            })
            .expect("logger did not print its init line");
        let addr: SocketAddr = line["l> init logger ".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .expect("init line address");
        Logger {
            proc,
            port: addr.port(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Stdout lines of `proc` equal to `line`, counted.
pub fn count_lines(proc: &Proc, line: &str) -> usize {
    proc.lines().iter().filter(|l| *l == line).count()
}

/// Waits until `cond` holds, at most `timeout`; returns whether it did.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// True when PEERDEX_REQUIRE_SYSTEM_TESTS=1: tests that need external programs
/// fail instead of skipping when those are missing.
pub fn system_tests_required() -> bool {
    std::env::var("PEERDEX_REQUIRE_SYSTEM_TESTS").is_ok_and(|v| v == "1")
}

/// Skips (returns false, with a message) or fails, when `missing` is not empty.
pub fn require_tools(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    if system_tests_required() {
        panic!("{msg} (PEERDEX_REQUIRE_SYSTEM_TESTS=1)");
    }
    eprintln!("SKIPPED {msg}; set PEERDEX_REQUIRE_SYSTEM_TESTS=1 to make this a failure");
    false
}
