//! `peerdex logger`: the ONC-RPC audit logger (PROTOCOL.md section 3,
//! `rpc/logger.x`).
//!
//! Owns: the TCP and UDP listeners on one port number, answering calls as an
//! rpcgen-generated server does (NULL, LOG v1, v2 and v3, PROG_UNAVAIL, PROG_MISMATCH,
//! PROC_UNAVAIL, GARBAGE_ARGS, RPC_MISMATCH, AUTH_ERROR), the audit file (JSON
//! lines, written before the reply leaves), the duplicate check of version 2 and
//! 3 records, the console line per record (a version 3 record's line ends in
//! `    FAIL n` when its request failed), and registration with the local
//! portmapper. Does not own: message encoding (`rpc`, `xdr`, `logrpc`), the
//! portmapper protocol (`portmap`), accepting connections (`net`).
//!
//! Replies to pipelined calls on one TCP connection are batched: every call
//! already buffered is handled, the audit lines of the batch are written in one
//! `write`, then the replies leave in one `write`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::linefile::LineFile;
use crate::net::console::{Console, ConsoleWriter};
use crate::net::{self, DeadlineReader, Permit, Shutdown};
use crate::proto::audit;
use crate::rpc::logprog::{
    self as logrpc, LOG_DUPLICATE, LOG_FAILED, LOG_REFUSED, LOG_STORED, LogRecord,
};
use crate::rpc::message::{self as rpc, Answer, Incoming, RecordError};
use crate::rpc::portmap::{self, IPPROTO_TCP, IPPROTO_UDP, Mapping};

/// How long a TCP connection may stay silent. The server's shipper keeps one
/// connection open and reconnects transparently, so idle connections can go.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long writing a batch of replies may take before the client is dropped.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls handled before the batch's audit lines and replies are written, even if
/// more are buffered: bounds the memory a pipelining client can tie up.
pub(crate) const MAX_BATCH: usize = 512;

/// Buffer of a connection's reader: a few dozen pipelined calls per `read`.
const READ_BUFFER: usize = 16 * 1024;

/// Attempts to find a port number free for both TCP and UDP when `--port 0`.
const BIND_ATTEMPTS: usize = 16;

/// Longest time a record's console line waits to be handed to the console
/// writer. Lines are handed over in chunks rather than one by one: waking the
/// writer thread for every record costs more than the rest of a LOG call.
pub(crate) const CONSOLE_DELAY: Duration = Duration::from_millis(50);

/// Bytes of console lines gathered before they are handed over regardless.
const CONSOLE_CHUNK: usize = 32 * 1024;

/// How long the logger waits at exit for its last console lines to be written.
const CONSOLE_FINISH: Duration = Duration::from_secs(2);

/// How often the UDP thread looks at the shutdown flag.
const UDP_POLL: Duration = Duration::from_millis(200);

/// Largest step above the highest stored seq of a server that is accepted
/// (`LOG_SEQ_WINDOW` of rpc/logger.x): far above what a real sender skips (the
/// shipper sends its records in order, in batches of 256, and skips only
/// damaged spool lines), so a larger jump marks a forged record, refused so
/// that it cannot turn the server's next real records into duplicates.
pub(crate) const SEQ_WINDOW: u64 = 4096;

/// The versions of the program, for PROG_MISMATCH (the highest one is
/// `--max-version`).
const LOW_VERSION: u32 = logrpc::V1;
const HIGH_VERSION: u32 = logrpc::V3;

