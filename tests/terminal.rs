//! The client shell as a person at a terminal meets it: `peerdex client` runs on a
//! pseudo-terminal (its controlling terminal, so Ctrl+C typed as the byte 0x03 is a
//! key for the line editor at the prompt and SIGINT while a command runs), and after
//! it exits the terminal must be in the mode it had before (echo and canonical
//! input on).

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{Client, NO_TIME_SERVICE, Server, bin};

/// How long a test waits for one piece of terminal output.
const WAIT: Duration = Duration::from_secs(20);

/// A pseudo-terminal: the parent keeps the master (the "keyboard and screen") and the
/// slave (to read its mode after the child exits).
struct Pty {
    master: File,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Pty {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors we then own; the name is not asked.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh descriptors from openpty, owned by nothing else.
        unsafe {
            Pty {
                master: File::from_raw_fd(master),
                slave: OwnedFd::from_raw_fd(slave),
            }
        }
    }

    fn mode(&self) -> libc::termios {
        // SAFETY: tcgetattr fills the zeroed termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(self.slave.as_raw_fd(), &mut t), 0);
            t
        }
    }
}

/// `peerdex client` on a pseudo-terminal, with everything it writes collected.
struct TermClient {
    child: Child,
    pty: Pty,
    screen: Arc<Mutex<Vec<u8>>>,
    /// Bytes of `screen` already matched by `expect`.
    seen: usize,
    /// The terminal's mode before the client started (read before the spawn: on a
    /// loaded machine the client can reach its line editor's raw mode before the
    /// test thread runs again).
    before: libc::termios,
}

impl TermClient {
    fn start(server: &Server, share: &Path, state: &Path, extra: &[&str]) -> TermClient {
        Self::spawn(server, share, state, extra, true)
    }

