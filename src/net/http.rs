//! The HTTP/1.x plumbing shared by peerdex's web listeners (the time service and the
//! index server's dashboard): reading one request per connection within hard size
//! and time limits, and writing one response with `Connection: close`.
//!
//! Owns: the request head (at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] lines,
//! before a deadline for the whole request), a bounded body ([`MAX_BODY`]), the
//! response encoding, the refusals of unreadable requests (400, 408, 431, 505), and
//! closing without resetting the response. Does not own: routing and what a
//! response says (each service), accepting and capping connections (`net`).
//!
//! Why not `tiny_http::Server`: in tiny_http 0.12 the server accepts on its own
//! thread and reads each connection's request line and headers on a thread of its
//! own pool, which grows by one thread per open connection without limit; it sets no
//! read timeout (a silent client pins a thread for ever), reads a header line into a
//! buffer that grows until CRLF (no size limit), and its accept thread stops for good
//! on the first `accept` error (EMFILE). So connections come through
//! [`super::accept_loop`] (capped, idle ones evicted, accept errors backed off), the
//! request head is read here with a size limit and a deadline. tiny_http still
//! parses and validates header lines ([`tiny_http::Header`]) and names the status
//! codes; responses are written here, because `tiny_http::Response` silently drops
//! a `Connection` header and every response here must say `Connection: close`.

use std::io::{self, Read, Write};
use std::net::{Shutdown as SockShutdown, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

pub(crate) use tiny_http::HTTPVersion;
use tiny_http::{Header, StatusCode};

use super::{DeadlineReader, Permit, is_timeout};

/// Largest request head (request line and headers). The lab's clients, browsers and
/// SOAP toolkits send well under 1 KiB (a browser with cookies a few); 8 KiB is the
/// common web server default.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// Largest request body accepted (a SOAP envelope). A `get_time` call is a few
/// hundred bytes; the issue sets 64 KiB.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Most header lines in a request: bounds the parsed header list.
pub(crate) const MAX_HEADERS: usize = 64;

/// After a response that refuses a request whose body was not read (413, 411), at
/// most this much of the unread body is read and discarded before closing, so the
/// kernel does not answer the client's pending bytes with a reset that could destroy
/// the response before the client reads it.
const MAX_DRAIN: usize = 256 * 1024;

/// How long that discarding may take.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Read size for the request head; small reads keep the head limit exact.
const READ_CHUNK: usize = 2048;

/// A request head as read from the wire.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: HTTPVersion,
    headers: Vec<Header>,
    /// Bytes read past the head: the start of the body.
    rest: Vec<u8>,
}

impl Head {
    pub(crate) fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    }

    /// The path (an absolute-form target `http://host:port/x` names `/x`) and the
    /// query, if any.
    pub(crate) fn path_and_query(&self) -> (&str, Option<&str>) {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.target.as_str(), None),
        };
        (strip_origin(path), query)
    }
}

/// Why a request could not be read. Each maps to a response, or to silence.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer closed or reset before a complete request: nothing to answer.
    #[error("closed: the client left before a whole request")]
    Closed,
    /// The deadline passed first.
    #[error("timeout: no whole request in time")]
    Timeout,
    /// The head is larger than [`MAX_HEAD`] or has too many headers.
    #[error("head: over {MAX_HEAD} bytes or {MAX_HEADERS} header lines")]
    HeadTooLarge,
    /// The request line or a header is not HTTP.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// An HTTP version other than 1.0 and 1.1.
    #[error("version: only HTTP/1.0 and HTTP/1.1")]
    Version,
}

/// Reads from `stream` before `deadline` (through the one [`DeadlineReader`]).
fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, ReadError> {
    match DeadlineReader::until(stream, deadline).read(buf) {
        Ok(0) => Err(ReadError::Closed),
        Ok(n) => Ok(n),
        Err(e) if is_timeout(&e) => Err(ReadError::Timeout),
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

/// A response to send.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) extra: Vec<(&'static str, String)>,
    /// The body of the request was not (fully) read: discard some before closing.
    pub(crate) unread_body: bool,
}

impl Reply {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            extra: Vec::new(),
            unread_body: false,
        }
    }

    pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body: String = body.into();
        if status != 200 {
            // Error texts are for people reading them in a terminal.
            body.push('\n');
        }
        Reply::new(status, "text/plain; charset=utf-8", body)
    }

    /// A 200 `application/json` reply of `v`, or the 500 of [`Reply::unencodable`].
    pub(crate) fn json(v: &impl serde::Serialize) -> Reply {
        match serde_json::to_vec(v) {
            Ok(body) => Reply::new(200, "application/json", body),
            Err(e) => Reply::unencodable(&e),
        }
    }

    /// The reply to a body that could not be encoded as JSON.
    pub(crate) fn unencodable(e: &serde_json::Error) -> Reply {
        Reply::text(500, format!("cannot encode JSON: {e}"))
    }
}

