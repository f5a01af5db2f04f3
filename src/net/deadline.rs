//! Reading from a socket against the clock: the one reader every network read of
//! peerdex goes through, and the one test of whether an error was a timeout.
//!
//! Two bounds, either or both: a *deadline* for the whole input (a request, a reply
//! header), so a peer trickling one byte at a time cannot keep it open past that
//! instant (a per-read timeout would be reset by every byte); and an *idle* limit for
//! each single read (the content of a long download, which may take as long as it
//! needs but must keep moving). A reader with neither would block for ever, so the
//! constructor always sets the deadline.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Whether `e` is a read or write timeout. On Unix a socket timeout surfaces as
/// `WouldBlock`, elsewhere as `TimedOut`, and a passed deadline of a
/// [`DeadlineReader`] as `TimedOut`: all mean the same thing to us.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A reader over a socket whose reads end at a deadline, or after an idle limit per
/// read, whichever comes first. Before each read the socket's read timeout is set to
/// what is left; a passed deadline reads as `TimedOut` without touching the socket.
pub(crate) struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: Option<Instant>,
    idle: Option<Duration>,
}

impl<'a> DeadlineReader<'a> {
    /// A reader whose whole input must arrive within `limit` from now.
    pub(crate) fn new(stream: &'a TcpStream, limit: Duration) -> Self {
        DeadlineReader {
            stream,
            deadline: Some(Instant::now() + limit),
            idle: None,
        }
    }

    /// A reader whose whole input must arrive before `deadline`.
    pub(crate) fn until(stream: &'a TcpStream, deadline: Instant) -> Self {
        DeadlineReader {
            stream,
            deadline: Some(deadline),
            idle: None,
        }
    }

    /// Also bound each read by `idle` (a reader made with [`DeadlineReader::new`]).
    pub(crate) fn with_idle(mut self, idle: Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// Starts a new input on the same stream: it must arrive within `limit` from now
    /// (the next record of a connection that carries many).
    pub(crate) fn restart(&mut self, limit: Duration) {
        self.deadline = Some(Instant::now() + limit);
    }

    /// How long the next read may wait: `None` once the deadline has passed.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let left = match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(now);
                if left.is_zero() {
                    return None;
                }
                Some(left)
            }
            None => None,
        };
        match (left, self.idle) {
            (Some(l), Some(i)) => Some(l.min(i)),
            (Some(l), None) => Some(l),
            (None, Some(i)) => Some(i),
            // Unreachable through the constructors; never block for ever.
            (None, None) => Some(Duration::from_secs(60)),
        }
    }
}

impl io::Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(wait) = self.wait(Instant::now()) else {
            return Err(io::ErrorKind::TimedOut.into());
        };
        self.stream.set_read_timeout(Some(wait))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn the_wait_is_the_smaller_of_the_deadline_and_the_idle_limit() {
        let (a, _b) = pair();
        let r = DeadlineReader::new(&a, Duration::from_secs(2)).with_idle(Duration::from_secs(5));
        let now = Instant::now();
        assert!(r.wait(now).unwrap() <= Duration::from_secs(2));
        let r = DeadlineReader::new(&a, Duration::from_secs(9)).with_idle(Duration::from_secs(5));
        assert_eq!(r.wait(now), Some(Duration::from_secs(5)));
        let r = DeadlineReader::new(&a, Duration::ZERO);
        assert_eq!(r.wait(Instant::now()), None);
    }

    #[test]
    fn a_passed_deadline_reads_as_a_timeout_even_with_bytes_waiting() {
        let (a, mut b) = pair();
        b.write_all(b"x").unwrap();
        let mut r = DeadlineReader::new(&a, Duration::ZERO);
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert!(is_timeout(&e), "{e:?}");
    }

    #[test]
    fn bytes_that_arrive_in_time_are_read() {
        let (a, mut b) = pair();
        b.write_all(b"hello").unwrap();
        let mut r =
            DeadlineReader::new(&a, Duration::from_secs(30)).with_idle(Duration::from_secs(30));
        let mut buf = [0u8; 5];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn a_silent_peer_ends_the_read_with_a_timeout() {
        let (a, _b) = pair();
        let mut r =
            DeadlineReader::new(&a, Duration::from_secs(30)).with_idle(Duration::from_millis(50));
        let e = r.read(&mut [0u8; 4]).unwrap_err();
        assert!(is_timeout(&e), "{e:?}");
    }
}