    /// As `start`, with NO_COLOR unset when `no_color` is false.
    fn spawn(
        server: &Server,
        share: &Path,
        state: &Path,
        extra: &[&str],
        no_color: bool,
    ) -> TermClient {
        let pty = Pty::open();
        let before = pty.mode();
        let mut cmd = Command::new(bin());
        cmd.args(["client", "-s", "127.0.0.1", "-p"])
            .arg(server.addr.port().to_string())
            .args(["--time-url", NO_TIME_SERVICE, "--share"])
            .arg(share)
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .env("XDG_STATE_HOME", state)
            .env("HOME", state);
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let slave = || Stdio::from(pty.slave.try_clone().expect("dup pty slave"));
        cmd.stdin(slave()).stdout(slave()).stderr(slave());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A session of its own with the pty as controlling terminal, so the
                // terminal's Ctrl+C reaches it as SIGINT.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start peerdex client on a pty");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = pty.master.try_clone().unwrap();
        let mut answer = pty.master.try_clone().unwrap();
        let sink = Arc::clone(&screen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process holds the slave open... which the test
            // does until it drops the Pty; the thread then ends with the test.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = &buf[..n];
                // The line editor asks where the cursor is: answer as a terminal does.
                if chunk.windows(4).any(|w| w == b"\x1b[6n") {
                    let _ = answer.write_all(b"\x1b[1;1R");
                }
                sink.lock().unwrap().extend_from_slice(chunk);
            }
        });
        TermClient {
            child,
            pty,
            screen,
            seen: 0,
            before,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `text` appears after what earlier calls matched.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            {
                let screen = self.screen.lock().unwrap();
                if let Some(i) = screen[self.seen..]
                    .windows(text.len())
                    .position(|w| w == text.as_bytes())
                {
                    self.seen += i + text.len();
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not on the terminal; it shows {:?}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types bytes as a user would.
    fn type_bytes(&mut self, bytes: &[u8]) {
        self.pty.master.write_all(bytes).unwrap();
        self.pty.master.flush().unwrap();
    }

    /// Types a command line and Enter, and waits for `reply`.
    fn command(&mut self, line: &str, reply: &str) {
        self.expect("c> ");
        self.type_bytes(format!("{line}\r").as_bytes());
        self.expect(reply);
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("client still running; terminal shows {:?}", self.screen());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TermClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flags a person notices: typed characters echoed, lines edited by the terminal.
fn assert_cooked(before: &libc::termios, after: &libc::termios, screen: &str) {
    let flags = libc::ECHO | libc::ICANON | libc::ISIG;
    assert_eq!(
        after.c_lflag & flags,
        before.c_lflag & flags,
        "terminal mode not restored; screen {screen:?}"
    );
    assert_eq!(after.c_lflag & libc::ECHO, libc::ECHO);
    assert_eq!(after.c_lflag & libc::ICANON, libc::ICANON);
    assert_eq!(after.c_iflag, before.c_iflag, "input flags not restored");
    assert_eq!(after.c_oflag, before.c_oflag, "output flags not restored");
}

#[test]
fn ctrl_c_cancels_a_download_returns_to_the_prompt_and_quits_at_an_empty_prompt() {
    let server = Server::start(&[]);
    let alice_dir = tempfile::tempdir().unwrap();
    let bob_dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // 4 MiB at 64 KiB/s: a minute, far longer than the test waits for the cancel.
    support::write_random(&alice_dir.path().join("big.bin"), 4 << 20, 7);
    let mut alice = Client::start_with(
        server.addr,
        alice_dir.path(),
        &[
            "--time-url",
            NO_TIME_SERVICE,
            "--max-upload-rate",
            "65536",
            "--state-dir",
            &state.path().join("alice").to_string_lossy(),
        ],
    );
    alice.register_connect("alice");
    assert_eq!(alice.cmd("PUBLISH big.bin slow"), "c> PUBLISH OK");

    let mut bob = TermClient::start(&server, bob_dir.path(), state.path(), &[]);
    let before = bob.before;
    bob.command("REGISTER bob", "c> REGISTER OK");
    bob.command("CONNECT bob", "c> CONNECT OK");
    bob.command(
        "GET_FILE alice big.bin copy.bin",
        "GET_FILE alice big.bin copy.bin",
    );
    // The download is under way (its bytes arrive in the hidden partial file); it
    // would run for about a minute, longer than `expect` waits: a FAIL within that
    // wait is the cancel's.
    support::wait_bytes(&bob_dir.path().join(".copy.bin.peerdex-partial"), 0);
    bob.type_bytes(b"\x03");
    bob.expect("c> GET_FILE FAIL");
    assert!(!bob_dir.path().join("copy.bin").exists());
    // Back at the prompt, and the session goes on.
    bob.command("LIST_USERS", "c> LIST_USERS OK");
    // Ctrl+C at an empty prompt ends the session as QUIT does (bob disconnected).
    bob.expect("c> ");
    bob.type_bytes(b"\x03");
    let status = bob.wait_exit();
    assert!(status.success(), "exit {status:?}");
    let users: Vec<String> = support::connected_users(server.addr)
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert!(!users.contains(&"bob".to_owned()), "bob still connected");
    assert_cooked(&before, &bob.pty.mode(), &bob.screen());
}

#[test]
fn ctrl_c_clears_a_half_typed_line_and_ctrl_d_ends_the_session() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
    let before = c.before;
    c.expect("c> ");
    c.type_bytes(b"REGISTER car");
    c.expect("REGISTER car");
    c.type_bytes(b"\x03");
    // Had the line not been cleared it would read "REGISTER carREGISTER dave": a
    // usage error.
    c.type_bytes(b"REGISTER dave\r");
    c.expect("c> REGISTER OK");
    c.expect("c> ");
    c.type_bytes(b"\x04");
    let status = c.wait_exit();
    assert!(status.success(), "exit {status:?}");
    assert!(!c.screen().contains("usage"), "{:?}", c.screen());
    assert_cooked(&before, &c.pty.mode(), &c.screen());
}

#[test]
fn sigterm_at_the_prompt_leaves_the_terminal_as_it_was() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // Several rounds: the mode was lost only sometimes (a race with the line editor).
    for _ in 0..3 {
        let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
        let before = c.before;
        c.expect("c> ");
        // The line editor holds the terminal in raw mode now (no line buffering).
        assert!(
            support::wait_until(WAIT, || c.pty.mode().c_lflag & libc::ICANON == 0),
            "the line editor did not take the terminal"
        );
        // SAFETY: kill on the pid of our own child.
        unsafe {
            libc::kill(c.child.id() as libc::pid_t, libc::SIGTERM);
        }
        c.wait_exit();
        assert_cooked(&before, &c.pty.mode(), &c.screen());
    }
}

#[test]
fn quit_leaves_the_terminal_as_it_was() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
    let before = c.before;
    c.command("REGISTER erin", "c> REGISTER OK");
    c.command("CONNECT erin", "c> CONNECT OK");
    c.expect("c> ");
    c.type_bytes(b"QUIT\r");
    let status = c.wait_exit();
    assert!(status.success(), "exit {status:?}");
    assert_cooked(&before, &c.pty.mode(), &c.screen());
}

#[test]
fn history_is_saved_across_sessions() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    // XDG_STATE_HOME of both runs.
    let state = tempfile::tempdir().unwrap();
    let mut first = TermClient::start(&server, dir.path(), state.path(), &[]);
    first.command("REGISTER hana", "c> REGISTER OK");
    first.expect("c> ");
    first.type_bytes(b"QUIT\r");
    assert!(first.wait_exit().success());
    let saved = std::fs::read_to_string(state.path().join("peerdex/history")).unwrap();
    assert!(saved.contains("REGISTER hana"), "history file: {saved:?}");

    let mut second = TermClient::start(&server, dir.path(), state.path(), &[]);
    second.expect("c> ");
    // Up arrow: the last lines of the first session (QUIT, then the REGISTER).
    second.type_bytes(b"\x1b[A");
    second.expect("QUIT");
    second.type_bytes(b"\x1b[A");
    second.expect("REGISTER hana");
    second.type_bytes(b"\r");
    second.expect("c> USERNAME IN USE");
    second.expect("c> ");
    second.type_bytes(b"QUIT\r");
    assert!(second.wait_exit().success());
}

