//! The index server's audit path: request threads record, the spool keeps, the
//! shipper sends.
//!
//! Recording never waits for the logger: the sink appends the record to the durable
//! spool (one `write` to a local file, under a short lock) and rings the shipper,
//! which sends it on its own thread. If the spool cannot take it (disk full, spool
//! over its cap) the record is counted as dropped and the log says so.

pub(crate) mod interface;
pub(crate) mod shipper;
pub(crate) mod spool;

use std::sync::Arc;

use crate::proto::audit::AuditRecord;
use spool::Spool;

/// Where request threads put their audit records.
pub(crate) struct AuditSink {
    spool: Option<Arc<Spool>>,
}

impl AuditSink {
    /// A sink appending to `spool`.
    pub(crate) fn spooled(spool: Arc<Spool>) -> AuditSink {
        AuditSink { spool: Some(spool) }
    }

    /// A sink that discards every record (`--no-logger`).
    pub(crate) fn disabled() -> AuditSink {
        AuditSink { spool: None }
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
        let sink = AuditSink::spooled(Arc::clone(&spool));
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