/// Command-line options of `peerdex logger`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoggerArgs {
    /// Port for both TCP and UDP (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to bind (0.0.0.0: every interface).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// RPC program number, decimal or 0x hex.
    #[arg(long, default_value_t = logrpc::DEFAULT_PROGRAM, value_parser = logrpc::parse_program)]
    pub program: u32,
    /// Audit file: one JSON object per stored record, appended.
    #[arg(long, value_name = "FILE", default_value = "peerdex-audit.jsonl")]
    pub audit: PathBuf,
    /// Do not register with the local portmapper.
    #[arg(long)]
    pub no_portmap: bool,
    /// The portmapper to register with (tests point it elsewhere).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:111",
        hide = true
    )]
    pub portmapper: SocketAddr,
    /// Most TCP connections open at once; past it the oldest is closed.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Highest LOG version offered (tests stand in for an older logger with 2).
    #[arg(
        long,
        default_value_t = HIGH_VERSION,
        value_parser = clap::value_parser!(u32).range(LOW_VERSION as i64..=HIGH_VERSION as i64),
        hide = true
    )]
    pub max_version: u32,
    /// Seconds a TCP connection may stay silent before the logger closes it
    /// (tests shorten it to see the server reconnect).
    #[arg(long, default_value_t = IDLE_TIMEOUT.as_secs_f64(), value_parser = net::parse_seconds, hide = true)]
    pub idle_timeout: f64,
}

/// Why the logger could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoggerError {
    #[error(
        "logger: cannot listen on {addr} (tcp and udp): {}",
        net::bind_reason(source, "another logger running? pick one with --port")
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("logger: audit file {}: {source}", path.display())]
    Audit {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("logger: cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// Another live logger holds the program's rpcbind registration.
    #[error(
        "logger: program 0x{program:08x} is registered with rpcbind by a running logger on port {port}: \
         pick another program number (--program, or make run PROGRAM=...)"
    )]
    ProgramTaken { program: u32, port: u16 },
}

/// One line of the audit file: the store writes it borrowing the record's strings,
/// and reads it back owned when it reopens the file (one field list, one
/// serializer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AuditLine<'a> {
    /// The interface version the record came with (1, 2 or 3).
    version: u32,
    /// Version 2: the sending server instance, 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server: Option<ServerId>,
    /// Version 2: the record's sequence number for its server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    /// Version 2: "udp" when the record came in a datagram (absent: TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    via: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datetime: Option<Cow<'a, str>>,
    /// Version 3: the result code the client got (0 = OK, -1 = no reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<i32>,
    /// Version 1: the string as sent (for an argument of several values, the
    /// values joined by four spaces, as printed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    /// An argument of several values (a student's struct): each value in order,
    /// ints in decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Cow<'a, [String]>>,
    /// The procedure number, when not the LOG procedure (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    procedure: Option<u32>,
}

/// A server id, written as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerId(u64);

impl Serialize for ServerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:016x}", self.0))
    }
}

impl<'de> Deserialize<'de> for ServerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ServerId, D::Error> {
        let hex = Cow::<str>::deserialize(d)?;
        u64::from_str_radix(&hex, 16)
            .map(ServerId)
            .map_err(serde::de::Error::custom)
    }
}

/// What the logger knows of one server instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    /// Highest sequence number stored.
    highest: u64,
    /// Every record stored so far came over UDP. Once one came over TCP, records
    /// in datagrams (whose source address anyone can forge) are refused.
    udp_only: bool,
}

/// What becomes of a version 2 record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Store,
    Duplicate,
    Refused,
}

/// Judges a record from a server the logger knows as `known` (None: never seen).
fn judge(known: Option<Known>, seq: u64, udp: bool) -> Verdict {
    match known {
        None if udp && seq > SEQ_WINDOW => Verdict::Refused,
        None => Verdict::Store,
        Some(k) if udp && !k.udp_only => Verdict::Refused,
        Some(k) if seq <= k.highest => Verdict::Duplicate,
        Some(k) if seq > k.highest.saturating_add(SEQ_WINDOW) => Verdict::Refused,
        Some(_) => Verdict::Store,
    }
}

/// The audit file and what it already holds.
struct Store {
    /// The audit file: whole lines only, even after a failed write.
    file: LineFile,
    /// What is known of each server instance that sent records.
    known: HashMap<u64, Known>,
    /// Records refused as forged, for the log.
    refused: u64,
    console: Console,
    /// Console lines not yet handed over, newline-separated.
    lines: String,
    /// When the oldest of `lines` was stored.
    lines_since: Option<Instant>,
    /// The audit bytes of a batch, kept between batches.
    scratch: Vec<u8>,
    /// Duplicate-check entries a failed batch must restore, kept between batches.
    undo: Vec<(u64, Option<Known>)>,
}

