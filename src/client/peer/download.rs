//! Downloading a file from another peer (PROTOCOL.md section 2, "A peerdex client
//! downloading"): GET_FILE_RANGE to a peer that said it speaks it (`speaks`), the
//! statement's GET_FILE alone to any other, the local file renamed into place only
//! when complete, and a failed GET_FILE_RANGE transfer kept hidden for a later resume.
//!
//! Files beside the target `DIR/NAME`:
//! - `DIR/.NAME.peerdex-partial`: the bytes received so far by GET_FILE_RANGE,
//!   renamed to `DIR/NAME` when complete. It is locked (`flock`) while a download
//!   into NAME runs, so two downloads into one name do not mix their bytes.
//! - `DIR/.NAME.peerdex-partial.info`: what the partial file is a prefix of: the
//!   owner, the remote name, SIZE and VERSION. A later download of the same remote
//!   name from the same owner (from any owner for FETCH, [`Source::any_owner`]) asks
//!   for OFFSET = the partial's length, and keeps the bytes only when the peer
//!   answers the same SIZE and VERSION.
//! - `DIR/.NAME.XXXXXX.part`: a plain GET_FILE transfer in progress (a temporary file
//!   removed on failure: a plain transfer cannot be resumed, so the statement's rule
//!   "a failed transfer leaves no file" holds for it completely).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::speaks::{Known, Speaks, Unknown};
use crate::net::{self, DeadlineReader};
use crate::proto::peer::{
    CODE_NOT_FOUND, CODE_OK, Lead, classify_lead, encode_range_request, encode_request,
    read_range_header,
};
use crate::proto::wire::{self, Field, FieldReader, WireError};

/// How long the downloader waits to connect to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the downloader tolerates silence from the peer, before the reply and
/// between chunks of content. A live peer on any real link sends something within
/// 10 s; past it the download fails and the temporary file is removed.
const DOWNLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the downloader waits for a whole reply header (the code byte, and SIZE
/// and VERSION after GET_FILE_RANGE's 0), however the peer dribbles it. A live peer
/// answers at once; past 10 s a GET_FILE_RANGE attempt counts as unanswered and the
/// plain GET_FILE as failed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer of the download loop. Large reads amortise the system calls on fast links
/// (loopback moves several GB/s) while keeping the downloader's memory constant.
const DOWNLOAD_BUFFER: usize = 256 * 1024;

/// Longest partial-info file read back. It holds four short lines (two names of at
/// most 256 bytes, a number, a version of at most 128 bytes).
const MAX_INFO: u64 = 4096;

/// First line of a partial-info file: its format and version.
const INFO_MAGIC: &str = "peerdex-partial 1";

#[derive(Debug)]
pub(crate) enum DownloadError {
    /// The peer could not be reached.
    Connect { addr: SocketAddr, source: io::Error },
    /// The request could not be sent.
    Send(io::Error),
    /// The reply header was missing or malformed.
    Reply(WireError),
    /// The peer answered code 1 and closed: no such file published there.
    NotFound,
    /// The peer answered another error code.
    Refused(u8),
    /// The peer announced a size and sent more bytes than that.
    TooMuch,
    /// The connection ended before the announced size.
    Short { expected: u64, received: u64 },
    /// The connection was reset before a plain GET_FILE transfer's close.
    Reset { received: u64 },
    /// Nothing arrived for [`DOWNLOAD_IDLE_TIMEOUT`].
    Timeout { received: u64 },
    /// Reading the socket failed.
    Receive(io::Error),
    /// The local file could not be created, written or renamed.
    Local { path: PathBuf, source: io::Error },
    /// Another download into the same local name is running.
    Busy(PathBuf),
    /// Cancelled by the user (Ctrl+C).
    Cancelled,
    /// A GET_FILE_RANGE transfer failed; what arrived is kept for a resume.
    Kept {
        cause: Box<DownloadError>,
        kept: u64,
        size: u64,
        partial: PathBuf,
    },
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
            DownloadError::Reset { received } => write!(
                f,
                "reset: the peer reset the connection after {received} bytes"
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
            DownloadError::Busy(path) => write!(
                f,
                "busy: another download into {} is running",
                path.display()
            ),
            DownloadError::Cancelled => f.write_str("cancelled"),
            DownloadError::Kept {
                cause,
                kept,
                size,
                partial,
            } => write!(
                f,
                "{cause}; {kept} of {size} bytes kept in {} for the same GET_FILE to resume",
                partial.display()
            ),
        }
    }
}

