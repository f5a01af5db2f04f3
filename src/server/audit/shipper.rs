//! Ships the server's audit records to the ONC-RPC logger (PROTOCOL.md section 3).
//!
//! Owns: the `--logger`, `--program`, `--spool` and `--no-logger` options (and the
//! `LOGGER_HOST` variable), finding the logger (PMAP GETPORT on the logger host,
//! like `clnt_create`, or a given port), and the shipper thread: it reads the
//! durable spool in order and sends version 3 LOG calls (the record with its
//! result code) over one persistent TCP
//! connection, pipelined in batches; a record counts as delivered when the logger
//! answers LOG_STORED or LOG_DUPLICATE, and only then is it trimmed from the spool.
//! When the logger is down or answers an error, the batch is kept and sent again
//! after a backoff, looking the port up again. At start it first delivers what
//! earlier instances left in the spool directory (a crash, or a logger that was
//! down at shutdown). Does not own: the spool file (`spool`), RPC encoding (`rpc`,
//! `logrpc`), the portmapper protocol (`portmap`).
//!
//! Older loggers (PROTOCOL.md section 3): a logger of the previous peerdex release
//! has versions 1 and 2, and the statement's usual logger is an rpcgen program
//! with only `void LOG(string) = 1` in version 1. The shipper uses the highest
//! version the logger offers: when the portmapper lists a lower version but not a
//! higher one, or a LOG call is answered PROG_MISMATCH with a lower high version,
//! it steps down to that version: version 2 records without their result, or
//! version 1 calls carrying the printed line. A void reply is the
//! acknowledgement, and version 1 has no record identity, so delivery to it is at
//! least once (a batch whose replies were lost is sent again whole). Spool lines
//! written before results were recorded go as version 2 records. Below version 3
//! the shipper asks again (a NULL call in version 3, whose PROG_MISMATCH names the
//! highest version) on every new connection and at least every [`RECHECK_V2`], so
//! a logger replaced by a newer one gets the newer records again.
//!
//! Request threads never wait for any of this: they only append to the spool.

use std::borrow::Cow;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use parking_lot::Mutex;

use super::interface::{self, ArgField, Interface, Numbers};
use super::spool::{self, Entry, Spool, SpoolError, SpoolReader};
use super::{AuditSink, ShipperState, ShipperStatus};
use crate::net::{self, Shutdown};
use crate::proto::audit::push_line;
use crate::rpc::logprog::{self as logrpc, LOG_DUPLICATE, LOG_STORED, LogRecord};
use crate::rpc::message::{self as rpc, RecordError, ReplyError};
use crate::rpc::portmap::{self, IPPROTO_TCP, PmapError};

/// Records per pipelined batch: one `write` of ~40 KiB and one round trip for
/// 256 records; below the logger's own batch limit.
pub(crate) const BATCH: usize = 256;

/// Connecting to the logger (and asking its portmapper) may take this long.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waiting for the replies of a batch may take this long before the connection
/// is given up and the batch resent (the logger writes each batch to disk).
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// First and longest pause between attempts while the logger is unreachable.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// At shutdown, how long the shipper keeps trying to deliver what is left before
/// leaving it in the spool for the next start.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// While shipping to an older logger, how often the shipper reconnects to see
/// whether the program now offers version 3 (a student's logger replaced by the
/// peerdex one): rare enough that the lookup costs nothing, soon enough that an
/// operator sees records arrive as version 2 within a minute.
pub(crate) const RECHECK_V2: Duration = Duration::from_secs(30);

/// After a logger answered that it does not take the LOG calls sent (an
/// interface mismatch: GARBAGE_ARGS, PROC_UNAVAIL, PROG_UNAVAIL, PROG_MISMATCH
/// with no usable version), the pause before trying again: the logger will not
/// change its mind until someone restarts it or the server with another
/// interface, so no reconnect loop; records wait in the spool meanwhile.
pub(crate) const MISMATCH_BACKOFF: Duration = Duration::from_secs(60);

/// How often an idle shipper looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// How long the shipper lets records gather after delivering a short batch: the
/// most a record waits in the spool beyond a round trip to the logger.
const GATHER: Duration = Duration::from_millis(2);

/// The spool is truncated once everything in it is acknowledged and it is at
/// least this big (truncating after every batch would cost a system call each).
const TRUNCATE_AFTER: u64 = 64 * 1024;

