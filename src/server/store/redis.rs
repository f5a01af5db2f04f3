//! The registry in Redis, shared by several index servers (`--store redis://...`).
//!
//! Owns: the Redis keys and what they hold, the Lua script that checks the protocol's
//! rules against those keys and makes one change in one atomic step (appending the
//! change, as journaled, to the changes stream with the next sequence number as its
//! id), the connection pool and its timeouts, leases, the snapshot key, and reading
//! the streams. Does not own: the in-memory replica that answers reads (`replica`),
//! what the server replies (`server`).
//!
//! # Keys (all under `peerdex:`, in the database of the URL)
//! - `users`: set of registered names; `connected`: hash name -> `"IP PORT"`;
//!   `files:<name>`: set of the user's published file names. Only what the rules
//!   check lives here: descriptions and publication order are in the stream.
//! - `seq`: the sequence number of the last change; `changes`: the stream of changes,
//!   entry `<seq>-0` with one field `c`, the change's JSON line.
//! - `snapshot`: the whole registry at some sequence number (header line, then one
//!   line per user, the journal's snapshot format); `snapshot-seq`: that number. The
//!   stream is trimmed below it in the same script that stores it.
//! - `lease:<what>`: which server does a job only one server should do.
//! - `feed`: a capped stream of the dashboards' events, from every server.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use redis::{Client, Connection, RedisError, Script, Value};

use crate::server::change::{Change, PeerAddr};

/// Redis connections a server opens for requests at once (the replica and the feed
/// have their own). Each request holds one for one round trip, so 16 keep both
/// cores busy; a request finding none free waits, within the store timeout.
pub(crate) const MAX_CONNECTIONS: usize = 16;

/// Most entries a stream read returns at once: bounds the reply and the time the
/// replica goes without noticing a stop.
pub(crate) const READ_BATCH: usize = 1000;

/// Longest reply kept from a stream entry or the snapshot key: Redis is trusted, but
/// a wrong key (another program's data in the same database) must not take all memory.
pub(crate) const MAX_SNAPSHOT: usize = 1 << 30;

const USERS: &str = "peerdex:users";
const CONNECTED: &str = "peerdex:connected";
const SEQ: &str = "peerdex:seq";
const CHANGES: &str = "peerdex:changes";
const SNAPSHOT: &str = "peerdex:snapshot";
const SNAPSHOT_SEQ: &str = "peerdex:snapshot-seq";
const FEED: &str = "peerdex:feed";

/// The rules of PROTOCOL.md section 1 (as `registry::State::check`), the host check
/// (as `State::may_act`) and the change itself, then the stream append: one step
/// that no other change interleaves with. Returns `{code}` when refused by the rules,
/// `{-1, ip}` when the user is connected from another host (or, for the prober, not
/// at the address it probed), `{0, seq}` when made.
const APPLY: &str = r#"
local op, user, file = ARGV[1], ARGV[2], ARGV[3]
local host, at = ARGV[7], ARGV[8]
local addr = redis.call('HGET', KEYS[2], user)
if op ~= 'REGISTER' then
  if at ~= '' then
    if addr ~= at then return {-1, at} end
  elseif host ~= '' and addr then
    local ip = string.match(addr, '^(%S+)')
    if ip ~= host then return {-1, ip} end
  end
end
local exists = redis.call('SISMEMBER', KEYS[1], user) == 1
local code = 0
if op == 'REGISTER' then
  if exists then code = 1 end
elseif op == 'UNREGISTER' or op == 'CONNECT' then
  if not exists then code = 1 elseif addr then code = 2 end
elseif not exists then code = 1
elseif not addr then code = 2
elseif op == 'PUBLISH' then
  if redis.call('SISMEMBER', KEYS[3], file) == 1 then code = 3 end
elseif op == 'DELETE' then
  if redis.call('SISMEMBER', KEYS[3], file) == 0 then code = 3 end
end
if code ~= 0 then return {code} end
if op == 'REGISTER' then redis.call('SADD', KEYS[1], user)
elseif op == 'UNREGISTER' then
  redis.call('SREM', KEYS[1], user)
  redis.call('DEL', KEYS[3])
