//! Shared formats: what travels between the components, and nothing that acts.
//!
//! - [`wire`]: NUL-terminated field framing with hard limits.
//! - [`index`]: the index protocol's requests, result codes and list replies.
//! - [`peer`]: the peer protocol's requests and reply headers.
//! - [`datetime`]: the DATETIME format.
//! - [`audit`]: the audit record and its printed line.

pub(crate) mod audit;
pub mod datetime;
pub mod index;
pub(crate) mod peer;
pub(crate) mod wire;
