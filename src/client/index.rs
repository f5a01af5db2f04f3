//! The client side of the index protocol (PROTOCOL.md section 1): one request per
//! TCP connection, stamped with the time service's DATETIME (or without it, for
//! servers of the statement's part 1), its result code read in any form a server
//! writes it, and the list replies of either statement.
//!
//! Owns: the server address, the clock, the length check of the fields sent, the
//! reading of replies into [`Status`] and entries. Does not own: what the shell does
//! with a reply (`session`).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::net;
use crate::proto::index::{
    self, Body, ListedFile, Request, SearchEntry, Status, UserEntry, read_status,
};
use crate::proto::wire::{FieldReader, WireError};

use super::output::Output;
use super::timeclock::TimeClock;

/// Connect, read and write timeout of one index request. The server answers at once;
/// 5 s covers a loaded server on a slow link without leaving the shell hanging long
/// when the server is gone.
pub(crate) const INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest user name, file name or description the client sends: a C server written
/// to the statement keeps them in `char[256]` with the NUL (PROTOCOL.md section 5),
/// so a longer one would be cut or overflow there. Refused locally instead.
pub(crate) const STATEMENT_MAX_FIELD: usize = 255;

/// Why an index request got no result code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    #[error("resolve: {server}: {source}")]
    Resolve { server: String, source: io::Error },
    #[error("connect: index server {server}: {source}")]
    Connect { server: String, source: io::Error },
    #[error("send: {0}")]
    Send(#[source] io::Error),
    #[error("reply: {0}")]
    Reply(#[source] WireError),
    /// A field longer than [`STATEMENT_MAX_FIELD`]: refused before sending.
    #[error(
        "not sent: the {field} has {len} bytes; index servers written to the statement \
         take at most {STATEMENT_MAX_FIELD}"
    )]
    TooLong { field: &'static str, len: usize },
}

/// A list reply: its status, and the entries when it is OK.
#[derive(Debug)]
pub(crate) struct Listed<T> {
    pub(crate) status: Status,
    pub(crate) entries: Vec<T>,
}

/// The index server of one shell, and how to stamp its requests.
pub(crate) struct Index {
    server: String,
    clock: TimeClock,
    /// Requests without DATETIME (`--no-datetime`).
    no_datetime: bool,
    /// Where the clock says it fell back to the local time.
    out: Arc<Output>,
}

impl Index {
    /// `server` is `host:port`.
    pub(crate) fn new(
        server: String,
        clock: TimeClock,
        no_datetime: bool,
        out: Arc<Output>,
    ) -> Index {
        Index {
            server,
            clock,
            no_datetime,
            out,
        }
    }

