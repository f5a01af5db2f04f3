//! The index server, as a real process on a real socket, spoken to in raw bytes.

mod support;

use support::*;

#[test]
fn register_then_register_again() {
    let s = Server::start(&[]);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 0);
    assert_eq!(code(s.addr, &["REGISTER", "alice"]), 1);
}
