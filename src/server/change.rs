//! The registry's state changes, as applied and as journaled: shared by the registry
//! (which applies them) and the journal (which writes and replays them), so that
//! neither imports the other.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::proto::index::Op;

/// A state change, as applied to the registry and as journaled (one JSON line, e.g.
/// `{"REGISTER":{"user":"alice"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum Change {
    Register {
        user: String,
    },
    Unregister {
        user: String,
    },
    Connect {
        user: String,
        ip: IpAddr,
        port: u16,
    },
    Disconnect {
        user: String,
    },
    Publish {
        user: String,
        file: String,
        description: String,
    },
    Delete {
        user: String,
        file: String,
    },
}

impl Change {
    /// The user the change is about (and who performs it).
    pub fn user(&self) -> &str {
        match self {
            Change::Register { user }
            | Change::Unregister { user }
            | Change::Connect { user, .. }
            | Change::Disconnect { user }
            | Change::Publish { user, .. }
            | Change::Delete { user, .. } => user,
        }
    }

    /// The operation that makes this change.
    pub fn op(&self) -> Op {
        match self {
            Change::Register { .. } => Op::Register,
            Change::Unregister { .. } => Op::Unregister,
            Change::Connect { .. } => Op::Connect,
            Change::Disconnect { .. } => Op::Disconnect,
            Change::Publish { .. } => Op::Publish,
            Change::Delete { .. } => Op::Delete,
        }
    }

    /// The operation's "any other error" code (PROTOCOL.md section 1), answered
    /// when the change cannot be made durable.
    pub fn other_error(&self) -> u8 {
        self.op().other_error()
    }
}

/// Where a connected user's peer listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerAddr {
    pub ip: IpAddr,
    pub port: u16,
}
