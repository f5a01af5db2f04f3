//! The peer protocol's messages (PROTOCOL.md section 2): the statement's GET_FILE
//! request, the peerdex extensions GET_FILE_RANGE, GET_FILE_HASHES and
//! GET_FILE_BLOCK, and the headers of their replies (the hash tree itself is in
//! `tree`).

use std::io::Read;

use crate::proto::wire::{
    self, Field, FieldReader, MAX_FIELD, MAX_OP, WireError, parse_decimal, put_number, put_str,
};

/// The statement's request, as it travels.
pub(crate) const GET_FILE: &str = "GET_FILE";
/// The peerdex extension: size, version and a start offset.
pub(crate) const GET_FILE_RANGE: &str = "GET_FILE_RANGE";
/// The peerdex extension: the hash tree of a file's current content.
pub(crate) const GET_FILE_HASHES: &str = "GET_FILE_HASHES";
/// The peerdex extension: whole blocks of one VERSION of a file.
pub(crate) const GET_FILE_BLOCK: &str = "GET_FILE_BLOCK";

/// Most blocks one GET_FILE_BLOCK asks for (16 MiB): a request is bounded, and a
/// downloader spreading blocks over owners asks often enough to move them.
pub(crate) const MAX_BLOCKS_PER_REQUEST: u64 = 16;

/// Result code: the file follows.
pub(crate) const CODE_OK: u8 = 0;
/// Result code: the file does not exist or is not published by this peer.
pub(crate) const CODE_NOT_FOUND: u8 = 1;
/// Result code: any other error.
pub(crate) const CODE_OTHER: u8 = 2;
/// Result code of GET_FILE_HASHES: the tree is not ready (being computed, or the
/// file changed); of GET_FILE_BLOCK: the file's VERSION is not the one asked for.
pub(crate) const CODE_NOT_READY: u8 = 3;

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
pub(crate) const PROBE_MARKER: &str = "peerdex GET_FILE_RANGE GET_FILE_HASHES GET_FILE_BLOCK";

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

/// What the answer to the discovery request said the peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extensions {
    /// No extension: the statement's GET_FILE alone.
    None,
    /// GET_FILE_RANGE (a peerdex peer from before the hash trees).
    Range,
    /// GET_FILE_RANGE, GET_FILE_HASHES and GET_FILE_BLOCK.
    Blocks,
}

/// Reads the answer to the discovery request. Any code but 0, or a 0 followed by
/// anything but a string whose words start with `peerdex`, is a peer that speaks no
/// extension; a peerdex peer speaks those of the next words it names
/// (`GET_FILE_RANGE`; `Blocks` needs all three). An error means no answer arrived
/// (closed, reset, timed out).
pub(crate) fn read_probe_answer<R: Read>(r: &mut FieldReader<R>) -> Result<Extensions, WireError> {
    if r.read_u8(Field::Code)? != CODE_OK {
        return Ok(Extensions::None);
    }
    let Ok(answer) = r.read_bytes(Field::Op, MAX_PROBE_ANSWER) else {
        return Ok(Extensions::None);
    };
    let mut words = answer.split(|&b| b == b' ');
    if words.next() != Some(b"peerdex") {
        return Ok(Extensions::None);
    }
    let words: Vec<&[u8]> = words.collect();
    let has = |op: &str| words.contains(&op.as_bytes());
    Ok(match has(GET_FILE_RANGE) {
        false => Extensions::None,
        true if has(GET_FILE_HASHES) && has(GET_FILE_BLOCK) => Extensions::Blocks,
        true => Extensions::Range,
    })
}

/// A request a peer listener understands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `GET_FILE\0FILE\0`: the whole file, no size.
    Get { file: String },
    /// `GET_FILE_RANGE\0FILE\0OFFSET\0`: size, version, then the bytes from OFFSET.
    Range { file: String, offset: u64 },
    /// `GET_FILE_HASHES\0FILE\0`: the hash tree of the current content.
    Hashes { file: String },
    /// `GET_FILE_BLOCK\0FILE\0VERSION\0FIRST\0COUNT\0`: blocks `FIRST..FIRST+COUNT`
    /// of that VERSION (COUNT from 1 to [`MAX_BLOCKS_PER_REQUEST`]).
    Blocks {
        file: String,
        version: String,
        first: u64,
        count: u64,
    },
}

