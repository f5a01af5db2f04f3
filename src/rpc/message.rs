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
mod tests;
