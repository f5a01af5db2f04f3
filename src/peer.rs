//! The peer protocol (PROTOCOL.md section 2): one client downloads a file directly
//! from another.
//!
//! Owns: the GET_FILE request and reply codec, the table of files this client
//! published ([`SharedFiles`]), the listener that serves them ([`PeerListener`]), and
//! the downloader ([`download`]) with its temporary-file-then-rename discipline.
//! Does not own: the index protocol or the shell (`client`), the accept loop and the
//! connection cap (`net`), field framing (`wire`).
//!
//! Safety of serving: only names in the table are served. A name is resolved once,
//! when it is published, to a canonical path (no `..`, no symlink left in it). At
//! serve time that path is opened one component at a time with `O_NOFOLLOW`, so a
//! symlink swapped in anywhere along it afterwards is refused (code 1, no bytes), and
//! only a regular file is sent. Content goes from the file to the socket with
//! `sendfile(2)` on Linux (a plain `std::io::copy` elsewhere): memory stays constant
//! whatever the file size.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::net::{self, ConnLimiter, Permit, Shutdown};
use crate::wire::{self, Field, FieldReader, MAX_FIELD, MAX_OP, WireError, put_number, put_str};

/// The only operation of the peer protocol, as it travels.
pub const GET_FILE: &str = "GET_FILE";

/// Result code: the file follows.
pub const CODE_OK: u8 = 0;
/// Result code: the file does not exist or is not published by this peer.
pub const CODE_NOT_FOUND: u8 = 1;
/// Result code: any other error.
pub const CODE_OTHER: u8 = 2;

/// Downloads served at once by one peer. Each holds a thread (256 KiB stack) and a
/// socket; 64 is far more parallel downloads than one user's uplink can feed, and
/// bounds what a flood of connections can pin. Past it the oldest connection that has
/// not sent its request yet is closed (see `net`).
pub const MAX_UPLOADS: usize = 64;

/// How long a connection to the listener may take to deliver its request. A request
/// is two short fields; a peer that has not sent them in 10 s is not going to.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write of file content may block on a downloader that does not read.
/// Past it the upload is abandoned so a stalled downloader cannot pin a thread.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the downloader waits to connect to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the downloader tolerates silence from the peer, before the reply and
/// between chunks of content. A live peer on any real link sends something within
/// 10 s; past it the download fails and the temporary file is removed.
pub const DOWNLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer of the download loop. Large reads amortise the system calls on fast links
/// (loopback moves several GB/s) while keeping the downloader's memory constant.
pub const DOWNLOAD_BUFFER: usize = 256 * 1024;

/// Bytes sent per `sendfile` batch when an upload rate limit is set: small enough
/// that the pacing is smooth, large enough to stay cheap.
const PACED_CHUNK: u64 = 64 * 1024;

/// Encodes a GET_FILE request.
pub fn encode_request(file: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(GET_FILE.len() + file.len() + 2);
    put_str(&mut out, GET_FILE);
    put_str(&mut out, file);
    out
}

/// Why a GET_FILE request could not be decoded.
#[derive(Debug)]
pub enum RequestError {
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
pub fn read_request<R: Read>(r: &mut FieldReader<R>) -> Result<String, RequestError> {
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
pub fn encode_ok_header(size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + wire::MAX_NUMBER + 1);
    out.push(CODE_OK);
    put_number(&mut out, size);
    out
}

/// Why a file could not be shared.
#[derive(Debug)]
pub enum ShareError {
    /// The path does not resolve to an existing file.
    Missing { path: PathBuf, source: io::Error },
    /// The path exists but is not a regular file (a directory, a device, a FIFO).
    NotRegular(PathBuf),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::Missing { path, source } => {
                write!(f, "cannot share {}: {source}", path.display())
            }
            ShareError::NotRegular(path) => {
                write!(f, "cannot share {}: not a regular file", path.display())
            }
        }
    }
}

impl std::error::Error for ShareError {}

