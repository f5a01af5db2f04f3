//! Shared TCP plumbing for every peerdex listener: binding, a bounded accept loop, the
//! connection cap, timeouts, and clean shutdown on SIGINT/SIGTERM.
//!
//! Owns: how connections are accepted and handed to a thread, how many may be open
//! at once and what happens past that, how a blocked `accept` is woken for shutdown.
//! Does not own: what is spoken on a connection (each service module decides).
//!
//! The cap works like this: each accepted connection holds a [`Permit`]. A connection
//! that has not yet delivered its request is *idle* and may be evicted: when all
//! permits are taken and a new connection arrives, the oldest idle connection is shut
//! down to make room. A flood of silent connections therefore cannot lock out clients
//! that send their request at once; it only evicts itself. Only a connection open for
//! [`EVICT_GRACE`] with no unread byte waiting is evicted: a prompt client whose
//! request sits in the socket buffer, not yet read by its (busy) thread, keeps its
//! slot; and once its handler has marked it busy ([`Permit::busy`] returns whether it
//! was still there) it is never evicted, so the server never acts on a request whose
//! connection it shut down.
//!
//! Deadlines: [`DeadlineReader`] bounds a whole request in time, not each read (the
//! read timeout is set to the time left before every read), and [`write_all_by`]
//! bounds a whole reply the same way.

pub(crate) mod console;
mod deadline;
pub(crate) mod http;

pub(crate) use deadline::{DeadlineReader, is_timeout};

use std::collections::VecDeque;
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown as SockShutdown, SocketAddr, TcpListener, TcpStream,
};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Listen backlog. Larger than std's 128 so a burst of connections waits in the
/// kernel instead of having its SYNs dropped and retried a second later.
const BACKLOG: i32 = 1024;

/// Stack of a connection thread. Handlers keep their buffers on the heap; 256 KiB is
/// ample and keeps 1024 threads at a fraction of the default 2 MiB each.
pub const CONNECTION_STACK: usize = 256 * 1024;

/// How long the accept loop waits after an `accept` error (EMFILE, ENFILE,
/// ECONNABORTED) before trying again: long enough not to spin, short enough to
/// recover at once when descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// How long a connection may stay silent before the cap may evict it: a round trip
/// on any lab network, so a client that sends its request right after connecting is
/// not evicted before its first bytes arrive (bytes that arrived are protected by the
/// unread-bytes check, however late its thread runs). Short, because a flood of silent
/// connections drains at most a cap's worth per grace period.
pub(crate) const EVICT_GRACE: Duration = Duration::from_millis(250);

/// Writes all of `buf` before `deadline`: each write may block at most `per_write`
/// (no progress for that long ends it) and never past the deadline. A passed
/// deadline is `TimedOut`.
pub(crate) fn write_all_by(
    stream: &TcpStream,
    mut buf: &[u8],
    per_write: Duration,
    deadline: Instant,
) -> io::Result<()> {
    use io::Write;
    let mut s = stream;
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left.min(per_write)))?;
        match s.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether bytes sent by the peer wait unread in `stream`'s receive buffer (or the
/// peer closed it): such a connection has delivered something its thread has not
/// read yet, and is not evicted.
fn has_unread(stream: &TcpStream) -> bool {
    use rustix::net::RecvFlags;
    let mut byte = [0u8; 1];
    matches!(
        rustix::net::recv(stream, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Ok((n, _)) if n > 0
    )
}

/// Parses a timeout option: seconds, more than 0 and at most an hour (clap value
/// parser shared by every service's `--timeout`).
pub(crate) fn parse_seconds(s: &str) -> Result<f64, String> {
    parse_seconds_where(s, |v| v > 0.0 && v <= 3600.0, "between 0 and 3600")
}

/// Parses a number of seconds that `ok` accepts (a clap value parser's body);
/// `range` says which in the error.
pub(crate) fn parse_seconds_where(
    s: &str,
    ok: impl Fn(f64) -> bool,
    range: &str,
) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if ok(v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds {range}")),
    }
}