#[test]
fn tab_completes_command_words_and_names_from_the_last_list() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
    c.command("REGISTER tabby", "c> REGISTER OK");
    c.command("CONNECT tabby", "c> CONNECT OK");
    c.expect("c> ");
    c.type_bytes(b"LIST_US\t");
    c.expect("LIST_USERS");
    c.type_bytes(b"\r");
    c.expect("c> LIST_USERS OK");
    // The user name comes from that list.
    c.expect("c> ");
    c.type_bytes(b"LIST_CONTENT tab\t");
    c.expect("tabby");
    c.type_bytes(b"\r");
    c.expect("c> LIST_CONTENT OK");
    c.expect("c> ");
    c.type_bytes(b"QUIT\r");
    assert!(c.wait_exit().success());
}

#[test]
fn start_line_names_the_server_and_help_says_what_each_command_does() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
    c.expect(&format!(
        "index server 127.0.0.1:{} answers. Type HELP",
        server.addr.port()
    ));
    c.command("HELP", "c> commands");
    c.expect("download a file from the user's client");
    c.expect("c> ");
    c.type_bytes(b"QUIT\r");
    assert!(c.wait_exit().success());
}

#[test]
fn ok_is_green_and_fail_red_in_a_terminal_unless_no_color() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut c = TermClient::spawn(&server, dir.path(), state.path(), &[], false);
    c.command("REGISTER gwen", "\x1b[32mc> REGISTER OK\x1b[0m");
    c.command(
        "DELETE x",
        "\x1b[31mc> DELETE FAIL, USER NOT CONNECTED\x1b[0m",
    );
    c.expect("c> ");
    c.type_bytes(b"QUIT\r");
    assert!(c.wait_exit().success());

    let mut c = TermClient::start(&server, dir.path(), state.path(), &[]);
    c.command("REGISTER gwen", "c> USERNAME IN USE");
    c.command("LIST_USERS", "c> LIST_USERS FAIL, USER NOT CONNECTED");
    c.expect("c> ");
    c.type_bytes(b"QUIT\r");
    c.wait_exit();
    let screen = c.screen();
    assert!(
        !screen.contains("\x1b[31m") && !screen.contains("\x1b[32m") && !screen.contains("\x1b[0m"),
        "{screen:?}"
    );
}

/// A peer registered and connected at `server` as `user` whose content trickles: it
/// refuses GET_FILE_RANGE as a statement peer does (a close without a byte) and
/// answers GET_FILE with code 0, then `content` one byte every `pace`.
fn slow_peer(
    server: &Server,
    user: &str,
    content: &'static [u8],
    pace: Duration,
) -> Arc<Mutex<Option<support::Trickler>>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let trickler = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&trickler);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            if buf[..n].starts_with(b"GET_FILE_RANGE\0") {
                continue;
            }
            if stream.write_all(&[0]).is_ok() {
                *slot.lock().unwrap() = Some(support::Trickler::start(stream, content, pace));
            }
        }
    });
    assert_eq!(support::code(server.addr, &["REGISTER", user]), 0);
    assert_eq!(support::code(server.addr, &["CONNECT", user, &port]), 0);
    trickler
}

/// Bytes the slow peer has sent so far.
fn trickled(t: &Mutex<Option<support::Trickler>>) -> usize {
    t.lock().unwrap().as_ref().map_or(0, |t| t.written())
}

/// 200 bytes at 40 ms each: 8 s, long enough to type a command meanwhile and short
/// enough to wait for the end.
const SLOW_CONTENT: &[u8] = &[b'x'; 200];
const SLOW_PACE: Duration = Duration::from_millis(40);

