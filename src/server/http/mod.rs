//! The index server's live dashboard: one embedded page (`GET /`), a read-only JSON
//! API and a Server-Sent Events feed, on a listener of its own (`--http PORT`).
//!
//! Owns: the dashboard's routes and JSON shapes, the event-stream connections, the
//! one-second ticker of the request rate. Does not own: reading requests and
//! writing responses (`net::http`, shared with the time service), accepting and
//! capping connections (`net`), what the registry holds (`registry`), what the
//! request path reports ([`events::Hub`]).
//!
//! Nothing here changes the registry, and nothing here can make an index request
//! wait: the listener has its own connection cap and threads, the registry is only
//! read (under its read lock, like LIST_USERS), and events reach a client through a
//! bounded queue filled with `try_send`.

pub(crate) mod events;
mod metrics;
mod queries;
mod stats;

use std::io::Write;
use std::net::{IpAddr, Shutdown as SockShutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use serde::Serialize;
use serde_json::{Value, json};

use super::budget::{Built, ReplyBudget, Reservation};
use super::registry::Registry;
use crate::net::http::{self, Head, Reply};
use crate::net::{self, Shutdown};
pub(crate) use events::Hub;
pub(crate) use metrics::ServerGauges;

/// What the server reports for `/metrics` about itself (connections, the reply
/// budget, the audit path), read at each scrape.
type GaugeSource = Box<dyn Fn() -> ServerGauges + Send + Sync>;

/// The page, embedded so a lab without internet needs nothing else.
const PAGE: &str = include_str!("../dashboard.html");

/// Most dashboard connections at once: the event-stream clients
/// ([`events::MAX_EVENT_CLIENTS`]) and as many again for the page's API calls.
const MAX_CONNECTIONS: usize = 2 * events::MAX_EVENT_CLIENTS;

/// Most results of `/api/search` (the page lists them; more is not readable on a
/// projector, and the reply stays small).
pub(crate) const SEARCH_CAP: usize = 100;

/// A comment line sent on an idle event stream, so proxies and browsers keep it
/// open and a client that left is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Kernel send buffer of an event-stream connection: a reader that stops reading
/// holds at most this much in the kernel (instead of the megabytes TCP autotuning
/// would grant), and falls behind its queue soon enough to be dropped.
const STREAM_SNDBUF: usize = 64 * 1024;

/// After the first event of a quiet spell, an event-stream thread waits this long
/// and sends everything queued meanwhile in one write: under load, one write (and
/// one wake-up of the reader) per client every 20 ms instead of one per request,
/// which is what the event fan-out would otherwise cost the index's cores. Short
/// enough that the queue ([`events::EVENT_QUEUE`]) does not fill meanwhile below
/// about 12,000 requests per second, and invisible on the page.
const STREAM_BATCH: Duration = Duration::from_millis(20);

/// How often an event-stream thread looks at the shutdown flag while idle.
const STREAM_TICK: Duration = Duration::from_secs(1);

/// Dashboard options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct DashboardArgs {
    /// Serve the live dashboard and its read-only JSON API on this TCP port
    /// (off unless given).
    #[arg(long, value_name = "PORT")]
    pub http: Option<u16>,
    /// Address the dashboard binds (default: the server's --bind).
    #[arg(long, value_name = "ADDR", requires = "http")]
    pub http_bind: Option<IpAddr>,
}

/// A bound dashboard, ready to start.
pub(crate) struct Dashboard {
    listener: net::Listener,
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    /// The index's reply budget: the API's replies are built through its gate
    /// and held in it until written, like LIST_CONTENT's.
    budget: Arc<ReplyBudget>,
    timeout: Duration,
    gauges: GaugeSource,
}

/// A running dashboard.
pub(crate) struct Running {
    hub: Arc<Hub>,
    threads: Vec<JoinHandle<()>>,
}

impl Dashboard {
    /// Binds the dashboard's listener at `addr`.
    pub(crate) fn bind(
        addr: SocketAddr,
        (registry, budget): (Arc<Registry>, Arc<ReplyBudget>),
        timeout: Duration,
    ) -> std::io::Result<Dashboard> {
        Ok(Dashboard {
            listener: net::Listener::bind("dashboard", addr, MAX_CONNECTIONS)?,
            hub: Hub::new(),
            registry,
            budget,
            timeout,
            gauges: Box::new(ServerGauges::default),
        })
    }

    /// Where `/metrics` reads the server's own figures.
    pub(crate) fn with_gauges(
        mut self,
        gauges: impl Fn() -> ServerGauges + Send + Sync + 'static,
    ) -> Dashboard {
        self.gauges = Box::new(gauges);
        self
    }

