//! Test support: start real peerdex processes on free ports, speak raw bytes to them,
//! and stop them (killed on drop, so a failed test leaves nothing behind).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Stderr lines (also echoed to the test's stderr).
    errs: Arc<Mutex<Vec<String>>>,
    /// How many of the two output pipes reached their end (the readers are done).
    ended: Arc<AtomicUsize>,
}

impl Proc {
    /// Starts `peerdex <args>` with stdout captured and stderr inherited.
    pub fn start(args: &[&str]) -> Proc {
        Self::start_with(Command::new(bin()).args(args))
    }

    /// Starts a prepared command (stdin null unless set, stdout and stderr
    /// captured; stderr lines are echoed to the test's stderr).
    pub fn start_with(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peerdex");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicUsize::new(0));
        collect_lines(stdout, Arc::clone(&lines), Arc::clone(&ended));
        let errs = Arc::new(Mutex::new(Vec::new()));
        let (sink, done) = (Arc::clone(&errs), Arc::clone(&ended));
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                sink.lock().unwrap().push(line);
            }
            done.fetch_add(1, Ordering::SeqCst);
        });
        Proc {
            child,
            lines,
            errs,
            ended,
        }
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every stderr line so far.
    pub fn err_lines(&self) -> Vec<String> {
        self.errs.lock().unwrap().clone()
    }

    /// Waits until a stderr line satisfies `pred` and returns it.
    pub fn wait_err_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.errs.lock().unwrap().iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
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
    /// Its output is then read to the end (at most 10 s more, in case a child it
    /// started still holds the pipes), so `lines()` has every line it wrote.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let read = Instant::now() + Duration::from_secs(10);
                while self.ended.load(Ordering::SeqCst) < 2 && Instant::now() < read {
                    thread::sleep(Duration::from_millis(5));
                }
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Peak resident memory of the process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:")
    }

    /// Current resident memory (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_lines(stdout: ChildStdout, lines: Arc<Mutex<Vec<String>>>, ended: Arc<AtomicUsize>) {
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
        ended.fetch_add(1, Ordering::SeqCst);
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
        // Tests that do not name a data directory get an in-memory registry, so
        // parallel tests never share (or lock) the default ./peerdex-data.
        if !["--data-dir", "--ephemeral", "--store"]
            .iter()
            .any(|a| extra.contains(a))
        {
            args.push("--ephemeral");
        }
        // Likewise, audit shipping only where a test asks for it: otherwise every
        // server would spool into the shared ./peerdex-spool.
        let shipping = ["--logger", "--spool", "--no-logger"];
        if !extra.iter().any(|a| shipping.contains(a)) {
            args.push("--no-logger");
        }
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
pub mod bed;
pub mod group;
pub mod partner;
pub mod pmap;
pub mod redis;
pub mod tmpfs;

// ---- Client shells driven through stdin (client and peer tests) ----

/// A time service URL where nothing listens: clients fall back to the local clock
/// at once (connection refused).
pub const NO_TIME_SERVICE: &str = "http://127.0.0.1:1/";

/// A `peerdex client` process driven through its stdin, with its stdout and stderr
/// lines collected.
pub struct Client {
    pub proc: Proc,
    stdin: Option<std::process::ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Stdout lines already returned by `cmd`.
    seen: usize,
}

