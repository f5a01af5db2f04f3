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

/// The course statement a lab follows (PROTOCOL.md section 1, "Statement years"):
/// it decides what the bytes cannot tell, such as the server's LIST_CONTENT
/// layout. `2024` is the 2023-24 statement, `2025` the 2024-25 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statement {
    /// 2023-24: LIST_CONTENT sends name and description per file.
    #[default]
    Y2024,
    /// 2024-25: LIST_CONTENT sends the names only.
    Y2025,
}

impl std::str::FromStr for Statement {
    type Err = String;

    fn from_str(s: &str) -> Result<Statement, String> {
        match s.trim() {
            "2024" | "2023-24" | "2023/2024" => Ok(Statement::Y2024),
            "2025" | "2024-25" | "2024/2025" => Ok(Statement::Y2025),
            _ => Err(format!(
                "'{s}' is not a statement year (2024 for 2023-24, 2025 for 2024-25)"
            )),
        }
    }
}

impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Statement::Y2024 => "2024",
            Statement::Y2025 => "2025",
        })
    }
}

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

    /// What a failure `code` of `op` means (`UNKNOWN CODE` for one `op` does not
    /// define); `None` for success. The dashboard's rows and the console's notes.
    pub fn failure_meaning(op: Op, code: u8) -> Option<&'static str> {
        (code != 0).then(|| Status::from_code(op, code).map_or("UNKNOWN CODE", Status::meaning))
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
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The OP is not one we know (or could not be read at all): the connection is
    /// closed without a result byte.
    #[error("unknown operation")]
    UnknownOp,
    /// The OP is known but the rest is bad: the server answers the op's "any other
    /// error" code. `user` is the user name when it was read before the failure.
    #[error("bad {} request: {error}", op.name())]
    Bad {
        op: Op,
        user: Option<String>,
        #[source]
        error: WireError,
    },
}

/// Reads one request. Accepts both layouts: when the second field contains a space
/// it is a DATETIME (user names never contain whitespace), otherwise it is the user.
/// A CONNECT may carry the client's IP address before its port (see
/// [`read_request_with_ip`]); this reader drops it.
pub fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<Request, RequestError> {
    read_request_with_ip(r).map(|(req, _)| req)
}

/// Reads one request like [`read_request`], and returns with it the IP address a
/// CONNECT declared: `CONNECT\0 [DATETIME\0] USER\0 IP\0 PORT\0`, what some
/// student clients send (PROTOCOL.md section 1, "Dialects"). The field after the
/// user is told apart by its bytes: digits only is the port, an IPv4 or IPv6
/// address is the declared IP and the port follows.
pub fn read_request_with_ip<R: Read>(
    r: &mut FieldReader<R>,
) -> Result<(Request, Option<IpAddr>), RequestError> {
    let op = r
        .read_bytes(Field::Op, MAX_OP)
        .ok()
        .and_then(Op::from_name)
        .ok_or(RequestError::UnknownOp)?;
    let mut user_seen = None;
    let mut declared = None;
    let result = read_after_op(r, op, &mut user_seen, &mut declared);
    result
        .map(|req| (req, declared))
        .map_err(|error| RequestError::Bad {
            op,
            user: user_seen,
            error,
        })
}

/// Longest address text accepted before a CONNECT port: an IPv6 address with an
/// embedded IPv4 part has at most 45 characters.
const MAX_IP_TEXT: usize = 45;

/// Reads CONNECT's port, or a declared IP address and then the port.
fn read_connect<R: Read>(
    r: &mut FieldReader<R>,
    declared: &mut Option<IpAddr>,
) -> Result<u16, WireError> {
    let field = r.read_bytes(Field::Port, MAX_IP_TEXT)?;
    let port = match wire::parse_decimal(field) {
        Some(port) => port,
        None => {
            let ip = std::str::from_utf8(field)
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .ok_or(WireError::Invalid(Field::Port))?;
            *declared = Some(ip);
            r.read_number(Field::Port)?
        }
    };
    u16::try_from(port)
        .ok()
        .filter(|&p| p != 0)
        .ok_or(WireError::Invalid(Field::Port))
}

/// Reads the request after its OP: the DATETIME if any, the user, the body; then
/// checks the content rules.
fn read_after_op<R: Read>(
    r: &mut FieldReader<R>,
    op: Op,
    user_seen: &mut Option<String>,
    declared: &mut Option<IpAddr>,
) -> Result<Request, WireError> {
    let (datetime, user) = read_datetime_and_user(r)?;
    *user_seen = Some(user.clone());
    let body = read_body(r, op, declared)?;
    // Content rules, checked once the whole request has arrived.
    if !wire::is_valid_name(&user) {
        return Err(WireError::Invalid(Field::User));
    }
    check_body(&body)?;
    Ok(Request {
        datetime,
        user,
        body,
    })
}

