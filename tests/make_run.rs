//! `make run` (scripts/run.sh): the whole service side from one command, two clients
//! through it, and Ctrl+C leaving no process behind.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use support::group::{GroupGuard, group_members};
use support::*;

/// `bash scripts/run.sh` with the test build of peerdex (environment to be added).
fn run_script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .env("PEERDEX", bin());
    cmd
}

#[test]
fn make_run_serves_two_clients_and_ctrl_c_stops_everything() {
    let run_dir = tempfile::tempdir().unwrap();
    let (port, time_port, logger_port) = (free_port(), free_port(), free_port());
    let http_port = free_port();
    // A program number of its own, so it never meets another test's logger.
    let program = format!("{:#x}", 0x2300_0000u32 + std::process::id() % 0x10000);
    let script = |cmd: &mut Command| {
        cmd.env("PORT", port.to_string())
            .env("TIME_PORT", time_port.to_string())
            .env("LOGGER_PORT", logger_port.to_string())
            .env("HTTP_PORT", http_port.to_string())
            .env("PROGRAM", &program)
            .env("RUN_DIR", run_dir.path())
            .stdin(std::process::Stdio::null())
            // Its own process group, as a terminal's foreground job would be.
            .process_group(0);
    };
    let mut cmd = run_script();
    script(&mut cmd);
    let mut run = Proc::start_with(&mut cmd);
    let pgid = run.child.id();
    let _guard = GroupGuard(pgid);
    run.wait_line(Duration::from_secs(20), |l| {
        l.contains("peerdex is running")
    })
    .unwrap_or_else(|| panic!("make run did not start: {:?}", run.lines()));
    let client_line = run
        .wait_line(Duration::from_secs(5), |l| {
            l.trim_start().contains(" client -s ")
        })
        .expect("the client command is shown");
    assert!(client_line.contains(&format!("-p {port}")), "{client_line}");
    let dashboard_line = run
        .wait_line(Duration::from_secs(5), |l| {
            l.trim_start().starts_with("dashboard ")
        })
        .expect("the dashboard URL is shown");
    assert!(
        dashboard_line.contains(&format!(":{http_port}/")),
        "{dashboard_line}"
    );

    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let time_url = format!("http://127.0.0.1:{time_port}/");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(a_dir.path().join("notes.txt"), "Lecture notes, week 3\n").unwrap();
    let mut alice = Client::start_with(server, a_dir.path(), &["--time-url", &time_url]);
    let mut bob = Client::start_with(server, b_dir.path(), &["--time-url", &time_url]);
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH notes.txt week 3"), "c> PUBLISH OK");
    bob.register_connect("bob");
    assert_eq!(
        bob.cmd("GET_FILE alice notes.txt copy.txt"),
        "c> GET_FILE OK"
    );
    assert_eq!(
        std::fs::read_to_string(b_dir.path().join("copy.txt")).unwrap(),
        "Lecture notes, week 3\n"
    );
    assert!(
        !alice.stderr_has("local clock"),
        "the time service was not used"
    );
    // The dashboard sees the two-client session.
    let users = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /api/users HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(
        users.contains(r#""name":"alice""#) && users.contains(r#""name":"bob""#),
        "{users}"
    );
    for c in [&mut alice, &mut bob] {
        c.send("QUIT");
        assert_eq!(c.next_message(), "c> DISCONNECT OK");
    }
    // The logger printed their records, stamped by the time service.
    for record in [
        "alice    PUBLISH notes.txt    ",
        "bob    CONNECT    ",
        "bob    DISCONNECT    ",
    ] {
        assert!(
            run.wait_line(Duration::from_secs(10), |l| l.starts_with(record))
                .is_some(),
            "no logger line {record:?}: {:?}",
            run.lines()
        );
    }
    let audit = std::fs::read_to_string(run_dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"operation\":\"PUBLISH notes.txt\""),
        "{audit}"
    );

    // Ctrl+C: SIGINT to the whole foreground group.
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(
        run.wait_exit(Duration::from_secs(20)).is_some(),
        "make run did not stop: {:?} {:?}",
        run.lines(),
        group_members(pgid)
    );
    wait_until(Duration::from_secs(30), || group_members(pgid).is_empty());
    assert_eq!(
        group_members(pgid),
        Vec::<String>::new(),
        "processes left behind"
    );
    assert!(run.lines().iter().any(|l| l == "l> logger stopped"));
    assert!(
        std::net::TcpStream::connect(server).is_err(),
        "server still listening"
    );

    // A second run right after starts on the same ports.
    let mut cmd = run_script();
    script(&mut cmd);
    let mut again = Proc::start_with(&mut cmd);
    let pgid2 = again.child.id();
    let _guard2 = GroupGuard(pgid2);
    assert!(
        again
            .wait_line(Duration::from_secs(20), |l| l
                .contains("peerdex is running"))
            .is_some(),
        "second run: {:?}",
        again.lines()
    );
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid2}")])
        .status()
        .unwrap();
    assert!(again.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn make_run_names_a_port_already_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let run_dir = tempfile::tempdir().unwrap();
    let out = run_script()
        .env("PORT", free_port().to_string())
        .env("TIME_PORT", port.to_string())
        .env("LOGGER_PORT", free_port().to_string())
        .env("HTTP_PORT", free_port().to_string())
        .env("RUN_DIR", run_dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("TIME_PORT={port} (time service) is in use")),
        "{err}"
    );
}