    pub(crate) fn hub(&self) -> Arc<Hub> {
        Arc::clone(&self.hub)
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Starts the accept loop and the rate ticker; both stop with `shutdown` (the
    /// accept thread then drains the connections for at most one timeout).
    pub(crate) fn start(self, shutdown: &Shutdown) -> std::io::Result<Running> {
        let ticker = {
            let hub = Arc::clone(&self.hub);
            let shutdown = shutdown.clone();
            thread::Builder::new()
                .name("dashboard-rate".into())
                .spawn(move || {
                    while !shutdown.wait_timeout(Duration::from_secs(1)) {
                        hub.tick();
                    }
                })?
        };
        let site = Arc::new(Site {
            hub: Arc::clone(&self.hub),
            registry: self.registry,
            budget: self.budget,
            shutdown: shutdown.clone(),
            gauges: self.gauges,
        });
        let timeout = self.timeout;
        let listener = self.listener;
        let shutdown = shutdown.clone();
        let acceptor = thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || {
                listener.serve(&shutdown, timeout, move |stream, peer, permit| {
                    // What the reply holds of the budget, until it is written.
                    let mut held = None;
                    http::serve(stream, peer, permit, timeout, |stream, head, _| {
                        site.respond(stream, head, timeout, &mut held)
                    });
                    drop(held);
                });
            })?;
        Ok(Running {
            hub: self.hub,
            threads: vec![ticker, acceptor],
        })
    }
}

impl Running {
    /// After shutdown was raised: ends the event streams and waits for the
    /// dashboard's threads (its accept thread drains its connections).
    pub(crate) fn stop(self) {
        self.hub.close();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What the routes read.
struct Site {
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    budget: Arc<ReplyBudget>,
    shutdown: Shutdown,
    gauges: GaugeSource,
}

impl Site {
    /// Routes one request; `None` when it was answered on the stream (events).
    /// An API reply's share of the reply budget goes to `held`.
    fn respond<'s>(
        &'s self,
        stream: &mut TcpStream,
        head: &Head,
        timeout: Duration,
        held: &mut Option<Reservation<'s>>,
    ) -> Option<Reply> {
        let (path, query) = head.path_and_query();
        let body_len = match http::body_length(head) {
            Ok(n) => n,
            Err(reply) => return Some(*reply),
        };
        let known = matches!(
            path,
            "/" | "/api/users"
                | "/api/files"
                | "/api/search"
                | "/api/stats"
                | "/api/events"
                | "/metrics"
        );
        let mut reply = if !known {
            Reply::text(404, format!("not found: {path} (the dashboard is at /)"))
        } else if head.method != "GET" && !(head.method == "HEAD" && path != "/api/events") {
            let mut r = Reply::text(405, format!("method {} not allowed", head.method));
            let allow = if path == "/api/events" {
                "GET"
            } else {
                "GET, HEAD"
            };
            r.extra.push(("Allow", allow.into()));
            r
        } else {
            match path {
                "/" => Reply::new(200, "text/html; charset=utf-8", PAGE),
                "/metrics" => self.metrics(),
                "/api/events" if body_len == 0 => return self.events(stream, head, timeout),
                "/api/events" => Reply::text(400, "bad request: an event stream takes no body"),
                "/api/stats" => json_reply(&self.stats()),
                _ => self.api(path, query, held).unwrap_or_else(|r| r),
            }
        };
        reply.unread_body = body_len > 0;
        Some(reply)
    }

    /// `/api/users`, `/api/files` and `/api/search`: one page each (`?limit=`,
    /// `?after=`, see [`queries`]), built through the reply budget's gate and held
    /// in the budget until written; 503 when it is spent.
    fn api<'s>(
        &'s self,
        path: &str,
        query: Option<&str>,
        held: &mut Option<Reservation<'s>>,
    ) -> Result<Reply, Reply> {
        let param = |key: &str| {
            http::query_param(query, key)
                .map_err(|()| Reply::text(400, format!("bad request: bad encoding of '{key}'")))
        };
        let after = param("after")?;
        let max = if path == "/api/search" {
            SEARCH_CAP
        } else {
            queries::MAX_PAGE
        };
        let limit = page_limit(param("limit")?, max)?;
        let build = |out: &mut Vec<u8>| -> Result<(), Reply> {
            match path {
                "/api/users" => self.users(after.as_deref(), limit, out),
                "/api/files" => self.files(param("user")?, after.as_deref(), limit, out),
                _ => self.search(param("q")?, after.as_deref(), limit, out),
            }
        };
        let Some(Built {
            bytes,
            held: mut hold,
        }) = self.budget.build_gated(build)?
        else {
            return Err(busy());
        };
        // Sending copies the body after the response head: hold that copy too.
        if !hold.also_hold(bytes.len()) {
            return Err(busy());
        }
        *held = Some(hold);
        let mut r = Reply::new(200, "application/json", bytes);
        r.extra.push(("Cache-Control", "no-store".into()));
        Ok(r)
    }

