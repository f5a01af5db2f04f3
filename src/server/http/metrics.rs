//! `GET /metrics`: the index server's figures in the Prometheus text exposition
//! format (version 0.0.4), for an operator's Prometheus to scrape.
//!
//! Owns: the metric names, their help and type lines, and
//! writing the text format (written here: about sixty lines, no runtime or registry
//! crate). Does not own: the figures themselves, which the request path counts
//! ([`super::Hub`]), the registry holds, and the server passes in as
//! [`ServerGauges`] (connections, reply budget, audit spool).
//!
//! The format's rules, which the tests hold the output to: one `# HELP` and one
//! `# TYPE` line per family, before its samples, each family's samples together;
//! names `[a-zA-Z_:][a-zA-Z0-9_:]*`; label values escaped (`\\`, `\"`, `\n`);
//! counters end in `_total`; a histogram has cumulative `_bucket{le=...}` samples
//! ending with `le="+Inf"`, equal to its `_count`, and a `_sum`; lines end in `\n`.

use super::stats::{Counters, Histogram, LATENCY_BOUNDS, RESULTS};
use crate::proto::index::{Op, Status};
use crate::server::audit::{AuditGauges, ShipperState};
use std::fmt::Write as _;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the server itself knows, for `/metrics`: its index connections, the reply
/// budget and the audit path.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerGauges {
    pub(crate) open_connections: usize,
    pub(crate) connection_cap: usize,
    /// Silent connections closed to make room under the cap.
    pub(crate) evictions: u64,
    /// List replies that waited for a builder slot.
    pub(crate) reply_budget_waits: u64,
    /// List requests refused because the reply budget was spent.
    pub(crate) reply_budget_refusals: u64,
    pub(crate) reply_budget_bytes: usize,
    /// `None` with `--no-logger`.
    pub(crate) audit: Option<AuditGauges>,
}

/// The registry's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryGauges {
    pub(crate) registered: usize,
    pub(crate) connected: usize,
    pub(crate) publications: usize,
    /// Publications in the search index and its estimated bytes (`None` with
    /// `--search-scan`).
    pub(crate) search_index: Option<(usize, usize)>,
}

/// Everything one scrape shows.
pub(crate) struct Scrape<'a> {
    pub(crate) counters: &'a Counters,
    pub(crate) latency: &'a Histogram,
    pub(crate) registry: RegistryGauges,
    pub(crate) server: ServerGauges,
}

/// The text format's writer: families with their help and type, then samples.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Escapes a help text (`\\`, `\n`) or a label value (also `\"`).
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The `result` label of code slot `i` of `op`: its meaning in snake case.
fn result_label(op: Op, i: usize) -> String {
    let meaning = u8::try_from(i)
        .ok()
        .filter(|_| i < RESULTS - 1)
        .and_then(|code| Status::from_code(op, code))
        .map_or("unknown_code", Status::meaning);
    meaning.to_ascii_lowercase().replace(' ', "_")
}

/// The whole exposition.
pub(crate) fn render(s: &Scrape<'_>) -> String {
    let mut t = Text {
        out: String::with_capacity(8 * 1024),
    };
    requests(&mut t, s.counters);
    latency(&mut t, s.latency);
    registry(&mut t, &s.registry);
    server(&mut t, &s.server);
    audit(&mut t, s.server.audit.as_ref());
    t.one(
        "peerdex_dashboard_event_clients",
        "gauge",
        "Dashboard event-stream clients connected now.",
        s.counters.event_clients,
    );
    t.one(
        "peerdex_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        s.counters.uptime.as_secs(),
    );
    t.out
}

/// Index requests answered, by operation and result.
fn requests(t: &mut Text, counters: &Counters) {
    t.family(
        "peerdex_index_requests_total",
        "counter",
        "Index requests answered, by operation and result.",
    );
    for (op, _, by) in &counters.requests {
        for (i, &n) in by.iter().enumerate() {
            // Every result an operation defines, zeros included (a rate needs the
            // series to exist before it first moves); an undefined code once seen.
            if Status::of(*op).len() > i || n > 0 {
                let code = i.to_string();
                let result = result_label(*op, i);
                t.sample(
                    "peerdex_index_requests_total",
                    &[("op", op.name()), ("code", &code), ("result", &result)],
                    n,
                );
            }
        }
    }
}

