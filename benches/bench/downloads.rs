//! Downloads section of `peerdex bench`: GET_FILE of a large file between two real
//! `peerdex client` processes against a plain `sendfile(2)` copy of the same file over
//! a loopback socket (received into a file, in this process); and 8 downloads of it at
//! once from one peer by 8 client processes (total rate against the single one); the
//! peak RSS (VmHWM) of the serving and of a downloading client.
//!
//! Per round: sendfile copy, one GET_FILE, eight GET_FILE at once; one warm-up round
//! first. Every downloaded file's length is checked (and its content, in smoke mode).
//!
//! Owns: driving client shells over their stdin/stdout, the sendfile baseline.
//! Does not own: the client or the index server (children).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::report::{Table, mb_per_s, verdict};
use super::{BenchError, Plan, arg, median, peerdex_exe, spawn_server, status_kib};

const MIB: u64 = 1024 * 1024;
/// The file: 1 GiB.
const FULL_SIZE: u64 = 1024 * MIB;
/// Smoke mode: big enough for several socket buffers, small enough for a debug build.
const SMOKE_SIZE: u64 = 4 * MIB;
/// Downloads at once from one peer (the figure).
const PARALLEL: usize = 8;
/// Longest wait for one shell message: 8 GiB through a loaded 2-core loopback
/// takes tens of seconds, never minutes.
const CMD_TIMEOUT: Duration = Duration::from_secs(300);
/// A time service URL nobody listens on: the client then stamps its own time.
const NO_TIME_SERVICE: &str = "http://127.0.0.1:1/";
/// Receive buffer of the baseline, the size a downloader would use.
const RECV_BUF: usize = 256 * 1024;
/// Target ratios of the issue.
const TARGET_RATIO: f64 = 0.9;
/// Peak RSS each client must stay under, in KiB (32 MiB).
const TARGET_RSS_KIB: u64 = 32 * 1024;

fn err(what: impl Into<String>) -> BenchError {
    BenchError::Section {
        section: "downloads",
        what: what.into(),
    }
}

/// A `peerdex client` shell driven over its stdin, its messages read from stdout.
pub(super) struct Shell {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Shell {
    fn start(server: SocketAddr, share: &Path) -> Result<Shell, BenchError> {
        Shell::start_with(server, share, &[])
    }

    /// Like `start`, with more options.
    pub(super) fn start_with(
        server: SocketAddr,
        share: &Path,
        extra: &[&str],
    ) -> Result<Shell, BenchError> {
        let mut child = Command::new(peerdex_exe())
            .args(["client", "-s", "127.0.0.1", "-p"])
            .arg(server.port().to_string())
            .arg("--share")
            .arg(share)
            .args(["--time-url", NO_TIME_SERVICE])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| err("client stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| err("client stdout"))?;
        let (tx, lines) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("c> ") && tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Shell {
            child,
            stdin,
            lines,
        })
    }

    fn send(&mut self, line: &str) -> Result<(), BenchError> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn expect(&mut self, command: &str, message: &str) -> Result<(), BenchError> {
        match self.lines.recv_timeout(CMD_TIMEOUT) {
            Ok(m) if m.trim_end() == message => Ok(()),
            Ok(m) => Err(err(format!("{command}: {m:?}, expected {message:?}"))),
            Err(_) => Err(err(format!("{command}: no message from the client"))),
        }
    }

    pub(super) fn cmd(&mut self, command: &str, message: &str) -> Result<(), BenchError> {
        self.send(command)?;
        self.expect(command, message)
    }

    pub(super) fn register_connect(&mut self, user: &str) -> Result<(), BenchError> {
        self.cmd(&format!("REGISTER {user}"), "c> REGISTER OK")?;
        self.cmd(&format!("CONNECT {user}"), "c> CONNECT OK")
    }
}

/// A file of `len` pseudo-random bytes (xorshift; incompressible, cheap to make).
pub(super) fn write_random(path: &Path, len: u64) -> Result<(), BenchError> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// The baseline: `src` sent with sendfile(2) over loopback and received into `dst`
/// with a downloader's buffer size. Returns seconds.
fn sendfile_copy(src: &Path, dst: &Path) -> Result<f64, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let size = std::fs::metadata(src)?.len();
    let started = Instant::now();
    let src = src.to_owned();
    let sender = thread::spawn(move || -> std::io::Result<u64> {
        let (s, _) = listener.accept()?;
        let f = std::fs::File::open(src)?;
        let mut off: libc::off_t = 0;
        loop {
            // SAFETY: both descriptors are open for the call; `off` is a valid off_t.
            let n = unsafe { libc::sendfile(s.as_raw_fd(), f.as_raw_fd(), &mut off, 1 << 30) };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if n == 0 {
                return Ok(off as u64);
            }
        }
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(CMD_TIMEOUT))?;
    let mut f = std::fs::File::create(dst)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut got = 0u64;
    while got < size {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(err("sendfile baseline: connection closed early"));
        }
        f.write_all(&buf[..n])?;
        got += n as u64;
    }
    match sender.join() {
        Ok(Ok(sent)) if sent == size => Ok(started.elapsed().as_secs_f64()),
        _ => Err(err("sendfile baseline: sender failed")),
    }
}

