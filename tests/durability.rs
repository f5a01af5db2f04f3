//! The durable registry, with real server processes: SIGKILL at random moments
//! under concurrent load, torn journal writes, corrupt files, compaction.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const OBSERVER: &str = "observer";

/// A small xorshift generator: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    s | 1
}

/// Starts a server on `dir` (port 0: every restart reads its new address).
fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--data-dir",
        dir.to_str().unwrap(),
        "--quiet",
        "--no-logger",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct UserModel {
    /// Port when connected.
    connected: Option<u16>,
    /// (file, description) in publication order.
    files: Vec<(String, String)>,
}

/// Registered users and their state.
type Model = BTreeMap<String, UserModel>;

#[derive(Clone, Debug)]
enum Op {
    Register(String),
    Unregister(String),
    Connect(String, u16),
    Disconnect(String),
    Publish(String, String, String),
    Delete(String, String),
}

impl Op {
    fn fields(&self) -> Vec<&str> {
        match self {
            Op::Register(u) => vec!["REGISTER", u],
            Op::Unregister(u) => vec!["UNREGISTER", u],
            Op::Connect(u, _) => vec!["CONNECT", u],
            Op::Disconnect(u) => vec!["DISCONNECT", u],
            Op::Publish(u, f, d) => vec!["PUBLISH", u, f, d],
            Op::Delete(u, f) => vec!["DELETE", u, f],
        }
    }

    /// The request bytes: OP, DATETIME, USER, arguments.
    fn request(&self) -> Vec<u8> {
        let mut parts = self.fields();
        let port;
        if let Op::Connect(_, p) = self {
            port = p.to_string();
            parts.push(&port);
        }
        parts.insert(1, "22/11/2026 02:00:00");
        fields(&parts)
    }

    /// The result code the protocol gives this operation on `model`, and the model
    /// after it.
    fn run(&self, model: &Model) -> (u8, Model) {
        let mut m = model.clone();
        let code = match self {
            Op::Register(u) => {
                if m.contains_key(u) {
                    1
                } else {
                    m.insert(u.clone(), UserModel::default());
                    0
                }
            }
            Op::Unregister(u) => match m.get(u) {
                None => 1,
                Some(s) if s.connected.is_some() => 2,
                Some(_) => {
                    m.remove(u);
                    0
                }
            },
            Op::Connect(u, p) => match m.get_mut(u) {
                None => 1,
                Some(s) if s.connected.is_some() => 2,
                Some(s) => {
                    s.connected = Some(*p);
                    0
                }
            },
            Op::Disconnect(u) => match m.get_mut(u) {
                None => 1,
                Some(s) if s.connected.is_none() => 2,
                Some(s) => {
                    s.connected = None;
                    0
                }
            },
            Op::Publish(u, f, d) => match m.get_mut(u) {
                None => 1,
                Some(s) if s.connected.is_none() => 2,
                Some(s) if s.files.iter().any(|(g, _)| g == f) => 3,
                Some(s) => {
                    s.files.push((f.clone(), d.clone()));
                    0
                }
            },
            Op::Delete(u, f) => match m.get_mut(u) {
                None => 1,
                Some(s) if s.connected.is_none() => 2,
                Some(s) if !s.files.iter().any(|(g, _)| g == f) => 3,
                Some(s) => {
                    s.files.retain(|(g, _)| g != f);
                    0
                }
            },
        };
        (code, if code == 0 { m } else { model.clone() })
    }
}

/// Sends one request; `None` when no result byte came back (server killed).
fn try_code(addr: SocketAddr, request: &[u8]) -> Option<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(request).ok()?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).ok()?;
    Some(b[0])
}

/// The state of `users` as the server shows it (LIST_USERS and LIST_CONTENT of each),
/// asked as the connected OBSERVER.
fn observe(addr: SocketAddr, users: &[String]) -> Model {
    let listed = list_fields(&call(addr, &["LIST_USERS", OBSERVER]));
    let mut ports = BTreeMap::new();
    let n: usize = listed[0].parse().unwrap();
    assert_eq!(listed.len(), 1 + 3 * n, "LIST_USERS shape");
    for e in listed[1..].chunks(3) {
        assert_eq!(e[1], "127.0.0.1");
        ports.insert(e[0].clone(), e[2].parse::<u16>().unwrap());
    }
    let mut model = Model::new();
    for u in users {
        let reply = call(addr, &["LIST_CONTENT", OBSERVER, u]);
        if reply == [3] {
            assert!(
                !ports.contains_key(u),
                "{u} listed as connected but not registered"
            );
            continue;
        }
        let f = list_fields(&reply);
        let n: usize = f[0].parse().unwrap();
        assert_eq!(f.len(), 1 + 2 * n, "LIST_CONTENT shape");
        let files = f[1..]
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        model.insert(
            u.clone(),
            UserModel {
                connected: ports.get(u).copied(),
                files,
            },
        );
    }
    model
}

