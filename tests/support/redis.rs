//! A real redis-server for the shared-store tests: started on a free loopback port
//! in its own temporary directory (AOF on, `appendfsync always`, no RDB), killed on
//! drop, and a minimal RESP client to look at its keys.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_tools, wait_until};

/// Whether redis-server is installed; otherwise skips `test` (see `require_tools`).
pub fn available(test: &str) -> bool {
    let missing: Vec<String> = which("redis-server")
        .is_none()
        .then(|| "redis-server (apt-get install redis-server)".to_owned())
        .into_iter()
        .collect();
    require_tools(test, &missing)
}

/// A redis-server process of this test.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one, or skips `test` (returns `None`) when redis-server is not installed.
    pub fn start(test: &str) -> Option<Redis> {
        if !available(test) {
            return None;
        }
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        redis.restart();
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and directory: a restart replays its AOF.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", path(self.dir.path())])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(10), || self
                .try_command(&["PING"])
                .is_some_and(|r| r == "PONG")),
            "redis-server did not answer PING"
        );
    }

    /// Kills it with SIGKILL (what it acknowledged is in its AOF).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (`STOP`: Redis hangs without closing anything; `CONT`).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status();
    }

    /// Sends one command; its reply as text (arrays flattened, one item per line;
    /// nil as `(nil)`). Panics when it does not answer.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args)
            .unwrap_or_else(|| panic!("redis did not answer {args:?}"))
    }

    fn try_command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut r = BufReader::new(s);
        let mut out = Vec::new();
        read_reply(&mut r, &mut out)?;
        Some(out.join("\n"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp dir")
}

/// Reads one RESP2 reply into `out` (one string per scalar).
fn read_reply(r: &mut impl BufRead, out: &mut Vec<String>) -> Option<()> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1)?;
    match kind {
        "+" | ":" => out.push(rest.to_owned()),
        "-" => out.push(format!("ERR {rest}")),
        "$" => {
            let n: i64 = rest.parse().ok()?;
            if n < 0 {
                out.push("(nil)".into());
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf).ok()?;
                buf.truncate(n as usize);
                out.push(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        "*" => {
            let n: i64 = rest.parse().ok()?;
            for _ in 0..n.max(0) {
                read_reply(r, out)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// Where `program` is on the PATH.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
