//! `--store rediss://`: the shared store over TLS, against a redis-server with a
//! certificate from a CA made here (openssl); trusted through `SSL_CERT_FILE`, and
//! refused in one line without it.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Proc, bin, code, free_port, require_tools, run_to_exit, wait_until};

/// A CA and a server certificate for 127.0.0.1 in `dir` (ca.pem, srv.pem, srv.key).
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
    ]
    .into_iter()
    .chain([
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=peerdex test CA",
    ])
    .collect::<Vec<_>>());
    run(&[
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
    ]
    .into_iter()
    .chain(["-subj", "/CN=127.0.0.1"])
    .collect::<Vec<_>>());
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
    ]
    .into_iter()
    .chain([
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ])
    .collect::<Vec<_>>());
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

#[test]
fn the_store_over_tls_is_trusted_only_with_its_ca() {
    let missing: Vec<String> = ["redis-server", "openssl"]
        .into_iter()
        .filter(|t| !on_path(t))
        .map(String::from)
        .collect();
    if !require_tools("the_store_over_tls_is_trusted_only_with_its_ca", &missing) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let _redis = Killed(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--tls-cert-file",
                &file("srv.pem"),
                "--tls-key-file",
                &file("srv.key"),
            ])
            .args([
                "--tls-ca-cert-file",
                &file("ca.pem"),
                "--tls-auth-clients",
                "no",
            ])
            .args(["--save", "", "--dir", &file("")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let url = format!("rediss://127.0.0.1:{port}");
    let args = [
        "server",
        "-p",
        "0",
        "--bind",
        "127.0.0.1",
        "--no-logger",
        "--store",
        &url,
    ];
    // Without the CA: one line naming the certificate, and no start.
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("SSL_CERT_FILE");
    let refused = run_to_exit(&mut cmd, Duration::from_secs(20), "server").unwrap();
    assert!(!refused.status.success());
    let lines: Vec<&str> = refused.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("certificate"), "{lines:?}");
    // With it: two servers share the registry over TLS.
    let start = || {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .args(["--quiet"])
            .env("SSL_CERT_FILE", file("ca.pem"));
        let proc = Proc::start_with(&mut cmd);
        let line = proc
            .wait_line(Duration::from_secs(20), |l| {
                l.starts_with("s> init server ")
            })
            .expect("server over TLS did not start");
        let addr: std::net::SocketAddr = line["s> init server ".len()..].parse().unwrap();
        (proc, addr)
    };
    let ((_a, a), (_b, b)) = (start(), start());
    assert_eq!(code(a, &["REGISTER", "alice"]), 0);
    assert_eq!(code(b, &["REGISTER", "alice"]), 1);
    assert_eq!(code(b, &["CONNECT", "alice", "4000"]), 0);
    assert_eq!(code(a, &["LIST_USERS", "alice"]), 0);
}
