//! The dashboard feed of every server on one shared store: each server's events go
//! to a capped Redis stream (`peerdex:feed`), and each server relays the others'
//! events from it to its own dashboard.
//!
//! Owns: the two threads (publisher: a bounded queue from the hub, sent in pipelined
//! batches; reader: a blocking `XREAD` of the feed stream) and the entry format
//! (`<holder>\n<event JSON>`). Bounded: the hub's queue drops events when full, the
//! stream keeps about [`FEED_KEEP`] entries, a read returns at most `READ_BATCH`,
//! an entry over [`MAX_EVENT`] bytes is skipped. Does not own: the events themselves
//! (`http::events`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::redis::{self, RedisStore, StoreError, Stream};
use crate::net::Shutdown;
use crate::server::http::Hub;

/// Events waiting to be sent to the other servers: a burst of a busy lab. Past it
/// they are dropped for the others (this server's own dashboard still has them).
const QUEUE: usize = 1024;

/// Entries the feed stream keeps (about: `MAXLEN ~`), for every server together.
const FEED_KEEP: usize = 1000;

/// Most events sent in one pipelined batch.
const BATCH: usize = 64;

/// Longest event relayed (the hub's are a few hundred bytes).
const MAX_EVENT: usize = 64 * 1024;

/// How long a feed read blocks, and the publisher waits for an event: also how long
/// a stop waits for them.
const WAIT: Duration = Duration::from_millis(500);

/// Starts the publisher and the reader of the shared feed for `hub`.
pub(super) fn start(
    store: Arc<RedisStore>,
    hub: &Arc<Hub>,
    holder: &str,
    stop: &Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    hub.tap(tx);
    let prefix = format!("{holder}\n");
    let publisher = {
        let (store, prefix, stop) = (Arc::clone(&store), prefix.clone(), stop.clone());
        std::thread::Builder::new()
            .name("feed-out".into())
            .spawn(move || publish(&store, &rx, &prefix, &stop))?
    };
    let reader = {
        let (hub, stop) = (Arc::clone(hub), stop.clone());
        std::thread::Builder::new()
            .name("feed-in".into())
            .spawn(move || read(&store, &hub, &prefix, &stop))?
    };
    Ok(vec![publisher, reader])
}

fn publish(store: &RedisStore, rx: &Receiver<String>, prefix: &str, stop: &Shutdown) {
    while !stop.is_triggered() {
        let first = match rx.recv_timeout(WAIT) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let batch: Vec<Vec<u8>> = std::iter::once(first)
            .chain(rx.try_iter().take(BATCH - 1))
            .map(|json| format!("{prefix}{json}").into_bytes())
            .collect();
        if let Err(e) = store.feed_add(&batch, FEED_KEEP) {
            log::debug!("feed: {} events not shared: {e}", batch.len());
        }
    }
}

fn read(store: &RedisStore, hub: &Hub, own: &str, stop: &Shutdown) {
    let mut conn = None;
    let mut last = None;
    while !stop.is_triggered() {
        if let Err(e) = read_once(store, hub, own, &mut conn, &mut last) {
            log::debug!("feed: {e}");
            conn = None;
            if stop.wait_timeout(WAIT) {
                return;
            }
        }
    }
}

/// One blocking read of the feed after `last` (the stream's end at the first read),
/// relaying the other servers' events.
fn read_once(
    store: &RedisStore,
    hub: &Hub,
    own: &str,
    conn: &mut Option<::redis::Connection>,
    last: &mut Option<String>,
) -> Result<(), StoreError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(store.connect(WAIT + store.timeout())?),
    };
    let after = match last {
        Some(id) => id.clone(),
        None => last
            .insert(redis::feed_last_id(c).map_err(|e| store.failed(e))?)
            .clone(),
    };
    let entries =
        redis::read_after(c, Stream::Feed, &after, Some(WAIT)).map_err(|e| store.failed(e))?;
    for (id, entry) in entries {
        *last = Some(id);
        if entry.len() > MAX_EVENT || entry.starts_with(own.as_bytes()) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&entry) else {
            continue;
        };
        if let Some((_, json)) = text.split_once('\n') {
            hub.relay(json);
        }
    }
    Ok(())
}