impl Request {
    /// The operation name, for logs.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Request::Get { .. } => GET_FILE,
            Request::Range { .. } => GET_FILE_RANGE,
            Request::Hashes { .. } => GET_FILE_HASHES,
            Request::Blocks { .. } => GET_FILE_BLOCK,
        }
    }

    /// The file asked for.
    pub(crate) fn file(&self) -> &str {
        match self {
            Request::Get { file }
            | Request::Range { file, .. }
            | Request::Hashes { file }
            | Request::Blocks { file, .. } => file,
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

/// Encodes a GET_FILE_HASHES request.
pub(crate) fn encode_hashes_request(file: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE_HASHES.len() + file.len() + 2);
    put_str(&mut out, GET_FILE_HASHES);
    put_str(&mut out, file);
    out
}

/// Encodes a GET_FILE_BLOCK request.
pub(crate) fn encode_blocks_request(file: &str, version: &str, first: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE_BLOCK.len() + file.len() + version.len() + 46);
    put_str(&mut out, GET_FILE_BLOCK);
    put_str(&mut out, file);
    put_str(&mut out, version);
    put_number(&mut out, first);
    put_number(&mut out, count);
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
    /// A block number of GET_FILE_BLOCK is not a decimal number, or COUNT is 0 or
    /// more than [`MAX_BLOCKS_PER_REQUEST`].
    #[error("bad request: {0} is not a decimal number in range")]
    BadNumber(Field),
    /// A field is missing, too long, not UTF-8, or did not arrive in time.
    #[error("bad request: {0}")]
    Wire(#[source] WireError),
}

/// Reads a request: GET_FILE, or one of the extensions.
pub(crate) fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<Request, PeerRequestError> {
    let known = r.read_bytes(Field::Op, MAX_OP).map(|op| {
        [GET_FILE, GET_FILE_RANGE, GET_FILE_HASHES, GET_FILE_BLOCK]
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
    match op {
        GET_FILE => return Ok(Request::Get { file }),
        GET_FILE_HASHES => return Ok(Request::Hashes { file }),
        GET_FILE_BLOCK => return read_blocks_rest(r, file),
        _ => {}
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

/// The fields of GET_FILE_BLOCK after the file name.
fn read_blocks_rest<R: Read>(
    r: &mut FieldReader<R>,
    file: String,
) -> Result<Request, PeerRequestError> {
    let version = read_version(r).map_err(PeerRequestError::Wire)?;
    let mut number = |field| match r.read_bytes(field, wire::MAX_NUMBER) {
        Ok(n) => parse_decimal(n).ok_or(PeerRequestError::BadNumber(field)),
        Err(WireError::TooLong { .. }) => Err(PeerRequestError::BadNumber(field)),
        Err(e) => Err(PeerRequestError::Wire(e)),
    };
    let first = number(Field::Block)?;
    let count = number(Field::Count)?;
    if !(1..=MAX_BLOCKS_PER_REQUEST).contains(&count) {
        return Err(PeerRequestError::BadNumber(Field::Count));
    }
    Ok(Request::Blocks {
        file,
        version,
        first,
        count,
    })
}

/// Reads a VERSION field: non-empty printable ASCII of at most [`MAX_VERSION`]
/// bytes.
pub(crate) fn read_version<R: Read>(r: &mut FieldReader<R>) -> Result<String, WireError> {
    let version = r.read_str(Field::Version, MAX_VERSION)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::Invalid(Field::Version));
    }
    Ok(version)
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
    let version = read_version(r)?;
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
    fn the_block_extensions_round_trip_and_bound_their_numbers() {
        let bytes = encode_hashes_request("f");
        assert_eq!(bytes, b"GET_FILE_HASHES\0f\0");
        let mut r = FieldReader::new(&bytes[..]);
        assert_eq!(
            read_request(&mut r).unwrap(),
            Request::Hashes { file: "f".into() }
        );
        let bytes = encode_blocks_request("f", "1-2", 7, 16);
        assert_eq!(bytes, b"GET_FILE_BLOCK\0f\x001-2\x007\x0016\0");
        let mut r = FieldReader::new(&bytes[..]);
        assert_eq!(
            read_request(&mut r).unwrap(),
            Request::Blocks {
                file: "f".into(),
                version: "1-2".into(),
                first: 7,
                count: 16
            }
        );
        assert!(r.buffered().is_empty());
        for (bad, field) in [
            (&b"v\0x\x001\0"[..], Field::Block),
            (b"v\x001\x000\0", Field::Count),
            (b"v\x001\x0017\0", Field::Count),
            (b"v\x00123456789012345678901\x001\0", Field::Block),
        ] {
            let mut bytes = b"GET_FILE_BLOCK\0f\0".to_vec();
            bytes.extend_from_slice(bad);
            let got = read_request(&mut FieldReader::new(&bytes[..]));
            assert!(
                matches!(got, Err(PeerRequestError::BadNumber(f)) if f == field),
                "{bad:?}: {got:?}"
            );
        }
        let got = read_request(&mut FieldReader::new(
            &b"GET_FILE_BLOCK\0f\0a b\x000\x001\0"[..],
        ));
        assert!(matches!(got, Err(PeerRequestError::Wire(_))), "{got:?}");
        let got = read_request(&mut FieldReader::new(&b"GET_FILE_BLOCK\0f\0v\x000\0"[..]));
        assert!(
            matches!(
                got,
                Err(PeerRequestError::Wire(WireError::Truncated(Field::Count)))
            ),
            "{got:?}"
        );
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
        assert_eq!(
            answer,
            b"\0peerdex GET_FILE_RANGE GET_FILE_HASHES GET_FILE_BLOCK\0"
        );
        let says = |bytes: &[u8]| read_probe_answer(&mut FieldReader::new(bytes));
        assert_eq!(says(&answer).unwrap(), Extensions::Blocks);
        // An older peerdex peer; one naming only some of the three.
        assert_eq!(
            says(b"\0peerdex GET_FILE_RANGE\0").unwrap(),
            Extensions::Range
        );
        assert_eq!(
            says(b"\0peerdex GET_FILE_BLOCKS GET_FILE_RANGE GET_FILE_HASHES\0").unwrap(),
            Extensions::Range
        );
        assert_eq!(
            says(b"\0peerdex GET_FILE_HASHES GET_FILE_BLOCK\0").unwrap(),
            Extensions::None
        );
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
            assert_eq!(
                says(other).unwrap_or(Extensions::None),
                Extensions::None,
                "{other:?}"
            );
        }
        assert!(says(b"").is_err());
        let mut long = b"\0".to_vec();
        long.extend_from_slice(&[b'a'; 4096]);
        assert_eq!(says(&long).unwrap(), Extensions::None);
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