/// The files this client serves: published name -> canonical path, resolved when
/// the name was published (relative names against the share folder).
pub struct SharedFiles {
    root: PathBuf,
    files: RwLock<HashMap<String, PathBuf>>,
}

impl SharedFiles {
    /// An empty table whose relative names resolve against `root`.
    pub fn new(root: PathBuf) -> Arc<Self> {
        Arc::new(SharedFiles {
            root,
            files: RwLock::new(HashMap::new()),
        })
    }

    /// The share folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a local name points: absolute names as they are, relative ones inside
    /// the share folder.
    pub fn local_path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Resolves `name` to the canonical path of an existing regular file, without
    /// adding it. The shell calls this before asking the server to PUBLISH.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, ShareError> {
        let path = self.local_path(name);
        let canonical = std::fs::canonicalize(&path).map_err(|source| ShareError::Missing {
            path: path.clone(),
            source,
        })?;
        let meta = std::fs::metadata(&canonical).map_err(|source| ShareError::Missing {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ShareError::NotRegular(path));
        }
        Ok(canonical)
    }

    /// Adds a published name with the path it resolved to.
    pub fn insert(&self, name: &str, canonical: PathBuf) {
        self.files.write().insert(name.to_owned(), canonical);
    }

    /// Removes a name (after DELETE OK).
    pub fn remove(&self, name: &str) {
        self.files.write().remove(name);
    }

    /// Empties the table (before it is restored at CONNECT).
    pub fn clear(&self) {
        self.files.write().clear();
    }

    /// How many names are served.
    pub fn len(&self) -> usize {
        self.files.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, name: &str) -> Option<PathBuf> {
        self.files.read().get(name).cloned()
    }

    /// Opens a published name for serving: the file and its size, or the code to
    /// answer.
    fn open(&self, name: &str) -> Result<(File, u64), u8> {
        let Some(path) = self.lookup(name) else {
            return Err(CODE_NOT_FOUND);
        };
        let file = match open_no_symlinks(&path) {
            Ok(f) => f,
            Err(e) => {
                log::info!("peer: {name} ({}) not served: {e}", path.display());
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => CODE_NOT_FOUND,
                    _ if e.raw_os_error() == Some(libc::ELOOP) => CODE_NOT_FOUND,
                    _ => CODE_OTHER,
                });
            }
        };
        match file.metadata() {
            Ok(m) if m.is_file() => Ok((file, m.len())),
            Ok(_) => {
                log::info!("peer: {name} is no longer a regular file: not served");
                Err(CODE_NOT_FOUND)
            }
            Err(e) => {
                log::info!("peer: {name}: {e}");
                Err(CODE_OTHER)
            }
        }
    }
}

/// Opens an absolute path for reading, refusing a symlink in any component
/// (`O_NOFOLLOW` on each step, `ELOOP` when one is met). The last step also uses
/// `O_NONBLOCK`, so a FIFO swapped in cannot block the open; it is then refused as
/// not a regular file.
#[cfg(unix)]
fn open_no_symlinks(path: &Path) -> io::Result<File> {
    use std::ffi::CString;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;

    let mut names = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(n),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a canonical path",
                ));
            }
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    let open_at = |dir: libc::c_int, name: &std::ffi::OsStr, flags: libc::c_int| {
        let c = CString::new(name.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: `c` is a valid NUL-terminated string and `dir` an open descriptor
        // (or AT_FDCWD, unused here since the first name is opened against "/").
        let fd =
            unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOFOLLOW) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: `fd` was just returned by openat and is owned by nobody else.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        }
    };
    use std::os::fd::AsRawFd;
    let root = File::open("/")?;
    let mut dir: OwnedFd = root.into();
    for name in dirs {
        dir = open_at(dir.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY)?;
    }
    let fd = open_at(dir.as_raw_fd(), last, libc::O_RDONLY | libc::O_NONBLOCK)?;
    Ok(File::from(fd))
}

/// Options of the peer listener.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Upload limit per download in bytes per second; `None` for no limit.
    pub max_rate: Option<u64>,
}

