use super::*;

fn req(user: &str, body: Body) -> Request {
    Request {
        datetime: Some("01/02/2025 10:11:12".into()),
        user: user.into(),
        body,
    }
}

/// The JSON of an SSE frame `id: E-N\ndata: {...}\n\n`.
fn data(frame: &str) -> serde_json::Value {
    let line = frame
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    serde_json::from_str(line).unwrap()
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_never_blocks() {
    let hub = Hub::new();
    let sub = hub.subscribe(None).unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..EVENT_QUEUE {
        hub.answered(&req("a", Body::Register), 0, lo, Instant::now());
    }
    assert_eq!(hub.clients.load(Ordering::SeqCst), 1);
    hub.answered(&req("a", Body::Register), 1, lo, Instant::now());
    assert_eq!(hub.clients.load(Ordering::SeqCst), 0, "dropped when full");
    assert_eq!(sub.events.len(), EVENT_QUEUE);
    drop(sub);
    let (op, total, by) = hub.counters().requests[0];
    assert_eq!((op, total), (Op::Register, EVENT_QUEUE as u64 + 1));
    assert_eq!(by[..2], [EVENT_QUEUE as u64, 1]);
}

#[test]
fn events_carry_the_operation_details() {
    let hub = Hub::new();
    let sub = hub.subscribe(None).unwrap();
    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    hub.answered(
        &req("a", Body::Connect { port: 4000 }),
        0,
        ip,
        Instant::now(),
    );
    hub.answered(
        &req(
            "a",
            Body::Publish {
                file: "f.txt".into(),
                description: "d".into(),
            },
        ),
        0,
        ip,
        Instant::now(),
    );
    hub.answered(
        &req(
            "a",
            Body::Search {
                pattern: "f".into(),
            },
        ),
        0,
        ip,
        Instant::now(),
    );
    let got: Vec<serde_json::Value> = sub.events.try_iter().map(|f| data(&f)).collect();
    assert_eq!(
        got[0],
        serde_json::json!({"op":"CONNECT","user":"a","datetime":"01/02/2025 10:11:12","code":0,"addr":"10.0.0.7:4000"})
    );
    assert_eq!(got[1]["file"], "f.txt");
    assert_eq!(got[2]["pattern"], "f");
    assert!(hub.connected_since("a").unwrap().ends_with('Z'));
}

#[test]
fn clients_are_capped_and_leave_on_drop() {
    let hub = Hub::new();
    let subs: Vec<_> = (0..MAX_EVENT_CLIENTS)
        .map(|_| hub.subscribe(None).unwrap())
        .collect();
    assert!(hub.subscribe(None).is_none());
    drop(subs);
    assert_eq!(hub.clients.load(Ordering::SeqCst), 0);
    let sub = hub.subscribe(None).unwrap();
    hub.close();
    assert!(sub.events.recv().is_err(), "closing ends the stream");
    assert!(hub.subscribe(None).is_none());
}

#[test]
fn the_rate_is_the_mean_over_the_filled_window() {
    let hub = Hub::new();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    for _ in 0..10 {
        hub.answered(&req("a", Body::ListUsers), 0, lo, Instant::now());
    }
    hub.tick();
    hub.tick();
    assert_eq!(hub.counters().per_second, 5.0);
}