fn setup_observer(addr: SocketAddr) {
    assert_eq!(code(addr, &["REGISTER", OBSERVER]), 0);
    assert_eq!(code(addr, &["CONNECT", OBSERVER, "1"]), 0);
}

const THREADS: usize = 16;
const USERS_PER_THREAD: usize = 4;
const FILES_PER_USER: u64 = 4;
const KILLS: usize = 20;

/// A random operation on one of thread `t`'s users, biased towards ones that apply.
fn pick(model: &Model, rng: &mut Rng, t: usize) -> Op {
    let u = format!("t{t}u{}", rng.below(USERS_PER_THREAD as u64));
    let f = format!("file-{}.txt", rng.below(FILES_PER_USER));
    let roll = rng.below(100);
    match model.get(&u) {
        None if roll < 90 => Op::Register(u),
        None => Op::Publish(u, f, "nobody".into()),
        Some(s) if s.connected.is_none() => match roll {
            0..60 => Op::Connect(u, 1024 + rng.below(60000) as u16),
            60..80 => Op::Unregister(u),
            80..90 => Op::Register(u),
            _ => Op::Disconnect(u),
        },
        Some(_) => match roll {
            0..50 => Op::Publish(u, f, format!("about {} copy", rng.below(1000))),
            50..80 => Op::Delete(u, f),
            80..92 => Op::Disconnect(u),
            _ => Op::Unregister(u),
        },
    }
}

/// One client thread: runs operations until the server stops answering. Returns its
/// model and the operation in flight when the server died (applied or not).
fn client(addr: SocketAddr, t: usize, mut model: Model, seed: u64) -> (Model, Option<Op>, u64) {
    let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut done = 0;
    loop {
        let op = pick(&model, &mut rng, t);
        let (expected, after) = op.run(&model);
        match try_code(addr, &op.request()) {
            Some(code) => {
                assert_eq!(code, expected, "thread {t}: {op:?} on {model:?}");
                model = after;
                done += 1;
            }
            None => return (model, Some(op), done),
        }
    }
}

#[test]
fn acknowledged_changes_survive_sigkill_under_load() {
    let seed = seed();
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<Vec<String>> = (0..THREADS)
        .map(|t| (0..USERS_PER_THREAD).map(|k| format!("t{t}u{k}")).collect())
        .collect();
    let everyone: Vec<String> = users.iter().flatten().cloned().collect();
    let mut models: Vec<Model> = vec![Model::new(); THREADS];
    let mut in_flight: Vec<Option<Op>> = vec![None; THREADS];
    let mut total = 0;
    let started = Instant::now();
    for round in 0..=KILLS {
        // Odd rounds acknowledge after a group fsync; both must survive SIGKILL.
        let extra: &[&str] = if round % 2 == 1 {
            &["--fsync", "--compact-after", "3000"]
        } else {
            &["--compact-after", "3000"]
        };
        let mut server = start(dir.path(), extra);
        let addr = server.addr;
        if round == 0 {
            setup_observer(addr);
        }
        // After every restart the registry equals the model, up to the one operation
        // per thread that was in flight at the kill: applied entirely or not at all.
        let observed = observe(addr, &everyone);
        for t in 0..THREADS {
            let seen: Model = observed
                .iter()
                .filter(|(u, _)| users[t].contains(u))
                .map(|(u, s)| (u.clone(), s.clone()))
                .collect();
            let with_op = in_flight[t].as_ref().map(|op| op.run(&models[t]).1);
            assert!(
                seen == models[t] || Some(&seen) == with_op.as_ref(),
                "round {round}, thread {t} (seed {seed}): server has {seen:?}\nmodel {:?}\nin flight {:?}",
                models[t],
                in_flight[t]
            );
            models[t] = seen;
            in_flight[t] = None;
        }
        if round == KILLS {
            break;
        }
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let model = models[t].clone();
                let s = seed.wrapping_add(round as u64 * 1000);
                thread::spawn(move || client(addr, t, model, s))
            })
            .collect();
        // A random moment in the clients' run to kill the server at (seeded, so a
        // failure can be replayed): the point of the test, not a wait.
        thread::sleep(Duration::from_millis(20 + rng.below(180)));
        server.proc.child.kill().unwrap();
        let _ = server.proc.child.wait();
        for (t, h) in handles.into_iter().enumerate() {
            let (model, op, done) = h.join().expect("client thread");
            models[t] = model;
            in_flight[t] = op;
            total += done;
        }
    }
    eprintln!(
        "crash test: {KILLS} kills, {total} acknowledged operations, {:?}",
        started.elapsed()
    );
    assert!(total > 0, "no operation was acknowledged");
    // Compactions happened along the way (so kills also hit them).
    assert!(files_in(dir.path()).contains(&"snapshot.jsonl".to_string()));
    // The state held real content at the end.
    assert!(models.iter().any(|m| !m.is_empty()));
}

