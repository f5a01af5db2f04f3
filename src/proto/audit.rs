//! Audit records: one per request the index server receives (PROTOCOL.md section 3),
//! and their printed line. Shared by the server (which spools and ships them) and the
//! logger (which prints and stores them).

use serde::{Deserialize, Serialize};

use super::index::{Op, Status};
use super::text::push_escaped;

/// One audited request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AuditRecord {
    /// The user who performed the operation.
    pub user: String,
    /// The operation text: the OP name, with the file for PUBLISH and DELETE.
    pub operation: String,
    /// The DATETIME that came with the request, or the server's time for clients
    /// that send none.
    pub datetime: String,
    /// The result code byte the client got (0 = OK), or [`NO_REPLY`] when the
    /// server sent none (an action of its own, such as a liveness DISCONNECT).
    pub result: i32,
}

/// [`AuditRecord::result`] of a request that got no reply (`LOG_NO_REPLY`).
pub(crate) const NO_REPLY: i32 = -1;

impl AuditRecord {
    #[cfg(test)]
    /// The printed form, `alice    PUBLISH notes.txt    17/12/2014 13:20:35`.
    pub(crate) fn line(&self) -> String {
        let mut out =
            String::with_capacity(self.user.len() + self.operation.len() + self.datetime.len() + 8);
        push_line(&mut out, &self.user, &self.operation, &self.datetime);
        out
    }
}

/// Appends the printed form of a record made of these fields to `out` (for
/// printers that gather many lines in one buffer), with control and bidi
/// characters escaped: the fields come from the network.
pub(crate) fn push_line(out: &mut String, user: &str, operation: &str, datetime: &str) {
    push_escaped(out, user);
    out.push_str("    ");
    push_escaped(out, operation);
    out.push_str("    ");
    push_escaped(out, datetime);
}

/// Appends what a record's outcome adds to its printed line: nothing for result
/// 0 (the line stays the statement's), `    FAIL n MEANING` for a refused request
/// (the code the client got and what it means for the operation the text names,
/// as the dashboard and `server --explain` say it), `    NO REPLY` when the
/// client got none.
pub(crate) fn push_result(out: &mut String, operation: &str, result: i32) {
    use std::fmt::Write;
    match result {
        0 => {}
        NO_REPLY => out.push_str("    NO REPLY"),
        n => {
            let _ = write!(out, "    FAIL {n}");
            if let Some(meaning) = meaning(operation, n) {
                let _ = write!(out, " {meaning}");
            }
        }
    }
}

/// What result `code` means for the operation an audit text starts with.
fn meaning(operation: &str, code: i32) -> Option<&'static str> {
    let name = operation.split(' ').next()?;
    let op = Op::from_name(name.as_bytes())?;
    let status = Status::from_code(op, u8::try_from(code).ok()?)?;
    Some(status.meaning())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_matches_protocol_example() {
        let r = AuditRecord {
            user: "alice".into(),
            operation: "PUBLISH notes.txt".into(),
            datetime: "17/12/2014 13:20:35".into(),
            result: 0,
        };
        assert_eq!(
            r.line(),
            "alice    PUBLISH notes.txt    17/12/2014 13:20:35"
        );
    }

    #[test]
    fn only_a_failure_adds_to_the_line() {
        let with = |result| {
            let mut out = String::from("alice    UNREGISTER    17/12/2014 13:20:35");
            push_result(&mut out, "UNREGISTER", result);
            out
        };
        assert_eq!(with(0), "alice    UNREGISTER    17/12/2014 13:20:35");
        assert_eq!(
            with(1),
            "alice    UNREGISTER    17/12/2014 13:20:35    FAIL 1 USER DOES NOT EXIST"
        );
        // A code the operation does not have is shown bare.
        assert_eq!(
            with(9),
            "alice    UNREGISTER    17/12/2014 13:20:35    FAIL 9"
        );
        assert_eq!(
            with(NO_REPLY),
            "alice    UNREGISTER    17/12/2014 13:20:35    NO REPLY"
        );
    }
}
