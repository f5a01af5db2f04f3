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
            self.more(field, 1)?;
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
        while self.start == self.end {
            self.more(field, 1)?;
        }
        let b = self.buf[self.start];
        self.start += 1;
        Ok(b)
    }

    /// Fills `out` with the next raw bytes (fixed-size binary data after the fields,
    /// such as hashes), through the buffer like every other read.
    /// `Truncated(field)` when the stream ends first.
    pub fn read_raw(&mut self, field: Field, out: &mut [u8]) -> Result<(), WireError> {
        let mut filled = 0;
        loop {
            let have = (self.end - self.start).min(out.len() - filled);
            out[filled..filled + have].copy_from_slice(&self.buf[self.start..self.start + have]);
            self.start += have;
            filled += have;
            if filled == out.len() {
                return Ok(());
            }
            self.more(field, 1)?;
        }
    }

    /// Buffers up to `n` bytes (at most [`READ_BUFFER`]) without consuming them and
    /// returns what is buffered: fewer than `n` only when the stream ended, or no
    /// data came within the read timeout, first. Decoders that must look ahead to
    /// tell two layouts apart use it (PROTOCOL.md section 1, "Dialects").
    pub fn peek(&mut self, n: usize) -> Result<&[u8], WireError> {
        let n = n.min(READ_BUFFER);
        while self.end - self.start < n {
            match self.fill(n - (self.end - self.start)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => break,
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        let got = (self.end - self.start).min(n);
        Ok(&self.buf[self.start..self.start + got])
    }

    /// Reads more of the stream while reading `field`, with room for at least `room`
    /// more bytes: an error when the stream ended (`Truncated`), no data came within
    /// the read timeout (`Timeout`) or the read failed.
    fn more(&mut self, field: Field, room: usize) -> Result<(), WireError> {
        match self.fill(room) {
            Ok(0) => Err(WireError::Truncated(field)),
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => Err(WireError::Timeout(field)),
            Err(e) => Err(WireError::Io(e)),
        }
    }

    /// One read of the stream into the buffer's free end, first making room for at
    /// least `room` bytes after what is buffered (moved to the front when needed):
    /// the bytes read, 0 at the end of the stream. An interrupted read is retried.
    fn fill(&mut self, room: usize) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end + room > READ_BUFFER {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
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
mod tests;