/// The request latency histogram.
fn latency(t: &mut Text, latency: &Histogram) {
    let (buckets, sum) = latency.snapshot();
    let name = "peerdex_index_request_duration_seconds";
    t.family(
        name,
        "histogram",
        "Time from an index request read to its reply built (the write to the client not included).",
    );
    for (i, n) in buckets.iter().enumerate() {
        let le = LATENCY_BOUNDS
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        t.sample(&format!("{name}_bucket"), &[("le", &le)], n);
    }
    t.sample(&format!("{name}_sum"), &[], sum);
    t.sample(
        &format!("{name}_count"),
        &[],
        buckets.last().copied().unwrap_or(0),
    );
}

/// The registry's gauges.
fn registry(t: &mut Text, r: &RegistryGauges) {
    t.one(
        "peerdex_users_registered",
        "gauge",
        "Registered users.",
        r.registered,
    );
    t.one(
        "peerdex_users_connected",
        "gauge",
        "Connected users.",
        r.connected,
    );
    t.one(
        "peerdex_publications",
        "gauge",
        "Published files, all users.",
        r.publications,
    );
    if let Some((entries, bytes)) = r.search_index {
        t.one(
            "peerdex_search_index_publications",
            "gauge",
            "Publications in the search index (those of connected users).",
            entries,
        );
        t.one(
            "peerdex_search_index_bytes",
            "gauge",
            "Estimated heap bytes of the search index.",
            bytes,
        );
    }
}

/// The index connections and the reply budget.
fn server(t: &mut Text, g: &ServerGauges) {
    t.one(
        "peerdex_index_open_connections",
        "gauge",
        "Index connections open now.",
        g.open_connections,
    );
    t.one(
        "peerdex_index_connection_cap",
        "gauge",
        "Most index connections open at once (--max-connections).",
        g.connection_cap,
    );
    t.one(
        "peerdex_index_evictions_total",
        "counter",
        "Silent index connections closed to make room under the connection cap.",
        g.evictions,
    );
    t.one(
        "peerdex_reply_budget_waits_total",
        "counter",
        "List replies that waited for one of the reply builders.",
        g.reply_budget_waits,
    );
    t.one(
        "peerdex_reply_budget_refusals_total",
        "counter",
        "List requests refused (any-other-error) because the reply budget was spent.",
        g.reply_budget_refusals,
    );
    t.one(
        "peerdex_reply_budget_bytes",
        "gauge",
        "Bytes of list replies being built or written, counted in the reply budget.",
        g.reply_budget_bytes,
    );
}

/// The audit path (`None`: `--no-logger`).
fn audit(t: &mut Text, audit: Option<&AuditGauges>) {
    t.one(
        "peerdex_audit_enabled",
        "gauge",
        "1 when audit records go to a logger, 0 with --no-logger.",
        u8::from(audit.is_some()),
    );
    if let Some(a) = audit {
        t.one(
            "peerdex_audit_spool_records",
            "gauge",
            "Audit records in the spool not yet acknowledged by the logger.",
            a.pending,
        );
        t.one(
            "peerdex_audit_memory_records",
            "gauge",
            "Audit records the spool file could not take (disk full, spool over its cap), waiting in memory: not crash-safe.",
            a.in_memory,
        );
        t.one(
            "peerdex_audit_dropped_total",
            "counter",
            "Audit records lost: neither the spool file nor the memory queue could take them.",
            a.dropped,
        );
        t.family(
            "peerdex_audit_shipper_state",
            "gauge",
            "The audit shipper's state: 1 for the current one.",
        );
        for state in ShipperState::ALL {
            t.sample(
                "peerdex_audit_shipper_state",
                &[("state", state.name())],
                u8::from(state == a.state),
            );
        }
    }
}

#[cfg(test)]
mod tests;
