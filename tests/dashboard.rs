//! The index server's dashboard (`--http`): the JSON API's shapes, the search cap,
//! the live event feed, a slow event reader dropped with memory flat, and the page
//! in a real browser (Chromium through Selenium WebDriver: tests/browser/dashboard.py).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, code, free_port};

const DT: &str = "01/02/2025 10:11:12";

/// A server with the dashboard on a free loopback port.
fn start() -> (Server, SocketAddr) {
    let port = free_port();
    let server = Server::start(&["--http", &port.to_string(), "--probe-interval", "0"]);
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        support::wait_until(Duration::from_secs(5), || TcpStream::connect(http).is_ok()),
        "dashboard not listening"
    );
    (server, http)
}

/// One HTTP/1.1 GET; returns the status, the head and the body (at most 5 s).
fn get(http: SocketAddr, target: &str) -> (u16, String, Vec<u8>) {
    request(http, &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

fn request(http: SocketAddr, raw: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(out[..end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, out[end + 4..].to_vec())
}

fn json(http: SocketAddr, target: &str) -> Value {
    let (status, head, body) = get(http, target);
    assert_eq!(status, 200, "{target}: {head}");
    assert!(
        head.contains("\r\nContent-Type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nCache-Control: no-store"), "{head}");
    serde_json::from_slice(&body).unwrap()
}

fn register_connect(addr: SocketAddr, user: &str, port: &str) {
    assert_eq!(code(addr, &["REGISTER", DT, user]), 0);
    assert_eq!(code(addr, &["CONNECT", DT, user, port]), 0);
}

fn publish(addr: SocketAddr, user: &str, file: &str, description: &str) {
    assert_eq!(code(addr, &["PUBLISH", DT, user, file, description]), 0);
}

#[test]
fn api_shapes_after_a_session() {
    let (server, http) = start();
    let addr = server.addr;
    register_connect(addr, "ana", "5001");
    assert_eq!(code(addr, &["REGISTER", DT, "bob"]), 0);
    publish(addr, "ana", "notes.txt", "week 1 notes");
    publish(addr, "ana", "song.mp3", "");

    let users = json(http, "/api/users");
    assert_eq!(users["users"].as_array().unwrap().len(), 2);
    let ana = &users["users"][0];
    assert_eq!(ana["name"], "ana");
    assert_eq!(ana["connected"], true);
    assert_eq!(ana["ip"], "127.0.0.1");
    assert_eq!(ana["port"], 5001);
    assert_eq!(ana["files"], 2);
    let since = ana["connected_since"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(since).is_ok() && since.ends_with('Z'),
        "{since}"
    );
    let bob = &users["users"][1];
    assert_eq!(
        bob,
        &serde_json::json!({"name":"bob","connected":false,"ip":null,"port":null,"files":0,"connected_since":null})
    );

    let files = json(http, "/api/files");
    assert_eq!(
        files,
        serde_json::json!({"files":[
            {"user":"ana","file":"notes.txt","description":"week 1 notes"},
            {"user":"ana","file":"song.mp3","description":""}],
            "next":null})
    );
    assert_eq!(
        json(http, "/api/files?user=bob"),
        serde_json::json!({"files":[],"next":null})
    );
    assert_eq!(
        json(http, "/api/files?user=an%61")["files"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let search = json(http, "/api/search?q=notes");
    assert_eq!(
        search["results"],
        serde_json::json!([{"file":"notes.txt","description":"week 1 notes","user":"ana","ip":"127.0.0.1","port":5001}])
    );
    assert!(search["cap"].as_u64().unwrap() > 0);

    let stats = json(http, "/api/stats");
    assert_eq!(stats["users_registered"], 2);
    assert_eq!(stats["users_connected"], 1);
    assert_eq!(stats["publications"], 2);
    assert_eq!(stats["requests"]["REGISTER"], 2);
    assert_eq!(stats["requests"]["CONNECT"], 1);
    assert_eq!(stats["requests"]["PUBLISH"], 2);
    assert!(stats["requests_per_second"].is_number());
    assert!(stats["uptime_seconds"].is_u64());

    // The page, errors, and nothing on HTTP changes the registry.
    let (status, head, body) = get(http, "/");
    assert_eq!(status, 200);
    assert!(head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert!(String::from_utf8_lossy(&body).contains("/api/events"));
    assert_eq!(get(http, "/nope").0, 404);
    assert_eq!(get(http, "/api/search").0, 400);
    assert_eq!(get(http, "/api/search?q=%zz").0, 400);
    let post = "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(request(http, post).0, 405);
    let delete = "DELETE /api/files?user=ana HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(request(http, delete).0, 405);
    assert_eq!(json(http, "/api/stats")["publications"], 2);
}

#[test]
fn search_is_capped() {
    let (server, http) = start();
    let addr = server.addr;
    register_connect(addr, "ana", "5001");
    let cap = json(http, "/api/search?q=x")["cap"].as_u64().unwrap() as usize;
    for i in 0..cap + 5 {
        publish(addr, "ana", &format!("file-{i}.txt"), "");
    }
    let all = json(http, "/api/search?q=file-");
    assert_eq!(all["results"].as_array().unwrap().len(), cap);
    // The same order as the protocol's SEARCH: publication order.
    assert_eq!(all["results"][0]["file"], "file-0.txt");
    let one = json(http, &format!("/api/search?q=file-{}.", cap + 4));
    assert_eq!(one["results"].as_array().unwrap().len(), 1);
}

/// Opens `/api/events` and returns the stream after the response head.
fn open_events(http: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "stream closed in the head");
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

#[test]
fn an_event_arrives_within_a_second_of_a_register() {
    let (server, http) = start();
    let (mut s, head) = open_events(http);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nCache-Control: no-cache\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(!head.contains("Content-Security-Policy"), "{head}");

    let sent = Instant::now();
    assert_eq!(code(server.addr, &["REGISTER", DT, "eve"]), 0);
    let deadline = sent + Duration::from_secs(1);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    let event = loop {
        if let Some(line) = text.lines().find(|l| l.starts_with("data: ")) {
            break line.to_owned();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no event within a second; got {text:?}");
        s.set_read_timeout(Some(left)).unwrap();
        let n = s.read(&mut buf).expect("no event within a second");
        assert!(n > 0, "stream closed");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    };
    let ev: Value = serde_json::from_str(&event["data: ".len()..]).unwrap();
    assert_eq!(
        ev,
        serde_json::json!({"op":"REGISTER","user":"eve","datetime":DT,"code":0})
    );
}

#[test]
fn a_slow_event_reader_is_dropped_and_memory_stays_flat() {
    let (server, http) = start();
    let addr = server.addr;
    // Connects, reads the head, then never reads again.
    let (mut slow, _) = open_events(http);
    let requests = 20_000;
    let workers = 8;
    let mut rss_early = 0;
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            thread::spawn(move || {
                for i in (w..requests).step_by(workers) {
                    // A taken name: a fast answer that is an event all the same.
                    let _ = support::call(addr, &["REGISTER", DT, &format!("u{}", i % 50)]);
                }
            })
        })
        .collect();
    let started = Instant::now();
    while !threads.iter().all(|t| t.is_finished()) {
        if rss_early == 0 && started.elapsed() > Duration::from_secs(1) {
            rss_early = server.proc.rss_kib();
        }
        thread::sleep(Duration::from_millis(50));
    }
    for t in threads {
        t.join().unwrap();
    }
    let rss_end = server.proc.rss_kib();
    if rss_early == 0 {
        rss_early = rss_end;
    }
    // Dropped: the stream ends (after what the socket buffers held) within the
    // write timeout.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sink = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = loop {
        match slow.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) if Instant::now() < deadline => continue,
            _ => break false,
        }
    };
    assert!(closed, "the slow reader's stream was not closed");
    // Flat: 20,000 events (about 2 MB of JSON) did not pile up for the reader.
    assert!(
        rss_end < rss_early + 8 * 1024,
        "RSS grew from {rss_early} KiB to {rss_end} KiB"
    );
    // The server still answers, and a new event reader is welcome.
    assert_eq!(code(addr, &["REGISTER", DT, "after"]), 0);
    let (_s, head) = open_events(http);
    assert!(head.starts_with("HTTP/1.1 200 "));
}

/// Reads SSE frames from `s` until `n` events (frames with `data:`) arrived;
/// returns (id, JSON) pairs.
fn read_events(s: &mut TcpStream, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter(|f| f.contains("data: "))
            .filter_map(|frame| {
                let id = frame.lines().find_map(|l| l.strip_prefix("id: "))?;
                let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((id.to_owned(), serde_json::from_str(data).ok()?))
            })
            .collect();
        // A frame is whole once its blank line arrived.
        let whole = text.matches("\n\n").count();
        if events.len() >= n && whole >= events.len() {
            return events;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{n} events not within 30 s; got {text:?}");
        s.set_read_timeout(Some(left)).unwrap();
        let k = s.read(&mut buf).expect("events");
        assert!(k > 0, "stream closed; got {text:?}");
        text.push_str(std::str::from_utf8(&buf[..k]).unwrap());
    }
}

fn open_events_with(http: SocketAddr, extra: &str) -> TcpStream {
    let mut s = TcpStream::connect(http).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    s
}

#[test]
fn a_new_page_gets_the_backlog_and_a_reconnect_continues_without_duplicates() {
    let (server, http) = start();
    let addr = server.addr;
    for i in 0..60 {
        assert_eq!(code(addr, &["REGISTER", DT, &format!("u{i:02}")]), 0);
    }
    // Made before the stream opened: the last 50 of them.
    let mut s = open_events_with(http, "");
    let backlog = read_events(&mut s, 50);
    let users: Vec<&str> = backlog
        .iter()
        .map(|(_, e)| e["user"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (10..60).map(|i| format!("u{i:02}")).collect();
    assert_eq!(users, want);
    let last_id = backlog.last().unwrap().0.clone();
    drop(s);
    // Missed while away, then the browser reconnects with Last-Event-ID.
    register_connect(addr, "ana", "5001");
    assert_eq!(code(addr, &["LIST_CONTENT", DT, "ana", "ana"]), 0);
    assert_eq!(code(addr, &["LIST_CONTENT", DT, "ana", "nobody"]), 3);
    assert_eq!(code(addr, &["SEARCH", DT, "ana", "lab"]), 0);
    let mut s = open_events_with(http, &format!("Last-Event-ID: {last_id}\r\n"));
    let missed = read_events(&mut s, 5);
    let ops: Vec<&str> = missed
        .iter()
        .map(|(_, e)| e["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "REGISTER",
            "CONNECT",
            "LIST_CONTENT",
            "LIST_CONTENT",
            "SEARCH"
        ],
        "exactly what was missed, nothing twice: {missed:?}"
    );
    assert_eq!(missed[2].1["target"], "ana");
    assert_eq!(missed[2].1["auto"], "after CONNECT", "{:?}", missed[2]);
    assert_eq!(missed[3].1["meaning"], "REMOTE USER DOES NOT EXIST");
    assert!(missed[3].1.get("auto").is_none());
    assert_eq!(missed[4].1["pattern"], "lab");
    // The page's own reconnect names the id in the query instead.
    let id = missed[1].0.clone();
    let mut s = TcpStream::connect(http).unwrap();
    write!(
        s,
        "GET /api/events?last-event-id={id} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let again = read_events(&mut s, 3);
    assert_eq!(again[0].1["op"], "LIST_CONTENT");
    assert_eq!(again[2].1["op"], "SEARCH");
}

/// python3 with prometheus_client, or why not.
fn prometheus_parser_missing() -> Vec<String> {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        vec![]
    } else {
        vec!["python3 prometheus_client (pip install prometheus_client)".to_owned()]
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let (server, http) = start();
    let addr = server.addr;
    // The format's own checks (independent of any parser): head and shape.
    register_connect(addr, "ana", "5001");
    publish(addr, "ana", "notes.txt", "");
    assert_eq!(code(addr, &["REGISTER", DT, "ana"]), 1);
    assert_eq!(code(addr, &["LIST_USERS", DT, "ghost"]), 1);
    let (status, head, body) = get(http, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with('\n'));
    if !support::require_tools(
        "metrics_parse_as_prometheus_text_and_count_what_happened",
        &prometheus_parser_missing(),
    ) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/metrics.py");
    let run = support::run_to_exit(
        Command::new("python3")
            .arg(script)
            .arg(format!("http://{http}/metrics")),
        Duration::from_secs(60),
        "the metrics parser",
    )
    .unwrap();
    assert!(
        run.status.success(),
        "parser failed: {}\n{text}",
        run.stderr
    );
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    let fams = &v["families"];
    let sample = |family: &str, name: &str, labels: Value| -> f64 {
        fams[family]["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("no family {family}: {text}"))
            .iter()
            .find(|s| s[0] == name && s[1] == labels)
            .unwrap_or_else(|| panic!("no {name} {labels} in {text}"))[2]
            .as_f64()
            .unwrap()
    };
    assert_eq!(fams["peerdex_index_requests"]["type"], "counter");
    let req = |op: &str, code: &str, result: &str| {
        sample(
            "peerdex_index_requests",
            "peerdex_index_requests_total",
            serde_json::json!({"op": op, "code": code, "result": result}),
        )
    };
    assert_eq!(req("REGISTER", "0", "ok"), 1.0);
    assert_eq!(req("REGISTER", "1", "username_in_use"), 1.0);
    assert_eq!(req("LIST_USERS", "1", "user_does_not_exist"), 1.0);
    assert_eq!(req("PUBLISH", "0", "ok"), 1.0);
    let lat = "peerdex_index_request_duration_seconds";
    assert_eq!(fams[lat]["type"], "histogram");
    assert_eq!(
        sample(lat, &format!("{lat}_count"), serde_json::json!({})),
        5.0
    );
    assert_eq!(
        sample(
            lat,
            &format!("{lat}_bucket"),
            serde_json::json!({"le": "+Inf"})
        ),
        5.0
    );
    let one = |name: &str| sample(name, name, serde_json::json!({}));
    assert_eq!(one("peerdex_users_registered"), 1.0);
    assert_eq!(one("peerdex_users_connected"), 1.0);
    assert_eq!(one("peerdex_publications"), 1.0);
    assert_eq!(one("peerdex_search_index_publications"), 1.0);
    assert!(one("peerdex_index_connection_cap") >= 1.0);
    assert!(one("peerdex_index_open_connections") >= 0.0);
    assert_eq!(
        sample(
            "peerdex_index_evictions",
            "peerdex_index_evictions_total",
            serde_json::json!({})
        ),
        0.0
    );
    for fam in [
        "peerdex_reply_budget_waits",
        "peerdex_reply_budget_refusals",
        "peerdex_reply_budget_bytes",
        "peerdex_audit_enabled",
        "peerdex_dashboard_event_clients",
    ] {
        assert!(fams.get(fam).is_some(), "no {fam}: {text}");
    }
}

#[test]
fn metrics_show_the_audit_spool_waiting_for_an_unreachable_logger() {
    let spool = tempfile::tempdir().unwrap();
    let port = free_port();
    let nowhere = format!("127.0.0.1:{}", free_port());
    let spool_dir = spool.path().to_str().unwrap();
    let server = Server::start(&[
        "--http",
        &port.to_string(),
        "--probe-interval",
        "0",
        "--logger",
        &nowhere,
        "--spool",
        spool_dir,
    ]);
    let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(support::wait_until(Duration::from_secs(5), || {
        TcpStream::connect(http).is_ok()
    }));
    for i in 0..3 {
        assert_eq!(code(server.addr, &["REGISTER", DT, &format!("a{i}")]), 0);
    }
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let mut text = String::new();
    let down = support::wait_until(Duration::from_secs(30), || {
        text = String::from_utf8(get(http, "/metrics").2).unwrap();
        value(&text, "peerdex_audit_shipper_state{state=\"down\"}") == Some(1.0)
    });
    assert!(down, "the shipper never showed the logger down:\n{text}");
    assert_eq!(value(&text, "peerdex_audit_enabled"), Some(1.0));
    assert_eq!(
        value(&text, "peerdex_audit_spool_records"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(value(&text, "peerdex_audit_dropped_total"), Some(0.0));
}

/// What the browser tests need: Chromium, Debian's chromium-driver and python3 with
/// selenium. Returns the missing ones, named with how to install them.
fn browser_missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        missing.push("chromium (apt-get install chromium)".to_owned());
    }
    if !Path::new("/usr/bin/chromedriver").exists() {
        missing.push("chromedriver (apt-get install chromium-driver)".to_owned());
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium.webdriver"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !selenium {
        missing.push("python3 selenium (pip install selenium)".to_owned());
    }
    missing
}

/// Runs tests/browser/dashboard.py on the page at `http` with `args` (one Chromium
/// session for every size); returns its JSON measurements. Screenshots go to
/// target/dashboard/<name>/.
fn drive_browser(http: SocketAddr, name: &str, args: &[&str]) -> (Value, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/dashboard").join(name);
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/browser/dashboard.py"))
        .arg("--url")
        .arg(format!("http://{http}/"))
        .arg("--out")
        .arg(&out)
        .args(args);
    // Generous: Chromium's start and every wait (60 s each) on a loaded machine.
    let run = support::run_to_exit(&mut cmd, Duration::from_secs(300), "the browser driver")
        .expect("run python3 tests/browser/dashboard.py");
    let v: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the browser driver printed no JSON ({e}); status {}\nstdout: {}\nstderr: {}",
            run.status, run.stdout, run.stderr
        )
    });
    assert!(
        run.status.success() && v.get("error").is_none(),
        "the browser driver failed: {}\npage text: {}\nstderr: {}",
        v["error"],
        v["page_text"].as_str().unwrap_or(""),
        run.stderr
    );
    (v, out)
}

#[test]
fn the_page_shows_users_files_and_the_feed_in_a_browser() {
    if !support::require_tools(
        "the_page_shows_users_files_and_the_feed_in_a_browser",
        &browser_missing(),
    ) {
        return;
    }
    let (server, http) = start();
    let addr = server.addr;
    register_connect(addr, "ana", "5001");
    register_connect(addr, "bob", "5002");
    publish(addr, "ana", "lecture-3.pdf", "slides");
    publish(addr, "bob", "lab2.tar.gz", "starter code");
    // Clients keep acting while the page is open, so its feed has entries whenever
    // the stream opens.
    let stop = Arc::new(AtomicBool::new(false));
    let actor = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let _ = support::call(addr, &["SEARCH", DT, "bob", "lab"]);
                let _ = support::call(
                    addr,
                    &["PUBLISH", DT, "ana", &format!("extra-{i}.txt"), "more"],
                );
                i += 1;
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (v, _) = drive_browser(
        http,
        "basic",
        &["--sizes", "1280x720", "--users", "2", "--files", "2"],
    );
    stop.store(true, Ordering::Relaxed);
    actor.join().unwrap();

    let page = &v["sizes"][0];
    let users: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(users, ["ana", "bob"], "{page}");
    let files: Vec<&str> = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["lecture-3.pdf", "lab2.tar.gz"] {
        assert!(files.contains(&want), "no file item {want}: {files:?}");
    }
    assert!(page["feed_rows"].as_u64().unwrap() >= 1, "{page}");
    let shot = PathBuf::from(page["screenshot"].as_str().unwrap());
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot: {}", shot.display());
}

#[test]
fn the_layout_holds_at_three_sizes_with_forty_users_and_the_backlog_shows_on_load() {
    let test = "the_layout_holds_at_three_sizes_with_forty_users_and_the_backlog_shows_on_load";
    if !support::require_tools(test, &browser_missing()) {
        return;
    }
    let (server, http) = start();
    let addr = server.addr;
    // 40 users, one with a 120-character name (legal: the limit is 255).
    let long = format!("student-with-a-very-long-name-{}", "x".repeat(90));
    assert_eq!(long.len(), 120);
    let mut users: Vec<String> = (1..40).map(|i| format!("student{i}")).collect();
    users.push(long.clone());
    for (i, u) in users.iter().enumerate() {
        register_connect(addr, u, &(6000 + i).to_string());
        publish(
            addr,
            u,
            &format!("lab{i}-solution.tar.gz"),
            "my lab solution",
        );
    }
    // 120 events before the page loads: the backlog is full (50).
    let made_before = 3 * users.len();
    // A class at work while the page is open, failures included.
    let stop = Arc::new(AtomicBool::new(false));
    let actor = {
        let stop = Arc::clone(&stop);
        let long = long.clone();
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let who = format!("student{}", 1 + i % 39);
                let _ = support::call(addr, &["SEARCH", DT, &who, "lab"]);
                let _ = support::call(addr, &["LIST_CONTENT", DT, &who, &long]);
                let _ = support::call(addr, &["LIST_CONTENT", DT, &who, "nobody"]);
                i += 1;
                // Pacing: a steady trickle of feed events while the page is
                // measured; nothing waits on it.
                thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let (v, _) = drive_browser(
        http,
        "layout",
        &[
            "--sizes",
            "1024x768,1280x720,1920x1080",
            "--users",
            "40",
            "--files",
            "40",
            "--min-events",
            "50",
            "--reconnect",
        ],
    );
    stop.store(true, Ordering::Relaxed);
    actor.join().unwrap();

    assert!(
        v["events_on_load"].as_u64().unwrap() >= 50.min(made_before as u64),
        "backlog on load: {}",
        v["events_on_load"]
    );
    for page in v["sizes"].as_array().unwrap() {
        let size = page["size"].as_str().unwrap();
        let [w, _] = [page["viewport"][0].as_f64().unwrap(), 0.0];
        assert_eq!(page["users"].as_array().unwrap().len(), 40, "{size}");
        assert_eq!(
            page["label_overlaps"].as_array().unwrap().len(),
            0,
            "{size}: labels overlap: {}",
            page["label_overlaps"]
        );
        assert!(
            page["labels"].as_u64().unwrap() >= 3,
            "{size}: labels drawn"
        );
        assert_eq!(
            page["overflow_count"], 0,
            "{size}: drawn past the right edge: {}",
            page["overflow_right"]
        );
        assert!(
            page["doc_scroll_width"].as_f64().unwrap() <= w,
            "{size}: the page scrolls sideways"
        );
        assert_eq!(
            page["scrollers"].as_array().unwrap().len(),
            0,
            "{size}: a box scrolls sideways: {}",
            page["scrollers"]
        );
        for t in page["tables"].as_array().unwrap() {
            assert!(
                t["right"].as_f64().unwrap() <= t["box_right"].as_f64().unwrap() + 0.5,
                "{size}: a table leaves its box: {t}"
            );
        }
        assert!(page["feed_rows"].as_u64().unwrap() >= 1, "{size}");
        assert!(
            page["feed_max_lines"].as_f64().unwrap() <= 2.1,
            "{size}: a feed row takes {} lines: {}",
            page["feed_max_lines"],
            page["feed_tallest"]
        );
        assert_eq!(page["header_rows"], 1, "{size}: the header wraps");
        let long_names = page["long_names"].as_array().unwrap();
        assert!(!long_names.is_empty(), "{size}: the long name's row");
        assert!(
            long_names.iter().all(|l| l["title_ok"] == true),
            "{size}: the long name lacks its tooltip: {long_names:?}"
        );
    }
    // After a reconnect: the feed continues, every event once, none skipped.
    let seqs: Vec<u64> = v["reconnect"]["seqs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "duplicates after the reconnect");
    assert!(
        sorted.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap in the feed after the reconnect: {sorted:?}"
    );
    assert!(
        *sorted.last().unwrap() > v["reconnect"]["seq_before"].as_u64().unwrap(),
        "nothing new after the reconnect"
    );
}
