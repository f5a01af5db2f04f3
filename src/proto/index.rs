//! Messages of the index protocol (PROTOCOL.md section 1): requests, result codes and
//! list replies, with their encoding and decoding.
//!
//! Owns: the operation names, the request layouts (with and without DATETIME), the
//! content rules of each field, the result code table, and the list reply formats.
//! Used by the server (decode requests, encode replies) and by the client and the
//! benchmark (encode requests, decode replies). Does not own: the registry state
//! (`registry`) or sockets (`server`, `net`).

use std::io::Read;
use std::net::IpAddr;

use crate::proto::wire::{
    self, Field, FieldReader, MAX_DATETIME, MAX_FIELD, MAX_OP, WireError, put_number, put_str,
};

/// The operations of the index protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Register,
    Unregister,
    Connect,
    Disconnect,
    Publish,
    Delete,
    ListUsers,
    ListContent,
    Search,
}

impl Op {
    pub const ALL: [Op; 9] = [
        Op::Register,
        Op::Unregister,
        Op::Connect,
        Op::Disconnect,
        Op::Publish,
        Op::Delete,
        Op::ListUsers,
        Op::ListContent,
        Op::Search,
    ];

    /// The name as it travels on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Op::Register => "REGISTER",
            Op::Unregister => "UNREGISTER",
            Op::Connect => "CONNECT",
            Op::Disconnect => "DISCONNECT",
            Op::Publish => "PUBLISH",
            Op::Delete => "DELETE",
            Op::ListUsers => "LIST_USERS",
            Op::ListContent => "LIST_CONTENT",
            Op::Search => "SEARCH",
        }
    }

    /// The operation for an exact wire name (upper case only).
    pub fn from_name(name: &[u8]) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name().as_bytes() == name)
    }

    /// The "any other error" code of this operation (PROTOCOL.md section 1 table).
    pub fn other_error(self) -> u8 {
        Status::OtherError.code(self)
    }
}

/// Result code 0, common to every operation.
pub const OK: u8 = 0;

/// The result of one index operation, by meaning. The server answers it and the
/// client reads it; its number depends on the operation (PROTOCOL.md section 1), and
/// [`Status::code`] / [`Status::from_code`] are the one table that says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0, every operation.
    Ok,
    /// REGISTER: the user name is already registered.
    NameInUse,
    /// Every operation but REGISTER: the user does not exist.
    NoSuchUser,
    /// CONNECT: the user is already connected.
    AlreadyConnected,
    /// DISCONNECT, PUBLISH, DELETE, LIST_USERS, LIST_CONTENT, SEARCH: the user is not
    /// connected.
    NotConnected,
    /// PUBLISH: this user already published the file.
    AlreadyPublished,
    /// DELETE: the file was not published by this user.
    NotPublished,
    /// LIST_CONTENT: the target user does not exist.
    NoSuchTarget,
    /// The operation's "any other error" code (UNREGISTER's also means "the user is
    /// connected: disconnect first").
    OtherError,
}

