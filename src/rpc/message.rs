//! ONC-RPC version 2 (RFC 5531) messages and TCP record marking, for both sides.
//!
//! Owns: reading a record of one or more fragments with a hard size limit checked
//! before anything is allocated; classifying an incoming call the way an
//! rpcgen-generated server does (RPC_MISMATCH, auth checks, garbage dropped);
//! building replies; building calls and parsing replies for clients (`shipper`,
//! `portmap`). Message headers go through the onc-rpc crate; procedure arguments
//! and results stay raw XDR bytes (`xdr`, `logrpc`). Does not own: sockets,
//! threads, or what any procedure means.

use std::io::{self, Read};

use onc_rpc::auth::AuthFlavor;
use onc_rpc::{
    AcceptedReply, AcceptedStatus, AuthError, CallBody, MessageType, RejectedReply, ReplyBody,
    RpcMessage,
};

/// Largest record (all fragments together) accepted on TCP. A LOG call is well
/// under 2 KiB even with the largest AUTH_SYS credential (400 bytes); 64 KiB
/// leaves room for any sane client and caps what a peer can make us allocate.
pub(crate) const MAX_RECORD: usize = 64 * 1024;

/// Most fragments in one record: stops a peer from keeping a thread busy with
/// an endless stream of empty non-final fragments.
pub(crate) const MAX_FRAGMENTS: usize = 1024;

/// Largest UDP datagram we read (the IPv4 UDP payload maximum).
pub(crate) const MAX_DATAGRAM: usize = 65_507;

/// "the highest-order bit of the header [...] indicates whether the fragment is
/// the last fragment in the record" (RFC 5531 11).
const LAST_FRAGMENT: u32 = 1 << 31;

/// The only RPC version (RFC 5531 9: "rpcvers [...] MUST be equal to 2").
pub(crate) const RPC_VERSION: u32 = 2;

const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;

/// Why a record could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The stream ended cleanly between records.
    #[error("record: connection closed")]
    Closed,
    /// The stream ended inside a record.
    #[error("record: connection closed inside a record")]
    Truncated,
    /// The record would exceed [`MAX_RECORD`] (the announced length, not read).
    #[error("record: {announced} bytes exceeds the limit of {MAX_RECORD}")]
    TooLarge { announced: usize },
    /// More than [`MAX_FRAGMENTS`] fragments.
    #[error("record: more than {MAX_FRAGMENTS} fragments")]
    TooManyFragments,
    #[error("record: io: {0}")]
    Io(#[source] io::Error),
}

/// Reads one record (RFC 5531 11, record marking) into `buf` (cleared first),
/// joining its fragments. Every fragment length is checked against what is left
/// of [`MAX_RECORD`] before the buffer grows.
pub(crate) fn read_record<R: Read>(r: &mut R, buf: &mut Vec<u8>) -> Result<(), RecordError> {
    buf.clear();
    for n in 0..MAX_FRAGMENTS {
        let mut header = [0u8; 4];
        read_header(r, &mut header, n == 0)?;
        let header = u32::from_be_bytes(header);
        let len = (header & !LAST_FRAGMENT) as usize;
        if buf.len() + len > MAX_RECORD {
            return Err(RecordError::TooLarge {
                announced: buf.len() + len,
            });
        }
        // The buffer grows with the bytes that arrive, not with what the header
        // announced: a header alone costs nothing.
        let start = buf.len();
        let got = r
            .by_ref()
            .take(len as u64)
            .read_to_end(buf)
            .map_err(eof_is_truncated)?;
        if got < len {
            buf.truncate(start);
            return Err(RecordError::Truncated);
        }
        if header & LAST_FRAGMENT != 0 {
            return Ok(());
        }
    }
    Err(RecordError::TooManyFragments)
}

fn read_header<R: Read>(r: &mut R, header: &mut [u8; 4], first: bool) -> Result<(), RecordError> {
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 && first => return Err(RecordError::Closed),
            Ok(0) => return Err(RecordError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RecordError::Io(e)),
        }
    }
    Ok(())
}

fn eof_is_truncated(e: io::Error) -> RecordError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        RecordError::Truncated
    } else {
        RecordError::Io(e)
    }
}

/// True when `bytes` starts with at least one complete record (used to decide
/// whether more input is already buffered before flushing replies).
pub(crate) fn has_complete_record(bytes: &[u8]) -> bool {
    let mut at = 0;
    for _ in 0..MAX_FRAGMENTS {
        let Some(h) = bytes.get(at..at + 4) else {
            return false;
        };
        let header = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        at += 4 + (header & !LAST_FRAGMENT) as usize;
        if at > bytes.len() {
            return false;
        }
        if header & LAST_FRAGMENT != 0 {
            return true;
        }
    }
    false
}