/// Where the logger is when neither `--logger` nor `LOGGER_HOST` says.
pub(crate) const DEFAULT_LOGGER_HOST: &str = "localhost";

/// Logger options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct ShipperArgs {
    /// The audit logger: HOST (its port from HOST's portmapper) or HOST:PORT.
    /// Default: $LOGGER_HOST, else localhost through its portmapper.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub logger: Option<String>,
    /// RPC program number of the logger, decimal or 0x hex.
    #[arg(long, default_value_t = logrpc::DEFAULT_PROGRAM, value_parser = logrpc::parse_program)]
    pub program: u32,
    /// Directory of the durable audit spool (records wait there for the logger).
    #[arg(long, value_name = "DIR", default_value = "peerdex-spool")]
    pub spool: PathBuf,
    /// Do not ship audit records anywhere.
    #[arg(long, conflicts_with = "logger")]
    pub no_logger: bool,
    /// A student's logger: its LOG as PROGRAM:VERSION:PROCEDURE (e.g.
    /// 0x31234567:1:1). Sends the fields of --logger-args instead of peerdex's
    /// records (docs/LOGGER-INTERFACE.md).
    #[arg(long, value_name = "PROG:VERS:PROC", value_parser = interface::parse_numbers,
          conflicts_with_all = ["program", "logger_version", "logger_proc"])]
    pub logger_interface: Option<Numbers>,
    /// A student's logger: the version of its LOG (with --program; default 1).
    #[arg(long, value_name = "N")]
    pub logger_version: Option<u32>,
    /// A student's logger: the procedure number of its LOG (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub logger_proc: Option<u32>,
    /// A student's logger: its LOG argument as string fields in order, from
    /// user, operation, file, datetime, result, line (e.g.
    /// user,operation,datetime; default: line, one string).
    #[arg(long, value_name = "FIELDS", value_parser = interface::parse_field_list)]
    pub logger_args: Option<interface::FieldList>,
}

impl ShipperArgs {
    /// The student interface the options describe; `None` (peerdex's own
    /// interface, versions 3 down to 1) when no interface option is given.
    pub(crate) fn interface(&self) -> Option<Interface> {
        if self.logger_interface.is_none()
            && self.logger_version.is_none()
            && self.logger_proc.is_none()
            && self.logger_args.is_none()
        {
            return None;
        }
        let numbers = self.logger_interface.unwrap_or(Numbers {
            program: self.program,
            version: self.logger_version.unwrap_or(logrpc::V1),
            procedure: self.logger_proc.unwrap_or(logrpc::PROC_LOG),
        });
        let fields = self
            .logger_args
            .clone()
            .map_or_else(|| vec![ArgField::Line], |f| f.0);
        Some(Interface { numbers, fields })
    }
}

/// Why shipping could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    #[error("cannot start the shipper thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Spool(SpoolError),
    /// `--logger`/`LOGGER_HOST` is not HOST or HOST:PORT.
    #[error("'{0}' is not a logger address (HOST, or HOST:PORT with a port 1-65535)")]
    Target(String),
}

/// Where the logger is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Ask HOST's portmapper for the port (PMAP GETPORT, version 2, tcp).
    Portmap { host: String },
    /// Connect to HOST:PORT directly.
    Direct { host: String, port: u16 },
}

