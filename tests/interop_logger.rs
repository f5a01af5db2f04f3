//! Audit logging between peerdex and the loggers students write (issue 25 items 4, 5
//! and 7; docs/LOGGER-INTERFACE.md): rpcgen loggers of the shapes STATEMENTS.md lists,
//! built here from tests/partners/rpcgen_logger (rpcgen, gcc, libtirpc), registered
//! with the running rpcbind.
//!
//! - The peerdex index server ships to each with `--logger-interface` and
//!   `--logger-args`, and every field arrives; a wrong interface is said once as an
//!   interface mismatch with its remedy, without a reconnect loop, and the records wait
//!   in the spool until a server with the right interface sends them.
//! - rpcgen clients of each shape (void and int results) call the peerdex logger
//!   (`--program N`), decode its reply, and every field is printed and stored.
//!
//! Skips with a message when rpcgen, gcc, libtirpc or rpcbind are missing; fails
//! instead when PEERDEX_REQUIRE_SYSTEM_TESTS=1 (CI).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A LOG interface of a student's logger, and the server options that describe it.
struct Shape {
    /// The program number (its own per test process, so parallel runs never clash).
    program: u32,
    procedure: u32,
    /// LOG's result type: `void` or `int`.
    result: &'static str,
    /// build.sh's FIELDS: `string`, or the struct's fields in order.
    fields: &'static str,
    /// The server's `--logger-args` for it.
    args: &'static str,
}

/// A program number unique to this test process and `k` (each test its own:
/// tests run in parallel, and two programs of one number would take each other's
/// rpcbind registration), added to `base`.
fn numbered(base: u32, span: u32, k: u32) -> u32 {
    assert!(k < 16);
    base + (std::process::id() % span) * 16 + k
}

/// `void LOG(string) = 1` at a 0x3123xxxx program.
fn one_string(k: u32) -> Shape {
    Shape {
        program: numbered(0x3123_0000, 0x1000, k),
        procedure: 1,
        result: "void",
        fields: "string",
        args: "line",
    }
}

/// `int LOG(struct of user, operation, datetime) = 1`.
fn three_strings(k: u32) -> Shape {
    Shape {
        program: numbered(0x3123_0000, 0x1000, k),
        procedure: 1,
        result: "int",
        fields: "user,operation,datetime",
        args: "user,operation,datetime",
    }
}

/// `void LOG(struct of datetime, user, operation, file) = 2` at a small decimal
/// program number (students use 99, 55555, ...).
fn four_strings_void(k: u32) -> Shape {
    Shape {
        program: numbered(1000, 5000, k),
        procedure: 2,
        result: "void",
        fields: "datetime,user,operation,file",
        args: "datetime,user,operation,file",
    }
}

