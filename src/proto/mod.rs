//! Shared formats: what travels between the components, and nothing that acts.
//!
//! - [`wire`]: NUL-terminated field framing with hard limits.
//! - [`index`]: the index protocol's requests, result codes and list replies.
//! - [`peer`]: the peer protocol's requests and reply headers.
//! - [`datetime`]: the DATETIME format.
//! - [`audit`]: the audit record and its printed line.
//! - [`text`]: what a name may look like, and how network text is shown.
//! - [`tree`]: content hashes: 1 MiB blocks, their SHA-256, the root.

pub(crate) mod audit;
pub(crate) mod datetime;
pub mod index;
pub(crate) mod peer;
pub(crate) mod text;
pub(crate) mod tree;
pub(crate) mod wire;