    /// The same server, stamped the same way, for another thread (a watch's
    /// SEARCHes, which must not wait for the shell's commands).
    pub(crate) fn twin(&self) -> Index {
        Index::new(
            self.server.clone(),
            self.clock.twin(),
            self.no_datetime,
            Arc::clone(&self.out),
        )
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// Sends one request as `user` and reads its status; the reader is left after
    /// it (for a list).
    fn request(
        &mut self,
        user: &str,
        body: Body,
    ) -> Result<(Status, FieldReader<TcpStream>), IndexError> {
        check_lengths(user, &body)?;
        let op = body.op();
        let request = Request {
            datetime: (!self.no_datetime).then(|| self.clock.now(&self.out)),
            user: user.to_owned(),
            body,
        };
        let stream = self.connect()?;
        (&stream)
            .write_all(&request.encode())
            .map_err(IndexError::Send)?;
        let mut reader = FieldReader::new(stream);
        let status = read_status(&mut reader, op).map_err(IndexError::Reply)?;
        Ok((status, reader))
    }

    fn connect(&self) -> Result<TcpStream, IndexError> {
        let addrs: Vec<SocketAddr> = self
            .server
            .to_socket_addrs()
            .map_err(|source| IndexError::Resolve {
                server: self.server.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match net::connect(addr, INDEX_TIMEOUT) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(IndexError::Connect {
            server: self.server.clone(),
            source: last,
        })
    }

    /// The status of a request without a list.
    pub(crate) fn ask(&mut self, user: &str, body: Body) -> Result<Status, IndexError> {
        self.request(user, body).map(|(status, _)| status)
    }

    /// Runs a list request; `read` reads the entries after an OK.
    fn list<T>(
        &mut self,
        user: &str,
        body: Body,
        read: impl FnOnce(&mut FieldReader<TcpStream>) -> Result<Vec<T>, WireError>,
    ) -> Result<Listed<T>, IndexError> {
        let (status, mut reader) = self.request(user, body)?;
        let entries = match status {
            Status::Ok => read(&mut reader).map_err(IndexError::Reply)?,
            _ => Vec::new(),
        };
        Ok(Listed { status, entries })
    }

    /// LIST_USERS as `user`. A server may leave the requester out.
    pub(crate) fn users(&mut self, user: &str) -> Result<Listed<UserEntry>, IndexError> {
        self.list(user, Body::ListUsers, index::read_user_list)
    }

    /// LIST_CONTENT of `target` as `user`, in either statement's layout.
    pub(crate) fn files(
        &mut self,
        user: &str,
        target: &str,
    ) -> Result<Listed<ListedFile>, IndexError> {
        let body = Body::ListContent {
            target: target.to_owned(),
        };
        self.list(user, body, index::read_file_list_any)
    }

    /// SEARCH for `pattern` as `user`.
    pub(crate) fn search(
        &mut self,
        user: &str,
        pattern: &str,
    ) -> Result<Listed<SearchEntry>, IndexError> {
        let body = Body::Search {
            pattern: pattern.to_owned(),
        };
        self.list(user, body, index::read_search_list)
    }
}

/// Refuses a request whose user name, file name or description (or LIST_CONTENT
/// target, SEARCH pattern) is longer than [`STATEMENT_MAX_FIELD`] bytes.
fn check_lengths(user: &str, body: &Body) -> Result<(), IndexError> {
    let mut fields = vec![("user name", user)];
    match body {
        Body::Publish { file, description } => {
            fields.push(("file name", file));
            fields.push(("description", description));
        }
        Body::Delete { file } => fields.push(("file name", file)),
        Body::ListContent { target } => fields.push(("user name", target)),
        Body::Search { pattern } => fields.push(("pattern", pattern)),
        Body::Register
        | Body::Unregister
        | Body::Connect { .. }
        | Body::Disconnect
        | Body::ListUsers => {}
    }
    match fields.iter().find(|(_, v)| v.len() > STATEMENT_MAX_FIELD) {
        Some((field, v)) => Err(IndexError::TooLong {
            field,
            len: v.len(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread;

    /// A server that answers one request with `reply` and closes.
    fn answering(reply: &[u8]) -> String {
        let reply = reply.to_vec();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(&reply);
        });
        addr
    }

    fn index(server: String) -> Index {
        let clock = TimeClock::new("http://127.0.0.1:1/".into(), false);
        let out = Output::new(false, Arc::new(crate::client::output::Stdio));
        Index::new(server, clock, true, out)
    }

    #[test]
    fn reads_the_code_as_a_byte_text_or_an_int() {
        for reply in [&b"\x01"[..], b"1\0", b"\0\0\0\x01", b"\x01\0\0\0"] {
            let got = index(answering(reply)).ask("u", Body::Register).unwrap();
            assert_eq!(got, Status::NameInUse, "{reply:?}");
        }
        let empty = index(answering(b"")).ask("u", Body::Register);
        assert!(matches!(empty, Err(IndexError::Reply(_))), "{empty:?}");
    }

    #[test]
    fn list_content_of_either_statement() {
        let pairs = index(answering(b"\x002\0a\0da\0b\0db\0"))
            .files("u", "v")
            .unwrap();
        assert_eq!(pairs.entries[1].description.as_deref(), Some("db"));
        let names = index(answering(b"\x002\0a\0b\0")).files("u", "v").unwrap();
        assert_eq!(names.entries.len(), 2);
        assert_eq!(names.entries[0].description, None);
    }

    #[test]
    fn list_users_without_the_requester() {
        let users = index(answering(b"\x002\0alice\x00127.0.0.1\x005000\0"))
            .users("bob")
            .unwrap();
        assert_eq!(users.status, Status::Ok);
        assert_eq!(users.entries.len(), 1);
        assert_eq!(users.entries[0].user, "alice");
    }

    #[test]
    fn long_fields_are_refused_before_sending() {
        let long = "x".repeat(STATEMENT_MAX_FIELD + 1);
        let err = check_lengths(&long, &Body::Register).unwrap_err();
        assert!(err.to_string().contains("at most 255"), "{err}");
        assert!(check_lengths(&long[1..], &Body::Register).is_ok());
    }
}
