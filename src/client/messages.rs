//! The exact lines the shell prints (PROTOCOL.md section 5): one message per command
//! chosen from the operation and its result code, and the usage lines.
//!
//! Owns: every fixed string of the shell's stdout. Does not own: when a command is
//! run or what it sends (`client`).

use crate::proto::index::{self, Op};

/// `code` is the server's result byte, or `None` when there is no usable reply (server
/// unreachable, a broken reply, or the client refused the command itself).
pub(crate) fn reply(op: Op, code: Option<u8>) -> &'static str {
    match (op, code) {
        (Op::Register, Some(index::OK)) => "c> REGISTER OK",
        (Op::Register, Some(index::NAME_IN_USE)) => "c> USERNAME IN USE",
        (Op::Register, _) => "c> REGISTER FAIL",
        (Op::Unregister, Some(index::OK)) => "c> UNREGISTER OK",
        (Op::Unregister, Some(index::NO_SUCH_USER)) => "c> USER DOES NOT EXIST",
        (Op::Unregister, _) => "c> UNREGISTER FAIL",
        (Op::Connect, Some(index::OK)) => "c> CONNECT OK",
        (Op::Connect, Some(index::NO_SUCH_USER)) => "c> CONNECT FAIL, USER DOES NOT EXIST",
        (Op::Connect, Some(index::ALREADY_CONNECTED)) => "c> USER ALREADY CONNECTED",
        (Op::Connect, _) => "c> CONNECT FAIL",
        (Op::Publish, Some(index::OK)) => "c> PUBLISH OK",
        (Op::Publish, Some(index::NO_SUCH_USER)) => "c> PUBLISH FAIL, USER DOES NOT EXIST",
        (Op::Publish, Some(index::NOT_CONNECTED)) => "c> PUBLISH FAIL, USER NOT CONNECTED",
        (Op::Publish, Some(index::ALREADY_PUBLISHED)) => {
            "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED"
        }
        (Op::Publish, _) => "c> PUBLISH FAIL",
        (Op::Delete, Some(index::OK)) => "c> DELETE OK",
        (Op::Delete, Some(index::NO_SUCH_USER)) => "c> DELETE FAIL, USER DOES NOT EXIST",
        (Op::Delete, Some(index::NOT_CONNECTED)) => "c> DELETE FAIL, USER NOT CONNECTED",
        (Op::Delete, Some(index::NOT_PUBLISHED)) => "c> DELETE FAIL, CONTENT NOT PUBLISHED",
        (Op::Delete, _) => "c> DELETE FAIL",
        (Op::ListUsers, Some(index::OK)) => "c> LIST_USERS OK",
        (Op::ListUsers, Some(index::NO_SUCH_USER)) => "c> LIST_USERS FAIL, USER DOES NOT EXIST",
        (Op::ListUsers, Some(index::NOT_CONNECTED)) => "c> LIST_USERS FAIL, USER NOT CONNECTED",
        (Op::ListUsers, _) => "c> LIST_USERS FAIL",
        (Op::ListContent, Some(index::OK)) => "c> LIST_CONTENT OK",
        (Op::ListContent, Some(index::NO_SUCH_USER)) => "c> LIST_CONTENT FAIL, USER DOES NOT EXIST",
        (Op::ListContent, Some(index::NOT_CONNECTED)) => "c> LIST_CONTENT FAIL, USER NOT CONNECTED",
        (Op::ListContent, Some(index::NO_SUCH_TARGET)) => {
            "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST"
        }
        (Op::ListContent, _) => "c> LIST_CONTENT FAIL",
        (Op::Disconnect, Some(index::OK)) => "c> DISCONNECT OK",
        (Op::Disconnect, Some(index::NO_SUCH_USER)) => "c> DISCONNECT FAIL / USER DOES NOT EXIST",
        (Op::Disconnect, Some(index::NOT_CONNECTED)) => "c> DISCONNECT FAIL / USER NOT CONNECTED",
        (Op::Disconnect, _) => "c> DISCONNECT FAIL",
        (Op::Search, Some(index::OK)) => "c> SEARCH OK",
        (Op::Search, Some(index::NO_SUCH_USER)) => "c> SEARCH FAIL, USER DOES NOT EXIST",
        (Op::Search, Some(index::NOT_CONNECTED)) => "c> SEARCH FAIL, USER NOT CONNECTED",
        (Op::Search, _) => "c> SEARCH FAIL",
    }
}

