use super::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use crate::proto::index::{Body, Request};
use crate::server::http::Hub;

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn name_ok(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Holds `text` to the exposition format's rules (see the module doc); returns
/// the samples by their full name with labels.
fn check_format(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with('\n'), "the last line ends in a newline");
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name), "bad name {name}");
            assert!(helped.insert(name.to_owned()), "two HELP lines for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "two TYPE lines for {name}"
            );
            if let Some(prev) = current.replace(name.to_owned()) {
                done.insert(prev);
            }
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} lacks _total");
            }
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad name {name}");
        let family = family_of(name, &types);
        assert_eq!(
            current.as_deref(),
            Some(family),
            "sample {name} outside its family's block"
        );
        assert!(!done.contains(family), "{family} samples split");
        check_labels(line, series.strip_prefix(name).unwrap_or(""));
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    check_histograms(text, &types, &samples);
    samples
}

/// The family of sample `name`: itself, or the histogram it is a series of.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| {
            name.strip_suffix(s)
                .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
        })
        .unwrap_or(name)
}

/// The labels of a sample (`{k="v",...}` or nothing), of `line`.
fn check_labels(line: &str, labels: &str) {
    if labels.is_empty() {
        return;
    }
    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
    for pair in labels[1..labels.len() - 1].split("\",") {
        let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
        assert!(name_ok(k), "label {k}");
        let v = v.strip_suffix('"').unwrap_or(v);
        assert!(!v.contains('\n'), "raw newline in a label");
    }
}

/// Histograms: cumulative buckets, +Inf last and equal to _count, and a _sum.
fn check_histograms(text: &str, types: &HashMap<String, String>, samples: &HashMap<String, f64>) {
    for (name, kind) in types {
        if kind != "histogram" {
            continue;
        }
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                let (le, v) = rest.split_once("\"} ").unwrap();
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, v.parse().unwrap())
            })
            .collect();
        assert!(
            buckets.last().is_some_and(|b| b.0.is_infinite()),
            "{name}: +Inf last"
        );
        let sorted = buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        assert!(sorted, "{name}: buckets not increasing and cumulative");
        let count = samples[&format!("{name}_count")];
        assert_eq!(buckets.pop().unwrap().1, count, "{name}: +Inf != _count");
        assert!(samples.contains_key(&format!("{name}_sum")));
    }
}

#[test]
fn the_exposition_follows_the_text_format_and_counts_by_result() {
    let hub = Hub::new();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let req = |body| Request {
        datetime: None,
        user: "a".into(),
        body,
    };
    hub.answered(&req(Body::Register), 0, lo, Instant::now());
    hub.answered(&req(Body::Register), 1, lo, Instant::now());
    hub.answered(&req(Body::ListUsers), 2, lo, Instant::now());
    hub.answered(&req(Body::ListUsers), 9, lo, Instant::now());
    let counters = hub.counters();
    let text = render(&Scrape {
        counters: &counters,
        latency: hub.latency(),
        registry: RegistryGauges {
            registered: 3,
            connected: 1,
            publications: 7,
            search_index: Some((7, 4096)),
        },
        server: ServerGauges {
            open_connections: 2,
            connection_cap: 1024,
            audit: Some(AuditGauges {
                pending: 5,
                in_memory: 2,
                dropped: 0,
                state: ShipperState::Down,
            }),
            ..ServerGauges::default()
        },
    });
    let m = check_format(&text);
    let req_total = |op: &str, code: u8, result: &str| {
        m[&format!(
            "peerdex_index_requests_total{{op=\"{op}\",code=\"{code}\",result=\"{result}\"}}"
        )]
    };
    assert_eq!(req_total("REGISTER", 0, "ok"), 1.0);
    assert_eq!(req_total("REGISTER", 1, "username_in_use"), 1.0);
    assert_eq!(req_total("REGISTER", 2, "error"), 0.0);
    assert_eq!(req_total("LIST_USERS", 2, "user_not_connected"), 1.0);
    assert_eq!(req_total("LIST_USERS", 5, "unknown_code"), 1.0);
    assert_eq!(m["peerdex_index_request_duration_seconds_count"], 4.0);
    assert_eq!(m["peerdex_users_registered"], 3.0);
    assert_eq!(m["peerdex_search_index_bytes"], 4096.0);
    assert_eq!(m["peerdex_audit_spool_records"], 5.0);
    assert_eq!(m["peerdex_audit_memory_records"], 2.0);
    assert_eq!(m["peerdex_audit_shipper_state{state=\"down\"}"], 1.0);
    assert_eq!(m["peerdex_audit_shipper_state{state=\"delivering\"}"], 0.0);
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape("a\\b\"c\nd", true), "a\\\\b\\\"c\\nd");
    assert_eq!(escape("say \"hi\"\n", false), "say \"hi\"\\n");
}