/// How long a test waits for one shell message.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// `peerdex client -s 127.0.0.1 -p PORT --time-url <none> --share SHARE`.
    pub fn start(server: SocketAddr, share: &std::path::Path) -> Client {
        Self::start_with(server, share, &["--time-url", NO_TIME_SERVICE])
    }

    /// Like `start` with extra options (give `--time-url` yourself).
    pub fn start_with(server: SocketAddr, share: &std::path::Path, extra: &[&str]) -> Client {
        let mut cmd = Command::new(bin());
        cmd.args(["client", "-s", &server.ip().to_string(), "-p"])
            .arg(server.port().to_string())
            .arg("--share")
            .arg(share)
            .args(extra);
        Self::spawn(cmd)
    }

    /// Like `start` with a publication record of its own in `state` (`--state-dir`),
    /// plus `extra` options.
    pub fn with_state(
        server: SocketAddr,
        share: &std::path::Path,
        state: &std::path::Path,
        extra: &[&str],
    ) -> Client {
        let mut args = vec![
            "--time-url",
            NO_TIME_SERVICE,
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Self::start_with(server, share, &args)
    }

    /// Starts a prepared `peerdex client` command (e.g. on a test-bed host) with
    /// stdin, stdout and stderr piped.
    pub fn spawn(mut cmd: Command) -> Client {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start peerdex client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicUsize::new(0));
        collect_lines(stdout, Arc::clone(&lines), Arc::clone(&ended));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (sink, done) = (Arc::clone(&stderr), Arc::clone(&ended));
        thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
            done.fetch_add(1, Ordering::SeqCst);
        });
        Client {
            proc: Proc {
                child,
                lines,
                errs: Arc::clone(&stderr),
                ended,
            },
            stdin,
            stderr,
            seen: 0,
        }
    }

    /// Writes one command line without waiting for its message.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to client stdin");
        stdin.flush().unwrap();
    }

    /// Closes stdin (end of the script).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Waits for the next message line (`c> ...`) not yet returned.
    pub fn next_message(&mut self) -> String {
        let deadline = Instant::now() + CMD_TIMEOUT;
        loop {
            {
                let lines = self.proc.lines.lock().unwrap();
                if let Some(i) = (self.seen..lines.len()).find(|&i| lines[i].starts_with("c> ")) {
                    self.seen = i + 1;
                    return lines[i].clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no message from the client; stdout {:?}, stderr {:?}",
                self.proc.lines(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a command and returns its message line.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        self.next_message()
    }

    /// Sends a list command and returns its message and the `n` entry lines after it.
    pub fn cmd_list(&mut self, line: &str, n: usize) -> (String, Vec<String>) {
        let msg = self.cmd(line);
        let deadline = Instant::now() + CMD_TIMEOUT;
        loop {
            {
                let lines = self.proc.lines.lock().unwrap();
                if lines.len() >= self.seen + n {
                    let entries = lines[self.seen..self.seen + n].to_vec();
                    self.seen += n;
                    return (msg, entries);
                }
            }
            assert!(
                Instant::now() < deadline,
                "missing list lines: {:?}",
                self.proc.lines()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// The first stderr line containing `text`, waiting at most `timeout` for it;
    /// panics with the whole of stderr otherwise.
    pub fn wait_stderr(&self, timeout: Duration, text: &str) -> String {
        let mut found = None;
        let seen = wait_until(timeout, || {
            found = self.stderr().into_iter().find(|l| l.contains(text));
            found.is_some()
        });
        assert!(seen, "no {text:?}: {:?}", self.stderr());
        found.unwrap()
    }

    /// Whether a stderr line containing `text` arrives within 5 s (stderr is
    /// collected by its own thread, so it may trail the stdout message).
    pub fn stderr_has(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.stderr().iter().any(|l| l.contains(text)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the process exits (at most `CMD_TIMEOUT`); panics otherwise.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.proc
            .wait_exit(CMD_TIMEOUT)
            .expect("client did not exit")
    }

    /// Sends REGISTER and CONNECT and checks both succeeded.
    pub fn register_connect(&mut self, user: &str) {
        assert_eq!(self.cmd(&format!("REGISTER {user}")), "c> REGISTER OK");
        assert_eq!(self.cmd(&format!("CONNECT {user}")), "c> CONNECT OK");
    }
}

/// The users the server lists as connected, with their ports, asked as a raw
/// "observer" user (registered and connected with a dummy port on first use; not
/// itself in the result).
pub fn connected_users(server: SocketAddr) -> Vec<(String, u16)> {
    let _ = call(server, &["REGISTER", "observer"]);
    let _ = call(server, &["CONNECT", "observer", "1"]);
    let f = list_fields(&call(server, &["LIST_USERS", "observer"]));
    f[1..]
        .chunks(3)
        .filter(|c| c[0] != "observer")
        .map(|c| (c[0].clone(), c[2].parse().unwrap()))
        .collect()
}

/// The peer port of a connected user, from LIST_USERS.
pub fn peer_port(server: SocketAddr, user: &str) -> u16 {
    connected_users(server)
        .into_iter()
        .find(|(u, _)| u == user)
        .unwrap_or_else(|| panic!("{user} is not connected"))
        .1
}

/// Writes `len` pseudo-random bytes (seeded xorshift64, fast for large files).
pub fn write_random(path: &std::path::Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(chunk.len());
        for word in chunk[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        out.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    out.flush().unwrap();
}

/// Overwrites `path` in place with other bytes of the same length (no truncation,
/// no rename: the inode and the size stay).
pub fn rewrite_in_place(path: &std::path::Path, seed: u64) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    let fresh = tempfile::NamedTempFile::new().unwrap();
    write_random(fresh.path(), len, seed);
    let bytes = std::fs::read(fresh.path()).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(&bytes).unwrap();
}

/// A 64-bit FNV-1a hash of a file's content and its length.
pub fn file_hash(path: &std::path::Path) -> (u64, u64) {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; 1 << 20];
    let mut h: u64 = 0xcbf29ce484222325;
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (h, len);
        }
        for &b in &buf[..n] {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        len += n as u64;
    }
}

/// Names in a folder (to check that no partial or temporary file is left).
pub fn dir_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// TCP sockets the process `pid` has in LISTEN state (from /proc).
pub fn listening_sockets(pid: u32) -> usize {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut count = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                count += 1;
            }
        }
    }
    count
}

// ---- A second "host" on loopback (guard and liveness tests) ----

/// Linux answers every address of 127.0.0.0/8: a socket bound to this source address
/// before it connects looks like another host to the server.
pub const OTHER_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// Like `exchange`, from the source address `src` (e.g. [`OTHER_HOST`]).
pub fn exchange_from(src: std::net::Ipv4Addr, addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sock.bind(&SocketAddr::from((src, 0)).into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Sends a request made of `parts` from `src` and returns the reply bytes.
pub fn call_from(src: std::net::Ipv4Addr, addr: SocketAddr, parts: &[&str]) -> Vec<u8> {
    exchange_from(src, addr, &fields(parts))
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
    skip(test, &format!("needs {}", missing.join(", ")));
    false
}

/// The one way a test skips: says so on stderr (`SKIPPED test: why`) and records it
/// in the skipped-tests file that the last line of `make test` reads; fails instead
/// when PEERDEX_REQUIRE_SYSTEM_TESTS=1 (CI). The caller returns right after.
pub fn skip(test: &str, why: &str) {
    let msg = format!("{test}: {why}");
    if system_tests_required() {
        panic!("{msg} (PEERDEX_REQUIRE_SYSTEM_TESTS=1)");
    }
    eprintln!("SKIPPED {msg}; set PEERDEX_REQUIRE_SYSTEM_TESTS=1 to make this a failure");
    note_skipped(&msg);
}

/// Appends a skipped test to the file named by PEERDEX_SKIPPED_FILE (set by `make
/// test`, which prints them all in one line at the end: cargo shows a skipped test
/// as `ok`).
fn note_skipped(msg: &str) {
    let Some(path) = std::env::var_os("PEERDEX_SKIPPED_FILE") else {
        return;
    };
    // One short write per line in append mode: parallel tests do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{msg}\n").as_bytes());
    }
}

/// What a process run to its end printed, and how it ended.
pub struct Finished {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` (stdin closed, stdout and stderr captured) until it exits; kills it and
/// panics, naming `what`, when it is still running after `timeout`. Both pipes are
/// drained while it runs, so a chatty process cannot block on a full pipe.
pub fn run_to_exit(cmd: &mut Command, timeout: Duration, what: &str) -> std::io::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Ok(Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM), 0 when unreadable.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads until the other side closes `s`: what it sent, or `None` if it did not close
/// before `limit`. A reset counts as closed.
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Some(out),
        }
    }
}

/// A scripted index server: answers every request with the code currently set (and
/// an empty list for list requests answered 0), and keeps the raw requests.
pub struct FakeIndex {
    pub addr: SocketAddr,
    code: Arc<std::sync::atomic::AtomicU8>,
    requests: Arc<Mutex<Vec<TimedRequest>>>,
}

/// A request to the fake index: when it was read whole, and its fields.
pub type TimedRequest = (Instant, Vec<String>);

impl FakeIndex {
    pub fn start() -> FakeIndex {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let code = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (Arc::clone(&code), Arc::clone(&requests));
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut bytes = Vec::new();
                let mut buf = [0u8; 4096];
                // Read until the request is complete: its field count depends on
                // the operation.
                loop {
                    let fields: Vec<String> = bytes
                        .split(|&b| b == 0)
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    let nuls = bytes.iter().filter(|&&b| b == 0).count();
                    let mut want = match fields[0].as_str() {
                        "PUBLISH" => 5,
                        "CONNECT" | "DELETE" | "LIST_CONTENT" | "SEARCH" => 4,
                        _ => 3,
                    };
                    // The first-version layout has no DATETIME (which always
                    // holds a space) as its second field.
                    if nuls >= 2 && !fields[1].contains(' ') {
                        want -= 1;
                    }
                    if nuls >= want && nuls > 0 {
                        break;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    }
                }
                let fields: Vec<String> = bytes
                    .split(|&b| b == 0)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                let code = c.load(std::sync::atomic::Ordering::SeqCst);
                let mut reply = vec![code];
                let is_list =
                    matches!(fields[0].as_str(), "LIST_USERS" | "LIST_CONTENT" | "SEARCH");
                if code == 0 && is_list {
                    reply.extend_from_slice(b"0\0");
                }
                r.lock().unwrap().push((Instant::now(), fields));
                let _ = stream.write_all(&reply);
            }
        });
        FakeIndex {
            addr,
            code,
            requests,
        }
    }

    /// The code every later request gets.
    pub fn set(&self, code: u8) {
        self.code.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request so far, as its fields (the split leaves "" after the last NUL).
    pub fn requests(&self) -> Vec<Vec<String>> {
        self.timed_requests().into_iter().map(|(_, r)| r).collect()
    }

    /// Every request so far with when it was read whole.
    pub fn timed_requests(&self) -> Vec<TimedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// Whether the other side of `s` has sent something or closed: a reply has started
/// (peeks, consumes nothing).
pub fn has_reply_or_closed(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let answered =
        !matches!(s.peek(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    answered
}

/// A deliberately slow client: writes `bytes` on `w` one at a time, pausing `pace`
/// after each (the pause is its pacing, not a wait), until done or a write fails.
/// The count says how many were written, so a test can tell that the request was
/// cut before it was complete without timing anything.
pub struct Trickler {
    pub written: Arc<std::sync::atomic::AtomicUsize>,
    thread: thread::JoinHandle<()>,
}

impl Trickler {
    pub fn start(mut w: TcpStream, bytes: &'static [u8], pace: Duration) -> Trickler {
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&written);
        let thread = thread::spawn(move || {
            for b in bytes {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                thread::sleep(pace);
            }
        });
        Trickler { written, thread }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// The TCP states (as /proc/net/tcp numbers them: 1 ESTABLISHED, 4 FIN_WAIT1, ...)
/// of the sockets on this machine at the other end of each of `streams`: their
/// server sides. `None` where that socket is gone. The tables are read once for all
/// of them: on a busy machine a read of /proc/net/tcp can take a large fraction of
/// a second, so reading it once per stream could hold a test up for many seconds.
pub fn far_end_states(streams: &[TcpStream]) -> Vec<Option<u8>> {
    let ends: Vec<Option<(u16, u16)>> = streams
        .iter()
        .map(|s| Some((s.local_addr().ok()?.port(), s.peer_addr().ok()?.port())))
        .collect();
    let mut states = vec![None; streams.len()];
    let port_of = |col: &str| {
        col.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() <= 3 {
                continue;
            }
            let (local, remote) = (port_of(cols[1]), port_of(cols[2]));
            for (state, end) in states.iter_mut().zip(&ends) {
                if state.is_none()
                    && end.is_some_and(|(near, far)| local == Some(far) && remote == Some(near))
                {
                    *state = u8::from_str_radix(cols[3], 16).ok();
                }
            }
        }
    }
    states
}

/// Waits (at most 60 s) until `path` holds more than `min` bytes, e.g. a download's
/// partial file once the transfer is under way; panics otherwise.
pub fn wait_bytes(path: &std::path::Path, min: u64) {
    assert!(
        wait_until(Duration::from_secs(60), || std::fs::metadata(path)
            .is_ok_and(|m| m.len() > min)),
        "{} did not grow past {min} bytes",
        path.display()
    );
}
