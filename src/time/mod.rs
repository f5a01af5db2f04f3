//! `peerdex time`: the time web service (PROTOCOL.md section 4).
//!
//! Owns: the HTTP face of the service -- reading one request per connection within
//! hard size and time limits, routing (`GET /` plain text or JSON, `GET /?wsdl`,
//! SOAP 1.1 `POST /`), status codes, and the start line on stdout. Does not own: the
//! DATETIME format (`clock`), the WSDL and envelopes (`soap`), accepting, capping and
//! stopping connections (`net`).
//!
//! Why not `tiny_http::Server`: in tiny_http 0.12 the server accepts on its own
//! thread and reads each connection's request line and headers on a thread of its
//! own pool, which grows by one thread per open connection without limit; it sets no
//! read timeout (a silent client pins a thread for ever), reads a header line into a
//! buffer that grows until CRLF (no size limit), and its accept thread stops for good
//! on the first `accept` error (EMFILE). So connections come through
//! [`net::accept_loop`] (capped, idle ones evicted, accept errors backed off), the
//! request head is read here with a size limit and a deadline. tiny_http still
//! parses and validates header lines ([`tiny_http::Header`]) and names the status
//! codes; responses are written here, because `tiny_http::Response` silently drops
//! a `Connection` header and every response here must say `Connection: close`.
//!
//! One request per connection: every response carries `Connection: close`.

mod soap;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as SockShutdown, SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiny_http::{HTTPVersion, Header, StatusCode};

use crate::net::{self, ConnLimiter, Permit, Shutdown};
use crate::proto::datetime;

pub(crate) use soap::{Call, Fault};

/// Largest request head (request line and headers). The lab's clients and SOAP
/// toolkits send well under 1 KiB; 8 KiB is the common web server default.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// Largest request body accepted (a SOAP envelope). A `get_time` call is a few
/// hundred bytes; the issue sets 64 KiB.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Most header lines in a request: bounds the parsed header list.
const MAX_HEADERS: usize = 64;

/// After a response that refuses a request whose body was not read (413, 411), at
/// most this much of the unread body is read and discarded before closing, so the
/// kernel does not answer the client's pending bytes with a reset that could destroy
/// the response before the client reads it.
const MAX_DRAIN: usize = 256 * 1024;

/// How long that discarding may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Read size for the request head; small reads keep the head limit exact.
const READ_CHUNK: usize = 2048;

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
#[derive(Debug)]
pub(crate) enum TimeError {
    Bind { addr: SocketAddr, source: io::Error },
    Signals(io::Error),
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "time: cannot listen on {addr}: the port is already in use (another time service running? pick one with --port)"
                )
            }
            TimeError::Bind { addr, source } => {
                write!(f, "time: cannot listen on {addr}: {source}")
            }
            TimeError::Signals(e) => write!(f, "time: cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for TimeError {}

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
    let shown = if addr.ip().is_unspecified() {
        net::primary_ip()
    } else {
        addr.ip()
    };
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
    listener: TcpListener,
    limiter: Arc<ConnLimiter>,
    timeout: Duration,
}

impl TimeService {
    pub(crate) fn bind(args: &TimeArgs) -> Result<TimeService, TimeError> {
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = net::bind(addr).map_err(|source| TimeError::Bind { addr, source })?;
        Ok(TimeService {
            listener,
            limiter: ConnLimiter::new(args.max_connections as usize),
            timeout: Duration::from_secs_f64(args.timeout),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is raised, then closes idle connections and waits (at
    /// most one timeout) for the others.
    pub(crate) fn run(self, shutdown: &Shutdown) {
        if let Err(e) = shutdown.watch(&self.listener) {
            log::warn!("shutdown will not wake the accept loop: {e}");
        }
        let timeout = self.timeout;
        net::accept_loop(
            "time",
            &self.listener,
            &self.limiter,
            shutdown,
            move |stream, peer, permit| serve(stream, peer, permit, timeout),
        );
        self.limiter.close_idle();
        if !self.limiter.wait_empty(self.timeout) {
            log::warn!(
                "{} connections still open at shutdown",
                self.limiter.active()
            );
        }
    }
}

/// A request head as read from the wire.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    /// Bytes read past the head: the start of the body.
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    }
}

/// Why a request could not be read. Each maps to a response, or to silence.
#[derive(Debug)]
enum ReadError {
    /// The peer closed or reset before a complete request: nothing to answer.
    Closed,
    /// The deadline passed first.
    Timeout,
    /// The head is larger than [`MAX_HEAD`] or has too many headers.
    HeadTooLarge,
    /// The request line or a header is not HTTP.
    Malformed(&'static str),
    /// An HTTP version other than 1.0 and 1.1.
    Version,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "closed: the client left before a whole request"),
            ReadError::Timeout => write!(f, "timeout: no whole request in time"),
            ReadError::HeadTooLarge => write!(
                f,
                "head: over {MAX_HEAD} bytes or {MAX_HEADERS} header lines"
            ),
            ReadError::Malformed(why) => write!(f, "malformed: {why}"),
            ReadError::Version => write!(f, "version: only HTTP/1.0 and HTTP/1.1"),
        }
    }
}