/// Binds a TCP listener with `SO_REUSEADDR` and a large backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // Let "::" accept IPv4 too where the system allows it; ignore if not.
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Connects with a timeout and sets read and write timeouts on the stream.
pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    set_timeouts(&stream, timeout)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Sets both read and write timeouts.
pub fn set_timeouts(stream: &TcpStream, timeout: Duration) -> io::Result<()> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))
}

/// The address to connect to in order to reach a listener bound to `addr`: the
/// loopback address of the same family when it is bound to all interfaces.
pub(crate) fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Why a bind failed, for a one-line start error: the port taken, with `hint` (what
/// to do about it), or the system's reason.
pub(crate) fn bind_reason(source: &io::Error, hint: &str) -> String {
    if source.kind() == io::ErrorKind::AddrInUse {
        format!("the port is already in use ({hint})")
    } else {
        source.to_string()
    }
}

/// The address to show for a listener bound to `ip`: `ip` itself, or
/// [`primary_ip`] when it is bound to all interfaces.
pub(crate) fn advertised(ip: IpAddr) -> IpAddr {
    if ip.is_unspecified() {
        primary_ip()
    } else {
        ip
    }
}

/// The address other hosts most likely use to reach this one: the source address
/// of the default route (found by connecting a UDP socket, which sends nothing);
/// without a default route (an isolated lab network), the first non-loopback IPv4
/// interface address; loopback when there is none.
fn primary_ip() -> IpAddr {
    let via_route = || -> io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        // TEST-NET-2 (RFC 5737): never routed, never sent to; only the route lookup
        // happens.
        s.connect((Ipv4Addr::new(198, 51, 100, 1), 9))?;
        Ok(s.local_addr()?.ip())
    };
    let via_interfaces = || {
        if_addrs::get_if_addrs()
            .ok()?
            .into_iter()
            .map(|i| i.ip())
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    };
    via_route()
        .ok()
        .or_else(via_interfaces)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A shared stop flag, raised by a signal or by code, that also wakes the accept
/// loops blocked on their listeners.
#[derive(Clone, Default)]
pub(crate) struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    flag: AtomicBool,
    listeners: Mutex<Vec<SocketAddr>>,
    cond: Condvar,
}

