//! The LOG interface of a student's logger, as `--logger-interface` and
//! `--logger-args` describe it (PROTOCOL.md section 3, "Shipping to a student's
//! logger"; docs/LOGGER-INTERFACE.md has an example .x).
//!
//! Owns: the interface setting (program, version, procedure, and the argument as
//! an ordered list of string fields), parsing it from the command line, and
//! encoding one audit record as that argument. Does not own: sending (`shipper`),
//! XDR primitives (`xdr`).

use crate::proto::audit::push_line;
use crate::rpc::message::ReplyError;
use crate::rpc::xdr;

/// One string field of a student's LOG argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgField {
    /// The user name.
    User,
    /// The operation: its name alone when the argument also has `file`, else
    /// with the file for PUBLISH and DELETE (the statement's printed form).
    Operation,
    /// The file of PUBLISH and DELETE; empty for other operations.
    File,
    /// The request's DATETIME.
    Datetime,
    /// The result code the client got, in decimal (-1: no reply).
    Result,
    /// The whole printed line, `user    OPERATION    datetime`.
    Line,
}

impl ArgField {
    const NAMES: [(&'static str, ArgField); 6] = [
        ("user", ArgField::User),
        ("operation", ArgField::Operation),
        ("file", ArgField::File),
        ("datetime", ArgField::Datetime),
        ("result", ArgField::Result),
        ("line", ArgField::Line),
    ];

    fn parse(s: &str) -> Result<ArgField, String> {
        let s = s.trim().to_ascii_lowercase();
        let s = match s.as_str() {
            "op" => "operation",
            "date" | "time" => "datetime",
            other => other,
        };
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, f)| f)
            .ok_or_else(|| {
                format!("'{s}' is not a field (user, operation, file, datetime, result, line)")
            })
    }
}

/// Parses `--logger-args`: field names separated by commas, at least one.
pub(crate) fn parse_fields(s: &str) -> Result<Vec<ArgField>, String> {
    let fields = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(ArgField::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if fields.is_empty() {
        return Err("give at least one field, e.g. user,operation,datetime".into());
    }
    Ok(fields)
}

/// The fields of `--logger-args`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldList(pub(crate) Vec<ArgField>);

/// Parses `--logger-args` (clap value parser).
pub(crate) fn parse_field_list(s: &str) -> Result<FieldList, String> {
    parse_fields(s).map(FieldList)
}

/// The three numbers of `--logger-interface PROG:VERS:PROC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbers {
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
}

/// Parses `PROG:VERS:PROC` (PROG decimal or 0x hex, VERS and PROC decimal).
pub(crate) fn parse_numbers(s: &str) -> Result<Numbers, String> {
    let bad = || format!("'{s}' is not PROGRAM:VERSION:PROCEDURE (e.g. 0x31234567:1:1)");
    let mut parts = s.trim().split(':');
    let (Some(p), Some(v), Some(c), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let program = crate::rpc::logprog::parse_program(p)?;
    let version = v.trim().parse::<u32>().map_err(|_| bad())?;
    let procedure = c.trim().parse::<u32>().map_err(|_| bad())?;
    if procedure == 0 {
        return Err(format!(
            "'{s}': procedure 0 is NULL in every RPC program; give the number of LOG"
        ));
    }
    Ok(Numbers {
        program,
        version,
        procedure,
    })
}

/// A student's LOG interface: where to call and what argument to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub numbers: Numbers,
    pub fields: Vec<ArgField>,
}

impl Interface {
    /// `PROG:VERS:PROC fields...`, as the console and the log say it.
    pub(crate) fn describe(&self) -> String {
        let names: Vec<&str> = self
            .fields
            .iter()
            .map(|f| {
                ArgField::NAMES
                    .iter()
                    .find(|(_, g)| g == f)
                    .map_or("?", |(n, _)| n)
            })
            .collect();
        format!(
            "program 0x{:08x} version {} procedure {} with ({})",
            self.numbers.program,
            self.numbers.version,
            self.numbers.procedure,
            names.join(", ")
        )
    }

    /// Appends the XDR argument for one audit record: each field as a string,
    /// in order (an rpcgen struct of strings, or one string).
    pub(crate) fn encode(
        &self,
        user: &str,
        operation: &str,
        datetime: &str,
        result: Option<i32>,
        out: &mut Vec<u8>,
    ) {
        let has_file = self.fields.contains(&ArgField::File);
        let (name, file) = split_operation(operation);
        let mut text = String::new();
        for field in &self.fields {
            text.clear();
            let value: &str = match field {
                ArgField::User => user,
                ArgField::Operation if has_file => name,
                ArgField::Operation => operation,
                ArgField::File => file,
                ArgField::Datetime => datetime,
                ArgField::Result => {
                    text = result.map_or_else(String::new, |r| r.to_string());
                    &text
                }
                ArgField::Line => {
                    push_line(&mut text, user, operation, datetime);
                    &text
                }
            };
            xdr::put_string(out, clip(value));
        }
    }
}