/// A call the server should dispatch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Call<'a> {
    pub xid: u32,
    pub program: u32,
    pub version: u32,
    pub procedure: u32,
    /// The procedure's XDR arguments.
    pub args: &'a [u8],
}

/// What an incoming message asks of a server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// A well-formed call with accepted credentials.
    Call(Call<'a>),
    /// A call with an RPC version other than 2: reply RPC_MISMATCH.
    RpcMismatch { xid: u32 },
    /// A credential flavor other than AUTH_NONE and AUTH_SYS: reply AUTH_ERROR
    /// AUTH_REJECTEDCRED (what libtirpc's `_authenticate` answers).
    AuthRejected { xid: u32 },
    /// Not a call, or a call header that does not decode: no reply (an rpcgen
    /// server drops it; on TCP it closes the connection).
    Garbage,
}

/// Classifies one message (a whole record without its marks, or a datagram).
pub(crate) fn parse_call(msg: &[u8]) -> Incoming<'_> {
    let word = |i: usize| {
        msg.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(xid), Some(MSG_CALL), Some(rpcvers)) = (word(0), word(1), word(2)) else {
        return Incoming::Garbage;
    };
    if rpcvers != RPC_VERSION {
        return Incoming::RpcMismatch { xid };
    }
    let Ok(body) = CallBody::try_from(&msg[8..]) else {
        return Incoming::Garbage;
    };
    match body.auth_credentials() {
        AuthFlavor::AuthNone(_) | AuthFlavor::AuthUnix(_) => {}
        _ => return Incoming::AuthRejected { xid },
    }
    Incoming::Call(Call {
        xid,
        program: body.program(),
        version: body.program_version(),
        procedure: body.procedure(),
        args: body.payload(),
    })
}

/// How a server answers an accepted call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer<'a> {
    Success(&'a [u8]),
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

/// Appends a record-marked reply to `out`.
pub(crate) fn put_reply(out: &mut Vec<u8>, xid: u32, answer: Answer<'_>) {
    let status = match answer {
        Answer::Success(r) => AcceptedStatus::Success(r),
        Answer::ProgUnavail => AcceptedStatus::ProgramUnavailable,
        Answer::ProgMismatch { low, high } => AcceptedStatus::ProgramMismatch { low, high },
        Answer::ProcUnavail => AcceptedStatus::ProcedureUnavailable,
        Answer::GarbageArgs => AcceptedStatus::GarbageArgs,
        Answer::SystemErr => AcceptedStatus::SystemError,
    };
    let body = ReplyBody::Accepted(AcceptedReply::new(AuthFlavor::AuthNone(None), status));
    put_message(out, RpcMessage::new(xid, MessageType::Reply(body)));
}

/// Appends a record-marked MSG_DENIED reply to `out`.
pub(crate) fn put_denied(out: &mut Vec<u8>, xid: u32, rejected: RejectedReply) {
    let body: ReplyBody<&[u8], &[u8]> = ReplyBody::Denied(rejected);
    put_message(out, RpcMessage::new(xid, MessageType::Reply(body)));
}

/// The RPC_MISMATCH rejection: we support version 2 only.
pub(crate) fn rpc_mismatch() -> RejectedReply {
    RejectedReply::RpcVersionMismatch {
        low: RPC_VERSION,
        high: RPC_VERSION,
    }
}

/// The rejection for unsupported credentials.
pub(crate) fn auth_rejected() -> RejectedReply {
    RejectedReply::AuthError(AuthError::RejectedCredentials)
}

fn put_message(out: &mut Vec<u8>, msg: RpcMessage<&[u8], &[u8]>) {
    let start = out.len();
    // Serialising into a Vec fails only for messages over 2 GB, which we never
    // build; undo any partial write rather than send a broken record.
    if msg.serialise_into(&mut *out).is_err() {
        out.truncate(start);
    }
}

/// Appends a record-marked call with AUTH_NONE credentials to `out`.
pub(crate) fn put_call(
    out: &mut Vec<u8>,
    xid: u32,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) {
    let body = CallBody::new(
        program,
        version,
        procedure,
        AuthFlavor::AuthNone::<&[u8]>(None),
        AuthFlavor::AuthNone(None),
        args,
    );
    put_message(out, RpcMessage::new(xid, MessageType::Call(body)));
}

/// Why a reply did not carry a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a decodable reply message.
    #[error("rpc: undecodable reply")]
    Garbage,
    /// The server rejected the call (RPC_MISMATCH or AUTH_ERROR).
    #[error("rpc: call denied (rpc version or credentials)")]
    Denied,
    #[error("rpc: program unavailable")]
    ProgUnavail,
    #[error("rpc: program version mismatch (server has {low}..{high})")]
    ProgMismatch { low: u32, high: u32 },
    #[error("rpc: procedure unavailable")]
    ProcUnavail,
    #[error("rpc: server could not decode the arguments")]
    GarbageArgs,
    #[error("rpc: system error on the server")]
    SystemErr,
}