impl std::error::Error for DownloadError {}

/// Progress of a download, reported to the shell.
pub(crate) trait Progress {
    /// The content starts: `size` bytes in all when known (GET_FILE_RANGE), the
    /// first byte at position `from` (a resumed download).
    fn start(&mut self, size: Option<u64>, from: u64);
    /// The file is complete up to `position`.
    fn advance(&mut self, position: u64);
}

/// Where to download from.
pub(crate) struct Source<'a> {
    pub(crate) addr: SocketAddr,
    /// The owner's user name: with `remote`, what a kept partial file belongs to.
    pub(crate) owner: &'a str,
    pub(crate) remote: &'a str,
    /// Whether a kept partial of `remote` from another owner may be resumed when this
    /// owner answers the same SIZE and VERSION (FETCH's failover: the owners serve one
    /// file). GET_FILE resumes only what the same owner started.
    pub(crate) any_owner: bool,
}

/// How a download went.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done {
    /// The size of the local file.
    pub(crate) size: u64,
    /// Bytes received by this download (less than `size` after a resume).
    pub(crate) received: u64,
    /// Where the transfer started (0 unless resumed).
    pub(crate) resumed_from: u64,
    /// Time from the first connection to the rename.
    pub(crate) elapsed: Duration,
    /// Which request delivered it.
    pub(crate) via: Via,
}

/// Which request delivered a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// GET_FILE_RANGE (a peerdex peer).
    Range,
    /// Plain GET_FILE with code 0 and the content.
    Plain,
    /// Plain GET_FILE with code 0, `SIZE\0` and the content (the slides' variant).
    PlainSized,
    /// Plain GET_FILE with code 1 and the content (a reference peer's success).
    PlainOne,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Range => "GET_FILE_RANGE",
            Via::Plain => "GET_FILE",
            Via::PlainSized => "GET_FILE with a size",
            Via::PlainOne => "GET_FILE answered 1 with content",
        })
    }
}

/// The hidden files beside a download's target.
struct Beside {
    target: PathBuf,
    dir: PathBuf,
    partial: PathBuf,
    info: PathBuf,
}

impl Beside {
    fn new(target: &Path) -> Beside {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Beside {
            target: target.to_owned(),
            partial: dir.join(format!(".{name}.peerdex-partial")),
            info: dir.join(format!(".{name}.peerdex-partial.info")),
            dir,
        }
    }

    fn local_err(&self, path: &Path) -> impl Fn(io::Error) -> DownloadError + use<> {
        let path = path.to_owned();
        move |source| DownloadError::Local {
            path: path.clone(),
            source,
        }
    }

    /// Opens (creating it empty) and locks the partial file. Never follows a
    /// symbolic link.
    fn open_partial(&self) -> Result<File, DownloadError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.partial)
            .map_err(self.local_err(&self.partial))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(DownloadError::Busy(self.target.clone()));
        }
        Ok(file)
    }

    fn read_info(&self) -> Option<Info> {
        let file = File::open(&self.info).ok()?;
        let mut text = String::new();
        file.take(MAX_INFO).read_to_string(&mut text).ok()?;
        Info::parse(&text)
    }

    /// Writes the info file, never through a symbolic link.
    fn write_info(&self, info: &Info) -> Result<(), DownloadError> {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.info)
            .and_then(|mut f| f.write_all(info.render().as_bytes()))
            .map_err(self.local_err(&self.info))
    }

    /// Removes the partial file and its info.
    fn forget(&self) {
        let _ = std::fs::remove_file(&self.partial);
        let _ = std::fs::remove_file(&self.info);
    }
}

/// What a partial file is a prefix of.
#[derive(Debug, PartialEq, Eq)]
struct Info {
    owner: String,
    remote: String,
    size: u64,
    version: String,
}

impl Info {
    fn render(&self) -> String {
        format!(
            "{INFO_MAGIC}\nowner {}\nfile {}\nsize {}\nversion {}\n",
            self.owner, self.remote, self.size, self.version
        )
    }

