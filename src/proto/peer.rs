//! The peer protocol's messages (PROTOCOL.md section 2): the GET_FILE request and
//! the header of its reply.

use std::fmt;
use std::io::Read;

use crate::proto::wire::{
    self, Field, FieldReader, MAX_FIELD, MAX_OP, WireError, put_number, put_str,
};

/// The only operation of the peer protocol, as it travels.
pub(crate) const GET_FILE: &str = "GET_FILE";

/// Result code: the file follows.
pub(crate) const CODE_OK: u8 = 0;
/// Result code: the file does not exist or is not published by this peer.
pub(crate) const CODE_NOT_FOUND: u8 = 1;
/// Result code: any other error.
pub(crate) const CODE_OTHER: u8 = 2;

/// Encodes a GET_FILE request.
pub(crate) fn encode_request(file: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE.len() + file.len() + 2);
    put_str(&mut out, GET_FILE);
    put_str(&mut out, file);
    out
}

/// Why a GET_FILE request could not be decoded.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The connection closed before sending a single byte (a liveness probe, or the
    /// shutdown wake-up): nothing to answer.
    Empty,
    /// The operation is not GET_FILE.
    UnknownOp,
    /// A field is missing, too long, not UTF-8, or did not arrive in time.
    Wire(WireError),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Empty => f.write_str("empty: connection closed without a request"),
            RequestError::UnknownOp => f.write_str("unknown operation"),
            RequestError::Wire(e) => write!(f, "bad request: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads a GET_FILE request and returns the file name asked for.
pub(crate) fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<String, RequestError> {
    let is_get_file = r
        .read_bytes(Field::Op, MAX_OP)
        .map(|op| op == GET_FILE.as_bytes());
    match is_get_file {
        Ok(true) => {}
        Ok(false) => return Err(RequestError::UnknownOp),
        Err(WireError::Truncated(_)) if r.buffered().is_empty() => {
            return Err(RequestError::Empty);
        }
        Err(e) => return Err(RequestError::Wire(e)),
    }
    r.read_str(Field::File, MAX_FIELD)
        .map_err(RequestError::Wire)
}

/// Encodes the header of a successful reply: code 0 and the size.
pub(crate) fn encode_ok_header(size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + wire::MAX_NUMBER + 1);
    out.push(CODE_OK);
    put_number(&mut out, size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_consumes_everything() {
        let bytes = encode_request("/abs/notes.txt");
        assert_eq!(bytes, b"GET_FILE\0/abs/notes.txt\0");
        let mut r = FieldReader::new(&bytes[..]);
        assert_eq!(read_request(&mut r).unwrap(), "/abs/notes.txt");
        assert!(r.buffered().is_empty());
    }

    #[test]
    fn empty_connection_is_its_own_error() {
        let mut r = FieldReader::new(&b""[..]);
        assert!(matches!(read_request(&mut r), Err(RequestError::Empty)));
    }

    #[test]
    fn rejects_other_ops_and_truncated_requests() {
        let mut r = FieldReader::new(&b"PUT_FILE\0x\0"[..]);
        assert!(matches!(read_request(&mut r), Err(RequestError::UnknownOp)));
        let mut r = FieldReader::new(&b"GET_FI"[..]);
        assert!(matches!(read_request(&mut r), Err(RequestError::Wire(_))));
        let mut r = FieldReader::new(&b"GET_FILE\0name"[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(RequestError::Wire(WireError::Truncated(Field::File)))
        ));
    }

    #[test]
    fn rejects_overlong_file_name() {
        let bytes = encode_request(&"a".repeat(MAX_FIELD + 1));
        let mut r = FieldReader::new(&bytes[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(RequestError::Wire(WireError::TooLong { .. }))
        ));
    }

    #[test]
    fn ok_header_is_code_then_decimal_size() {
        assert_eq!(encode_ok_header(1048576), b"\x001048576\0");
        assert_eq!(encode_ok_header(0), b"\x000\0");
    }
}
