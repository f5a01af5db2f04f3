//! The logger's RPC interface, `rpc/logger.x`, in Rust: program and procedure
//! numbers, the version 2 and 3 records and their status codes, and their XDR encodings.
//!
//! Owns: everything that must agree byte for byte with `rpc/logger.x` (keep the two
//! in step). Does not own: XDR primitives (`xdr`), RPC messages (`rpc`), serving
//! (`logger`) or sending (`shipper`).

use std::borrow::Cow;

use crate::proto::wire;
use crate::rpc::xdr::{self, Reader, XdrError};

/// Default program number (0x20000000-0x3fffffff is the range for users).
pub(crate) const DEFAULT_PROGRAM: u32 = 0x2000_0001;
/// The lab's original interface: `void LOG(string) = 1`.
pub(crate) const V1: u32 = 1;
/// The structured record: `int LOG(log_record) = 1`.
pub(crate) const V2: u32 = 2;
/// The record with the request's outcome: `int LOG(log_record3) = 1`.
pub(crate) const V3: u32 = 3;
/// Procedure 0 of every version.
pub(crate) const PROC_NULL: u32 = 0;
/// The LOG procedure, in every version.
pub(crate) const PROC_LOG: u32 = 1;

/// `LOG_MAX_USER`: the user name limit of the index protocol.
pub(crate) const MAX_USER: u32 = wire::MAX_FIELD as u32;
/// `LOG_MAX_OPERATION`: "PUBLISH " plus a file name at the index protocol's limit,
/// with room for " REFUSED from <address>".
pub(crate) const MAX_OPERATION: u32 = 2 * wire::MAX_FIELD as u32;
/// `LOG_MAX_DATETIME`: the DATETIME limit of the index protocol.
pub(crate) const MAX_DATETIME: u32 = wire::MAX_DATETIME as u32;
/// Bound on the version 1 string. The .x leaves it unbounded (the lab's shape);
/// the record size limit of the transport caps it anyway, this keeps one call
/// from printing a 64 KiB line.
pub(crate) const MAX_V1_TEXT: u32 = 4096;

/// `LOG_STORED`: printed and appended to the audit file.
pub(crate) const LOG_STORED: i32 = 0;
/// `LOG_DUPLICATE`: stored earlier; acknowledged, not stored again.
pub(crate) const LOG_DUPLICATE: i32 = 1;
/// `LOG_FAILED`: not stored (audit file error); the sender should retry later.
pub(crate) const LOG_FAILED: i32 = 2;
/// `LOG_REFUSED`: not stored, and never will be as sent: a sequence number too
/// far above the highest stored for its server, or a datagram for a server whose
/// records come over TCP (the marks of a forged record).
pub(crate) const LOG_REFUSED: i32 = 3;

/// A version 2 `log_record` (`result` None) or a version 3 `log_record3`
/// (`result` Some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRecord<'a> {
    pub server_id: u64,
    pub seq: u64,
    /// Borrowed when sending (from the spool entry, never copied per attempt),
    /// owned when received.
    pub user: Cow<'a, str>,
    pub operation: Cow<'a, str>,
    pub datetime: Cow<'a, str>,
    /// Version 3: the result code byte the client got, or -1 (`LOG_NO_REPLY`)
    /// when it got none.
    pub result: Option<i32>,
}

impl LogRecord<'_> {
    /// The version this record is sent as: 3 with a result, else 2.
    pub(crate) fn version(&self) -> u32 {
        if self.result.is_some() { V3 } else { V2 }
    }

    /// Appends the XDR encoding of its version. Fields longer than their bounds
    /// are cut (at a character boundary) so that the logger never rejects what
    /// the server sends.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        xdr::put_u64(out, self.server_id);
        xdr::put_u64(out, self.seq);
        xdr::put_string(out, clip(&self.user, MAX_USER));
        xdr::put_string(out, clip(&self.operation, MAX_OPERATION));
        xdr::put_string(out, clip(&self.datetime, MAX_DATETIME));
        if let Some(result) = self.result {
            xdr::put_i32(out, result);
        }
    }

    #[cfg(test)]
    /// Decodes a whole version 2 argument (nothing may be left over).
    pub(crate) fn decode(bytes: &[u8]) -> Result<LogRecord<'static>, XdrError> {
        Self::decode_version(bytes, V2)
    }

    /// Decodes a whole argument of LOG version 2 or 3 (`version` 3: with the
    /// result).
    pub(crate) fn decode_version(
        bytes: &[u8],
        version: u32,
    ) -> Result<LogRecord<'static>, XdrError> {
        let mut r = Reader::new(bytes);
        let rec = LogRecord {
            server_id: r.u64("server_id")?,
            seq: r.u64("seq")?,
            user: r.string("user", MAX_USER)?.into(),
            operation: r.string("operation", MAX_OPERATION)?.into(),
            datetime: r.string("datetime", MAX_DATETIME)?.into(),
            result: if version >= V3 {
                Some(r.i32("result")?)
            } else {
                None
            },
        };
        r.finish()?;
        Ok(rec)
    }
}

