//! `peerdex server`: the index server (PROTOCOL.md sections 1 and 6).
//!
//! Owns: the per-connection request cycle (read one request within the timeout,
//! apply it to the registry, write the whole reply in one write, close), the console
//! lines, the audit record of each request, and the address recorded at CONNECT.
//! Does not own: decoding (`index`), state rules (`registry`), accepting and capping
//! connections (`net`), shipping audit records (`shipper`).

pub(crate) mod audit;
mod budget;
pub(crate) mod change;
mod compaction;
pub(crate) mod http;
pub(crate) mod journal;
pub(crate) mod liveness;
pub(crate) mod registry;
mod search;
pub(crate) mod store;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::net::console::Console;
use crate::net::{self, DeadlineReader, Permit, Shutdown};
use crate::proto::audit::{AuditRecord, NO_REPLY};
use crate::proto::datetime;
use crate::proto::index::{self, Body, Request, RequestError};
use crate::proto::wire::FieldReader;
use audit::AuditSink;
use audit::shipper;
use budget::{Built, ReplyBudget, Reservation};
use journal::{JournalError, StoreOptions};
use registry::{Change, Refused, Registry, SearchOptions};
use store::Store;

/// Command-line options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// TCP port to listen on.
    #[arg(short, long, default_value_t = 9090)]
    pub port: u16,
    /// Address to bind (0.0.0.0: every interface).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Address to report in LIST_USERS for users that connected from loopback
    /// (127.0.0.1), so peers on other hosts can reach them. Such users are still
    /// probed for liveness on loopback.
    #[arg(long, value_name = "IP")]
    pub advertise: Option<IpAddr>,
    /// Seconds a client has to send its whole request; also the longest a reply
    /// write may block without progress.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS", value_parser = net::parse_seconds)]
    pub timeout: f64,
    /// Most connections open at once; past it the oldest connection that has not
    /// yet sent its request is closed to make room.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Do not print a console line per request.
    #[arg(long)]
    pub quiet: bool,
    /// After the console line of a failed request, a note on stderr saying what
    /// the code means and what was asked (`make run` sets it; stdout stays exactly
    /// the statement's console).
    #[arg(long, conflicts_with = "quiet")]
    pub explain: bool,
    /// Directory that keeps the registry across restarts (journal and snapshot).
    #[arg(long, default_value = "./peerdex-data", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Keep the registry in memory only: a restart starts empty.
    #[arg(long, conflicts_with_all = ["fsync", "data_dir"])]
    pub ephemeral: bool,
    /// Acknowledge a change only once it is on disk (fdatasync, shared by concurrent
    /// writers): survives power loss, not only a crash of the server.
    #[arg(long)]
    pub fsync: bool,
    /// Journal size (bytes) past which it is compacted into a snapshot (it must also
    /// be twice the last snapshot).
    #[arg(long, default_value_t = journal::COMPACT_MIN_BYTES, value_name = "BYTES")]
    pub compact_after: u64,
    /// Most matches a SEARCH reply lists (its count says how many follow).
    #[arg(long, default_value_t = registry::DEFAULT_MAX_SEARCH_RESULTS, value_name = "N")]
    pub max_search_results: usize,
    /// Internal (benchmark baseline): answer SEARCH by scanning every connected
    /// user's files instead of keeping an index.
    #[arg(long, hide = true)]
    pub search_scan: bool,
    /// The course statement the lab follows, for what the bytes cannot tell:
    /// 2024 (2023-24: LIST_CONTENT sends name and description) or 2025 (2024-25:
    /// names only).
    #[arg(long, default_value = "2024", value_name = "YEAR")]
    pub statement: index::Statement,
    #[command(flatten)]
    pub store: store::StoreArgs,
    #[command(flatten)]
    pub liveness: liveness::LivenessArgs,
    #[command(flatten)]
    pub logger: shipper::ShipperArgs,
    #[command(flatten)]
    pub dashboard: http::DashboardArgs,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot listen on {addr}: {}",
        net::bind_reason(source, "another server running? pick one with -p")
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The dashboard's listener (`--http`).
    #[error(
        "dashboard: cannot listen on {addr}: {}",
        net::bind_reason(source, "pick another port with --http")
    )]
    Dashboard {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("audit logger: {0}")]
    Shipper(#[source] shipper::ShipperError),
    #[error("{0}")]
    Store(#[source] JournalError),
    #[error("shared store: {0}")]
    Shared(#[source] store::StoreError),
}

/// Slowest rate (bytes per second) at which a client may read a reply: the whole
/// reply must be written within `--timeout` plus its size at this rate. A reader
/// making no progress is cut after `--timeout` anyway (per write).
const MIN_READ_RATE: u64 = 64 * 1024;

/// Everything a connection thread needs.
struct Context {
    registry: Arc<Registry>,
    /// Where changes are made (the registry itself, or a shared store).
    store: Arc<Store>,
    audit: AuditSink,
    console: Console,
    timeout: Duration,
    advertise: Option<IpAddr>,
    /// `--statement`: the LIST_CONTENT layout.
    statement: index::Statement,
    /// Shared with the dashboard: its JSON replies count in the same budget.
    replies: Arc<ReplyBudget>,
    /// The dashboard's view of the request path (`--http` only).
    events: Option<Arc<http::Hub>>,
    /// `--explain`: a note on stderr after each failed request's console line.
    explain: bool,
}

/// A bound index server, ready to run.
pub(crate) struct IndexServer {
    listener: net::Listener,
    /// Where the registry is kept, for the start-up line.
    storage: String,
    liveness: liveness::LivenessArgs,
    dashboard: Option<http::Dashboard>,
    ctx: Arc<Context>,
}

impl IndexServer {
    /// Opens the registry (replaying the data directory unless `--ephemeral`) and
    /// binds the listening socket.
    pub(crate) fn bind(
        args: &ServerArgs,
        audit: AuditSink,
        console: Console,
    ) -> Result<IndexServer, ServerError> {
        let (store, storage) = open_store(args)?;
        let registry = Arc::clone(store.registry());
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = net::Listener::bind("index", addr, args.max_connections as usize)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let timeout = Duration::from_secs_f64(args.timeout);
        let replies = Arc::new(ReplyBudget::new());
        let dashboard = match args.dashboard.http {
            Some(port) => {
                let addr = SocketAddr::new(args.dashboard.http_bind.unwrap_or(args.bind), port);
                let shared = (Arc::clone(&registry), Arc::clone(&replies));
                let d = http::Dashboard::bind(addr, shared, timeout)
                    .map_err(|source| ServerError::Dashboard { addr, source })?;
                Some(d)
            }
            None => None,
        };
        if let Some(d) = &dashboard {
            store.share_feed(&d.hub());
        }
        Ok(IndexServer {
            listener,
            storage,
            liveness: args.liveness.clone(),
            ctx: Arc::new(Context {
                explain: args.explain,
                events: dashboard.as_ref().map(http::Dashboard::hub),
                registry,
                store: Arc::new(store),
                audit,
                console: if args.quiet {
                    Console::silent()
                } else {
                    console
                },
                timeout,
                advertise: args.advertise,
                statement: args.statement,
                replies,
            }),
            dashboard,
        })
    }

    /// Where the registry is kept, as shown at start.
    pub(crate) fn storage(&self) -> &str {
        &self.storage
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Where the dashboard listens, with `--http`.
    pub(crate) fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().map(http::Dashboard::local_addr)
    }

    /// Serves until `shutdown` is raised, then closes idle connections and waits
    /// (at most one timeout) for the others to finish.
    pub(crate) fn run(mut self, shutdown: &Shutdown) {
        let dashboard = self.start_dashboard(shutdown);
        let prober = self.start_prober(shutdown);
        let ctx = Arc::clone(&self.ctx);
        self.listener
            .serve(shutdown, self.ctx.timeout, move |stream, peer, permit| {
                handle_connection(&ctx, stream, peer, permit);
            });
        if let Some(prober) = prober {
            let _ = prober.join();
        }
        if let Some(dashboard) = dashboard {
            dashboard.stop();
        }
        self.ctx.store.stop();
    }

    /// With `--http`, the dashboard's threads, reading the server's gauges.
    fn start_dashboard(&mut self, shutdown: &Shutdown) -> Option<http::Running> {
        self.dashboard.take().and_then(|d| {
            let ctx = Arc::clone(&self.ctx);
            let limiter = Arc::clone(self.listener.limiter());
            d.with_gauges(move || http::ServerGauges {
                open_connections: limiter.active(),
                connection_cap: limiter.cap(),
                evictions: limiter.evictions(),
                reply_budget_waits: ctx.replies.waits(),
                reply_budget_refusals: ctx.replies.refusals(),
                reply_budget_bytes: ctx.replies.used(),
                audit: ctx.audit.gauges(),
            })
            .start(shutdown)
            .map_err(|e| log::warn!("dashboard off: cannot start its threads: {e}"))
            .ok()
        })
    }

    /// Unless `--probe-interval 0`, the liveness prober: a user whose peer does not
    /// answer is disconnected, and that is shown, sent to the dashboard and audited.
    fn start_prober(&self, shutdown: &Shutdown) -> Option<std::thread::JoinHandle<()>> {
        let prober = {
            let ctx = Arc::clone(&self.ctx);
            let peers = Arc::clone(&ctx.store);
            liveness::start(
                &self.liveness,
                peers,
                shutdown.clone(),
                ctx.advertise,
                move |user, addr| {
                    if let Some(events) = &ctx.events {
                        events.dropped(user, addr);
                    }
                    // Not a request: stderr, so stdout keeps only the statement's
                    // lines (PROTOCOL.md section 6). Escaped: a name restored from
                    // the data directory was never checked by a request's rules.
                    eprintln!(
                        "peerdex: DISCONNECT {}: peer unreachable at {}:{}",
                        crate::proto::text::escape_for_terminal(user),
                        addr.ip,
                        addr.port
                    );
                    ctx.audit.record(AuditRecord {
                        user: user.to_owned(),
                        operation: "DISCONNECT (peer unreachable)".into(),
                        datetime: datetime::now(),
                        result: NO_REPLY,
                    });
                },
            )
        };
        prober.unwrap_or_else(|e| {
            log::warn!("liveness checks off: cannot start the prober: {e}");
            None
        })
    }
}

/// Allocations at least this large are served by `mmap` and given back to the system
/// when freed. glibc raises its threshold (up to 32 MiB) after each large free, after
/// which multi-megabyte replies come from per-thread arenas that keep the memory once
/// freed: measured, 100 refused 10 MB SEARCH replies left the server near 300 MiB
/// resident with only 64 MiB ever held at once. A fixed 1 MiB keeps the resident size
/// near what the [`budget::REPLY_BUDGET`] allows.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;

/// Runs `peerdex server` until SIGINT or SIGTERM.
pub fn run(args: ServerArgs) -> Result<(), ServerError> {
    // SAFETY: mallopt only sets an allocator parameter; called before any thread.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
    let shutdown = Shutdown::new();
    shutdown.on_signals().map_err(ServerError::Signals)?;
    let (console, writer) = Console::stdout();
    let (audit, shipper) = shipper::start(&args.logger, &shutdown).map_err(ServerError::Shipper)?;
    let server = IndexServer::bind(&args, audit, console.clone())?;
    let addr = server.local_addr();
    let shown = net::advertised(addr.ip());
    // stdout carries exactly the statement's console (PROTOCOL.md section 6): the
    // init line, the bare prompt, then one line per request. Course graders diff
    // it; everything else goes to stderr.
    console.line(format!(
        "s> init server {}",
        SocketAddr::new(shown, addr.port())
    ));
    console.line("s>".into());
    eprintln!("peerdex: {}", server.storage());
    if let Some(d) = server.dashboard_addr() {
        // stderr: stdout carries only the statement's lines.
        eprintln!(
            "peerdex: dashboard on http://{}/",
            SocketAddr::new(net::advertised(d.ip()), d.port())
        );
    }
    log::info!("listening on {addr}");
    server.run(&shutdown);
    if let Some(shipper) = shipper {
        shipper.finish();
    }
    drop(console);
    writer.finish();
    eprintln!("peerdex: server stopped");
    Ok(())
}

/// Where `args` keep the registry, and the line that says so.
fn open_store(args: &ServerArgs) -> Result<(Store, String), ServerError> {
    let Some(url) = &args.store.store else {
        let (registry, line) = open_registry(args)?;
        return Ok((Store::Local(Arc::new(registry)), line));
    };
    let registry = Arc::new(Registry::with_search(search_options(args)));
    let probe_interval = Duration::from_secs_f64(args.liveness.probe_interval);
    Store::open_shared(&args.store, url, registry, probe_interval).map_err(ServerError::Shared)
}

fn search_options(args: &ServerArgs) -> SearchOptions {
    SearchOptions {
        max_results: args.max_search_results,
        scan: args.search_scan,
    }
}

/// The registry of `args` and the line that says where it is kept.
fn open_registry(args: &ServerArgs) -> Result<(Registry, String), ServerError> {
    let search = search_options(args);
    if args.ephemeral {
        return Ok((
            Registry::with_search(search),
            "data: ephemeral (in memory only: a restart starts empty)".into(),
        ));
    }
    let opts = StoreOptions {
        fsync: args.fsync,
        compact_after: args.compact_after,
    };
    let (registry, recovered) =
        Registry::open_with(&args.data_dir, opts, search).map_err(ServerError::Store)?;
    let (users, files) = registry.counts();
    match registry.search_stats() {
        Some((indexed, bytes)) => log::info!(
            "search index: {indexed} publications of connected users, about {} KiB",
            bytes / 1024
        ),
        None => log::info!("search index: off (--search-scan)"),
    }
    log::info!(
        "replayed {} snapshot users and {} journal changes in {:?}",
        recovered.snapshot_users,
        recovered.changes,
        recovered.elapsed
    );
    let line = format!(
        "data: {} ({}; {users} users, {files} publications restored in {} ms)",
        args.data_dir.display(),
        if args.fsync {
            "journal, fsync on every change"
        } else {
            "journal, no fsync"
        },
        recovered.elapsed.as_millis()
    );
    Ok((registry, line))
}

fn handle_connection(ctx: &Context, stream: TcpStream, peer: SocketAddr, permit: Permit) {
    if let Err(e) = net::set_timeouts(&stream, ctx.timeout) {
        log::debug!("{peer}: cannot set timeouts: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    // The whole request within the timeout, however it is trickled.
    let mut reader = FieldReader::new(DeadlineReader::new(&stream, ctx.timeout));
    let request = index::read_request_with_ip(&mut reader).map(|(req, declared)| {
        note_declared_ip(&req, declared, peer);
        req
    });
    let started = Instant::now();
    if !permit.busy() {
        log::debug!("{peer}: evicted by the connection cap before its request was read");
        return;
    }
    let mut reply = Vec::with_capacity(128);
    // Held until the reply is written; given back however the connection ends.
    let mut _held = None;
    match request {
        Ok(req) => _held = answer(ctx, &req, peer, started, &mut reply),
        Err(RequestError::UnknownOp) => {
            log::info!("{peer}: unknown operation: closing without a reply");
            return;
        }
        Err(RequestError::Bad { op, user, error }) => {
            log::info!("{peer}: {} request rejected: {error}", op.name());
            reject(ctx, op, user, &mut reply);
        }
    }
    let deadline =
        Instant::now() + ctx.timeout + Duration::from_secs(reply.len() as u64 / MIN_READ_RATE);
    if let Err(e) = net::write_all_by(&stream, &reply, ctx.timeout, deadline) {
        log::debug!("{peer}: reply not delivered: {e}");
    }
}

/// What a failed request's code means, with what was asked, for a person watching
/// the console: `    LIST_CONTENT bob: FAIL 3 REMOTE USER DOES NOT EXIST`. The
/// same meanings as the dashboard's rows and the logger's lines; `None` for OK.
fn failure_note(req: &index::Request, code: u8) -> Option<String> {
    let op = req.body.op();
    let meaning = index::Status::failure_meaning(op, code)?;
    let asked = match &req.body {
        Body::Publish { file, .. } | Body::Delete { file } => Some(file.as_str()),
        Body::Search { pattern } => Some(pattern.as_str()),
        Body::ListContent { target } => Some(target.as_str()),
        _ => None,
    };
    let asked = asked.map_or_else(String::new, |a| {
        format!(" {}", crate::proto::text::escape_for_terminal(a))
    });
    Some(format!("    {}{asked}: FAIL {code} {meaning}", op.name()))
}

/// A name read from a rejected request, as the console, the audit record and the
/// dashboard may show it. Validated first: a valid name is shown as sent; an
/// invalid one with every character outside printable ASCII written as `\u{430}`
/// (`\x1b` below U+0080), so it can neither act on a terminal nor pass for a
/// valid name on screen (a Cyrillic `а` in `аlice` printed raw made a refused
/// REGISTER look like alice's, issue 26 item 3).
fn shown_name(name: String) -> String {
    if crate::proto::wire::is_valid_name(&name) {
        return name;
    }
    crate::proto::text::escape_beyond_ascii(&name)
}

/// Answers a request that was read whole into `reply` (`reserved`: what a list
/// reply holds of the reply budget), and reports it (console, events, audit).
fn answer<'a>(
    ctx: &'a Context,
    req: &Request,
    peer: SocketAddr,
    started: Instant,
    reply: &mut Vec<u8>,
) -> Option<Reservation<'a>> {
    let op = req.body.op();
    let mut operation = req.audit_text();
    let mut held = None;
    let outcome = if matches!(
        req.body,
        Body::ListUsers | Body::ListContent { .. } | Body::Search { .. }
    ) {
        build_list(ctx, req, peer).map(|built| {
            built.map(|Built { bytes, held: h }| {
                *reply = bytes;
                held = Some(h);
            })
        })
    } else {
        execute(ctx, req, peer, reply).map(Some)
    };
    match outcome {
        Ok(None) => {
            // Over the reply budget: refused like any other failure.
            reply.push(op.other_error());
            ctx.console
                .line(format!("s> {} FROM {} (server busy)", op.name(), req.user));
            operation = format!("{operation} REFUSED: server busy");
        }
        Ok(Some(())) => ctx
            .console
            .line(format!("s> {} FROM {}", op.name(), req.user)),
        Err(refused) => {
            reply.clear();
            reply.push(op.other_error());
            let from = peer.ip().to_canonical();
            ctx.console.line(format!(
                "s> {} FROM {} REFUSED: connected from {}, request from {from}",
                op.name(),
                req.user,
                refused.connected_from
            ));
            operation = format!("{operation} REFUSED from {from}");
        }
    }
    report(ctx, req, peer, started, reply[0], operation);
    held
}

/// The answered request to the dashboard, the console's note (`--explain`) and the
/// audit record.
fn report(
    ctx: &Context,
    req: &Request,
    peer: SocketAddr,
    started: Instant,
    code: u8,
    operation: String,
) {
    if let Some(events) = &ctx.events {
        let host = recorded_ip(peer.ip(), ctx.advertise);
        events.answered(req, code, host, started);
    }
    if ctx.explain
        && let Some(note) = failure_note(req, code)
    {
        ctx.console.note(note);
    }
    ctx.audit.record(AuditRecord {
        user: req.user.clone(),
        operation,
        datetime: req.datetime.clone().unwrap_or_else(datetime::now),
        result: i32::from(code),
    });
}

/// Answers a request whose operation is known but whose fields are bad, and reports
/// it when its user name was read.
fn reject(ctx: &Context, op: index::Op, user: Option<String>, reply: &mut Vec<u8>) {
    // The name was read but may be the invalid field: from here on (console,
    // audit record, events) only its checked form is used.
    let user = user.map(shown_name);
    reply.push(op.other_error());
    if let (Some(events), Some(user)) = (&ctx.events, &user) {
        events.rejected(op, user, op.other_error());
    }
    if let Some(user) = user {
        ctx.console.line(format!("s> {} FROM {user}", op.name()));
        ctx.audit.record(AuditRecord {
            user,
            operation: op.name().to_owned(),
            datetime: datetime::now(),
            result: result_of(reply),
        });
    }
}

/// The result code a reply carries (its first byte), for the audit record.
fn result_of(reply: &[u8]) -> i32 {
    reply.first().map_or(NO_REPLY, |&b| i32::from(b))
}

/// Builds a LIST_USERS, LIST_CONTENT or SEARCH reply within the reply budget;
/// `None` when the budget is spent. LIST_USERS copies the registry's cached listing
/// (no building to gate); the others are built by at most [`budget::BUILDERS`] at
/// once, and not at all while the budget is full.
fn build_list<'a>(
    ctx: &'a Context,
    req: &Request,
    peer: SocketAddr,
) -> Result<Option<Built<'a>>, Refused> {
    let build = |reply: &mut Vec<u8>| execute(ctx, req, peer, reply);
    if matches!(req.body, Body::ListUsers) {
        ctx.replies.build_now(build)
    } else {
        ctx.replies.build_gated(build)
    }
}

