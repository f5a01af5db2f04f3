use super::*;
use std::io::Read;

/// A connection cap of one, held by a first connection, and a second connection
/// accepted (not yet admitted). The clients' ends are returned to stay open.
struct OneTaken {
    limiter: Arc<ConnLimiter>,
    shutdown: Shutdown,
    s1: TcpStream,
    p1: Permit,
    s2: TcpStream,
    _clients: (TcpStream, TcpStream),
}

fn one_taken() -> OneTaken {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let limiter = ConnLimiter::new(1);
    let shutdown = Shutdown::new();
    let c1 = TcpStream::connect(addr).unwrap();
    let (s1, _) = listener.accept().unwrap();
    let p1 = limiter.acquire(&s1, &shutdown).unwrap();
    let c2 = TcpStream::connect(addr).unwrap();
    let (s2, _) = listener.accept().unwrap();
    OneTaken {
        limiter,
        shutdown,
        s1,
        p1,
        s2,
        _clients: (c1, c2),
    }
}

#[test]
fn limiter_evicts_the_oldest_idle_connection() {
    let OneTaken {
        limiter,
        shutdown,
        s1,
        p1,
        s2,
        _clients,
    } = one_taken();
    // The evicted connection sees end of stream; releasing its permit lets the
    // second one in.
    let reader = thread::spawn(move || {
        let mut s1 = s1;
        let mut buf = [0u8; 1];
        let n = s1.read(&mut buf).unwrap_or(0);
        drop(p1);
        n
    });
    let p2 = limiter.acquire(&s2, &shutdown).unwrap();
    assert_eq!(reader.join().unwrap(), 0);
    assert_eq!(limiter.active(), 1);
    drop(p2);
    assert!(limiter.wait_empty(Duration::from_secs(1)));
}

#[test]
fn busy_connections_are_not_evicted() {
    let OneTaken {
        limiter,
        shutdown,
        s1: _s1,
        p1,
        s2,
        _clients,
    } = one_taken();
    p1.busy();
    let waiter = {
        let limiter = Arc::clone(&limiter);
        let shutdown = shutdown.clone();
        thread::spawn(move || limiter.acquire(&s2, &shutdown).is_some())
    };
    // The waiter has tried to evict and waits for a slot; once the busy
    // connection is past its grace period, an eviction pass (the one the
    // waiter makes every 100 ms) must still leave it alone.
    assert!(wait_for(|| limiter.waiters.load(Ordering::SeqCst) == 1));
    assert!(wait_for(|| p1.slot.arrived.elapsed() > EVICT_GRACE));
    assert!(
        !limiter.evict_oldest_idle(),
        "a busy connection was evicted"
    );
    assert!(!p1.slot.evicted.load(Ordering::SeqCst));
    assert!(!waiter.is_finished());
    assert_eq!(limiter.active(), 1);
    drop(p1);
    assert!(waiter.join().unwrap());
}

/// Waits (at most 30 s) until `cond` holds; returns whether it did.
fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// The scheduler state of thread `tid` of this process ('R', 'S', ...).
fn thread_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn eviction_skips_busy_connections_and_the_arrival_list_stays_bounded() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let limiter = ConnLimiter::new(4);
    let shutdown = Shutdown::new();
    let accept = || {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let permit = limiter.acquire(&server, &shutdown).unwrap();
        (client, server, permit)
    };
    // A connection that stays idle at the front of the list, then many that
    // come, get busy and go.
    let (mut c0, s0, p0) = accept();
    for _ in 0..100 {
        let (_c, _s, p) = accept();
        p.busy();
    }
    assert!(limiter.arrivals.lock().len() <= 2 * 4 + 1);
    assert_eq!(limiter.active(), 1);
    // Full: a busy one, then two idle ones; the next arrival evicts the oldest
    // idle connection (the first), not the busy one.
    let (_c1, _s1, p1) = accept();
    p1.busy();
    let (mut c2, _s2, p2) = accept();
    let (_c3, _s3, _p3) = accept();
    assert_eq!(limiter.active(), 4);
    c0.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let waiter = {
        let limiter = Arc::clone(&limiter);
        let shutdown = shutdown.clone();
        let next = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        thread::spawn(move || (next, limiter.acquire(&server, &shutdown).is_some()))
    };
    let mut buf = [0u8; 1];
    assert_eq!(
        c0.read(&mut buf).unwrap(),
        0,
        "the oldest idle one is closed"
    );
    drop((s0, p0));
    assert!(waiter.join().unwrap().1);
    c2.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(c2.read(&mut buf).is_err(), "the second idle one stays open");
    drop(p2);
}

