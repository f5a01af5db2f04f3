use super::*;
use crate::server::registry::Registry;

fn reg(user: &str) -> Change {
    Change::Register { user: user.into() }
}

#[test]
fn a_change_is_one_json_line() {
    let c = Change::Connect {
        user: "alice".into(),
        ip: "10.0.0.1".parse().unwrap(),
        port: 4000,
    };
    let line = serde_json::to_string(&c).unwrap();
    assert_eq!(
        line,
        r#"{"CONNECT":{"user":"alice","ip":"10.0.0.1","port":4000}}"#
    );
    assert_eq!(serde_json::from_str::<Change>(&line).unwrap(), c);
    assert!(serde_json::from_str::<Change>(r#"{"REGISTER":{"user":"a","x":1}}"#).is_err());
}

#[test]
fn group_commit_acknowledges_every_writer_and_replays_all() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        fsync: true,
        ..StoreOptions::default()
    };
    {
        let (r, _) = Registry::open(dir.path(), opts).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let r = &r;
                s.spawn(move || {
                    for i in 0..50 {
                        assert_eq!(r.apply(&reg(&format!("t{t}-{i}"))), 0);
                    }
                });
            }
        });
        assert_eq!(r.apply(&reg("t0-0")), 1, "a refused change");
    }
    let (r, rec) = Registry::open(dir.path(), opts).unwrap();
    assert_eq!(rec.changes, 400, "refused changes are not journaled");
    assert_eq!(r.counts(), (400, 0));
}

#[test]
fn compaction_keeps_state_and_removes_old_journals() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        fsync: false,
        compact_after: 500,
    };
    let mut expected = Vec::new();
    {
        let (r, _) = Registry::open(dir.path(), opts).unwrap();
        for i in 0..200 {
            let user = format!("u{i}");
            assert_eq!(r.apply(&reg(&user)), 0);
            let conn = Change::Connect {
                user: user.clone(),
                ip: "10.0.0.1".parse().unwrap(),
                port: 1000 + i,
            };
            assert_eq!(r.apply(&conn), 0);
            let publish = Change::Publish {
                user: user.clone(),
                file: format!("f{i}"),
                description: "d e".into(),
            };
            assert_eq!(r.apply(&publish), 0);
            if i % 3 == 0 {
                assert_eq!(r.apply(&Change::Disconnect { user }), 0);
            }
        }
        let mut out = Vec::new();
        r.list_users("u1", None, &mut out).unwrap();
        expected.push(out);
        let mut out = Vec::new();
        r.list_content("u1", "u150", None, &mut out).unwrap();
        expected.push(out);
    }
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&SNAPSHOT.to_string()), "{names:?}");
    assert!(!names.contains(&journal_name(0)), "{names:?}");
    let (r, rec) = Registry::open(dir.path(), opts).unwrap();
    assert!(rec.snapshot_users > 0);
    assert_eq!(r.counts(), (200, 200));
    let mut out = Vec::new();
    r.list_users("u1", None, &mut out).unwrap();
    assert_eq!(out, expected[0]);
    let mut out = Vec::new();
    r.list_content("u1", "u150", None, &mut out).unwrap();
    assert_eq!(out, expected[1]);
}

#[test]
fn journals_left_by_an_interrupted_compaction_are_all_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // Crash after the rotation to generation 1, before the snapshot's rename.
    fs::write(
        dir.path().join(journal_name(0)),
        "{\"REGISTER\":{\"user\":\"a\"}}\n",
    )
    .unwrap();
    fs::write(
        dir.path().join(journal_name(1)),
        "{\"REGISTER\":{\"user\":\"b\"}}\n",
    )
    .unwrap();
    fs::write(dir.path().join(SNAPSHOT_TMP), "{\"peerdex_snap").unwrap();
    {
        let (r, rec) = Registry::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!((rec.changes, r.counts()), (2, (2, 0)));
        // Two journals at start: compacted at once (joined when dropped).
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [journal_name(2), LOCK.to_string(), SNAPSHOT.to_string()]
    );
    let (r, rec) = Registry::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        (rec.snapshot_users, rec.changes, r.counts()),
        (2, 0, (2, 0))
    );
}

#[test]
fn a_missing_journal_generation_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(journal_name(0)), "").unwrap();
    fs::write(dir.path().join(journal_name(2)), "").unwrap();
    let err = Registry::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            JournalError::Corrupt {
                what: Corruption::MissingJournal { generation: 1 },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn torn_tail_only_in_the_newest_journal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(journal_name(0)),
        "{\"REGISTER\":{\"user\":\"a\"}}\n{\"REGISTER\":{\"us",
    )
    .unwrap();
    fs::write(dir.path().join(journal_name(1)), "").unwrap();
    let err = Registry::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            JournalError::Corrupt {
                line: 2,
                what: Corruption::Incomplete,
                ..
            }
        ),
        "{err}"
    );
    fs::remove_file(dir.path().join(journal_name(1))).unwrap();
    let (r, rec) = Registry::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(r.counts(), (1, 0));
    assert_eq!(rec.dropped_tail.map(|(_, line, _)| line), Some(2));
}
