//! The time service, as a real process on a real socket: raw HTTP requests, and a
//! real SOAP client (Python's zeep) built from the WSDL it serves.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use support::*;

/// DATETIME as the statements give it (../shared/STATEMENTS.md): `dd/mm/yyyy
/// hh:mm:ss`, a real local date and time.
mod clock {
    pub const FORMAT: &str = "%d/%m/%Y %H:%M:%S";

    pub fn is_datetime(s: &str) -> bool {
        s.len() == 19 && chrono::NaiveDateTime::parse_from_str(s, FORMAT).is_ok()
    }
}

/// A running time service.
struct TimeSvc {
    proc: Proc,
    addr: SocketAddr,
}

impl TimeSvc {
    fn start(extra: &[&str]) -> TimeSvc {
        let mut args = vec!["time", "--port", "0", "--bind", "127.0.0.1"];
        args.extend_from_slice(extra);
        let proc = Proc::start(&args);
        let line = proc
            .wait_line(Duration::from_secs(10), |l| {
                l.starts_with("time service on http://")
            })
            .expect("the time service did not print its start line");
        let addr = line["time service on http://".len()..]
            .trim_end_matches('/')
            .parse()
            .expect("start line address");
        TimeSvc { proc, addr }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn parse(raw: &[u8]) -> Resp {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
        let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Resp {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body is exactly as long as Content-Length says.
    fn check_length(&self) {
        let n: usize = self
            .header("content-length")
            .expect("content-length")
            .parse()
            .unwrap();
        assert_eq!(n, self.body.len(), "{self:?}");
    }
}

fn http(addr: SocketAddr, raw: &str) -> Resp {
    Resp::parse(&exchange(addr, raw.as_bytes()))
}

fn get(addr: SocketAddr, target: &str, extra: &str) -> Resp {
    http(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n"),
    )
}

fn soap_post(addr: SocketAddr, action: &str, envelope: &str) -> Resp {
    http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: {action}\r\nContent-Length: {}\r\n\r\n{envelope}",
            envelope.len()
        ),
    )
}

const GET_TIME: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body><ns0:get_time xmlns:ns0="urn:peerdex:time"/></soap-env:Body></soap-env:Envelope>"#;

/// One element of a parsed XML document.
#[derive(Debug)]
struct Elem {
    ns: String,
    local: String,
    text: String,
    attrs: Vec<(String, String)>,
}

/// Every element of a well-formed XML document, in document order; panics if the
/// document is not well-formed.
fn xml_elements(doc: &str) -> Vec<Elem> {
    let mut reader = NsReader::from_str(doc);
    let mut out: Vec<Elem> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{doc}"));
        let ns = match ns {
            quick_xml::name::ResolveResult::Bound(n) => {
                String::from_utf8(n.as_ref().to_vec()).unwrap()
            }
            _ => String::new(),
        };
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                open.pop();
                continue;
            }
            Event::Text(t) => {
                if let Some(&i) = open.last() {
                    out[i].text.push_str(&t.decode().unwrap());
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let attrs = e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().unwrap().into_owned(),
                )
            })
            .collect();
        out.push(Elem {
            ns,
            local: String::from_utf8(e.local_name().as_ref().to_vec()).unwrap(),
            text: String::new(),
            attrs,
        });
        if !empty {
            open.push(out.len() - 1);
        }
    }
    assert!(open.is_empty(), "unclosed elements in\n{doc}");
    out
}

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const WSDL_SOAP: &str = "http://schemas.xmlsoap.org/wsdl/soap/";

fn find<'a>(elems: &'a [Elem], ns: &str, local: &str) -> Option<&'a Elem> {
    elems.iter().find(|e| e.ns == ns && e.local == local)
}

fn attr<'a>(e: &'a Elem, name: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The faultcode of a SOAP Fault response (HTTP 500, text/xml).
fn fault_code(r: &Resp) -> String {
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    let elems = xml_elements(&r.text());
    assert!(find(&elems, SOAP_ENV, "Fault").is_some(), "{}", r.text());
    let code = elems
        .iter()
        .find(|e| e.local == "faultcode")
        .expect("faultcode");
    assert!(
        elems
            .iter()
            .any(|e| e.local == "faultstring" && !e.text.is_empty())
    );
    code.text.clone()
}