/// A running peer listener: bound on every interface, on a free port.
pub struct PeerListener {
    port: u16,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl PeerListener {
    /// Binds `0.0.0.0:0` and starts serving `files` on a thread.
    pub fn start(files: Arc<SharedFiles>, options: ServeOptions) -> io::Result<PeerListener> {
        let listener = net::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        let port = listener.local_addr()?.port();
        let shutdown = Shutdown::new();
        shutdown.watch(&listener)?;
        let limiter = ConnLimiter::new(MAX_UPLOADS);
        let s = shutdown.clone();
        let thread = thread::Builder::new()
            .name("peer-listener".into())
            .spawn(move || serve(&listener, &limiter, &s, files, options))?;
        log::info!("peer listener on port {port}");
        Ok(PeerListener {
            port,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The port other clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting and waits for the accept thread to end. Downloads already
    /// running finish on their own threads (each bounded by [`SEND_TIMEOUT`]).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        log::info!("peer listener on port {} stopped", self.port);
    }
}

impl Drop for PeerListener {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_inner();
        }
    }
}

fn serve(
    listener: &TcpListener,
    limiter: &Arc<ConnLimiter>,
    shutdown: &Shutdown,
    files: Arc<SharedFiles>,
    options: ServeOptions,
) {
    net::accept_loop(
        "peer",
        listener,
        limiter,
        shutdown,
        move |stream, peer, permit| serve_one(&files, options, stream, peer, permit),
    );
}

fn serve_one(
    files: &SharedFiles,
    options: ServeOptions,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
) {
    if let Err(e) = stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(SEND_TIMEOUT)))
    {
        log::debug!("peer {peer}: cannot set timeouts: {e}");
        return;
    }
    let mut reader = FieldReader::new(&stream);
    let request = read_request(&mut reader);
    permit.busy();
    let mut out = &stream;
    let name = match request {
        Ok(name) => name,
        Err(RequestError::Empty) => {
            log::debug!("peer {peer}: closed without a request");
            return;
        }
        Err(e) => {
            log::info!("peer {peer}: {e}");
            let _ = out.write_all(&[CODE_OTHER]);
            return;
        }
    };
    let (file, size) = match files.open(&name) {
        Ok(pair) => pair,
        Err(code) => {
            log::info!("peer {peer}: GET_FILE {name}: code {code}");
            let _ = out.write_all(&[code]);
            return;
        }
    };
    if let Err(e) = out.write_all(&encode_ok_header(size)) {
        log::info!("peer {peer}: GET_FILE {name}: header not delivered: {e}");
        return;
    }
    let started = Instant::now();
    match send_content(file, size, out, options.max_rate) {
        Ok(sent) if sent == size => log::info!(
            "peer {peer}: GET_FILE {name}: sent {size} bytes in {:.3} s",
            started.elapsed().as_secs_f64()
        ),
        Ok(sent) => log::warn!(
            "peer {peer}: GET_FILE {name}: file shrank while sending ({sent} of {size} bytes)"
        ),
        Err(e) => log::info!("peer {peer}: GET_FILE {name}: transfer aborted: {e}"),
    }
}

/// Sends exactly `size` bytes of `file` (fewer if it shrank meanwhile), paced to
/// `max_rate` bytes per second when given.
fn send_content(file: File, size: u64, out: &TcpStream, max_rate: Option<u64>) -> io::Result<u64> {
    let Some(rate) = max_rate.filter(|&r| r > 0) else {
        return send_range(&file, out, 0, size);
    };
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < size {
        let end = size.min(sent + PACED_CHUNK);
        let n = send_range(&file, out, sent, end)?;
        if n == 0 {
            break;
        }
        sent += n;
        let due = Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
    }
    Ok(sent)
}

/// Largest count passed to one `sendfile` call; Linux moves at most 0x7ffff000 bytes
/// per call anyway.
#[cfg(target_os = "linux")]
const SENDFILE_MAX: u64 = 1 << 30;