/// Names and sizes of the data directory's files.
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn torn_last_record_is_dropped_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &[]);
    setup_observer(server.addr);
    for f in ["a.txt", "b.txt"] {
        assert_eq!(code(server.addr, &["PUBLISH", OBSERVER, f, "kept"]), 0);
    }
    assert_eq!(
        code(
            server.addr,
            &["PUBLISH", OBSERVER, "last.txt", "the last one"]
        ),
        0
    );
    server.proc.child.kill().unwrap();
    let _ = server.proc.child.wait();
    drop(server);
    let journal = dir.path().join("journal.0.jsonl");
    let full = std::fs::read(&journal).unwrap();
    assert!(full.ends_with(b"\n"));
    let start_of_last = full[..full.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let expect_without = vec![
        ("a.txt".to_string(), "kept".to_string()),
        ("b.txt".to_string(), "kept".to_string()),
    ];
    let mut expect_with = expect_without.clone();
    expect_with.push(("last.txt".into(), "the last one".into()));
    for cut in start_of_last..=full.len() {
        std::fs::write(&journal, &full[..cut]).unwrap();
        let server = start(dir.path(), &[]);
        let seen = observe(server.addr, &[OBSERVER.to_string()]);
        let files = &seen[OBSERVER].files;
        if cut == full.len() {
            assert_eq!(files, &expect_with, "whole journal");
        } else {
            assert_eq!(
                files,
                &expect_without,
                "journal cut at byte {cut} of {}",
                full.len()
            );
            // The torn bytes are gone from the file.
            assert_eq!(
                std::fs::metadata(&journal).unwrap().len(),
                start_of_last as u64
            );
        }
        assert_eq!(seen[OBSERVER].connected, Some(1));
        drop(server);
    }
}

/// Starts a server that must refuse to start; returns its stderr.
fn failed_start(dir: &Path) -> String {
    let run = run_to_exit(
        Command::new(bin())
            .args([
                "server",
                "-p",
                "0",
                "--bind",
                "127.0.0.1",
                "--no-logger",
                "--data-dir",
            ])
            .arg(dir),
        Duration::from_secs(10),
        "the server started on corrupt data",
    )
    .unwrap();
    assert!(
        !run.status.success(),
        "exit status {}; stderr {}",
        run.status,
        run.stderr
    );
    run.stderr
}