/// What a mismatch answer means for the interface options: the answer's name
/// in RFC 5531 and the option that fixes it (said once by the shipper).
pub(crate) fn mismatch_advice(e: &ReplyError) -> (&'static str, String) {
    match e {
        ReplyError::GarbageArgs => (
            "GARBAGE_ARGS",
            "its LOG takes another argument: give its fields in the order of its .x with --logger-args (e.g. --logger-args user,operation,datetime for a struct of three strings)".to_owned(),
        ),
        ReplyError::ProcUnavail => (
            "PROC_UNAVAIL",
            "its LOG has another procedure number: give it with --logger-proc N (or --logger-interface PROG:VERS:PROC)".to_owned(),
        ),
        ReplyError::ProgUnavail => (
            "PROG_UNAVAIL",
            "the program listening there has another number: give it with --program (or --logger-interface PROG:VERS:PROC)".to_owned(),
        ),
        ReplyError::ProgMismatch { low, high } => (
            "PROG_MISMATCH",
            format!(
                "it offers versions {low} to {high}: give its version with --logger-version N (or --logger-interface PROG:VERS:PROC)"
            ),
        ),
        _ => ("an error", "check its interface (docs/LOGGER-INTERFACE.md)".to_owned()),
    }
}

/// Longest string field sent: students' `string x<256>` bounds and `char[256]`
/// buffers both take 255 bytes and a NUL.
const MAX_STRING: usize = 255;

/// `s` cut to at most [`MAX_STRING`] bytes, at a character boundary.
fn clip(s: &str) -> &str {
    &s[..s.floor_char_boundary(MAX_STRING)]
}

/// Splits an audit operation text into the operation name and the file of
/// PUBLISH and DELETE: `PUBLISH notes.txt` gives (`PUBLISH`, `notes.txt`);
/// a suffix such as ` REFUSED from ...` stays off both.
fn split_operation(operation: &str) -> (&str, &str) {
    let mut words = operation.split(' ');
    let name = words.next().unwrap_or("");
    let file = match name {
        "PUBLISH" | "DELETE" => words.next().unwrap_or(""),
        _ => "",
    };
    (name, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::logprog::{ArgValue, decode_any};

    fn sent(fields: &str, operation: &str) -> Vec<String> {
        let iface = Interface {
            numbers: parse_numbers("0x31234567:1:1").unwrap(),
            fields: parse_fields(fields).unwrap(),
        };
        let mut out = Vec::new();
        iface.encode("alice", operation, "17/12/2014 13:20:35", Some(0), &mut out);
        decode_any(&out)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                ArgValue::Text(t) => t,
                ArgValue::Int(n) => format!("int {n}"),
            })
            .collect()
    }

    #[test]
    fn fields_are_sent_in_the_order_given() {
        assert_eq!(
            sent("user,operation,datetime", "PUBLISH notes.txt"),
            ["alice", "PUBLISH notes.txt", "17/12/2014 13:20:35"]
        );
        assert_eq!(
            sent("datetime,user,operation,file", "PUBLISH notes.txt"),
            ["17/12/2014 13:20:35", "alice", "PUBLISH", "notes.txt"]
        );
        assert_eq!(
            sent(
                "user,operation,file,datetime",
                "DELETE a.txt REFUSED from 10.0.0.1"
            ),
            ["alice", "DELETE", "a.txt", "17/12/2014 13:20:35"]
        );
        assert_eq!(
            sent("user,op,file,result", "REGISTER"),
            ["alice", "REGISTER", "", "0"]
        );
        assert_eq!(
            sent("line", "REGISTER"),
            ["alice    REGISTER    17/12/2014 13:20:35"]
        );
    }

    #[test]
    fn each_mismatch_is_named_as_rfc_5531_does_with_the_option_that_fixes_it() {
        for (e, name, option) in [
            (ReplyError::GarbageArgs, "GARBAGE_ARGS", "--logger-args"),
            (ReplyError::ProcUnavail, "PROC_UNAVAIL", "--logger-proc"),
            (ReplyError::ProgUnavail, "PROG_UNAVAIL", "--program"),
            (
                ReplyError::ProgMismatch { low: 1, high: 1 },
                "PROG_MISMATCH",
                "--logger-version",
            ),
        ] {
            let (answer, remedy) = mismatch_advice(&e);
            assert_eq!(answer, name);
            assert!(remedy.contains(option), "{remedy}");
        }
    }

    #[test]
    fn settings_parse_like_a_user_writes_them() {
        assert_eq!(
            parse_numbers("100495794:1:1").unwrap(),
            Numbers {
                program: 100_495_794,
                version: 1,
                procedure: 1
            }
        );
        assert_eq!(parse_numbers("0x20000001:2:7").unwrap().procedure, 7);
        for bad in ["0x1:1", "0x1:1:1:1", "x:1:1", "0x1:a:1", "0x1:1:0", "0:1:1"] {
            assert!(parse_numbers(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_fields(" User , DATETIME").unwrap(),
            [ArgField::User, ArgField::Datetime]
        );
        assert!(parse_fields("user,host").is_err());
        assert!(parse_fields(",").is_err());
    }
}