#[test]
fn get_answers_the_time_as_plain_text() {
    let t = TimeSvc::start(&[]);
    let r = get(t.addr, "/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.check_length();
    // Exactly the DATETIME, no trailing newline.
    assert!(clock::is_datetime(&r.text()), "{:?}", r.text());
    // HTTP/1.0 without a Host header works too (the lab's clients).
    let r = http(t.addr, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(clock::is_datetime(&r.text()), "{:?}", r.text());
}

#[test]
fn head_answers_headers_only() {
    let t = TimeSvc::start(&[]);
    let r = http(t.addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("19"));
    assert!(r.body.is_empty());
}

fn check_json(r: &Resp) {
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.check_length();
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    let obj = v.as_object().expect("a JSON object");
    assert_eq!(obj.len(), 2, "{v}");
    let datetime = v["datetime"].as_str().expect("datetime string");
    assert!(clock::is_datetime(datetime), "{datetime}");
    let ms = v["unix_ms"].as_i64().expect("unix_ms integer");
    // Both fields describe the same instant.
    let local = chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&chrono::Local)
        .format(clock::FORMAT)
        .to_string();
    assert_eq!(local, datetime);
}

#[test]
fn json_by_query() {
    let t = TimeSvc::start(&[]);
    check_json(&get(t.addr, "/?format=json", ""));
    // format=text wins over an Accept asking for JSON.
    let r = get(t.addr, "/?format=text", "Accept: application/json\r\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(get(t.addr, "/?format=yaml", "").status, 400);
}

#[test]
fn json_by_accept_header() {
    let t = TimeSvc::start(&[]);
    check_json(&get(
        t.addr,
        "/",
        "Accept: text/html;q=0.9, application/json\r\n",
    ));
}

#[test]
fn any_get_path_answers_the_time_as_text() {
    let t = TimeSvc::start(&[]);
    for path in ["/fecha", "/time", "/a/b?x=1", "/datetime?format=text"] {
        let r = get(t.addr, path, "");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
        r.check_length();
        assert!(clock::is_datetime(&r.text()), "{path}: {:?}", r.text());
    }
    // HTTP/1.0, no Host, as a hand-written client sends it.
    let r = http(t.addr, "GET /fecha HTTP/1.0\r\n\r\n");
    assert!(clock::is_datetime(&r.text()), "{:?}", r.text());
}

#[test]
fn json_at_the_datetime_path_and_by_accept_on_any_path() {
    let t = TimeSvc::start(&[]);
    check_json(&get(t.addr, "/datetime", ""));
    check_json(&get(t.addr, "/fecha", "Accept: application/json\r\n"));
}

/// A SOAP 1.1 call of `op` in peerdex's namespace, with `inner` inside the wrapper.
fn call_of(op: &str, inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body><ns0:{op} xmlns:ns0="urn:peerdex:time">{inner}</ns0:{op}></soap-env:Body></soap-env:Envelope>"#
    )
}

#[test]
fn soap_answers_each_operation_in_its_own_response_element() {
    let t = TimeSvc::start(&[]);
    for op in ["get_time", "get_datetime", "get_current_datetime"] {
        // With and without a dummy argument, as students' clients send them.
        for inner in ["", "<ns0:dummy>x</ns0:dummy>"] {
            let r = soap_post(t.addr, &format!("\"{op}\""), &call_of(op, inner));
            assert_eq!(r.status, 200, "{op}: {r:?}");
            let elems = xml_elements(&r.text());
            assert!(
                find(&elems, "urn:peerdex:time", &format!("{op}Response")).is_some(),
                "{op}: {}",
                r.text()
            );
            let result = find(&elems, "urn:peerdex:time", &format!("{op}Result"))
                .unwrap_or_else(|| panic!("{op}: no result in {}", r.text()));
            assert!(clock::is_datetime(&result.text), "{op}: {:?}", result.text);
        }
    }
    // The WSDL offers all three, each with its own SOAPAction.
    let elems = xml_elements(&get(t.addr, "/?wsdl", "").text());
    for op in ["get_time", "get_datetime", "get_current_datetime"] {
        assert!(
            elems.iter().any(|e| e.ns == WSDL_SOAP
                && e.local == "operation"
                && attr(e, "soapAction") == Some(op)),
            "{op}"
        );
    }
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"\"", &call_of("get_date", ""))),
        "soap:Client"
    );
}