/// Issue 22: a second `make run` beside a running one, on the same ports and run
/// folder, names every conflict in one message and leaves the first as it was.
#[test]
fn a_second_make_run_names_every_conflict_and_leaves_the_first_alone() {
    let run_dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let program = format!("{:#x}", 0x2320_0000u32 + std::process::id() % 0x10000);
    let env = |cmd: &mut Command| {
        cmd.env("PORT", ports[0].to_string())
            .env("TIME_PORT", ports[1].to_string())
            .env("LOGGER_PORT", ports[2].to_string())
            .env("HTTP_PORT", ports[3].to_string())
            .env("PROGRAM", &program)
            .env("RUN_DIR", run_dir.path())
            .stdin(std::process::Stdio::null())
            .process_group(0);
    };
    let mut cmd = run_script();
    env(&mut cmd);
    let mut first = Proc::start_with(&mut cmd);
    let _guard = GroupGuard(first.child.id());
    first
        .wait_line(Duration::from_secs(30), |l| {
            l.contains("peerdex is running")
        })
        .unwrap_or_else(|| panic!("make run did not start: {:?}", first.lines()));
    let server_out = run_dir.path().join("server.out");
    let before = std::fs::read(&server_out).unwrap();
    assert!(!before.is_empty());

    let mut cmd = run_script();
    env(&mut cmd);
    let second = run_to_exit(&mut cmd, Duration::from_secs(60), "second make run").unwrap();
    assert!(!second.status.success());
    let err = second.stderr;
    for want in [
        format!("PORT={} (index server) is in use", ports[0]),
        format!("TIME_PORT={} (time service) is in use", ports[1]),
        format!("LOGGER_PORT={} (logger) is in use", ports[2]),
        format!("HTTP_PORT={} (dashboard) is in use", ports[3]),
        format!(
            "RUN_DIR={} is in use by another make run",
            run_dir.path().display()
        ),
        format!("PROGRAM={program} (logger program) is registered by a running logger"),
    ] {
        assert!(err.contains(&want), "no {want:?} in {err}");
    }
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    // The first is untouched: its output not truncated, still serving.
    let after = std::fs::read(&server_out).unwrap();
    assert!(after.starts_with(&before), "server.out was rewritten");
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first run stopped"
    );
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0]));
    assert_eq!(code(server, &["REGISTER", "alice"]), 0);
}

