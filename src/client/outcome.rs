//! What a command came to: [`Outcome`], a value the shell renders (its message
//! line, the entry lines of a list, a note on stderr) and judges (OK, FAIL or
//! neither) without reading any text back.
//!
//! Owns: the outcome types and how each becomes text. Does not own: the fixed
//! strings (`messages`), where the text goes (`output`).

use crate::proto::index::{Op, Status};

use super::command::{Kind, Refusal, WatchOp};
use super::messages::{self, End, Verdict};

/// The result of one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing to say (an empty line, a comment, a background job queued: its
    /// number is said on stderr).
    Silent,
    /// An index operation's reply (with one line per entry of a list), or the
    /// client's own refusal with the status it means (`None`: no usable reply).
    Reply {
        op: Op,
        status: Option<Status>,
        entries: Vec<String>,
    },
    /// A transfer run in the foreground ended, or a background one never started.
    Transfer {
        kind: Kind,
        end: End,
    },
    /// JOBS: one line per job.
    Jobs(Vec<String>),
    /// CANCEL: whether a queued or running job was stopped.
    Cancel(bool),
    Reshare,
    /// WATCH, UNWATCH, WATCHES: whether it did what was asked, and WATCHES's lines.
    Watch {
        op: WatchOp,
        ok: bool,
        entries: Vec<String>,
    },
    Help(String),
    Refused(Refusal),
    /// A line longer than the limit (in bytes) was skipped.
    Overlong(usize),
    /// QUIT: the shell decides whether it may end now.
    Quit,
}

impl Outcome {
    /// A reply without entries.
    pub(crate) fn reply(op: Op, status: Option<Status>) -> Outcome {
        Outcome::Reply {
            op,
            status,
            entries: Vec::new(),
        }
    }

    /// The answer for an operation that needs a connected user when there is none.
    pub(crate) fn not_connected(op: Op) -> Outcome {
        Outcome::reply(op, Some(Status::NotConnected))
    }

    /// Whether the outcome tells of success or failure (`None`: neither, e.g. HELP).
    pub(crate) fn verdict(&self) -> Option<Verdict> {
        let ok = match self {
            Outcome::Silent | Outcome::Help(_) | Outcome::Quit => return None,
            Outcome::Reply { status, .. } => *status == Some(Status::Ok),
            Outcome::Transfer { end, .. } => *end == End::Done,
            Outcome::Jobs(_) | Outcome::Reshare => true,
            Outcome::Cancel(ok) | Outcome::Watch { ok, .. } => *ok,
            Outcome::Refused(_) | Outcome::Overlong(_) => false,
        };
        Some(if ok { Verdict::Ok } else { Verdict::Fail })
    }

    /// The message line, `None` when there is none.
    pub(crate) fn message(&self) -> Option<String> {
        let line = match self {
            Outcome::Silent | Outcome::Quit => return None,
            Outcome::Reply { op, status, .. } => messages::reply(*op, *status).to_owned(),
            Outcome::Transfer { kind, end } => messages::transfer(*kind, *end).to_owned(),
            Outcome::Jobs(_) => messages::JOBS_OK.to_owned(),
            Outcome::Cancel(true) => messages::CANCEL_OK.to_owned(),
            Outcome::Cancel(false) | Outcome::Refused(Refusal::NotAJob(_)) => {
                messages::CANCEL_FAIL.to_owned()
            }
            Outcome::Reshare => messages::RESHARE_OK.to_owned(),
            Outcome::Watch { op, ok, .. } => messages::watch(*op, *ok).to_owned(),
            Outcome::Help(text) => text.lines().next().unwrap_or_default().to_owned(),
            Outcome::Refused(Refusal::Unknown(word)) => {
                format!("c> unknown command {word}: HELP lists the commands")
            }
            Outcome::Refused(Refusal::Usage(spec)) => format!("c> usage: {}", spec.usage),
            Outcome::Refused(Refusal::NotBackground(word)) => {
                format!("c> {word} cannot run in the background (only GET_FILE and FETCH)")
            }
            Outcome::Overlong(limit) => format!("c> line longer than {limit} bytes ignored"),
        };
        Some(line)
    }

    /// The lines after the message (list entries, HELP's commands), each ending in
    /// a newline.
    pub(crate) fn details(&self) -> String {
        match self {
            Outcome::Reply { entries, .. }
            | Outcome::Jobs(entries)
            | Outcome::Watch { entries, .. } => {
                entries.iter().map(|e| format!("\t{e}\n")).collect()
            }
            Outcome::Help(text) => text.split_once('\n').map_or("", |(_, r)| r).to_owned(),
            _ => String::new(),
        }
    }

    /// A note for stderr that the outcome carries itself (why a line was refused).
    pub(crate) fn note(&self) -> Option<String> {
        match self {
            Outcome::Refused(Refusal::NotAJob(n)) => Some(format!(
                "CANCEL: no queued or running transfer {n} (JOBS lists them)"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::command::{self, Command};

    #[test]
    fn every_status_but_ok_fails_and_no_reply_fails() {
        for op in Op::ALL {
            for &status in Status::of(op) {
                let want = if status == Status::Ok {
                    Verdict::Ok
                } else {
                    Verdict::Fail
                };
                assert_eq!(Outcome::reply(op, Some(status)).verdict(), Some(want));
            }
            assert_eq!(Outcome::reply(op, None).verdict(), Some(Verdict::Fail));
        }
    }

    #[test]
    fn refusals_fail_and_help_is_neither() {
        let refused = |line: &str| Outcome::Refused(command::parse(line).unwrap_err());
        let usage = refused("QUIT now");
        assert_eq!(usage.message().unwrap(), "c> usage: QUIT");
        assert_eq!(usage.verdict(), Some(Verdict::Fail));
        let unknown = refused("X");
        assert_eq!(
            unknown.message().unwrap(),
            "c> unknown command X: HELP lists the commands"
        );
        assert_eq!(unknown.verdict(), Some(Verdict::Fail));
        let cancel = refused("CANCEL x");
        assert_eq!(cancel.message().unwrap(), "c> CANCEL FAIL");
        assert!(cancel.note().unwrap().contains("transfer x"));
        let help = Outcome::Help(command::help());
        assert_eq!(help.verdict(), None);
        assert_eq!(
            help.message().unwrap(),
            "c> commands (the command word is case-insensitive):"
        );
        assert_eq!(help.details().lines().count(), command::COMMANDS.len());
        assert!(matches!(command::parse("QUIT"), Ok(Some(Command::Quit))));
        assert_eq!(Outcome::Quit.message(), None);
    }

    #[test]
    fn transfers_succeed_only_when_done() {
        let out = |end| Outcome::Transfer {
            kind: Kind::GetFile,
            end,
        };
        assert_eq!(out(End::Done).verdict(), Some(Verdict::Ok));
        for end in [End::NotFound, End::Failed, End::Cancelled] {
            assert_eq!(out(end).verdict(), Some(Verdict::Fail));
        }
        let list = Outcome::Reply {
            op: Op::ListUsers,
            status: Some(Status::Ok),
            entries: vec!["alice 127.0.0.1 5000".into()],
        };
        assert_eq!(list.details(), "\talice 127.0.0.1 5000\n");
    }
}
