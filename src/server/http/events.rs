//! What the dashboard learns from the request path: the live event feed (a bounded
//! broadcast to event-stream clients), request counters, the request rate over the
//! last minute, and when each user connected.
//!
//! The request path calls [`Hub::answered`] once per answered request. With no
//! event-stream client that costs one relaxed add (the per-operation counter) and
//! one atomic load (the client count); CONNECT, DISCONNECT and UNREGISTER also note
//! the connection time under a small lock. With clients, the event is encoded once
//! and offered to each client's bounded queue with `try_send`: a client whose queue
//! is full is dropped, never waited for and never buffered beyond its queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde::Serialize;

use crate::proto::datetime;
use crate::proto::index::{Body, Op, Request};
use crate::server::registry::PeerAddr;

/// Events queued per event-stream client. A browser reads them as they come; 256
/// covers a burst of a few seconds of a busy lab. A client that falls this far
/// behind (a stopped tab, a reader that never reads) is dropped; its memory is this
/// queue, never more.
pub(crate) const EVENT_QUEUE: usize = 256;

/// Most event-stream clients at once (past it: 503). A lecture needs one or two
/// (a projector, a few students' phones); 32 bounds the threads and queues.
pub(crate) const MAX_EVENT_CLIENTS: usize = 32;

/// Seconds in the request-rate window ("requests per second over the last minute").
const RATE_WINDOW: usize = 60;

/// An event as sent to the page (one line of JSON).
#[derive(Serialize)]
struct Event<'a> {
    op: &'a str,
    user: &'a str,
    datetime: &'a str,
    code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
}

/// The last minute of request counts, one bucket per second, filled by a ticker.
struct Rate {
    buckets: [u64; RATE_WINDOW],
    next: usize,
    filled: usize,
    last_total: u64,
}

/// Shared by the request path, the liveness prober and the dashboard's listener.
pub(crate) struct Hub {
    /// Event-stream clients right now: the request path's only check when there are
    /// none.
    clients: AtomicUsize,
    subscribers: Mutex<Vec<(u64, Sender<Arc<str>>)>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Requests answered, per operation (indexed as [`Op::ALL`]).
    requests: [AtomicU64; Op::ALL.len()],
    rate: Mutex<Rate>,
    started: Instant,
    /// When each connected user connected (only those seen connecting since start).
    since: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// An event-stream client's queue; leaves the broadcast when dropped.
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    pub(crate) events: Receiver<Arc<str>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subscribers.lock();
        subs.retain(|(id, _)| *id != self.id);
        self.hub.clients.store(subs.len(), Ordering::SeqCst);
    }
}

