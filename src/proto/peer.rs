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

/// The file name of the discovery request, `GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0`:
/// how a downloader learns whether a peer speaks GET_FILE_RANGE without ever sending
/// an operation a statement peer may not know (docs/PROTOCOL.md, "Discovery"). No file
/// can have this name: there is no process 0 in `/proc` (and no `/proc` at all on
/// systems without procfs), so opening it fails with ENOENT on every peer, and a
/// statement peer answers 1 (FILE NOT EXIST), the path every one of them implements.
/// It is short, printable ASCII without spaces: a peer may print it in its log or keep
/// it in a 256-byte buffer.
pub(crate) const PROBE_NAME: &str = "/proc/0/peerdex/GET_FILE_RANGE";

/// What a peerdex peer sends for the discovery request after code 0: one string
/// naming the extensions it speaks. Nothing a statement peer sends for a missing file
/// looks like it.
pub(crate) const PROBE_MARKER: &str = "peerdex GET_FILE_RANGE";

/// Longest answer to the discovery request that is read: the marker with room to
/// name more extensions later.
const MAX_PROBE_ANSWER: usize = 128;

/// Encodes the discovery request (a GET_FILE of [`PROBE_NAME`]).
pub(crate) fn encode_probe() -> Vec<u8> {
    encode_request(PROBE_NAME)
}

/// Encodes a peerdex peer's answer to the discovery request: code 0 and
/// [`PROBE_MARKER`].
pub(crate) fn encode_probe_answer() -> Vec<u8> {
    let mut out = Vec::with_capacity(PROBE_MARKER.len() + 2);
    out.push(CODE_OK);
    put_str(&mut out, PROBE_MARKER);
    out
}

/// Reads the answer to the discovery request: whether the peer speaks
/// GET_FILE_RANGE. Any code but 0, or a 0 followed by anything but a string whose
/// words start with `peerdex` and include `GET_FILE_RANGE`, is a peer that does not
/// (`Ok(false)`); an error means no answer arrived (closed, reset, timed out).
pub(crate) fn read_probe_answer<R: Read>(r: &mut FieldReader<R>) -> Result<bool, WireError> {
    if r.read_u8(Field::Code)? != CODE_OK {
        return Ok(false);
    }
    let Ok(answer) = r.read_bytes(Field::Op, MAX_PROBE_ANSWER) else {
        return Ok(false);
    };
    let mut words = answer.split(|&b| b == b' ');
    Ok(words.next() == Some(b"peerdex") && words.any(|w| w == GET_FILE_RANGE.as_bytes()))
}

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
    fn the_probe_is_a_get_file_and_only_the_marker_says_range() {
        assert_eq!(
            encode_probe(),
            b"GET_FILE\0/proc/0/peerdex/GET_FILE_RANGE\0"
        );
        // A peerdex listener reads it as a plain GET_FILE of PROBE_NAME.
        let probe = encode_probe();
        let mut r = FieldReader::new(&probe[..]);
        assert_eq!(
            read_request(&mut r).unwrap(),
            Request::Get {
                file: PROBE_NAME.into()
            }
        );
        let answer = encode_probe_answer();
        assert_eq!(answer, b"\0peerdex GET_FILE_RANGE\0");
        let says = |bytes: &[u8]| read_probe_answer(&mut FieldReader::new(bytes));
        assert!(says(&answer).unwrap());
        assert!(says(b"\0peerdex GET_FILE_BLOCKS GET_FILE_RANGE\0").unwrap());
        // What statement peers send for a missing file, or odd ones for anything.
        for other in [
            &b"\x01"[..],
            b"\x02",
            b"\x01peerdex GET_FILE_RANGE\0",
            b"\0",
            b"\0hello",
            b"\0GET_FILE_RANGE\0",
            b"\0peerdex\0",
            b"\0peerdexGET_FILE_RANGE\0",
        ] {
            assert!(!says(other).unwrap_or(false), "{other:?}");
        }
        assert!(says(b"").is_err());
        let mut long = b"\0".to_vec();
        long.extend_from_slice(&[b'a'; 4096]);
        assert!(!says(&long).unwrap());
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
