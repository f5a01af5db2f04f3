//! Audit records: one per request the index server receives (PROTOCOL.md section 3),
//! and the channel that carries them away from the request path.
//!
//! Owns: the record type, its printed line, and [`AuditSink`], the handle request
//! threads use. Recording never blocks a request: the sink hands the record to a
//! bounded channel and, if the consumer has fallen that far behind, counts it as
//! dropped and says so in the log. Does not own: shipping records to the logger
//! (`shipper`) or printing them (`logger`).

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde::{Deserialize, Serialize};

/// Records the channel holds before the sink starts dropping. At ~200 bytes a record
/// this caps the backlog at a few tens of MB.
pub const CHANNEL_CAPACITY: usize = 1 << 17;

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The user who performed the operation.
    pub user: String,
    /// The operation text: the OP name, with the file for PUBLISH and DELETE.
    pub operation: String,
    /// The DATETIME that came with the request, or the server's time for clients
    /// that send none.
    pub datetime: String,
}

impl AuditRecord {
    /// The printed form, `alice    PUBLISH notes.txt    17/12/2014 13:20:35`.
    pub fn line(&self) -> String {
        format!("{}    {}    {}", self.user, self.operation, self.datetime)
    }
}

/// Where request threads put their audit records.
pub struct AuditSink {
    tx: Option<Sender<AuditRecord>>,
    dropped: AtomicU64,
}

impl AuditSink {
    /// A sink feeding a new bounded channel; the receiver goes to the consumer.
    pub fn channel() -> (AuditSink, Receiver<AuditRecord>) {
        let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        (
            AuditSink {
                tx: Some(tx),
                dropped: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// A sink that discards every record (`--no-logger`).
    pub fn disabled() -> AuditSink {
        AuditSink {
            tx: None,
            dropped: AtomicU64::new(0),
        }
    }

    /// Hands a record to the consumer without waiting.
    pub fn record(&self, record: AuditRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!("audit consumer is behind: {n} records dropped so far");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the consumer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &str) -> AuditRecord {
        AuditRecord {
            user: "alice".into(),
            operation: op.into(),
            datetime: "17/12/2014 13:20:35".into(),
        }
    }

    #[test]
    fn line_matches_protocol_example() {
        assert_eq!(
            rec("PUBLISH notes.txt").line(),
            "alice    PUBLISH notes.txt    17/12/2014 13:20:35"
        );
    }

    #[test]
    fn records_reach_the_receiver_in_order() {
        let (sink, rx) = AuditSink::channel();
        sink.record(rec("A"));
        sink.record(rec("B"));
        assert_eq!(rx.try_recv().unwrap().operation, "A");
        assert_eq!(rx.try_recv().unwrap().operation, "B");
    }

    #[test]
    fn a_full_channel_drops_instead_of_blocking() {
        let (sink, _rx) = AuditSink::channel();
        for _ in 0..CHANNEL_CAPACITY + 5 {
            sink.record(rec("X"));
        }
        assert_eq!(sink.dropped(), 5);
    }
}