/// The code whose message says "user not connected", used when this shell has no
/// connected user to act as.
pub(super) const NOT_CONNECTED: u8 = index::NOT_CONNECTED;

/// UNREGISTER's "any other error" code, which the server answers when the user is
/// connected (PROTOCOL.md section 2).
pub(super) const UNREGISTER_CONNECTED: u8 = 2;

/// CONNECT's code for "user already connected".
pub(super) const ALREADY_CONNECTED: u8 = 2;

pub(super) const GET_FILE_OK: &str = "c> GET_FILE OK";
pub(super) const GET_FILE_NOT_EXIST: &str = "c> GET_FILE FAIL / FILE NOT EXIST";
pub(super) const GET_FILE_FAIL: &str = "c> GET_FILE FAIL";

// peerdex client extensions (PROTOCOL.md section 5).
pub(super) const FETCH_OK: &str = "c> FETCH OK";
pub(super) const FETCH_NOT_EXIST: &str = "c> FETCH FAIL / FILE NOT EXIST";
pub(super) const FETCH_FAIL: &str = "c> FETCH FAIL";
pub(super) const JOBS_OK: &str = "c> JOBS OK";
pub(super) const CANCEL_OK: &str = "c> CANCEL OK";
pub(super) const CANCEL_FAIL: &str = "c> CANCEL FAIL";
pub(super) const RESHARE_OK: &str = "c> RESHARE OK";

/// Whether a message line tells of success or failure, for its colour and the exit
/// status of a script.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Outcome {
    Ok,
    Fail,
}

/// The outcome of a message line: OK replies succeed; FAIL replies, the other refusals
/// of the table (USERNAME IN USE, USER DOES NOT EXIST, USER ALREADY CONNECTED), usage
/// errors and unknown commands fail. `None` for lines that are neither (HELP).
pub(super) fn outcome(line: &str) -> Option<Outcome> {
    let line = line.strip_prefix("c> ")?;
    if line.ends_with(" OK") {
        Some(Outcome::Ok)
    } else if line.contains("FAIL")
        || line.ends_with("USERNAME IN USE")
        || line.ends_with("DOES NOT EXIST")
        || line.ends_with("ALREADY CONNECTED")
        || line.starts_with("usage:")
        || line.starts_with("unknown command")
        || line.starts_with("line longer than")
    {
        Some(Outcome::Fail)
    } else {
        None
    }
}

/// `line` between the ANSI codes of its outcome's colour (green OK, red FAIL); the
/// text itself is unchanged.
pub(super) fn painted(line: &str) -> String {
    match outcome(line) {
        Some(Outcome::Ok) => format!("\x1b[32m{line}\x1b[0m"),
        Some(Outcome::Fail) => format!("\x1b[31m{line}\x1b[0m"),
        None => line.to_owned(),
    }
}

/// One command of the shell: its word, usage line and what it does.
pub(super) struct Command {
    pub(super) word: &'static str,
    pub(super) usage: &'static str,
    pub(super) meaning: &'static str,
}

const fn command(word: &'static str, usage: &'static str, meaning: &'static str) -> Command {
    Command {
        word,
        usage,
        meaning,
    }
}