elseif op == 'CONNECT' then redis.call('HSET', KEYS[2], user, ARGV[4] .. ' ' .. ARGV[5])
elseif op == 'DISCONNECT' then redis.call('HDEL', KEYS[2], user)
elseif op == 'PUBLISH' then redis.call('SADD', KEYS[3], file)
elseif op == 'DELETE' then redis.call('SREM', KEYS[3], file)
end
local seq = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], seq .. '-0', 'c', ARGV[6])
return {0, seq}
"#;

/// Stores a snapshot taken at sequence number ARGV[1] unless a later one is there,
/// and trims the stream below it (the entries a rebuild from it still needs stay).
const SAVE_SNAPSHOT: &str = r#"
local seq = tonumber(ARGV[1])
if seq <= tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[1])
return 1
"#;

/// Takes or renews lease KEYS[1] for holder ARGV[1] for ARGV[2] ms: 1 when held.
const LEASE: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Why the shared store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: RedisError,
    },
    #[error("{url}: no connection free within {timeout:?}")]
    Busy { url: String, timeout: Duration },
    #[error("{url}: unexpected reply to {what}: {detail}")]
    Reply {
        url: String,
        what: &'static str,
        detail: String,
    },
    /// A snapshot or a stream entry that cannot be read back, or a gap in the stream.
    #[error("{url}: {source}")]
    Data {
        url: String,
        #[source]
        source: DataError,
    },
    #[error("{url}: cannot start the replica thread: {source}")]
    Thread {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

/// What in the store's data cannot be used as it is: a copy built from it would be
/// wrong, so it is read again (at start) or rebuilt (a follower).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("stream entry {0:?} is not a change")]
    NotAChange(String),
    #[error("the stream goes from change {applied} to {seq} (trimmed meanwhile?)")]
    Gap { applied: u64, seq: u64 },
    #[error("change {seq} unreadable: {source}")]
    Unreadable {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("change {seq} refused here with code {code}")]
    Refused { seq: u64, code: u8 },
    #[error("change not encoded: {0}")]
    Unencodable(#[source] serde_json::Error),
    #[error("last change not read")]
    LastUnread,
    #[error("{SNAPSHOT} holds {0} bytes")]
    SnapshotTooLarge(u64),
    #[error("empty snapshot")]
    SnapshotEmpty,
    #[error("bad snapshot header: {0}")]
    SnapshotHeader(#[source] serde_json::Error),
    #[error("snapshot format {0} unknown")]
    SnapshotFormat(u32),
    #[error("snapshot line: {0}")]
    SnapshotLine(#[source] serde_json::Error),
    #[error("snapshot lists {0:?} twice")]
    SnapshotTwice(String),
    #[error("snapshot has {found} users, header says {header}")]
    SnapshotCount { found: u64, header: u64 },
}

impl StoreError {
    /// Whether this is Redis not answering (said once on stderr by the store, so
    /// each request it fails is only a debug line), rather than something to look at.
    pub(crate) fn is_outage(&self) -> bool {
        matches!(self, StoreError::Redis { .. } | StoreError::Busy { .. })
    }
}

/// Logs `e` as a warning, or at debug level when it is an outage already said.
pub(crate) fn note(context: std::fmt::Arguments<'_>, e: &StoreError) {
    if e.is_outage() {
        log::debug!("{context}: {e}");
    } else {
        log::warn!("{context}: {e}");
    }
}

/// What a change got from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Made, as change number `seq` of the stream.
    Applied(u64),
    /// Refused by the rules with this result code.
    Code(u8),
    /// The user is connected from this other host (or not at the probed address).
    Refused(IpAddr),
}

/// Whether Redis answers, said once per change ("unreachable", "answers again").
struct Health {
    down: AtomicBool,
    /// Until the store first answered: a failure then is the start's error, said
    /// by the caller.
    quiet: AtomicBool,
}

/// The Redis side of the shared registry: a pool of connections with timeouts and the
/// scripts. Shared by the request threads, the replica and the prober.
pub(crate) struct RedisStore {
    client: Client,
    /// The URL as given, for messages.
    url: String,
    timeout: Duration,
    pool: Mutex<Pool>,
    freed: Condvar,
    health: Health,
    apply: Script,
    save_snapshot: Script,
    lease: Script,
    /// Requests wanting the stream's last sequence number share one GET at a time.
    last: Mutex<LastSeq>,
    last_done: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// Rounds of `GET seq`: a request needs the result of a round that began after it
/// did; a round in flight when it arrives does not count, the next one does.
#[derive(Default)]
struct LastSeq {
    begun: u64,
    done: u64,
    in_flight: bool,
    /// The result of round `done`; `None` when it failed.
    value: Option<u64>,
}

impl RedisStore {
    /// Opens the store at `url` (`redis://HOST:PORT[/DB]`, or `rediss://` for TLS,
    /// checked against the system's CA certificates or `SSL_CERT_FILE`) and checks that it answers,
    /// with `timeout` for connecting and for every reply.
    pub(crate) fn open(url: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = Client::open(url).map_err(|source| StoreError::Redis {
            url: url.to_owned(),
            source,
        })?;
        let store = RedisStore {
            client,
            url: url.to_owned(),
            timeout,
            pool: Mutex::default(),
            freed: Condvar::new(),
            health: Health {
                down: AtomicBool::new(false),
                quiet: AtomicBool::new(true),
            },
            apply: Script::new(APPLY),
            save_snapshot: Script::new(SAVE_SNAPSHOT),
            lease: Script::new(LEASE),
            last: Mutex::default(),
            last_done: Condvar::new(),
        };
        store.with_conn("PING", |c| redis::cmd("PING").query::<String>(c))?;
        store.health.quiet.store(false, Ordering::SeqCst);
        Ok(store)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new connection with the store's timeouts (the pool's, the replica's).
    pub(crate) fn connect(&self, read_timeout: Duration) -> Result<Connection, StoreError> {
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(read_timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(c)
            });
        conn.map_err(|e| self.failed(e))
    }

    /// Runs `f` on a pooled connection (waiting at most the timeout for one). A
    /// connection whose command failed at the transport is closed, not pooled.
    fn with_conn<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.take_conn()?;
        match f(&mut conn) {
            Ok(v) => {
                self.put_conn(Some(conn));
                self.reachable();
                Ok(v)
            }
            Err(e) => {
                let broken = e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_unrecoverable_error();
                self.put_conn((!broken).then_some(conn));
                log::debug!("redis {what}: {e}");
                Err(self.failed(e))
            }
        }
    }

    fn take_conn(&self) -> Result<Connection, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut pool = self.pool.lock();
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return self.connect(self.timeout).inspect_err(|_| {
                    self.put_conn(None);
                });
            }
            if self.freed.wait_until(&mut pool, deadline).timed_out() {
                return Err(self.busy_error());
            }
        }
    }

    /// Gives a connection back to the pool, or (`None`) the room of a closed one.
    fn put_conn(&self, conn: Option<Connection>) {
        let mut pool = self.pool.lock();
        match conn {
            Some(c) => pool.idle.push(c),
            None => pool.open -= 1,
        }
        drop(pool);
        self.freed.notify_one();
    }

    /// Notes a failure (said once until Redis answers again) and wraps it.
    pub(crate) fn failed(&self, source: RedisError) -> StoreError {
        let went_down = !self.health.down.swap(true, Ordering::SeqCst);
        if went_down {
            // The idle connections went with Redis: taking one after it is back
            // would fail once more and say the outage twice.
            let mut pool = self.pool.lock();
            pool.open -= pool.idle.len();
            pool.idle.clear();
            drop(pool);
            self.freed.notify_all();
        }
        if went_down && !self.health.quiet.load(Ordering::SeqCst) {
            eprintln!(
                "peerdex: redis at {} unreachable ({source}): changes and lists get their error code until it answers again",
                self.url
            );
        }
        StoreError::Redis {
            url: self.url.clone(),
            source,
        }
    }

    /// Notes that Redis answered (said once after an outage).
    pub(crate) fn reachable(&self) {
        if self.health.down.swap(false, Ordering::SeqCst) {
            eprintln!("peerdex: redis at {} answers again", self.url);
        }
    }

    fn reply_error(&self, what: &'static str, detail: impl Into<String>) -> StoreError {
        StoreError::Reply {
            url: self.url.clone(),
            what,
            detail: detail.into(),
        }
    }

    /// No connection (or no answer to a shared read) within the store's timeout.
    fn busy_error(&self) -> StoreError {
        StoreError::Busy {
            url: self.url.clone(),
            timeout: self.timeout,
        }
    }

    pub(crate) fn data_error(&self, source: DataError) -> StoreError {
        StoreError::Data {
            url: self.url.clone(),
            source,
        }
    }

    pub(crate) fn thread_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Thread {
            url: self.url.clone(),
            source,
        }
    }

    /// Checks the rules and makes `change` in one step. `host`: the host the request
    /// came from (`None`: the server itself); `at`: only if the user is connected
    /// exactly there (the prober's DISCONNECT).
    pub(crate) fn write(
        &self,
        change: &Change,
        host: Option<IpAddr>,
        at: Option<PeerAddr>,
    ) -> Result<Written, StoreError> {
        let json = serde_json::to_string(change)
            .map_err(|e| self.data_error(DataError::Unencodable(e)))?;
        let (mut file, mut ip, mut port) = (String::new(), String::new(), String::new());
        match change {
            Change::Publish { file: f, .. } | Change::Delete { file: f, .. } => file.clone_from(f),
            Change::Connect { ip: i, port: p, .. } => {
                ip = i.to_string();
                port = p.to_string();
            }
            _ => {}
        }
        let user = change.user();
        let reply: Vec<Value> = self.with_conn("apply", |c| {
            self.apply
                .key(USERS)
                .key(CONNECTED)
                .key(format!("peerdex:files:{user}"))
                .key(SEQ)
                .key(CHANGES)
                .arg(change.op().name())
                .arg(user)
                .arg(&file)
                .arg(&ip)
                .arg(&port)
                .arg(&json)
                .arg(host.map(|h| h.to_string()).unwrap_or_default())
                .arg(
                    at.map(|a| format!("{} {}", a.ip, a.port))
                        .unwrap_or_default(),
                )
                .invoke(c)
        })?;
        self.written(&reply)
    }

    fn written(&self, reply: &[Value]) -> Result<Written, StoreError> {
        let bad = || self.reply_error("apply", format!("{reply:?}"));
        match reply {
            [Value::Int(0), Value::Int(seq)] => Ok(Written::Applied(*seq as u64)),
            [Value::Int(code @ 1..=4)] => Ok(Written::Code(*code as u8)),
            [Value::Int(-1), Value::BulkString(at)] => {
                let at = String::from_utf8_lossy(at);
                let ip = at.split(' ').next().unwrap_or_default();
                ip.parse().map(Written::Refused).map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    /// The sequence number of the last change made on any server, from a `GET` that
    /// began after this call did (concurrent callers share one).
    pub(crate) fn last_seq(&self) -> Result<u64, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut last = self.last.lock();
        let want = last.begun + 1;
        loop {
            if last.done >= want {
                return last
                    .value
                    .ok_or_else(|| self.data_error(DataError::LastUnread));
            }
            if !last.in_flight {
                last.begun += 1;
                last.in_flight = true;
                let round = last.begun;
                drop(last);
                let got = self.get_seq();
                last = self.last.lock();
                last.in_flight = false;
                last.done = round;
                last.value = got.as_ref().ok().copied();
                self.last_done.notify_all();
                if round >= want {
                    return got;
                }
                continue;
            }
            if self.last_done.wait_until(&mut last, deadline).timed_out() {
                return Err(self.busy_error());
            }
        }
    }

    fn get_seq(&self) -> Result<u64, StoreError> {
        let seq: Option<u64> =
            self.with_conn("GET seq", |c| redis::cmd("GET").arg(SEQ).query(c))?;
        Ok(seq.unwrap_or(0))
    }

    /// Takes or renews lease `name` for `holder` for `ttl`; whether it is held.
    pub(crate) fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = self.with_conn("lease", |c| {
            self.lease
                .key(format!("peerdex:lease:{name}"))
                .arg(holder)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke(c)
        })?;
        Ok(held == 1)
    }

    /// Stores `blob`, the registry at change `seq`, unless a later snapshot is there,
    /// and trims the stream below it. Whether it was stored.
    pub(crate) fn save_snapshot(&self, seq: u64, blob: &[u8]) -> Result<bool, StoreError> {
        let saved: i64 = self.with_conn("save snapshot", |c| {
            self.save_snapshot
                .key(SNAPSHOT)
                .key(SNAPSHOT_SEQ)
                .key(CHANGES)
                .arg(seq)
                .arg(blob)
                .invoke(c)
        })?;
        Ok(saved == 1)
    }

    /// The stored snapshot, if any (checked against [`MAX_SNAPSHOT`] first).
    pub(crate) fn snapshot(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let len: u64 = self.with_conn("STRLEN", |c| redis::cmd("STRLEN").arg(SNAPSHOT).query(c))?;
        if len > MAX_SNAPSHOT as u64 {
            return Err(self.data_error(DataError::SnapshotTooLarge(len)));
        }
        self.with_conn("GET snapshot", |c| redis::cmd("GET").arg(SNAPSHOT).query(c))
    }

    /// Appends an event to the capped feed stream (about `keep` kept).
    pub(crate) fn feed_add(&self, events: &[Vec<u8>], keep: usize) -> Result<(), StoreError> {
        self.with_conn("feed", |c| {
            let mut pipe = redis::pipe();
            for e in events {
                pipe.cmd("XADD")
                    .arg(FEED)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(keep)
                    .arg("*")
                    .arg("e")
                    .arg(e)
                    .ignore();
            }
            pipe.query::<()>(c)
        })
    }
}