/// `int LOG(struct of operation, file, user, datetime) = 7`.
fn four_strings_int(k: u32) -> Shape {
    Shape {
        program: numbered(0x2000_2000, 0x1000, k),
        procedure: 7,
        result: "int",
        fields: "operation,file,user,datetime",
        args: "operation,file,user,datetime",
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn missing() -> Vec<String> {
    let mut out: Vec<String> = ["rpcgen", "gcc", "bash"]
        .iter()
        .filter(|t| !on_path(t))
        .map(|t| format!("`{t}` on PATH"))
        .collect();
    if !Path::new("/usr/include/tirpc/rpc/rpc.h").exists() {
        out.push("libtirpc headers (libtirpc-dev)".into());
    }
    if !support::pmap::running() {
        out.push("a running portmapper on 127.0.0.1:111 (rpcbind -w)".into());
    }
    out
}

/// Builds `shape`'s logger server and client into `dir` with build.sh.
fn build(dir: &Path, shape: &Shape) -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/partners/rpcgen_logger/build.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg(shape.program.to_string())
        .arg(shape.procedure.to_string())
        .arg(shape.result)
        .arg(shape.fields)
        .output()
        .expect("run build.sh");
    assert!(
        out.status.success(),
        "build.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_owned()
}

fn registered(program: u32) -> bool {
    support::pmap::getport(program, 1).is_some_and(|port| port != 0)
}

/// A running student logger server; stopped with SIGTERM (it unregisters) on drop.
struct Partner {
    proc: Proc,
    program: u32,
}

impl Partner {
    fn start(built: &Path, program: u32) -> Partner {
        let proc = Proc::start_with(Command::new(built.join("logger_server")).stdin(Stdio::null()));
        // rpcgen's main registers before svc_run: wait until the portmapper lists it.
        assert!(
            wait_until(Duration::from_secs(10), || registered(program)),
            "the student logger did not register program {program}"
        );
        Partner { proc, program }
    }

    /// The LOG lines it printed, without their `LOG proc=P ` prefix.
    fn records(&self) -> Vec<String> {
        self.proc
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("LOG proc=").map(str::to_owned))
            .collect()
    }

    /// Whether the process is still running (not exited, not a zombie).
    fn running(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.proc.child.id()))
            .unwrap_or_default();
        // pid (comm) STATE ...
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        !state.is_empty() && !state.starts_with('Z') && !state.starts_with('X')
    }

    /// How many TCP connections it has accepted.
    fn connections(&self) -> usize {
        self.proc
            .lines()
            .iter()
            .filter(|l| l.starts_with("connection "))
            .count()
    }

    /// Waits until it has printed every one of `want` (as `records` gives them).
    fn wait_records(&self, want: &[String]) {
        assert!(
            wait_until(Duration::from_secs(30), || {
                let got = self.records();
                want.iter().all(|w| got.contains(w))
            }),
            "the student logger printed {:?}, want {want:?}",
            self.records()
        );
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        if let Ok(Some(status)) = self.proc.child.try_wait() {
            eprintln!("the student logger had ended before the test stopped it: {status:?}");
        }
        self.proc.signal("TERM");
        let _ = self.proc.wait_exit(Duration::from_secs(10));
        if registered(self.program) {
            eprintln!("program {} still registered", self.program);
        }
    }
}

fn request(s: &Server, parts: &[&str]) {
    assert_eq!(code(s.addr, parts), 0, "{parts:?}");
}

/// The requests every shipping test makes, one of each kind of record.
fn make_requests(s: &Server, user: &str) {
    request(s, &["REGISTER", "17/12/2014 13:20:35", user]);
    request(s, &["CONNECT", "17/12/2014 13:20:36", user, "4000"]);
    request(
        s,
        &[
            "PUBLISH",
            "17/12/2014 13:20:37",
            user,
            "notes.txt",
            "my notes",
        ],
    );
    request(s, &["DELETE", "17/12/2014 13:20:38", user, "notes.txt"]);
}

/// What a student logger of `shape` prints for `make_requests(user)`:
/// `P name=value | name=value ...` per record.
fn expected_records(shape: &Shape, user: &str) -> Vec<String> {
    let records = [
        ("REGISTER", "", "17/12/2014 13:20:35"),
        ("CONNECT", "", "17/12/2014 13:20:36"),
        ("PUBLISH", "notes.txt", "17/12/2014 13:20:37"),
        ("DELETE", "notes.txt", "17/12/2014 13:20:38"),
    ];
    let with_file = shape.fields.split(',').any(|f| f == "file");
    records
        .iter()
        .map(|&(op, file, datetime)| {
            // Without a file field, the operation carries the file as printed.
            let operation = if with_file || file.is_empty() {
                op.to_owned()
            } else {
                format!("{op} {file}")
            };
            let value = |name: &str| match name {
                "user" => user.to_owned(),
                "operation" => operation.clone(),
                "file" => file.to_owned(),
                "datetime" => datetime.to_owned(),
                _ => unreachable!("{name}"),
            };
            let fields: Vec<String> = if shape.fields == "string" {
                vec![format!("string={user}    {operation}    {datetime}")]
            } else {
                shape
                    .fields
                    .split(',')
                    .map(|n| format!("{n}={}", value(n)))
                    .collect()
            };
            format!("{} {}", shape.procedure, fields.join(" | "))
        })
        .collect()
}