/// `make run` with the index server on `port`, every other port free, `program`
/// and `run_dir`, in a process group of its own (as a terminal's foreground job).
fn run_on(port: u16, program: &str, run_dir: &std::path::Path) -> Command {
    let mut cmd = run_script();
    cmd.env("PORT", port.to_string())
        .env("TIME_PORT", free_port().to_string())
        .env("LOGGER_PORT", free_port().to_string())
        .env("HTTP_PORT", free_port().to_string())
        .env("PROGRAM", program)
        .env("RUN_DIR", run_dir)
        .stdin(std::process::Stdio::null())
        .process_group(0);
    cmd
}

/// Issue 22: `FRESH=1` starts with an empty registry.
#[test]
fn make_run_fresh_starts_with_an_empty_registry() {
    let run_dir = tempfile::tempdir().unwrap();
    let program = format!("{:#x}", 0x2330_0000u32 + std::process::id() % 0x10000);
    let start = |fresh: &str| {
        let port = free_port();
        let mut cmd = run_on(port, &program, run_dir.path());
        cmd.env("FRESH", fresh);
        let run = Proc::start_with(&mut cmd);
        let guard = GroupGuard(run.child.id());
        run.wait_line(Duration::from_secs(30), |l| {
            l.contains("peerdex is running")
        })
        .unwrap_or_else(|| panic!("make run did not start: {:?}", run.lines()));
        (
            run,
            guard,
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
    };
    let stop = |run: &mut Proc, pgid: u32| {
        Command::new("kill")
            .args(["-s", "INT", "--", &format!("-{pgid}")])
            .status()
            .unwrap();
        assert!(run.wait_exit(Duration::from_secs(30)).is_some());
    };
    let (mut run, _g, server) = start("");
    assert_eq!(code(server, &["REGISTER", "alice"]), 0);
    let pgid = run.child.id();
    stop(&mut run, pgid);
    // Kept without FRESH: alice is there (registering again is refused, 1).
    let (mut run, _g, server) = start("");
    assert_eq!(code(server, &["REGISTER", "alice"]), 1);
    let pgid = run.child.id();
    stop(&mut run, pgid);
    let (_run, _g, server) = start("1");
    assert_eq!(
        code(server, &["REGISTER", "alice"]),
        0,
        "FRESH=1 kept alice"
    );
}

/// The pid of the process of group `pgid` whose command line is `peerdex <sub> ...`.
fn group_member_running(pgid: u32, sub: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let in_group = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(2).map(str::to_owned))
            })
            == Some(pgid.to_string());
        if in_group && args.len() > 1 && args[1] == sub.as_bytes() {
            return Some(pid);
        }
    }
    None
}

/// Issue 15, defect 5: a component that crashes ends `make run` with a non-zero
/// status and its name, instead of exit 0.
#[test]
fn make_run_exits_non_zero_naming_a_crashed_component() {
    let run_dir = tempfile::tempdir().unwrap();
    let program = format!("{:#x}", 0x2310_0000u32 + std::process::id() % 0x10000);
    let err_path = run_dir.path().join("run.stderr");
    // Proc captures stdout only: the script's stderr goes to a file.
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "exec bash \"$0\" 2>\"$1\""])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .arg(&err_path)
        .env("PEERDEX", bin())
        .env("PORT", free_port().to_string())
        .env("TIME_PORT", free_port().to_string())
        .env("LOGGER_PORT", free_port().to_string())
        // Every port its own, the dashboard's too: a `make run` in another terminal
        // holds the defaults (issue 22).
        .env("HTTP_PORT", free_port().to_string())
        .env("PROGRAM", &program)
        .env("RUN_DIR", run_dir.path())
        .stdin(std::process::Stdio::null())
        .process_group(0);
    let mut run = Proc::start_with(&mut cmd);
    let pgid = run.child.id();
    let _guard = GroupGuard(pgid);
    run.wait_line(Duration::from_secs(20), |l| {
        l.contains("peerdex is running")
    })
    .unwrap_or_else(|| panic!("make run did not start: {:?}", run.lines()));
    let server = group_member_running(pgid, "server").expect("the index server process");
    Command::new("kill")
        .args(["-s", "KILL", &server.to_string()])
        .status()
        .unwrap();
    let status = run
        .wait_exit(Duration::from_secs(20))
        .expect("make run did not stop after the index server died");
    assert!(!status.success(), "exit {status:?}");
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        err.contains("the index server") && err.contains("killed by signal 9"),
        "{err}"
    );
    wait_until(Duration::from_secs(30), || group_members(pgid).is_empty());
    assert_eq!(group_members(pgid), Vec::<String>::new());
}

