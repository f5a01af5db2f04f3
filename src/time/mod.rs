//! `peerdex time`: the time web service (PROTOCOL.md section 4).
//!
//! Owns: the HTTP face of the service -- reading one request per connection within
//! hard size and time limits, routing (a GET of any path: plain text, or JSON when
//! asked for it or at `/datetime`; `GET /?wsdl`; SOAP 1.1 `POST /`), status codes,
//! and the start line on stdout.
//!
//! Any GET path answers because course REST clients ask `/fecha`, `/datetime`,
//! `/time`... (STATEMENTS.md): the one resource is the time, whatever its name.
//! Only the WSDL keeps one address (`/?wsdl`, where its `soap:address` points): a
//! WSDL request elsewhere gets 404 rather than a DATETIME a WSDL reader cannot use. Does not own: the
//! DATETIME format (`clock`), the WSDL and envelopes (`soap`), accepting, capping and
//! stopping connections (`net`).
//!
//! Reading requests and writing responses within hard limits is [`net::http`],
//! shared with the index server's dashboard.
//!
//! One request per connection: every response carries `Connection: close`.

mod soap;

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::net::http::{self, Head, ReadError, Reply};
use crate::net::{self, Shutdown};
use crate::proto::datetime;

pub(crate) use soap::Fault;

/// The path that answers JSON without being asked (a course REST dialect:
/// `GET /datetime` -> `{"datetime": "..."}`).
const JSON_PATH: &str = "/datetime";

/// Longest Host header used in the WSDL address (a DNS name is at most 253 bytes,
/// plus a port).
const MAX_HOST: usize = 262;

/// Command-line options of `peerdex time`.
#[derive(clap::Args, Debug, Clone)]
pub struct TimeArgs {
    /// TCP port (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind (0.0.0.0: every interface).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Time a client has to send its whole request, and the write timeout, in
    /// seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = net::parse_seconds)]
    pub timeout: f64,
    /// Most connections (and so worker threads) at once; past it the oldest
    /// connection that has not yet sent its request is closed to make room.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

/// Why the time service could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TimeError {
    #[error(
        "time: cannot listen on {addr}: {}",
        net::bind_reason(source, "another time service running? pick one with --port")
    )]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("time: cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
}

/// Runs the time service until SIGINT or SIGTERM.
pub fn run(args: TimeArgs) -> Result<(), Box<dyn std::error::Error>> {
    Ok(serve_until_stopped(args)?)
}

/// Runs the time service until SIGINT or SIGTERM, with the typed error.
pub(crate) fn serve_until_stopped(args: TimeArgs) -> Result<(), TimeError> {
    let shutdown = Shutdown::new();
    shutdown.on_signals().map_err(TimeError::Signals)?;
    let service = TimeService::bind(&args)?;
    let addr = service.local_addr();
    let shown = net::advertised(addr.ip());
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "time service on http://{}/",
        SocketAddr::new(shown, addr.port())
    );
    let _ = out.flush();
    drop(out);
    log::info!("time service listening on {addr}");
    service.run(&shutdown);
    println!("time service stopped");
    Ok(())
}

/// A bound time service, ready to run.
pub(crate) struct TimeService {
    listener: net::Listener,
    timeout: Duration,
}

