use super::*;
use crate::proto::index::{read_file_list, read_search_list, read_user_list};
use crate::proto::wire::FieldReader;

fn reg(user: &str) -> Change {
    Change::Register { user: user.into() }
}
fn conn(user: &str, port: u16) -> Change {
    Change::Connect {
        user: user.into(),
        ip: "10.0.0.1".parse().unwrap(),
        port,
    }
}
fn publish(user: &str, file: &str) -> Change {
    Change::Publish {
        user: user.into(),
        file: file.into(),
        description: format!("about {file}"),
    }
}

#[test]
fn register_twice_is_code_1() {
    let r = Registry::new();
    assert_eq!(r.apply(&reg("a")), 0);
    assert_eq!(r.apply(&reg("a")), 1);
}

#[test]
fn unregister_codes() {
    let r = Registry::new();
    assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 1);
    r.apply(&reg("a"));
    r.apply(&conn("a", 1));
    assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 2);
    r.apply(&Change::Disconnect { user: "a".into() });
    assert_eq!(r.apply(&Change::Unregister { user: "a".into() }), 0);
    assert_eq!(r.counts(), (0, 0));
}

#[test]
fn connect_and_disconnect_codes() {
    let r = Registry::new();
    assert_eq!(r.apply(&conn("a", 1)), 1);
    r.apply(&reg("a"));
    assert_eq!(r.apply(&conn("a", 1)), 0);
    assert_eq!(r.apply(&conn("a", 2)), 2);
    assert_eq!(r.peer_addr("a").unwrap().port, 1);
    assert_eq!(r.apply(&Change::Disconnect { user: "a".into() }), 0);
    assert_eq!(r.apply(&Change::Disconnect { user: "a".into() }), 2);
    assert_eq!(r.apply(&Change::Disconnect { user: "b".into() }), 1);
}

#[test]
fn the_prober_drops_a_user_only_at_the_address_it_probed() {
    let r = Registry::new();
    r.apply(&reg("a"));
    r.apply(&conn("a", 1));
    let old = r.peer_addr("a").unwrap();
    // Reconnected on another port between the probe and its verdict.
    r.apply(&Change::Disconnect { user: "a".into() });
    r.apply(&conn("a", 2));
    assert!(!r.disconnect_if_at("a", old), "dropped at its new address");
    assert_eq!(r.peer_addr("a").unwrap().port, 2);
    let new = r.peer_addr("a").unwrap();
    assert!(r.disconnect_if_at("a", new));
    assert!(r.peer_addr("a").is_none());
    assert!(!r.disconnect_if_at("a", new), "already disconnected");
}

#[test]
fn publish_and_delete_codes() {
    let r = Registry::new();
    assert_eq!(r.apply(&publish("a", "f")), 1);
    r.apply(&reg("a"));
    assert_eq!(r.apply(&publish("a", "f")), 2);
    r.apply(&conn("a", 1));
    assert_eq!(r.apply(&publish("a", "f")), 0);
    assert_eq!(r.apply(&publish("a", "f")), 3);
    let del = |f: &str| Change::Delete {
        user: "a".into(),
        file: f.into(),
    };
    assert_eq!(r.apply(&del("g")), 3);
    assert_eq!(r.apply(&del("f")), 0);
    assert_eq!(r.apply(&del("f")), 3);
}

#[test]
fn same_file_name_for_different_users() {
    let r = Registry::new();
    for u in ["a", "b"] {
        r.apply(&reg(u));
        r.apply(&conn(u, 1));
        assert_eq!(r.apply(&publish(u, "same")), 0);
    }
    assert_eq!(r.counts(), (2, 2));
}

