//! The client's SOAP time source (PROTOCOL.md section 4): given a WSDL address
//! (`--time-url http://host:port/?wsdl`, or the `WSDL_URL` variable) it reads the
//! WSDL and stamps every request with the string the SOAP operation returns.
//! Partners: the course's spyne service (tests/partners/spyne_time.py, skipped
//! visibly without spyne and lxml), peerdex's own time service, and the statement
//! dialects of tests/partners/time/: spyne services named get_datetime (with a
//! mandatory dummy input) and get_current_datetime, and python3 http.server REST
//! services answering text at /fecha and JSON at /datetime.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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

/// Starts a partner service (a python3 script under tests/ that prints `listening
/// <port>` once bound) and waits until its port accepts; None (a recorded skip, a
/// failure under PEERDEX_REQUIRE_SYSTEM_TESTS=1) when python3 or one of `modules`
/// is missing.
fn partner_service(
    test: &str,
    modules: &[&str],
    script: &str,
    args: &[&str],
) -> Option<(Proc, u16)> {
    let mut check = String::from("import sys");
    for m in modules {
        check.push_str(&format!(", {m}"));
    }
    let has = Command::new("python3")
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = if has {
        vec![]
    } else if modules.is_empty() {
        vec!["python3".to_owned()]
    } else {
        vec![format!(
            "python3 with {} (pip install {})",
            modules.join(", "),
            modules.join(" ")
        )]
    };
    if !require_tools(test, &missing) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let p = Proc::start_with(
        Command::new("python3")
            .arg(script)
            .args(args)
            .stdin(Stdio::null()),
    );
    let line = p
        .wait_line(Duration::from_secs(30), |l| l.starts_with("listening "))
        .unwrap_or_else(|| panic!("{test}: the partner did not start: {:?}", p.err_lines()));
    let port: u16 = line["listening ".len()..].trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{test}: port {port} never accepted"
        );
        thread::yield_now();
    }
    Some((p, port))
}

/// The course's spyne service (tests/partners/spyne_time.py: get_time), or None.
fn spyne(fixed: &str) -> Option<(Proc, u16)> {
    partner_service(
        "spyne time service test",
        &["spyne", "lxml"],
        "partners/spyne_time.py",
        &["--port", "0", "--fixed", fixed],
    )
}

#[test]
fn a_spyne_soap_service_stamps_requests_by_option_and_by_wsdl_url() {
    let fixed = "01/02/2003 04:05:06";
    let Some((mut svc, port)) = spyne(fixed) else {
        return;
    };
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

const FIXED: &str = "05/06/2007 08:09:10";

/// A spyne partner of tests/partners/time/ offering `op` (with `--dummy` in
/// `extra` when asked), or None.
fn statement_soap(test: &str, op: &str, extra: &[&str]) -> Option<(Proc, u16)> {
    let mut args = vec!["--port", "0", "--operation", op, "--fixed", FIXED];
    args.extend_from_slice(extra);
    partner_service(
        test,
        &["spyne", "lxml"],
        "partners/time/soap_service.py",
        &args,
    )
}

#[test]
fn a_get_datetime_service_with_a_dummy_input_gets_the_dummy() {
    let test = "a_get_datetime_service_with_a_dummy_input_gets_the_dummy";
    let Some((svc, port)) = statement_soap(test, "get_datetime", &["--dummy"]) else {
        return;
    };
    let share = tempfile::tempdir().unwrap();
    let wsdl = format!("http://127.0.0.1:{port}/?wsdl");
    assert_eq!(datetime_sent(Some(&wsdl), None, share.path()), FIXED);
    // The call carried the declared input (spyne would have answered a Fault
    // without it, and the client would have used the local clock).
    assert!(
        svc.wait_line(Duration::from_secs(10), |l| l
            == "call get_datetime dummy=0")
            .is_some(),
        "{:?}",
        svc.lines()
    );
}

#[test]
fn a_get_current_datetime_service_is_called_by_that_name() {
    let test = "a_get_current_datetime_service_is_called_by_that_name";
    let Some((svc, port)) = statement_soap(test, "get_current_datetime", &[]) else {
        return;
    };
    let share = tempfile::tempdir().unwrap();
    let wsdl = format!("http://127.0.0.1:{port}/?wsdl");
    assert_eq!(datetime_sent(None, Some(&wsdl), share.path()), FIXED);
    assert!(
        svc.wait_line(Duration::from_secs(10), |l| l
            .starts_with("call get_current_datetime"))
            .is_some()
    );
}

#[test]
fn a_rest_service_answering_text_at_fecha() {
    let Some((svc, port)) = partner_service(
        "a_rest_service_answering_text_at_fecha",
        &[],
        "partners/time/rest_service.py",
        &["--port", "0", "--style", "text", "--fixed", FIXED],
    ) else {
        return;
    };
    let share = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/fecha");
    assert_eq!(datetime_sent(Some(&url), None, share.path()), FIXED);
    assert!(
        svc.wait_line(Duration::from_secs(10), |l| l == "request /fecha")
            .is_some()
    );
}

#[test]
fn a_rest_service_answering_json_at_datetime() {
    let Some((_svc, port)) = partner_service(
        "a_rest_service_answering_json_at_datetime",
        &[],
        "partners/time/rest_service.py",
        &["--port", "0", "--style", "json", "--fixed", FIXED],
    ) else {
        return;
    };
    let share = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/datetime");
    assert_eq!(datetime_sent(Some(&url), None, share.path()), FIXED);
}

/// An HTTP service of its own answering every GET with `content_type` and `body`.
fn fake_rest(content_type: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/now", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn json_is_told_by_content_type_or_body_and_validated() {
    let share = tempfile::tempdir().unwrap();
    // A JSON string (FastAPI returning a str), and an object labelled text/html.
    let url = fake_rest("application/json", "\"11/12/2013 14:15:16\"");
    assert_eq!(
        datetime_sent(Some(&url), None, share.path()),
        "11/12/2013 14:15:16"
    );
    let url = fake_rest("text/html", "{\"datetime\": \"11/12/2013 14:15:17\"}");
    assert_eq!(
        datetime_sent(Some(&url), None, share.path()),
        "11/12/2013 14:15:17"
    );
    // An object whose datetime is not a DATETIME: the local clock, and the reason.
    let url = fake_rest(
        "application/json",
        "{\"datetime\": \"2013-12-11T14:15:16\"}",
    );
    let index = FakeIndex::start();
    let mut cmd = Command::new(bin());
    cmd.args(["client", "-s", "127.0.0.1", "-p"])
        .arg(index.addr.port().to_string())
        .arg("--share")
        .arg(share.path())
        .args(["--time-url", &url])
        .env_remove("WSDL_URL");
    let mut c = Client::spawn(cmd);
    assert_eq!(c.cmd("REGISTER alice"), "c> REGISTER OK");
    c.send("QUIT");
    let _ = c.proc.wait_exit(Duration::from_secs(10));
    assert!(
        c.stderr_has("is not a DATETIME") && c.stderr_has("using the local clock"),
        "{:?}",
        c.stderr()
    );
    assert_ne!(index.requests()[0][1], "2013-12-11T14:15:16");
}
