//! The exact lines the shell prints (PROTOCOL.md section 5): one message per command
//! chosen from the operation and its [`Status`], the messages of transfers and of the
//! client's own commands, and their colours.
//!
//! Owns: every fixed string of the shell's stdout. Does not own: when a command is
//! run or what it sends (`session`), the command table and usage lines (`command`).

use crate::proto::index::{Op, Status};

use super::command::{Kind, WatchOp};

/// The message of an index operation's reply. `status` is `None` when there is no
/// usable reply (server unreachable, a broken reply, or the client refused the
/// command itself).
pub(crate) fn reply(op: Op, status: Option<Status>) -> &'static str {
    use Status::*;
    let Some(status) = status else {
        return fail(op);
    };
    match (op, status) {
        (_, Ok) => ok(op),
        (Op::Register, NameInUse) => "c> USERNAME IN USE",
        (Op::Unregister, NoSuchUser) => "c> USER DOES NOT EXIST",
        (Op::Connect, NoSuchUser) => "c> CONNECT FAIL, USER DOES NOT EXIST",
        (Op::Connect, AlreadyConnected) => "c> USER ALREADY CONNECTED",
        (Op::Publish, NoSuchUser) => "c> PUBLISH FAIL, USER DOES NOT EXIST",
        (Op::Publish, NotConnected) => "c> PUBLISH FAIL, USER NOT CONNECTED",
        (Op::Publish, AlreadyPublished) => "c> PUBLISH FAIL, CONTENT ALREADY PUBLISHED",
        (Op::Delete, NoSuchUser) => "c> DELETE FAIL, USER DOES NOT EXIST",
        (Op::Delete, NotConnected) => "c> DELETE FAIL, USER NOT CONNECTED",
        (Op::Delete, NotPublished) => "c> DELETE FAIL, CONTENT NOT PUBLISHED",
        (Op::ListUsers, NoSuchUser) => "c> LIST_USERS FAIL, USER DOES NOT EXIST",
        (Op::ListUsers, NotConnected) => "c> LIST_USERS FAIL, USER NOT CONNECTED",
        (Op::ListContent, NoSuchUser) => "c> LIST_CONTENT FAIL, USER DOES NOT EXIST",
        (Op::ListContent, NotConnected) => "c> LIST_CONTENT FAIL, USER NOT CONNECTED",
        (Op::ListContent, NoSuchTarget) => "c> LIST_CONTENT FAIL, REMOTE USER DOES NOT EXIST",
        (Op::Disconnect, NoSuchUser) => "c> DISCONNECT FAIL / USER DOES NOT EXIST",
        (Op::Disconnect, NotConnected) => "c> DISCONNECT FAIL / USER NOT CONNECTED",
        (Op::Search, NoSuchUser) => "c> SEARCH FAIL, USER DOES NOT EXIST",
        (Op::Search, NotConnected) => "c> SEARCH FAIL, USER NOT CONNECTED",
        _ => fail(op),
    }
}

fn ok(op: Op) -> &'static str {
    match op {
        Op::Register => "c> REGISTER OK",
        Op::Unregister => "c> UNREGISTER OK",
        Op::Connect => "c> CONNECT OK",
        Op::Disconnect => "c> DISCONNECT OK",
        Op::Publish => "c> PUBLISH OK",
        Op::Delete => "c> DELETE OK",
        Op::ListUsers => "c> LIST_USERS OK",
        Op::ListContent => "c> LIST_CONTENT OK",
        Op::Search => "c> SEARCH OK",
    }
}

fn fail(op: Op) -> &'static str {
    match op {
        Op::Register => "c> REGISTER FAIL",
        Op::Unregister => "c> UNREGISTER FAIL",
        Op::Connect => "c> CONNECT FAIL",
        Op::Disconnect => "c> DISCONNECT FAIL",
        Op::Publish => "c> PUBLISH FAIL",
        Op::Delete => "c> DELETE FAIL",
        Op::ListUsers => "c> LIST_USERS FAIL",
        Op::ListContent => "c> LIST_CONTENT FAIL",
        Op::Search => "c> SEARCH FAIL",
    }
}

