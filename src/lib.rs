//! peerdex: a Napster-style peer-to-peer file sharing service.
//!
//! An index server keeps who is registered, who is connected and where, and what each
//! user shares; clients download directly from each other; every request is audited
//! through an ONC-RPC logger; clients stamp requests with the time from a small web
//! service. `docs/PROTOCOL.md` is the wire contract, `docs/DESIGN.md` the architecture.
//!
//! Leaves, shared by the components and importing none of them:
//! - [`proto`]: wire framing, index and peer messages, DATETIME, the audit record.
//! - [`rpc`]: XDR, ONC-RPC messages, the portmapper client, the logger's interface.
//! - [`net`]: binding, the bounded accept loop and connection cap, shutdown, console.
//!
//! Components, one folder each, none importing another:
//! - [`server`]: the index server (registry, journal, liveness, audit spool/shipper).
//! - [`logger`]: the ONC-RPC audit logger.
//! - [`time`]: the time web service.
//! - [`client`]: the interactive shell and its peer (listener and downloads).

#![warn(unreachable_pub)]
// An ordinary build has no `internals`: what only the benchmarks and tests use is then
// unused (re-exports for it included), and what they reach is unreachable. Every build
// with the feature (tests, benches, `cargo clippy --all-targets`) checks these lints
// in full.
#![cfg_attr(
    not(feature = "internals"),
    allow(dead_code, unreachable_pub, unused_imports)
)]

mod client;
mod linefile;
mod logger;
mod net;
mod proto;
mod rpc;
mod server;
mod time;

pub use client::{ClientArgs, run as run_client};
pub use logger::{LoggerArgs, run as run_logger};
pub use server::{ServerArgs, run as run_server};
pub use time::{TimeArgs, run as run_time};

/// What the benchmarks (`benches/`) drive directly: the index protocol's encoders and
/// parsers, socket helpers, the registry with its changes and journal options, the
/// portmapper client. Only with the `internals` cargo feature, which the package's
/// dev-dependency on itself turns on for benchmarks and tests and nothing else
/// does: an ordinary build of the library exposes the four commands above and
/// nothing more. Not a stable API. Process tests talk to the programs over sockets;
/// tests/client.rs runs the shell in process through `TestShell`; unit tests inside
/// the crate reach what they need as `#[cfg(test)]` modules.
#[cfg(feature = "internals")]
pub mod internals {
    pub use crate::client::{FetchedBlocks, Said, TestShell, fetch_blocks};
    pub use crate::net::{CONNECTION_STACK, bind, connect, set_timeouts, spawn_connection_thread};
    pub use crate::proto::index;
    pub use crate::proto::wire::{FieldReader, MAX_FIELD};
    pub use crate::rpc::portmap::{self, IPPROTO_TCP};
    pub use crate::server::change::Change;
    pub use crate::server::journal::{COMPACT_MIN_BYTES, StoreOptions};
    pub use crate::server::registry::Registry;
}
