//! The client's SOAP time source (PROTOCOL.md section 4): given a WSDL address
//! (`--time-url http://host:port/?wsdl`, or the `WSDL_URL` variable) it reads the
//! WSDL and stamps every request with the string the SOAP operation returns.
//! Partners: the course's spyne service (tests/partners/spyne_time.py, skipped
//! visibly without spyne and lxml) and peerdex's own time service.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;

/// Runs a client with `time` as its time options (`--time-url URL`, or none with
/// `WSDL_URL` set to `env`), sends REGISTER and returns the DATETIME the index
/// server received.
fn datetime_sent(time_url: Option<&str>, env: Option<&str>, share: &Path) -> String {
    let index = FakeIndex::start();
    let mut cmd = Command::new(bin());
    cmd.args(["client", "-s", "127.0.0.1", "-p"])
        .arg(index.addr.port().to_string())
        .arg("--share")
        .arg(share)
        .env_remove("WSDL_URL");
    if let Some(url) = time_url {
        cmd.args(["--time-url", url]);
    }
    if let Some(wsdl) = env {
        cmd.env("WSDL_URL", wsdl);
    }
    let mut c = Client::spawn(cmd);
    assert_eq!(c.cmd("REGISTER alice"), "c> REGISTER OK");
    c.send("QUIT");
    let _ = c.proc.wait_exit(Duration::from_secs(10));
    assert!(
        !c.stderr()
            .iter()
            .any(|l| l.contains("using the local clock")),
        "the client fell back to the local clock: {:?}",
        c.stderr()
    );
    let seen = index.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0][0], "REGISTER");
    assert_eq!(seen[0][2], "alice");
    seen[0][1].clone()
}

/// The spyne partner, or None (skipped visibly) without spyne.
fn spyne(fixed: &str) -> Option<Proc> {
    let has_spyne = Command::new("python3")
        .args(["-c", "import spyne, lxml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = if has_spyne {
        vec![]
    } else {
        vec!["python3 with spyne and lxml (pip install spyne lxml)".to_owned()]
    };
    if !require_tools("spyne time service test", &missing) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/partners/spyne_time.py");
    Some(Proc::start_with(
        Command::new("python3")
            .arg(script)
            .args(["--port", "0", "--fixed", fixed])
            .stdin(Stdio::null()),
    ))
}

fn spyne_port(p: &Proc) -> u16 {
    let line = p
        .wait_line(Duration::from_secs(20), |l| l.starts_with("listening "))
        .expect("spyne service did not start");
    line["listening ".len()..].trim().parse().unwrap()
}

#[test]
fn a_spyne_soap_service_stamps_requests_by_option_and_by_wsdl_url() {
    let fixed = "01/02/2003 04:05:06";
    let Some(mut svc) = spyne(fixed) else { return };
    let port = spyne_port(&svc);
    let wsdl = format!("http://127.0.0.1:{port}/?wsdl");
    let share = tempfile::tempdir().unwrap();
    assert_eq!(datetime_sent(Some(&wsdl), None, share.path()), fixed);
    assert_eq!(datetime_sent(None, Some(&wsdl), share.path()), fixed);
    svc.signal("TERM");
    let _ = svc.wait_exit(Duration::from_secs(5));
}

#[test]
fn peerdex_own_time_service_answers_through_its_wsdl() {
    let svc = Proc::start(&["time", "--port", "0", "--bind", "127.0.0.1"]);
    let line = svc
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("time service on http://")
        })
        .expect("the time service did not start");
    let base = line["time service on ".len()..]
        .trim_end_matches('/')
        .to_owned();
    let share = tempfile::tempdir().unwrap();
    let got = datetime_sent(Some(&format!("{base}/?WSDL")), None, share.path());
    // dd/mm/YYYY HH:MM:SS
    let b = got.as_bytes();
    assert_eq!(b.len(), 19, "{got}");
    assert!(
        b[2] == b'/' && b[5] == b'/' && b[10] == b' ' && b[13] == b':',
        "{got}"
    );
}

#[test]
fn a_dead_wsdl_address_falls_back_to_the_local_clock_with_one_line() {
    let index = FakeIndex::start();
    let share = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["client", "-s", "127.0.0.1", "-p"])
        .arg(index.addr.port().to_string())
        .arg("--share")
        .arg(share.path())
        .env("WSDL_URL", "http://127.0.0.1:1/?wsdl");
    let mut c = Client::spawn(cmd);
    assert_eq!(c.cmd("REGISTER alice"), "c> REGISTER OK");
    assert_eq!(c.cmd("REGISTER bob"), "c> REGISTER OK");
    c.send("QUIT");
    let _ = c.proc.wait_exit(Duration::from_secs(10));
    assert!(c.stderr_has("using the local clock"));
    let warnings = c
        .stderr()
        .iter()
        .filter(|l| l.contains("using the local clock"))
        .count();
    assert_eq!(warnings, 1, "{:?}", c.stderr());
    assert_eq!(index.requests().len(), 2);
}

/// A SOAP service of its own: GET answers a WSDL naming `op` in `tns` at this
/// address, POST answers `status` with `body`. Keeps every request's head and body.
fn fake_soap(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let wsdl = format!(
        r#"<?xml version="1.0"?><definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" targetNamespace="urn:t"><portType name="P"><operation name="now"/></portType><binding name="B" type="P"><operation name="now"><soap:operation soapAction="urn:t#now"/></operation></binding><service name="S"><port name="p" binding="B"><soap:address location="{base}soap"/></port></service></definitions>"#
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Head, then a Content-Length body (POST).
            loop {
                let text = String::from_utf8_lossy(&req).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req).into_owned();
            let (code, answer) = if text.starts_with("GET ") {
                (200, wsdl.clone())
            } else {
                (status, body.to_owned())
            };
            keep.lock().unwrap().push(text);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (format!("{base}?wsdl"), seen)
}

#[test]
fn the_call_follows_the_wsdl_and_a_fault_is_reported() {
    let ok = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r:nowResponse xmlns:r="urn:t"><r:nowResult>09/10/2011 12:13:14</r:nowResult></r:nowResponse></s:Body></s:Envelope>"#;
    let (wsdl, seen) = fake_soap(200, ok);
    let share = tempfile::tempdir().unwrap();
    assert_eq!(
        datetime_sent(Some(&wsdl), None, share.path()),
        "09/10/2011 12:13:14"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one WSDL read, one call: {seen:?}");
    let post = seen[1].to_ascii_lowercase();
    assert!(post.starts_with("post /soap "), "{post}");
    assert!(post.contains("soapaction: \"urn:t#now\""), "{post}");
    assert!(
        post.contains("content-type: text/xml; charset=utf-8"),
        "{post}"
    );
    assert!(seen[1].contains(r#"xmlns:tns="urn:t""#) && seen[1].contains("<tns:now/>"));

    let fault = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Server</faultcode><faultstring>clock on fire</faultstring></s:Fault></s:Body></s:Envelope>"#;
    let (wsdl, _) = fake_soap(500, fault);
    let index = FakeIndex::start();
    let mut cmd = Command::new(bin());
    cmd.args(["client", "-s", "127.0.0.1", "-p"])
        .arg(index.addr.port().to_string())
        .arg("--share")
        .arg(share.path())
        .args(["--time-url", &wsdl]);
    let mut c = Client::spawn(cmd);
    assert_eq!(c.cmd("REGISTER alice"), "c> REGISTER OK");
    assert!(c.stderr_has("clock on fire"), "{:?}", c.stderr());
    c.send("QUIT");
}