    fn parse(text: &str) -> Option<Info> {
        let mut lines = text.lines();
        if lines.next()? != INFO_MAGIC {
            return None;
        }
        let mut field = |key: &str| {
            lines
                .next()?
                .strip_prefix(key)?
                .strip_prefix(' ')
                .map(str::to_owned)
        };
        Some(Info {
            owner: field("owner")?,
            remote: field("file")?,
            size: field("size")?.parse().ok()?,
            version: field("version")?,
        })
    }
}

fn connect(addr: SocketAddr, request: &[u8]) -> Result<TcpStream, DownloadError> {
    let stream = net::connect(addr, CONNECT_TIMEOUT)
        .map_err(|source| DownloadError::Connect { addr, source })?;
    stream
        .set_write_timeout(Some(DOWNLOAD_IDLE_TIMEOUT))
        .map_err(DownloadError::Send)?;
    (&stream).write_all(request).map_err(DownloadError::Send)?;
    Ok(stream)
}

/// A valid GET_FILE_RANGE reply header.
struct RangeHeader {
    stream: TcpStream,
    /// Content bytes read with the header.
    head: Vec<u8>,
    size: u64,
    version: String,
}

/// What a GET_FILE_RANGE request got.
enum RangeReply {
    /// A valid header.
    Ok(RangeHeader),
    /// A non-zero code.
    Refused(u8),
    /// Anything else: the peer does not speak the extension after all.
    Other(String),
}

fn ask_range(addr: SocketAddr, remote: &str, offset: u64) -> Result<RangeReply, DownloadError> {
    let stream = match connect(addr, &encode_range_request(remote, offset)) {
        Ok(s) => s,
        Err(DownloadError::Send(e)) => return Ok(RangeReply::Other(format!("send: {e}"))),
        Err(e) => return Err(e),
    };
    let timed = DeadlineReader::new(&stream, HEADER_TIMEOUT).with_idle(DOWNLOAD_IDLE_TIMEOUT);
    let mut reader = FieldReader::new(timed);
    let header = reader.read_u8(Field::Code).and_then(|code| {
        if code == CODE_OK {
            read_range_header(&mut reader).map(Ok)
        } else {
            Ok(Err(code))
        }
    });
    let (size, version) = match header {
        Ok(Ok(h)) => h,
        Ok(Err(code)) => return Ok(RangeReply::Refused(code)),
        Err(e) => return Ok(RangeReply::Other(e.to_string())),
    };
    if offset > size {
        return Ok(RangeReply::Other(format!(
            "size {size} below the offset {offset}"
        )));
    }
    let (_, head) = reader.into_parts();
    Ok(RangeReply::Ok(RangeHeader {
        stream,
        head,
        size,
        version,
    }))
}

/// The downloader of a session: what each peer it asked speaks (see `speaks`).
/// Clones share it.
#[derive(Clone, Default)]
pub(crate) struct Downloader {
    known: Arc<Known>,
}

impl Downloader {
    /// Downloads `src` into `local` (docs/PROTOCOL.md, "Downloading"). `cancel`
    /// aborts the download when raised.
    pub(crate) fn download(
        &self,
        src: &Source<'_>,
        local: &Path,
        cancel: &AtomicBool,
        progress: &mut dyn Progress,
    ) -> Result<Done, DownloadError> {
        let attempt = Attempt {
            src,
            known: &self.known,
            beside: Beside::new(local),
            cancel,
            started: Instant::now(),
        };
        let mut partial = attempt.beside.open_partial()?;
        let result = attempt.run(&mut partial, progress);
        // An empty partial file (plain GET_FILE, or a range transfer that got
        // nothing) is not worth keeping.
        if partial.metadata().map(|m| m.len() == 0).unwrap_or(false) {
            attempt.beside.forget();
        }
        result
    }
}

/// One download, with the partial file locked: what every step needs.
struct Attempt<'a> {
    src: &'a Source<'a>,
    known: &'a Known,
    beside: Beside,
    cancel: &'a AtomicBool,
    started: Instant,
}

/// Where a GET_FILE_RANGE download starts: the kept prefix, when its info says it
/// belongs to this download.
struct Resume {
    /// Length of the partial file now.
    have: u64,
    /// Its info, when it is a prefix of what this download asks for.
    saved: Option<Info>,
}

impl Resume {
    /// The OFFSET to ask for.
    fn offset(&self) -> u64 {
        if self.saved.is_some() { self.have } else { 0 }
    }
}