impl TimeService {
    pub(crate) fn bind(args: &TimeArgs) -> Result<TimeService, TimeError> {
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = net::Listener::bind("time", addr, args.max_connections as usize)
            .map_err(|source| TimeError::Bind { addr, source })?;
        Ok(TimeService {
            listener,
            timeout: Duration::from_secs_f64(args.timeout),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is raised, then closes idle connections and waits (at
    /// most one timeout) for the others.
    pub(crate) fn run(self, shutdown: &Shutdown) {
        let timeout = self.timeout;
        self.listener
            .serve(shutdown, timeout, move |stream, peer, permit| {
                http::serve(stream, peer, permit, timeout, |stream, head, deadline| {
                    Some(respond(stream, head, deadline))
                });
            });
    }
}

/// A SOAP fault response (SOAP 1.1 section 6.2: a SOAP error is answered with HTTP
/// 500 and a Fault).
fn fault_reply(fault: &Fault) -> Reply {
    Reply::new(500, "text/xml; charset=utf-8", soap::fault_response(fault))
}

/// Routes one request.
fn respond(stream: &mut TcpStream, head: &Head, deadline: Instant) -> Reply {
    // An absolute-form target (`http://host:port/`) names the same resource.
    let (path, query) = head.path_and_query();
    // Whatever the route, a body announced beyond the limit is refused unread.
    let body_len = match http::body_length(head) {
        Ok(n) => n,
        Err(reply) => return *reply,
    };
    let is_get = matches!(head.method.as_str(), "GET" | "HEAD");
    if path != "/" && !is_get {
        let mut r = Reply::text(404, format!("not found: {path} (SOAP is at /)"));
        r.unread_body = body_len > 0;
        return r;
    }
    match head.method.as_str() {
        "GET" | "HEAD" => {
            let mut r = get(stream, head, path, query);
            r.unread_body = body_len > 0;
            r
        }
        "POST" => {
            let body = match http::read_body(stream, head, body_len, deadline) {
                Ok(b) => b,
                Err(ReadError::Timeout) => {
                    let mut r = Reply::text(408, "request timeout");
                    r.unread_body = true;
                    return r;
                }
                Err(_) => return Reply::text(400, "bad request: the body ended early"),
            };
            post(head, &body)
        }
        _ => {
            let mut r = Reply::text(405, format!("method {} not allowed", head.method));
            r.extra.push(("Allow", "GET, HEAD, POST".into()));
            r.unread_body = body_len > 0;
            r
        }
    }
}

/// What a GET asks for.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Text,
    Json,
    Wsdl,
}

/// Decides from the query (`wsdl`, `format=json|text`), the path ([`JSON_PATH`]
/// means JSON) and the Accept header, in that order.
fn want(path: &str, query: Option<&str>, accept: Option<&str>) -> Result<Want, String> {
    let mut format = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            k if k.eq_ignore_ascii_case("wsdl") => return Ok(Want::Wsdl),
            "format" => {
                format = Some(match v {
                    "json" => Want::Json,
                    "text" | "plain" => Want::Text,
                    other => return Err(format!("unknown format '{other}': use json or text")),
                })
            }
            _ => {}
        }
    }
    if let Some(f) = format {
        return Ok(f);
    }
    if path == JSON_PATH {
        return Ok(Want::Json);
    }
    let json = accept.is_some_and(|a| {
        a.split(',').any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
    });
    Ok(if json { Want::Json } else { Want::Text })
}

#[derive(serde::Serialize)]
struct JsonTime {
    datetime: String,
    unix_ms: i64,
}

fn get(stream: &TcpStream, head: &Head, path: &str, query: Option<&str>) -> Reply {
    let mut reply = match want(path, query, head.header("Accept")) {
        Err(why) => return Reply::text(400, format!("bad request: {why}")),
        Ok(Want::Text) => Reply::text(200, datetime::now()),
        Ok(Want::Json) => {
            let now = chrono::Local::now();
            let body = JsonTime {
                datetime: now.format(datetime::FORMAT).to_string(),
                unix_ms: now.timestamp_millis(),
            };
            Reply::json(&body)
        }
        Ok(Want::Wsdl) if path != "/" => {
            return Reply::text(
                404,
                format!("not found: {path}?wsdl (the WSDL is at /?wsdl)"),
            );
        }
        Ok(Want::Wsdl) => {
            return Reply::new(
                200,
                "text/xml; charset=utf-8",
                soap::wsdl(&service_url(head.header("Host"), stream)),
            );
        }
    };
    // The answer changes every second and with the Accept header: no cache may
    // keep it.
    reply.extra.push(("Cache-Control", "no-store".into()));
    reply.extra.push(("Vary", "Accept".into()));
    reply
}

/// The service URL as the client reached it: its Host header when that is a plain
/// host[:port], else the address the connection arrived on.
fn service_url(host: Option<&str>, stream: &TcpStream) -> String {
    if let Some(h) = host.map(str::trim).filter(|h| valid_host(h)) {
        return format!("http://{h}/");
    }
    match stream.local_addr() {
        Ok(addr) => format!("http://{addr}/"),
        Err(_) => "http://localhost/".into(),
    }
}

/// A Host header value safe to put in a URL: a name, IPv4 or bracketed IPv6 address,
/// optionally with a port.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

fn post(head: &Head, body: &[u8]) -> Reply {
    let ct = head.header("Content-Type").unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/soap+xml") {
        return fault_reply(&Fault::VersionMismatch(
            "SOAP 1.2 (application/soap+xml): this service speaks SOAP 1.1 (text/xml)".into(),
        ));
    }
    // SOAP 1.1 says text/xml; a missing type and application/xml are let through
    // for hand-written clients, anything else is not an envelope.
    let xml = ["", "text/xml", "application/xml"]
        .iter()
        .any(|t| media.eq_ignore_ascii_case(t));
    if !xml {
        return Reply::text(
            415,
            "unsupported media type: a SOAP 1.1 request is text/xml",
        );
    }
    if let Some(action) = head.header("SOAPAction")
        && !soap::action_matches(action)
    {
        return fault_reply(&soap::unknown_action(action));
    }
    match soap::parse_call(body) {
        Ok(call) => Reply::new(
            200,
            "text/xml; charset=utf-8",
            soap::time_response(call, &datetime::now()),
        ),
        Err(fault) => {
            log::debug!("SOAP request refused: {fault}");
            fault_reply(&fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_format() {
        assert_eq!(want("/", None, None), Ok(Want::Text));
        assert_eq!(want("/", Some("wsdl"), None), Ok(Want::Wsdl));
        assert_eq!(
            want("/", Some("WSDL"), Some("application/json")),
            Ok(Want::Wsdl)
        );
        assert_eq!(want("/", Some("format=json"), None), Ok(Want::Json));
        assert_eq!(
            want("/", Some("format=text"), Some("application/json")),
            Ok(Want::Text)
        );
        assert_eq!(
            want("/", None, Some("text/html, application/json;q=0.9")),
            Ok(Want::Json)
        );
        assert_eq!(want("/", None, Some("application/jsonx")), Ok(Want::Text));
        assert!(want("/", Some("format=xml"), None).is_err());
        // Any path; /datetime means JSON unless the query says text.
        assert_eq!(want("/fecha", None, None), Ok(Want::Text));
        assert_eq!(
            want("/fecha", None, Some("application/json")),
            Ok(Want::Json)
        );
        assert_eq!(want("/datetime", None, None), Ok(Want::Json));
        assert_eq!(want("/datetime", Some("format=text"), None), Ok(Want::Text));
    }

    #[test]
    fn host_values() {
        assert!(valid_host("example.org:8000"));
        assert!(valid_host("[::1]:8000"));
        assert!(!valid_host("a\"/><x"));
        assert!(!valid_host(""));
        assert!(!valid_host(&"a".repeat(MAX_HOST + 1)));
    }
}