/// Runs a request from `peer`, writing the whole reply into `reply`. Refused when
/// the user is connected from another host than `peer` (see the README's threat
/// model).
fn execute(
    ctx: &Context,
    req: &Request,
    peer: SocketAddr,
    reply: &mut Vec<u8>,
) -> Result<(), Refused> {
    // The host as the registry knows it: the address CONNECT would record for it.
    let host = recorded_ip(peer.ip(), ctx.advertise);
    if matches!(
        req.body,
        Body::ListUsers | Body::ListContent { .. } | Body::Search { .. }
    ) && let Err(code) = ctx.store.ready_to_read(req.body.op())
    {
        reply.push(code);
        return Ok(());
    }
    let user = req.user.clone();
    let change = match &req.body {
        Body::Register => Change::Register { user },
        Body::Unregister => Change::Unregister { user },
        Body::Connect { port } => Change::Connect {
            user,
            ip: host,
            port: *port,
        },
        Body::Disconnect => Change::Disconnect { user },
        Body::Publish { file, description } => Change::Publish {
            user,
            file: file.clone(),
            description: description.clone(),
        },
        Body::Delete { file } => Change::Delete {
            user,
            file: file.clone(),
        },
        Body::ListUsers => return ctx.registry.list_users(&req.user, Some(host), reply),
        Body::ListContent { target } => {
            return ctx.registry.list_content_for(
                &req.user,
                target,
                Some(host),
                reply,
                ctx.statement,
            );
        }
        Body::Search { pattern } => {
            return ctx.registry.search(&req.user, pattern, Some(host), reply);
        }
    };
    reply.push(ctx.store.apply_as(&change, host)?);
    Ok(())
}