/// Reads from `stream` with the time left before `deadline` as the read timeout.
fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ReadError::Timeout);
    }
    stream
        .set_read_timeout(Some(left))
        .map_err(|_| ReadError::Closed)?;
    match stream.read(buf) {
        Ok(0) => Err(ReadError::Closed),
        Ok(n) => Ok(n),
        Err(e) if crate::proto::wire::is_timeout(&e) => Err(ReadError::Timeout),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(_) => Err(ReadError::Closed),
    }
}

/// Reads the request head (up to the blank line), at most [`MAX_HEAD`] bytes,
/// before `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Head, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = [0u8; READ_CHUNK];
    let end = loop {
        let room = (MAX_HEAD + 4 - buf.len()).min(READ_CHUNK);
        let n = read_until(stream, &mut chunk[..room], deadline)?;
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf[scan_from..], b"\r\n\r\n") {
            break scan_from + i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
    };
    if end > MAX_HEAD {
        return Err(ReadError::HeadTooLarge);
    }
    let rest = buf[end + 4..].to_vec();
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| ReadError::Malformed("not ASCII"))?;
    parse_head(text, rest)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a request head (without its final blank line).
fn parse_head(text: &str, rest: Vec<u8>) -> Result<Head, ReadError> {
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed("bad request line"));
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(method) || target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ReadError::Malformed("bad request line"));
    }
    let version = match version {
        "HTTP/1.1" => HTTPVersion(1, 1),
        "HTTP/1.0" => HTTPVersion(1, 0),
        v if v.starts_with("HTTP/") => return Err(ReadError::Version),
        _ => return Err(ReadError::Malformed("bad request line")),
    };
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::HeadTooLarge);
        }
        // Obsolete line folding (RFC 9112 section 5.2) is refused like any bad header.
        if line.starts_with([' ', '\t']) {
            return Err(ReadError::Malformed("folded header line"));
        }
        let header =
            Header::from_str(line).map_err(|()| ReadError::Malformed("bad header line"))?;
        headers.push(header);
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        version,
        headers,
        rest,
    })
}

/// What the service answers.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
    /// The body of the request was not (fully) read: discard some before closing.
    unread_body: bool,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            extra: Vec::new(),
            unread_body: false,
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body: String = body.into();
        if status != 200 {
            // Error texts are for people reading them in a terminal.
            body.push('\n');
        }
        Reply::new(status, "text/plain; charset=utf-8", body)
    }

    fn fault(fault: &Fault) -> Reply {
        // SOAP 1.1 section 6.2: a SOAP error is answered with HTTP 500 and a Fault.
        Reply::new(500, "text/xml; charset=utf-8", soap::fault_response(fault))
    }
}

