//! The peer protocol (PROTOCOL.md section 2). Filled in by the client issue.
