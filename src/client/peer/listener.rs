//! The listener that serves this client's published files to other peers: GET_FILE,
//! GET_FILE_RANGE, GET_FILE_HASHES and GET_FILE_BLOCK, all through the same upload
//! slots, pacing and deadlines.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::files::SharedFiles;
use super::open::Opened;
use crate::net::{self, DeadlineReader, Permit, Shutdown};
use crate::proto::index::Statement;
use crate::proto::peer::{
    CODE_NOT_READY, CODE_OK, CODE_OTHER, PROBE_NAME, PeerRequestError, Request, encode_ok_header,
    encode_probe_answer, encode_range_header, read_request,
};
use crate::proto::tree::{BLOCK_SIZE, blocks_of};
use crate::proto::wire::FieldReader;

/// Downloads served at once by one peer. Each holds a thread (256 KiB stack) and a
/// socket; 64 is far more parallel downloads than one user's uplink can feed, and
/// bounds what a flood of connections can pin. Past it the oldest connection that has
/// not sent its request yet is closed (see `net`).
const MAX_UPLOADS: usize = 64;

/// How long a connection to the listener may take to deliver its request. A request
/// is two or three short fields; a peer that has not sent them in 10 s is not going
/// to.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write of file content may block on a downloader that does not read.
/// Past it the upload is abandoned so a stalled downloader cannot pin a thread.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes sent per `sendfile` batch when an upload rate limit is set: small enough
/// that the pacing is smooth, large enough to stay cheap.
const PACED_CHUNK: u64 = 64 * 1024;

/// Connections past [`MAX_UPLOADS`] that the listener accepts, so that a new request
/// can still be read when every upload slot is taken (by downloaders that stalled,
/// say): the request then evicts the slowest upload (see [`Uploads`]). Silent
/// connections in these slots are evicted by the connection cap as usual.
const REQUEST_ROOM: usize = 8;

/// Slowest average rate (bytes per second) an upload may run at: each upload must end
/// within [`SEND_TIMEOUT`] plus its size at this rate, whatever progress it makes on
/// the way (a downloader reading a little now and then cannot hold its thread for
/// ever). 32 KiB/s is slower than any lab link; a 1 GiB file gets 9 hours.
const MIN_UPLOAD_RATE: u64 = 32 * 1024;

/// How long an upload runs before it may be evicted for a new request: its rate is
/// not meaningful before.
const UPLOAD_GRACE: Duration = Duration::from_secs(2);

/// How long stopping the listener waits for connections to end: not at all. Uploads
/// already running finish on their own threads (each bounded by its deadline), so
/// DISCONNECT answers at once; connections still waiting for their request are
/// closed.
const STOP_DRAIN: Duration = Duration::ZERO;

/// Bytes per `sendfile` call when no rate limit is set: the progress of each upload is
/// counted between calls (to find the slowest), and the deadline checked.
const UNPACED_CHUNK: u64 = 1024 * 1024;

/// One upload in progress, as [`Uploads`] sees it.
struct Upload {
    /// A handle to shut the connection down when evicted.
    stream: TcpStream,
    /// The downloader's address: slots are shared fairly between addresses.
    ip: IpAddr,
    started: Instant,
    sent: AtomicU64,
}

impl Upload {
    /// Average rate so far, in bytes per second.
    fn rate(&self, now: Instant) -> f64 {
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        self.sent.load(Ordering::Relaxed) as f64 / secs
    }
}

/// The uploads in progress, at most [`MAX_UPLOADS`]. A new one past that evicts:
/// - when its address holds at least two uploads fewer than the address holding the
///   most, that address's slowest upload, at once (one host cannot lock the others
///   out by renewing stalled downloads within the grace period);
/// - otherwise the slowest upload that has run for [`UPLOAD_GRACE`]; stalled
///   downloaders therefore cannot lock legitimate ones out.
#[derive(Default)]
struct Uploads {
    running: Mutex<Vec<Arc<Upload>>>,
}

/// Removes its upload from the table when the upload ends.
struct UploadGuard<'a> {
    uploads: &'a Uploads,
    upload: Arc<Upload>,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.uploads
            .running
            .lock()
            .retain(|u| !Arc::ptr_eq(u, &self.upload));
    }
}