#[test]
fn wsdl_is_well_formed_and_points_back_at_the_host_used() {
    let t = TimeSvc::start(&[]);
    let r = get(t.addr, "/?wsdl", "");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/xml"));
    r.check_length();
    let elems = xml_elements(&r.text());
    let address = find(&elems, WSDL_SOAP, "address").expect("soap:address");
    assert_eq!(
        attr(address, "location"),
        Some(format!("http://{}/", t.addr).as_str())
    );
    let binding = find(&elems, WSDL_SOAP, "binding").expect("soap:binding");
    assert_eq!(attr(binding, "style"), Some("document"));
    let op = find(&elems, WSDL_SOAP, "operation").expect("soap:operation");
    assert_eq!(attr(op, "soapAction"), Some("get_time"));
    assert!(
        elems
            .iter()
            .any(|e| e.local == "operation" && attr(e, "name") == Some("get_time"))
    );

    // Reached under another name, it names that one.
    let r = http(
        t.addr,
        "GET /?wsdl HTTP/1.1\r\nHost: time.example:8123\r\n\r\n",
    );
    let elems = xml_elements(&r.text());
    let address = find(&elems, WSDL_SOAP, "address").unwrap();
    assert_eq!(attr(address, "location"), Some("http://time.example:8123/"));

    // No Host header: the address the connection arrived on.
    let r = http(t.addr, "GET /?WSDL HTTP/1.0\r\n\r\n");
    let elems = xml_elements(&r.text());
    let address = find(&elems, WSDL_SOAP, "address").unwrap();
    assert_eq!(
        attr(address, "location"),
        Some(format!("http://{}/", t.addr).as_str())
    );

    // A Host header that would break out of the attribute is not used.
    let r = http(
        t.addr,
        "GET /?wsdl HTTP/1.1\r\nHost: a\"/><evil x=\"\r\n\r\n",
    );
    let elems = xml_elements(&r.text());
    assert!(!elems.iter().any(|e| e.local == "evil"));
    let address = find(&elems, WSDL_SOAP, "address").unwrap();
    assert_eq!(
        attr(address, "location"),
        Some(format!("http://{}/", t.addr).as_str())
    );
}

#[test]
fn soap_call_by_raw_post() {
    let t = TimeSvc::start(&[]);
    for action in ["\"get_time\"", "\"\"", "get_time"] {
        let r = soap_post(t.addr, action, GET_TIME);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("content-type").unwrap().starts_with("text/xml"));
        r.check_length();
        let elems = xml_elements(&r.text());
        assert_eq!(elems[0].ns, SOAP_ENV);
        assert_eq!(elems[0].local, "Envelope");
        assert!(find(&elems, "urn:peerdex:time", "get_timeResponse").is_some());
        let result = find(&elems, "urn:peerdex:time", "get_timeResult").expect("result");
        assert!(clock::is_datetime(&result.text), "{:?}", result.text);
    }
}