/// Sends bytes `start..end` of `file` with `sendfile(2)`: the kernel moves the pages
/// from the page cache to the socket, nothing passes through this process. (On the
/// toolchain this was built with, `std::io::copy` from a `File` to a `TcpStream`
/// was measured doing 8 KiB read/send pairs instead, so the call is made here.)
/// Falls back to a plain copy where the file system does not support `sendfile`.
/// Returns the bytes sent, fewer than asked only when the file shrank.
#[cfg(target_os = "linux")]
fn send_range(file: &File, out: &TcpStream, start: u64, end: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    let mut offset = start;
    while offset < end {
        let count = (end - offset).min(SENDFILE_MAX) as usize;
        let mut off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: both descriptors are open for the duration of the call and `off`
        // is a valid, exclusively borrowed off_t.
        let n = unsafe { libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) if offset == start => {
                    return copy_range(file, out, start, end);
                }
                _ => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        offset += n as u64;
    }
    Ok(offset - start)
}

#[cfg(not(target_os = "linux"))]
fn send_range(file: &File, out: &TcpStream, start: u64, end: u64) -> io::Result<u64> {
    copy_range(file, out, start, end)
}

/// The portable path: `std::io::copy` of the range through a small buffer.
fn copy_range(mut file: &File, mut out: &TcpStream, start: u64, end: u64) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(start))?;
    io::copy(&mut file.take(end - start), &mut out)
}

/// Why a download failed.
#[derive(Debug)]
pub enum DownloadError {
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
pub trait Progress {
    /// The peer announced `size` bytes.
    fn start(&mut self, size: u64);
    /// `received` bytes so far.
    fn advance(&mut self, received: u64);
}

/// No progress display.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// Downloads `remote` from the peer at `addr` into `local`. The content goes to a
/// temporary file beside `local` (same folder, unique name), renamed to `local` only
/// when every announced byte arrived; on any failure the temporary file is removed
/// and `local` is untouched. `cancel` aborts the download when raised. Returns the
/// size.
pub fn download(
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

    #[test]
    fn table_serves_only_published_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let files = SharedFiles::new(root.clone());
        assert!(matches!(
            files.resolve("missing"),
            Err(ShareError::Missing { .. })
        ));
        assert!(matches!(
            files.resolve("sub"),
            Err(ShareError::NotRegular(_))
        ));
        let path = files.resolve("a.txt").unwrap();
        files.insert("a.txt", path);
        let (_, size) = files.open("a.txt").unwrap();
        assert_eq!(size, 5);
        assert_eq!(files.open("sub").err(), Some(CODE_NOT_FOUND));
        assert_eq!(files.open("../a.txt").err(), Some(CODE_NOT_FOUND));
        files.remove("a.txt");
        assert_eq!(files.open("a.txt").err(), Some(CODE_NOT_FOUND));
    }

    #[test]
    fn symlink_swapped_in_after_publishing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("secret"), b"secret").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"public").unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("d/f", files.resolve("d/f").unwrap());
        files.insert("g", {
            std::fs::write(root.join("g"), b"g").unwrap();
            files.resolve("g").unwrap()
        });
        // Last component swapped.
        std::fs::remove_file(root.join("g")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("g")).unwrap();
        assert_eq!(files.open("g").err(), Some(CODE_NOT_FOUND));
        // A directory along the path swapped.
        std::fs::rename(root.join("d"), root.join("d.old")).unwrap();
        std::fs::create_dir(root.join("e")).unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("e/f")).unwrap();
        std::os::unix::fs::symlink(root.join("e"), root.join("d")).unwrap();
        assert_eq!(files.open("d/f").err(), Some(CODE_NOT_FOUND));
    }

    #[test]
    fn a_file_replaced_by_a_regular_file_is_still_served() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), b"v1").unwrap();
        let files = SharedFiles::new(root.clone());
        files.insert("f", files.resolve("f").unwrap());
        std::fs::write(root.join("f.new"), b"version 2").unwrap();
        std::fs::rename(root.join("f.new"), root.join("f")).unwrap();
        assert_eq!(files.open("f").unwrap().1, 9);
    }
}
