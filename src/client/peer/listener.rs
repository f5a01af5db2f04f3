//! The listener that serves this client's published files to other peers.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::files::SharedFiles;
use crate::net::{self, ConnLimiter, DeadlineReader, Permit, Shutdown};
use crate::proto::index::Statement;
use crate::proto::peer::{
    CODE_OK, CODE_OTHER, PROBE_NAME, PeerRequestError, Request, encode_ok_header,
    encode_probe_answer, encode_range_header, read_request,
};
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

/// Bytes per `sendfile` call when no rate limit is set: the progress of each upload is
/// counted between calls (to find the slowest), and the deadline checked.
const UNPACED_CHUNK: u64 = 1024 * 1024;

/// One upload in progress, as [`Uploads`] sees it.
struct Upload {
    /// A handle to shut the connection down when evicted.
    stream: TcpStream,
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

/// The uploads in progress, at most [`MAX_UPLOADS`]. A new one past that evicts the
/// slowest upload that has run for [`UPLOAD_GRACE`]; stalled downloaders therefore
/// cannot lock legitimate ones out.
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
    /// Enters an upload on `stream`, evicting the slowest if all slots are taken;
    /// `None` when all are taken by uploads still within their grace period.
    fn start(&self, stream: &TcpStream) -> Option<UploadGuard<'_>> {
        let upload = Arc::new(Upload {
            stream: stream.try_clone().ok()?,
            started: Instant::now(),
            sent: AtomicU64::new(0),
        });
        let mut running = self.running.lock();
        if running.len() >= MAX_UPLOADS {
            let now = Instant::now();
            let slowest = running
                .iter()
                .enumerate()
                .filter(|(_, u)| now.duration_since(u.started) >= UPLOAD_GRACE)
                .min_by(|(_, a), (_, b)| a.rate(now).total_cmp(&b.rate(now)))
                .map(|(i, _)| i)?;
            let victim = running.swap_remove(slowest);
            log::info!(
                "{MAX_UPLOADS} uploads running: evicted the slowest ({:.0} bytes/s) for a new request",
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
        let listener = net::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
        let port = listener.local_addr()?.port();
        let shutdown = Shutdown::new();
        shutdown.watch(&listener)?;
        let limiter = ConnLimiter::new(MAX_UPLOADS + REQUEST_ROOM);
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

fn serve(
    listener: &TcpListener,
    limiter: &Arc<ConnLimiter>,
    shutdown: &Shutdown,
    files: Arc<SharedFiles>,
    options: ServeOptions,
) {
    let serving = Arc::new(Serving {
        files,
        uploads: Uploads::default(),
        options,
    });
    net::accept_loop(
        "peer",
        listener,
        limiter,
        shutdown,
        move |stream, peer, permit| serving.serve_one(stream, peer, permit),
    );
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
            // The discovery (docs/PROTOCOL.md): this peer speaks GET_FILE_RANGE.
            log::debug!("peer {peer}: discovery answered");
            let _ = out.write_all(&encode_probe_answer());
            return;
        }
        let opened = match self.files.open(name) {
            Ok(o) => o,
            Err(code) => {
                log::info!("peer {peer}: {op} {name}: code {code}");
                let _ = out.write_all(&[code]);
                return;
            }
        };
        let size = opened.size;
        let (header, start) = match request {
            Request::Get { .. } if self.options.sized_get_file() => (encode_ok_header(size), 0),
            Request::Get { .. } => (vec![CODE_OK], 0),
            Request::Range { offset, .. } if *offset > size => {
                log::info!("peer {peer}: {op} {name}: offset {offset} past the end ({size})");
                let _ = out.write_all(&[CODE_OTHER]);
                return;
            }
            Request::Range { offset, .. } => (encode_range_header(size, &opened.version), *offset),
        };
        let Some(upload) = self.uploads.start(stream) else {
            log::info!("peer {peer}: {op} {name}: all {MAX_UPLOADS} upload slots busy");
            let _ = out.write_all(&[CODE_OTHER]);
            return;
        };
        if let Err(e) = out.write_all(&header) {
            log::info!("peer {peer}: {op} {name}: header not delivered: {e}");
            return;
        }
        let started = Instant::now();
        let max_rate = self.options.max_rate;
        match send_content(opened.file, start, size, out, max_rate, &upload.upload) {
            Ok(sent) if sent == size - start => log::info!(
                "peer {peer}: {op} {name}: sent {sent} bytes from {start} in {:.3} s",
                started.elapsed().as_secs_f64()
            ),
            Ok(sent) => log::warn!(
                "peer {peer}: {op} {name}: file shrank while sending ({sent} of {} bytes)",
                size - start
            ),
            Err(e) => log::info!("peer {peer}: {op} {name}: transfer aborted: {e}"),
        }
    }
}

/// Sends bytes `start..size` of `file` (fewer if it shrank meanwhile), paced to
/// `max_rate` bytes per second when given, counting progress in `upload`. The whole
/// upload must end within [`SEND_TIMEOUT`] plus its length at [`MIN_UPLOAD_RATE`]
/// (`TimedOut` past it); no single write blocks longer than [`SEND_TIMEOUT`].
/// Returns the bytes sent.
fn send_content(
    file: File,
    start: u64,
    size: u64,
    out: &TcpStream,
    max_rate: Option<u64>,
    upload: &Upload,
) -> io::Result<u64> {
    let rate = max_rate.filter(|&r| r > 0);
    let chunk = if rate.is_some() {
        PACED_CHUNK
    } else {
        UNPACED_CHUNK
    };
    let started = Instant::now();
    let total = size.saturating_sub(start);
    let deadline = started + SEND_TIMEOUT + Duration::from_secs(total / MIN_UPLOAD_RATE);
    let mut pos = start;
    while pos < size {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "slower than the minimum upload rate",
            ));
        }
        out.set_write_timeout(Some(left.min(SEND_TIMEOUT)))?;
        let end = size.min(pos + chunk);
        let n = send_range(&file, out, pos, end)?;
        if n == 0 {
            break;
        }
        pos += n;
        upload.sent.store(pos - start, Ordering::Relaxed);
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64((pos - start) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    Ok(pos - start)
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