/// The cached LIST_USERS encoding follows every change of the connected set,
/// whichever path makes it (request, liveness drop).
#[test]
fn list_users_follows_each_change_of_the_connected_set() {
    let r = Registry::new();
    let listed = |r: &Registry| {
        let mut out = Vec::new();
        r.list_users("a", None, &mut out).unwrap();
        assert_eq!(out[0], 0);
        read_user_list(&mut FieldReader::new(&out[1..]))
            .unwrap()
            .into_iter()
            .map(|u| format!("{}:{}", u.user, u.port))
            .collect::<Vec<_>>()
    };
    r.apply(&reg("a"));
    r.apply(&conn("a", 1));
    assert_eq!(listed(&r), ["a:1"]);
    r.apply(&reg("b"));
    assert_eq!(listed(&r), ["a:1"], "a registration alone lists nobody new");
    r.apply(&conn("b", 2));
    assert_eq!(listed(&r), ["a:1", "b:2"]);
    r.apply(&Change::Disconnect { user: "b".into() });
    assert_eq!(listed(&r), ["a:1"]);
    r.apply(&conn("b", 3));
    assert_eq!(listed(&r), ["a:1", "b:3"], "a reconnect shows the new port");
    let at = r.peer_addr("b").unwrap();
    assert!(r.disconnect_if_at("b", at));
    assert_eq!(listed(&r), ["a:1"]);
}

#[test]
fn list_users_shows_only_connected_users() {
    let r = Registry::new();
    for (u, p) in [("b", 2), ("a", 1), ("c", 3)] {
        r.apply(&reg(u));
        r.apply(&conn(u, p));
    }
    r.apply(&Change::Disconnect { user: "c".into() });
    let mut out = Vec::new();
    r.list_users("a", None, &mut out).unwrap();
    assert_eq!(out[0], 0);
    let users = read_user_list(&mut FieldReader::new(&out[1..])).unwrap();
    let names: Vec<_> = users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let mut out = Vec::new();
    r.list_users("c", None, &mut out).unwrap();
    assert_eq!(out, [2]);
    let mut out = Vec::new();
    r.list_users("nobody", None, &mut out).unwrap();
    assert_eq!(out, [1]);
}

#[test]
fn list_content_keeps_publication_order_and_survives_disconnect() {
    let r = Registry::new();
    r.apply(&reg("a"));
    r.apply(&conn("a", 1));
    for f in ["z", "a", "m"] {
        r.apply(&publish("a", f));
    }
    r.apply(&Change::Delete {
        user: "a".into(),
        file: "a".into(),
    });
    r.apply(&publish("a", "b"));
    r.apply(&Change::Disconnect { user: "a".into() });
    r.apply(&reg("q"));
    r.apply(&conn("q", 2));
    let mut out = Vec::new();
    r.list_content("q", "a", None, &mut out).unwrap();
    assert_eq!(out[0], 0);
    let files = read_file_list(&mut FieldReader::new(&out[1..])).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(names, ["z", "m", "b"]);
    assert_eq!(files[0].description, "about z");
    let mut out = Vec::new();
    r.list_content("q", "nobody", None, &mut out).unwrap();
    assert_eq!(out, [3]);
    let mut out = Vec::new();
    r.list_content("a", "q", None, &mut out).unwrap();
    assert_eq!(out, [2]);
}

#[test]
fn search_matches_substrings_of_connected_owners_only() {
    let r = Registry::new();
    for u in ["a", "b", "c"] {
        r.apply(&reg(u));
        r.apply(&conn(u, 7));
    }
    r.apply(&publish("a", "notes-1.txt"));
    r.apply(&publish("b", "Notes-2.txt"));
    r.apply(&publish("c", "notes-3.txt"));
    r.apply(&publish("a", "song.mp3"));
    r.apply(&Change::Disconnect { user: "c".into() });
    let mut out = Vec::new();
    r.search("a", "notes", None, &mut out).unwrap();
    assert_eq!(out[0], 0);
    let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].file, "notes-1.txt");
    assert_eq!(hits[0].owner, "a");
    assert_eq!(hits[0].port, 7);
    let mut out = Vec::new();
    r.search("a", "", None, &mut out).unwrap();
    let hits = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
    assert_eq!(hits.len(), 3);
}

/// The (owner, file, description) of every match, in reply order.
fn searched(r: &Registry, user: &str, pattern: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    r.search(user, pattern, None, &mut out).unwrap();
    assert_eq!(out[0], 0, "code of SEARCH {pattern:?}");
    let mut reader = FieldReader::new(&out[1..]);
    let hits = read_search_list(&mut reader).unwrap();
    hits.into_iter()
        .map(|h| (h.owner, h.file, h.description))
        .collect()
}

fn files(hits: &[(String, String, String)]) -> Vec<&str> {
    let mut f: Vec<&str> = hits.iter().map(|h| h.1.as_str()).collect();
    f.sort_unstable();
    f
}