/// The commands of the shell, in HELP order.
pub(super) const COMMANDS: [Command; 16] = [
    command(
        "REGISTER",
        "REGISTER <user>",
        "create a user name at the index server",
    ),
    command(
        "UNREGISTER",
        "UNREGISTER <user>",
        "remove a user name and everything it published (DISCONNECT it first)",
    ),
    command(
        "CONNECT",
        "CONNECT <user>",
        "act as this user: others can now list you and download what you publish",
    ),
    command(
        "DISCONNECT",
        "DISCONNECT <user>",
        "stop acting as this user; its files stay listed but cannot be downloaded",
    ),
    command(
        "PUBLISH",
        "PUBLISH <file> <description...>",
        "offer a file of the --share folder to others, with a description",
    ),
    command(
        "DELETE",
        "DELETE <file>",
        "stop offering a file you published",
    ),
    command(
        "LIST_USERS",
        "LIST_USERS",
        "the connected users with their address and port",
    ),
    command(
        "LIST_CONTENT",
        "LIST_CONTENT [<user>]",
        "the files a user published, with their descriptions (yours without a user)",
    ),
    command(
        "GET_FILE",
        "GET_FILE <user> <remote_file> [<local_file>]",
        "download a file from the user's client into --share (as its own name by default)",
    ),
    command(
        "SEARCH",
        "SEARCH <pattern>",
        "files of connected users whose name contains the pattern (case-sensitive)",
    ),
    command(
        "FETCH",
        "FETCH <file> [local_file] [&]",
        "download a file by name from any connected owner, trying the next on failure",
    ),
    command(
        "JOBS",
        "JOBS",
        "the background transfers (GET_FILE ... & and FETCH ... &) and their progress",
    ),
    command("CANCEL", "CANCEL <n>", "stop background transfer n"),
    command(
        "RESHARE",
        "RESHARE on|off",
        "publish every completed download under its local name (--reshare)",
    ),
    command("HELP", "HELP", "this list"),
    command(
        "QUIT",
        "QUIT",
        "disconnect and leave (Ctrl+D too; Ctrl+C cancels a running command)",
    ),
];

/// The usage line of a command (its upper-case word).
pub(crate) fn usage(command: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|c| c.word == command)
        .map_or("HELP", |c| c.usage)
}

/// The HELP text: each command's usage and what it does, one line each.
pub(crate) fn help() -> String {
    let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
    let mut out = String::from("c> commands (the command word is case-insensitive):\n");
    for c in &COMMANDS {
        out.push_str(&format!("\t{:width$}  {}\n", c.usage, c.meaning));
    }
    out
}