impl Attempt<'_> {
    fn run(&self, partial: &mut File, progress: &mut dyn Progress) -> Result<Done, DownloadError> {
        let addr = self.src.addr;
        let speaks = self
            .known
            .speaks(addr, CONNECT_TIMEOUT, HEADER_TIMEOUT)
            .map_err(|Unknown::Connect(source)| DownloadError::Connect { addr, source })?;
        if speaks == Speaks::Range {
            let resume = self.resume_point(partial)?;
            match self.ask_range_fresh(&resume)? {
                (RangeReply::Ok(header), from) => {
                    return self.take_range(partial, &resume, header, from, progress);
                }
                (RangeReply::Refused(code), _) => {
                    log::info!("{addr}: GET_FILE_RANGE answered {code}: asking with GET_FILE");
                }
                (RangeReply::Other(why), _) => {
                    log::info!(
                        "{addr}: GET_FILE_RANGE not understood ({why}): asking with GET_FILE"
                    );
                    self.known.forget(addr);
                }
            }
        }
        // Rule 2: the statement's GET_FILE alone.
        let done = self.plain(progress)?;
        // The whole file arrived another way: a kept prefix is obsolete.
        self.beside.forget();
        Ok(done)
    }

    /// What the partial file holds and whether it may be resumed.
    fn resume_point(&self, partial: &File) -> Result<Resume, DownloadError> {
        let src = self.src;
        let have = partial
            .metadata()
            .map_err(self.beside.local_err(&self.beside.partial))?
            .len();
        let saved = self
            .beside
            .read_info()
            .filter(|i| (src.any_owner || i.owner == src.owner) && i.remote == src.remote)
            .filter(|i| have <= i.size);
        Ok(Resume { have, saved })
    }

    /// Rule 1: GET_FILE_RANGE from the resume point; a file changed since the kept
    /// prefix is asked again from 0. Returns the reply and where its content starts.
    fn ask_range_fresh(&self, resume: &Resume) -> Result<(RangeReply, u64), DownloadError> {
        let (addr, remote) = (self.src.addr, self.src.remote);
        let offset = resume.offset();
        let reply = ask_range(addr, remote, offset)?;
        if let (RangeReply::Ok(h), Some(s)) = (&reply, &resume.saved)
            && offset > 0
            && (h.size != s.size || h.version != s.version)
        {
            log::info!("{remote} changed on the peer since the partial download: starting over");
            return Ok((ask_range(addr, remote, 0)?, 0));
        }
        Ok((reply, offset))
    }

    /// Receives a GET_FILE_RANGE reply's content into the partial file from `from`,
    /// then renames it into place.
    fn take_range(
        &self,
        partial: &mut File,
        resume: &Resume,
        header: RangeHeader,
        from: u64,
        progress: &mut dyn Progress,
    ) -> Result<Done, DownloadError> {
        let (src, beside) = (self.src, &self.beside);
        let RangeHeader {
            stream,
            head,
            size,
            version,
        } = header;
        // Only a prefix that is not kept needs cutting: ext4 flushes a file truncated
        // to 0 and rewritten when it is closed (auto_da_alloc, measured: 0.5 s more per
        // GiB), so a fresh partial file is left alone.
        if from == 0 && resume.have > 0 {
            partial
                .set_len(0)
                .map_err(beside.local_err(&beside.partial))?;
        }
        if from == 0 || resume.saved.as_ref().is_some_and(|s| s.owner != src.owner) {
            // A prefix resumed from another owner now belongs to this one: a later
            // GET_FILE from it resumes what is kept.
            beside.write_info(&Info {
                owner: src.owner.to_owned(),
                remote: src.remote.to_owned(),
                size,
                version,
            })?;
        }
        partial
            .seek(SeekFrom::Start(from))
            .map_err(beside.local_err(&beside.partial))?;
        progress.start(Some(size), from);
        let mut incoming = Incoming::new(&stream, self.cancel)?;
        let received = receive_exact(&mut incoming, &head, partial, from, size, progress).map_err(
            |cause| DownloadError::Kept {
                kept: partial.metadata().map(|m| m.len()).unwrap_or(from),
                cause: Box::new(cause),
                size,
                partial: beside.partial.clone(),
            },
        )?;
        std::fs::rename(&beside.partial, &beside.target)
            .map_err(beside.local_err(&beside.target))?;
        let _ = std::fs::remove_file(&beside.info);
        Ok(Done {
            size,
            received,
            resumed_from: from,
            elapsed: self.started.elapsed(),
            via: Via::Range,
        })
    }

    /// Rule 2: the statement's GET_FILE on a new connection, the content until the
    /// close.
    fn plain(&self, progress: &mut dyn Progress) -> Result<Done, DownloadError> {
        let src = self.src;
        let stream = connect(src.addr, &encode_request(src.remote))?;
        let timed = DeadlineReader::new(&stream, HEADER_TIMEOUT).with_idle(DOWNLOAD_IDLE_TIMEOUT);
        let mut reader = FieldReader::new(timed);
        let code = reader.read_u8(Field::Code).map_err(DownloadError::Reply)?;
        let (_, head) = reader.into_parts();
        let one = match code {
            CODE_OK => false,
            CODE_NOT_FOUND => true,
            other => return Err(DownloadError::Refused(other)),
        };
        let mut incoming = Incoming::new(&stream, self.cancel)?;
        let mut content = PlainContent::new(temp_beside(&self.beside)?);
        progress.start(None, 0);
        let local_err = self.beside.local_err(&self.beside.target);
        if !head.is_empty() {
            content.push(&head).map_err(&local_err)?;
        } else if one {
            // 1 then the close: no such file. 1 then content: a reference peer's
            // success.
            match incoming.read(DOWNLOAD_BUFFER) {
                Ok(data) => content.push(data).map_err(&local_err)?,
                Err(Stop::Closed | Stop::Reset) => return Err(DownloadError::NotFound),
                Err(stop) => return Err(stop.into_error(0)),
            }
        }
        progress.advance(content.received());
        loop {
            match incoming.read(DOWNLOAD_BUFFER) {
                Ok(data) => content.push(data).map_err(&local_err)?,
                Err(Stop::Closed) => break,
                Err(Stop::Reset) => {
                    return Err(DownloadError::Reset {
                        received: content.received(),
                    });
                }
                Err(stop) => return Err(stop.into_error(content.received())),
            }
            progress.advance(content.received());
        }
        let (temp, size, sized) = content.finish(&self.beside)?;
        temp.persist(&self.beside.target)
            .map_err(|e| local_err(e.error))?;
        Ok(Done {
            size,
            received: size,
            resumed_from: 0,
            elapsed: self.started.elapsed(),
            via: match (one, sized) {
                (true, _) => Via::PlainOne,
                (false, true) => Via::PlainSized,
                (false, false) => Via::Plain,
            },
        })
    }
}