/// Parses a reply message (without record marks): its xid and, when the call
/// succeeded, the XDR result. The xid is `None` when even that is missing.
pub(crate) fn parse_reply(msg: &[u8]) -> (Option<u32>, Result<&[u8], ReplyError>) {
    let word = |i: usize| {
        msg.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let xid = word(0);
    if word(1) != Some(MSG_REPLY) {
        return (xid, Err(ReplyError::Garbage));
    }
    let result = match ReplyBody::try_from(&msg[8..]) {
        Err(_) => Err(ReplyError::Garbage),
        Ok(ReplyBody::Denied(_)) => Err(ReplyError::Denied),
        Ok(ReplyBody::Accepted(a)) => match *a.status() {
            AcceptedStatus::Success(r) => Ok(r),
            AcceptedStatus::ProgramUnavailable => Err(ReplyError::ProgUnavail),
            AcceptedStatus::ProgramMismatch { low, high } => {
                Err(ReplyError::ProgMismatch { low, high })
            }
            AcceptedStatus::ProcedureUnavailable => Err(ReplyError::ProcUnavail),
            AcceptedStatus::GarbageArgs => Err(ReplyError::GarbageArgs),
            AcceptedStatus::SystemError => Err(ReplyError::SystemErr),
        },
    };
    (xid, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call_bytes(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_call(&mut out, xid, prog, vers, proc_, args);
        out
    }

    #[test]
    fn call_round_trips_through_record_marking() {
        let bytes = call_bytes(42, 0x2000_0001, 2, 1, &[0, 0, 0, 9]);
        assert!(has_complete_record(&bytes));
        let mut buf = Vec::new();
        read_record(&mut &bytes[..], &mut buf).unwrap();
        assert_eq!(
            parse_call(&buf),
            Incoming::Call(Call {
                xid: 42,
                program: 0x2000_0001,
                version: 2,
                procedure: 1,
                args: &[0, 0, 0, 9],
            })
        );
    }

    #[test]
    fn joins_a_record_of_several_fragments() {
        let whole = call_bytes(7, 1, 1, 0, &[]);
        let msg = &whole[4..];
        let mut split = Vec::new();
        for (i, chunk) in msg.chunks(5).enumerate() {
            let last = (i + 1) * 5 >= msg.len();
            let h = chunk.len() as u32 | if last { LAST_FRAGMENT } else { 0 };
            split.extend_from_slice(&h.to_be_bytes());
            split.extend_from_slice(chunk);
        }
        assert!(has_complete_record(&split));
        assert!(!has_complete_record(&split[..split.len() - 1]));
        let mut buf = Vec::new();
        read_record(&mut &split[..], &mut buf).unwrap();
        assert_eq!(buf, msg);
    }

    #[test]
    fn rejects_a_huge_fragment_without_allocating_it() {
        let bytes = (0x7fff_ffffu32 | LAST_FRAGMENT).to_be_bytes();
        let mut buf = Vec::new();
        let e = read_record(&mut &bytes[..], &mut buf).unwrap_err();
        assert!(matches!(e, RecordError::TooLarge { .. }), "{e}");
        assert!(buf.capacity() < MAX_RECORD);
    }

    #[test]
    fn rejects_fragments_adding_up_past_the_limit() {
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend_from_slice(&(40_000u32).to_be_bytes());
            bytes.extend(std::iter::repeat_n(0, 40_000));
        }
        let mut buf = Vec::new();
        assert!(matches!(
            read_record(&mut &bytes[..], &mut buf),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_endless_empty_fragments() {
        let bytes: Vec<u8> = std::iter::repeat_n([0u8; 4], MAX_FRAGMENTS + 1)
            .flatten()
            .collect();
        let mut buf = Vec::new();
        assert!(matches!(
            read_record(&mut &bytes[..], &mut buf),
            Err(RecordError::TooManyFragments)
        ));
    }

    #[test]
    fn tells_a_clean_close_from_a_truncated_record() {
        let mut buf = Vec::new();
        assert!(matches!(
            read_record(&mut &[][..], &mut buf),
            Err(RecordError::Closed)
        ));
        assert!(matches!(
            read_record(&mut &[0x80, 0][..], &mut buf),
            Err(RecordError::Truncated)
        ));
        let bytes = call_bytes(1, 1, 1, 0, &[]);
        assert!(matches!(
            read_record(&mut &bytes[..bytes.len() - 1], &mut buf),
            Err(RecordError::Truncated)
        ));
    }

    #[test]
    fn classifies_rpc_version_mismatch() {
        let mut msg = call_bytes(9, 1, 1, 0, &[])[4..].to_vec();
        msg[8..12].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(parse_call(&msg), Incoming::RpcMismatch { xid: 9 });
    }

    #[test]
    fn accepts_auth_sys_and_rejects_other_flavors() {
        let unix = onc_rpc::auth::AuthUnixParams::new(0, &b"host"[..], 0, 0, [0u32]);
        let body = CallBody::new(
            5,
            1,
            0,
            AuthFlavor::AuthUnix(unix),
            AuthFlavor::AuthNone(None),
            &[][..],
        );
        let msg = RpcMessage::new(3, MessageType::Call(body))
            .serialise()
            .unwrap();
        assert!(matches!(
            parse_call(&msg[4..]),
            Incoming::Call(Call { xid: 3, .. })
        ));

        let body = CallBody::new(
            5,
            1,
            0,
            AuthFlavor::AuthShort(&b"abcd"[..]),
            AuthFlavor::AuthNone(None),
            &[][..],
        );
        let msg = RpcMessage::new(4, MessageType::Call(body))
            .serialise()
            .unwrap();
        assert_eq!(parse_call(&msg[4..]), Incoming::AuthRejected { xid: 4 });
    }

    #[test]
    fn replies_and_short_messages_are_garbage() {
        assert_eq!(parse_call(&[0, 0, 0, 1]), Incoming::Garbage);
        let mut out = Vec::new();
        put_reply(&mut out, 1, Answer::Success(&[]));
        assert_eq!(parse_call(&out[4..]), Incoming::Garbage);
        // A call whose credential length runs past the end.
        let mut msg = call_bytes(1, 1, 1, 0, &[])[4..].to_vec();
        msg.truncate(28);
        msg.extend_from_slice(&400u32.to_be_bytes());
        assert_eq!(parse_call(&msg), Incoming::Garbage);
    }

    #[test]
    fn every_answer_round_trips() {
        let cases = [
            (Answer::Success(&[0, 0, 0, 1][..]), Ok(&[0u8, 0, 0, 1][..])),
            (Answer::ProgUnavail, Err(ReplyError::ProgUnavail)),
            (
                Answer::ProgMismatch { low: 1, high: 2 },
                Err(ReplyError::ProgMismatch { low: 1, high: 2 }),
            ),
            (Answer::ProcUnavail, Err(ReplyError::ProcUnavail)),
            (Answer::GarbageArgs, Err(ReplyError::GarbageArgs)),
            (Answer::SystemErr, Err(ReplyError::SystemErr)),
        ];
        for (answer, want) in cases {
            let mut out = Vec::new();
            put_reply(&mut out, 77, answer);
            let (xid, got) = parse_reply(&out[4..]);
            assert_eq!(xid, Some(77));
            assert_eq!(got, want);
        }
        let mut out = Vec::new();
        put_denied(&mut out, 78, rpc_mismatch());
        assert_eq!(parse_reply(&out[4..]), (Some(78), Err(ReplyError::Denied)));
        let mut out = Vec::new();
        put_denied(&mut out, 79, auth_rejected());
        assert_eq!(parse_reply(&out[4..]), (Some(79), Err(ReplyError::Denied)));
    }

    #[test]
    fn a_header_announcing_more_than_arrives_allocates_only_what_arrived() {
        // Found by arbitrary_bytes_never_panic: a last-fragment header of length 5
        // and no data left a 5-byte zeroed buffer behind.
        let mut buf = Vec::new();
        let got = read_record(&mut &[128u8, 0, 0, 5][..], &mut buf);
        assert!(matches!(got, Err(RecordError::Truncated)));
        assert!(buf.is_empty());
        let mut buf = Vec::new();
        let got = read_record(&mut &[128u8, 0, 0, 5, 1, 2][..], &mut buf);
        assert!(matches!(got, Err(RecordError::Truncated)));
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn calls_round_trip(xid: u32, prog: u32, vers: u32, proc_: u32,
                            words in proptest::collection::vec(any::<u32>(), 0..16)) {
            let args: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let bytes = call_bytes(xid, prog, vers, proc_, &args);
            let mut buf = Vec::new();
            read_record(&mut &bytes[..], &mut buf).unwrap();
            let want = Call { xid, program: prog, version: vers, procedure: proc_, args: &args };
            prop_assert_eq!(parse_call(&buf), Incoming::Call(want));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_call(&bytes);
            let _ = parse_reply(&bytes);
            let _ = has_complete_record(&bytes);
            let mut buf = Vec::new();
            let _ = read_record(&mut &bytes[..], &mut buf);
            prop_assert!(buf.len() <= bytes.len());
        }
    }
}
