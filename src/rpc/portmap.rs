//! A portmapper client: PMAP version 2 (RFC 1833 section 3) SET, UNSET and
//! GETPORT, as `svc_register`/`svc_unregister`/`clnt_create` use them.
//!
//! Owns: the PMAP mapping encoding and the few calls peerdex needs, each bounded in
//! time. SET and UNSET go over UDP to the local portmapper (rpcbind accepts them
//! only from the local machine); GETPORT goes over TCP to any host. Does not own:
//! what is registered or when (`logger`, `shipper`).

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use crate::rpc::message::{self as rpc, ReplyError};
use crate::rpc::xdr::{self, Reader};

/// The portmapper's program number and well-known port.
pub const PMAP_PROGRAM: u32 = 100_000;
pub const PMAP_VERSION: u32 = 2;
pub const PMAP_PORT: u16 = 111;
const PMAPPROC_SET: u32 = 1;
const PMAPPROC_UNSET: u32 = 2;
const PMAPPROC_GETPORT: u32 = 3;

/// `IPPROTO_TCP` and `IPPROTO_UDP`, as the mapping carries them.
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

/// How long one portmapper exchange may take. The portmapper is local or on the
/// LAN and answers at once; a missing one must not hold up the caller for long.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(700);

/// UDP attempts per call (a lost datagram is retried, as clnt_udp does).
const UDP_ATTEMPTS: usize = 2;

/// Why a portmapper call failed.
#[derive(Debug, thiserror::Error)]
pub enum PmapError {
    /// No answer (nothing listening, or no reply in time).
    #[error("portmapper: no answer: {0}")]
    Unreachable(#[source] std::io::Error),
    /// The host name did not resolve.
    #[error("portmapper: cannot resolve host {0}")]
    Resolve(String),
    /// The portmapper answered with an RPC error.
    #[error("portmapper: {0}")]
    Rpc(#[source] ReplyError),
    /// The answer did not decode.
    #[error("portmapper: undecodable answer")]
    BadReply,
}

/// A PMAP `mapping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub program: u32,
    pub version: u32,
    pub protocol: u32,
    pub port: u32,
}

impl Mapping {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        xdr::put_u32(&mut out, self.program);
        xdr::put_u32(&mut out, self.version);
        xdr::put_u32(&mut out, self.protocol);
        xdr::put_u32(&mut out, self.port);
        out
    }
}

/// The local portmapper, 127.0.0.1:111.
pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PMAP_PORT))
}

/// PMAPPROC_SET on the portmapper at `pmap` (UDP). Ok(false): it refused (the
/// mapping is taken by another port).
pub fn set(pmap: SocketAddr, m: Mapping) -> Result<bool, PmapError> {
    decode_bool(&call_udp(pmap, PMAPPROC_SET, &m.encode())?)
}

/// PMAPPROC_UNSET of (program, version) for every protocol (UDP).
pub fn unset(pmap: SocketAddr, program: u32, version: u32) -> Result<bool, PmapError> {
    let m = Mapping {
        program,
        version,
        protocol: 0,
        port: 0,
    };
    decode_bool(&call_udp(pmap, PMAPPROC_UNSET, &m.encode())?)
}

/// PMAPPROC_GETPORT over TCP on `host`'s portmapper; `Ok(None)` when the program
/// is not registered there.
pub fn getport(
    host: &str,
    program: u32,
    version: u32,
    protocol: u32,
) -> Result<Option<u16>, PmapError> {
    let addr = (host, PMAP_PORT)
        .to_socket_addrs()
        .map_err(|_| PmapError::Resolve(host.to_owned()))?
        .next()
        .ok_or_else(|| PmapError::Resolve(host.to_owned()))?;
    let asked = getport_args(program, version, protocol);
    decode_port(&call_tcp(addr, PMAPPROC_GETPORT, &asked)?)
}

/// PMAPPROC_GETPORT on the portmapper at `pmap` (UDP, like `set` and `unset`);
/// `Ok(None)` when the program is not registered there.
pub fn getport_at(
    pmap: SocketAddr,
    program: u32,
    version: u32,
    protocol: u32,
) -> Result<Option<u16>, PmapError> {
    let asked = getport_args(program, version, protocol);
    decode_port(&call_udp(pmap, PMAPPROC_GETPORT, &asked)?)
}

/// The argument of PMAPPROC_GETPORT: the mapping asked about, port 0.
fn getport_args(program: u32, version: u32, protocol: u32) -> Vec<u8> {
    Mapping {
        program,
        version,
        protocol,
        port: 0,
    }
    .encode()
}