/// Which stream [`read_after`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Changes,
    Feed,
}

/// The entries after `after` of `stream` (at most [`READ_BATCH`]), waiting up to
/// `block` for one when there is none (`None`: not at all). `after` is a sequence
/// number for the changes, a full stream id (`ms-n`) for the feed.
pub(crate) fn read_after(
    conn: &mut Connection,
    stream: Stream,
    after: &str,
    block: Option<Duration>,
) -> redis::RedisResult<Vec<(String, Vec<u8>)>> {
    let (key, field) = match stream {
        Stream::Changes => (CHANGES, "c"),
        Stream::Feed => (FEED, "e"),
    };
    let mut cmd = redis::cmd("XREAD");
    cmd.arg("COUNT").arg(READ_BATCH);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
    }
    let id = if stream == Stream::Changes {
        format!("{after}-0")
    } else {
        after.to_owned()
    };
    let reply: Value = cmd.arg("STREAMS").arg(key).arg(id).query(conn)?;
    Ok(entries(reply, field))
}

/// The (id, value of `field`) of each entry of an XREAD reply for one stream.
fn entries(reply: Value, field: &str) -> Vec<(String, Vec<u8>)> {
    let Value::Array(streams) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in streams {
        let Value::Array(mut parts) = s else { continue };
        let Some(Value::Array(items)) = parts.pop() else {
            continue;
        };
        for item in items {
            let Value::Array(pair) = item else { continue };
            let mut pair = pair.into_iter();
            let (Some(Value::BulkString(id)), Some(Value::Array(fields))) =
                (pair.next(), pair.next())
            else {
                continue;
            };
            let mut fields = fields.into_iter();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) =
                (fields.next(), fields.next())
            {
                if k == field.as_bytes() {
                    out.push((String::from_utf8_lossy(&id).into_owned(), v));
                    break;
                }
            }
        }
    }
    out
}

/// The sequence number of a changes-stream id (`<seq>-0`).
pub(crate) fn seq_of(id: &str) -> Option<u64> {
    id.strip_suffix("-0")?.parse().ok()
}

/// The last id of the feed stream (`0-0` when empty): where a new reader starts.
pub(crate) fn feed_last_id(conn: &mut Connection) -> redis::RedisResult<String> {
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(FEED)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(conn)?;
    let Value::Array(items) = reply else {
        return Ok("0-0".into());
    };
    for item in items {
        if let Value::Array(pair) = item
            && let Some(Value::BulkString(id)) = pair.into_iter().next()
        {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
    }
    Ok("0-0".into())
}
