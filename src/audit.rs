//! Audit records: one per request the index server receives (PROTOCOL.md section 3),
//! and the channel that carries them away from the request path.
//!
//! Owns: the record type, its printed line, and [`AuditSink`], the handle request
//! threads use. Recording never waits for the logger: the sink appends the record
//! to the durable spool (one `write` to a local file, under a short lock) and
//! rings the shipper, which sends it on its own thread. If the spool cannot take
//! it (disk full, spool over its cap) the record is counted as dropped and the
//! log says so. Does not own: the spool file (`spool`), shipping records to the
//! logger (`shipper`) or printing them (`logger`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spool::Spool;

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
        let mut out =
            String::with_capacity(self.user.len() + self.operation.len() + self.datetime.len() + 8);
        push_line(&mut out, &self.user, &self.operation, &self.datetime);
        out
    }
}

/// Appends the printed form of a record made of these fields to `out` (for
/// printers that gather many lines in one buffer).
pub fn push_line(out: &mut String, user: &str, operation: &str, datetime: &str) {
    out.push_str(user);
    out.push_str("    ");
    out.push_str(operation);
    out.push_str("    ");
    out.push_str(datetime);
}

/// Where request threads put their audit records.
pub struct AuditSink {
    spool: Option<Arc<Spool>>,
}

impl AuditSink {
    /// A sink appending to `spool`.
    pub fn spooled(spool: Arc<Spool>) -> AuditSink {
        AuditSink { spool: Some(spool) }
    }

    /// A sink that discards every record (`--no-logger`).
    pub fn disabled() -> AuditSink {
        AuditSink { spool: None }
    }

    /// Makes the record durable and hands it to the shipper, without waiting for
    /// the logger. Call it before replying to the client.
    pub fn record(&self, record: AuditRecord) {
        if let Some(spool) = &self.spool {
            spool.append_or_count(&record);
        }
    }

    /// Records that could not be spooled.
    pub fn dropped(&self) -> u64 {
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
    fn records_land_in_the_spool_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _bell) = Spool::create(dir.path()).unwrap();
        let spool = Arc::new(spool);
        let sink = AuditSink::spooled(Arc::clone(&spool));
        sink.record(rec("A"));
        sink.record(rec("B"));
        let mut r = crate::spool::SpoolReader::open(spool.path()).unwrap();
        let got = r.read(10, spool.len(), false).unwrap();
        let ops: Vec<_> = got.iter().map(|(e, _)| e.operation.as_str()).collect();
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