/// Whether the RPC server at `addr` answers a NULL call (procedure 0) of `program`
/// `version` over TCP: a live server, not a stale registration.
pub fn answers_null(addr: SocketAddr, program: u32, version: u32) -> bool {
    call_tcp_to(addr, program, version, 0, &[]).is_ok()
}

fn decode_port(result: &[u8]) -> Result<Option<u16>, PmapError> {
    let mut r = Reader::new(result);
    let port = r.u32("port").map_err(|_| PmapError::BadReply)?;
    match u16::try_from(port) {
        Ok(0) => Ok(None),
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(PmapError::BadReply),
    }
}

fn decode_bool(result: &[u8]) -> Result<bool, PmapError> {
    let mut r = Reader::new(result);
    let v = r.u32("bool").map_err(|_| PmapError::BadReply)?;
    Ok(v != 0)
}

/// A fresh transaction id per call, so a late answer to an earlier call is not
/// taken for this one.
fn next_xid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static XID: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(0x9e37_79b9);
    base.wrapping_add(XID.fetch_add(1, Ordering::Relaxed))
}

fn call_udp(pmap: SocketAddr, procedure: u32, args: &[u8]) -> Result<Vec<u8>, PmapError> {
    let bind: SocketAddr = if pmap.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).map_err(PmapError::Unreachable)?;
    sock.connect(pmap).map_err(PmapError::Unreachable)?;
    sock.set_read_timeout(Some(CALL_TIMEOUT / UDP_ATTEMPTS as u32))
        .map_err(PmapError::Unreachable)?;
    let xid = next_xid();
    let mut call = Vec::with_capacity(64);
    rpc::put_call(&mut call, xid, PMAP_PROGRAM, PMAP_VERSION, procedure, args);
    let datagram = &call[4..]; // no record mark over UDP
    let mut buf = vec![0u8; 1024];
    let mut last_err = None;
    for _ in 0..UDP_ATTEMPTS {
        if let Err(e) = sock.send(datagram) {
            last_err = Some(e);
            continue;
        }
        // Read until our xid arrives or the timeout strikes.
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let (got, result) = rpc::parse_reply(&buf[..n]);
                    if got != Some(xid) {
                        continue;
                    }
                    return result.map(<[u8]>::to_vec).map_err(PmapError::Rpc);
                }
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
    }
    Err(PmapError::Unreachable(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply")
    })))
}

fn call_tcp(addr: SocketAddr, procedure: u32, args: &[u8]) -> Result<Vec<u8>, PmapError> {
    call_tcp_to(addr, PMAP_PROGRAM, PMAP_VERSION, procedure, args)
}

/// One call over TCP (connect and reply each within [`CALL_TIMEOUT`]).
fn call_tcp_to(
    addr: SocketAddr,
    program: u32,
    version: u32,
    procedure: u32,
    args: &[u8],
) -> Result<Vec<u8>, PmapError> {
    let mut stream: TcpStream =
        crate::net::connect(addr, CALL_TIMEOUT).map_err(PmapError::Unreachable)?;
    let xid = next_xid();
    let mut call = Vec::with_capacity(64);
    rpc::put_call(&mut call, xid, program, version, procedure, args);
    stream.write_all(&call).map_err(PmapError::Unreachable)?;
    let mut record = Vec::new();
    rpc::read_record(&mut stream, &mut record).map_err(|e| match e {
        rpc::RecordError::Io(io) => PmapError::Unreachable(io),
        _ => PmapError::BadReply,
    })?;
    match rpc::parse_reply(&record) {
        (Some(got), Ok(result)) if got == xid => Ok(result.to_vec()),
        (_, Err(e)) => Err(PmapError::Rpc(e)),
        _ => Err(PmapError::BadReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_four_unsigned_ints() {
        let m = Mapping {
            program: 0x2000_0001,
            version: 2,
            protocol: IPPROTO_UDP,
            port: 4242,
        };
        assert_eq!(
            m.encode(),
            [0x20, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 17, 0, 0, 0x10, 0x92]
        );
    }

    #[test]
    fn no_portmapper_is_reported_not_hung() {
        // A UDP port with nothing behind it: ICMP unreachable or timeout.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        drop(s);
        let r = set(
            addr,
            Mapping {
                program: 1,
                version: 1,
                protocol: IPPROTO_TCP,
                port: 1,
            },
        );
        assert!(matches!(r, Err(PmapError::Unreachable(_))), "{r:?}");
    }
}