#[test]
fn malformed_soap_gets_a_client_fault() {
    let t = TimeSvc::start(&[]);
    let truncated = &GET_TIME[..GET_TIME.len() - 20];
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"get_time\"", truncated)),
        "soap:Client"
    );
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"get_time\"", "hello")),
        "soap:Client"
    );
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"get_time\"", "")),
        "soap:Client"
    );
    let other_op = GET_TIME.replace("get_time ", "get_date ");
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"\"", &other_op)),
        "soap:Client"
    );
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"get_date\"", GET_TIME)),
        "soap:Client"
    );
    let soap12 = GET_TIME.replace(SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope");
    assert_eq!(
        fault_code(&soap_post(t.addr, "\"get_time\"", &soap12)),
        "soap:VersionMismatch"
    );
    // No Content-Type at all is let through for hand-written clients.
    let r = http(
        t.addr,
        &format!(
            "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{GET_TIME}",
            GET_TIME.len()
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Not XML at all as a media type: 415, no envelope.
    let r = http(
        t.addr,
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(r.status, 415);
}

#[test]
fn unknown_paths_404_and_other_methods_405() {
    let t = TimeSvc::start(&[]);
    // Any GET path is the time (issue 25: REST clients ask /fecha, /time, ...);
    // the WSDL only at /?wsdl, SOAP only at /.
    assert_eq!(get(t.addr, "/time", "").status, 200);
    assert_eq!(get(t.addr, "/index.html?wsdl", "").status, 404);
    let r = soap_post(t.addr, "\"get_time\"", GET_TIME);
    assert_eq!(r.status, 200);
    let r = http(
        t.addr,
        &format!(
            "POST /soap HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{GET_TIME}",
            GET_TIME.len()
        ),
    );
    assert_eq!(r.status, 404);
    let r = http(t.addr, "PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(r.status, 405);
    let allow = r.header("allow").expect("Allow header");
    for m in ["GET", "HEAD", "POST"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert_eq!(http(t.addr, "DELETE / HTTP/1.1\r\n\r\n").status, 405);
    // Not HTTP at all.
    assert_eq!(http(t.addr, "hello there\r\n\r\n").status, 400);
}

#[test]
fn a_body_over_64_kib_is_refused() {
    let t = TimeSvc::start(&[]);
    // Announced and actually sent: refused, and the answer survives the unread body.
    let body = "x".repeat(64 * 1024 + 1);
    let r = soap_post(t.addr, "\"get_time\"", &body);
    assert_eq!(r.status, 413, "{r:?}");
    // Exactly the limit is read (and is not SOAP).
    let body = format!("{GET_TIME}{}", " ".repeat(64 * 1024 - GET_TIME.len()));
    let r = soap_post(t.addr, "\"get_time\"", &body);
    assert_eq!(r.status, 200, "{r:?}");
    // Announced huge, nothing sent: refused at once, without waiting for the body.
    let mut s = TcpStream::connect(t.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Length: 1000000000000\r\n\r\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(Resp::parse(&out).status, 413);
    // A chunked body has no length to check first.
    let r = http(
        t.addr,
        "POST / HTTP/1.1\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411);
    // An endless head is cut at 8 KiB.
    let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(20_000));
    assert_eq!(http(t.addr, &long).status, 431);
}

#[test]
fn a_slow_client_does_not_stop_others() {
    let t = TimeSvc::start(&["--timeout", "30"]);
    // One client sends half a request line and stays; another drips its request.
    let mut silent = TcpStream::connect(t.addr).unwrap();
    silent.write_all(b"GET / HT").unwrap();
    let addr = t.addr;
    let (go_on, resume) = std::sync::mpsc::channel::<()>();
    let (started, has_started) = std::sync::mpsc::channel::<()>();
    let dripper = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let request = b"GET /?format=json HTTP/1.1\r\nHost: slow\r\n\r\n";
        let (first, second) = request.split_at(20);
        // A deliberately slow client: the pauses pace its bytes, they wait for
        // nothing.
        for b in first {
            s.write_all(&[*b]).unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        started.send(()).unwrap();
        // Stay mid-request until the others have been served.
        resume.recv_timeout(Duration::from_secs(60)).unwrap();
        for b in second {
            s.write_all(&[*b]).unwrap();
            thread::sleep(Duration::from_millis(20));
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    });
    has_started
        .recv_timeout(Duration::from_secs(20))
        .expect("the slow client started");
    // Meanwhile others are served, one after another.
    for _ in 0..5 {
        let r = get(t.addr, "/", "");
        assert_eq!(r.status, 200);
        assert!(clock::is_datetime(&r.text()));
    }
    go_on.send(()).unwrap();
    // The slow ones are served too once they finish.
    check_json(&Resp::parse(&dripper.join().unwrap()));
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    silent.write_all(b"TP/1.1\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = silent.read_to_end(&mut out);
    assert_eq!(Resp::parse(&out).status, 200);
}

#[test]
fn a_silent_client_is_timed_out() {
    let t = TimeSvc::start(&["--timeout", "1"]);
    let mut s = TcpStream::connect(t.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert_eq!(Resp::parse(&out).status, 408);
}

#[test]
fn silent_clients_at_the_connection_cap_do_not_lock_others_out() {
    let t = TimeSvc::start(&["--max-connections", "2", "--timeout", "30"]);
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(t.addr).unwrap();
            (&s).write_all(b"GET").unwrap();
            s
        })
        .collect();
    for _ in 0..3 {
        let r = get(t.addr, "/", "");
        assert_eq!(r.status, 200);
    }
    drop(idle);
}

#[test]
fn stops_cleanly_on_sigint_and_sigterm() {
    for sig in ["INT", "TERM"] {
        let mut t = TimeSvc::start(&[]);
        assert_eq!(get(t.addr, "/", "").status, 200);
        t.proc.signal(sig);
        let status = t
            .proc
            .wait_exit(Duration::from_secs(10))
            .expect("did not stop");
        assert!(status.success(), "{sig}: {status:?}");
        // The stdout reader may still be catching up with the exited process.
        assert!(
            t.proc
                .wait_line(Duration::from_secs(5), |l| l == "time service stopped")
                .is_some(),
            "{sig}: no stop line in {:?}",
            t.proc.lines()
        );
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let run = run_to_exit(
        Command::new(bin()).args(["time", "--bind", "127.0.0.1", "--port", &port]),
        Duration::from_secs(10),
        "did not exit on a taken port",
    )
    .unwrap();
    assert!(!run.status.success());
    let err = run.stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&port) && err.contains("already in use"),
        "{err}"
    );
}

/// Runs a partner client (a python3 script) to its end; None when it cannot run
/// here: python3 missing, or the script exits 3 (a module it needs is missing).
/// Skips are recorded like every system test's, and fail under
/// PEERDEX_REQUIRE_SYSTEM_TESTS=1.
fn partner_client(test: &str, script: &str, args: &[&str]) -> Option<Finished> {
    let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let run = run_to_exit(
        Command::new("python3").arg(&script).args(args),
        Duration::from_secs(60),
        &format!("{script} did not finish"),
    );
    let missing = match run {
        Ok(f) if f.status.code() == Some(3) => f.stderr.trim().to_owned(),
        Ok(f) => return Some(f),
        Err(e) => format!("python3 ({e})"),
    };
    require_tools(test, &[missing]);
    None
}

#[test]
fn a_zeep_client_built_from_the_wsdl_gets_the_time() {
    let t = TimeSvc::start(&[]);
    // Through "localhost", so the WSDL must name that host for the call to arrive.
    let url = format!("http://localhost:{}/", t.addr.port());
    let Some(run) = partner_client(
        "a_zeep_client_built_from_the_wsdl_gets_the_time",
        "soap_client.py",
        &[&url],
    ) else {
        return;
    };
    assert!(run.status.success(), "zeep client failed: {}", run.stderr);
    assert!(
        clock::is_datetime(run.stdout.trim()),
        "zeep got {:?}",
        run.stdout
    );
}

#[test]
fn zeep_clients_call_each_operation_name() {
    let t = TimeSvc::start(&[]);
    let wsdl = format!("http://localhost:{}/?wsdl", t.addr.port());
    for op in ["get_time", "get_datetime", "get_current_datetime"] {
        let Some(run) = partner_client(
            "zeep_clients_call_each_operation_name",
            "partners/time/zeep_client.py",
            &[&wsdl, op],
        ) else {
            return;
        };
        assert!(run.status.success(), "zeep {op}: {}", run.stderr);
        assert!(
            clock::is_datetime(run.stdout.trim()),
            "{op}: {:?}",
            run.stdout
        );
    }
}

/// A student whose own service declares a dummy input part calls the operation with
/// an argument; zeep refuses that before sending unless the WSDL declares an input
/// (here an optional one, so calls without it still work).
#[test]
fn zeep_clients_passing_a_dummy_argument_get_the_time() {
    let t = TimeSvc::start(&[]);
    let wsdl = format!("http://localhost:{}/?wsdl", t.addr.port());
    for op in ["get_time", "get_datetime", "get_current_datetime"] {
        let Some(run) = partner_client(
            "zeep_clients_passing_a_dummy_argument_get_the_time",
            "partners/time/zeep_client.py",
            &[&wsdl, op, "0"],
        ) else {
            return;
        };
        assert!(run.status.success(), "zeep {op}(\"0\"): {}", run.stderr);
        assert!(
            clock::is_datetime(run.stdout.trim()),
            "{op}: {:?}",
            run.stdout
        );
    }
}

#[test]
fn rest_clients_get_text_at_fecha_and_json_at_datetime() {
    let t = TimeSvc::start(&[]);
    let base = format!("http://127.0.0.1:{}", t.addr.port());
    let cases: [(String, &str, &[&str]); 3] = [
        (format!("{base}/fecha"), "text", &[]),
        (format!("{base}/datetime"), "json", &[]),
        (format!("{base}/"), "json", &["--accept"]),
    ];
    for (url, kind, extra) in &cases {
        let mut args = vec![url.as_str(), *kind];
        args.extend_from_slice(extra);
        let Some(run) = partner_client(
            "rest_clients_get_text_at_fecha_and_json_at_datetime",
            "partners/time/rest_client.py",
            &args,
        ) else {
            return;
        };
        assert!(run.status.success(), "{url} {kind}: {}", run.stderr);
        assert!(
            clock::is_datetime(run.stdout.trim()),
            "{url}: {:?}",
            run.stdout
        );
    }
}
