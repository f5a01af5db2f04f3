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
//!   name from the same owner asks for OFFSET = the partial's length, and keeps the
//!   bytes only when the peer answers the same SIZE and VERSION. A prefix another
//!   owner sent is never resumed: SIZE and VERSION are public (one GET_FILE_RANGE
//!   reads them), so a co-owner could replay them after junk (issue 26 item 4);
//!   until content is verified block by block, FETCH's next owner starts at 0.
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

use super::open::{check_own, read_state_text};
use super::speaks::{Known, Speaks, Unknown};
use crate::net::{self, DeadlineReader};
use crate::proto::peer::{
    CODE_NOT_FOUND, CODE_OK, Lead, classify_lead, encode_range_request, encode_request,
    read_range_header,
};
use crate::proto::tree::TreeError;
use crate::proto::wire::{self, Field, FieldReader, WireError};

/// How long the downloader waits to connect to a peer.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the downloader tolerates silence from the peer, before the reply and
/// between chunks of content. A live peer on any real link sends something within
/// 10 s; past it the download fails and the temporary file is removed.
pub(super) const DOWNLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the downloader waits for a whole reply header (the code byte, and SIZE
/// and VERSION after GET_FILE_RANGE's 0), however the peer dribbles it. A live peer
/// answers at once; past 10 s a GET_FILE_RANGE attempt counts as unanswered and the
/// plain GET_FILE as failed.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer of the download loop. Large reads amortise the system calls on fast links
/// (loopback moves several GB/s) while keeping the downloader's memory constant.
const DOWNLOAD_BUFFER: usize = 256 * 1024;

/// Longest partial-info file read back. It holds four short lines (two names of at
/// most 256 bytes, a number, a version of at most 128 bytes).
const MAX_INFO: u64 = 4096;

/// First line of a partial-info file: its format and version.
const INFO_MAGIC: &str = "peerdex-partial 1";

/// The slowest a download may run, in bytes per second averaged over
/// [`MIN_RATE_WINDOW`]: a peer that drips bytes (one a second after a valid header
/// resets any idle timeout) cannot hold a download for ever, and FETCH fails over from
/// it. 4 KiB/s is slower than any lab link; a 1 GiB file at that rate would take three
/// days.
const MIN_DOWNLOAD_RATE: u64 = 4 * 1024;

/// The window [`MIN_DOWNLOAD_RATE`] is averaged over: long enough that a stall of a
/// few seconds on a live link (a busy disk, a retransmission) does not fail it.
const MIN_RATE_WINDOW: Duration = Duration::from_secs(10);

/// What a [`Downloader`] may be told; tests shorten the rate window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DownloadOptions {
    /// Bytes per second a transfer must average over each `rate_window`.
    pub(crate) min_rate: u64,
    pub(crate) rate_window: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            min_rate: MIN_DOWNLOAD_RATE,
            rate_window: MIN_RATE_WINDOW,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// The peer could not be reached.
    #[error("connect: {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    /// The request could not be sent.
    #[error("send: {0}")]
    Send(#[source] io::Error),
    /// The reply header was missing or malformed.
    #[error("reply: {0}")]
    Reply(#[source] WireError),
    /// The peer answered code 1 and closed: no such file published there.
    #[error("not found: the peer does not share that file")]
    NotFound,
    /// The peer answered another error code.
    #[error("refused: the peer answered code {0}")]
    Refused(u8),
    /// The peer announced a size and sent more bytes than that.
    #[error("protocol: the peer sent more than it announced")]
    TooMuch,
    /// The connection ended before the announced size.
    #[error("short: the connection ended after {received} of {expected} bytes")]
    Short { expected: u64, received: u64 },
    /// The connection was reset before a plain GET_FILE transfer's close.
    #[error("reset: the peer reset the connection after {received} bytes")]
    Reset { received: u64 },
    /// Nothing arrived for [`DOWNLOAD_IDLE_TIMEOUT`].
    #[error("timeout: no data for {} s after {received} bytes", DOWNLOAD_IDLE_TIMEOUT.as_secs())]
    Timeout { received: u64 },
    /// Fewer than `min_rate` bytes per second arrived over a whole window.
    #[error(
        "too slow: {got} bytes in {} s, below the minimum of {min_rate} bytes/s, after \
         {received} bytes",
        window.as_secs_f64()
    )]
    TooSlow {
        got: u64,
        window: Duration,
        min_rate: u64,
        received: u64,
    },
    /// Reading the socket failed.
    #[error("receive: {0}")]
    Receive(#[source] io::Error),
    /// The local file could not be created, written or renamed.
    #[error("local: {}: {source}", path.display())]
    Local { path: PathBuf, source: io::Error },
    /// The file does not fit on the local file system (checked before the transfer).
    #[error(
        "no space: {} needs {needed} bytes, {free} are free there",
        dir.display()
    )]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
    /// Another download into the same local name is running.
    #[error("busy: another download into {} is running", .0.display())]
    Busy(PathBuf),
    /// Cancelled by the user (Ctrl+C).
    #[error("cancelled")]
    Cancelled,
    /// The peer does not speak GET_FILE_HASHES and GET_FILE_BLOCK (its discovery
    /// answer did not name them): they are not sent to it.
    #[error("no blocks: the peer does not speak GET_FILE_HASHES and GET_FILE_BLOCK")]
    NoBlocks,
    /// GET_FILE_HASHES answered 3: the peer is computing the tree (or the file
    /// changed); ask again later.
    #[error("not ready: the peer is still computing the file's hashes")]
    NotReady,
    /// GET_FILE_BLOCK answered 3: the file is no longer at the VERSION asked for.
    #[error("changed: the file changed on the peer (another VERSION)")]
    Changed,
    /// A hash tree that does not hold together (count, root, framing).
    #[error("hash tree: {0}")]
    Tree(#[source] TreeError),
    /// A block that does not match its hash in the tree (found by the caller of
    /// `read_blocks`, which verifies).
    #[error("bad block: block {0} does not match its hash")]
    BadBlock(u64),
    /// Blocks asked for that the tree does not have.
    #[error("blocks {first}+{count}: the file has {blocks} blocks")]
    BlockRange { first: u64, count: u64, blocks: u64 },
    /// A GET_FILE_RANGE transfer failed; what arrived is kept for a resume.
    #[error(
        "{cause}; {kept} of {size} bytes kept in {} for the same GET_FILE to resume",
        partial.display()
    )]
    Kept {
        #[source]
        cause: Box<DownloadError>,
        kept: u64,
        size: u64,
        partial: PathBuf,
    },
}