/// Largest batch buffer kept for the next batch.
const SCRATCH_KEEP: usize = 256 * 1024;

impl Store {
    /// Opens (creating) the audit file and rebuilds the duplicate check from it.
    fn open(path: &Path, console: Console) -> std::io::Result<Store> {
        // A line cut short by a crash (never acknowledged: the reply follows the
        // write) is cut off, so it cannot swallow the next one.
        let (file, _) = LineFile::open(path)?;
        let mut known: HashMap<u64, Known> = HashMap::new();
        for line in BufReader::new(File::open(path)?).split(b'\n') {
            let line = line?;
            let Ok(a) = serde_json::from_slice::<AuditLine>(&line) else {
                continue;
            };
            if let (Some(ServerId(id)), Some(seq)) = (a.server, a.seq) {
                let udp = a.via.as_deref() == Some("udp");
                let k = known.entry(id).or_insert(Known {
                    highest: 0,
                    udp_only: true,
                });
                k.highest = k.highest.max(seq);
                k.udp_only &= udp;
            }
        }
        Ok(Store {
            file,
            known,
            refused: 0,
            console,
            lines: String::new(),
            lines_since: None,
            scratch: Vec::new(),
            undo: Vec::new(),
        })
    }

    /// Stores a batch: decides duplicates, writes every new line in one write,
    /// prints them, and returns the status of each item, in order.
    fn store(&mut self, items: &[Item], statuses: &mut Vec<i32>) {
        statuses.clear();
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.undo.clear();
        // Printed lines go straight into the console buffer; cut back on failure.
        let mark = self.lines.len();
        for item in items {
            let (status, line) = self.line_of(item);
            statuses.push(status);
            if let Some(line) = line {
                // Serialising strings and numbers into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, &line);
                out.push(b'\n');
            }
        }
        // A write cut short (disk full) is cut back to the last whole line before
        // the caller answers LOG_FAILED: else its remains would be glued to the
        // next line, which would be unreadable (and its record, answered
        // LOG_STORED, lost).
        let written = self.file.append(&out);
        if out.capacity() <= SCRATCH_KEEP {
            self.scratch = out;
        }
        if let Err(e) = written {
            log::error!("cannot append to the audit file: {e}");
            self.undo_batch(mark, statuses);
            return;
        }
        if self.lines.len() > mark {
            self.lines_since.get_or_insert_with(Instant::now);
        }
        if self.lines.len() >= CONSOLE_CHUNK {
            self.hand_over_lines();
        } else {
            self.hand_over_due_lines();
        }
    }

