//! The peer protocol's messages (PROTOCOL.md section 2): the statement's GET_FILE
//! request, the peerdex extension GET_FILE_RANGE, and the headers of their replies.

use std::io::Read;

use crate::proto::wire::{
    self, Field, FieldReader, MAX_FIELD, MAX_OP, WireError, parse_decimal, put_number, put_str,
};

/// The statement's request, as it travels.
pub(crate) const GET_FILE: &str = "GET_FILE";
/// The peerdex extension: size, version and a start offset.
pub(crate) const GET_FILE_RANGE: &str = "GET_FILE_RANGE";

/// Result code: the file follows.
pub(crate) const CODE_OK: u8 = 0;
/// Result code: the file does not exist or is not published by this peer.
pub(crate) const CODE_NOT_FOUND: u8 = 1;
/// Result code: any other error.
pub(crate) const CODE_OTHER: u8 = 2;

/// Longest VERSION token accepted in a GET_FILE_RANGE reply. peerdex sends about 40
/// bytes (four hexadecimal numbers); 128 leaves room for other implementations
/// without letting a peer make the downloader buffer much.
pub(crate) const MAX_VERSION: usize = 128;

/// A request a peer listener understands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `GET_FILE\0FILE\0`: the whole file, no size.
    Get { file: String },
    /// `GET_FILE_RANGE\0FILE\0OFFSET\0`: size, version, then the bytes from OFFSET.
    Range { file: String, offset: u64 },
}

impl Request {
    /// The operation name, for logs.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Request::Get { .. } => GET_FILE,
            Request::Range { .. } => GET_FILE_RANGE,
        }
    }

    /// The file asked for.
    pub(crate) fn file(&self) -> &str {
        match self {
            Request::Get { file } | Request::Range { file, .. } => file,
        }
    }
}

/// Encodes a GET_FILE request.
pub(crate) fn encode_request(file: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE.len() + file.len() + 2);
    put_str(&mut out, GET_FILE);
    put_str(&mut out, file);
    out
}

/// Encodes a GET_FILE_RANGE request.
pub(crate) fn encode_range_request(file: &str, offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE_RANGE.len() + file.len() + wire::MAX_NUMBER + 3);
    put_str(&mut out, GET_FILE_RANGE);
    put_str(&mut out, file);
    put_number(&mut out, offset);
    out
}

/// Why a request could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerRequestError {
    /// The connection closed before sending a single byte (a liveness probe, or the
    /// shutdown wake-up): nothing to answer.
    #[error("empty: connection closed without a request")]
    Empty,
    /// The operation is neither GET_FILE nor GET_FILE_RANGE.
    #[error("unknown operation")]
    UnknownOp,
    /// The OFFSET of GET_FILE_RANGE is not a decimal number.
    #[error("bad request: offset is not a decimal number")]
    BadOffset,
    /// A field is missing, too long, not UTF-8, or did not arrive in time.
    #[error("bad request: {0}")]
    Wire(#[source] WireError),
}

/// Reads a GET_FILE or GET_FILE_RANGE request.
pub(crate) fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<Request, PeerRequestError> {
    let known = r.read_bytes(Field::Op, MAX_OP).map(|op| {
        [GET_FILE, GET_FILE_RANGE]
            .into_iter()
            .find(|k| op == k.as_bytes())
    });
    let op = match known {
        Ok(Some(op)) => op,
        Ok(None) => return Err(PeerRequestError::UnknownOp),
        Err(WireError::Truncated(_)) if r.buffered().is_empty() => {
            return Err(PeerRequestError::Empty);
        }
        Err(e) => return Err(PeerRequestError::Wire(e)),
    };
    let file = r
        .read_str(Field::File, MAX_FIELD)
        .map_err(PeerRequestError::Wire)?;
    if op == GET_FILE {
        return Ok(Request::Get { file });
    }
    let offset = r
        .read_bytes(Field::Offset, wire::MAX_NUMBER)
        .map_err(|e| match e {
            WireError::TooLong { .. } => PeerRequestError::BadOffset,
            e => PeerRequestError::Wire(e),
        })?;
    let offset = parse_decimal(offset).ok_or(PeerRequestError::BadOffset)?;
    Ok(Request::Range { file, offset })
}

/// Encodes the header of a successful GET_FILE reply in the slides' variant: code 0
/// and the size (the statement's variant is the code byte alone).
pub(crate) fn encode_ok_header(size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + wire::MAX_NUMBER + 1);
    out.push(CODE_OK);
    put_number(&mut out, size);
    out
}

/// Encodes the header of a successful GET_FILE_RANGE reply: code 0, SIZE, VERSION.
pub(crate) fn encode_range_header(size: u64, version: &str) -> Vec<u8> {
    let mut out = encode_ok_header(size);
    put_str(&mut out, version);
    out
}

/// Reads SIZE and VERSION after code 0 of a GET_FILE_RANGE reply. A version must be
/// non-empty printable ASCII.
pub(crate) fn read_range_header<R: Read>(
    r: &mut FieldReader<R>,
) -> Result<(u64, String), WireError> {
    let size = r.read_number(Field::Size)?;
    let version = r.read_str(Field::Version, MAX_VERSION)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::Invalid(Field::Version));
    }
    Ok((size, version))
}