impl DownloadError {
    /// Whether the failure is on this machine (the same with every owner: FETCH does
    /// not fail over from it).
    pub(crate) fn is_local(&self) -> bool {
        match self {
            DownloadError::Local { .. } | DownloadError::NoSpace { .. } => true,
            DownloadError::Busy(_) => true,
            DownloadError::Kept { cause, .. } => cause.is_local(),
            _ => false,
        }
    }
}

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
    /// GET_FILE_BLOCK from one or more owners, every block verified.
    Blocks,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Range => "GET_FILE_RANGE",
            Via::Plain => "GET_FILE",
            Via::PlainSized => "GET_FILE with a size",
            Via::PlainOne => "GET_FILE answered 1 with content",
            Via::Blocks => "GET_FILE_BLOCK, every block verified",
        })
    }
}

/// The hidden files beside a download's target.
pub(super) struct Beside {
    pub(super) target: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) partial: PathBuf,
    pub(super) info: PathBuf,
    /// The record of the verified blocks of a multi-source FETCH (`blockfile`).
    pub(super) record: PathBuf,
}

impl Beside {
    pub(super) fn new(target: &Path) -> Beside {
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
            record: dir.join(format!(".{name}.peerdex-partial.blocks")),
            dir,
        }
    }

    pub(super) fn local_err(&self, path: &Path) -> impl Fn(io::Error) -> DownloadError + use<> {
        let path = path.to_owned();
        move |source| DownloadError::Local {
            path: path.clone(),
            source,
        }
    }

    /// Opens (creating it empty) and locks the partial file. Never follows a
    /// symbolic link, never blocks on a FIFO, and refuses anything but a regular
    /// file with one link: a partial hard-linked to another file (a published one)
    /// would be cut and overwritten through the link.
    pub(super) fn open_partial(&self) -> Result<File, DownloadError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&self.partial)
            .and_then(|f| check_own(&f.metadata()?).map(|()| f))
            .map_err(self.local_err(&self.partial))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(DownloadError::Busy(self.target.clone()));
        }
        Ok(file)
    }

    /// The partial's info, when there is a readable one (see `open::read_state_text`).
    fn read_info(&self) -> Option<Info> {
        Info::parse(&read_state_text(&self.info, MAX_INFO)?)
    }

    /// Writes the info file whole to a temporary file renamed over it: whatever was
    /// there (a symbolic link, a hard link to another file, a FIFO) is replaced, never
    /// written through.
    fn write_info(&self, info: &Info) -> Result<(), DownloadError> {
        let local_err = self.local_err(&self.info);
        let name = self.info.file_name().unwrap_or_default().to_string_lossy();
        let mut temp = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempfile_in(&self.dir)
            .map_err(&local_err)?;
        temp.write_all(info.render().as_bytes())
            .map_err(&local_err)?;
        temp.persist(&self.info).map_err(|e| local_err(e.error))?;
        Ok(())
    }

    /// Removes the partial file, its info and its block record.
    pub(super) fn forget(&self) {
        let _ = std::fs::remove_file(&self.partial);
        let _ = std::fs::remove_file(&self.info);
        let _ = std::fs::remove_file(&self.record);
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

/// Connects to `addr` and sends `request`.
pub(super) fn connect(addr: SocketAddr, request: &[u8]) -> Result<TcpStream, DownloadError> {
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

/// The downloader of a session: its options, and what each peer it asked speaks
/// (see `speaks`). Clones share it.
#[derive(Clone)]
pub(crate) struct Downloader {
    pub(super) known: Arc<Known>,
    pub(super) options: DownloadOptions,
}

impl Default for Downloader {
    fn default() -> Self {
        Downloader::new(DownloadOptions::default())
    }
}

impl Downloader {
    pub(crate) fn new(options: DownloadOptions) -> Self {
        Downloader {
            known: Arc::default(),
            options,
        }
    }

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
            options: self.options,
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
    options: DownloadOptions,
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
        if matches!(speaks, Speaks::Range | Speaks::Blocks) {
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
            .filter(|i| i.owner == src.owner && i.remote == src.remote)
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
        let beside = &self.beside;
        let RangeHeader {
            stream,
            head,
            size,
            version,
        } = header;
        // A prefix that is not kept is freed before the content arrives.
        let freed = if from == 0 { resume.have } else { 0 };
        check_space(&beside.dir, size - from, freed)?;
        self.prepare_partial(partial, resume, from, size, version)?;
        progress.start(Some(size), from);
        let mut incoming = Incoming::new(&stream, self.cancel, self.options)?;
        let received = receive_exact(&mut incoming, &head, partial, beside, from, size, progress)
            .map_err(|cause| {
            if is_disk_full(&cause) {
                // Kept, it would only hold the space the disk lacks.
                beside.forget();
                return cause;
            }
            DownloadError::Kept {
                kept: partial.metadata().map(|m| m.len()).unwrap_or(from),
                cause: Box::new(cause),
                size,
                partial: beside.partial.clone(),
            }
        })?;
        std::fs::rename(&beside.partial, &beside.target)
            .map_err(beside.local_err(&beside.target))?;
        let _ = std::fs::remove_file(&beside.info);
        let _ = std::fs::remove_file(&beside.record);
        Ok(Done {
            size,
            received,
            resumed_from: from,
            elapsed: self.started.elapsed(),
            via: Via::Range,
        })
    }

    /// Makes the partial file hold the kept prefix `..from` of a file of `size`
    /// bytes at `version`, positioned at `from`, with its info written.
    fn prepare_partial(
        &self,
        partial: &mut File,
        resume: &Resume,
        from: u64,
        size: u64,
        version: String,
    ) -> Result<(), DownloadError> {
        let (src, beside) = (self.src, &self.beside);
        // Only a prefix that is not kept needs cutting: ext4 flushes a file truncated
        // to 0 and rewritten when it is closed (auto_da_alloc, measured: 0.5 s more per
        // GiB), so a fresh partial file is left alone.
        if from == 0 && resume.have > 0 {
            partial
                .set_len(0)
                .map_err(beside.local_err(&beside.partial))?;
        }
        if from == 0 {
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
        Ok(())
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
        let mut incoming = Incoming::new(&stream, self.cancel, self.options)?;
        let mut content = PlainContent::new(temp_beside(&self.beside)?);
        progress.start(None, 0);
        let local_err = self.beside.local_err(&self.beside.target);
        // A file that cannot fit is refused before it fills the disk (issue 26 item 7).
        let fits = |size| check_space(&self.beside.dir, size, 0);
        let take = |content: &mut PlainContent, data: &[u8]| content.push(data, &fits, &local_err);
        if !head.is_empty() {
            take(&mut content, &head)?;
        } else if one {
            // 1 then the close: no such file. 1 then content: a reference peer's
            // success.
            match incoming.read(DOWNLOAD_BUFFER) {
                Ok(data) => take(&mut content, data)?,
                Err(Stop::Closed | Stop::Reset) => return Err(DownloadError::NotFound),
                Err(stop) => return Err(stop.into_error(0, self.options.min_rate)),
            }
        }
        progress.advance(content.received());
        loop {
            match incoming.read(DOWNLOAD_BUFFER) {
                Ok(data) => take(&mut content, data)?,
                Err(Stop::Closed) => break,
                Err(Stop::Reset) => {
                    return Err(DownloadError::Reset {
                        received: content.received(),
                    });
                }
                Err(stop) => return Err(stop.into_error(content.received(), self.options.min_rate)),
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
/// it) into `file`, the partial file beside the target (positioned at `from`).
/// Returns the bytes received.
fn receive_exact(
    incoming: &mut Incoming<'_>,
    head: &[u8],
    file: &mut File,
    beside: &Beside,
    from: u64,
    size: u64,
    progress: &mut dyn Progress,
) -> Result<u64, DownloadError> {
    let local_err = beside.local_err(&beside.partial);
    let mut received = 0;
    progress.advance(from);
    receive_into(incoming, head, size - from, &mut |data| {
        file.write_all(data).map_err(&local_err)?;
        received += data.len() as u64;
        progress.advance(from + received);
        Ok(())
    })?;
    Ok(received)
}

/// Receives exactly `want` bytes of content, the first of them `head` (they
/// arrived with the header), handing each piece to `sink` as it comes: more in
/// `head` is `TooMuch`, a close or a reset before the end is `Short`, and the idle
/// timeout, the minimum rate and the cancel flag of `incoming` apply.
pub(super) fn receive_into(
    incoming: &mut Incoming<'_>,
    head: &[u8],
    want: u64,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), DownloadError>,
) -> Result<(), DownloadError> {
    if head.len() as u64 > want {
        return Err(DownloadError::TooMuch);
    }
    if !head.is_empty() {
        sink(head)?;
    }
    let mut received = head.len() as u64;
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
            Err(stop) => return Err(stop.into_error(received, incoming.options.min_rate)),
        };
        sink(data)?;
        received += data.len() as u64;
    }
    Ok(())
}

/// Refuses a download of `needed` more bytes into `dir` when its file system has
/// fewer free (counting `freed` bytes about to be released there). A file system
/// that cannot say is not refused.
pub(super) fn check_space(dir: &Path, needed: u64, freed: u64) -> Result<(), DownloadError> {
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if needed > free.saturating_add(freed) {
        return Err(DownloadError::NoSpace {
            dir: dir.to_owned(),
            needed,
            free,
        });
    }
    Ok(())
}

/// Whether a download failed because the local file system is full (ENOSPC, or
/// the user's quota: EDQUOT).
pub(crate) fn is_disk_full(e: &DownloadError) -> bool {
    match e {
        DownloadError::Local { source, .. } => {
            matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        }
        _ => false,
    }
}

/// Why a read of content returned no bytes.
pub(super) enum Stop {
    /// The peer closed the connection.
    Closed,
    /// The peer reset it.
    Reset,
    /// Nothing arrived for [`DOWNLOAD_IDLE_TIMEOUT`].
    Timeout,
    /// Fewer than the minimum rate's bytes arrived over the last window.
    TooSlow { got: u64, window: Duration },
    /// The user cancelled.
    Cancelled,
    /// Any other socket error.
    Failed(io::Error),
}

impl Stop {
    /// The error for a stop that is a failure whatever the request (not a close or
    /// a reset, whose meaning depends on it), after `received` bytes.
    fn into_error(self, received: u64, min_rate: u64) -> DownloadError {
        match self {
            Stop::Closed | Stop::Reset => DownloadError::Reset { received },
            Stop::Timeout => DownloadError::Timeout { received },
            Stop::TooSlow { got, window } => DownloadError::TooSlow {
                got,
                window,
                min_rate,
                received,
            },
            Stop::Cancelled => DownloadError::Cancelled,
            Stop::Failed(e) => DownloadError::Receive(e),
        }
    }
}

/// The content side of a transfer's connection: one buffer reused for every read,
/// the idle timeout on the socket, the cancel flag checked before each read, and the
/// minimum rate checked at the end of each window.
pub(super) struct Incoming<'a> {
    socket: &'a TcpStream,
    buf: Vec<u8>,
    cancel: &'a AtomicBool,
    options: DownloadOptions,
    /// When the current rate window started, and the bytes received in it.
    window_start: Instant,
    window_bytes: u64,
}

impl<'a> Incoming<'a> {
    pub(super) fn new(
        socket: &'a TcpStream,
        cancel: &'a AtomicBool,
        options: DownloadOptions,
    ) -> Result<Self, DownloadError> {
        socket
            .set_read_timeout(Some(DOWNLOAD_IDLE_TIMEOUT))
            .map_err(DownloadError::Receive)?;
        Ok(Incoming {
            socket,
            buf: vec![0u8; DOWNLOAD_BUFFER],
            cancel,
            options,
            window_start: Instant::now(),
            window_bytes: 0,
        })
    }

    /// The next bytes, at most `max` (and at most the buffer's length).
    fn read(&mut self, max: usize) -> Result<&[u8], Stop> {
        let max = max.min(self.buf.len());
        let n = loop {
            if self.cancel.load(Ordering::SeqCst) {
                return Err(Stop::Cancelled);
            }
            match (&mut &*self.socket).read(&mut self.buf[..max]) {
                Ok(0) => return Err(Stop::Closed),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if net::is_timeout(&e) => return Err(Stop::Timeout),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Stop::Reset),
                Err(e) => return Err(Stop::Failed(e)),
            }
        };
        self.check_rate(n as u64)?;
        Ok(&self.buf[..n])
    }

    /// Counts `n` bytes; at the end of a window, fails if the window got fewer than
    /// the minimum rate's worth.
    fn check_rate(&mut self, n: u64) -> Result<(), Stop> {
        self.window_bytes += n;
        let window = self.window_start.elapsed();
        let DownloadOptions {
            min_rate,
            rate_window,
        } = self.options;
        if window < rate_window {
            return Ok(());
        }
        let floor = (min_rate as f64 * window.as_secs_f64()) as u64;
        if self.window_bytes < floor {
            return Err(Stop::TooSlow {
                got: self.window_bytes,
                window,
            });
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
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

    /// Takes the next bytes of content. When they complete a size string (the 2025
    /// statement's reply, the slides'), `fits` is asked about the announced size
    /// before anything is written; a failed write is `local_err` of its error.
    fn push(
        &mut self,
        data: &[u8],
        fits: &dyn Fn(u64) -> Result<(), DownloadError>,
        local_err: &dyn Fn(io::Error) -> DownloadError,
    ) -> Result<(), DownloadError> {
        if !matches!(self.decided, Decided::No) {
            return self.write(data).map_err(local_err);
        }
        let take = data.len().min(LEAD_MAX - self.lead.len());
        self.lead.extend_from_slice(&data[..take]);
        match classify_lead(&self.lead) {
            Lead::Undecided => {}
            Lead::Plain => {
                self.decided = Decided::Plain;
                let lead = std::mem::take(&mut self.lead);
                self.write(&lead).map_err(local_err)?;
            }
            Lead::Sized { prefix, size } => {
                fits(size)?;
                self.decided = Decided::Sized { prefix, size };
                let lead = std::mem::take(&mut self.lead);
                self.write(&lead[prefix..]).map_err(local_err)?;
                self.lead = lead;
            }
        }
        self.write(&data[take..]).map_err(local_err)
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
            plain
                .push(piece, &|_| Ok(()), &beside.local_err(&beside.target))
                .unwrap();
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

    /// A progress sink that ignores everything.
    struct Quiet;

    impl Progress for Quiet {
        fn start(&mut self, _: Option<u64>, _: u64) {}
        fn advance(&mut self, _: u64) {}
    }

    #[test]
    fn a_dripping_peer_fails_the_minimum_rate() {
        use crate::proto::peer::encode_probe_answer;
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let drip = std::thread::spawn(move || {
            // The discovery, then a valid header and one byte every 20 ms.
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&encode_probe_answer()).unwrap();
            drop(s);
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"\x001000000\0v1\0").unwrap();
            for _ in 0..500 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                // The peer's pace, not a wait for anything.
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let downloader = Downloader::new(DownloadOptions {
            min_rate: 1000,
            rate_window: Duration::from_millis(300),
        });
        let src = Source {
            addr,
            owner: "drip",
            remote: "f",
        };
        let cancel = AtomicBool::new(false);
        let err = downloader
            .download(&src, &dir.path().join("f"), &cancel, &mut Quiet)
            .unwrap_err();
        let DownloadError::Kept { cause, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            matches!(**cause, DownloadError::TooSlow { min_rate: 1000, .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("too slow: "), "{err}");
        assert!(!err.is_local());
        drip.join().unwrap();
    }

    #[test]
    fn hidden_files_that_are_fifos_or_hard_links_are_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let published = dir.path().join("published.txt");
        std::fs::write(&published, b"my published file").unwrap();
        let b = Beside::new(&dir.path().join("got"));
        // A FIFO as the info: read at once as no info (it hung the shell).
        super::super::files::tests::mkfifo(&b.info);
        assert_eq!(b.read_info(), None);
        // A partial hard-linked to a published file is refused, not cut.
        std::fs::hard_link(&published, &b.partial).unwrap();
        assert!(matches!(b.open_partial(), Err(DownloadError::Local { .. })));
        // An info hard-linked to it is replaced, not written through.
        std::fs::remove_file(&b.info).unwrap();
        std::fs::hard_link(&published, &b.info).unwrap();
        let info = Info {
            owner: "alice".into(),
            remote: "r".into(),
            size: 1,
            version: "v".into(),
        };
        b.write_info(&info).unwrap();
        assert_eq!(b.read_info(), Some(info));
        assert_eq!(std::fs::read(&published).unwrap(), b"my published file");
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