fn del(user: &str, file: &str) -> Change {
    Change::Delete {
        user: user.into(),
        file: file.into(),
    }
}

#[test]
fn search_index_follows_publish_delete_connect_disconnect_unregister() {
    let r = Registry::new();
    for u in ["a", "b"] {
        r.apply(&reg(u));
        r.apply(&conn(u, 7));
    }
    r.apply(&publish("a", "x1.pdf"));
    r.apply(&publish("a", "x2.pdf"));
    r.apply(&publish("b", "x3.pdf"));
    r.check_search_table();
    assert_eq!(
        files(&searched(&r, "a", ".pdf")),
        ["x1.pdf", "x2.pdf", "x3.pdf"]
    );
    let hits = searched(&r, "a", "x3");
    assert_eq!(hits, [("b".into(), "x3.pdf".into(), "about x3.pdf".into())]);
    r.apply(&del("a", "x1.pdf"));
    r.check_search_table();
    assert_eq!(files(&searched(&r, "a", ".pdf")), ["x2.pdf", "x3.pdf"]);
    r.apply(&Change::Disconnect { user: "b".into() });
    r.check_search_table();
    assert_eq!(files(&searched(&r, "a", ".pdf")), ["x2.pdf"]);
    r.apply(&conn("b", 9));
    r.check_search_table();
    let hits = searched(&r, "a", "x3");
    assert_eq!(hits.len(), 1, "reconnected: found again");
    // The new address is the one listed.
    let mut out = Vec::new();
    r.search("a", "x3", None, &mut out).unwrap();
    let listed = read_search_list(&mut FieldReader::new(&out[1..])).unwrap();
    assert_eq!(listed[0].port, 9);
    r.apply(&Change::Disconnect { user: "b".into() });
    assert_eq!(r.apply(&Change::Unregister { user: "b".into() }), 0);
    r.check_search_table();
    r.apply(&reg("b"));
    r.apply(&conn("b", 7));
    assert!(
        searched(&r, "a", "x3").is_empty(),
        "unregister dropped the files"
    );
    // A liveness drop takes the files out too.
    r.apply(&publish("b", "x4.pdf"));
    let at = r.peer_addr("b").unwrap();
    assert!(r.disconnect_if_at("b", at));
    r.check_search_table();
    assert_eq!(files(&searched(&r, "a", ".pdf")), ["x2.pdf"]);
}

#[test]
fn search_is_capped_and_refuses_patterns_over_256_bytes() {
    let r = Registry::with_search(SearchOptions {
        max_results: 3,
        scan: false,
    });
    r.apply(&reg("a"));
    r.apply(&conn("a", 7));
    for i in 0..10 {
        r.apply(&publish("a", &format!("f{i}.txt")));
    }
    assert_eq!(searched(&r, "a", ".txt").len(), 3);
    assert_eq!(searched(&r, "a", "").len(), 3);
    assert_eq!(searched(&r, "a", "f7").len(), 1);
    let mut out = Vec::new();
    r.search("a", &"f".repeat(MAX_PATTERN), None, &mut out)
        .unwrap();
    assert_eq!(out, [0, b'0', 0]);
    let mut out = Vec::new();
    r.search("a", &"f".repeat(MAX_PATTERN + 1), None, &mut out)
        .unwrap();
    assert_eq!(out, [3]);
    let scan = Registry::with_search(SearchOptions {
        max_results: 3,
        scan: true,
    });
    scan.apply(&reg("a"));
    scan.apply(&conn("a", 7));
    for i in 0..10 {
        scan.apply(&publish("a", &format!("f{i}.txt")));
    }
    assert_eq!(searched(&scan, "a", ".txt").len(), 3);
}