#[test]
fn shutdown_wakes_a_blocked_accept_loop() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let shutdown = Shutdown::new();
    shutdown.watch(&listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let limiter = ConnLimiter::new(4);
    let s = shutdown.clone();
    let (tid_tx, tid_rx) = crossbeam_channel::bounded(1);
    let (served_tx, served_rx) = crossbeam_channel::bounded(1);
    let t = thread::spawn(move || {
        // SAFETY: gettid has no preconditions and cannot fail.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        accept_loop("test", &listener, &limiter, &s, move |_, _, _| {
            let _ = served_tx.try_send(());
        });
    });
    let tid = tid_rx.recv().unwrap();
    // One connection served: the loop runs. Then it sleeps in the kernel, and
    // the only blocking call left in its loop is `accept`.
    let _c = TcpStream::connect(addr).unwrap();
    served_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(wait_for(|| thread_state(tid) == Some('S')));
    shutdown.trigger();
    t.join().unwrap();
}

#[test]
fn a_listener_drains_busy_connections_before_serve_returns() {
    let listener = Listener::bind("test", "127.0.0.1:0".parse().unwrap(), 4).unwrap();
    let addr = listener.local_addr();
    let shutdown = Shutdown::new();
    let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
    let (release, release_rx) = crossbeam_channel::bounded::<()>(1);
    let finished = Arc::new(AtomicBool::new(false));
    let server = {
        let (shutdown, finished) = (shutdown.clone(), Arc::clone(&finished));
        thread::spawn(move || {
            listener.serve(&shutdown, Duration::from_secs(30), move |_, _, permit| {
                assert!(permit.busy());
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                finished.store(true, Ordering::SeqCst);
            });
        })
    };
    let _client = TcpStream::connect(addr).unwrap();
    started.recv_timeout(Duration::from_secs(30)).unwrap();
    shutdown.trigger();
    release.send(()).unwrap();
    server.join().unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "serve returned before the drain"
    );
}

#[test]
fn connection_threads_run_and_survive_a_panicking_handler() {
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..32 {
        let tx = tx.clone();
        spawn_connection_thread(move || {
            if i == 7 {
                panic!("handler panic (expected by this test)");
            }
            tx.send(i).unwrap();
        })
        .unwrap();
    }
    drop(tx);
    let mut got: Vec<i32> = rx.iter().collect();
    got.sort_unstable();
    let want: Vec<i32> = (0..32).filter(|&i| i != 7).collect();
    assert_eq!(got, want);
}

#[test]
fn reachable_maps_unspecified_to_loopback() {
    assert_eq!(
        reachable("0.0.0.0:80".parse().unwrap()),
        "127.0.0.1:80".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        reachable("10.1.2.3:80".parse().unwrap()),
        "10.1.2.3:80".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn a_taken_port_is_said_with_its_hint_and_other_bind_errors_as_they_are() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = std::net::TcpListener::bind(taken.local_addr().unwrap()).unwrap_err();
    assert_eq!(
        bind_reason(&e, "pick one with --port"),
        "the port is already in use (pick one with --port)"
    );
    let other = io::Error::from(io::ErrorKind::PermissionDenied);
    assert_eq!(bind_reason(&other, "unused"), other.to_string());
}

#[test]
fn timeouts_are_seconds_above_0_up_to_an_hour() {
    assert_eq!(parse_seconds("0.5"), Ok(0.5));
    assert_eq!(parse_seconds("3600"), Ok(3600.0));
    for bad in ["0", "-1", "3600.5", "NaN", "inf", "x", ""] {
        assert_eq!(
            parse_seconds(bad),
            Err(format!(
                "'{bad}' is not a number of seconds between 0 and 3600"
            )),
            "{bad}"
        );
    }
}