    /// The status of one item of a batch and, when it is stored, its line (its
    /// console line is in the buffer already).
    fn line_of<'a>(&mut self, item: &'a Item) -> (i32, Option<AuditLine<'a>>) {
        let line = match item {
            Item::V1(text) => {
                if !text.is_empty() {
                    self.next_line();
                    crate::proto::text::push_escaped(&mut self.lines, text);
                }
                AuditLine {
                    version: 1,
                    text: Some(text.into()),
                    ..AuditLine::default()
                }
            }
            Item::Fields(f) => {
                self.next_line();
                self.lines.push_str(&f.text);
                AuditLine {
                    version: f.version,
                    text: Some((&f.text).into()),
                    fields: (f.values.len() > 1).then_some((&f.values[..]).into()),
                    procedure: (f.procedure != logrpc::PROC_LOG).then_some(f.procedure),
                    ..AuditLine::default()
                }
            }
            Item::V2(r, udp) => match self.admit(r, *udp) {
                LOG_STORED => self.record_line(r, *udp),
                status => return (status, None),
            },
        };
        (LOG_STORED, Some(line))
    }

    /// Whether record `r` is new (LOG_STORED: its server's highest sequence number
    /// is moved on, undoably), a duplicate, or refused as forged.
    fn admit(&mut self, r: &LogRecord<'_>, udp: bool) -> i32 {
        let prev = self.known.get(&r.server_id).copied();
        match judge(prev, r.seq, udp) {
            Verdict::Store => {}
            Verdict::Duplicate => return LOG_DUPLICATE,
            Verdict::Refused => {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    log::warn!(
                        "refused a record of server {:016x} seq {} over {} as forged ({} refused so far)",
                        r.server_id,
                        r.seq,
                        if udp { "udp" } else { "tcp" },
                        self.refused
                    );
                }
                return LOG_REFUSED;
            }
        }
        self.undo.push((r.server_id, prev));
        self.known.insert(
            r.server_id,
            Known {
                highest: r.seq,
                udp_only: udp && prev.is_none_or(|k| k.udp_only),
            },
        );
        LOG_STORED
    }

    /// The line of an admitted record, its console line put in the buffer.
    fn record_line<'a>(&mut self, r: &'a LogRecord<'_>, udp: bool) -> AuditLine<'a> {
        self.next_line();
        audit::push_line(&mut self.lines, &r.user, &r.operation, &r.datetime);
        if let Some(result) = r.result {
            audit::push_result(&mut self.lines, &r.operation, result);
        }
        AuditLine {
            version: r.version(),
            server: Some(ServerId(r.server_id)),
            seq: Some(r.seq),
            via: udp.then_some("udp".into()),
            user: Some((&*r.user).into()),
            operation: Some((&*r.operation).into()),
            datetime: Some((&*r.datetime).into()),
            result: r.result,
            ..AuditLine::default()
        }
    }

    /// A batch that could not be written: its console lines (after `mark`) and its
    /// sequence numbers are taken back, and every LOG_STORED becomes LOG_FAILED.
    fn undo_batch(&mut self, mark: usize, statuses: &mut [i32]) {
        self.lines.truncate(mark);
        for (id, prev) in self.undo.drain(..).rev() {
            match prev {
                Some(k) => self.known.insert(id, k),
                None => self.known.remove(&id),
            };
        }
        for s in statuses.iter_mut() {
            if *s == LOG_STORED {
                *s = LOG_FAILED;
            }
        }
    }

    /// Starts a new console line in the buffer.
    fn next_line(&mut self) {
        if !self.lines.is_empty() {
            self.lines.push('\n');
        }
    }

    /// Hands the gathered console lines over if the oldest has waited long enough.
    fn hand_over_due_lines(&mut self) {
        if self
            .lines_since
            .is_some_and(|t| t.elapsed() >= CONSOLE_DELAY)
        {
            self.hand_over_lines();
        }
    }

    fn hand_over_lines(&mut self) {
        self.lines_since = None;
        if !self.lines.is_empty() {
            self.console.line(std::mem::take(&mut self.lines));
        }
    }
}

/// A LOG argument of a shape other than peerdex's (PROTOCOL.md section 3, "What
/// students send"): any sequence of strings and ints, stored with all its values.
struct Fields {
    version: u32,
    procedure: u32,
    /// Each value, ints in decimal.
    values: Vec<String>,
    /// The values joined by four spaces: the printed line.
    text: String,
}

impl Fields {
    fn new(version: u32, procedure: u32, values: &[logrpc::ArgValue]) -> Fields {
        let values: Vec<String> = values.iter().map(ToString::to_string).collect();
        let text = values.join("    ");
        Fields {
            version,
            procedure,
            values,
            text,
        }
    }
}