/// The counters of `/api/stats` that come from the request path.
pub(crate) struct Counters {
    pub(crate) requests: Vec<(&'static str, u64)>,
    pub(crate) per_second: f64,
    pub(crate) uptime: Duration,
}

impl Hub {
    pub(crate) fn new() -> Arc<Hub> {
        Arc::new(Hub {
            clients: AtomicUsize::new(0),
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
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

    /// The request path's hook: `req` was answered with result `code`; `host` is
    /// the address a CONNECT from this peer records.
    pub(crate) fn answered(&self, req: &Request, code: u8, host: IpAddr) {
        let op = req.body.op();
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
        if code == 0 {
            match &req.body {
                Body::Connect { .. } => {
                    self.since.lock().insert(req.user.clone(), Utc::now());
                }
                Body::Disconnect | Body::Unregister => {
                    self.since.lock().remove(&req.user);
                }
                _ => {}
            }
        }
        if self.clients.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now;
        let datetime = match &req.datetime {
            Some(d) => d.as_str(),
            None => {
                now = datetime::now();
                now.as_str()
            }
        };
        let (file, pattern, addr) = match &req.body {
            Body::Publish { file, .. } | Body::Delete { file } => (Some(file.as_str()), None, None),
            Body::Search { pattern } => (None, Some(pattern.as_str()), None),
            Body::Connect { port } => (
                None,
                None,
                Some(PeerAddr {
                    ip: host,
                    port: *port,
                }),
            ),
            _ => (None, None, None),
        };
        self.broadcast(&Event {
            op: op.name(),
            user: &req.user,
            datetime,
            code,
            file,
            pattern,
            addr: addr.map(|a| format!("{}:{}", a.ip, a.port)),
        });
    }

    /// The request path's hook for a request refused as malformed (its user known).
    pub(crate) fn rejected(&self, op: Op, user: &str, code: u8) {
        self.requests[op as usize].fetch_add(1, Ordering::Relaxed);
        if self.clients.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.broadcast(&Event {
            op: op.name(),
            user,
            datetime: &datetime::now(),
            code,
            file: None,
            pattern: None,
            addr: None,
        });
    }

    /// The liveness prober disconnected `user`, last seen at `addr`.
    pub(crate) fn dropped(&self, user: &str, addr: PeerAddr) {
        self.since.lock().remove(user);
        if self.clients.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.broadcast(&Event {
            op: "DROP",
            user,
            datetime: &datetime::now(),
            code: 0,
            file: None,
            pattern: None,
            addr: Some(format!("{}:{}", addr.ip, addr.port)),
        });
    }

    /// Offers one event to every client; drops those whose queue is full.
    fn broadcast(&self, event: &Event<'_>) {
        let line: Arc<str> = match serde_json::to_string(event) {
            Ok(s) => s.into(),
            Err(e) => {
                log::warn!("dashboard event not encoded: {e}");
                return;
            }
        };
        let mut subs = self.subscribers.lock();
        subs.retain(|(id, tx)| match tx.try_send(Arc::clone(&line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                log::info!(
                    "dashboard: event-stream client {id} dropped: {EVENT_QUEUE} events unread"
                );
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        self.clients.store(subs.len(), Ordering::SeqCst);
    }

    /// A queue for a new event-stream client; `None` past [`MAX_EVENT_CLIENTS`] or
    /// once the server is stopping.
    pub(crate) fn subscribe(self: &Arc<Self>) -> Option<Subscription> {
        let mut subs = self.subscribers.lock();
        if self.closed.load(Ordering::SeqCst) || subs.len() >= MAX_EVENT_CLIENTS {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(EVENT_QUEUE);
        subs.push((id, tx));
        self.clients.store(subs.len(), Ordering::SeqCst);
        Some(Subscription {
            hub: Arc::clone(self),
            id,
            events: rx,
        })
    }

    /// Ends every event stream (server shutdown): their queues disconnect.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mut subs = self.subscribers.lock();
        subs.clear();
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
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn counters(&self) -> Counters {
        let requests = Op::ALL
            .iter()
            .map(|op| {
                (
                    op.name(),
                    self.requests[*op as usize].load(Ordering::Relaxed),
                )
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
        }
    }

    /// When `user` connected (RFC 3339, UTC), if it was seen connecting.
    pub(crate) fn connected_since(&self, user: &str) -> Option<String> {
        self.since
            .lock()
            .get(user)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(user: &str, body: Body) -> Request {
        Request {
            datetime: Some("01/02/2025 10:11:12".into()),
            user: user.into(),
            body,
        }
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped_and_never_blocks() {
        let hub = Hub::new();
        let sub = hub.subscribe().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..EVENT_QUEUE {
            hub.answered(&req("a", Body::Register), 0, lo);
        }
        assert_eq!(hub.clients.load(Ordering::SeqCst), 1);
        hub.answered(&req("a", Body::Register), 1, lo);
        assert_eq!(hub.clients.load(Ordering::SeqCst), 0, "dropped when full");
        assert_eq!(sub.events.len(), EVENT_QUEUE);
        drop(sub);
        assert_eq!(
            hub.counters().requests[0],
            ("REGISTER", EVENT_QUEUE as u64 + 1)
        );
    }

    #[test]
    fn events_carry_the_operation_details() {
        let hub = Hub::new();
        let sub = hub.subscribe().unwrap();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        hub.answered(&req("a", Body::Connect { port: 4000 }), 0, ip);
        hub.answered(
            &req(
                "a",
                Body::Publish {
                    file: "f.txt".into(),
                    description: "d".into(),
                },
            ),
            0,
            ip,
        );
        hub.answered(
            &req(
                "a",
                Body::Search {
                    pattern: "f".into(),
                },
            ),
            0,
            ip,
        );
        let got: Vec<serde_json::Value> = sub
            .events
            .try_iter()
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        assert_eq!(
            got[0],
            serde_json::json!({"op":"CONNECT","user":"a","datetime":"01/02/2025 10:11:12","code":0,"addr":"10.0.0.7:4000"})
        );
        assert_eq!(got[1]["file"], "f.txt");
        assert_eq!(got[2]["pattern"], "f");
        assert!(hub.connected_since("a").unwrap().ends_with('Z'));
    }

    #[test]
    fn clients_are_capped_and_leave_on_drop() {
        let hub = Hub::new();
        let subs: Vec<_> = (0..MAX_EVENT_CLIENTS)
            .map(|_| hub.subscribe().unwrap())
            .collect();
        assert!(hub.subscribe().is_none());
        drop(subs);
        assert_eq!(hub.clients.load(Ordering::SeqCst), 0);
        let sub = hub.subscribe().unwrap();
        hub.close();
        assert!(sub.events.recv().is_err(), "closing ends the stream");
        assert!(hub.subscribe().is_none());
    }

    #[test]
    fn the_rate_is_the_mean_over_the_filled_window() {
        let hub = Hub::new();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..10 {
            hub.answered(&req("a", Body::ListUsers), 0, lo);
        }
        hub.tick();
        hub.tick();
        assert_eq!(hub.counters().per_second, 5.0);
    }
}