/// The optional DATETIME and the user name. The second field is a DATETIME or a
/// user name: it is read with the larger limit, then held to the right one.
fn read_datetime_and_user<R: Read>(
    r: &mut FieldReader<R>,
) -> Result<(Option<String>, String), WireError> {
    let second = r.read_str(Field::User, MAX_FIELD)?;
    if !second.contains(' ') {
        return Ok((None, second));
    }
    if second.len() > MAX_DATETIME {
        return Err(WireError::TooLong {
            field: Field::DateTime,
            limit: MAX_DATETIME,
        });
    }
    if second.chars().any(char::is_control) {
        return Err(WireError::Invalid(Field::DateTime));
    }
    Ok((Some(second), r.read_str(Field::User, MAX_FIELD)?))
}

/// The fields of `op` after the user.
fn read_body<R: Read>(
    r: &mut FieldReader<R>,
    op: Op,
    declared: &mut Option<IpAddr>,
) -> Result<Body, WireError> {
    Ok(match op {
        Op::Register => Body::Register,
        Op::Unregister => Body::Unregister,
        Op::Disconnect => Body::Disconnect,
        Op::ListUsers => Body::ListUsers,
        Op::Connect => Body::Connect {
            port: read_connect(r, declared)?,
        },
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
    })
}

/// The content rules of the body's fields.
fn check_body(body: &Body) -> Result<(), WireError> {
    match body {
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
    Ok(())
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

/// Appends one LIST_CONTENT entry in the layout of `statement`: name and
/// description (2024), or the name only (2025).
pub fn put_file_entry_for(out: &mut Vec<u8>, file: &str, description: &str, statement: Statement) {
    match statement {
        Statement::Y2024 => put_file_entry(out, file, description),
        Statement::Y2025 => put_str(out, file),
    }
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

/// Appends the list of a LIST_USERS reply (everything after the code): the count,
/// then one entry per user.
pub fn put_user_list<'a>(
    out: &mut Vec<u8>,
    users: impl ExactSizeIterator<Item = (&'a str, IpAddr, u16)>,
) {
    put_number(out, users.len() as u64);
    for (user, ip, port) in users {
        put_user_entry(out, user, ip, port);
    }
}

/// Appends the list of a LIST_CONTENT reply (everything after the code) in the
/// entry layout of `statement`: the count, then one entry per file.
pub fn put_file_list_for<'a>(
    out: &mut Vec<u8>,
    files: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    statement: Statement,
) {
    put_number(out, files.len() as u64);
    for (file, description) in files {
        put_file_entry_for(out, file, description, statement);
    }
}

/// The list of a SEARCH reply, built one match at a time (its count goes first on
/// the wire, and is known only at the end).
#[derive(Debug, Default)]
pub struct SearchList {
    count: u64,
    entries: Vec<u8>,
}

impl SearchList {
    /// Adds one entry.
    pub fn push(&mut self, file: &str, description: &str, owner: &str, ip: IpAddr, port: u16) {
        put_search_entry(&mut self.entries, file, description, owner, ip, port);
        self.count += 1;
    }

    /// Adds one entry whose owner fields (name, IP, port) were encoded in advance
    /// by [`put_user_entry`].
    pub fn push_with_owner(&mut self, file: &str, description: &str, owner_fields: &[u8]) {
        put_file_entry(&mut self.entries, file, description);
        self.entries.extend_from_slice(owner_fields);
        self.count += 1;
    }

    /// Appends the list (everything after the code) to `out`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        put_number(out, self.count);
        out.extend_from_slice(&self.entries);
    }
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

/// Reads the body of a LIST_USERS reply after result code 0. Some servers count
/// the requesting user but leave its entry out (docs/PROTOCOL.md, "Statement
/// years"): a reply that ends right where its last entry would start gives the
/// entries before it.
pub fn read_user_list<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<UserEntry>, WireError> {
    let n = read_count(r)?;
    let mut out = Vec::new();
    for i in 0..n {
        if i + 1 == n && r.peek(1)?.is_empty() {
            break;
        }
        let user = r.read_str(Field::User, MAX_FIELD)?;
        let ip = read_ip(r)?;
        let port = read_port(r)?;
        out.push(UserEntry { user, ip, port });
    }
    Ok(out)
}

/// Reads the body of a LIST_CONTENT reply after result code 0, in either
/// statement's layout; a names-only entry gets an empty description. See
/// [`read_file_list_any`] to tell the two apart.
pub fn read_file_list<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<FileEntry>, WireError> {
    Ok(read_file_list_any(r)?
        .into_iter()
        .map(|e| FileEntry {
            file: e.file,
            description: e.description.unwrap_or_default(),
        })
        .collect())
}

/// One publication in a LIST_CONTENT reply of either statement: the 2024
/// layout carries a description, the 2025 one the name only (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub file: String,
    pub description: Option<String>,
}

/// Reads the body of a LIST_CONTENT reply after result code 0, in the 2024
/// layout (count, then name and description per file) or the 2025 one (count,
/// then names only). The bytes tell them apart: after the first `count` strings
/// a names-only reply ends (the server closes, PROTOCOL.md section 1), while a
/// 2024 reply goes on with `count` more. A server that neither closes nor sends
/// more within the read timeout at that point is taken as names-only.
pub fn read_file_list_any<R: Read>(r: &mut FieldReader<R>) -> Result<Vec<ListedFile>, WireError> {
    let n = read_count(r)?;
    let mut strings = Vec::new();
    read_names_and_descriptions(r, 0..n, &mut strings)?;
    if n == 0 || r.peek(1)?.is_empty() {
        return Ok(strings
            .into_iter()
            .map(|file| ListedFile {
                file,
                description: None,
            })
            .collect());
    }
    read_names_and_descriptions(r, n..2 * n, &mut strings)?;
    let mut out = Vec::with_capacity(strings.len() / 2);
    let mut it = strings.into_iter();
    while let (Some(file), Some(description)) = (it.next(), it.next()) {
        out.push(ListedFile {
            file,
            description: Some(description),
        });
    }
    Ok(out)
}

/// Reads strings `range` of a LIST_CONTENT body into `out`, each of at most
/// [`MAX_FIELD`] bytes: in a 2024 reply every second string (odd index) is a
/// description, which names the field an error speaks of.
fn read_names_and_descriptions<R: Read>(
    r: &mut FieldReader<R>,
    range: std::ops::Range<u64>,
    out: &mut Vec<String>,
) -> Result<(), WireError> {
    for i in range {
        let field = if i % 2 == 0 {
            Field::File
        } else {
            Field::Description
        };
        out.push(r.read_str(field, MAX_FIELD)?);
    }
    Ok(())
}

/// How a server wrote a result code (PROTOCOL.md section 1, "Dialects").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeForm {
    /// One byte, the protocol's own form.
    Byte,
    /// Decimal digits and a NUL, like every other field (`"0\0"`).
    Text,
    /// A 4-byte integer in network byte order (`00 00 00 c`).
    Int32Be,
    /// A 4-byte integer in the sender's x86 order (`c 00 00 00`).
    Int32Le,
}