/// A CONNECT that declared its IP (`CONNECT USER IP PORT`, PROTOCOL.md section 1,
/// "Dialects") is accepted, but the server records the address the connection
/// came from (with `--advertise` for loopback), as for every CONNECT: a declared
/// address is not proof of anything, and the host check of later requests
/// compares the address of their connection with the recorded one. A declared
/// address that differs is said on the log, for the operator.
fn note_declared_ip(req: &Request, declared: Option<IpAddr>, peer: SocketAddr) {
    if let Some(ip) = declared
        && ip.to_canonical() != peer.ip().to_canonical()
    {
        log::info!(
            "{peer}: CONNECT {} declared address {ip}: recording the connection's address",
            req.user
        );
    }
}

/// The address recorded for a CONNECT from `peer`: IPv4-mapped IPv6 addresses are
/// shown as IPv4; a loopback peer is replaced by `--advertise` when given.
pub(crate) fn recorded_ip(peer: IpAddr, advertise: Option<IpAddr>) -> IpAddr {
    let ip = peer.to_canonical();
    match advertise {
        Some(adv) if ip.is_loopback() => adv,
        _ => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_are_shown_in_printable_ascii_and_valid_ones_as_sent() {
        assert_eq!(shown_name("Кирилл".into()), "Кирилл");
        assert_eq!(shown_name("\u{430}lice".into()), "\\u{430}lice");
        assert_eq!(shown_name("bob\ns> X".into()), "bob\\x0as> X");
        assert_eq!(shown_name("a\u{202e}b".into()), "a\\u{202e}b");
    }

    #[test]
    fn loopback_is_replaced_only_when_advertising() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let adv: IpAddr = "10.0.0.5".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(recorded_ip(lo, None), lo);
        assert_eq!(recorded_ip(lo, Some(adv)), adv);
        assert_eq!(recorded_ip(other, Some(adv)), other);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(recorded_ip(mapped, None), other);
    }
}