fn serve(mut stream: TcpStream, peer: SocketAddr, permit: Permit, timeout: Duration) {
    if let Err(e) = net::set_timeouts(&stream, timeout) {
        log::debug!("{peer}: cannot set timeouts: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + timeout;
    let head = read_head(&mut stream, deadline);
    permit.busy();
    let (reply, version, is_head) = match head {
        Ok(head) => {
            let reply = respond(&mut stream, &head, deadline);
            log::debug!(
                "{peer}: {} {} -> {}",
                head.method,
                head.target,
                reply.status
            );
            (reply, head.version, head.method == "HEAD")
        }
        Err(e) => {
            log::debug!("{peer}: request refused: {e}");
            let Some(reply) = refusal(e) else { return };
            (reply, HTTPVersion(1, 1), false)
        }
    };
    send(&mut stream, peer, reply, version, is_head);
}

/// The answer to a request that could not be read, if any.
fn refusal(e: ReadError) -> Option<Reply> {
    let mut reply = match e {
        ReadError::Closed => return None,
        ReadError::Timeout => Reply::text(408, "request timeout"),
        ReadError::HeadTooLarge => Reply::text(431, "request head too large"),
        ReadError::Malformed(why) => Reply::text(400, format!("bad request: {why}")),
        ReadError::Version => Reply::text(505, "only HTTP/1.0 and HTTP/1.1"),
    };
    reply.unread_body = true;
    Some(reply)
}

/// Writes `reply` and closes the connection (after discarding a bounded amount of
/// unread request bytes when needed).
fn send(
    stream: &mut TcpStream,
    peer: SocketAddr,
    reply: Reply,
    version: HTTPVersion,
    is_head: bool,
) {
    let out = encode_response(&reply, version, is_head);
    if let Err(e) = stream.write_all(&out) {
        log::debug!("{peer}: response not delivered: {e}");
        return;
    }
    let _ = stream.shutdown(SockShutdown::Write);
    if reply.unread_body {
        drain(stream);
    }
}

/// The whole response: status line, headers (always `Content-Length` and
/// `Connection: close`), blank line, body (none for HEAD). HTTP/1.0 requests get an
/// HTTP/1.0 status line.
fn encode_response(reply: &Reply, version: HTTPVersion, is_head: bool) -> Vec<u8> {
    let status = StatusCode(reply.status);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let mut out = Vec::with_capacity(256 + reply.body.len());
    let _ = write!(
        out,
        "HTTP/{version} {} {}\r\nDate: {date}\r\nServer: peerdex/{}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.0,
        status.default_reason_phrase(),
        env!("CARGO_PKG_VERSION"),
        reply.content_type,
        reply.body.len(),
    );
    for (k, v) in &reply.extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !is_head {
        out.extend_from_slice(&reply.body);
    }
    out
}

/// Reads and discards what the client still sends, at most [`MAX_DRAIN`] bytes for
/// at most [`DRAIN_TIME`], so closing does not reset the connection under the
/// response.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + DRAIN_TIME;
    let mut buf = [0u8; 8192];
    let mut total = 0;
    while total < MAX_DRAIN {
        match read_until(stream, &mut buf, deadline) {
            Ok(n) => total += n,
            Err(_) => break,
        }
    }
}

/// Routes one request.
fn respond(stream: &mut TcpStream, head: &Head, deadline: Instant) -> Reply {
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (head.target.as_str(), None),
    };
    // An absolute-form target (`http://host:port/`) names the same resource.
    let path = strip_origin(path);
    // Whatever the route, a body announced beyond the limit is refused unread.
    let body_len = match body_length(head) {
        Ok(n) => n,
        Err(reply) => return *reply,
    };
    if path != "/" {
        let mut r = Reply::text(404, format!("not found: {path} (the time is at /)"));
        r.unread_body = body_len > 0;
        return r;
    }
    match head.method.as_str() {
        "GET" | "HEAD" => {
            let mut r = get(stream, head, query);
            r.unread_body = body_len > 0;
            r
        }
        "POST" => {
            let body = match read_body(stream, head, body_len, deadline) {
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

fn strip_origin(path: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    path
}

/// The announced body length, or the refusal to send.
fn body_length(head: &Head) -> Result<usize, Box<Reply>> {
    if head.header("Transfer-Encoding").is_some() {
        // A chunked body has no announced length to check against the limit before
        // reading; every SOAP client sends Content-Length for an envelope.
        let mut r = Reply::text(411, "length required: send Content-Length, not chunked");
        r.unread_body = true;
        return Err(Box::new(r));
    }
    let Some(v) = head.header("Content-Length") else {
        return Ok(0);
    };
    let Ok(n) = v.trim().parse::<u64>() else {
        let mut r = Reply::text(400, "bad request: bad Content-Length");
        r.unread_body = true;
        return Err(Box::new(r));
    };
    if n > MAX_BODY as u64 {
        let mut r = Reply::text(
            413,
            format!("request body of {n} bytes refused: the limit is {MAX_BODY} bytes"),
        );
        r.unread_body = true;
        return Err(Box::new(r));
    }
    Ok(n as usize)
}

/// Reads exactly `len` body bytes (already checked against [`MAX_BODY`]).
fn read_body(
    stream: &mut TcpStream,
    head: &Head,
    len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ReadError> {
    if len > head.rest.len()
        && head
            .header("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && head.version == HTTPVersion(1, 1)
    {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| ReadError::Closed)?;
    }
    let mut body = head.rest.clone();
    body.truncate(len);
    let mut chunk = [0u8; 8192];
    while body.len() < len {
        let want = (len - body.len()).min(chunk.len());
        let n = read_until(stream, &mut chunk[..want], deadline)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// What a GET asks for.
#[derive(Debug, PartialEq, Eq)]
enum Want {
    Text,
    Json,
    Wsdl,
}

/// Decides from the query (`wsdl`, `format=json|text`) and the Accept header.
fn want(query: Option<&str>, accept: Option<&str>) -> Result<Want, String> {
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

fn get(stream: &TcpStream, head: &Head, query: Option<&str>) -> Reply {
    let mut reply = match want(query, head.header("Accept")) {
        Err(why) => return Reply::text(400, format!("bad request: {why}")),
        Ok(Want::Text) => Reply::text(200, datetime::now()),
        Ok(Want::Json) => {
            let now = chrono::Local::now();
            let body = JsonTime {
                datetime: now.format(datetime::FORMAT).to_string(),
                unix_ms: now.timestamp_millis(),
            };
            match serde_json::to_vec(&body) {
                Ok(body) => Reply::new(200, "application/json", body),
                Err(e) => return Reply::text(500, format!("cannot encode JSON: {e}")),
            }
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
        return Reply::fault(&Fault::VersionMismatch(
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
        return Reply::fault(&Fault::Client(format!(
            "unknown SOAPAction {action}: this service offers get_time"
        )));
    }
    match soap::parse_call(body) {
        Ok(Call::GetTime) => Reply::new(
            200,
            "text/xml; charset=utf-8",
            soap::time_response(&datetime::now()),
        ),
        Err(fault) => {
            log::debug!("SOAP request refused: {fault}");
            Reply::fault(&fault)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_head() {
        let h = parse_head(
            "GET /?wsdl HTTP/1.1\r\nHost: a:1\r\nAccept: */*",
            b"x".to_vec(),
        )
        .unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/?wsdl");
        assert_eq!(h.version, HTTPVersion(1, 1));
        assert_eq!(h.header("host"), Some("a:1"));
        assert_eq!(h.rest, b"x");
    }

    #[test]
    fn rejects_bad_heads() {
        assert!(matches!(
            parse_head("GET /", vec![]),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head("GET / HTTP/2.0", vec![]),
            Err(ReadError::Version)
        ));
        assert!(matches!(
            parse_head("GET / FTP/1.0", vec![]),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head("GET / HTTP/1.1\r\nno colon", vec![]),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head("G(T / HTTP/1.1", vec![]),
            Err(ReadError::Malformed(_))
        ));
        let many = format!("GET / HTTP/1.1{}", "\r\nX: y".repeat(MAX_HEADERS + 1));
        assert!(matches!(
            parse_head(&many, vec![]),
            Err(ReadError::HeadTooLarge)
        ));
    }

    #[test]
    fn chooses_the_format() {
        assert_eq!(want(None, None), Ok(Want::Text));
        assert_eq!(want(Some("wsdl"), None), Ok(Want::Wsdl));
        assert_eq!(want(Some("WSDL"), Some("application/json")), Ok(Want::Wsdl));
        assert_eq!(want(Some("format=json"), None), Ok(Want::Json));
        assert_eq!(
            want(Some("format=text"), Some("application/json")),
            Ok(Want::Text)
        );
        assert_eq!(
            want(None, Some("text/html, application/json;q=0.9")),
            Ok(Want::Json)
        );
        assert_eq!(want(None, Some("application/jsonx")), Ok(Want::Text));
        assert!(want(Some("format=xml"), None).is_err());
    }

    #[test]
    fn host_values() {
        assert!(valid_host("example.org:8000"));
        assert!(valid_host("[::1]:8000"));
        assert!(!valid_host("a\"/><x"));
        assert!(!valid_host(""));
        assert!(!valid_host(&"a".repeat(MAX_HOST + 1)));
    }

    #[test]
    fn strips_an_absolute_form_target() {
        assert_eq!(strip_origin("http://h:1/"), "/");
        assert_eq!(strip_origin("http://h:1"), "/");
        assert_eq!(strip_origin("http://h/x"), "/x");
        assert_eq!(strip_origin("/x"), "/x");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_heads_never_panic(text in "[ -~\r\n]{0,300}") {
            let _ = parse_head(&text, Vec::new());
        }
    }
}
