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
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_the_ones_rpc_logger_x_declares() {
        let x = include_str!("../../rpc/logger.x");
        for (name, value) in [
            ("LOG_MAX_USER", MAX_USER),
            ("LOG_MAX_OPERATION", MAX_OPERATION),
            ("LOG_MAX_DATETIME", MAX_DATETIME),
        ] {
            let line = format!("const {name} = {value};");
            assert!(x.contains(&line), "rpc/logger.x lacks `{line}`");
        }
    }
    use proptest::prelude::*;

    fn rec() -> LogRecord<'static> {
        LogRecord {
            server_id: 0x0102_0304_0506_0708,
            seq: 7,
            user: "alice".into(),
            operation: "PUBLISH notes.txt".into(),
            datetime: "17/12/2014 13:20:35".into(),
            result: None,
        }
    }

    #[test]
    fn version_3_appends_the_result_as_an_int() {
        let mut r = rec();
        let mut v2 = Vec::new();
        r.encode(&mut v2);
        r.result = Some(-1);
        assert_eq!(r.version(), V3);
        let mut v3 = Vec::new();
        r.encode(&mut v3);
        assert_eq!(&v3[..v2.len()], &v2[..]);
        assert_eq!(&v3[v2.len()..], &[0xff; 4]);
        assert_eq!(LogRecord::decode_version(&v3, V3).unwrap(), r);
        // Each version's argument is whole: neither decodes as the other.
        assert!(LogRecord::decode_version(&v3, V2).is_err());
        assert!(LogRecord::decode_version(&v2, V3).is_err());
    }

    #[test]
    fn record_encoding_matches_rpcgen_layout() {
        let mut out = Vec::new();
        rec().encode(&mut out);
        // hyper, hyper, then three padded strings.
        assert_eq!(&out[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&out[8..16], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&out[16..20], &[0, 0, 0, 5]);
        assert_eq!(&out[20..28], b"alice\0\0\0");
        assert_eq!(LogRecord::decode(&out).unwrap(), rec());
    }

    #[test]
    fn over_long_fields_are_clipped_on_encode() {
        let mut r = rec();
        r.user = "é".repeat(200).into(); // 400 bytes
        let mut out = Vec::new();
        r.encode(&mut out);
        let back = LogRecord::decode(&out).unwrap();
        assert_eq!(back.user.len(), 256);
    }

    #[test]
    fn rejects_user_over_limit_and_trailing_bytes() {
        let mut out = Vec::new();
        xdr::put_u64(&mut out, 1);
        xdr::put_u64(&mut out, 1);
        xdr::put_string(&mut out, &"u".repeat(257));
        assert!(matches!(
            LogRecord::decode(&out),
            Err(XdrError::TooLong { field: "user", .. })
        ));
        let mut out = Vec::new();
        rec().encode(&mut out);
        out.extend_from_slice(&[0; 4]);
        assert_eq!(
            LogRecord::decode(&out),
            Err(XdrError::Trailing { extra: 4 })
        );
    }

    #[test]
    fn v1_and_status_round_trip() {
        let mut out = Vec::new();
        encode_v1("hello", &mut out);
        assert_eq!(decode_v1(&out).unwrap(), "hello");
        let mut out = Vec::new();
        xdr::put_i32(&mut out, LOG_DUPLICATE);
        assert_eq!(decode_status(&out).unwrap(), LOG_DUPLICATE);
        assert!(decode_status(&[0, 0]).is_err());
    }

    fn strings(values: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            xdr::put_string(&mut out, v);
        }
        out
    }

    #[test]
    fn any_argument_of_strings_and_ints_decodes() {
        let text = |s: &str| ArgValue::Text(s.to_owned());
        assert_eq!(
            decode_any(&strings(&["one line"])).unwrap(),
            [text("one line")]
        );
        let four = strings(&["alice", "PUBLISH", "notes.txt", "17/12/2014 13:20:35"]);
        let got = decode_any(&four).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[2], text("notes.txt"));
        assert_eq!(describe_shape(&got), "4 strings");
        // An unset field is an empty string.
        let got = decode_any(&strings(&["bob", "REGISTER", "", "x"])).unwrap();
        assert_eq!(got[2], text(""));
        // An int among the strings: 3 is not a string here (its 3 "bytes" are
        // the next length's zeros).
        let mut mixed = Vec::new();
        xdr::put_i32(&mut mixed, 3);
        mixed.extend(strings(&["abc"]));
        xdr::put_i32(&mut mixed, -1);
        let got = decode_any(&mixed).unwrap();
        assert_eq!(got, [ArgValue::Int(3), text("abc"), ArgValue::Int(-1)]);
        assert_eq!(describe_shape(&got), "a string and 2 ints");
        assert!(decode_any(&[0, 0, 0, 5, b'a']).is_err());
        assert!(decode_any(&[0, 0]).is_err());
        assert!(decode_any(&[0; 4 * (MAX_V1_VALUES + 1)]).is_err());
        assert_eq!(decode_any(&[]).unwrap(), []);
    }

    #[test]
    fn program_numbers_parse_in_hex_and_decimal() {
        assert_eq!(parse_program("0x20000001"), Ok(DEFAULT_PROGRAM));
        assert_eq!(parse_program("536870913"), Ok(DEFAULT_PROGRAM));
        assert!(parse_program("0").is_err());
        assert!(parse_program("0xzz").is_err());
    }

    proptest! {
        #[test]
        fn records_round_trip(server_id: u64, seq: u64, user in "[a-z]{0,256}",
                              operation in ".{0,100}", datetime in "[0-9/: ]{0,64}") {
            let r = LogRecord { server_id, seq, user: user.into(), operation: operation.into(), datetime: datetime.into(), result: None };
            let mut out = Vec::new();
            r.encode(&mut out);
            prop_assert_eq!(&LogRecord::decode(&out).unwrap(), &r);
            let r = LogRecord { result: Some(seq as i32), ..r };
            let mut out = Vec::new();
            r.encode(&mut out);
            prop_assert_eq!(LogRecord::decode_version(&out, V3).unwrap(), r);
        }

        #[test]
        fn arbitrary_arguments_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = LogRecord::decode(&bytes);
            let _ = LogRecord::decode_version(&bytes, V3);
            let _ = decode_v1(&bytes);
            let _ = decode_any(&bytes);
        }
    }
}