/// What the first bytes of plain GET_FILE content say about a slides-variant size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lead {
    /// More bytes are needed to decide.
    Undecided,
    /// The content does not start with `digits\0`.
    Plain,
    /// The content starts with `digits\0` of `prefix` bytes announcing `size`.
    Sized { prefix: usize, size: u64 },
}

/// Classifies the first bytes of plain GET_FILE content (the slides' variant sends
/// `SIZE\0` before the content).
pub(crate) fn classify_lead(lead: &[u8]) -> Lead {
    for (i, &b) in lead.iter().enumerate() {
        if b == 0 {
            return match parse_decimal(&lead[..i]) {
                Some(size) => Lead::Sized {
                    prefix: i + 1,
                    size,
                },
                None => Lead::Plain,
            };
        }
        if !b.is_ascii_digit() || i >= wire::MAX_NUMBER {
            return Lead::Plain;
        }
    }
    Lead::Undecided
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_consumes_everything() {
        let bytes = encode_request("/abs/notes.txt");
        assert_eq!(bytes, b"GET_FILE\0/abs/notes.txt\0");
        let mut r = FieldReader::new(&bytes[..]);
        assert_eq!(
            read_request(&mut r).unwrap(),
            Request::Get {
                file: "/abs/notes.txt".into()
            }
        );
        assert!(r.buffered().is_empty());
        let bytes = encode_range_request("a b", 42);
        assert_eq!(bytes, b"GET_FILE_RANGE\0a b\x0042\0");
        let mut r = FieldReader::new(&bytes[..]);
        assert_eq!(
            read_request(&mut r).unwrap(),
            Request::Range {
                file: "a b".into(),
                offset: 42
            }
        );
        assert!(r.buffered().is_empty());
    }

    #[test]
    fn empty_connection_is_its_own_error() {
        let mut r = FieldReader::new(&b""[..]);
        assert!(matches!(read_request(&mut r), Err(PeerRequestError::Empty)));
    }

    #[test]
    fn rejects_other_ops_bad_offsets_and_truncated_requests() {
        let mut r = FieldReader::new(&b"PUT_FILE\0x\0"[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(PeerRequestError::UnknownOp)
        ));
        let mut r = FieldReader::new(&b"GET_FI"[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(PeerRequestError::Wire(_))
        ));
        let mut r = FieldReader::new(&b"GET_FILE\0name"[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(PeerRequestError::Wire(WireError::Truncated(Field::File)))
        ));
        for bad in [&b"-1"[..], b"", b"1e3", b" 1", b"99999999999999999999999"] {
            let mut bytes = b"GET_FILE_RANGE\0f\0".to_vec();
            bytes.extend_from_slice(bad);
            bytes.push(0);
            let mut r = FieldReader::new(&bytes[..]);
            assert!(
                matches!(read_request(&mut r), Err(PeerRequestError::BadOffset)),
                "{bad:?}"
            );
        }
        let mut r = FieldReader::new(&b"GET_FILE_RANGE\0f\x001"[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(PeerRequestError::Wire(WireError::Truncated(Field::Offset)))
        ));
    }

    #[test]
    fn rejects_overlong_file_name() {
        let bytes = encode_request(&"a".repeat(MAX_FIELD + 1));
        let mut r = FieldReader::new(&bytes[..]);
        assert!(matches!(
            read_request(&mut r),
            Err(PeerRequestError::Wire(WireError::TooLong { .. }))
        ));
    }

    #[test]
    fn headers_are_code_then_decimal_size_then_version() {
        assert_eq!(encode_ok_header(1048576), b"\x001048576\0");
        assert_eq!(encode_ok_header(0), b"\x000\0");
        let h = encode_range_header(5, "v1");
        assert_eq!(h, b"\x005\0v1\0");
        let mut r = FieldReader::new(&h[1..]);
        assert_eq!(read_range_header(&mut r).unwrap(), (5, "v1".into()));
        let mut r = FieldReader::new(&b"5\0\0"[..]);
        assert!(read_range_header(&mut r).is_err());
        let mut r = FieldReader::new(&b"5\0a b\0"[..]);
        assert!(read_range_header(&mut r).is_err());
    }

    #[test]
    fn the_slides_size_prefix_is_recognised() {
        assert_eq!(classify_lead(b""), Lead::Undecided);
        assert_eq!(classify_lead(b"12"), Lead::Undecided);
        assert_eq!(
            classify_lead(b"12\0abc"),
            Lead::Sized {
                prefix: 3,
                size: 12
            }
        );
        assert_eq!(classify_lead(b"0\0"), Lead::Sized { prefix: 2, size: 0 });
        assert_eq!(classify_lead(b"\0abc"), Lead::Plain);
        assert_eq!(classify_lead(b"12a\0"), Lead::Plain);
        assert_eq!(classify_lead(b"hello"), Lead::Plain);
        assert_eq!(classify_lead(&[b'1'; 21]), Lead::Plain);
    }
}