impl Status {
    /// The statuses `op` can answer, in code order.
    pub fn of(op: Op) -> &'static [Status] {
        use Status::*;
        match op {
            Op::Register => &[Ok, NameInUse, OtherError],
            Op::Unregister => &[Ok, NoSuchUser, OtherError],
            Op::Connect => &[Ok, NoSuchUser, AlreadyConnected, OtherError],
            Op::Disconnect | Op::ListUsers | Op::Search => {
                &[Ok, NoSuchUser, NotConnected, OtherError]
            }
            Op::Publish => &[Ok, NoSuchUser, NotConnected, AlreadyPublished, OtherError],
            Op::Delete => &[Ok, NoSuchUser, NotConnected, NotPublished, OtherError],
            Op::ListContent => &[Ok, NoSuchUser, NotConnected, NoSuchTarget, OtherError],
        }
    }

    /// The byte `op` answers for this status. A status `op` never answers (e.g.
    /// `NameInUse` for DELETE) is sent as `op`'s "any other error".
    pub fn code(self, op: Op) -> u8 {
        let table = Status::of(op);
        let i = table
            .iter()
            .position(|&s| s == self)
            .unwrap_or(table.len() - 1);
        i as u8
    }

    /// The status `code` means as an answer to `op`; `None` for a code the operation
    /// does not define.
    pub fn from_code(op: Op, code: u8) -> Option<Status> {
        Status::of(op).get(usize::from(code)).copied()
    }

    /// What the status means, in upper-case words (the dashboard, the logger and the
    /// console show these beside the code).
    pub fn meaning(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::NameInUse => "USERNAME IN USE",
            Status::NoSuchUser => "USER DOES NOT EXIST",
            Status::AlreadyConnected => "USER ALREADY CONNECTED",
            Status::NotConnected => "USER NOT CONNECTED",
            Status::AlreadyPublished => "CONTENT ALREADY PUBLISHED",
            Status::NotPublished => "CONTENT NOT PUBLISHED",
            Status::NoSuchTarget => "REMOTE USER DOES NOT EXIST",
            Status::OtherError => "ERROR",
        }
    }
}

// The result codes by meaning, for callers not yet on [`Status`] (to go once the
// server and the client use it); a test holds them to the table above.

/// REGISTER: the user name is already registered.
pub(crate) const NAME_IN_USE: u8 = 1;
/// Every operation but REGISTER: the user does not exist.
pub(crate) const NO_SUCH_USER: u8 = 1;
/// CONNECT: the user is already connected.
pub(crate) const ALREADY_CONNECTED: u8 = 2;
/// DISCONNECT, PUBLISH, DELETE, LIST_USERS, LIST_CONTENT, SEARCH: the user is not
/// connected.
pub(crate) const NOT_CONNECTED: u8 = 2;
/// PUBLISH: this user already published the file.
pub(crate) const ALREADY_PUBLISHED: u8 = 3;
/// DELETE: the file was not published by this user.
pub(crate) const NOT_PUBLISHED: u8 = 3;
/// LIST_CONTENT: the target user does not exist.
pub(crate) const NO_SUCH_TARGET: u8 = 3;

/// What a request asks for, after the common header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Register,
    Unregister,
    Connect { port: u16 },
    Disconnect,
    Publish { file: String, description: String },
    Delete { file: String },
    ListUsers,
    ListContent { target: String },
    Search { pattern: String },
}

impl Body {
    pub fn op(&self) -> Op {
        match self {
            Body::Register => Op::Register,
            Body::Unregister => Op::Unregister,
            Body::Connect { .. } => Op::Connect,
            Body::Disconnect => Op::Disconnect,
            Body::Publish { .. } => Op::Publish,
            Body::Delete { .. } => Op::Delete,
            Body::ListUsers => Op::ListUsers,
            Body::ListContent { .. } => Op::ListContent,
            Body::Search { .. } => Op::Search,
        }
    }
}

/// A complete index request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The DATETIME the client sent; `None` for the first-version layout without it.
    pub datetime: Option<String>,
    pub user: String,
    pub body: Body,
}

impl Request {
    /// The operation text of the audit log (PROTOCOL.md section 3): the OP name, with
    /// the file name for PUBLISH and DELETE.
    pub fn audit_text(&self) -> String {
        match &self.body {
            Body::Publish { file, .. } => format!("PUBLISH {file}"),
            Body::Delete { file } => format!("DELETE {file}"),
            body => body.op().name().to_owned(),
        }
    }

    /// Encodes the request in the current layout (with DATETIME when present).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        put_str(&mut out, self.body.op().name());
        if let Some(dt) = &self.datetime {
            put_str(&mut out, dt);
        }
        put_str(&mut out, &self.user);
        match &self.body {
            Body::Register | Body::Unregister | Body::Disconnect | Body::ListUsers => {}
            Body::Connect { port } => put_number(&mut out, u64::from(*port)),
            Body::Publish { file, description } => {
                put_str(&mut out, file);
                put_str(&mut out, description);
            }
            Body::Delete { file } => put_str(&mut out, file),
            Body::ListContent { target } => put_str(&mut out, target),
            Body::Search { pattern } => put_str(&mut out, pattern),
        }
        out
    }
}