/// One code block of the README's session, and the terminal its paragraph names.
struct Block {
    terminal: String,
    lines: Vec<String>,
}

/// The code blocks of README.md's "A session in two terminals", each with the
/// "Terminal N" (or "terminal N") its preceding paragraph names.
fn readme_session() -> Vec<Block> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("### A session in two terminals")
        .expect("README has the session");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n## ").map_or(section.len(), |i| i + 4)];
    let mut blocks = Vec::new();
    let mut terminal = String::new();
    let mut in_block: Option<Vec<String>> = None;
    for line in section.lines() {
        if line.starts_with("```") {
            match in_block.take() {
                Some(lines) => blocks.push(Block {
                    terminal: terminal.clone(),
                    lines,
                }),
                None => in_block = Some(Vec::new()),
            }
        } else if let Some(lines) = in_block.as_mut() {
            lines.push(line.to_owned());
        } else if let Some(i) = line.to_ascii_lowercase().find("terminal ") {
            terminal = line[i + "terminal ".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
        }
    }
    blocks
}

/// A list line with its addresses and ports replaced, and its indentation (a tab,
/// shown as spaces in the README) dropped.
fn without_addresses(line: &str) -> String {
    let mut out = Vec::new();
    let mut after_ip = false;
    for word in line.split_whitespace() {
        if word.parse::<std::net::IpAddr>().is_ok() {
            out.push("<ip>");
            after_ip = true;
        } else if after_ip && word.parse::<u16>().is_ok() {
            out.push("<port>");
            after_ip = false;
        } else {
            out.push(word);
            after_ip = false;
        }
    }
    out.join(" ")
}