/// What a call needs from the store.
enum Item {
    V1(String),
    /// An argument of another shape (any version, any LOG procedure).
    Fields(Fields),
    /// A version 2 or 3 record, and whether it came over UDP.
    V2(LogRecord<'static>, bool),
}

/// A call handled up to its reply.
enum Pending {
    /// Reply known already.
    Answer { xid: u32, answer: Answer<'static> },
    Denied {
        xid: u32,
        rejected: onc_rpc::RejectedReply,
    },
    /// LOG v1 (or an argument of another shape): once stored, an int 0. A
    /// `void LOG` client reads no result and ignores it; an `int LOG` client
    /// reads 0 (PROTOCOL.md section 3).
    LogV1 { xid: u32 },
    /// LOG v2 or v3: status result once stored.
    LogV2 { xid: u32 },
}

/// The calls of one batch, with buffers kept from batch to batch.
#[derive(Default)]
struct Batch {
    pending: Vec<Pending>,
    items: Vec<Item>,
    statuses: Vec<i32>,
}

/// Shared state of the running logger.
struct Logger {
    program: u32,
    /// The highest version offered.
    high: u32,
    store: Mutex<Store>,
    /// Argument shapes (version, procedure, shape) already said on the console.
    shapes: Mutex<std::collections::HashSet<(u32, u32, String)>>,
    /// `--idle-timeout`.
    idle_timeout: Duration,
}

impl Logger {
    /// Classifies one message; `None` for garbage (no reply).
    /// `udp`: the message came in a datagram.
    fn dispatch(&self, msg: &[u8], udp: bool, items: &mut Vec<Item>) -> Option<Pending> {
        let call = match rpc::parse_call(msg) {
            Incoming::Garbage => return None,
            Incoming::RpcMismatch { xid } => {
                return Some(Pending::Denied {
                    xid,
                    rejected: rpc::rpc_mismatch(),
                });
            }
            Incoming::AuthRejected { xid } => {
                return Some(Pending::Denied {
                    xid,
                    rejected: rpc::auth_rejected(),
                });
            }
            Incoming::Call(c) => c,
        };
        let xid = call.xid;
        let answer = |answer| Some(Pending::Answer { xid, answer });
        if call.program != self.program {
            return answer(Answer::ProgUnavail);
        }
        if !(LOW_VERSION..=self.high).contains(&call.version) {
            return answer(Answer::ProgMismatch {
                low: LOW_VERSION,
                high: self.high,
            });
        }
        // Version 1 is the students' (PROTOCOL.md section 3, "What students
        // send"): its LOG may have any procedure number and any argument of
        // strings and ints. Versions 2 and 3 are peerdex's own records.
        match (call.version, call.procedure) {
            (_, logrpc::PROC_NULL) => answer(Answer::Success(&[])),
            (logrpc::V1, procedure) => match logrpc::decode_v1(call.args) {
                Ok(text) if procedure == logrpc::PROC_LOG => {
                    items.push(Item::V1(text));
                    Some(Pending::LogV1 { xid })
                }
                _ => self.any_shape(procedure, call.args, items, xid),
            },
            (version, logrpc::PROC_LOG) => match LogRecord::decode_version(call.args, version) {
                Ok(rec) => {
                    items.push(Item::V2(rec, udp));
                    Some(Pending::LogV2 { xid })
                }
                Err(e) => {
                    log::debug!("LOG v{version} arguments rejected: {e}");
                    answer(Answer::GarbageArgs)
                }
            },
            _ => answer(Answer::ProcUnavail),
        }
    }

    /// A version 1 call whose argument is not one string to procedure 1: stored
    /// with all its values when it is a sequence of strings and ints with some
    /// text (a student server's struct, or its LOG under another procedure
    /// number). Else GARBAGE_ARGS for procedure 1 and PROC_UNAVAIL for others,
    /// as an rpcgen server answers. Says on the console, once per shape, what it
    /// received.
    fn any_shape(
        &self,
        procedure: u32,
        args: &[u8],
        items: &mut Vec<Item>,
        xid: u32,
    ) -> Option<Pending> {
        let version = logrpc::V1;
        let values = match logrpc::decode_any(args) {
            Ok(v)
                if v.iter()
                    .any(|v| matches!(v, logrpc::ArgValue::Text(t) if !t.is_empty())) =>
            {
                v
            }
            other => {
                log::debug!(
                    "LOG v1 procedure {procedure}: argument not strings and ints: {other:?}"
                );
                let answer = if procedure == logrpc::PROC_LOG {
                    Answer::GarbageArgs
                } else {
                    Answer::ProcUnavail
                };
                return Some(Pending::Answer { xid, answer });
            }
        };
        let shape = logrpc::describe_shape(&values);
        if self
            .shapes
            .lock()
            .insert((version, procedure, shape.clone()))
        {
            // Printed just before the record's own line.
            let mut store = self.store.lock();
            store.next_line();
            store.lines.push_str(&format!(
                "l> received LOG calls of version {version} procedure {procedure} with {shape}: stored with every value, answered int 0"
            ));
        }
        items.push(Item::Fields(Fields::new(version, procedure, &values)));
        Some(Pending::LogV1 { xid })
    }