    /// A page of `/api/files[?user=U]` into `out`.
    fn files(
        &self,
        user: Option<String>,
        after: Option<&str>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Reply> {
        let page = queries::files_page(&self.registry, user.as_deref(), after, limit);
        let files: Vec<_> = page
            .rows
            .iter()
            .map(|r| FileJson {
                user: &r.user,
                file: &r.file,
                description: &r.description,
            })
            .collect();
        write_json(
            out,
            &FilesJson {
                files,
                next: page.next,
            },
        )
    }

    /// A page of `/api/users` into `out`.
    fn users(&self, after: Option<&str>, limit: usize, out: &mut Vec<u8>) -> Result<(), Reply> {
        let page = queries::users_page(&self.registry, after, limit);
        let users: Vec<_> = page
            .rows
            .iter()
            .map(|r| UserJson {
                name: &r.name,
                connected: r.addr.is_some(),
                ip: r.addr.map(|a| a.ip.to_string()),
                port: r.addr.map(|a| a.port),
                files: r.files,
                connected_since: r.addr.and_then(|_| self.hub.connected_since(&r.name)),
            })
            .collect();
        write_json(
            out,
            &UsersJson {
                users,
                next: page.next,
            },
        )
    }

    /// A page of `/api/search` into `out`.
    fn search(
        &self,
        pattern: Option<String>,
        after: Option<&str>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Reply> {
        let Some(pattern) = pattern else {
            return Err(Reply::text(400, "bad request: give the pattern as ?q="));
        };
        let after = match after.map(str::parse::<u32>) {
            None => None,
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => {
                return Err(Reply::text(
                    400,
                    "bad request: after must be the next of a page",
                ));
            }
        };
        let page = queries::search_page(&self.registry, &pattern, after, limit);
        let results: Vec<_> = page
            .rows
            .iter()
            .map(|h| HitJson {
                file: &h.file,
                description: &h.description,
                user: &h.user,
                ip: h.addr.ip.to_string(),
                port: h.addr.port,
            })
            .collect();
        let cap = SEARCH_CAP.min(self.registry.max_search_results());
        write_json(
            out,
            &SearchJson {
                results,
                cap,
                next: page.next,
            },
        )
    }

    /// `/api/stats`: a few counters, no list.
    fn stats(&self) -> Value {
        let (registered, publications) = self.registry.counts();
        let c = self.hub.counters();
        let requests: serde_json::Map<String, Value> = c
            .requests
            .into_iter()
            .map(|(op, n, _)| (op.name().to_owned(), n.into()))
            .collect();
        json!({
            "users_registered": registered,
            "users_connected": self.registry.connected_count(),
            "publications": publications,
            "requests": requests,
            "requests_per_second": c.per_second,
            "uptime_seconds": c.uptime.as_secs(),
        })
    }

    /// `GET /metrics`: the Prometheus text exposition.
    fn metrics(&self) -> Reply {
        let (registered, publications) = self.registry.counts();
        let counters = self.hub.counters();
        let body = metrics::render(&metrics::Scrape {
            counters: &counters,
            latency: self.hub.latency(),
            registry: metrics::RegistryGauges {
                registered,
                connected: self.registry.connected_count(),
                publications,
                search_index: self.registry.search_stats(),
            },
            server: (self.gauges)(),
        });
        let mut r = Reply::new(200, metrics::CONTENT_TYPE, body);
        r.extra.push(("Cache-Control", "no-store".into()));
        r
    }

    /// `GET /api/events`: a Server-Sent Events stream until the client leaves, falls
    /// [`events::EVENT_QUEUE`] events behind, or the server stops. It starts with
    /// the backlog: the events after the `Last-Event-ID` header (the browser's
    /// reconnect) or the `last-event-id` query parameter (the page's own reconnect:
    /// a new EventSource cannot set the header), else the last
    /// [`events::BACKLOG_ON_LOAD`].
    fn events(&self, stream: &mut TcpStream, head: &Head, timeout: Duration) -> Option<Reply> {
        let (_, query) = head.path_and_query();
        let from_query = http::query_param(query, "last-event-id").ok().flatten();
        let last = head
            .header("last-event-id")
            .map(str::to_owned)
            .or(from_query);
        let Some(sub) = self.hub.subscribe(last.as_deref()) else {
            let mut r = Reply::text(
                503,
                format!(
                    "too many event-stream clients (at most {})",
                    events::MAX_EVENT_CLIENTS
                ),
            );
            r.extra.push(("Retry-After", "5".into()));
            return Some(r);
        };
        let out = stream_start(head, &sub);
        self.pump(stream, &sub, out, timeout);
        let _ = stream.shutdown(SockShutdown::Both);
        None
    }

    /// Writes `out`, then the subscription's events as they come (a keepalive when
    /// idle), until the client leaves, its queue is dropped, or the server stops.
    fn pump(
        &self,
        stream: &mut TcpStream,
        sub: &events::Subscription,
        mut out: Vec<u8>,
        timeout: Duration,
    ) {
        // Writes wait at most the server's timeout: a reader that stops reading is
        // let go then, or sooner when its queue fills.
        let _ = stream.set_write_timeout(Some(timeout));
        let _ = socket2::SockRef::from(&*stream).set_send_buffer_size(STREAM_SNDBUF);
        let mut idle_since = Instant::now();
        loop {
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    return;
                }
                out.clear();
                idle_since = Instant::now();
            }
            if self.shutdown.is_triggered() {
                return;
            }
            match sub.events.recv_timeout(STREAM_TICK) {
                Ok(frame) => {
                    out.extend_from_slice(frame.as_bytes());
                    thread::sleep(STREAM_BATCH);
                    // What else is already queued goes in the same write.
                    for frame in sub.events.try_iter().take(events::EVENT_QUEUE) {
                        out.extend_from_slice(frame.as_bytes());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if idle_since.elapsed() >= KEEPALIVE {
                        out.extend_from_slice(b": keepalive\n\n");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// The head of an event stream and what it sends first: a comment (the client sees
/// the stream open before any event; a browser whose stream breaks retries after
/// 3 s), then the backlog.
fn stream_start(head: &Head, sub: &events::Subscription) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    http::encode_head(
        &mut out,
        head.version.clone(),
        200,
        "text/event-stream",
        None,
        &[("Cache-Control", "no-cache".into())],
    );
    out.extend_from_slice(b": peerdex events\nretry: 3000\n\n");
    for frame in &sub.backlog {
        out.extend_from_slice(frame.as_bytes());
    }
    out
}

/// A page of `/api/users`: its rows, and the cursor of the next page (`null` on
/// the last), as in every page of the API.
#[derive(Serialize)]
struct UsersJson<'a> {
    users: Vec<UserJson<'a>>,
    next: Option<String>,
}

/// A page of `/api/files`.
#[derive(Serialize)]
struct FilesJson<'a> {
    files: Vec<FileJson<'a>>,
    next: Option<String>,
}

#[derive(Serialize)]
struct UserJson<'a> {
    name: &'a str,
    connected: bool,
    ip: Option<String>,
    port: Option<u16>,
    files: usize,
    connected_since: Option<String>,
}

#[derive(Serialize)]
struct FileJson<'a> {
    user: &'a str,
    file: &'a str,
    description: &'a str,
}

#[derive(Serialize)]
struct HitJson<'a> {
    file: &'a str,
    description: &'a str,
    user: &'a str,
    ip: String,
    port: u16,
}

#[derive(Serialize)]
struct SearchJson<'a> {
    results: Vec<HitJson<'a>>,
    cap: usize,
    next: Option<String>,
}

/// The reply to an API request while the reply budget is spent.
fn busy() -> Reply {
    let mut r = Reply::text(503, "server busy: too many list replies at once, try again");
    r.extra.push(("Retry-After", "1".into()));
    r
}

/// Serializes `v` into `out` (a reply being built).
fn write_json(out: &mut Vec<u8>, v: &impl Serialize) -> Result<(), Reply> {
    serde_json::to_writer(&mut *out, v).map_err(|e| Reply::unencodable(&e))
}

/// The page size `?limit=` asks for (default [`queries::DEFAULT_PAGE`]), at most
/// `max`; 400 when it is not a number from 1 up.
fn page_limit(limit: Option<String>, max: usize) -> Result<usize, Reply> {
    match limit {
        None => Ok(max.min(queries::DEFAULT_PAGE)),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(Reply::text(
                400,
                format!("bad request: limit must be a number from 1 to {max}"),
            )),
        },
    }
}

/// A JSON reply of live data: no cache may keep it.
fn json_reply(v: &Value) -> Reply {
    let mut r = Reply::json(v);
    r.extra.push(("Cache-Control", "no-store".into()));
    r
}
