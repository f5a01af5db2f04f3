//! The multi-host test bed (tests/netbed/netbed.sh) seen from a test: build it, run
//! peerdex processes on its hosts, open sockets from inside a host, tear it down on
//! drop (also when the test fails).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Proc;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/netbed/netbed.sh")
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(script())
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A running bed.
pub struct Bed {
    tag: String,
}

impl Bed {
    /// Builds a bed, or returns `None` (after saying why) when this machine cannot and
    /// the environment does not require it.
    pub fn up() -> Option<Bed> {
        if let Err(why) = run(&["check"]) {
            super::skip(
                "multi-host test",
                &format!("the multi-host bed is unavailable: {}", why.trim()),
            );
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let bed = Bed { tag };
        run(&["up", &bed.tag]).unwrap_or_else(|e| panic!("netbed up: {e}"));
        Some(bed)
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        format!("pdx-{}-{host}", self.tag)
    }

    /// The address of `host` inside the bed.
    pub fn ip(host: &str) -> IpAddr {
        run(&["ip", host]).unwrap().parse().unwrap()
    }

    /// Starts `peerdex <args>` on `host`.
    pub fn peerdex(&self, host: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)])
            .arg(super::bin())
            .args(args);
        Proc::start_with(&mut cmd)
    }

    /// A command to run on `host` (not started).
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host), program]);
        cmd
    }

    /// Runs `f` on a thread that lives in `host`'s network namespace: every socket it
    /// opens is that host's.
    pub fn on<T: Send + 'static>(&self, host: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.ns(host));
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; it changes only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in bed")
    }

    /// Takes `host` off the network (its link goes down).
    pub fn cut(&self, host: &str) {
        run(&["cut", &self.tag, host]).unwrap();
    }

    /// `addr` on `host`, for a port.
    pub fn addr(host: &str, port: u16) -> SocketAddr {
        SocketAddr::new(Self::ip(host), port)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = run(&["down", &self.tag]);
    }
}

impl Bed {
    /// Starts a `peerdex client` on `host`, driven through stdin, talking to the index
    /// server at `server` and the time service at `time_url`, sharing `share`.
    pub fn client(
        &self,
        host: &str,
        server: SocketAddr,
        share: &std::path::Path,
        time_url: &str,
        extra: &[&str],
    ) -> super::Client {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(host)])
            .arg(super::bin())
            .args(["client", "-s", &server.ip().to_string(), "-p"])
            .arg(server.port().to_string())
            .arg("--share")
            .arg(share)
            .args(["--time-url", time_url])
            .args(extra);
        super::Client::spawn(cmd)
    }
}

impl Bed {
    /// Starts a portmapper (rpcbind) on `host` with a private /run, so it never meets
    /// the machine's own rpcbind (which keeps its socket and lock under /run).
    pub fn rpcbind(&self, host: &str) -> Proc {
        let mut cmd = self.command(host, "unshare");
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && exec rpcbind -f -w",
        ]);
        let proc = Proc::start_with(&mut cmd);
        // Ready when it answers on the host's address.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let addr = SocketAddr::new(Self::ip(host), 111);
        while std::time::Instant::now() < deadline {
            if self.on(host, move || {
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
                    .is_ok()
            }) {
                return proc;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("rpcbind did not start on {host}");
    }
}
