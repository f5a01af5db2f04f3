//! NUL-terminated string framing, shared by the index protocol (PROTOCOL.md section 1)
//! and the peer protocol (section 2).
//!
//! Owns: the byte-level limits, a bounded field reader over any `Read`, the helpers
//! that append fields to an output buffer, and the one error type for framing
//! failures. Does not own: what the fields mean (see `index` and `peer`), sockets
//! and timeouts (see `net`).
//!
//! Every field travels as its bytes followed by one `\0`. The reader never holds more
//! than [`READ_BUFFER`] bytes, whatever the peer sends: a field longer than its limit
//! is an error as soon as the limit is passed, not after the NUL finally arrives.

use crate::net::is_timeout;
use std::fmt;
use std::io::{self, Read};

/// Longest user name, file name or description, in bytes without the NUL
/// (PROTOCOL.md section 1, "Limits").
pub const MAX_FIELD: usize = 256;

/// Longest DATETIME, in bytes without the NUL (PROTOCOL.md section 1, "Limits").
pub(crate) const MAX_DATETIME: usize = 64;

/// Longest operation name we read before deciding the OP is unknown. The longest real
/// one, `LIST_CONTENT`, has 12 bytes; 32 leaves room without letting a peer make us
/// buffer a long garbage OP.
pub(crate) const MAX_OP: usize = 32;

/// Longest decimal number field (a port, a count, a file size): `u64::MAX` has 20
/// digits.
pub(crate) const MAX_NUMBER: usize = 20;

/// Bytes the reader buffers at most. Larger than any single field plus its NUL, so a
/// field within its limit always fits; small enough that 1024 connections cost 4 MiB.
pub(crate) const READ_BUFFER: usize = 4096;

/// Which field of a message failed to decode. Used in error messages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Op,
    DateTime,
    User,
    Port,
    File,
    Description,
    Target,
    Pattern,
    Count,
    Size,
    Offset,
    Version,
    Block,
    Hashes,
    Address,
    Code,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Field::Op => "operation",
            Field::DateTime => "datetime",
            Field::User => "user name",
            Field::Port => "port",
            Field::File => "file name",
            Field::Description => "description",
            Field::Target => "target user",
            Field::Pattern => "pattern",
            Field::Count => "count",
            Field::Size => "size",
            Field::Offset => "offset",
            Field::Version => "version",
            Field::Block => "block number",
            Field::Hashes => "block hashes",
            Field::Address => "address",
            Field::Code => "result code",
        };
        f.write_str(name)
    }
}

/// Everything that can go wrong while reading a message off the wire.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection before the message was complete.
    #[error("truncated: connection closed in {0}")]
    Truncated(Field),
    /// No data arrived within the read timeout.
    #[error("timeout: no data while reading {0}")]
    Timeout(Field),
    /// The field passed its limit before its NUL arrived.
    #[error("too long: {field} exceeds {limit} bytes")]
    TooLong { field: Field, limit: usize },
    /// The field is not valid UTF-8.
    #[error("invalid: {0} is not UTF-8")]
    NotUtf8(Field),
    /// The field is UTF-8 but breaks a content rule (whitespace in a name, a control
    /// character, an empty name, a port out of range, ...).
    #[error("invalid: bad {0}")]
    Invalid(Field),
    /// Any other I/O error.
    #[error("io: {0}")]
    Io(#[source] io::Error),
}

impl WireError {
    /// True when the error came from the transport rather than from the content.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            WireError::Truncated(_) | WireError::Timeout(_) | WireError::Io(_)
        )
    }
}

/// Reads NUL-terminated fields from a byte stream with a fixed-size buffer.
///
/// Bytes after the last field read stay buffered; [`FieldReader::into_parts`] hands
/// them back with the inner reader (the peer protocol streams file content after the
/// size field).
pub struct FieldReader<R> {
    inner: R,
    buf: Box<[u8; READ_BUFFER]>,
    start: usize,
    end: usize,
}

impl<R: Read> FieldReader<R> {
    pub fn new(inner: R) -> Self {
        FieldReader {
            inner,
            buf: Box::new([0; READ_BUFFER]),
            start: 0,
            end: 0,
        }
    }

