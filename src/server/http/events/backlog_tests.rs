use super::*;

fn register(hub: &Hub, user: &str) {
    let req = Request {
        datetime: None,
        user: user.into(),
        body: Body::Register,
    };
    hub.answered(&req, 0, "127.0.0.1".parse().unwrap(), Instant::now());
}

fn id_of(frame: &str) -> String {
    frame
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned()
}

fn user_of(frame: &str) -> String {
    let line = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["user"].as_str().unwrap().to_owned()
}

#[test]
fn a_new_client_gets_the_last_fifty_and_the_ring_is_bounded() {
    let hub = Hub::new();
    for i in 0..BACKLOG + 10 {
        register(&hub, &format!("u{i}"));
    }
    assert_eq!(hub.feed.lock().ring.len(), BACKLOG);
    let sub = hub.subscribe(None).unwrap();
    let users: Vec<String> = sub.backlog.iter().map(|f| user_of(f)).collect();
    let want: Vec<String> = (BACKLOG + 10 - BACKLOG_ON_LOAD..BACKLOG + 10)
        .map(|i| format!("u{i}"))
        .collect();
    assert_eq!(users, want, "the last {BACKLOG_ON_LOAD}, oldest first");
}

#[test]
fn a_reconnect_gets_exactly_what_it_missed() {
    let hub = Hub::new();
    for i in 0..5 {
        register(&hub, &format!("a{i}"));
    }
    let first = hub.subscribe(None).unwrap();
    register(&hub, "live");
    let seen: Vec<Arc<str>> = first
        .backlog
        .iter()
        .cloned()
        .chain(first.events.try_iter())
        .collect();
    let last = id_of(seen.last().unwrap());
    drop(first);
    // Missed while away.
    for i in 0..3 {
        register(&hub, &format!("b{i}"));
    }
    let again = hub.subscribe(Some(&last)).unwrap();
    let users: Vec<String> = again.backlog.iter().map(|f| user_of(f)).collect();
    assert_eq!(users, ["b0", "b1", "b2"], "nothing twice, nothing lost");
    register(&hub, "after");
    let next = again.events.try_recv().unwrap();
    assert_eq!(user_of(&next), "after");
    // An id of another server run (or garbage): a fresh backlog.
    let other = hub.subscribe(Some("1-3")).unwrap();
    assert_eq!(other.backlog.len(), 10);
    let junk = hub.subscribe(Some("nonsense")).unwrap();
    assert_eq!(junk.backlog.len(), 10);
}

#[test]
fn failures_carry_their_meaning_and_the_connect_listing_is_marked() {
    let hub = Hub::new();
    let sub = hub.subscribe(None).unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let req = |user: &str, body| Request {
        datetime: None,
        user: user.into(),
        body,
    };
    let own = || Body::ListContent {
        target: "ana".into(),
    };
    hub.answered(&req("ana", Body::ListUsers), 2, lo, Instant::now());
    hub.answered(
        &req("ana", Body::Connect { port: 7 }),
        0,
        lo,
        Instant::now(),
    );
    hub.answered(&req("ana", own()), 0, lo, Instant::now());
    hub.answered(&req("ana", own()), 0, lo, Instant::now());
    let bob = Body::ListContent {
        target: "bob".into(),
    };
    hub.answered(&req("ana", bob), 3, lo, Instant::now());
    let got: Vec<serde_json::Value> = sub
        .events
        .try_iter()
        .map(|f| {
            let line = f
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_owned();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    assert_eq!(got[0]["meaning"], "USER NOT CONNECTED");
    assert!(got[1].get("meaning").is_none(), "no meaning for OK");
    assert_eq!(got[2]["auto"], "after CONNECT");
    assert_eq!(got[2]["target"], "ana");
    assert!(
        got[3].get("auto").is_none(),
        "only the first one after CONNECT"
    );
    assert_eq!(got[4]["target"], "bob");
    assert_eq!(got[4]["meaning"], "REMOTE USER DOES NOT EXIST");
    assert!(got[4].get("auto").is_none());
}
