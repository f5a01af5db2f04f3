//! ONC-RPC (RFC 5531) as peerdex uses it: shared by the logger (serving) and the index
//! server's shipper (calling).
//!
//! - [`xdr`]: XDR values (RFC 4506).
//! - [`message`]: call and reply messages and TCP record marking.
//! - [`portmap`]: the portmapper client (RFC 1833).
//! - [`logprog`]: the logger program's interface (`rpc/logger.x`).

pub(crate) mod logprog;
pub(crate) mod message;
pub mod portmap;
pub(crate) mod xdr;