    /// Reads one field of at most `limit` bytes (without its NUL) and returns its raw
    /// bytes. Fails with `TooLong` as soon as `limit + 1` bytes have arrived without a
    /// NUL, whatever the peer goes on sending.
    pub fn read_bytes(&mut self, field: Field, limit: usize) -> Result<&[u8], WireError> {
        debug_assert!(limit < READ_BUFFER);
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(pos) = avail[scanned..].iter().position(|&b| b == 0) {
                let len = scanned + pos;
                if len > limit {
                    return Err(WireError::TooLong { field, limit });
                }
                let begin = self.start;
                self.start += len + 1;
                return Ok(&self.buf[begin..begin + len]);
            }
            scanned = avail.len();
            if scanned > limit {
                return Err(WireError::TooLong { field, limit });
            }
            // Make room at the end: move what is buffered to the front.
            if self.end == READ_BUFFER {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(WireError::Truncated(field)),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(WireError::Timeout(field)),
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }

    /// Reads one field as UTF-8 text of at most `limit` bytes.
    pub fn read_str(&mut self, field: Field, limit: usize) -> Result<String, WireError> {
        let bytes = self.read_bytes(field, limit)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::NotUtf8(field))
    }

    /// Reads a decimal number field (ASCII digits only, no sign, no spaces).
    pub fn read_number(&mut self, field: Field) -> Result<u64, WireError> {
        let bytes = self.read_bytes(field, MAX_NUMBER)?;
        parse_decimal(bytes).ok_or(WireError::Invalid(field))
    }

    /// Reads one raw byte (a result code).
    pub fn read_u8(&mut self, field: Field) -> Result<u8, WireError> {
        loop {
            if self.start < self.end {
                let b = self.buf[self.start];
                self.start += 1;
                return Ok(b);
            }
            self.start = 0;
            self.end = 0;
            match self.inner.read(&mut self.buf[..]) {
                Ok(0) => return Err(WireError::Truncated(field)),
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(WireError::Timeout(field)),
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }

    /// Fills `out` with the next raw bytes (fixed-size binary data after the fields,
    /// such as hashes): first what is buffered, then straight from the inner reader.
    /// `Truncated(field)` when the stream ends first.
    pub fn read_raw(&mut self, field: Field, out: &mut [u8]) -> Result<(), WireError> {
        let have = (self.end - self.start).min(out.len());
        out[..have].copy_from_slice(&self.buf[self.start..self.start + have]);
        self.start += have;
        let mut filled = have;
        while filled < out.len() {
            match self.inner.read(&mut out[filled..]) {
                Ok(0) => return Err(WireError::Truncated(field)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(WireError::Timeout(field)),
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(())
    }

    /// Buffers up to `n` bytes (at most [`READ_BUFFER`]) without consuming them and
    /// returns what is buffered: fewer than `n` only when the stream ended, or no
    /// data came within the read timeout, first. Decoders that must look ahead to
    /// tell two layouts apart use it (PROTOCOL.md section 1, "Dialects").
    pub fn peek(&mut self, n: usize) -> Result<&[u8], WireError> {
        let n = n.min(READ_BUFFER);
        while self.end - self.start < n {
            if self.start + n > READ_BUFFER {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => break,
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        let got = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + got])
    }

    /// Drops `n` buffered bytes (at most what [`FieldReader::peek`] returned).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// The bytes read from the stream but not yet consumed as fields.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The inner reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Gives back the inner reader and the bytes buffered past the last field.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        let rest = self.buf[self.start..self.end].to_vec();
        (self.inner, rest)
    }
}

/// Parses ASCII decimal digits into a `u64`; `None` for an empty field, any other
/// character, or overflow.
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Appends `s` and its terminating NUL.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// Appends a number as decimal text and its terminating NUL.
pub(crate) fn put_number(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
    out.push(0);
}

/// A user name or a file name: non-empty, at most [`MAX_FIELD`] bytes, no whitespace
/// and no control characters (PROTOCOL.md section 1, "Limits"), and nothing that
/// could pass for another name ([`super::text::is_unambiguous_name`]).
pub(crate) fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && super::text::is_unambiguous_name(s)
}

/// A description: at most [`MAX_FIELD`] bytes, spaces allowed, no control characters.
pub(crate) fn is_valid_description(s: &str) -> bool {
    s.len() <= MAX_FIELD && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> FieldReader<&[u8]> {
        FieldReader::new(bytes)
    }

    #[test]
    fn reads_fields_in_order_and_consumes_everything() {
        let mut r = reader(b"REGISTER\0alice\0");
        assert_eq!(r.read_str(Field::Op, MAX_OP).unwrap(), "REGISTER");
        assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "alice");
        assert!(r.buffered().is_empty());
        assert!(matches!(
            r.read_str(Field::File, MAX_FIELD),
            Err(WireError::Truncated(Field::File))
        ));
    }

    #[test]
    fn accepts_field_exactly_at_limit() {
        let mut bytes = vec![b'a'; MAX_FIELD];
        bytes.push(0);
        let mut r = reader(&bytes);
        assert_eq!(
            r.read_bytes(Field::User, MAX_FIELD).unwrap().len(),
            MAX_FIELD
        );
    }

    #[test]
    fn rejects_field_one_over_limit() {
        let mut bytes = vec![b'a'; MAX_FIELD + 1];
        bytes.push(0);
        let mut r = reader(&bytes);
        assert!(matches!(
            r.read_bytes(Field::User, MAX_FIELD),
            Err(WireError::TooLong {
                field: Field::User,
                limit: MAX_FIELD
            })
        ));
    }

    #[test]
    fn rejects_endless_field_without_reading_it_all() {
        // A reader that would hand out 10 MB without a NUL: we must stop early.
        struct Endless(usize);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(b'x');
                self.0 += buf.len();
                Ok(buf.len())
            }
        }
        let mut r = FieldReader::new(Endless(0));
        assert!(matches!(
            r.read_bytes(Field::User, MAX_FIELD),
            Err(WireError::TooLong { .. })
        ));
        assert!(r.get_ref().0 <= READ_BUFFER);
    }

