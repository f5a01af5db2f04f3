//! What each peer speaks: the discovery request (docs/PROTOCOL.md, "Discovery") and
//! its answers, remembered for the session.
//!
//! A downloader sends GET_FILE_RANGE (GET_FILE_HASHES, GET_FILE_BLOCK) only to a
//! peer that said it speaks it. The
//! question is a GET_FILE of a name no file can have ([`PROBE_NAME`]): a statement
//! peer answers 1 (FILE NOT EXIST) as for any missing file, a peerdex peer answers 0
//! and its extension marker. A statement peer therefore never sees an operation it
//! may not know, and one whose listener dies after an unknown request keeps serving.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;

use crate::net::{self, DeadlineReader};
use crate::proto::peer::{Extensions, PROBE_NAME, encode_probe, read_probe_answer};
use crate::proto::wire::FieldReader;

/// Peers remembered at most; past it the table starts again empty (a session talks
/// to a lab's worth of peers, far fewer).
const MAX_KNOWN: usize = 4096;

/// What a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Speaks {
    /// GET_FILE_RANGE, GET_FILE_HASHES and GET_FILE_BLOCK (a peerdex peer).
    Blocks,
    /// GET_FILE_RANGE (a peerdex peer from before the hash trees): size, version,
    /// resume.
    Range,
    /// The statement's GET_FILE alone.
    Plain,
}

/// What the discovery found, when it could not find out.
#[derive(Debug)]
pub(super) enum Unknown {
    /// The peer could not be reached.
    Connect(std::io::Error),
}

/// The answers of the peers asked so far in this session, by address.
#[derive(Default)]
pub(super) struct Known {
    peers: Mutex<HashMap<SocketAddr, Speaks>>,
}

impl Known {
    /// What `addr` speaks: remembered, or asked now (within `connect` and `answer`).
    /// A definite answer is remembered; a peer that did not answer (closed, reset or
    /// silent) is taken to speak GET_FILE alone this time and asked again next time.
    pub(super) fn speaks(
        &self,
        addr: SocketAddr,
        connect: Duration,
        answer: Duration,
    ) -> Result<Speaks, Unknown> {
        if let Some(&s) = self.peers.lock().get(&addr) {
            return Ok(s);
        }
        let Some(speaks) = ask(addr, connect, answer)? else {
            return Ok(Speaks::Plain);
        };
        let mut peers = self.peers.lock();
        if peers.len() >= MAX_KNOWN {
            peers.clear();
        }
        peers.insert(addr, speaks);
        Ok(speaks)
    }

    /// Forgets what `addr` said (it answered GET_FILE_RANGE with nonsense: it may be
    /// another program now).
    pub(super) fn forget(&self, addr: SocketAddr) {
        self.peers.lock().remove(&addr);
    }
}

/// Sends the discovery request; `None` when no answer arrived.
fn ask(addr: SocketAddr, connect: Duration, answer: Duration) -> Result<Option<Speaks>, Unknown> {
    let stream = net::connect(addr, connect).map_err(Unknown::Connect)?;
    if let Err(e) = stream
        .set_write_timeout(Some(answer))
        .and_then(|()| (&stream).write_all(&encode_probe()))
    {
        log::info!("{addr}: discovery not sent: {e}");
        return Ok(None);
    }
    let mut reader = FieldReader::new(DeadlineReader::new(&stream, answer));
    match read_probe_answer(&mut reader) {
        Ok(Extensions::Blocks) => Ok(Some(Speaks::Blocks)),
        Ok(Extensions::Range) => Ok(Some(Speaks::Range)),
        Ok(Extensions::None) => {
            log::info!(
                "{addr}: GET_FILE {PROBE_NAME} not answered by a peerdex peer: GET_FILE only"
            );
            Ok(Some(Speaks::Plain))
        }
        Err(e) => {
            log::info!("{addr}: no answer to the discovery ({e}): GET_FILE only this time");
            Ok(None)
        }
    }
}