/// Replaying the journal, and restoring a snapshot, rebuild the index.
#[test]
fn search_index_is_rebuilt_by_replay_and_snapshot_restore() {
    for compact_after in [u64::MAX, 1] {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            compact_after,
            ..StoreOptions::default()
        };
        {
            let (r, _) = Registry::open(dir.path(), opts).unwrap();
            for u in ["a", "b", "c"] {
                r.apply(&reg(u));
                r.apply(&conn(u, 7));
                r.apply(&publish(u, &format!("{u}-song.mp3")));
                r.apply(&publish(u, &format!("{u}-notes.txt")));
            }
            r.apply(&del("a", "a-song.mp3"));
            r.apply(&Change::Disconnect { user: "c".into() });
        }
        let (r, _) = Registry::open(dir.path(), opts).unwrap();
        r.check_search_table();
        assert_eq!(files(&searched(&r, "a", ".mp3")), ["b-song.mp3"]);
        assert_eq!(
            files(&searched(&r, "a", "")),
            ["a-notes.txt", "b-notes.txt", "b-song.mp3"]
        );
        r.apply(&conn("c", 8));
        r.check_search_table();
        assert_eq!(
            files(&searched(&r, "a", "c-")),
            ["c-notes.txt", "c-song.mp3"]
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Register(u8),
    Unregister(u8),
    Connect(u8),
    Disconnect(u8),
    Publish(u8, String),
    Delete(u8, String),
    Search(String),
}

fn name(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    proptest::collection::vec(prop::sample::select(vec!['a', 'b', '.', 'é']), 1..max)
        .prop_map(|cs| cs.into_iter().collect())
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        1 => (0u8..4).prop_map(Op::Register),
        1 => (0u8..4).prop_map(Op::Unregister),
        2 => (0u8..4).prop_map(Op::Connect),
        2 => (0u8..4).prop_map(Op::Disconnect),
        6 => (0u8..4, name(6)).prop_map(|(u, f)| Op::Publish(u, f)),
        3 => (0u8..4, name(6)).prop_map(|(u, f)| Op::Delete(u, f)),
        3 => name(4).prop_map(Op::Search),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Registry SEARCH (index, capped) agrees with a linear scan of the state:
    /// uncapped the same matches; capped as many as the cap allows, all matches.
    #[test]
    fn search_agrees_with_a_linear_scan(
        cap in 1usize..6,
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let capped = Registry::with_search(SearchOptions { max_results: cap, scan: false });
        let full = Registry::with_search(SearchOptions { max_results: usize::MAX, scan: false });
        let scan = Registry::with_search(SearchOptions { max_results: usize::MAX, scan: true });
        let user = |u: u8| format!("u{u}");
        // The user who searches: always registered and connected.
        for r in [&capped, &full, &scan] {
            r.apply(&reg("q"));
            r.apply(&conn("q", 1));
        }
        for op in ops {
            let change = match &op {
                Op::Register(u) => reg(&user(*u)),
                Op::Unregister(u) => Change::Unregister { user: user(*u) },
                Op::Connect(u) => conn(&user(*u), 2 + u16::from(*u)),
                Op::Disconnect(u) => Change::Disconnect { user: user(*u) },
                Op::Publish(u, f) => publish(&user(*u), f),
                Op::Delete(u, f) => del(&user(*u), f),
                Op::Search(pattern) => {
                    let mut all = searched(&full, "q", pattern);
                    let some = searched(&capped, "q", pattern);
                    let mut expected = searched(&scan, "q", pattern);
                    // The linear scan itself, from the dump.
                    let mut linear: Vec<(String, String, String)> = full
                        .dump()
                        .into_iter()
                        .filter(|(_, peer, _)| peer.is_some())
                        .flat_map(|(owner, _, files)| {
                            files.into_iter().map(move |(f, d)| (owner.clone(), f, d))
                        })
                        .filter(|(_, f, _)| f.contains(pattern.as_str()))
                        .collect();
                    proptest::prop_assert_eq!(some.len(), all.len().min(cap));
                    for hit in &some {
                        proptest::prop_assert!(all.contains(hit));
                    }
                    // Capped: the first matches in the full reply's order.
                    proptest::prop_assert_eq!(&some[..], &all[..some.len()]);
                    all.sort();
                    expected.sort();
                    linear.sort();
                    proptest::prop_assert_eq!(&all, &linear);
                    proptest::prop_assert_eq!(&expected, &linear);
                    continue;
                }
            };
            let codes: Vec<u8> = [&capped, &full, &scan].iter().map(|r| r.apply(&change)).collect();
            proptest::prop_assert!(codes.iter().all(|&c| c == codes[0]));
            capped.check_search_table();
            full.check_search_table();
        }
    }
}