/// Receives bytes `from..size` after a GET_FILE_RANGE header (`head` arrived with
/// it) into `file` (positioned at `from`). Returns the bytes received.
fn receive_exact(
    incoming: &mut Incoming<'_>,
    head: &[u8],
    file: &mut File,
    from: u64,
    size: u64,
    progress: &mut dyn Progress,
) -> Result<u64, DownloadError> {
    let want = size - from;
    if head.len() as u64 > want {
        return Err(DownloadError::TooMuch);
    }
    let local_err = |source| DownloadError::Local {
        path: PathBuf::from("(partial file)"),
        source,
    };
    file.write_all(head).map_err(local_err)?;
    let mut received = head.len() as u64;
    progress.advance(from + received);
    while received < want {
        let max = (want - received).min(DOWNLOAD_BUFFER as u64) as usize;
        let data = match incoming.read(max) {
            Ok(data) => data,
            Err(Stop::Closed | Stop::Reset) => {
                return Err(DownloadError::Short {
                    expected: want,
                    received,
                });
            }
            Err(stop) => return Err(stop.into_error(received)),
        };
        file.write_all(data).map_err(local_err)?;
        received += data.len() as u64;
        progress.advance(from + received);
    }
    Ok(received)
}

/// Why a read of content returned no bytes.
enum Stop {
    /// The peer closed the connection.
    Closed,
    /// The peer reset it.
    Reset,
    /// Nothing arrived for [`DOWNLOAD_IDLE_TIMEOUT`].
    Timeout,
    /// The user cancelled.
    Cancelled,
    /// Any other socket error.
    Failed(io::Error),
}