/// Decodes the version 1 argument, one string.
pub(crate) fn decode_v1(bytes: &[u8]) -> Result<String, XdrError> {
    let mut r = Reader::new(bytes);
    let s = r.string("text", MAX_V1_TEXT)?;
    r.finish()?;
    Ok(s)
}

/// Most values read from a version 1 argument of unknown shape: students' structs
/// have 3 or 4 strings; 32 leaves room and keeps one call's printed line short.
pub(crate) const MAX_V1_VALUES: usize = 32;

/// One value of a LOG argument whose shape the logger was not told: what
/// students' loggers take (PROTOCOL.md section 3, "What students send").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgValue {
    Text(String),
    Int(i32),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgValue::Text(s) => f.write_str(s),
            ArgValue::Int(n) => write!(f, "{n}"),
        }
    }
}

/// Decodes an argument that is any sequence of XDR strings and ints (a single
/// string, a struct of strings in any order, a struct with an int): every value
/// is a string when its 4 bytes are a length followed by that many bytes of
/// printable UTF-8 and zero padding, else an int. A length of 0 is an empty
/// string (an unset file field is far more common than an int 0). Fails on
/// bytes left that are not a whole 4-byte unit, or past [`MAX_V1_VALUES`].
pub(crate) fn decode_any(bytes: &[u8]) -> Result<Vec<ArgValue>, XdrError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 4 || out.len() == MAX_V1_VALUES {
            return Err(XdrError::Trailing { extra: rest.len() });
        }
        let word = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = word as usize;
        let padded = len + xdr::padding(len);
        let text = (word <= MAX_V1_TEXT && rest.len() - 4 >= padded)
            .then(|| &rest[4..4 + padded])
            .filter(|b| b[len..].iter().all(|&p| p == 0))
            .and_then(|b| std::str::from_utf8(&b[..len]).ok())
            .filter(|t| !t.chars().any(char::is_control));
        match text {
            Some(t) => {
                out.push(ArgValue::Text(t.to_owned()));
                rest = &rest[4 + padded..];
            }
            None => {
                out.push(ArgValue::Int(word as i32));
                rest = &rest[4..];
            }
        }
    }
    Ok(out)
}

/// Describes the shape of a decoded argument for the console: `a string`,
/// `4 strings`, `3 strings and an int`.
pub(crate) fn describe_shape(values: &[ArgValue]) -> String {
    let texts = values
        .iter()
        .filter(|v| matches!(v, ArgValue::Text(_)))
        .count();
    let ints = values.len() - texts;
    let part = |n: usize, one: &str, many: &str| match n {
        0 => None,
        1 => Some(one.to_owned()),
        n => Some(format!("{n} {many}")),
    };
    let parts: Vec<String> = [
        part(texts, "a string", "strings"),
        part(ints, "an int", "ints"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(" and ")
    }
}

/// Encodes the version 1 argument (the shipper's calls to a statement logger).
pub(crate) fn encode_v1(text: &str, out: &mut Vec<u8>) {
    xdr::put_string(out, clip(text, MAX_V1_TEXT));
}

/// Decodes the version 2 result, one int.
pub(crate) fn decode_status(bytes: &[u8]) -> Result<i32, XdrError> {
    let mut r = Reader::new(bytes);
    let v = r.i32("status")?;
    r.finish()?;
    Ok(v)
}

/// Parses a program number given as decimal or as 0x-prefixed hexadecimal (clap
/// value parser for `--program`).
pub(crate) fn parse_program(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse::<u32>(),
    };
    match parsed {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a program number (decimal or 0x hex, e.g. 0x20000001)"
        )),
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn clip(s: &str, max: u32) -> &str {
    &s[..s.floor_char_boundary(max as usize)]
}

#[cfg(test)]
mod tests;