impl Target {
    /// Parses `HOST`, `HOST:PORT`, `[IPv6]`, `[IPv6]:PORT` or a bare IPv6 address.
    pub(crate) fn parse(s: &str) -> Result<Target, ShipperError> {
        let s = s.trim();
        let bad = || ShipperError::Target(s.to_owned());
        if s.is_empty() {
            return Err(bad());
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Target::Direct {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return Ok(Target::Portmap {
                host: inner.to_owned(),
            });
        }
        match s.matches(':').count() {
            0 => Ok(Target::Portmap { host: s.to_owned() }),
            1 => {
                let (host, port) = s.split_once(':').ok_or_else(bad)?;
                match port.parse::<u16>() {
                    Ok(port) if port != 0 && !host.is_empty() => Ok(Target::Direct {
                        host: host.to_owned(),
                        port,
                    }),
                    _ => Err(bad()),
                }
            }
            // More colons: a bare IPv6 address.
            _ => Ok(Target::Portmap { host: s.to_owned() }),
        }
    }

    /// `--logger`, else `LOGGER_HOST` (if set and not empty), else localhost.
    pub(crate) fn choose(option: Option<&str>, env: Option<&str>) -> Result<Target, ShipperError> {
        match option.or(env.filter(|e| !e.trim().is_empty())) {
            Some(s) => Target::parse(s),
            None => Ok(Target::Portmap {
                host: DEFAULT_LOGGER_HOST.to_owned(),
            }),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Portmap { host } => write!(f, "{host} (port from its portmapper)"),
            Target::Direct { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Portmap(PmapError),
    #[error("program not registered with the portmapper")]
    NotRegistered,
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("io: {0}")]
    Io(#[source] std::io::Error),
    #[error(transparent)]
    Record(RecordError),
    #[error(transparent)]
    Rpc(ReplyError),
    /// A reply for another call, or an undecodable result.
    #[error("rpc: reply does not match the call")]
    Protocol,
    /// The logger answered LOG_FAILED or an unknown status.
    #[error("logger could not store the record (status {0})")]
    Refused(i32),
    /// The logger has only older versions (up to the one recorded in the link):
    /// the batch is sent again in it.
    #[error("logger offers only older versions")]
    Older,
    /// The logger does not take the calls sent: GARBAGE_ARGS, PROC_UNAVAIL,
    /// PROG_UNAVAIL, or PROG_MISMATCH with no usable version.
    #[error("interface mismatch: {0}")]
    Mismatch(#[source] ReplyError),
}

/// Whether an RPC error says the logger does not take this interface (as
/// opposed to being down or failing).
fn is_mismatch(e: &ReplyError) -> bool {
    matches!(
        e,
        ReplyError::GarbageArgs
            | ReplyError::ProcUnavail
            | ReplyError::ProgUnavail
            | ReplyError::ProgMismatch { .. }
    )
}

/// Reads (and drops) the `left` replies still due on `conn` after an error
/// reply, before the caller gives the connection up. Closing with calls
/// unanswered makes the logger write its next replies into a reset
/// connection, and an rpcgen server (SIGPIPE not ignored) dies of that. Each
/// read is bounded by the reply timeout; the first failure ends the wait.
fn drain_replies(conn: &mut Conn, left: usize) {
    let mut record = Vec::new();
    for _ in 0..left {
        if rpc::read_record(&mut conn.reader, &mut record).is_err() {
            return;
        }
    }
}

/// An RPC error as a [`LinkError`]: a mismatch, or a plain failure.
fn rpc_error(e: ReplyError) -> LinkError {
    if is_mismatch(&e) {
        LinkError::Mismatch(e)
    } else {
        LinkError::Rpc(e)
    }
}

struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// The connection to the logger and the state of retrying it.
struct Link {
    target: Target,
    program: u32,
    conn: Option<Conn>,
    xid: u32,
    backoff: Duration,
    down: bool,
    /// The highest LOG version the logger offers: [`logrpc::V3`], [`logrpc::V2`]
    /// for an older peerdex logger, or [`logrpc::V1`] for a statement logger.
    version: u32,
    /// When the current connection was made (version 3 was last looked for).
    connected_at: Instant,
    /// Where `/metrics` reads whether the logger is reachable.
    status: Arc<ShipperStatus>,
    /// A student's interface (`--logger-interface`, `--logger-args`): sent
    /// as given, without looking for versions.
    custom: Option<Interface>,
    /// The interface mismatch last reported, so that it is said once.
    mismatch: Option<ReplyError>,
}

impl Link {
    fn new(target: Target, program: u32) -> Link {
        Link {
            target,
            program,
            conn: None,
            xid: std::process::id().wrapping_mul(0x9e37_79b9),
            backoff: BACKOFF_MIN,
            down: false,
            version: logrpc::V3,
            connected_at: Instant::now(),
            status: ShipperStatus::new(),
            custom: None,
            mismatch: None,
        }
    }

    /// A link that sends `iface`'s calls (a student's logger).
    fn with_interface(target: Target, iface: Interface) -> Link {
        let mut link = Link::new(target, iface.numbers.program);
        link.version = iface.numbers.version;
        link.custom = Some(iface);
        link
    }

    /// What the link sends, for messages.
    fn sending(&self) -> String {
        match &self.custom {
            Some(iface) => iface.describe(),
            None if self.version == logrpc::V1 => format!(
                "program 0x{:08x} version 1 procedure 1 with (line): peerdex's interface",
                self.program
            ),
            None => format!(
                "program 0x{:08x} version {} procedure 1 with peerdex's record",
                self.program, self.version
            ),
        }
    }

    /// Says once that the logger does not take what is sent, and how to fix it.
    fn report_mismatch(&mut self, e: &ReplyError) {
        if self.mismatch.as_ref() == Some(e) {
            log::debug!("audit logger {}: still {e}", self.target);
            return;
        }
        let (answer, remedy) = interface::mismatch_advice(e);
        log::warn!(
            "audit logger {}: interface mismatch: it answered {answer} ({e}) to LOG calls of {}; {remedy}. Records wait in the spool; trying again every {} s",
            self.target,
            self.sending(),
            MISMATCH_BACKOFF.as_secs()
        );
        self.mismatch = Some(e.clone());
    }

    /// Records the version the logger offers, saying so when it changes.
    fn set_version(&mut self, version: u32) {
        let version = version.clamp(logrpc::V1, logrpc::V3);
        if version != self.version {
            match version {
                logrpc::V1 => log::warn!(
                    "audit logger {} offers only LOG version 1: sending it the printed lines (at least once: a record may arrive twice after a lost reply)",
                    self.target
                ),
                logrpc::V2 => log::warn!(
                    "audit logger {} offers LOG version 2 at most: sending records without their result codes",
                    self.target
                ),
                _ => log::warn!(
                    "audit logger {} offers LOG version {version} again: sending records with their result codes",
                    self.target
                ),
            }
            self.version = version;
        }
    }

    fn address(&mut self) -> Result<SocketAddr, LinkError> {
        let target = self.target.clone();
        let (host, port) = match &target {
            Target::Direct { host, port } => (host.as_str(), *port),
            Target::Portmap { host } if self.custom.is_some() => {
                let port = portmap::getport(host, self.program, self.version, IPPROTO_TCP)
                    .map_err(LinkError::Portmap)?
                    .ok_or(LinkError::NotRegistered)?;
                (host.as_str(), port)
            }
            Target::Portmap { host } => {
                // rpcbind answers GETPORT for any version with the port of any
                // version of the program, so only the NULL call on the new
                // connection, or PROG_MISMATCH to a LOG call, tells an older
                // logger apart (see `connect`).
                let mut found = None;
                for v in [logrpc::V3, logrpc::V2, logrpc::V1] {
                    let port = portmap::getport(host, self.program, v, IPPROTO_TCP)
                        .map_err(LinkError::Portmap)?;
                    if let Some(port) = port {
                        found = Some((v, port));
                        break;
                    }
                }
                let (v, port) = found.ok_or(LinkError::NotRegistered)?;
                if v < self.version {
                    self.set_version(v);
                }
                (host.as_str(), port)
            }
        };
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| LinkError::Resolve(host.to_owned()))
    }

    fn connect(&mut self) -> Result<&mut Conn, LinkError> {
        let negotiates = self.custom.is_none();
        if negotiates && self.version < logrpc::V3 && self.connected_at.elapsed() >= RECHECK_V2 {
            // Look for version 3 again on a fresh connection.
            self.conn = None;
        }
        if self.conn.is_none() {
            let addr = self.address()?;
            let stream = net::connect(addr, CONNECT_TIMEOUT).map_err(LinkError::Io)?;
            stream
                .set_read_timeout(Some(REPLY_TIMEOUT))
                .map_err(LinkError::Io)?;
            let reader = BufReader::new(stream.try_clone().map_err(LinkError::Io)?);
            log::debug!("audit logger: connected to {addr}");
            let mut conn = Conn { stream, reader };
            self.connected_at = Instant::now();
            if negotiates && self.version < logrpc::V3 {
                // Has the logger gained a newer version? Ask it.
                let offered = self.highest_offered(&mut conn)?;
                self.set_version(offered);
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Calls the NULL procedure of version 3: the highest version the logger
    /// offers (3 when it answers, the high version of its PROG_MISMATCH else).
    fn highest_offered(&mut self, conn: &mut Conn) -> Result<u32, LinkError> {
        let xid = self.xid;
        self.xid = self.xid.wrapping_add(1);
        let mut out = Vec::with_capacity(64);
        rpc::put_call(
            &mut out,
            xid,
            self.program,
            logrpc::V3,
            logrpc::PROC_NULL,
            &[],
        );
        conn.stream.write_all(&out).map_err(LinkError::Io)?;
        let mut record = Vec::new();
        rpc::read_record(&mut conn.reader, &mut record).map_err(LinkError::Record)?;
        match rpc::parse_reply(&record) {
            (Some(x), Ok(_)) if x == xid => Ok(logrpc::V3),
            (Some(x), Err(ReplyError::ProgMismatch { low, high }))
                if x == xid && low <= high && high >= logrpc::V1 =>
            {
                Ok(high.min(logrpc::V3))
            }
            (Some(x), Err(e)) if x == xid => Err(rpc_error(e)),
            _ => Err(LinkError::Protocol),
        }
    }

    /// Sends one batch as pipelined LOG calls of the version the logger offers.
    fn send(&mut self, id: u64, batch: &[(Entry<'static>, u64)]) -> Result<(), LinkError> {
        // Connect first: connecting may find out the version.
        self.connect()?;
        if let Some(iface) = self.custom.clone() {
            self.send_custom(&iface, batch)
        } else if self.version == logrpc::V1 {
            self.send_v1(batch)
        } else {
            self.send_records(id, batch)
        }
    }

    /// Sends one batch as pipelined calls of a student's interface; any
    /// successful reply acknowledges its record, whatever its result (`void`,
    /// or an `int` whose meaning the student chose).
    fn send_custom(
        &mut self,
        iface: &Interface,
        batch: &[(Entry<'static>, u64)],
    ) -> Result<(), LinkError> {
        let numbers = iface.numbers;
        let (out, first) = self.calls(numbers.program, batch, |e, args| {
            iface.encode(&e.user, &e.operation, &e.datetime, e.result, args);
            (numbers.version, numbers.procedure)
        });
        self.exchange(&out, first, batch.len(), |_, _| Ok(()), |_, e| rpc_error(e))
    }

    /// Sends one batch as pipelined LOG v1 calls, each carrying the printed line;
    /// any successful (void) reply acknowledges its record.
    fn send_v1(&mut self, batch: &[(Entry<'static>, u64)]) -> Result<(), LinkError> {
        let mut line = String::with_capacity(160);
        let (out, first) = self.calls(self.program, batch, |e, args| {
            line.clear();
            push_line(&mut line, &e.user, &e.operation, &e.datetime);
            logrpc::encode_v1(&line, args);
            (logrpc::V1, logrpc::PROC_LOG)
        });
        self.exchange(&out, first, batch.len(), |_, _| Ok(()), |_, e| rpc_error(e))
    }

    /// Sends one batch as pipelined LOG calls of version 3 (version 2 to a logger
    /// without version 3, and for spool lines without a result) and checks every
    /// reply's status. A PROG_MISMATCH naming an older version switches to it.
    fn send_records(&mut self, id: u64, batch: &[(Entry<'static>, u64)]) -> Result<(), LinkError> {
        let with_result = self.version >= logrpc::V3;
        let mut versions = Vec::with_capacity(batch.len());
        let (out, first) = self.calls(self.program, batch, |e, args| {
            let record = LogRecord {
                server_id: id,
                seq: e.seq,
                user: Cow::Borrowed(&e.user),
                operation: Cow::Borrowed(&e.operation),
                datetime: Cow::Borrowed(&e.datetime),
                result: e.result.filter(|_| with_result),
            };
            record.encode(args);
            versions.push(record.version());
            (record.version(), logrpc::PROC_LOG)
        });
        let mut older = None;
        let status = |_, result: &[u8]| match logrpc::decode_status(result) {
            Ok(LOG_STORED | LOG_DUPLICATE) => Ok(()),
            Ok(other) => Err(LinkError::Refused(other)),
            Err(_) => Err(LinkError::Protocol),
        };
        let rejected = |i: usize, e| match e {
            ReplyError::ProgMismatch { low, high }
                if low <= high && (logrpc::V1..versions[i]).contains(&high) =>
            {
                older = Some(high);
                LinkError::Older
            }
            e => rpc_error(e),
        };
        let sent = self.exchange(&out, first, batch.len(), status, rejected);
        if let Some(high) = older {
            self.set_version(high);
        }
        sent
    }

    /// `batch` as pipelined calls to `program`, their xids a fresh range starting at
    /// the one returned: `encode` writes one entry's arguments and says the call's
    /// version and procedure.
    fn calls(
        &mut self,
        program: u32,
        batch: &[(Entry<'static>, u64)],
        mut encode: impl FnMut(&Entry<'static>, &mut Vec<u8>) -> (u32, u32),
    ) -> (Vec<u8>, u32) {
        let first = self.xid;
        self.xid = self.xid.wrapping_add(batch.len() as u32);
        let mut out = Vec::with_capacity(batch.len() * 160);
        let mut args = Vec::with_capacity(160);
        for (i, (e, _)) in batch.iter().enumerate() {
            args.clear();
            let (version, procedure) = encode(e, &mut args);
            let xid = first.wrapping_add(i as u32);
            rpc::put_call(&mut out, xid, program, version, procedure, &args);
        }
        (out, first)
    }

    /// Sends `out`, `n` pipelined calls whose xids start at `first`, and reads their
    /// replies in order: `accepted` judges the result of call `i`'s accepted reply;
    /// a rejected one ends the exchange as `rejected` says, the replies still due
    /// read and dropped.
    fn exchange(
        &mut self,
        out: &[u8],
        first: u32,
        n: usize,
        mut accepted: impl FnMut(usize, &[u8]) -> Result<(), LinkError>,
        rejected: impl FnOnce(usize, ReplyError) -> LinkError,
    ) -> Result<(), LinkError> {
        let conn = self.connect()?;
        conn.stream.write_all(out).map_err(LinkError::Io)?;
        let mut record = Vec::new();
        for i in 0..n {
            rpc::read_record(&mut conn.reader, &mut record).map_err(LinkError::Record)?;
            let (xid, result) = rpc::parse_reply(&record);
            if xid != Some(first.wrapping_add(i as u32)) {
                return Err(LinkError::Protocol);
            }
            match result {
                Ok(result) => accepted(i, result)?,
                Err(e) => {
                    drain_replies(conn, n - i - 1);
                    return Err(rejected(i, e));
                }
            }
        }
        Ok(())
    }

    /// Delivers a batch, retrying with backoff until it is acknowledged. Returns
    /// false (batch not delivered) only once `stop` says time is up.
    fn deliver(&mut self, id: u64, batch: &[(Entry<'static>, u64)], stop: &Stop) -> bool {
        let mut may_redial = true;
        loop {
            let kept = self.conn.is_some();
            match self.send(id, batch) {
                Ok(()) => {
                    self.delivered();
                    return true;
                }
                Err(LinkError::Older) => {
                    // Start over on a new connection, at once, in the older
                    // version (the rest of the batch's replies were read).
                    self.conn = None;
                    continue;
                }
                Err(LinkError::Mismatch(e)) => {
                    // Not down: it answers, but not to these calls. Said once;
                    // then a long pause instead of a reconnect loop.
                    self.conn = None;
                    self.report_mismatch(&e);
                    self.down = false;
                    if !self.pause(MISMATCH_BACKOFF, stop) {
                        return false;
                    }
                    continue;
                }
                Err(e @ (LinkError::Io(_) | LinkError::Record(_))) if kept && may_redial => {
                    // The logger closes connections idle for a while (120 s):
                    // the first failure on a connection kept from an earlier
                    // batch is a stale connection, not an outage. Redial at
                    // once, silently; a failure on the new connection is real
                    // (issue 26 item 13).
                    log::debug!(
                        "audit logger {}: kept connection failed ({e}): redialing",
                        self.target
                    );
                    self.conn = None;
                    may_redial = false;
                    continue;
                }
                Err(e) => self.failed(&e),
            }
            if !self.pause(self.backoff, stop) {
                return false;
            }
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// A batch was acknowledged: says that the logger is back, or takes the calls
    /// now, if it had not.
    fn delivered(&mut self) {
        if self.mismatch.take().is_some() {
            log::warn!(
                "audit logger {} takes the LOG calls of {} now",
                self.target,
                self.sending()
            );
        } else if self.down {
            log::warn!("audit logger {} reachable again", self.target);
        }
        self.down = false;
        self.status.set(ShipperState::Delivering);
        self.backoff = BACKOFF_MIN;
    }

    /// A send failed for good (the connection is dropped): said once per outage.
    fn failed(&mut self, e: &LinkError) {
        self.conn = None;
        if !self.down {
            log::warn!(
                "audit logger {} unreachable ({e}): records wait in the spool and are sent when it is back",
                self.target
            );
            self.down = true;
            self.status.set(ShipperState::Down);
        } else {
            log::debug!("audit logger {}: {e}", self.target);
        }
    }

    /// Waits `pause` before the next attempt; false (give up) once `stop` is
    /// requested. Shutting down and the logger fails: the rest stays in the
    /// spool rather than hold up the exit.
    fn pause(&self, pause: Duration, stop: &Stop) -> bool {
        let until = Instant::now() + pause;
        loop {
            if stop.requested() {
                return false;
            }
            if Instant::now() >= until {
                return true;
            }
            std::thread::sleep(POLL.min(pause));
        }
    }
}

/// The stop request of [`Shipper::finish`]: drain, but only until the deadline.
#[derive(Default)]
struct Stop {
    deadline: Mutex<Option<Instant>>,
}

impl Stop {
    fn requested(&self) -> bool {
        self.deadline.lock().is_some()
    }

    fn expired(&self) -> bool {
        self.deadline.lock().is_some_and(|d| Instant::now() >= d)
    }
}

/// The running shipper thread.
pub(crate) struct Shipper {
    thread: JoinHandle<()>,
    stop: Arc<Stop>,
}

impl Shipper {
    /// Delivers what the spool still holds (at most [`DRAIN_TIMEOUT`] more), then
    /// stops; what is left stays in the spool for the next start. Call it after
    /// the last request has been recorded.
    pub(crate) fn finish(self) {
        *self.stop.deadline.lock() = Some(Instant::now() + DRAIN_TIMEOUT);
        let _ = self.thread.join();
    }
}

/// Starts the shipper and returns the sink for request threads.
pub(crate) fn start(
    args: &ShipperArgs,
    _shutdown: &Shutdown,
) -> Result<(AuditSink, Option<Shipper>), ShipperError> {
    if args.no_logger {
        return Ok((AuditSink::disabled(), None));
    }
    // LOGGER_HOST (peerdex's) first, then LOG_RPC_IP (the 2024-25 statement's).
    let env = ["LOGGER_HOST", "LOG_RPC_IP"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty());
    let target = Target::choose(args.logger.as_deref(), env.as_deref())?;
    // Adopt what gone instances left before creating our own file.
    let orphans = spool::orphans(&args.spool);
    let (spool, bell) = Spool::create(&args.spool).map_err(ShipperError::Spool)?;
    let spool = Arc::new(spool);
    let stop = Arc::new(Stop::default());
    let link = match args.interface() {
        Some(iface) => Link::with_interface(target, iface),
        None => Link::new(target, args.program),
    };
    log::info!(
        "audit records go to the logger at {} ({}) through the spool {}",
        link.target,
        link.sending(),
        spool.path().display()
    );
    let status = ShipperStatus::new();
    let mut link = link;
    link.status = Arc::clone(&status);
    let thread = {
        let spool = Arc::clone(&spool);
        let stop = Arc::clone(&stop);
        let status = Arc::clone(&status);
        std::thread::Builder::new()
            .name("shipper".into())
            .spawn(move || {
                ship(link, &spool, orphans, &bell, &stop);
                status.set(ShipperState::Stopped);
            })
            .map_err(ShipperError::Thread)?
    };
    Ok((
        AuditSink::spooled(spool, status),
        Some(Shipper { thread, stop }),
    ))
}

fn ship(
    mut link: Link,
    spool: &Spool,
    orphans: Vec<spool::Orphan>,
    bell: &Receiver<()>,
    stop: &Stop,
) {
    if !ship_orphans(&mut link, spool, orphans, stop) {
        return;
    }
    let mut reader = match SpoolReader::open(spool.path()) {
        Ok(r) => r,
        Err(e) => {
            log::error!("audit records will not be shipped: {e}");
            return;
        }
    };
    let mut acked = 0;
    loop {
        if stop.expired() {
            break;
        }
        let Some(batch) = next_batch(spool, &mut reader) else {
            break;
        };
        if batch.is_empty() {
            if stop.requested() {
                break;
            }
            let _ = bell.recv_timeout(POLL);
            continue;
        }
        if !link.deliver(spool.id(), &batch, stop) {
            break;
        }
        if batch.len() < BATCH && !stop.requested() {
            // Let records gather: one read, one send and one logger write per
            // batch instead of per record while requests keep coming.
            std::thread::sleep(GATHER);
        }
        acked = batch.last().map_or(acked, |(_, end)| *end);
        if let Some((last, _)) = batch.last() {
            spool.acked_up_to(last.seq);
        }
        if !trim(spool, &mut reader, &mut acked) {
            break;
        }
    }
    if !spool.close(acked) {
        log::warn!(
            "undelivered audit records stay in {} for the next start",
            spool.path().display()
        );
    }
}

/// The next records to send: from the spool file, else (once it is read) those it
/// could not take; `None` when the file cannot be read (shipping stops).
fn next_batch(spool: &Spool, reader: &mut SpoolReader) -> Option<Vec<(Entry<'static>, u64)>> {
    match reader.read(BATCH, spool.len(), false) {
        Ok(b) if b.is_empty() => Some(spool.memory_batch(reader.pos(), BATCH)),
        Ok(b) => Some(b),
        Err(e) => {
            log::error!("audit records will not be shipped: {e}");
            None
        }
    }
}

/// Delivers the records of spools left by earlier runs, removing each once
/// delivered; false (the spool closed) when time ran out: the rest stays on disk for
/// the next start.
fn ship_orphans(link: &mut Link, spool: &Spool, orphans: Vec<spool::Orphan>, stop: &Stop) -> bool {
    for orphan in orphans {
        if !ship_orphan(link, &orphan, stop) {
            spool.close(0);
            return false;
        }
        log::info!("delivered the records left in {}", orphan.path.display());
        orphan.remove();
    }
    true
}

/// Trims the spool's delivered head (the first `acked` bytes) once it is due, with
/// `reader` and `acked` moved back by what was cut; false when the reader cannot
/// follow (shipping stops).
fn trim(spool: &Spool, reader: &mut SpoolReader, acked: &mut u64) -> bool {
    match spool.trim(*acked, TRUNCATE_AFTER) {
        Ok(0) => {}
        Ok(removed) => {
            *acked -= removed;
            let pos = reader.pos() - removed;
            if let Err(e) = reader.reopen_at(pos) {
                log::error!("audit records will not be shipped: {e}");
                return false;
            }
        }
        Err(e) => log::warn!("cannot trim the spool: {e}"),
    }
    true
}

fn ship_orphan(link: &mut Link, orphan: &spool::Orphan, stop: &Stop) -> bool {
    let mut reader = match SpoolReader::open(&orphan.path) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("{e}");
            return true;
        }
    };
    loop {
        if stop.expired() {
            return false;
        }
        match reader.read(BATCH, u64::MAX, true) {
            Ok(batch) if batch.is_empty() => return true,
            Ok(batch) => {
                if !link.deliver(orphan.id, &batch, stop) {
                    return false;
                }
            }
            Err(e) => {
                log::warn!("{e}");
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_like_a_user_writes_them() {
        let pm = |h: &str| Target::Portmap { host: h.into() };
        let direct = |h: &str, port| Target::Direct {
            host: h.into(),
            port,
        };
        assert_eq!(Target::parse("logs.example").unwrap(), pm("logs.example"));
        assert_eq!(
            Target::parse("127.0.0.1:4000").unwrap(),
            direct("127.0.0.1", 4000)
        );
        assert_eq!(Target::parse("host:4000").unwrap(), direct("host", 4000));
        assert_eq!(Target::parse("[::1]:4000").unwrap(), direct("::1", 4000));
        assert_eq!(Target::parse("[::1]").unwrap(), pm("::1"));
        assert_eq!(Target::parse("::1").unwrap(), pm("::1"));
        assert!(Target::parse("host:0").is_err());
        assert!(Target::parse("host:x").is_err());
        assert!(Target::parse(":4000").is_err());
        assert!(Target::parse(" ").is_err());
    }

    #[test]
    fn option_beats_environment_beats_default() {
        assert_eq!(
            Target::choose(Some("a"), Some("b")).unwrap(),
            Target::Portmap { host: "a".into() }
        );
        assert_eq!(
            Target::choose(None, Some("b:9")).unwrap(),
            Target::Direct {
                host: "b".into(),
                port: 9
            }
        );
        assert_eq!(
            Target::choose(None, Some("")).unwrap(),
            Target::Portmap {
                host: DEFAULT_LOGGER_HOST.into()
            }
        );
    }
}
