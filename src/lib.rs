//! peerdex: a Napster-style peer-to-peer file sharing service.
//!
//! An index server keeps who is registered, who is connected and where, and what each
//! user shares; clients download directly from each other; every request is audited
//! through an ONC-RPC logger; clients stamp requests with the time from a small web
//! service. `../shared/PROTOCOL.md` is the wire contract.
//!
//! Modules, one concern each:
//! - [`wire`]: NUL-terminated field framing with hard limits.
//! - [`index`]: index protocol messages; [`registry`]: the index state, made durable
//!   by [`journal`];
//!   [`server`]: the index server.
//! - [`net`]: binding, the bounded accept loop, connection cap, shutdown.
//! - [`audit`]: audit records; [`shipper`]: sends them to the logger.
//! - [`console`]: batched console lines on stdout; [`clock`]: the DATETIME format.
//! - [`client`]: the interactive shell; [`peer`]: the peer listener and downloads.
//! - [`logger`]: the ONC-RPC audit logger; [`logrpc`]: its interface (`rpc/logger.x`);
//!   [`rpc`]: ONC-RPC messages and record marking; [`xdr`]: XDR values;
//!   [`portmap`]: the portmapper client; [`spool`]: the server's durable audit spool.
//! - [`timesvc`]: the time web service.
//! - [`bench`]: the load generator and baselines of `peerdex bench`.

pub mod audit;
pub mod bench;
pub mod client;
pub mod clock;
pub mod console;
pub mod index;
pub mod journal;
pub mod liveness;
pub mod logger;
pub mod logrpc;
pub mod net;
pub mod peer;
pub mod portmap;
pub mod registry;
pub mod rpc;
#[allow(dead_code)] // wired into the registry by a later change
mod search;
pub mod server;
pub mod shipper;
pub mod spool;
pub mod timesvc;
pub mod wire;
pub mod xdr;