#[test]
fn corruption_stops_the_start_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.0.jsonl");
    let good = concat!(
        r#"{"REGISTER":{"user":"alice"}}"#,
        "\n",
        r#"{"REGISTER":{"user":"bob"}}"#,
        "\n",
        r#"{"CONNECT":{"user":"bob","ip":"10.0.0.2","port":4000}}"#,
        "\n",
    );
    // Garbage in the middle (not the last line).
    std::fs::write(
        &journal,
        good.replace(r#"{"REGISTER":{"user":"bob"}}"#, "{\"REGIS"),
    )
    .unwrap();
    let err = failed_start(dir.path());
    assert!(err.contains("journal.0.jsonl:2:"), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");

    // A well-formed record that does not apply to the state before it.
    let twice = format!(
        "{good}{}\n{}\n",
        r#"{"REGISTER":{"user":"alice"}}"#, r#"{"DISCONNECT":{"user":"bob"}}"#
    );
    std::fs::write(&journal, twice).unwrap();
    let err = failed_start(dir.path());
    assert!(err.contains("journal.0.jsonl:4:"), "{err}");

    // A damaged snapshot.
    std::fs::write(&journal, "").unwrap();
    std::fs::write(
        dir.path().join("snapshot.jsonl"),
        "{\"peerdex_snapshot\":1,\"generation\":0,\"users\":2}\n{\"user\":\"a\",\"peer\":null,\"files\":{}}\n",
    )
    .unwrap();
    let err = failed_start(dir.path());
    assert!(err.contains("snapshot.jsonl:3:"), "{err}");

    // Repaired: the same directory starts and holds the journal's state.
    std::fs::remove_file(dir.path().join("snapshot.jsonl")).unwrap();
    std::fs::write(&journal, good).unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(code(s.addr, &["REGISTER", "bob"]), 1);
    // bob is connected from 10.0.0.2: a CONNECT from here is refused (other error).
    assert_eq!(code(s.addr, &["CONNECT", "bob", "5"]), 3);
}

/// Issue 14: a complete last line (it ends in its newline) that does not parse was
/// damaged after it was written, not torn by a crash: the server refuses to start,
/// naming file and line, instead of dropping an acknowledged change.
#[test]
fn a_corrupt_complete_last_line_is_not_taken_for_a_torn_one() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.0.jsonl");
    let good = concat!(
        r#"{"REGISTER":{"user":"alice"}}"#,
        "\n",
        r#"{"REGISTER":{"user":"bob"}}"#,
        "\n",
    );
    // A flipped byte in the last line; its newline is intact.
    let flipped = good.replace(
        r#"{"REGISTER":{"user":"bob"}}"#,
        r#"{"REGISTER":{"user":"bob"]}"#,
    );
    std::fs::write(&journal, &flipped).unwrap();
    let err = failed_start(dir.path());
    assert!(err.contains("journal.0.jsonl:2:"), "{err}");
    assert!(err.contains("corrupt"), "{err}");
    // Nothing was cut from the file.
    assert_eq!(std::fs::read(&journal).unwrap(), flipped.as_bytes());

    // The same line without its newline is a torn write: dropped, the server starts.
    std::fs::write(&journal, &flipped[..flipped.len() - 1]).unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 1);
    assert_eq!(code(s.addr, &["REGISTER", "bob"]), 0);
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = start(dir.path(), &[]);
    let err = failed_start(dir.path());
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn restart_after_compaction_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--compact-after", "2000"]);
    let addr = server.addr;
    setup_observer(addr);
    let mut model = Model::new();
    model.insert(
        OBSERVER.into(),
        UserModel {
            connected: Some(1),
            files: vec![],
        },
    );
    let mut rng = Rng(seed());
    for _ in 0..600 {
        let t = rng.below(10) as usize;
        let op = pick(&model, &mut rng, t);
        let (expected, after) = op.run(&model);
        let got = try_code(addr, &op.request()).expect("reply");
        assert_eq!(got, expected, "{op:?}");
        model = after;
    }
    let everyone: Vec<String> = model
        .keys()
        .cloned()
        .chain((0..10).flat_map(|t| (0..USERS_PER_THREAD).map(move |k| format!("t{t}u{k}"))))
        .collect();
    let before = observe(addr, &everyone);
    assert_eq!(before, model);
    let names = files_in(dir.path());
    assert!(names.contains(&"snapshot.jsonl".to_string()), "{names:?}");
    assert!(
        !names.contains(&"journal.0.jsonl".to_string()),
        "journal 0 compacted away: {names:?}"
    );
    server.proc.child.kill().unwrap();
    let _ = server.proc.child.wait();
    drop(server);

    // Leftovers of interrupted compactions: a half-written snapshot and a journal
    // the snapshot already covers (garbage here, so replaying it would fail).
    std::fs::write(dir.path().join("snapshot.jsonl.tmp"), "half").unwrap();
    std::fs::write(dir.path().join("journal.0.jsonl"), "not a change\n").unwrap();
    let server = start(dir.path(), &[]);
    assert_eq!(observe(server.addr, &everyone), model);
    let names = files_in(dir.path());
    assert!(
        !names.contains(&"snapshot.jsonl.tmp".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"journal.0.jsonl".to_string()), "{names:?}");
    // Restarting again (graceful stop this time) still gives the same state.
    server.proc.signal("INT");
    let mut server = server;
    assert!(server.proc.wait_exit(Duration::from_secs(15)).is_some());
    drop(server);
    let server = start(dir.path(), &[]);
    assert_eq!(observe(server.addr, &everyone), model);
}

#[test]
fn ephemeral_starts_empty_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let s = Server::start(&["--ephemeral", "--no-logger"]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 0);
    drop(s);
    let s = Server::start(&["--ephemeral", "--no-logger"]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 0);
    assert!(!data.exists());
    // And with a data directory, the start line says where the data is.
    let s = start(&data, &[]);
    let line = s
        .proc
        .wait_err_line(Duration::from_secs(5), |l| l.starts_with("peerdex: data: "))
        .expect("data line");
    assert!(line.contains(data.to_str().unwrap()), "{line}");
}
