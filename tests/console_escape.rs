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

/// Issue 26 item 3, its other half: a name is validated before it is printed or
/// audited. A refused name printed raw could pass for a valid one (a Cyrillic
/// `а` in `аlice`, fullwidth letters): on main the console showed
/// `s> REGISTER FROM аlice`, which reads as alice's REGISTER, and the audit
/// record carried the lookalike. Now a refused name is shown in printable ASCII
/// (`\u{430}lice`) on the console, in the audit file and on the logger, while a
/// valid name in any script is shown as sent.
#[test]
fn refused_names_cannot_pass_for_valid_ones_on_the_console_or_in_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let l = Logger::start(&["--no-portmap", "--audit", audit.to_str().unwrap()]);
    let s = Server::start(&[
        "--logger",
        &format!("127.0.0.1:{}", l.port),
        "--spool",
        dir.path().join("spool").to_str().unwrap(),
    ]);
    let refused = ["\u{430}lice", "\u{ff41}lice", FORGED_LINE];
    for name in refused {
        assert_eq!(code(s.addr, &["REGISTER", DT, name]), 2, "{name:?}");
    }
    assert_eq!(code(s.addr, &["REGISTER", DT, "Кирилл"]), 0);
    assert!(
        s.proc
            .wait_line(Duration::from_secs(10), |x| x == "s> REGISTER FROM Кирилл")
            .is_some(),
        "server printed {:?}",
        s.proc.lines()
    );
    let lines = s.proc.lines();
    assert_clean("the server", &lines);
    for want in [
        "s> REGISTER FROM \\u{430}lice",
        "s> REGISTER FROM \\u{ff41}lice",
        "s> REGISTER FROM mallory\\x0as> DELETE FROM alice",
    ] {
        assert!(lines.iter().any(|x| x == want), "no {want:?} in {lines:?}");
    }
    // The audit file: the logger stored what the server shipped.
    let users = || -> Vec<String> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|x| serde_json::from_str::<serde_json::Value>(x).ok())
            .filter_map(|v| v["user"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || users().len() == 4),
        "{:?}",
        users()
    );
    let users = users();
    for name in refused {
        assert!(!users.iter().any(|u| u == name), "{name:?} audited raw");
    }
    for u in &users[..3] {
        assert!(
            u.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "a refused name audited outside printable ASCII: {u:?}"
        );
    }
    assert_eq!(users[3], "Кирилл");
    assert!(
        l.proc
            .wait_line(Duration::from_secs(10), |x| x
                .starts_with("\\u{430}lice    REGISTER    "))
            .is_some(),
        "logger printed {:?}",
        l.proc.lines()
    );
}