/// Issue 15: the README's two-terminal session works when typed as written: its shell
/// commands and client commands run in the README's order (alice stays connected
/// while bob downloads), and every message and list line matches, ports and
/// addresses aside.
#[test]
fn the_readme_session_works_as_written() {
    let server = Server::start(&[]);
    let cwd = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let blocks = readme_session();
    assert!(blocks.len() >= 3, "README session blocks: {}", blocks.len());
    let mut clients: std::collections::HashMap<String, Client> = Default::default();
    let mut replayed = 0;
    for block in &blocks {
        let lines = &block.lines;
        let mut i = 0;
        while i < lines.len() {
            let line = &lines[i];
            if let Some(shell) = line.strip_prefix("$ ") {
                // Output of a shell command: up to the next prompt.
                let mut j = i + 1;
                while j < lines.len() && !lines[j].starts_with("$ ") && !lines[j].starts_with("c> ")
                {
                    j += 1;
                }
                let output = &lines[i + 1..j];
                let words: Vec<&str> = shell.split_whitespace().collect();
                if words.first() == Some(&"peerdex") {
                    assert_eq!(words[1], "client", "{shell}");
                    let args: Vec<String> = words[2..]
                        .iter()
                        .map(|w| {
                            if *w == "9090" {
                                server.addr.port().to_string()
                            } else {
                                (*w).to_owned()
                            }
                        })
                        .collect();
                    let mut cmd = Command::new(bin());
                    cmd.arg("client")
                        .args(&args)
                        .args(["--time-url", NO_TIME_SERVICE])
                        .current_dir(cwd.path())
                        .env("XDG_STATE_HOME", state.path());
                    clients.insert(block.terminal.clone(), Client::spawn(cmd));
                } else if let Some(file) = shell.strip_prefix("cat ") {
                    let text = std::fs::read_to_string(cwd.path().join(file.trim()))
                        .unwrap_or_else(|e| panic!("{shell}: {e}"));
                    assert_eq!(text.lines().collect::<Vec<_>>(), output, "{shell}");
                } else {
                    let status = Command::new("sh")
                        .args(["-c", shell])
                        .current_dir(cwd.path())
                        .status()
                        .unwrap();
                    assert!(status.success(), "{shell}");
                }
                i = j;
            } else if let Some(input) = line.strip_prefix("c> ") {
                let expected = lines.get(i + 1).expect("a message after each command");
                let mut j = i + 2;
                while j < lines.len() && lines[j].starts_with(char::is_whitespace) {
                    j += 1;
                }
                let expected_list: Vec<String> = lines[i + 2..j]
                    .iter()
                    .map(|l| without_addresses(l))
                    .collect();
                let client = clients
                    .get_mut(&block.terminal)
                    .unwrap_or_else(|| panic!("no client in terminal {}", block.terminal));
                let (msg, list) = client.cmd_list(input, expected_list.len());
                assert_eq!(&msg, expected, "terminal {}: {input}", block.terminal);
                let list: Vec<String> = list.iter().map(|l| without_addresses(l)).collect();
                assert_eq!(list, expected_list, "terminal {}: {input}", block.terminal);
                replayed += 1;
                i = j;
            } else {
                panic!("README session: unexpected line {line:?}");
            }
        }
    }
    assert!(replayed >= 10, "only {replayed} commands replayed");
    for (terminal, mut c) in clients {
        let status = c.wait_exit();
        assert!(status.success(), "terminal {terminal}: {status:?}");
    }
}

/// Issue 25 item 1: `make run STATEMENT=2025` names the year in its banner, shows
/// the client command of that year, and its server answers LIST_CONTENT with the
/// names only.
#[test]
fn make_run_statement_2025_names_the_year_and_lists_names_only() {
    let run_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let program = format!("{:#x}", 0x2360_0000u32 + std::process::id() % 0x10000);
    let mut cmd = run_on(port, &program, run_dir.path());
    cmd.env("STATEMENT", "2025");
    let mut run = Proc::start_with(&mut cmd);
    let pgid = run.child.id();
    let _guard = GroupGuard(pgid);
    let index_line = run
        .wait_line(Duration::from_secs(60), |l| {
            l.trim_start().starts_with("index server ")
        })
        .unwrap_or_else(|| panic!("make run did not start: {:?}", run.lines()));
    assert!(index_line.ends_with("(statement 2025)"), "{index_line}");
    // Before the fix the client command had no year: such a client sends names,
    // not the absolute paths the lab's 2025 programs expect.
    let client_line = run
        .wait_line(Duration::from_secs(30), |l| {
            l.trim_start().contains(" client -s ")
        })
        .expect("the client command is shown");
    assert!(
        client_line.trim_end().ends_with("--statement 2025"),
        "{client_line}"
    );
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(code(server, &["REGISTER", "alice"]), 0);
    assert_eq!(code(server, &["CONNECT", "alice", "4000"]), 0);
    let path = "/home/alice/notes.txt";
    assert_eq!(code(server, &["PUBLISH", "alice", path, "my notes"]), 0);
    // The 2024-25 layout: the count, then the name alone (no description).
    let fields = list_fields(&call(server, &["LIST_CONTENT", "alice", "alice"]));
    assert_eq!(fields, ["1", path]);
    Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(run.wait_exit(Duration::from_secs(30)).is_some());
}
