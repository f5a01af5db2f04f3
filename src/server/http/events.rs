//! What the dashboard learns from the request path: the live event feed (a bounded
//! ring of the last events, replayed to a new event-stream client, and a bounded
//! broadcast to the connected ones), request counters by operation and result, the
//! request latency, the request rate over the last minute, and when each user
//! connected.
//!
//! The request path calls [`Hub::answered`] once per answered request. That costs two
//! relaxed adds (the counters), one histogram add, the event encoded once as JSON,
//! and a short lock to put it in the ring and offer it to each client's bounded queue
//! with `try_send`: a client whose queue is full is dropped, never waited for and
//! never buffered beyond its queue. CONNECT, DISCONNECT and UNREGISTER also note the
//! connection time under a small lock.
//!
//! Every event carries a sequence number, sent as the SSE `id:` (`<epoch>-<seq>`,
//! the epoch telling one server run from the next). A client that reconnects with
//! `Last-Event-ID` gets what it missed from the ring, then the live events, under one
//! lock: nothing twice, nothing skipped that the ring still holds.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde::Serialize;

use super::stats::{Counters, Histogram, RESULTS, result_index};
use crate::proto::datetime;
use crate::proto::index::{Body, Op, Request, Status};
use crate::server::registry::PeerAddr;

/// Events queued per event-stream client. A browser reads them as they come; 256
/// covers a burst of a few seconds of a busy lab. A client that falls this far
/// behind (a stopped tab, a reader that never reads) is dropped; its memory is this
/// queue, never more.
pub(crate) const EVENT_QUEUE: usize = 256;

/// Most event-stream clients at once (past it: 503). A lecture needs one or two
/// (a projector, a few students' phones); 32 bounds the threads and queues.
pub(crate) const MAX_EVENT_CLIENTS: usize = 32;

/// Events the hub keeps for clients that connect or reconnect: a reconnect after a
/// few seconds of a busy lab finds what it missed. About 200 bytes each: 50 KB.
pub(crate) const BACKLOG: usize = 256;

/// Events a new page gets on load (one screen of the feed and then some).
pub(crate) const BACKLOG_ON_LOAD: usize = 50;

/// A LIST_CONTENT of a user's own files this soon after its CONNECT is taken for
/// the one the client sends by itself at CONNECT (to refill its table of served
/// files): nothing in the bytes says so, so the hub infers it. Long enough for a
/// loaded machine, short enough that a typed one is rarely mistaken.
pub(crate) const AUTO_AFTER_CONNECT: Duration = Duration::from_secs(3);

/// Seconds in the request-rate window ("requests per second over the last minute").
const RATE_WINDOW: usize = 60;

/// An event as sent to the page (one line of JSON).
#[derive(Serialize)]
struct Event<'a> {
    op: &'a str,
    user: &'a str,
    datetime: &'a str,
    code: u8,
    /// What a failure code means for this operation (`USER NOT CONNECTED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    meaning: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'a str>,
    /// LIST_CONTENT: whose files were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    /// Why this request is taken for one the client sent on its own (see
    /// [`AUTO_AFTER_CONNECT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    auto: Option<&'static str>,
}

/// The last minute of request counts, one bucket per second, filled by a ticker.
struct Rate {
    buckets: [u64; RATE_WINDOW],
    next: usize,
    filled: usize,
    last_total: u64,
}

/// The ring of recent events and the clients they go to, under one lock.
struct Feed {
    /// (sequence number, SSE frame), oldest first, at most [`BACKLOG`].
    ring: VecDeque<(u64, Arc<str>)>,
    subscribers: Vec<(u64, Sender<Arc<str>>)>,
    next_seq: u64,
}

/// A user's CONNECT as the hub saw it.
struct Connected {
    at: DateTime<Utc>,
    /// Until when a LIST_CONTENT of its own files counts as the automatic one;
    /// `None` once that one was seen.
    auto_until: Option<Instant>,
}

/// Shared by the request path, the liveness prober and the dashboard's listener.
pub(crate) struct Hub {
    /// Event-stream clients right now.
    clients: AtomicUsize,
    feed: Mutex<Feed>,
    /// Tells this server run's event ids from an earlier run's.
    epoch: String,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Where each event this hub encodes is also offered (never waited for), with
    /// several servers on one store: their feed (see [`Hub::tap`]).
    tap: std::sync::OnceLock<Sender<String>>,
    /// Requests answered, per operation (indexed as [`Op::ALL`]) and result code
    /// (see [`result_index`]).
    requests: [[AtomicU64; RESULTS]; Op::ALL.len()],
    /// From the request read to its reply built.
    latency: Histogram,
    rate: Mutex<Rate>,
    started: Instant,
    /// When each connected user connected (only those seen connecting since start).
    since: Mutex<HashMap<String, Connected>>,
}

