//! The index server's audit path: request threads record, the spool keeps, the
//! shipper sends.
//!
//! Recording never waits for the logger: the sink appends the record to the durable
//! spool (one `write` to a local file, under a short lock) and rings the shipper,
//! which sends it on its own thread. If the spool file cannot take it (disk full,
//! spool over its cap) the record waits in a bounded memory queue and is still
//! shipped, and the log says audit is not crash-safe until the file takes records
//! again; only past that queue's cap is a record dropped (counted, and logged).

pub(crate) mod interface;
pub(crate) mod shipper;
pub(crate) mod spool;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::proto::audit::AuditRecord;
use spool::Spool;

/// Where request threads put their audit records.
pub(crate) struct AuditSink {
    spool: Option<Arc<Spool>>,
    shipper: Arc<ShipperStatus>,
}

/// What the shipper is doing, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShipperState {
    /// Started, nothing delivered yet (or delivering what an earlier run left).
    Starting,
    /// The logger acknowledged the last batch.
    Delivering,
    /// The logger is unreachable: records wait in the spool, the shipper retries.
    Down,
    /// The shipper has ended (server stopping, or a spool error).
    Stopped,
}

impl ShipperState {
    pub(crate) const ALL: [ShipperState; 4] = [
        ShipperState::Starting,
        ShipperState::Delivering,
        ShipperState::Down,
        ShipperState::Stopped,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ShipperState::Starting => "starting",
            ShipperState::Delivering => "delivering",
            ShipperState::Down => "down",
            ShipperState::Stopped => "stopped",
        }
    }
}

/// The shipper's state, set by its thread and read by `/metrics`.
pub(crate) struct ShipperStatus(AtomicU8);

impl ShipperStatus {
    pub(crate) fn new() -> Arc<ShipperStatus> {
        Arc::new(ShipperStatus(AtomicU8::new(ShipperState::Starting as u8)))
    }

    pub(crate) fn set(&self, state: ShipperState) {
        self.0.store(state as u8, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> ShipperState {
        let v = self.0.load(Ordering::Relaxed);
        ShipperState::ALL
            .into_iter()
            .find(|s| *s as u8 == v)
            .unwrap_or(ShipperState::Stopped)
    }
}

/// The audit path's figures for `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct AuditGauges {
    /// Records spooled and not yet acknowledged by the logger.
    pub(crate) pending: u64,
    /// Of those, records the spool file could not take, held in memory.
    pub(crate) in_memory: usize,
    /// Records the spool could not take.
    pub(crate) dropped: u64,
    pub(crate) state: ShipperState,
}

impl AuditSink {
    /// A sink appending to `spool`, shipped by the shipper reporting to `shipper`.
    pub(crate) fn spooled(spool: Arc<Spool>, shipper: Arc<ShipperStatus>) -> AuditSink {
        AuditSink {
            spool: Some(spool),
            shipper,
        }
    }

    /// A sink that discards every record (`--no-logger`).
    pub(crate) fn disabled() -> AuditSink {
        AuditSink {
            spool: None,
            shipper: ShipperStatus::new(),
        }
    }

    /// The spool and shipper figures; `None` with `--no-logger`.
    pub(crate) fn gauges(&self) -> Option<AuditGauges> {
        let spool = self.spool.as_ref()?;
        Some(AuditGauges {
            pending: spool.pending(),
            in_memory: spool.in_memory(),
            dropped: spool.dropped(),
            state: self.shipper.get(),
        })
    }

    /// Makes the record durable and hands it to the shipper, without waiting for
    /// the logger. Call it before replying to the client.
    pub(crate) fn record(&self, record: AuditRecord) {
        if let Some(spool) = &self.spool {
            spool.append_or_count(&record);
        }
    }

    #[cfg(test)]
    /// Records that could not be spooled.
    pub(crate) fn dropped(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.dropped())
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
            result: 0,
        }
    }

    #[test]
    fn records_land_in_the_spool_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        let spool = Arc::new(spool);
        let sink = AuditSink::spooled(Arc::clone(&spool), ShipperStatus::new());
        sink.record(rec("A"));
        sink.record(rec("B"));
        let mut r = spool::SpoolReader::open(spool.path()).unwrap();
        let got = r.read(10, spool.len(), false).unwrap();
        let ops: Vec<_> = got.iter().map(|(e, _)| e.operation.as_ref()).collect();
        assert_eq!(ops, ["A", "B"]);
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn a_disabled_sink_drops_nothing_and_stores_nothing() {
        let sink = AuditSink::disabled();
        sink.record(rec("X"));
        assert_eq!(sink.dropped(), 0);
    }
}