impl Shutdown {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Raises the flag on SIGINT and SIGTERM (from a dedicated thread).
    pub(crate) fn on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let this = self.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    log::info!("signal {sig}: shutting down");
                    this.trigger();
                }
            })?;
        Ok(())
    }

    /// Registers a listener so that [`Shutdown::trigger`] wakes its accept loop.
    pub(crate) fn watch(&self, listener: &TcpListener) -> io::Result<()> {
        self.inner
            .listeners
            .lock()
            .push(reachable(listener.local_addr()?));
        Ok(())
    }

    /// Raises the flag and wakes every watched accept loop.
    pub(crate) fn trigger(&self) {
        if self.inner.flag.swap(true, Ordering::SeqCst) {
            return;
        }
        let listeners = self.inner.listeners.lock().clone();
        for addr in listeners {
            // A connection to ourselves makes the blocked accept return.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        }
        let _guard = self.inner.listeners.lock();
        self.inner.cond.notify_all();
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Blocks until the flag is raised or `limit` has passed; returns whether it is
    /// raised.
    pub(crate) fn wait_timeout(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut guard = self.inner.listeners.lock();
        while !self.is_triggered() {
            if self.inner.cond.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.is_triggered()
    }
}

/// Caps the number of open connections; see the module comment.
///
/// Connection threads never take a lock shared with the accept thread: a permit is
/// an atomic count plus a per-connection slot. Only the accept thread keeps the
/// arrival-order list that eviction walks (a measured hot spot when connection
/// threads shared one mutex with it: spinning and `sched_yield` on every request).
pub(crate) struct ConnLimiter {
    cap: usize,
    active: AtomicUsize,
    /// Threads waiting in [`ConnLimiter::acquire`] or [`ConnLimiter::wait_empty`];
    /// a released permit notifies `freed` only when there are some.
    waiters: AtomicUsize,
    /// Connections in arrival order (weak: a finished connection frees its slot at
    /// once); pruned as it is walked.
    arrivals: Mutex<VecDeque<Weak<Slot>>>,
    sleep: Mutex<()>,
    freed: Condvar,
    /// Silent connections evicted to make room (for `/metrics`).
    evictions: AtomicU64,
}

/// One connection as the limiter sees it: a handle to shut it down while it is
/// still waiting for its request; `None` once it is busy.
struct Slot {
    idle: Mutex<Option<TcpStream>>,
    arrived: Instant,
    /// Set (under `idle`'s lock) when the cap shut the connection down.
    evicted: AtomicBool,
}

/// What eviction found at the front of the arrival list.
enum Front {
    /// Finished, busy, or evicted: drop it from the list.
    Gone,
    /// Silent for the grace period: evicted now.
    Evicted,
    /// Within its grace period (and so is everything after it): evict nothing yet.
    Young,
    /// Unread bytes wait for its thread: leave it to its handler and its deadline.
    Delivering,
}

impl Slot {
    /// Evicts this connection if it is idle, silent and past its grace period.
    fn try_evict(&self, now: Instant) -> Front {
        let mut idle = self.idle.lock();
        let Some(stream) = idle.as_ref() else {
            return Front::Gone;
        };
        if now.duration_since(self.arrived) < EVICT_GRACE {
            return Front::Young;
        }
        if has_unread(stream) {
            return Front::Delivering;
        }
        let _ = stream.shutdown(SockShutdown::Both);
        *idle = None;
        self.evicted.store(true, Ordering::SeqCst);
        Front::Evicted
    }

    fn is_idle(&self) -> bool {
        self.idle.lock().is_some()
    }

    /// Shuts the connection down if it is still idle; returns whether it was.
    fn evict(&self) -> bool {
        match self.idle.lock().take() {
            Some(stream) => {
                let _ = stream.shutdown(SockShutdown::Both);
                self.evicted.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

impl ConnLimiter {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(ConnLimiter {
            cap: cap.max(1),
            active: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            arrivals: Mutex::new(VecDeque::new()),
            sleep: Mutex::new(()),
            freed: Condvar::new(),
            evictions: AtomicU64::new(0),
        })
    }

    /// Takes a slot for `stream`, evicting the oldest idle connection when all are
    /// taken. Returns `None` only when `shutdown` is raised while waiting. Called by
    /// one accept loop per limiter.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        stream: &TcpStream,
        shutdown: &Shutdown,
    ) -> Option<Permit> {
        let mut evicted = false;
        loop {
            let n = self.active.load(Ordering::SeqCst);
            if n < self.cap {
                if self
                    .active
                    .compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            if shutdown.is_triggered() {
                return None;
            }
            if !evicted {
                evicted = self.evict_oldest_idle();
            }
            if !self.wait_until(Instant::now() + Duration::from_millis(100), |active| {
                active < self.cap
            }) {
                // Evict again if the victim has not gone within the pause.
                evicted = false;
            }
        }
        let slot = Arc::new(Slot {
            idle: Mutex::new(stream.try_clone().ok()),
            arrived: Instant::now(),
            evicted: AtomicBool::new(false),
        });
        let mut arrivals = self.arrivals.lock();
        arrivals.push_back(Arc::downgrade(&slot));
        // Keep the list near the number of idle connections: drop finished and busy
        // ones from the front always, from anywhere once it is twice the cap.
        while arrivals
            .front()
            .is_some_and(|w| w.upgrade().is_none_or(|s| !s.is_idle()))
        {
            arrivals.pop_front();
        }
        if arrivals.len() > 2 * self.cap {
            arrivals.retain(|w| w.upgrade().is_some_and(|s| s.is_idle()));
        }
        drop(arrivals);
        Some(Permit {
            limiter: Arc::clone(self),
            slot,
        })
    }

    /// Shuts down the oldest connection still waiting for its request and silent
    /// past [`EVICT_GRACE`], if any.
    fn evict_oldest_idle(&self) -> bool {
        let now = Instant::now();
        let mut arrivals = self.arrivals.lock();
        let mut i = 0;
        while i < arrivals.len() {
            let front = match arrivals[i].upgrade() {
                Some(slot) => slot.try_evict(now),
                None => Front::Gone,
            };
            match front {
                Front::Gone => {
                    arrivals.remove(i);
                }
                Front::Evicted => {
                    arrivals.remove(i);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    log::debug!(
                        "connection cap {} reached: evicted the oldest silent connection",
                        self.cap
                    );
                    return true;
                }
                Front::Young => return false,
                Front::Delivering => i += 1,
            }
        }
        false
    }

    /// Waits until `ok(active)` holds or `deadline` passes; returns whether it holds.
    fn wait_until(&self, deadline: Instant, ok: impl Fn(usize) -> bool) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.sleep.lock();
        let mut holds = ok(self.active.load(Ordering::SeqCst));
        while !holds {
            let timed_out = self.freed.wait_until(&mut guard, deadline).timed_out();
            holds = ok(self.active.load(Ordering::SeqCst));
            if timed_out {
                break;
            }
        }
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        holds
    }

    /// Open connections right now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// The most connections open at once.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Silent connections evicted to make room so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Shuts down every idle connection (at server shutdown).
    pub(crate) fn close_idle(&self) {
        let arrivals = std::mem::take(&mut *self.arrivals.lock());
        for slot in arrivals.iter().filter_map(Weak::upgrade) {
            slot.evict();
        }
    }

    /// Waits until no connection is open, at most `limit`. Returns true if none is.
    pub(crate) fn wait_empty(&self, limit: Duration) -> bool {
        self.wait_until(Instant::now() + limit, |active| active == 0)
    }
}

/// A connection's slot; released on drop.
pub(crate) struct Permit {
    limiter: Arc<ConnLimiter>,
    slot: Arc<Slot>,
}

impl Permit {
    /// The request has arrived: this connection can no longer be evicted. Returns
    /// false when the cap evicted it first (its socket is shut down): the caller must
    /// then not act on the request.
    pub(crate) fn busy(&self) -> bool {
        let mut idle = self.slot.idle.lock();
        idle.take();
        !self.slot.evicted.load(Ordering::SeqCst)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.slot.idle.lock().take();
        // SeqCst with `wait_until`: either the waiter sees the new count, or this
        // sees the waiter and wakes it (under the lock it sleeps with).
        self.limiter.active.fetch_sub(1, Ordering::SeqCst);
        if self.limiter.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.limiter.sleep.lock();
            self.limiter.freed.notify_all();
        }
    }
}

/// Accepts connections until `shutdown` is raised, running `handle` for each on its
/// own thread, with at most the limiter's cap open at once. `accept` errors are
/// logged and retried after a short pause: they concern one connection, not the
/// listener.
pub(crate) fn accept_loop<F>(
    name: &str,
    listener: &TcpListener,
    limiter: &Arc<ConnLimiter>,
    shutdown: &Shutdown,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Permit) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    while !shutdown.is_triggered() {
        let (stream, peer) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) => {
                if shutdown.is_triggered() {
                    break;
                }
                log::warn!("{name}: accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        if shutdown.is_triggered() {
            break;
        }
        let Some(permit) = limiter.acquire(&stream, shutdown) else {
            break;
        };
        let handle = Arc::clone(&handle);
        let spawned = spawn_connection_thread(move || handle(stream, peer, permit));
        if let Err(e) = spawned {
            // The closure (stream and permit) is dropped: the connection closes and
            // its slot is released.
            log::warn!("{name}: cannot start a connection thread: {e}");
            thread::sleep(ACCEPT_BACKOFF);
        }
    }
}

/// A bound listener and its connection cap: the one way a peerdex service accepts
/// connections. [`Listener::serve`] is its whole life: it wakes on `shutdown` (see
/// [`Shutdown::watch`]), runs [`accept_loop`] until it is raised, then closes the
/// connections still waiting for their request and waits at most `drain` for the
/// others to finish.
pub(crate) struct Listener {
    name: &'static str,
    listener: TcpListener,
    limiter: Arc<ConnLimiter>,
}

impl Listener {
    /// Binds `addr` (see [`bind`]) with at most `cap` connections open at once.
    pub(crate) fn bind(name: &'static str, addr: SocketAddr, cap: usize) -> io::Result<Listener> {
        Ok(Listener::from_std(name, bind(addr)?, cap))
    }

    /// A listener bound already (the logger binds TCP and UDP on one port number).
    pub(crate) fn from_std(name: &'static str, listener: TcpListener, cap: usize) -> Listener {
        Listener {
            name,
            listener,
            limiter: ConnLimiter::new(cap),
        }
    }

    /// The connection cap, for figures (open connections, evictions).
    pub(crate) fn limiter(&self) -> &Arc<ConnLimiter> {
        &self.limiter
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is raised, running `handle` for each connection on its
    /// own thread, then drains (see the type's comment).
    pub(crate) fn serve<F>(self, shutdown: &Shutdown, drain: Duration, handle: F)
    where
        F: Fn(TcpStream, SocketAddr, Permit) + Send + Sync + 'static,
    {
        let name = self.name;
        if let Err(e) = shutdown.watch(&self.listener) {
            log::warn!("{name}: shutdown will not wake the accept loop: {e}");
        }
        accept_loop(name, &self.listener, &self.limiter, shutdown, handle);
        self.limiter.close_idle();
        if !self.limiter.wait_empty(drain) {
            log::warn!(
                "{name}: {} connections still open at shutdown",
                self.limiter.active()
            );
        }
    }
}

/// The name of connection threads (at most 15 bytes and the NUL, as Linux allows).
const CONNECTION_THREAD_NAME: &std::ffi::CStr = c"peerdex-conn";

/// Starts `f` on a new detached thread with a [`CONNECTION_STACK`] stack.
///
/// A connection thread lives for one short request, so its start-up cost is paid on
/// every connection. `std::thread` adds, for each thread, an alternate signal stack
/// (mmap, mprotect and sigaltstack at start, sigaltstack and munmap at exit) used
/// only to print a message when the thread overflows its stack; those calls take
/// the process-wide memory-map lock for writing, and with thousands of connections
/// a second that lock was where connection threads spent most of their time (the
/// README's Performance section has the profile). A thread started here has glibc's
/// guard page below its stack, so an overflow still stops the process (SIGSEGV),
/// only without std's message; connection handlers do not recurse.
pub fn spawn_connection_thread<F>(f: F) -> io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    extern "C" fn start<F: FnOnce()>(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Box<F>` leaked by `spawn_connection_thread`, handed
        // to exactly this one thread.
        let f = unsafe { Box::from_raw(arg.cast::<F>()) };
        // A panic must not unwind into C; the panic hook has already reported it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(f));
    // SAFETY: plain pthread calls on a local attribute object; on success the new
    // thread owns `arg`, on failure it is reclaimed here.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let rc = libc::pthread_attr_init(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut rc = libc::pthread_attr_setstacksize(&mut attr, CONNECTION_STACK);
        if rc == 0 {
            rc = libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        }
        if rc == 0 {
            let mut tid: libc::pthread_t = std::mem::zeroed();
            rc = libc::pthread_create(&mut tid, &attr, start::<F>, arg.cast());
            if rc == 0 {
                // The name shows in top -H, ps -L and debuggers; failing to set it
                // changes nothing else.
                libc::pthread_setname_np(tid, CONNECTION_THREAD_NAME.as_ptr());
            }
        }
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