/// An event-stream client: what it missed (the backlog), then its live queue;
/// leaves the broadcast when dropped.
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    /// SSE frames to send first, oldest first.
    pub(crate) backlog: Vec<Arc<str>>,
    pub(crate) events: Receiver<Arc<str>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut feed = self.hub.feed.lock();
        feed.subscribers.retain(|(id, _)| *id != self.id);
        self.hub
            .clients
            .store(feed.subscribers.len(), Ordering::SeqCst);
    }
}

impl Hub {
    pub(crate) fn new() -> Arc<Hub> {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Arc::new(Hub {
            clients: AtomicUsize::new(0),
            feed: Mutex::new(Feed {
                ring: VecDeque::with_capacity(BACKLOG),
                subscribers: Vec::new(),
                next_seq: 1,
            }),
            epoch: format!("{epoch:x}"),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            tap: std::sync::OnceLock::new(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: Histogram::new(),
            rate: Mutex::new(Rate {
                buckets: [0; RATE_WINDOW],
                next: 0,
                filled: 0,
                last_total: 0,
            }),
            started: Instant::now(),
            since: Mutex::new(HashMap::new()),
        })
    }

    /// The request path's hook: `req`, read at `started`, was answered with result
    /// `code`; `host` is the address a CONNECT from this peer records.
    pub(crate) fn answered(&self, req: &Request, code: u8, host: IpAddr, started: Instant) {
        let op = req.body.op();
        self.count(op, code);
        self.latency.observe(started.elapsed());
        let auto = self.follow_connection(req, code);
        let now;
        let datetime = match &req.datetime {
            Some(d) => d.as_str(),
            None => {
                now = datetime::now();
                now.as_str()
            }
        };
        let (file, pattern, target, addr) = match &req.body {
            Body::Publish { file, .. } | Body::Delete { file } => {
                (Some(file.as_str()), None, None, None)
            }
            Body::Search { pattern } => (None, Some(pattern.as_str()), None, None),
            Body::ListContent { target } => (None, None, Some(target.as_str()), None),
            Body::Connect { port } => (
                None,
                None,
                None,
                Some(PeerAddr {
                    ip: host,
                    port: *port,
                }),
            ),
            _ => (None, None, None, None),
        };
        self.broadcast(&Event {
            op: op.name(),
            user: &req.user,
            datetime,
            code,
            meaning: Status::failure_meaning(op, code),
            file,
            pattern,
            target,
            addr: addr.map(|a| format!("{}:{}", a.ip, a.port)),
            auto,
        });
    }

    /// Keeps [`Hub::connected_since`] following the request, and whether it is the
    /// client's automatic LIST_CONTENT of itself right after CONNECT.
    fn follow_connection(&self, req: &Request, code: u8) -> Option<&'static str> {
        let mut auto = None;
        match &req.body {
            Body::Connect { .. } if code == 0 => {
                self.since.lock().insert(
                    req.user.clone(),
                    Connected {
                        at: Utc::now(),
                        auto_until: Some(Instant::now() + AUTO_AFTER_CONNECT),
                    },
                );
            }
            Body::Disconnect | Body::Unregister if code == 0 => {
                self.since.lock().remove(&req.user);
            }
            Body::ListContent { target } if *target == req.user => {
                let mut since = self.since.lock();
                if let Some(c) = since.get_mut(&req.user)
                    && c.auto_until.is_some_and(|t| Instant::now() <= t)
                {
                    c.auto_until = None;
                    auto = Some("after CONNECT");
                }
            }
            _ => {}
        }
        auto
    }

    /// The request path's hook for a request refused as malformed (its user known).
    pub(crate) fn rejected(&self, op: Op, user: &str, code: u8) {
        self.count(op, code);
        self.broadcast(&Event {
            op: op.name(),
            user,
            datetime: &datetime::now(),
            code,
            meaning: Status::failure_meaning(op, code),
            file: None,
            pattern: None,
            target: None,
            addr: None,
            auto: None,
        });
    }

    /// The liveness prober disconnected `user`, last seen at `addr`.
    pub(crate) fn dropped(&self, user: &str, addr: PeerAddr) {
        self.since.lock().remove(user);
        self.broadcast(&Event {
            op: "DROP",
            user,
            datetime: &datetime::now(),
            code: 0,
            meaning: None,
            file: None,
            pattern: None,
            target: None,
            addr: Some(format!("{}:{}", addr.ip, addr.port)),
            auto: None,
        });
    }