/// Why a request could not be decoded.
#[derive(Debug)]
pub enum RequestError {
    /// The OP is not one we know (or could not be read at all): the connection is
    /// closed without a result byte.
    UnknownOp,
    /// The OP is known but the rest is bad: the server answers the op's "any other
    /// error" code. `user` is the user name when it was read before the failure.
    Bad {
        op: Op,
        user: Option<String>,
        error: WireError,
    },
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::UnknownOp => f.write_str("unknown operation"),
            RequestError::Bad { op, error, .. } => write!(f, "bad {} request: {error}", op.name()),
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads one request. Accepts both layouts: when the second field contains a space
/// it is a DATETIME (user names never contain whitespace), otherwise it is the user.
pub fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<Request, RequestError> {
    let op = r
        .read_bytes(Field::Op, MAX_OP)
        .ok()
        .and_then(Op::from_name)
        .ok_or(RequestError::UnknownOp)?;
    let mut user_seen = None;
    let result = read_after_op(r, op, &mut user_seen);
    result.map_err(|error| RequestError::Bad {
        op,
        user: user_seen,
        error,
    })
}

fn read_after_op<R: Read>(
    r: &mut FieldReader<R>,
    op: Op,
    user_seen: &mut Option<String>,
) -> Result<Request, WireError> {
    // The second field is a DATETIME or a user name: read it with the larger limit,
    // then apply the right one.
    let second = r.read_str(Field::User, MAX_FIELD)?;
    let (datetime, user) = if second.contains(' ') {
        if second.len() > MAX_DATETIME {
            return Err(WireError::TooLong {
                field: Field::DateTime,
                limit: MAX_DATETIME,
            });
        }
        if second.chars().any(char::is_control) {
            return Err(WireError::Invalid(Field::DateTime));
        }
        (Some(second), r.read_str(Field::User, MAX_FIELD)?)
    } else {
        (None, second)
    };
    *user_seen = Some(user.clone());
    let body = match op {
        Op::Register => Body::Register,
        Op::Unregister => Body::Unregister,
        Op::Disconnect => Body::Disconnect,
        Op::ListUsers => Body::ListUsers,
        Op::Connect => {
            let port = r.read_number(Field::Port)?;
            let port = u16::try_from(port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or(WireError::Invalid(Field::Port))?;
            Body::Connect { port }
        }
        Op::Publish => {
            let file = r.read_str(Field::File, MAX_FIELD)?;
            let description = r.read_str(Field::Description, MAX_FIELD)?;
            Body::Publish { file, description }
        }
        Op::Delete => Body::Delete {
            file: r.read_str(Field::File, MAX_FIELD)?,
        },
        Op::ListContent => Body::ListContent {
            target: r.read_str(Field::Target, MAX_FIELD)?,
        },
        Op::Search => Body::Search {
            pattern: r.read_str(Field::Pattern, MAX_FIELD)?,
        },
    };
    // Content rules, checked once the whole request has arrived.
    if !wire::is_valid_name(&user) {
        return Err(WireError::Invalid(Field::User));
    }
    match &body {
        Body::Publish { file, description } => {
            if !wire::is_valid_name(file) {
                return Err(WireError::Invalid(Field::File));
            }
            if !wire::is_valid_description(description) {
                return Err(WireError::Invalid(Field::Description));
            }
        }
        Body::Delete { file } if !wire::is_valid_name(file) => {
            return Err(WireError::Invalid(Field::File));
        }
        Body::ListContent { target } if !wire::is_valid_name(target) => {
            return Err(WireError::Invalid(Field::Target));
        }
        // An empty pattern matches every file; whitespace cannot match any name but
        // is not an error.
        Body::Search { pattern } if pattern.chars().any(char::is_control) => {
            return Err(WireError::Invalid(Field::Pattern));
        }
        _ => {}
    }
    Ok(Request {
        datetime,
        user,
        body,
    })
}

/// One connected user in a LIST_USERS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub user: String,
    pub ip: IpAddr,
    pub port: u16,
}

/// One publication in a LIST_CONTENT reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub file: String,
    pub description: String,
}