/// The server options that ship to `shape` through the portmapper.
fn server_options(shape: &Shape, spool: &Path) -> Vec<String> {
    vec![
        "--logger".into(),
        "127.0.0.1".into(),
        "--logger-interface".into(),
        format!("{:#x}:1:{}", shape.program, shape.procedure),
        "--logger-args".into(),
        shape.args.into(),
        "--spool".into(),
        spool.to_str().unwrap().into(),
    ]
}

fn start_server(options: &[String]) -> Server {
    let args: Vec<&str> = options.iter().map(String::as_str).collect();
    Server::start(&args)
}

/// Ships the four kinds of record to a logger of `shape`; each arrives with every
/// field, in the struct's order.
fn ships_every_field_to(test: &str, shape: Shape) {
    if !require_tools(test, &missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let built = build(&dir.path().join("logger"), &shape);
    let partner = Partner::start(&built, shape.program);
    let s = start_server(&server_options(&shape, &dir.path().join("spool")));
    make_requests(&s, "alice");
    partner.wait_records(&expected_records(&shape, "alice"));
    assert!(
        !s.proc.err_lines().iter().any(|l| l.contains("mismatch")),
        "{:?}",
        s.proc.err_lines()
    );
}

#[test]
fn the_server_ships_to_a_void_log_of_one_string() {
    ships_every_field_to("void LOG(string) shipping", one_string(1));
}

#[test]
fn the_server_ships_to_an_int_log_of_three_strings() {
    ships_every_field_to("int LOG(3 strings) shipping", three_strings(2));
}

#[test]
fn the_server_ships_to_a_void_log_of_four_strings_under_procedure_2() {
    ships_every_field_to("void LOG(4 strings) shipping", four_strings_void(3));
}

#[test]
fn the_server_ships_to_an_int_log_of_four_strings_under_procedure_7() {
    ships_every_field_to("int LOG(4 strings) shipping", four_strings_int(4));
}

/// The 2024-25 statement: the logger's host comes from `LOG_RPC_IP` (no
/// `--logger`), here with `--statement 2025` as such a lab runs it. 127.0.0.2 is
/// loopback too, but not the default `localhost`.
#[test]
fn a_2025_server_takes_the_logger_host_from_log_rpc_ip() {
    if !require_tools("LOG_RPC_IP shipping", &missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shape = three_strings(10);
    let built = build(&dir.path().join("logger"), &shape);
    let partner = Partner::start(&built, shape.program);
    let spool = dir.path().join("spool");
    let proc = Proc::start_with(
        Command::new(bin())
            .args(["server", "-p", "0", "--bind", "127.0.0.1", "--ephemeral"])
            .args(["--statement", "2025", "--spool"])
            .arg(&spool)
            .arg("--logger-interface")
            .arg(format!("{:#x}:1:{}", shape.program, shape.procedure))
            .args(["--logger-args", shape.args])
            .env("LOG_RPC_IP", "127.0.0.2")
            .env_remove("LOGGER_HOST"),
    );
    let line = proc
        .wait_line(Duration::from_secs(10), |l| {
            l.starts_with("s> init server ")
        })
        .expect("server init line");
    let s = Server {
        addr: line["s> init server ".len()..].parse().unwrap(),
        proc,
    };
    make_requests(&s, "dora");
    partner.wait_records(&expected_records(&shape, "dora"));
    // Called at LOG_RPC_IP, not at the default localhost (Linux answers all of
    // 127.0.0.0/8; rpcbind and rpcgen's server listen on every address).
    let lines = partner.proc.lines();
    let calls: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("connection "))
        .collect();
    assert!(
        !calls.is_empty() && calls.iter().all(|l| l.ends_with(" to 127.0.0.2")),
        "{lines:?}"
    );
}

/// How long a test watches a server that met a mismatch for a reconnect loop: the
/// old shipper reconnected after 0.1, 0.2, 0.4, ... s, so at least four more
/// connections would come in this window. Absence can only be seen over time.
const WATCH: Duration = Duration::from_millis(2500);

/// Starts a server with `options` (a wrong interface) and checks that it says the
/// mismatch once, naming `answer` and `remedy`, never calls the logger unreachable,
/// and does not reconnect within [`WATCH`].
fn says_mismatch_once(partner: &Partner, options: &[String], answer: &str, remedy: &str) {
    let before = partner.connections();
    let s = start_server(options);
    make_requests(&s, "bob");
    let said = s
        .proc
        .wait_err_line(Duration::from_secs(20), |l| {
            l.contains("interface mismatch")
        })
        .unwrap_or_else(|| panic!("no mismatch said: {:?}", s.proc.err_lines()));
    assert!(said.contains(answer), "{said}");
    assert!(said.contains(remedy), "{said}");
    assert!(said.contains("wait in the spool"), "{said}");
    let at = Instant::now();
    // One more record while it waits: it joins the spool, no new attempt. The
    // next server sends the five in one pipelined batch.
    request(&s, &["LIST_USERS", "17/12/2014 13:20:39", "bob"]);
    while at.elapsed() < WATCH {
        std::thread::sleep(Duration::from_millis(100)); // observation window, see WATCH
    }
    let errs = s.proc.err_lines();
    assert_eq!(
        errs.iter()
            .filter(|l| l.contains("interface mismatch"))
            .count(),
        1,
        "{errs:?}"
    );
    assert!(!errs.iter().any(|l| l.contains("unreachable")), "{errs:?}");
    assert_eq!(
        partner.connections(),
        before + 1,
        "connections at the logger: {:?}",
        partner.proc.lines()
    );
    assert!(partner.records().is_empty(), "{:?}", partner.records());
    s.proc.signal("INT");
    let mut s = s;
    assert!(
        s.proc.wait_exit(Duration::from_secs(20)).is_some(),
        "server exit"
    );
    // The server left no reply unread when it gave up the connection: an rpcgen
    // server writing into a reset connection dies of SIGPIPE.
    assert!(
        partner.running(),
        "the student logger died after a {answer}: {:?}",
        partner.proc.lines()
    );
}

#[test]
fn a_wrong_interface_is_said_once_and_the_spool_arrives_after_a_restart_with_the_right_one() {
    if !require_tools("logger interface mismatch test", &missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shape = four_strings_void(5);
    let built = build(&dir.path().join("logger"), &shape);
    let partner = Partner::start(&built, shape.program);
    let spool = dir.path().join("spool");
    let right = server_options(&shape, &spool);
    let with = |at: usize, value: String| {
        let mut o = right.clone();
        o[at] = value;
        o
    };
    let p = shape.program;
    // One string where it takes four: GARBAGE_ARGS.
    says_mismatch_once(
        &partner,
        &with(5, "line".into()),
        "GARBAGE_ARGS",
        "--logger-args",
    );
    // Procedure 1 where LOG is 2: PROC_UNAVAIL.
    says_mismatch_once(
        &partner,
        &with(3, format!("{p:#x}:1:1")),
        "PROC_UNAVAIL",
        "--logger-proc",
    );
    // Version 2 where it has only 1: PROG_MISMATCH.
    says_mismatch_once(
        &partner,
        &with(3, format!("{p:#x}:2:2")),
        "PROG_MISMATCH",
        "--logger-version",
    );
    // The same spool behind the right interface: everything arrives, in order.
    let s = start_server(&right);
    let mut want = Vec::new();
    for _ in 0..3 {
        want.extend(expected_records(&shape, "bob"));
        want.push(format!(
            "{} datetime=17/12/2014 13:20:39 | user=bob | operation=LIST_USERS | file=",
            shape.procedure
        ));
    }
    make_requests(&s, "carol");
    want.extend(expected_records(&shape, "carol"));
    partner.wait_records(&want);
    assert_eq!(partner.records(), want);
}

// ---- The other way: students' rpcgen clients call the peerdex logger ----

/// A registered peerdex logger for `program`, storing into `audit`.
fn peerdex_logger(program: u32, audit: &Path) -> Logger {
    let l = Logger::start(&[
        "--program",
        &program.to_string(),
        "--audit",
        audit.to_str().unwrap(),
    ]);
    l.proc
        .wait_line(Duration::from_secs(10), |x| x.starts_with("l> registered"))
        .unwrap_or_else(|| panic!("logger did not register: {:?}", l.proc.lines()));
    l
}

/// Runs the student client: one LOG call with `values`; returns its stdout.
fn student_call(built: &Path, proto: &str, values: &[&str]) -> String {
    let done = run_to_exit(
        Command::new(built.join("logger_client"))
            .args(["localhost", proto])
            .args(values),
        Duration::from_secs(30),
        "the student's LOG client",
    )
    .unwrap();
    assert!(
        done.status.success(),
        "the student's client failed over {proto}: {}",
        done.stderr
    );
    done.stdout.trim().to_owned()
}

/// The audit file's JSON lines.
fn audit_lines(audit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit JSON"))
        .collect()
}

/// A student client of `shape` calls the peerdex logger over TCP and UDP: the reply
/// decodes as its result type, the logger prints every value on one line, says once
/// what it received, and stores every value in order.
fn student_client_is_stored(test: &str, shape: Shape) {
    if !require_tools(test, &missing()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let built = build(&dir.path().join("logger"), &shape);
    let audit = dir.path().join("audit.jsonl");
    let mut l = peerdex_logger(shape.program, &audit);
    let n = shape.fields.split(',').count();
    let values: &[&str] = if n == 1 {
        &["alice    PUBLISH notes.txt    17/12/2014 13:20:35"]
    } else {
        &["alice", "PUBLISH", "notes.txt", "17/12/2014 13:20:35"][..n]
    };
    let answer = if shape.result == "int" {
        "result 0"
    } else {
        "done"
    };
    for proto in ["tcp", "udp"] {
        assert_eq!(student_call(&built, proto, values), answer, "{proto}");
    }
    let line = values.join("    ");
    assert!(
        wait_until(Duration::from_secs(10), || count_lines(&l.proc, &line) == 2),
        "want {line:?} twice in {:?}",
        l.proc.lines()
    );
    if shape.fields != "string" || shape.procedure != 1 {
        let said = format!(
            "l> received LOG calls of version 1 procedure {} with {}",
            shape.procedure,
            if n == 1 {
                "a string".to_owned()
            } else {
                format!("{n} strings")
            }
        );
        let lines = l.proc.lines();
        assert_eq!(
            lines.iter().filter(|x| x.starts_with(&said)).count(),
            1,
            "{lines:?}"
        );
    }
    let stored = audit_lines(&audit);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for r in &stored {
        assert_eq!(r["version"], 1, "{r}");
        assert_eq!(r["text"], line.as_str(), "{r}");
        if n > 1 {
            assert_eq!(r["fields"], serde_json::json!(values), "{r}");
        }
        if shape.procedure != 1 {
            assert_eq!(r["procedure"], shape.procedure, "{r}");
        }
    }
    l.proc.signal("INT");
    assert!(
        l.proc.wait_exit(Duration::from_secs(10)).is_some(),
        "logger exit"
    );
}

#[test]
fn a_void_log_of_one_string_client_is_stored() {
    student_client_is_stored("void LOG(string) client", one_string(6));
}

#[test]
fn an_int_log_of_three_strings_client_decodes_the_reply_and_is_stored() {
    student_client_is_stored("int LOG(3 strings) client", three_strings(7));
}

#[test]
fn a_void_log_of_four_strings_client_under_procedure_2_is_stored() {
    student_client_is_stored("void LOG(4 strings) client", four_strings_void(8));
}

#[test]
fn an_int_log_of_four_strings_client_under_procedure_7_is_stored() {
    student_client_is_stored("int LOG(4 strings) client", four_strings_int(9));
}