/// Checks a downloaded file (length; content too when `full_check`) and removes it.
pub(super) fn check_and_remove(
    src: &Path,
    dst: &Path,
    size: u64,
    full_check: bool,
) -> Result<(), BenchError> {
    let len = std::fs::metadata(dst)?.len();
    if len != size {
        return Err(err(format!(
            "{}: {len} bytes, expected {size}",
            dst.display()
        )));
    }
    if full_check && std::fs::read(src)? != std::fs::read(dst)? {
        return Err(err(format!("{}: content differs", dst.display())));
    }
    std::fs::remove_file(dst)?;
    Ok(())
}

/// Runs the downloads section.
pub fn run(plan: &Plan) -> Result<(), BenchError> {
    let size = if plan.smoke { SMOKE_SIZE } else { FULL_SIZE };
    let rounds = plan.rounds;
    let dir = tempfile::tempdir()?;
    let share = dir.path().join("share");
    let down = dir.path().join("down");
    std::fs::create_dir_all(&share)?;
    std::fs::create_dir_all(&down)?;
    let src = share.join("big.bin");
    write_random(&src, size)?;

    let server = spawn_server("peerdex server", &["--ephemeral", "--no-logger", "--quiet"])?;
    let mut alice = Shell::start(server.addr, &share)?;
    alice.register_connect("alice")?;
    alice.cmd("PUBLISH big.bin benchmark file", "c> PUBLISH OK")?;
    let mut bobs = Vec::new();
    for i in 0..PARALLEL {
        let mut b = Shell::start(server.addr, &down)?;
        b.register_connect(&format!("bob{i}"))?;
        bobs.push(b);
    }
    let dst = |i: usize| -> PathBuf { down.join(format!("copy{i}.bin")) };
    let one = |bob: &mut Shell, i: usize| -> Result<f64, BenchError> {
        let t0 = Instant::now();
        bob.cmd(
            &format!("GET_FILE alice big.bin {}", arg(&dst(i))),
            "c> GET_FILE OK",
        )?;
        let t = t0.elapsed().as_secs_f64();
        check_and_remove(&src, &dst(i), size, plan.smoke)?;
        Ok(t)
    };
    let all = |bobs: &mut [Shell]| -> Result<f64, BenchError> {
        let t0 = Instant::now();
        for (i, b) in bobs.iter_mut().enumerate() {
            b.send(&format!("GET_FILE alice big.bin {}", arg(&dst(i))))?;
        }
        for b in bobs.iter_mut() {
            b.expect("GET_FILE (8 at once)", "c> GET_FILE OK")?;
        }
        let t = t0.elapsed().as_secs_f64();
        for i in 0..bobs.len() {
            check_and_remove(&src, &dst(i), size, plan.smoke)?;
        }
        Ok(t)
    };

    // Warm-up of every path, then alternate.
    sendfile_copy(&src, &dst(99))?;
    check_and_remove(&src, &dst(99), size, plan.smoke)?;
    one(&mut bobs[0], 0)?;
    all(&mut bobs)?;
    let (mut base, mut single, mut eight) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(sendfile_copy(&src, &dst(99))?);
        check_and_remove(&src, &dst(99), size, plan.smoke)?;
        single.push(one(&mut bobs[0], 0)?);
        eight.push(all(&mut bobs)?);
    }
    let serving_kib = status_kib(alice.child.id(), "VmHWM:");
    let downloading_kib = bobs
        .iter()
        .map(|b| status_kib(b.child.id(), "VmHWM:"))
        .max()
        .unwrap_or(0);

    let (b, s, e) = (median(base), median(single), median(eight));
    let total = size * PARALLEL as u64;
    println!("## Downloads\n");
    println!(
        "{} MiB file, {rounds} round(s) after a warm-up (sendfile, one GET_FILE, {PARALLEL} GET_FILE at once, alternated); medians; GET_FILE timed from the command to `c> GET_FILE OK` in two real client processes (includes the LIST_USERS lookup).\n",
        size / MIB
    );
    let mut t = Table::new(&["path", "seconds", "MB/s", "ratio", "target"]);
    t.row(vec![
        "sendfile copy over loopback (baseline)".into(),
        format!("{b:.3}"),
        mb_per_s(size, b),
        "1.00".into(),
        "-".into(),
    ]);
    let r1 = b / s.max(1e-9);
    t.row(vec![
        "GET_FILE, one download".into(),
        format!("{s:.3}"),
        mb_per_s(size, s),
        format!("{r1:.2} of sendfile"),
        verdict(r1 >= TARGET_RATIO),
    ]);
    let r8 = (total as f64 / e) / (size as f64 / s.max(1e-9));
    t.row(vec![
        format!("GET_FILE, {PARALLEL} at once from one peer (total)"),
        format!("{e:.3}"),
        mb_per_s(total, e),
        format!("{r8:.2} of one download"),
        verdict(r8 >= TARGET_RATIO),
    ]);
    t.print();
    let mut m = Table::new(&["client", "peak RSS (VmHWM)", "target"]);
    m.row(vec![
        "serving client (alice)".into(),
        format!("{:.1} MiB", serving_kib as f64 / 1024.0),
        verdict(serving_kib < TARGET_RSS_KIB),
    ]);
    m.row(vec![
        format!("downloading client (largest of {PARALLEL})"),
        format!("{:.1} MiB", downloading_kib as f64 / 1024.0),
        verdict(downloading_kib < TARGET_RSS_KIB),
    ]);
    m.print();
    drop(bobs);
    drop(alice);
    drop(server);
    Ok(())
}