    fn count(&self, op: Op, code: u8) {
        self.requests[op as usize][result_index(code)].fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps one event in the ring and offers it to every client; drops those whose
    /// queue is full.
    fn broadcast(&self, event: &Event<'_>) {
        let json = match serde_json::to_string(event) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("dashboard event not encoded: {e}");
                return;
            }
        };
        if let Some(tap) = self.tap.get() {
            // A full queue drops the event for the other servers, never waits.
            let _ = tap.try_send(json.clone());
        }
        self.relay(&json);
    }

    /// Offers every event this hub encodes from now on to `tap` too (once; later
    /// calls are ignored): several servers on one store share their feeds.
    pub(crate) fn tap(&self, tap: Sender<String>) {
        let _ = self.tap.set(tap);
    }

    /// Keeps and offers an event already encoded as JSON: this hub's own, or another
    /// server's (never tapped again).
    pub(crate) fn relay(&self, json: &str) {
        let mut feed = self.feed.lock();
        let seq = feed.next_seq;
        feed.next_seq += 1;
        let frame: Arc<str> = format!("id: {}-{seq}\ndata: {json}\n\n", self.epoch).into();
        if feed.ring.len() == BACKLOG {
            feed.ring.pop_front();
        }
        feed.ring.push_back((seq, Arc::clone(&frame)));
        if feed.subscribers.is_empty() {
            return;
        }
        feed.subscribers
            .retain(|(id, tx)| match tx.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    log::info!(
                        "dashboard: event-stream client {id} dropped: {EVENT_QUEUE} events unread"
                    );
                    false
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        self.clients.store(feed.subscribers.len(), Ordering::SeqCst);
    }

    /// A queue for a new event-stream client, with the backlog it is owed: the
    /// events after `last_event_id` (an id this hub sent) still in the ring, or the
    /// last [`BACKLOG_ON_LOAD`] for a new client (or one from an earlier server
    /// run). `None` past [`MAX_EVENT_CLIENTS`] or once the server is stopping.
    pub(crate) fn subscribe(self: &Arc<Self>, last_event_id: Option<&str>) -> Option<Subscription> {
        let after = last_event_id.and_then(|id| {
            let (epoch, seq) = id.trim().split_once('-')?;
            (epoch == self.epoch).then(|| seq.parse::<u64>().ok())?
        });
        let mut feed = self.feed.lock();
        if self.closed.load(Ordering::SeqCst) || feed.subscribers.len() >= MAX_EVENT_CLIENTS {
            return None;
        }
        let backlog: Vec<Arc<str>> = match after {
            Some(after) => feed
                .ring
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(_, f)| Arc::clone(f))
                .collect(),
            None => {
                let skip = feed.ring.len().saturating_sub(BACKLOG_ON_LOAD);
                feed.ring
                    .iter()
                    .skip(skip)
                    .map(|(_, f)| Arc::clone(f))
                    .collect()
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        feed.subscribers.push((id, tx));
        self.clients.store(feed.subscribers.len(), Ordering::SeqCst);
        Some(Subscription {
            hub: Arc::clone(self),
            id,
            backlog,
            events: rx,
        })
    }

    /// Ends every event stream (server shutdown): their queues disconnect.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut feed = self.feed.lock();
        feed.subscribers.clear();
        self.clients.store(0, Ordering::SeqCst);
    }

    /// Closes the current one-second bucket of the request rate (called every
    /// second by the dashboard's ticker).
    pub(crate) fn tick(&self) {
        let total = self.total_requests();
        let mut rate = self.rate.lock();
        let n = total.saturating_sub(rate.last_total);
        rate.last_total = total;
        let at = rate.next;
        rate.buckets[at] = n;
        rate.next = (at + 1) % RATE_WINDOW;
        rate.filled = (rate.filled + 1).min(RATE_WINDOW);
    }

    fn total_requests(&self) -> u64 {
        self.requests
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn counters(&self) -> Counters {
        let requests = Op::ALL
            .iter()
            .map(|op| {
                let by: [u64; RESULTS] =
                    std::array::from_fn(|i| self.requests[*op as usize][i].load(Ordering::Relaxed));
                (*op, by.iter().sum(), by)
            })
            .collect();
        let rate = self.rate.lock();
        let per_second = if rate.filled == 0 {
            0.0
        } else {
            rate.buckets.iter().sum::<u64>() as f64 / rate.filled as f64
        };
        Counters {
            requests,
            per_second,
            uptime: self.started.elapsed(),
            event_clients: self.clients.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn latency(&self) -> &Histogram {
        &self.latency
    }

    /// When `user` connected (RFC 3339, UTC), if it was seen connecting.
    pub(crate) fn connected_since(&self, user: &str) -> Option<String> {
        self.since
            .lock()
            .get(user)
            .map(|c| c.at.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod backlog_tests;