/// One match in a SEARCH reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchEntry {
    pub file: String,
    pub description: String,
    pub owner: String,
    pub ip: IpAddr,
    pub port: u16,
}

/// Appends one LIST_USERS entry (the caller has written code 0 and the count).
pub fn put_user_entry(out: &mut Vec<u8>, user: &str, ip: IpAddr, port: u16) {
    put_str(out, user);
    put_display(out, ip);
    put_number(out, u64::from(port));
}

/// Appends one LIST_CONTENT entry.
pub fn put_file_entry(out: &mut Vec<u8>, file: &str, description: &str) {
    put_str(out, file);
    put_str(out, description);
}

/// Appends one SEARCH entry.
pub fn put_search_entry(
    out: &mut Vec<u8>,
    file: &str,
    description: &str,
    owner: &str,
    ip: IpAddr,
    port: u16,
) {
    put_file_entry(out, file, description);
    put_user_entry(out, owner, ip, port);
}

fn put_display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "{v}");
    out.push(0);
}

/// Most entries a client accepts in one list reply. A server could announce any
/// count; this caps what a client allocates for it.
pub const MAX_LIST_ENTRIES: u64 = 10_000_000;

fn read_count<R: Read>(r: &mut FieldReader<R>) -> Result<u64, WireError> {
    let n = r.read_number(Field::Count)?;
    if n > MAX_LIST_ENTRIES {
        return Err(WireError::Invalid(Field::Count));
    }
    Ok(n)
}

fn read_ip<R: Read>(r: &mut FieldReader<R>) -> Result<IpAddr, WireError> {
    r.read_str(Field::Address, MAX_FIELD)?
        .parse()
        .map_err(|_| WireError::Invalid(Field::Address))
}

fn read_port<R: Read>(r: &mut FieldReader<R>) -> Result<u16, WireError> {
    u16::try_from(r.read_number(Field::Port)?).map_err(|_| WireError::Invalid(Field::Port))
}

/// Reads the body of a LIST_USERS reply after result code 0.
pub fn read_user_list<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<UserEntry>, WireError> {
    let n = read_count(r)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let user = r.read_str(Field::User, MAX_FIELD)?;
        let ip = read_ip(r)?;
        let port = read_port(r)?;
        out.push(UserEntry { user, ip, port });
    }
    Ok(out)
}

/// Reads the body of a LIST_CONTENT reply after result code 0.
pub fn read_file_list<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<FileEntry>, WireError> {
    let n = read_count(r)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let file = r.read_str(Field::File, MAX_FIELD)?;
        let description = r.read_str(Field::Description, MAX_FIELD)?;
        out.push(FileEntry { file, description });
    }
    Ok(out)
}