/// Serves one request on `stream`: reads its head within `timeout` (the deadline of
/// the whole request), marks the connection busy, and answers with what `respond`
/// returns; refuses an unreadable request itself. `respond` gets the stream and the
/// deadline to read a body; it returns `None` when it has answered on the stream
/// itself (a response that does not fit one write, such as an event stream).
pub(crate) fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    timeout: Duration,
    respond: impl FnOnce(&mut TcpStream, &Head, Instant) -> Option<Reply>,
) {
    if let Err(e) = super::set_timeouts(&stream, timeout) {
        log::debug!("{peer}: cannot set timeouts: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + timeout;
    let head = read_head(&mut stream, deadline);
    permit.busy();
    let (reply, version, is_head) = match head {
        Ok(head) => {
            let Some(reply) = respond(&mut stream, &head, deadline) else {
                return;
            };
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

/// A response head: status line, `Date`, `Server`, `Content-Type`, `Content-Length`
/// when given (a stream that ends at the close has none), `Connection: close`, the
/// `extra` headers and the blank line. HTTP/1.0 requests get an HTTP/1.0 status line.
pub(crate) fn encode_head(
    out: &mut Vec<u8>,
    version: HTTPVersion,
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(&'static str, String)],
) {
    let status = StatusCode(status);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let _ = write!(
        out,
        "HTTP/{version} {} {}\r\nDate: {date}\r\nServer: peerdex/{}\r\nContent-Type: {content_type}\r\n",
        status.0,
        status.default_reason_phrase(),
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(n) = content_length {
        let _ = write!(out, "Content-Length: {n}\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n");
    for (k, v) in extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The whole response (always with `Content-Length` and `Connection: close`; no body
/// for HEAD).
fn encode_response(reply: &Reply, version: HTTPVersion, is_head: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + reply.body.len());
    encode_head(
        &mut out,
        version,
        reply.status,
        reply.content_type,
        Some(reply.body.len()),
        &reply.extra,
    );
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

fn strip_origin(path: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    path
}

/// The announced body length, or the refusal to send.
pub(crate) fn body_length(head: &Head) -> Result<usize, Box<Reply>> {
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
pub(crate) fn read_body(
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

/// Decodes a `application/x-www-form-urlencoded` query value (`+` is a space, `%XX`
/// a byte); `None` when an escape is broken or the result is not UTF-8.
pub(crate) fn decode_query_value(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The decoded value of `key` in `query` (the first one), `Ok(None)` when absent,
/// `Err` when its encoding is broken.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Result<Option<String>, ()> {
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == key {
            return decode_query_value(v).map(Some).ok_or(());
        }
    }
    Ok(None)
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
    fn strips_an_absolute_form_target() {
        assert_eq!(strip_origin("http://h:1/"), "/");
        assert_eq!(strip_origin("http://h:1"), "/");
        assert_eq!(strip_origin("http://h/x"), "/x");
        assert_eq!(strip_origin("/x"), "/x");
    }

    #[test]
    fn decodes_query_values() {
        assert_eq!(decode_query_value("a+b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(decode_query_value("%C3%A9").as_deref(), Some("\u{e9}"));
        assert_eq!(decode_query_value("%2"), None);
        assert_eq!(decode_query_value("%zz"), None);
        assert_eq!(decode_query_value("%FF"), None);
        assert_eq!(decode_query_value("%+1"), None);
        assert_eq!(
            query_param(Some("x=1&q=no%20tes"), "q"),
            Ok(Some("no tes".into()))
        );
        assert_eq!(query_param(Some("x=1"), "q"), Ok(None));
        assert_eq!(query_param(None, "q"), Ok(None));
        assert_eq!(query_param(Some("q=%"), "q"), Err(()));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_heads_never_panic(text in "[ -~\r\n]{0,300}") {
            let _ = parse_head(&text, Vec::new());
        }

        #[test]
        fn arbitrary_query_values_never_panic(text in "[ -~]{0,100}") {
            let _ = decode_query_value(&text);
        }
    }
}