    #[test]
    fn rejects_truncated_field() {
        let mut r = reader(b"REGIS");
        assert!(matches!(
            r.read_str(Field::Op, MAX_OP),
            Err(WireError::Truncated(Field::Op))
        ));
    }

    #[test]
    fn rejects_invalid_utf8() {
        let mut r = reader(b"\xff\xfe\0");
        assert!(matches!(
            r.read_str(Field::User, MAX_FIELD),
            Err(WireError::NotUtf8(Field::User))
        ));
    }

    #[test]
    fn fields_split_across_reads_are_joined() {
        // A reader that returns one byte per call.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut r = FieldReader::new(Trickle(b"LIST_USERS\0bob\0"));
        assert_eq!(r.read_str(Field::Op, MAX_OP).unwrap(), "LIST_USERS");
        assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "bob");
    }

    #[test]
    fn many_fields_larger_than_buffer_in_total() {
        let mut bytes = Vec::new();
        for i in 0..1000 {
            put_str(&mut bytes, &format!("field-{i}"));
        }
        let mut r = reader(&bytes);
        for i in 0..1000 {
            assert_eq!(
                r.read_str(Field::File, MAX_FIELD).unwrap(),
                format!("field-{i}")
            );
        }
    }

    #[test]
    fn parses_decimal_numbers() {
        assert_eq!(parse_decimal(b"456"), Some(456));
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b" 1"), None);
        assert_eq!(parse_decimal(b"12a"), None);
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
    }

    #[test]
    fn names_reject_whitespace_control_and_empty() {
        assert!(is_valid_name("alice"));
        assert!(is_valid_name("/tmp/notes.txt"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a\tb"));
        assert!(!is_valid_name("a\u{7f}"));
        assert!(!is_valid_name(&"a".repeat(MAX_FIELD + 1)));
        assert!(is_valid_description("lecture notes, week 3"));
        assert!(is_valid_description(""));
        assert!(!is_valid_description("line\nbreak"));
    }

    #[test]
    fn peek_looks_ahead_without_consuming_and_stops_at_the_end() {
        let mut r = reader(b"ab\0c");
        assert_eq!(r.peek(2).unwrap(), b"ab");
        assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "ab");
        assert_eq!(r.peek(8).unwrap(), b"c");
        r.consume(1);
        assert_eq!(r.peek(1).unwrap(), b"");
    }

    #[test]
    fn read_u8_then_fields() {
        let mut r = reader(b"\x002\0x\0");
        assert_eq!(r.read_u8(Field::Code).unwrap(), 0);
        assert_eq!(r.read_number(Field::Count).unwrap(), 2);
        assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "x");
    }

    #[test]
    fn into_parts_returns_unconsumed_bytes() {
        let mut r = reader(b"\x003\0abc");
        r.read_u8(Field::Code).unwrap();
        r.read_number(Field::Size).unwrap();
        let (_, rest) = r.into_parts();
        assert_eq!(rest, b"abc");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let mut r = FieldReader::new(&bytes[..]);
            for _ in 0..8 {
                if r.read_str(Field::File, MAX_FIELD).is_err() { break; }
            }
        }

        #[test]
        fn round_trips_valid_names(names in proptest::collection::vec("[a-zA-Z0-9._/-]{1,256}", 1..20)) {
            let mut bytes = Vec::new();
            for n in &names { put_str(&mut bytes, n); }
            let mut r = FieldReader::new(&bytes[..]);
            for n in &names {
                proptest::prop_assert_eq!(&r.read_str(Field::File, MAX_FIELD).unwrap(), n);
            }
            proptest::prop_assert!(r.buffered().is_empty());
        }
    }
}