/// Reads the body of a SEARCH reply after result code 0.
pub fn read_search_list<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<SearchEntry>, WireError> {
    let n = read_count(r)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let file = r.read_str(Field::File, MAX_FIELD)?;
        let description = r.read_str(Field::Description, MAX_FIELD)?;
        let owner = r.read_str(Field::User, MAX_FIELD)?;
        let ip = read_ip(r)?;
        let port = read_port(r)?;
        out.push(SearchEntry {
            file,
            description,
            owner,
            ip,
            port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_the_protocol_table() {
        for op in Op::ALL {
            assert_eq!(Status::Ok.code(op), OK);
            assert_eq!(Status::OtherError.code(op), op.other_error());
            for (code, &status) in Status::of(op).iter().enumerate() {
                assert_eq!(status.code(op), code as u8, "{op:?} {status:?}");
                assert_eq!(Status::from_code(op, code as u8), Some(status));
            }
            let past = Status::of(op).len() as u8;
            assert_eq!(Status::from_code(op, past), None, "{op:?}");
        }
        assert_eq!(Status::NameInUse.code(Op::Register), NAME_IN_USE);
        assert_eq!(Status::NoSuchUser.code(Op::Delete), NO_SUCH_USER);
        assert_eq!(
            Status::AlreadyConnected.code(Op::Connect),
            ALREADY_CONNECTED
        );
        assert_eq!(Status::NotConnected.code(Op::Search), NOT_CONNECTED);
        assert_eq!(
            Status::AlreadyPublished.code(Op::Publish),
            ALREADY_PUBLISHED
        );
        assert_eq!(Status::NotPublished.code(Op::Delete), NOT_PUBLISHED);
        assert_eq!(Status::NoSuchTarget.code(Op::ListContent), NO_SUCH_TARGET);
        assert_eq!(Status::Ok.code(Op::Publish), 0);
        assert_eq!(Status::OtherError.code(Op::Publish), 4);
        // A status an operation never answers goes out as its "other error".
        assert_eq!(Status::NameInUse.code(Op::Delete), 4);
    }

    fn decode(bytes: &[u8]) -> Result<Request, RequestError> {
        let mut r = FieldReader::new(bytes);
        let req = read_request(&mut r)?;
        assert!(r.buffered().is_empty(), "request left bytes over");
        Ok(req)
    }

    fn bad_field(bytes: &[u8]) -> (Op, WireError) {
        match decode(bytes) {
            Err(RequestError::Bad { op, error, .. }) => (op, error),
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn decodes_layout_with_datetime() {
        let req = decode(b"PUBLISH\x0017/12/2014 13:20:35\0alice\0notes.txt\0week 3\0").unwrap();
        assert_eq!(req.datetime.as_deref(), Some("17/12/2014 13:20:35"));
        assert_eq!(req.user, "alice");
        assert_eq!(
            req.body,
            Body::Publish {
                file: "notes.txt".into(),
                description: "week 3".into()
            }
        );
        assert_eq!(req.audit_text(), "PUBLISH notes.txt");
    }

    #[test]
    fn decodes_layout_without_datetime() {
        let req = decode(b"CONNECT\0bob\x00456\0").unwrap();
        assert_eq!(req.datetime, None);
        assert_eq!(req.user, "bob");
        assert_eq!(req.body, Body::Connect { port: 456 });
    }

    #[test]
    fn encode_then_decode_every_body() {
        let bodies = [
            Body::Register,
            Body::Unregister,
            Body::Connect { port: 65535 },
            Body::Disconnect,
            Body::Publish {
                file: "/abs/path.bin".into(),
                description: "".into(),
            },
            Body::Delete { file: "f".into() },
            Body::ListUsers,
            Body::ListContent { target: "t".into() },
            Body::Search { pattern: "".into() },
        ];
        for body in bodies {
            for datetime in [None, Some("01/01/2026 00:00:00".to_owned())] {
                let req = Request {
                    datetime: datetime.clone(),
                    user: "u".into(),
                    body: body.clone(),
                };
                assert_eq!(decode(&req.encode()).unwrap(), req);
            }
        }
    }

    #[test]
    fn unknown_op_is_its_own_error() {
        assert!(matches!(decode(b"FROB\0x\0"), Err(RequestError::UnknownOp)));
        assert!(matches!(
            decode(b"register\0x\0"),
            Err(RequestError::UnknownOp)
        ));
        assert!(matches!(decode(b""), Err(RequestError::UnknownOp)));
    }

    #[test]
    fn rejects_bad_ports() {
        for port in ["0", "70000", "abc", "", "-1", " 80"] {
            let bytes = format!("CONNECT\0u\0{port}\0");
            let (op, err) = bad_field(bytes.as_bytes());
            assert_eq!(op.other_error(), 3);
            assert!(
                matches!(err, WireError::Invalid(Field::Port)),
                "{port}: {err}"
            );
        }
    }

    #[test]
    fn rejects_whitespace_in_user_name() {
        // With a tab the second field has no space, so it is taken as the user.
        let (op, err) = bad_field(b"REGISTER\0a\tb\0");
        assert_eq!(op, Op::Register);
        assert!(matches!(err, WireError::Invalid(Field::User)));
        // With a space it is taken as a DATETIME, and the user is still missing.
        let (_, err) = bad_field(b"REGISTER\0a b\0");
        assert!(matches!(err, WireError::Truncated(Field::User)));
    }

    #[test]
    fn rejects_empty_user() {
        let (_, err) = bad_field(b"REGISTER\0\0");
        assert!(matches!(err, WireError::Invalid(Field::User)));
    }

    #[test]
    fn rejects_long_datetime() {
        let dt = format!("{} x", "9".repeat(MAX_DATETIME));
        let bytes = format!("LIST_USERS\0{dt}\0u\0");
        let (_, err) = bad_field(bytes.as_bytes());
        assert!(matches!(
            err,
            WireError::TooLong {
                field: Field::DateTime,
                ..
            }
        ));
    }

    #[test]
    fn rejects_name_over_limit() {
        let bytes = format!("REGISTER\0{}\0", "a".repeat(MAX_FIELD + 1));
        let (op, err) = bad_field(bytes.as_bytes());
        assert_eq!(op.other_error(), 2);
        assert!(matches!(err, WireError::TooLong { .. }));
    }

    #[test]
    fn rejects_control_characters_in_description() {
        let (op, err) = bad_field(b"PUBLISH\0u\0f\0bad\x07desc\0");
        assert_eq!(op.other_error(), 4);
        assert!(matches!(err, WireError::Invalid(Field::Description)));
    }

    #[test]
    fn reports_user_of_a_bad_request() {
        match decode(b"CONNECT\0carol\0x\0") {
            Err(RequestError::Bad { user, .. }) => assert_eq!(user.as_deref(), Some("carol")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_error_codes_match_the_table() {
        let codes: Vec<u8> = Op::ALL.iter().map(|op| op.other_error()).collect();
        assert_eq!(codes, [2, 2, 3, 3, 4, 4, 3, 4, 3]);
    }

    #[test]
    fn list_replies_round_trip() {
        let mut out = Vec::new();
        put_number(&mut out, 2);
        put_user_entry(&mut out, "a", "10.0.0.1".parse().unwrap(), 1);
        put_user_entry(&mut out, "b", "::1".parse().unwrap(), 65535);
        let mut r = FieldReader::new(&out[..]);
        let users = read_user_list(&mut r).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].port, 65535);
        assert!(r.buffered().is_empty());

        let mut out = Vec::new();
        put_number(&mut out, 1);
        put_search_entry(&mut out, "f", "d d", "o", "127.0.0.1".parse().unwrap(), 9);
        let mut r = FieldReader::new(&out[..]);
        let hits = read_search_list(&mut r).unwrap();
        assert_eq!(hits[0].description, "d d");
        assert_eq!(hits[0].owner, "o");
    }

    #[test]
    fn rejects_absurd_list_count() {
        let mut r = FieldReader::new(&b"99999999999\0"[..]);
        assert!(read_file_list(&mut r).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_request_decoder(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            let mut r = FieldReader::new(&bytes[..]);
            let _ = read_request(&mut r);
        }

        #[test]
        fn arbitrary_fields_after_a_known_op_never_panic(
            op in 0usize..9,
            fields in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..6),
        ) {
            let mut bytes = Vec::new();
            put_str(&mut bytes, Op::ALL[op].name());
            for f in &fields {
                bytes.extend_from_slice(f);
                bytes.push(0);
            }
            let mut r = FieldReader::new(&bytes[..]);
            let _ = read_request(&mut r);
        }
    }
}
