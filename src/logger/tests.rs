use super::*;

fn store(s: &mut Store, items: &[Item]) -> Vec<i32> {
    let mut statuses = Vec::new();
    s.store(items, &mut statuses);
    statuses
}

fn v2(id: u64, seq: u64, user: &str) -> Item {
    Item::V2(
        LogRecord {
            server_id: id,
            seq,
            user: user.to_owned().into(),
            operation: "REGISTER".into(),
            datetime: "17/12/2014 13:20:35".into(),
            result: None,
        },
        false,
    )
}

/// The bytes of each kind of stored line, pinned: the audit file is read by
/// other tools, so a change of its serializer must not change them.
#[test]
fn stored_lines_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut s = Store::open(&path, Console::silent()).unwrap();
    let v3 = match v2(0xab, 7, "al\"ice") {
        Item::V2(r, _) => Item::V2(
            LogRecord {
                result: Some(-1),
                ..r
            },
            true,
        ),
        other => other,
    };
    let items = [
        Item::V1("hello\tworld\n".into()),
        Item::Fields(Fields::new(
            1,
            logrpc::PROC_LOG,
            &[logrpc::ArgValue::Text("bob".into())],
        )),
        Item::Fields(Fields::new(
            3,
            2,
            &[
                logrpc::ArgValue::Text("bob".into()),
                logrpc::ArgValue::Int(-4),
            ],
        )),
        v2(u64::MAX, 1, "carol"),
        v3,
    ];
    assert_eq!(store(&mut s, &items), [LOG_STORED; 5]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        concat!(
            r#"{"version":1,"text":"hello\tworld\n"}"#,
            "\n",
            r#"{"version":1,"text":"bob"}"#,
            "\n",
            r#"{"version":3,"text":"bob    -4","fields":["bob","-4"],"procedure":2}"#,
            "\n",
            r#"{"version":2,"server":"ffffffffffffffff","seq":1,"user":"carol","operation":"REGISTER","datetime":"17/12/2014 13:20:35"}"#,
            "\n",
            r#"{"version":3,"server":"00000000000000ab","seq":7,"via":"udp","user":"al\"ice","operation":"REGISTER","datetime":"17/12/2014 13:20:35","result":-1}"#,
            "\n",
        )
    );
}

#[test]
fn duplicates_are_acknowledged_once_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(
        store(
            &mut s,
            &[v2(1, 1, "a"), v2(1, 2, "b"), v2(1, 2, "b"), v2(2, 1, "c")]
        ),
        [LOG_STORED, LOG_STORED, LOG_DUPLICATE, LOG_STORED]
    );
    drop(s);
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(
        store(&mut s, &[v2(1, 1, "a"), v2(1, 3, "d"), v2(2, 1, "c")]),
        [LOG_DUPLICATE, LOG_STORED, LOG_DUPLICATE]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let users: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<AuditLine>(l)
                .unwrap()
                .user
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(users, ["a", "b", "c", "d"]);
}

#[test]
fn a_line_cut_by_a_crash_does_not_swallow_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "{\"version\":2,\"serv").unwrap();
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(store(&mut s, &[v2(5, 1, "x")]), [LOG_STORED]);
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap();
    let a: AuditLine = serde_json::from_str(last).unwrap();
    assert_eq!(a.seq, Some(1));
    assert_eq!(a.server, Some(ServerId(5)));
}

#[test]
fn v1_lines_keep_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(
        store(&mut s, &[Item::V1("hello world".into())]),
        [LOG_STORED]
    );
    let a: AuditLine =
        serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    assert_eq!(a.version, 1);
    assert_eq!(a.text.as_deref(), Some("hello world"));
}

#[test]
fn version_3_records_keep_their_result_and_print_failures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut s = Store::open(&path, Console::silent()).unwrap();
    let v3 = |seq, result| match v2(4, seq, "alice") {
        Item::V2(r, udp) => Item::V2(
            LogRecord {
                result: Some(result),
                ..r
            },
            udp,
        ),
        other => other,
    };
    assert_eq!(
        store(&mut s, &[v3(1, 0), v3(2, 2), v2(4, 3, "alice"), v3(3, 0)]),
        [LOG_STORED, LOG_STORED, LOG_STORED, LOG_DUPLICATE]
    );
    assert_eq!(
        s.lines,
        "alice    REGISTER    17/12/2014 13:20:35\n\
             alice    REGISTER    17/12/2014 13:20:35    FAIL 2 ERROR\n\
             alice    REGISTER    17/12/2014 13:20:35"
    );
    let lines: Vec<AuditLine> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<_> = lines.iter().map(|a| (a.version, a.result)).collect();
    assert_eq!(got, [(3, Some(0)), (3, Some(2)), (2, None)]);
}

fn over_udp(item: Item) -> Item {
    match item {
        Item::V2(r, _) => Item::V2(r, true),
        other => other,
    }
}

#[test]
fn forged_records_cannot_turn_real_ones_into_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(store(&mut s, &[v2(9, 1, "real")]), [LOG_STORED]);
    // A datagram for a server that speaks TCP, even in the window; a jump far
    // past the window, over either transport.
    assert_eq!(
        store(
            &mut s,
            &[
                over_udp(v2(9, 2, "forged")),
                over_udp(v2(9, u64::MAX, "forged")),
                v2(9, u64::MAX, "forged"),
                v2(9, 2 + SEQ_WINDOW, "forged"),
            ]
        ),
        [LOG_REFUSED; 4]
    );
    assert_eq!(
        store(&mut s, &[v2(9, 2, "real"), v2(9, 1 + SEQ_WINDOW, "real")]),
        [LOG_STORED, LOG_STORED]
    );
    // Unknown servers: any seq over TCP (a spool outliving the audit file),
    // only a small one over UDP; UDP senders keep UDP, and the rules survive
    // a restart.
    assert_eq!(
        store(
            &mut s,
            &[
                v2(10, 1 << 40, "real"),
                over_udp(v2(11, 1 << 40, "forged")),
                over_udp(v2(11, 3, "udp")),
                over_udp(v2(11, 4, "udp")),
            ]
        ),
        [LOG_STORED, LOG_REFUSED, LOG_STORED, LOG_STORED]
    );
    drop(s);
    let mut s = Store::open(&path, Console::silent()).unwrap();
    assert_eq!(
        store(
            &mut s,
            &[
                over_udp(v2(9, 3 + SEQ_WINDOW, "forged")),
                over_udp(v2(11, 5, "udp")),
                v2(11, 6, "tcp"),
                over_udp(v2(11, 7, "forged")),
            ]
        ),
        [LOG_REFUSED, LOG_STORED, LOG_STORED, LOG_REFUSED]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("forged"), "{text}");
}