impl Stop {
    /// The error for a stop that is a failure whatever the request (not a close or
    /// a reset, whose meaning depends on it), after `received` bytes.
    fn into_error(self, received: u64) -> DownloadError {
        match self {
            Stop::Closed | Stop::Reset => DownloadError::Reset { received },
            Stop::Timeout => DownloadError::Timeout { received },
            Stop::Cancelled => DownloadError::Cancelled,
            Stop::Failed(e) => DownloadError::Receive(e),
        }
    }
}

/// The content side of a transfer's connection: one buffer reused for every read,
/// the idle timeout on the socket, the cancel flag checked before each read.
struct Incoming<'a> {
    socket: &'a TcpStream,
    buf: Vec<u8>,
    cancel: &'a AtomicBool,
}

impl<'a> Incoming<'a> {
    fn new(socket: &'a TcpStream, cancel: &'a AtomicBool) -> Result<Self, DownloadError> {
        socket
            .set_read_timeout(Some(DOWNLOAD_IDLE_TIMEOUT))
            .map_err(DownloadError::Receive)?;
        Ok(Incoming {
            socket,
            buf: vec![0u8; DOWNLOAD_BUFFER],
            cancel,
        })
    }

    /// The next bytes, at most `max` (and at most the buffer's length).
    fn read(&mut self, max: usize) -> Result<&[u8], Stop> {
        let max = max.min(self.buf.len());
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(Stop::Cancelled);
            }
            match (&mut &*self.socket).read(&mut self.buf[..max]) {
                Ok(0) => return Err(Stop::Closed),
                Ok(n) => return Ok(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if net::is_timeout(&e) => return Err(Stop::Timeout),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Stop::Reset),
                Err(e) => return Err(Stop::Failed(e)),
            }
        }
    }
}

/// What the first bytes of plain GET_FILE content said so far.
enum Decided {
    /// Not yet: they are held in `lead`.
    No,
    /// Plain content: `lead` was written as it is.
    Plain,
    /// It starts with the slides' `SIZE\0` (`lead[..prefix]`), not written.
    Sized { prefix: usize, size: u64 },
}

/// The content of a plain GET_FILE reply, written to a temporary file as it arrives.
/// Only its first bytes are held (at most [`LEAD_MAX`]), until they tell whether they
/// are the slides' size.
struct PlainContent {
    temp: tempfile::NamedTempFile,
    lead: Vec<u8>,
    decided: Decided,
    /// Bytes written to `temp`.
    written: u64,
}

/// The most bytes that decide whether plain content starts with a size: the
/// longest decimal number and its NUL.
const LEAD_MAX: usize = wire::MAX_NUMBER + 1;

impl PlainContent {
    fn new(temp: tempfile::NamedTempFile) -> Self {
        PlainContent {
            temp,
            lead: Vec::with_capacity(LEAD_MAX),
            decided: Decided::No,
            written: 0,
        }
    }