impl Uploads {
    /// Enters an upload on `stream` from `ip`, evicting one if all slots are taken
    /// (see the type); `None` when none may be evicted.
    fn start(&self, stream: &TcpStream, ip: IpAddr) -> Option<UploadGuard<'_>> {
        let upload = Arc::new(Upload {
            stream: stream.try_clone().ok()?,
            ip,
            started: Instant::now(),
            sent: AtomicU64::new(0),
        });
        let mut running = self.running.lock();
        if running.len() >= MAX_UPLOADS {
            let now = Instant::now();
            let evicted = victim(&running, ip, now)?;
            let victim = running.swap_remove(evicted);
            log::info!(
                "{MAX_UPLOADS} uploads running: evicted one to {} ({:.0} bytes/s) for a \
                 request from {ip}",
                victim.ip,
                victim.rate(now)
            );
            let _ = victim.stream.shutdown(std::net::Shutdown::Both);
        }
        running.push(Arc::clone(&upload));
        Some(UploadGuard {
            uploads: self,
            upload,
        })
    }
}

/// Which of the `running` uploads a new one from `ip` evicts, if any (see
/// [`Uploads`]).
fn victim(running: &[Arc<Upload>], ip: IpAddr, now: Instant) -> Option<usize> {
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    for u in running {
        *per_ip.entry(u.ip).or_default() += 1;
    }
    let mine = per_ip.get(&ip).copied().unwrap_or(0);
    let heaviest = per_ip
        .iter()
        .max_by_key(|&(_, &n)| n)
        .filter(|&(_, &n)| n >= mine + 2)
        .map(|(&ip, _)| ip);
    let slowest = |candidates: &mut dyn Iterator<Item = (usize, &Arc<Upload>)>| {
        candidates
            .min_by(|(_, a), (_, b)| a.rate(now).total_cmp(&b.rate(now)))
            .map(|(i, _)| i)
    };
    match heaviest {
        Some(heavy) => slowest(&mut running.iter().enumerate().filter(|(_, u)| u.ip == heavy)),
        None => slowest(
            &mut running
                .iter()
                .enumerate()
                .filter(|(_, u)| now.duration_since(u.started) >= UPLOAD_GRACE),
        ),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServeOptions {
    /// Upload limit per download in bytes per second; `None` for no limit.
    pub max_rate: Option<u64>,
    /// Send `SIZE\0` after the 0 of plain GET_FILE (the course slides' variant).
    pub size_header: bool,
    /// The course statement the lab follows: the 2024-25 one (`Y2025`) has the size
    /// string after plain GET_FILE's 0, as `size_header` does.
    pub statement: Statement,
}

impl ServeOptions {
    /// Whether plain GET_FILE's 0 is followed by `SIZE\0`.
    fn sized_get_file(&self) -> bool {
        self.size_header || self.statement == Statement::Y2025
    }
}

/// A running peer listener: bound on every interface, on a free port.
pub(crate) struct PeerListener {
    port: u16,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl PeerListener {
    /// Binds `0.0.0.0:0` and starts serving `files` on a thread.
    pub(crate) fn start(
        files: Arc<SharedFiles>,
        options: ServeOptions,
    ) -> io::Result<PeerListener> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let listener = net::Listener::bind("peer", addr, MAX_UPLOADS + REQUEST_ROOM)?;
        let port = listener.local_addr().port();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let serving = Arc::new(Serving {
            files,
            uploads: Uploads::default(),
            options,
        });
        let thread = thread::Builder::new()
            .name("peer-listener".into())
            .spawn(move || {
                listener.serve(&s, STOP_DRAIN, move |stream, peer, permit| {
                    serving.serve_one(stream, peer, permit)
                })
            })?;
        log::info!("peer listener on port {port}");
        Ok(PeerListener {
            port,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The port other clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting and waits for the accept thread to end. Downloads already
    /// running finish on their own threads (each bounded by [`SEND_TIMEOUT`]).
    pub(crate) fn stop(mut self) {
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

/// What every connection of one listener shares.
struct Serving {
    files: Arc<SharedFiles>,
    uploads: Uploads,
    options: ServeOptions,
}

impl Serving {
    /// One connection: its request, then the answer.
    fn serve_one(&self, stream: TcpStream, peer: SocketAddr, permit: Permit) {
        if let Err(e) = stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(SEND_TIMEOUT)))
        {
            log::debug!("peer {peer}: cannot set timeouts: {e}");
            return;
        }
        // The whole request within REQUEST_TIMEOUT, however it is trickled.
        let mut reader = FieldReader::new(DeadlineReader::new(&stream, REQUEST_TIMEOUT));
        let request = read_request(&mut reader);
        if !permit.busy() {
            return;
        }
        match request {
            Ok(r) => self.answer(&stream, peer, &r),
            Err(PeerRequestError::Empty) => log::debug!("peer {peer}: closed without a request"),
            Err(e) => {
                log::info!("peer {peer}: {e}");
                let _ = (&stream).write_all(&[CODE_OTHER]);
            }
        }
    }

    /// Answers a request: the discovery, a code, or a header and the content.
    fn answer(&self, stream: &TcpStream, peer: SocketAddr, request: &Request) {
        let mut out = stream;
        let (op, name) = (request.op(), request.file());
        if matches!(request, Request::Get { .. }) && name == PROBE_NAME {
            // The discovery (docs/PROTOCOL.md): the extensions this peer speaks.
            log::debug!("peer {peer}: discovery answered");
            let _ = out.write_all(&encode_probe_answer());
            return;
        }
        let plan = self.files.open(name).map_err(|code| (code, String::new()));
        let plan = plan.and_then(|opened| self.plan(opened, request));
        let (opened, header, body) = match plan {
            Ok(p) => p,
            Err((code, why)) => {
                log::info!("peer {peer}: {op} {name}: code {code}{why}");
                let _ = out.write_all(&[code]);
                return;
            }
        };
        let Some(upload) = self.uploads.start(stream, peer.ip()) else {
            log::info!("peer {peer}: {op} {name}: all {MAX_UPLOADS} upload slots busy");
            let _ = out.write_all(&[CODE_OTHER]);
            return;
        };
        if let Err(e) = out.write_all(&header) {
            log::info!("peer {peer}: {op} {name}: header not delivered: {e}");
            return;
        }
        let started = Instant::now();
        let (start, end, sent) = self.send_body(&opened, body, stream, &upload.upload);
        match sent {
            Ok(Sent::Complete(sent)) => log::info!(
                "peer {peer}: {op} {name}: sent {sent} bytes from {start} in {:.3} s",
                started.elapsed().as_secs_f64()
            ),
            Ok(Sent::Changed(sent)) => {
                log::warn!(
                    "peer {peer}: {op} {name}: the file changed while it was sent: transfer \
                     failed after {sent} of {} bytes",
                    end - start
                );
                reset_on_close(stream);
            }
            Err(e) => log::info!("peer {peer}: {op} {name}: transfer aborted: {e}"),
        }
    }

    /// Sends what follows a header: returns where it started and ended (in the file,
    /// or in the bytes), and how it went.
    fn send_body(
        &self,
        opened: &Opened,
        body: Body,
        out: &TcpStream,
        upload: &Upload,
    ) -> (u64, u64, io::Result<Sent>) {
        let rate = self.options.max_rate;
        match body {
            Body::File { start, end } => (
                start,
                end,
                send_content(opened, start, end, out, rate, upload),
            ),
            Body::Bytes(bytes) => (0, bytes.len() as u64, send_bytes(&bytes, out, rate, upload)),
        }
    }

    /// What answers `request` for the file it `opened`: the header and what follows
    /// it, or the code to answer (and why, for the log).
    fn plan(&self, opened: Opened, request: &Request) -> Result<Plan, (u8, String)> {
        let size = opened.size;
        let (header, body) = match request {
            Request::Get { .. } => {
                let header = match self.options.sized_get_file() {
                    true => encode_ok_header(size),
                    false => vec![CODE_OK],
                };
                (
                    header,
                    Body::File {
                        start: 0,
                        end: size,
                    },
                )
            }
            Request::Range { offset, .. } if *offset > size => {
                return Err((
                    CODE_OTHER,
                    format!(": offset {offset} past the end ({size})"),
                ));
            }
            Request::Range { offset, .. } => (
                encode_range_header(size, &opened.version),
                Body::File {
                    start: *offset,
                    end: size,
                },
            ),
            Request::Hashes { file } => match self.files.tree(file, &opened.version) {
                Some(ready) => (vec![CODE_OK], Body::Bytes(ready.encoded)),
                None => return Err((CODE_NOT_READY, ": the tree is being computed".into())),
            },
            Request::Blocks {
                version,
                first,
                count,
                ..
            } => {
                if *version != opened.version {
                    return Err((
                        CODE_NOT_READY,
                        ": the file changed (another VERSION)".into(),
                    ));
                }
                let blocks = blocks_of(size);
                if first.saturating_add(*count) > blocks {
                    return Err((
                        CODE_OTHER,
                        format!(": blocks {first}+{count} past {blocks}"),
                    ));
                }
                let start = first * BLOCK_SIZE;
                let end = size.min((first + count) * BLOCK_SIZE);
                (vec![CODE_OK], Body::File { start, end })
            }
        };
        Ok((opened, header, body))
    }
}

/// An answer ready to send: the file it is about, the header, and what follows it.
type Plan = (Opened, Vec<u8>, Body);

/// What follows a reply header.
enum Body {
    /// Bytes `start..end` of the opened file, checked for changes as they go.
    File { start: u64, end: u64 },
    /// Bytes made in memory (a hash tree).
    Bytes(Arc<[u8]>),
}

/// How an upload ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Every byte, from a file that did not change while it was sent.
    Complete(u64),
    /// The file changed (or shrank) while it was sent, after this many bytes: the
    /// last byte was held back, so the downloader does not have the whole file.
    Changed(u64),
}

/// Sends bytes `start..end` of `opened`, paced to `max_rate` bytes per second when
/// given, counting progress in `upload`. The whole upload must end within
/// [`SEND_TIMEOUT`] plus its length at [`MIN_UPLOAD_RATE`] (`TimedOut` past it); no
/// single write blocks longer than [`SEND_TIMEOUT`].
///
/// The file is checked between chunks (fstat: size, mtime, ctime, inode), and the
/// last byte is read before the last check and sent only after it: the bytes a
/// downloader gets all come from one content (VERSION) of the file, or it gets fewer
/// than it asked for (GET_FILE_RANGE, GET_FILE_BLOCK) and a reset instead of the
/// close (see the caller).
fn send_content(
    opened: &Opened,
    start: u64,
    end: u64,
    out: &TcpStream,
    max_rate: Option<u64>,
    upload: &Upload,
) -> io::Result<Sent> {
    use std::os::unix::fs::FileExt;
    let body_end = end.saturating_sub(1).max(start);
    let clock = Pacing::new(start, end, max_rate);
    let mut pos = start;
    while pos < body_end {
        clock.before_write(out)?;
        let n = send_range(&opened.file, out, pos, body_end.min(pos + clock.chunk))?;
        if n == 0 || !opened.unchanged()? {
            return Ok(Sent::Changed(pos - start));
        }
        pos += n;
        upload.sent.store(pos - start, Ordering::Relaxed);
        clock.after_write(pos - start);
    }
    if pos == end {
        return Ok(Sent::Complete(0));
    }
    let mut last = [0u8; 1];
    if opened.file.read_at(&mut last, pos)? == 0 || !opened.unchanged()? {
        return Ok(Sent::Changed(pos - start));
    }
    clock.before_write(out)?;
    (&mut &*out).write_all(&last)?;
    Ok(Sent::Complete(end - start))
}

/// Sends `bytes` (made in memory) with the pacing, deadline and progress of
/// [`send_content`].
fn send_bytes(
    bytes: &[u8],
    out: &TcpStream,
    max_rate: Option<u64>,
    upload: &Upload,
) -> io::Result<Sent> {
    let clock = Pacing::new(0, bytes.len() as u64, max_rate);
    let mut sent = 0;
    for piece in bytes.chunks(clock.chunk as usize) {
        clock.before_write(out)?;
        (&mut &*out).write_all(piece)?;
        sent += piece.len() as u64;
        upload.sent.store(sent, Ordering::Relaxed);
        clock.after_write(sent);
    }
    Ok(Sent::Complete(sent))
}

/// The clock of one upload: its chunk size, its deadline, and the pacing to an upload
/// rate limit.
struct Pacing {
    chunk: u64,
    rate: Option<u64>,
    started: Instant,
    deadline: Instant,
}

impl Pacing {
    /// The clock of an upload of bytes `start..end`.
    fn new(start: u64, end: u64, max_rate: Option<u64>) -> Pacing {
        let rate = max_rate.filter(|&r| r > 0);
        let started = Instant::now();
        let total = end.saturating_sub(start);
        Pacing {
            chunk: if rate.is_some() {
                PACED_CHUNK
            } else {
                UNPACED_CHUNK
            },
            rate,
            started,
            deadline: started + SEND_TIMEOUT + Duration::from_secs(total / MIN_UPLOAD_RATE),
        }
    }

    /// Bounds the next write by what is left before the deadline.
    fn before_write(&self, out: &TcpStream) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "slower than the minimum upload rate",
            ));
        }
        out.set_write_timeout(Some(left.min(SEND_TIMEOUT)))
    }

    /// Waits until `sent` bytes are due at the rate limit, if any.
    fn after_write(&self, sent: u64) {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
}

/// Makes the close of `stream` a reset (RST, not FIN): a plain GET_FILE's end is the
/// close, so a transfer that must fail ends this way and no downloader takes what it
/// got for the whole file.
fn reset_on_close(stream: &TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO)) {
        log::debug!("cannot make the close a reset: {e}");
    }
}