    /// Stores the batch's records, then encodes every reply (record-marked) into
    /// `out`, in call order.
    fn complete(&self, batch: &mut Batch, out: &mut Vec<u8>) {
        let Batch {
            pending,
            items,
            statuses,
        } = batch;
        statuses.clear();
        if !items.is_empty() {
            self.store.lock().store(items, statuses);
        }
        let mut statuses = statuses.iter().copied();
        for p in pending.drain(..) {
            match p {
                Pending::Answer { xid, answer } => rpc::put_reply(out, xid, answer),
                Pending::Denied { xid, rejected } => rpc::put_denied(out, xid, rejected),
                Pending::LogV1 { xid } => {
                    // An int 0 reads as `void` and as `int` (PROTOCOL.md section
                    // 3); a record that could not be stored gets SYSTEM_ERR so
                    // that the caller sees the failure.
                    let answer = match statuses.next() {
                        Some(LOG_FAILED) | None => Answer::SystemErr,
                        Some(_) => Answer::Success(&V1_RESULT),
                    };
                    rpc::put_reply(out, xid, answer);
                }
                Pending::LogV2 { xid } => {
                    let status = statuses.next().unwrap_or(LOG_FAILED);
                    rpc::put_reply(out, xid, Answer::Success(&status.to_be_bytes()));
                }
            }
        }
        items.clear();
    }
}

/// The result of a version 1 LOG call: an int 0. XDR decodes results in
/// order and a `void` decoder reads nothing, so rpcgen's `void` clients (and
/// peerdex's shipper) ignore it, while `int` clients read 0 where an empty
/// result would fail with "Can't decode result".
const V1_RESULT: [u8; 4] = [0; 4];

/// A bound logger, ready to serve.
pub(crate) struct BoundLogger {
    tcp: TcpListener,
    udp: UdpSocket,
    port: u16,
}

impl BoundLogger {
    /// Binds TCP and UDP on the same port number (any free one for port 0).
    pub(crate) fn bind(ip: IpAddr, port: u16) -> Result<BoundLogger, LoggerError> {
        let mut last = None;
        for _ in 0..if port == 0 { BIND_ATTEMPTS } else { 1 } {
            let addr = SocketAddr::new(ip, port);
            let tcp = net::bind(addr).map_err(|source| LoggerError::Bind { addr, source })?;
            let bound = tcp
                .local_addr()
                .map_err(|source| LoggerError::Bind { addr, source })?;
            match UdpSocket::bind(bound) {
                Ok(udp) => {
                    return Ok(BoundLogger {
                        tcp,
                        udp,
                        port: bound.port(),
                    });
                }
                Err(source) => {
                    last = Some(LoggerError::Bind {
                        addr: bound,
                        source,
                    })
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// Runs `peerdex logger` until SIGINT or SIGTERM.
pub fn run(args: LoggerArgs) -> Result<(), Box<dyn std::error::Error>> {
    let shutdown = Shutdown::new();
    shutdown.on_signals().map_err(LoggerError::Signals)?;
    let (console, writer) = Console::stdout();
    let store = Store::open(&args.audit, console.clone()).map_err(|source| LoggerError::Audit {
        path: args.audit.clone(),
        source,
    })?;
    let bound = BoundLogger::bind(args.bind, args.port)?;
    let port = bound.port();
    let program = args.program;
    let high = args.max_version;
    console.line(format!(
        "l> init logger {}:{port} program 0x{program:08x} versions {LOW_VERSION}-{high} tcp udp",
        net::advertised(args.bind)
    ));
    let pmap = args.portmapper;
    let registered = !args.no_portmap && register(&console, pmap, program, high, port)?;
    let logger = Arc::new(Logger {
        program,
        high,
        store: Mutex::new(store),
        shapes: Mutex::default(),
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
    });
    let (udp_thread, flusher) = start_helpers(&logger, bound.udp, &shutdown)?;
    {
        // Open connections get the time of one batch's write to finish.
        let logger = Arc::clone(&logger);
        net::Listener::from_std("logger", bound.tcp, args.max_connections as usize).serve(
            &shutdown,
            WRITE_TIMEOUT,
            move |stream, peer, permit| serve_tcp(&logger, stream, peer, permit),
        );
    }
    if registered {
        unregister(pmap, program, port);
    }
    let _ = udp_thread.join();
    let _ = flusher.join();
    finish_console(&logger, console, writer);
    Ok(())
}

/// Starts the UDP server and the thread that hands gathered console lines over when
/// no further record comes to do it.
fn start_helpers(
    logger: &Arc<Logger>,
    udp: UdpSocket,
    shutdown: &Shutdown,
) -> std::io::Result<(JoinHandle<()>, JoinHandle<()>)> {
    let udp_thread = {
        let logger = Arc::clone(logger);
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("logger-udp".into())
            .spawn(move || serve_udp(&logger, &udp, &shutdown))?
    };
    let flusher = {
        let logger = Arc::clone(logger);
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name("logger-lines".into())
            .spawn(move || {
                while !shutdown.is_triggered() {
                    std::thread::sleep(CONSOLE_DELAY);
                    logger.store.lock().hand_over_due_lines();
                }
            })?
    };
    Ok((udp_thread, flusher))
}

/// After the servers stopped: the last console lines and `l> logger stopped`, with
/// a bounded wait for stdout.
fn finish_console(logger: &Logger, console: Console, writer: ConsoleWriter) {
    // Hold the store so that no batch is cut in the middle of its write, and take
    // its console handle so that the console writer can finish.
    let mut store = logger.store.lock();
    store.hand_over_lines();
    drop(std::mem::replace(&mut store.console, Console::silent()));
    console.line("l> logger stopped".into());
    drop(console);
    // stdout may be stuck (a full pipe nobody reads, a paused terminal): wait
    // for the console writer, but not forever.
    let (done, finished) = crossbeam_channel::bounded::<()>(1);
    let waiter = std::thread::Builder::new()
        .name("console-finish".into())
        .spawn(move || {
            writer.finish();
            let _ = done.send(());
        });
    if waiter.is_ok() && finished.recv_timeout(CONSOLE_FINISH).is_err() {
        log::warn!("stdout is not being read: exiting without the last console lines");
    }
}

/// Registers every version up to `high` on TCP and UDP; says once on the console
/// if no portmapper answers. Returns whether the mappings are set; refuses when a
/// live logger (it answers a NULL call) holds the program's registration.
fn register(
    console: &Console,
    pmap: SocketAddr,
    program: u32,
    high: u32,
    port: u16,
) -> Result<bool, LoggerError> {
    let no_portmapper = |e: &dyn std::fmt::Display| {
        console.line(format!(
            "l> no portmapper at {pmap} ({e}): not registered; clients must use port {port}"
        ));
    };
    match portmap::getport_at(pmap, program, LOW_VERSION, IPPROTO_TCP) {
        Err(e) => {
            no_portmapper(&e);
            return Ok(false);
        }
        Ok(Some(theirs))
            if theirs != port
                && portmap::answers_null(
                    SocketAddr::new(pmap.ip(), theirs),
                    program,
                    LOW_VERSION,
                ) =>
        {
            return Err(LoggerError::ProgramTaken {
                program,
                port: theirs,
            });
        }
        Ok(_) => {}
    }
    // Remove stale mappings of a logger that died without unregistering.
    for version in LOW_VERSION..=HIGH_VERSION {
        if let Err(e) = portmap::unset(pmap, program, version) {
            no_portmapper(&e);
            return Ok(false);
        }
    }
    set_mappings(console, pmap, program, high, port);
    Ok(true)
}

/// Maps every version up to `high` on TCP and UDP to `port`; says on the console
/// what the portmapper refused, or that it stopped answering (the rest is not set).
fn set_mappings(console: &Console, pmap: SocketAddr, program: u32, high: u32, port: u16) {
    for version in LOW_VERSION..=high {
        for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
            let m = Mapping {
                program,
                version,
                protocol,
                port: port.into(),
            };
            match portmap::set(pmap, m) {
                Ok(true) => {}
                Ok(false) => {
                    console.line(format!(
                        "l> the portmapper refused program 0x{program:08x} version {version}: clients must use port {port}"
                    ));
                }
                Err(e) => {
                    console.line(format!(
                        "l> portmapper at {pmap} stopped answering ({e}): clients must use port {port}"
                    ));
                    return;
                }
            }
        }
    }
    console.line(format!(
        "l> registered program 0x{program:08x} versions {LOW_VERSION}-{high} on tcp and udp port {port} with the portmapper"
    ));
}

/// Removes the registrations that still point at this logger's `port` (another
/// logger may have replaced them since, e.g. after this one seemed dead).
fn unregister(pmap: SocketAddr, program: u32, port: u16) {
    for version in LOW_VERSION..=HIGH_VERSION {
        if portmap::getport_at(pmap, program, version, IPPROTO_TCP).ok() != Some(Some(port)) {
            continue;
        }
        if let Err(e) = portmap::unset(pmap, program, version) {
            log::warn!("cannot unregister version {version}: {e}");
        }
    }
}

fn serve_udp(logger: &Logger, udp: &UdpSocket, shutdown: &Shutdown) {
    if let Err(e) = udp.set_read_timeout(Some(UDP_POLL)) {
        log::warn!("udp: cannot set a read timeout: {e}");
    }
    let _ = udp.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf = vec![0u8; rpc::MAX_DATAGRAM];
    let mut batch = Batch::default();
    let mut out = Vec::new();
    while !shutdown.is_triggered() {
        let (n, peer) = match udp.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if net::is_timeout(&e) => continue,
            Err(e) => {
                log::debug!("udp: receive failed: {e}");
                continue;
            }
        };
        let Some(p) = logger.dispatch(&buf[..n], true, &mut batch.items) else {
            log::debug!("udp: {peer}: not a call: dropped");
            continue;
        };
        batch.pending.push(p);
        out.clear();
        logger.complete(&mut batch, &mut out);
        // A datagram carries the message without its record mark.
        if out.len() > 4
            && let Err(e) = udp.send_to(&out[4..], peer)
        {
            log::debug!("udp: reply to {peer} not sent: {e}");
        }
    }
}

fn serve_tcp(logger: &Logger, stream: TcpStream, peer: SocketAddr, _permit: Permit) {
    if let Err(e) = stream.set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::debug!("{peer}: cannot set timeouts: {e}");
        return;
    }
    let _ = stream.set_nodelay(true);
    // Each record, the silence before it included, within the idle timeout.
    let idle = logger.idle_timeout;
    let mut reader = BufReader::with_capacity(READ_BUFFER, DeadlineReader::new(&stream, idle));
    let mut writer = &stream;
    let mut record = Vec::new();
    let mut batch = Batch::default();
    let mut out = Vec::new();
    loop {
        reader.get_mut().restart(idle);
        let result = rpc::read_record(&mut reader, &mut record);
        let stop = match result {
            Ok(()) => match logger.dispatch(&record, false, &mut batch.items) {
                Some(p) => {
                    batch.pending.push(p);
                    false
                }
                None => {
                    log::info!("{peer}: undecodable call header: closing the connection");
                    true
                }
            },
            Err(RecordError::Closed) => true,
            Err(e) => {
                log::info!("{peer}: {e}: closing the connection");
                true
            }
        };
        // Reply once nothing more is waiting in the buffer (or the batch is full).
        if stop || batch.pending.len() >= MAX_BATCH || !rpc::has_complete_record(reader.buffer()) {
            out.clear();
            logger.complete(&mut batch, &mut out);
            if !out.is_empty()
                && let Err(e) = writer.write_all(&out)
            {
                log::debug!("{peer}: replies not delivered: {e}");
                return;
            }
        }
        if stop {
            return;
        }
        if record.capacity() > READ_BUFFER {
            record = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests;