/// The end of `peerdex client --help`: the shell's commands and a few examples.
pub(super) fn client_after_help() -> String {
    let mut out = String::from("Commands at the c> prompt (the word is case-insensitive):\n");
    for c in &COMMANDS {
        out.push_str(&format!("  {}\n      {}\n", c.usage, c.meaning));
    }
    out.push_str(
        "\nIn a terminal: line editing, history (~/.local/state/peerdex/history), Tab\n\
         completion of commands, user and file names and local paths.\n\
         \nExamples:\n  \
         peerdex client -s 127.0.0.1 -p 9090 --share ~/peerdex-share\n  \
         peerdex client -s host -p 9090 --time-url http://host:8000/ < script.txt\n  \
         printf 'REGISTER ann\\nCONNECT ann\\nLIST_USERS\\n' | peerdex client -s host -p 9090\n\
         \nA script exits 1 if any command failed (--keep-going: 0).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_of_the_table() {
        let table: [(Op, [&str; 5]); 9] = [
            (
                Op::Register,
                ["REGISTER OK", "USERNAME IN USE", "", "", "REGISTER FAIL"],
            ),
            (
                Op::Unregister,
                [
                    "UNREGISTER OK",
                    "USER DOES NOT EXIST",
                    "",
                    "",
                    "UNREGISTER FAIL",
                ],
            ),
            (
                Op::Connect,
                [
                    "CONNECT OK",
                    "CONNECT FAIL, USER DOES NOT EXIST",
                    "USER ALREADY CONNECTED",
                    "",
                    "CONNECT FAIL",
                ],
            ),
            (
                Op::Publish,
                [
                    "PUBLISH OK",
                    "PUBLISH FAIL, USER DOES NOT EXIST",
                    "PUBLISH FAIL, USER NOT CONNECTED",
                    "PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
                    "PUBLISH FAIL",
                ],
            ),
            (
                Op::Delete,
                [
                    "DELETE OK",
                    "DELETE FAIL, USER DOES NOT EXIST",
                    "DELETE FAIL, USER NOT CONNECTED",
                    "DELETE FAIL, CONTENT NOT PUBLISHED",
                    "DELETE FAIL",
                ],
            ),
            (
                Op::ListUsers,
                [
                    "LIST_USERS OK",
                    "LIST_USERS FAIL, USER DOES NOT EXIST",
                    "LIST_USERS FAIL, USER NOT CONNECTED",
                    "",
                    "LIST_USERS FAIL",
                ],
            ),
            (
                Op::ListContent,
                [
                    "LIST_CONTENT OK",
                    "LIST_CONTENT FAIL, USER DOES NOT EXIST",
                    "LIST_CONTENT FAIL, USER NOT CONNECTED",
                    "LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
                    "LIST_CONTENT FAIL",
                ],
            ),
            (
                Op::Disconnect,
                [
                    "DISCONNECT OK",
                    "DISCONNECT FAIL / USER DOES NOT EXIST",
                    "DISCONNECT FAIL / USER NOT CONNECTED",
                    "",
                    "DISCONNECT FAIL",
                ],
            ),
            (
                Op::Search,
                [
                    "SEARCH OK",
                    "SEARCH FAIL, USER DOES NOT EXIST",
                    "SEARCH FAIL, USER NOT CONNECTED",
                    "",
                    "SEARCH FAIL",
                ],
            ),
        ];
        for (op, cells) in table {
            let fail = format!("c> {}", cells[4]);
            for (code, cell) in cells[..4].iter().enumerate() {
                let expected = if cell.is_empty() {
                    fail.clone()
                } else {
                    format!("c> {cell}")
                };
                assert_eq!(reply(op, Some(code as u8)), expected, "{op:?} code {code}");
            }
            for code in 0..=4u8 {
                let want = if code == 0 {
                    Outcome::Ok
                } else {
                    Outcome::Fail
                };
                assert_eq!(outcome(reply(op, Some(code))), Some(want), "{op:?} {code}");
            }
            assert_eq!(outcome(reply(op, None)), Some(Outcome::Fail));
            assert_eq!(reply(op, Some(4)), fail);
            assert_eq!(reply(op, Some(255)), fail);
            assert_eq!(reply(op, None), fail);
        }
    }

    #[test]
    fn outcomes_of_the_other_lines() {
        assert_eq!(outcome(GET_FILE_OK), Some(Outcome::Ok));
        assert_eq!(outcome(GET_FILE_FAIL), Some(Outcome::Fail));
        assert_eq!(outcome(GET_FILE_NOT_EXIST), Some(Outcome::Fail));
        assert_eq!(outcome("c> usage: QUIT"), Some(Outcome::Fail));
        assert_eq!(
            outcome("c> unknown command X: HELP lists the commands"),
            Some(Outcome::Fail)
        );
        assert_eq!(
            outcome("c> commands (the command word is case-insensitive):"),
            None
        );
        assert_eq!(painted("c> DELETE OK"), "\x1b[32mc> DELETE OK\x1b[0m");
        assert_eq!(painted("c> DELETE FAIL"), "\x1b[31mc> DELETE FAIL\x1b[0m");
        assert_eq!(painted("c> commands:"), "c> commands:");
    }

    #[test]
    fn usage_lines_name_their_command() {
        let help = help();
        for c in &COMMANDS {
            assert!(c.usage.starts_with(c.word));
            assert_eq!(usage(c.word), c.usage);
            // One line per command: its usage and its meaning.
            assert!(
                help.lines()
                    .any(|l| l.contains(c.usage) && l.ends_with(c.meaning)),
                "{help}"
            );
        }
        assert_eq!(help.lines().count(), COMMANDS.len() + 1);
    }
}
