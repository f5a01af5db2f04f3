//! What the system tests ask a portmapper, written here from RFC 5531 (ONC RPC
//! messages, record marking) and RFC 1833 (PMAPPROC_GETPORT, version 2) rather than
//! with peerdex's own client, so a test does not lean on the code it tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const PMAP_PROG: u32 = 100_000;
const PMAP_VERS: u32 = 2;
const PMAPPROC_GETPORT: u32 = 3;
const IPPROTO_TCP: u32 = 6;
/// Longest a question to the portmapper may take (connect, and each read).
const TIMEOUT: Duration = Duration::from_secs(3);

/// The TCP port the portmapper on 127.0.0.1:111 gives for `prog` version `vers`:
/// `None` when nothing answers there or the answer is not a port, `Some(0)` when
/// the program is not registered.
pub fn getport(prog: u32, vers: u32) -> Option<u32> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 111));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    // xid, CALL, rpcvers 2, program, version, procedure, AUTH_NONE credentials and
    // verifier, then the mapping asked about (prog, vers, prot, port).
    let words = [
        0x7065_6572,
        0,
        2,
        PMAP_PROG,
        PMAP_VERS,
        PMAPPROC_GETPORT,
        0,
        0,
        0,
        0,
        prog,
        vers,
        IPPROTO_TCP,
        0,
    ];
    let mut call = Vec::with_capacity(4 + 4 * words.len());
    call.extend_from_slice(&(0x8000_0000 | (4 * words.len() as u32)).to_be_bytes());
    for w in words {
        call.extend_from_slice(&w.to_be_bytes());
    }
    s.write_all(&call).ok()?;
    let mark = read_u32(&mut s)?;
    let mut reply = vec![0; (mark & 0x7fff_ffff).min(1024) as usize];
    s.read_exact(&mut reply).ok()?;
    let word = |i: usize| {
        let b = reply.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    };
    // xid, REPLY, MSG_ACCEPTED, verifier (flavor, length, body), SUCCESS, port.
    if word(0)? != words[0] || word(1)? != 1 || word(2)? != 0 {
        return None;
    }
    let after_verf = 5 + (word(4)? as usize).div_ceil(4);
    if word(after_verf)? != 0 {
        return None;
    }
    word(after_verf + 1)
}

fn read_u32(s: &mut TcpStream) -> Option<u32> {
    let mut b = [0; 4];
    s.read_exact(&mut b).ok()?;
    Some(u32::from_be_bytes(b))
}

/// Whether a portmapper answers on 127.0.0.1:111 (it maps itself to 111).
pub fn running() -> bool {
    getport(PMAP_PROG, PMAP_VERS) == Some(111)
}
