//! The partners of tests/partners/ as running processes: a statement peer
//! (statement_peer.py) and the statement's downloader (statement_get.py).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{Finished, require_tools, run_to_exit, wait_until};

/// A file of tests/partners/.
pub fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/partners")
        .join(name)
}

/// Whether python3 runs; the test is skipped (or fails in CI) otherwise.
pub fn have_python(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = if ok { vec![] } else { vec!["python3".into()] };
    require_tools(test, &missing)
}

/// A running statement_peer.py on 127.0.0.1, killed on drop; its stderr request
/// lines collected.
pub struct StatementPeer {
    pub child: Child,
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl StatementPeer {
    /// Serves `dir` in `dialect` (statement, slides, 2025, one) with `extra` options.
    pub fn start(dir: &Path, dialect: &str, extra: &[&str]) -> StatementPeer {
        let mut child = Command::new("python3")
            .arg(path("statement_peer.py"))
            .args(["--port", "0", "--host", "127.0.0.1", "--dir"])
            .arg(dir)
            .args(["--dialect", dialect])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start statement_peer.py");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("statement_peer.py did not say `listening`");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("statement_peer.py said {line:?}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&requests);
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        StatementPeer {
            child,
            port,
            requests,
        }
    }

    /// Its `request <op> <name> -> <what>` lines so far, waiting up to 30 s for at
    /// least `n` of them.
    pub fn requests(&self, n: usize) -> Vec<String> {
        let lines = || self.requests.lock().unwrap().clone();
        wait_until(Duration::from_secs(30), || {
            lines().iter().filter(|l| l.starts_with("request ")).count() >= n
        });
        lines()
    }
}

impl StatementPeer {
    /// Its stderr so far as one text, waiting up to 30 s for at least `n` requests.
    pub fn log(&self, n: usize) -> String {
        self.requests(n).concat()
    }
}

impl Drop for StatementPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs statement_get.py HOST PORT REMOTE OUT with `options` to its exit.
pub fn statement_get(port: u16, remote: &str, out: &Path, options: &[&str]) -> Finished {
    run_to_exit(
        Command::new("python3")
            .arg(path("statement_get.py"))
            .args(["127.0.0.1", &port.to_string(), remote])
            .arg(out)
            .args(options),
        Duration::from_secs(60),
        "statement_get.py",
    )
    .unwrap()
}

/// A running index/statement_server.py (a student's index server), killed on drop.
pub struct StudentServer {
    pub proc: super::Proc,
    pub addr: std::net::SocketAddr,
}

impl StudentServer {
    /// Starts it on a free port with `options` (`--statement`, `--codes`, ...).
    pub fn start(options: &[&str]) -> StudentServer {
        let proc = super::Proc::start_with(
            Command::new("python3")
                .arg(path("index/statement_server.py"))
                .args(["--port", "0"])
                .args(options)
                .stdin(Stdio::null()),
        );
        let line = proc
            .wait_line(Duration::from_secs(30), |l| l.starts_with("listening "))
            .unwrap_or_else(|| panic!("statement_server.py: {:?}", proc.err_lines()));
        let port: u16 = line["listening ".len()..].parse().unwrap();
        StudentServer {
            proc,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Its `request` lines so far, as fields (OP, DATETIME, USER, ARGS...).
    pub fn requests(&self) -> Vec<Vec<String>> {
        self.proc
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("request\t"))
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }
}

/// One request of a student's client (index/statement_client.py) to `server` with
/// `options` then `request` (OP USER ARGS...): its output lines (`code N`, entries).
pub fn student_client(
    server: std::net::SocketAddr,
    options: &[&str],
    request: &[&str],
) -> Vec<String> {
    let done = run_to_exit(
        Command::new("python3")
            .arg(path("index/statement_client.py"))
            .args(options)
            .arg(server.ip().to_string())
            .arg(server.port().to_string())
            .args(request),
        Duration::from_secs(60),
        "statement_client.py",
    )
    .unwrap();
    assert!(
        done.status.success(),
        "statement_client.py {request:?}: {}",
        done.stderr
    );
    done.stdout.lines().map(str::to_owned).collect()
}
