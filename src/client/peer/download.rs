//! Downloading a file from another peer: temporary file, then rename.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{CONNECT_TIMEOUT, DOWNLOAD_BUFFER, DOWNLOAD_IDLE_TIMEOUT};
use crate::net;
use crate::proto::peer::{CODE_NOT_FOUND, CODE_OK, encode_request};
use crate::proto::wire::{self, Field, FieldReader, WireError};

#[derive(Debug)]
pub(crate) enum DownloadError {
    /// The peer could not be reached.
    Connect { addr: SocketAddr, source: io::Error },
    /// The request could not be sent.
    Send(io::Error),
    /// The reply header was missing or malformed.
    Reply(WireError),
    /// The peer answered code 1: no such file published there.
    NotFound,
    /// The peer answered another error code.
    Refused(u8),
    /// The peer announced a size and sent more bytes than that.
    TooMuch,
    /// The connection ended before the announced size.
    Short { expected: u64, received: u64 },
    /// Nothing arrived for [`DOWNLOAD_IDLE_TIMEOUT`].
    Timeout { received: u64 },
    /// Reading the socket failed.
    Receive(io::Error),
    /// The local file could not be created, written or renamed.
    Local { path: PathBuf, source: io::Error },
    /// Cancelled by the user (Ctrl+C).
    Cancelled,
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadError::Connect { addr, source } => write!(f, "connect: {addr}: {source}"),
            DownloadError::Send(e) => write!(f, "send: {e}"),
            DownloadError::Reply(e) => write!(f, "reply: {e}"),
            DownloadError::NotFound => f.write_str("not found: the peer does not share that file"),
            DownloadError::Refused(code) => write!(f, "refused: the peer answered code {code}"),
            DownloadError::TooMuch => f.write_str("protocol: the peer sent more than it announced"),
            DownloadError::Short { expected, received } => write!(
                f,
                "short: the connection ended after {received} of {expected} bytes"
            ),
            DownloadError::Timeout { received } => write!(
                f,
                "timeout: no data for {} s after {received} bytes",
                DOWNLOAD_IDLE_TIMEOUT.as_secs()
            ),
            DownloadError::Receive(e) => write!(f, "receive: {e}"),
            DownloadError::Local { path, source } => {
                write!(f, "local: {}: {source}", path.display())
            }
            DownloadError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for DownloadError {}

/// Progress of a download, reported to the shell.
pub(crate) trait Progress {
    /// The peer announced `size` bytes.
    fn start(&mut self, size: u64);
    /// `received` bytes so far.
    fn advance(&mut self, received: u64);
}

/// Downloads `remote` from the peer at `addr` into `local`. The content goes to a
/// temporary file beside `local` (same folder, unique name), renamed to `local` only
/// when every announced byte arrived; on any failure the temporary file is removed
/// and `local` is untouched. `cancel` aborts the download when raised. Returns the
/// size.
pub(crate) fn download(
    addr: SocketAddr,
    remote: &str,
    local: &Path,
    cancel: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<u64, DownloadError> {
    let stream = net::connect(addr, CONNECT_TIMEOUT)
        .map_err(|source| DownloadError::Connect { addr, source })?;
    stream
        .set_read_timeout(Some(DOWNLOAD_IDLE_TIMEOUT))
        .map_err(DownloadError::Send)?;
    (&stream)
        .write_all(&encode_request(remote))
        .map_err(DownloadError::Send)?;
    let mut reader = FieldReader::new(&stream);
    let code = reader.read_u8(Field::Code).map_err(DownloadError::Reply)?;
    match code {
        CODE_OK => {}
        CODE_NOT_FOUND => return Err(DownloadError::NotFound),
        other => return Err(DownloadError::Refused(other)),
    }
    let size = reader
        .read_number(Field::Size)
        .map_err(DownloadError::Reply)?;
    let (stream, head) = reader.into_parts();
    if head.len() as u64 > size {
        return Err(DownloadError::TooMuch);
    }
    progress.start(size);

    let local_err = |source| DownloadError::Local {
        path: local.to_owned(),
        source,
    };
    let dir = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dropping `temp` on any early return removes the temporary file.
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".part");
    // The finished file gets the usual mode of a new file (0666 less the umask), not
    // the private 0600 of a temporary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(dir).map_err(local_err)?;
    temp.write_all(&head).map_err(local_err)?;
    let mut received = head.len() as u64;
    let mut buf = vec![0u8; DOWNLOAD_BUFFER];
    let mut socket = stream;
    while received < size {
        if cancel.load(Ordering::SeqCst) {
            return Err(DownloadError::Cancelled);
        }
        let want = (size - received).min(buf.len() as u64) as usize;
        let n = match socket.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(DownloadError::Short {
                    expected: size,
                    received,
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if wire::is_timeout(&e) => return Err(DownloadError::Timeout { received }),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(DownloadError::Short {
                    expected: size,
                    received,
                });
            }
            Err(e) => return Err(DownloadError::Receive(e)),
        };
        temp.write_all(&buf[..n]).map_err(local_err)?;
        received += n as u64;
        progress.advance(received);
    }
    temp.persist(local).map_err(|e| local_err(e.error))?;
    Ok(size)
}