/// Reads a result code in any form a server writes it: one byte, decimal text
/// and a NUL, or a 4-byte integer of either byte order. The first byte tells
/// text apart (an ASCII digit, while byte codes are 0-4); a byte code is
/// followed by the end of the reply or by a list's count (an ASCII digit),
/// never by three zero bytes, which mark a 4-byte integer: `00 00 00 c`
/// big-endian, `c 00 00 00` little-endian (all zero: 0 either way).
pub fn read_code_any<R: Read>(r: &mut FieldReader<R>) -> Result<(u8, CodeForm), WireError> {
    let first = r.read_u8(Field::Code)?;
    if first.is_ascii_digit() {
        let rest = r.read_bytes(Field::Code, 3)?;
        let mut digits = vec![first];
        digits.extend_from_slice(rest);
        let code = wire::parse_decimal(&digits)
            .and_then(|c| u8::try_from(c).ok())
            .ok_or(WireError::Invalid(Field::Code))?;
        return Ok((code, CodeForm::Text));
    }
    let next = r.peek(3)?;
    let form = match *next {
        [0, 0, c] if first == 0 => Some((c, CodeForm::Int32Be)),
        [0, 0, 0] => Some((first, CodeForm::Int32Le)),
        _ => None,
    };
    match form {
        Some(found) => {
            r.consume(3);
            Ok(found)
        }
        None => Ok((first, CodeForm::Byte)),
    }
}

/// Reads the result code of an `op` reply in any form (see [`read_code_any`])
/// as its [`Status`]; a code `op` does not define is `Invalid(Code)`.
pub fn read_status<R: Read>(r: &mut FieldReader<R>, op: Op) -> Result<Status, WireError> {
    let (code, _) = read_code_any(r)?;
    Status::from_code(op, code).ok_or(WireError::Invalid(Field::Code))
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
mod tests;