    /// Content bytes received so far (a size prefix not counted once recognised).
    fn received(&self) -> u64 {
        match self.decided {
            Decided::No => self.lead.len() as u64,
            _ => self.written,
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.temp.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    /// Takes the next bytes of content.
    fn push(&mut self, data: &[u8]) -> io::Result<()> {
        if !matches!(self.decided, Decided::No) {
            return self.write(data);
        }
        let take = data.len().min(LEAD_MAX - self.lead.len());
        self.lead.extend_from_slice(&data[..take]);
        match classify_lead(&self.lead) {
            Lead::Undecided => {}
            Lead::Plain => {
                self.decided = Decided::Plain;
                let lead = std::mem::take(&mut self.lead);
                self.write(&lead)?;
            }
            Lead::Sized { prefix, size } => {
                self.decided = Decided::Sized { prefix, size };
                let lead = std::mem::take(&mut self.lead);
                self.write(&lead[prefix..])?;
                self.lead = lead;
            }
        }
        self.write(&data[take..])
    }

    /// The complete temporary file, its size, and whether a size prefix was
    /// recognised (and dropped). A prefix that does not match the content is part of
    /// the file.
    fn finish(
        mut self,
        beside: &Beside,
    ) -> Result<(tempfile::NamedTempFile, u64, bool), DownloadError> {
        let local_err = beside.local_err(&beside.target);
        match self.decided {
            Decided::No => {
                let lead = std::mem::take(&mut self.lead);
                self.write(&lead).map_err(&local_err)?;
                Ok((self.temp, self.written, false))
            }
            Decided::Plain => Ok((self.temp, self.written, false)),
            Decided::Sized { size, .. } if size == self.written => {
                Ok((self.temp, self.written, true))
            }
            Decided::Sized { prefix, .. } => {
                // Not the slides' size after all: the prefix is part of the file.
                let temp = prepend(beside, self.temp, &self.lead[..prefix])?;
                Ok((temp, self.written + prefix as u64, false))
            }
        }
    }
}

/// A temporary file beside the target for a plain GET_FILE transfer, removed when
/// dropped.
fn temp_beside(beside: &Beside) -> Result<tempfile::NamedTempFile, DownloadError> {
    let name = beside
        .target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".part");
    // The finished file gets the usual mode of a new file (0666 less the umask), not
    // the private 0600 of a temporary file.
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(&beside.dir)
        .map_err(beside.local_err(&beside.target))
}

/// A new temporary file holding `prefix` and then the content of `temp`.
fn prepend(
    beside: &Beside,
    mut temp: tempfile::NamedTempFile,
    prefix: &[u8],
) -> Result<tempfile::NamedTempFile, DownloadError> {
    let local_err = beside.local_err(&beside.target);
    let mut out = temp_beside(beside)?;
    out.write_all(prefix).map_err(&local_err)?;
    temp.seek(SeekFrom::Start(0)).map_err(&local_err)?;
    io::copy(temp.as_file_mut(), out.as_file_mut()).map_err(&local_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_info_round_trips_and_rejects_junk() {
        let info = Info {
            owner: "alice".into(),
            remote: "/abs/a.bin".into(),
            size: 123,
            version: "1-2-3".into(),
        };
        assert_eq!(Info::parse(&info.render()), Some(info));
        assert_eq!(Info::parse(""), None);
        assert_eq!(Info::parse("peerdex-partial 1\nowner a\n"), None);
        assert_eq!(
            Info::parse("peerdex-partial 1\nowner a\nfile f\nsize x\nversion v\n"),
            None
        );
    }

    /// Feeds `content` to a [`PlainContent`] in pieces of `step` bytes; returns the
    /// stored bytes and whether a size prefix was dropped.
    fn plain_in_steps(content: &[u8], step: usize) -> (Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let beside = Beside::new(&dir.path().join("f"));
        let mut plain = PlainContent::new(temp_beside(&beside).unwrap());
        for piece in content.chunks(step) {
            plain.push(piece).unwrap();
        }
        let (temp, size, sized) = plain.finish(&beside).unwrap();
        let stored = std::fs::read(temp.path()).unwrap();
        assert_eq!(size, stored.len() as u64);
        (stored, sized)
    }

    #[test]
    fn plain_content_drops_a_matching_size_in_any_chunking() {
        let body: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mut sized = b"300\0".to_vec();
        sized.extend_from_slice(&body);
        for step in [1, 2, 3, 4, 5, 21, 22, 1000] {
            assert_eq!(plain_in_steps(&sized, step), (body.clone(), true), "{step}");
            // Without the prefix, or with a wrong one, every byte is the file's.
            assert_eq!(plain_in_steps(&body, step), (body.clone(), false), "{step}");
            let mut wrong = b"299\0".to_vec();
            wrong.extend_from_slice(&body);
            assert_eq!(
                plain_in_steps(&wrong, step),
                (wrong.clone(), false),
                "{step}"
            );
        }
        assert_eq!(plain_in_steps(b"", 1), (Vec::new(), false));
        assert_eq!(plain_in_steps(b"12", 1), (b"12".to_vec(), false));
        assert_eq!(plain_in_steps(b"0\0", 1), (Vec::new(), true));
        let long = [b'1'; 30];
        assert_eq!(plain_in_steps(&long, 7), (long.to_vec(), false));
    }

    #[test]
    fn hidden_names_sit_beside_the_target() {
        let b = Beside::new(Path::new("/tmp/d/big.iso"));
        assert_eq!(b.partial, Path::new("/tmp/d/.big.iso.peerdex-partial"));
        assert_eq!(b.info, Path::new("/tmp/d/.big.iso.peerdex-partial.info"));
        let b = Beside::new(Path::new("x"));
        assert_eq!(b.partial, Path::new("./.x.peerdex-partial"));
    }
}
