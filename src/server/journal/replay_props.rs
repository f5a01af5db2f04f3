use super::*;
use crate::server::registry::Registry;
use proptest::prelude::*;

/// Changes over a handful of users and files, so that most of them apply.
fn change() -> impl Strategy<Value = Change> {
    let user = (0..4u8).prop_map(|u| format!("u{u}"));
    let file = (0..3u8).prop_map(|f| format!("f{f}"));
    prop_oneof![
        user.clone().prop_map(|user| Change::Register { user }),
        user.clone().prop_map(|user| Change::Unregister { user }),
        (user.clone(), 1..5u16).prop_map(|(user, port)| Change::Connect {
            user,
            ip: "10.0.0.1".parse().unwrap(),
            port,
        }),
        user.clone().prop_map(|user| Change::Disconnect { user }),
        (user.clone(), file.clone(), "[a-z \"\\\\]{0,6}").prop_map(|(user, file, description)| {
            Change::Publish {
                user,
                file,
                description,
            }
        }),
        (user, file).prop_map(|(user, file)| Change::Delete { user, file }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Reopening a data directory gives exactly the state of an in-memory
    /// registry that saw the same changes, with and without compactions (a tiny
    /// threshold compacts many times) and with reopenings in between.
    #[test]
    fn reopen_equals_memory(
        changes in proptest::collection::vec(change(), 0..120),
        compact_after in prop_oneof![Just(64u64), Just(1u64 << 30)],
        reopen_every in 10usize..60,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { fsync: false, compact_after };
        let memory = Registry::new();
        let mut durable = Registry::open(dir.path(), opts).unwrap().0;
        for (i, c) in changes.iter().enumerate() {
            prop_assert_eq!(durable.apply(c), memory.apply(c), "{:?}", c);
            if i % reopen_every == reopen_every - 1 {
                drop(durable);
                durable = Registry::open(dir.path(), opts).unwrap().0;
            }
        }
        drop(durable);
        let (reopened, _) = Registry::open(dir.path(), opts).unwrap();
        prop_assert_eq!(reopened.dump(), memory.dump());
    }
}
