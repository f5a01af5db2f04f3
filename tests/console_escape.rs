//! Console and terminal injection (issue 26, item 3): names a client sends reach the
//! server's console and the logger's console escaped, never as raw control bytes or
//! forged lines.

mod support;

use std::time::Duration;

use support::*;

const DT: &str = "17/12/2014 13:20:35";

/// Sets the terminal title and clears the screen when printed raw.
const TITLE_AND_CLEAR: &str = "\x1b]0;pwned\x07\x1b[2J";

/// Prints as two console lines when raw, the second one forged.
const FORGED_LINE: &str = "mallory\ns> DELETE FROM alice";

fn assert_clean(what: &str, lines: &[String]) {
    for line in lines {
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202E}'),
            "{what} printed a raw control or bidi character: {line:?}"
        );
        assert!(
            !line.starts_with("s> DELETE"),
            "{what} printed a forged line: {line:?} in {lines:?}"
        );
    }
}

#[test]
fn rejected_names_reach_the_server_console_and_the_logger_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let l = Logger::start(&["--no-portmap", "--audit", audit.to_str().unwrap()]);
    let spool = dir.path().join("spool");
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        spool.to_str().unwrap(),
    ]);
    assert_eq!(code(s.addr, &["REGISTER", DT, TITLE_AND_CLEAR]), 2);
    assert_eq!(code(s.addr, &["REGISTER", DT, FORGED_LINE]), 2);
    assert_eq!(code(s.addr, &["REGISTER", DT, "report\u{202E}fdp.exe"]), 2);
    // A request made of valid fields after them: once its line is printed, the
    // lines of the rejected ones are too (one console writer, in order).
    assert_eq!(code(s.addr, &["REGISTER", DT, "alice"]), 0);
    let server_done = s
        .proc
        .wait_line(Duration::from_secs(10), |x| x == "s> REGISTER FROM alice");
    assert!(server_done.is_some(), "server printed {:?}", s.proc.lines());
    let lines = s.proc.lines();
    assert_clean("the server", &lines);
    for want in [
        "s> REGISTER FROM \\x1b]0;pwned\\x07\\x1b[2J",
        "s> REGISTER FROM mallory\\x0as> DELETE FROM alice",
        "s> REGISTER FROM report\\u{202e}fdp.exe",
    ] {
        assert!(lines.iter().any(|x| x == want), "no {want:?} in {lines:?}");
    }

    let logger_done = l.proc.wait_line(Duration::from_secs(20), |x| {
        x == format!("alice    REGISTER    {DT}")
    });
    assert!(logger_done.is_some(), "logger printed {:?}", l.proc.lines());
    let lines = l.proc.lines();
    assert_clean("the logger", &lines);
    assert!(
        lines
            .iter()
            .any(|x| x.starts_with("mallory\\x0as> DELETE FROM alice    REGISTER    ")),
        "logger printed {lines:?}"
    );
}