/// How a transfer (GET_FILE, FETCH) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Done,
    /// The peer does not share the file (GET_FILE), or no connected user other than
    /// this shell's shares it (FETCH).
    NotFound,
    Failed,
    Cancelled,
}

/// The message of a transfer's end.
pub(crate) fn transfer(kind: Kind, end: End) -> &'static str {
    match (kind, end) {
        (Kind::GetFile, End::Done) => "c> GET_FILE OK",
        (Kind::GetFile, End::NotFound) => "c> GET_FILE FAIL / FILE NOT EXIST",
        (Kind::GetFile, End::Failed | End::Cancelled) => "c> GET_FILE FAIL",
        // peerdex client extensions (PROTOCOL.md section 5).
        (Kind::Fetch, End::Done) => "c> FETCH OK",
        (Kind::Fetch, End::NotFound) => "c> FETCH FAIL / FILE NOT EXIST",
        (Kind::Fetch, End::Failed | End::Cancelled) => "c> FETCH FAIL",
    }
}

/// The message of WATCH, UNWATCH or WATCHES (client extensions).
pub(crate) fn watch(op: WatchOp, ok: bool) -> &'static str {
    match (op, ok) {
        (WatchOp::Watch, true) => "c> WATCH OK",
        (WatchOp::Watch, false) => "c> WATCH FAIL",
        (WatchOp::Unwatch, true) => "c> UNWATCH OK",
        (WatchOp::Unwatch, false) => "c> UNWATCH FAIL",
        (WatchOp::Watches, true) => "c> WATCHES OK",
        (WatchOp::Watches, false) => "c> WATCHES FAIL",
    }
}

pub(crate) const JOBS_OK: &str = "c> JOBS OK";
pub(crate) const CANCEL_OK: &str = "c> CANCEL OK";
pub(crate) const CANCEL_FAIL: &str = "c> CANCEL FAIL";
pub(crate) const RESHARE_OK: &str = "c> RESHARE OK";

/// Whether a message tells of success or failure: its colour, and the exit status
/// of a script.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Verdict {
    Ok,
    Fail,
}

/// `line` between the ANSI codes of its verdict's colour (green OK, red FAIL); the
/// text itself is unchanged.
pub(crate) fn painted(line: &str, verdict: Option<Verdict>) -> String {
    match verdict {
        Some(Verdict::Ok) => format!("\x1b[32m{line}\x1b[0m"),
        Some(Verdict::Fail) => format!("\x1b[31m{line}\x1b[0m"),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statement's table, by code: each operation's cells for codes 0 to 3 ("" is
    /// a code the operation does not define) and its FAIL message.
    const TABLE: [(Op, [&str; 5]); 9] = [
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

    #[test]
    fn every_cell_of_the_table() {
        for (op, cells) in TABLE {
            let fail = format!("c> {}", cells[4]);
            for (code, cell) in cells[..4].iter().enumerate() {
                let expected = if cell.is_empty() {
                    fail.clone()
                } else {
                    format!("c> {cell}")
                };
                let status = Status::from_code(op, code as u8);
                assert_eq!(reply(op, status), expected, "{op:?} code {code}");
            }
            for code in [4u8, 255] {
                assert_eq!(reply(op, Status::from_code(op, code)), fail);
            }
            assert_eq!(reply(op, Some(Status::OtherError)), fail);
            assert_eq!(reply(op, None), fail);
        }
    }

    #[test]
    fn transfer_messages_and_colours() {
        assert_eq!(transfer(Kind::GetFile, End::Done), "c> GET_FILE OK");
        assert_eq!(
            transfer(Kind::GetFile, End::NotFound),
            "c> GET_FILE FAIL / FILE NOT EXIST"
        );
        assert_eq!(transfer(Kind::Fetch, End::Cancelled), "c> FETCH FAIL");
        assert_eq!(
            painted("c> DELETE OK", Some(Verdict::Ok)),
            "\x1b[32mc> DELETE OK\x1b[0m"
        );
        assert_eq!(
            painted("c> DELETE FAIL", Some(Verdict::Fail)),
            "\x1b[31mc> DELETE FAIL\x1b[0m"
        );
        assert_eq!(painted("c> commands:", None), "c> commands:");
    }
}