/// Issue 23: a line typed (or pasted) in one write while a background transfer runs
/// is answered at once, its message and the transfer's are printed above the
/// prompt, and the transfer's end names its job.
#[test]
fn a_line_typed_in_one_write_is_answered_while_a_background_transfer_runs() {
    let server = Server::start(&["--probe-interval", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let trickle = slow_peer(&server, "slow", SLOW_CONTENT, SLOW_PACE);
    let mut bob = TermClient::start(&server, dir.path(), state.path(), &[]);
    bob.command("REGISTER bob", "c> REGISTER OK");
    bob.command("CONNECT bob", "c> CONNECT OK");
    bob.command("GET_FILE slow f.bin got.bin &", "peerdex: [1] started");
    bob.expect("c> ");
    assert!(support::wait_until(WAIT, || trickled(&trickle) > 0));
    bob.type_bytes(b"LIST_USERS\r");
    bob.expect("c> LIST_USERS OK");
    let sent = trickled(&trickle);
    assert!(
        sent < SLOW_CONTENT.len(),
        "answered only after the transfer ({sent} bytes sent)"
    );
    assert!(!dir.path().join("got.bin").exists());
    bob.expect("peerdex: [1] GET_FILE slow f.bin got.bin: 200 B in ");
    bob.expect("c> GET_FILE OK");
    assert_eq!(
        std::fs::read(dir.path().join("got.bin")).unwrap(),
        SLOW_CONTENT
    );
    let screen = bob.screen();
    assert!(!screen.contains("c> peerdex"), "{screen:?}");
    assert!(!screen.contains("c> c> GET_FILE"), "{screen:?}");
    bob.expect("c> ");
    bob.type_bytes(b"QUIT\r");
    assert!(bob.wait_exit().success());
}

/// Issue 23: Ctrl+C and Ctrl+D at an empty prompt ask, as QUIT does, while a
/// transfer runs; "n" goes on, "y" leaves (cancelling it, disconnecting first).
#[test]
fn ctrl_c_and_ctrl_d_at_an_empty_prompt_ask_while_transfers_run() {
    let server = Server::start(&["--probe-interval", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let trickle = slow_peer(&server, "slow", &[b'y'; 1000], SLOW_PACE);
    let mut bob = TermClient::start(&server, dir.path(), state.path(), &[]);
    let before = bob.pty.mode();
    bob.command("REGISTER bob", "c> REGISTER OK");
    bob.command("CONNECT bob", "c> CONNECT OK");
    bob.command("GET_FILE slow f.bin got.bin &", "peerdex: [1] started");
    bob.expect("c> ");
    assert!(support::wait_until(WAIT, || trickled(&trickle) > 0));
    bob.type_bytes(b"\x03");
    bob.expect("transfers running: quit anyway? [y/N] ");
    bob.type_bytes(b"n\r");
    bob.command("JOBS", "\t1 running ");
    bob.expect("c> ");
    bob.type_bytes(b"\x04");
    bob.expect("transfers running: quit anyway? [y/N] ");
    bob.type_bytes(b"y\r");
    let status = bob.wait_exit();
    assert!(status.success(), "exit {status:?}");
    assert!(
        bob.screen().contains("c> GET_FILE FAIL"),
        "{:?}",
        bob.screen()
    );
    assert!(!dir.path().join("got.bin").exists());
    let users: Vec<String> = support::connected_users(server.addr)
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert!(!users.contains(&"bob".to_owned()), "bob still connected");
    assert_cooked(&before, &bob.pty.mode(), &bob.screen());
}

#[test]
fn a_watch_says_its_new_match_above_the_prompt_and_ctrl_d_ends_the_session() {
    let server = Server::start(&[]);
    let (mine, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (state, their_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut c = TermClient::start(
        &server,
        mine.path(),
        state.path(),
        &["--watch-interval", "5"],
    );
    let before = c.before;
    c.command("REGISTER wes", "c> REGISTER OK");
    c.command("CONNECT wes", "c> CONNECT OK");
    c.command("WATCH .pdf", "c> WATCH OK");
    let mut bob = Client::with_state(server.addr, theirs.path(), their_state.path(), &[]);
    bob.register_connect("bob");
    std::fs::write(theirs.path().join("w.pdf"), b"watched content").unwrap();
    assert_eq!(bob.cmd("PUBLISH w.pdf late"), "c> PUBLISH OK");
    // Said above the prompt while it waits for a line, then the prompt again.
    c.expect("peerdex: WATCH .pdf: new match w.pdf from bob, fetching (job 1)");
    c.expect("c> FETCH OK");
    c.command("JOBS", "c> JOBS OK");
    assert_eq!(
        std::fs::read(mine.path().join("w.pdf")).unwrap(),
        b"watched content"
    );
    c.expect("c> ");
    let started = Instant::now();
    c.type_bytes(b"\x04");
    let status = c.wait_exit();
    assert!(status.success(), "exit {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_cooked(&before, &c.pty.mode(), &c.screen());
}