/// Largest count passed to one `sendfile` call; Linux moves at most 0x7ffff000 bytes
/// per call anyway.
#[cfg(target_os = "linux")]
const SENDFILE_MAX: u64 = 1 << 30;

/// Sends some of bytes `start..end` of `file` with one `sendfile(2)` call (the caller
/// loops, checking its deadline between calls): the kernel moves the pages from the
/// page cache to the socket, nothing passes through this process. (On the toolchain
/// this was built with, `std::io::copy` from a `File` to a `TcpStream` was measured
/// doing 8 KiB read/send pairs instead, so the call is made here.) Falls back to a
/// plain copy where the file system does not support `sendfile`. Returns the bytes
/// sent, 0 only when the file ended (it shrank).
#[cfg(target_os = "linux")]
fn send_range(file: &File, out: &TcpStream, start: u64, end: u64) -> io::Result<u64> {
    use rustix::io::Errno;
    loop {
        let count = (end - start).min(SENDFILE_MAX) as usize;
        let mut off = start;
        match rustix::fs::sendfile(out, file, Some(&mut off), count) {
            Ok(n) => return Ok(n as u64),
            Err(Errno::INTR) => continue,
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                return copy_range(file, out, start, end);
            }
            Err(e) => return Err(e.into()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener serving `f` (content `body`) with `options`, and the whole reply
    /// to one plain GET_FILE of it.
    fn plain_reply(options: ServeOptions, body: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(root.join("f"), body).unwrap();
        let files = SharedFiles::new(root);
        files.insert("f", files.resolve("f").unwrap());
        let listener = PeerListener::start(files, options).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, listener.port()));
        let mut s = net::connect(addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET_FILE\0f\0").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        listener.stop();
        reply
    }

    #[test]
    fn the_2025_statement_sends_the_size_string_after_plain_get_files_zero() {
        let y2025 = ServeOptions {
            statement: Statement::Y2025,
            ..ServeOptions::default()
        };
        assert_eq!(plain_reply(y2025, b"hello"), b"\x005\0hello");
        assert_eq!(plain_reply(y2025, b""), b"\x000\0");
        // The same bytes as --get-file-size-header; 2024 has no size.
        let slides = ServeOptions {
            size_header: true,
            ..ServeOptions::default()
        };
        assert_eq!(plain_reply(slides, b"hello"), b"\x005\0hello");
        assert_eq!(plain_reply(ServeOptions::default(), b"hello"), b"\0hello");
    }
}
