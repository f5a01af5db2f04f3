//! The protocol's rules with the registry in Redis (`--store`) give the same result
//! codes and the same lists as the embedded registry: a table of every code of every
//! operation, then a long random sequence, each sent to an embedded server and,
//! alternately, to two servers sharing one real redis-server.

mod support;

use std::net::Ipv4Addr;

use support::redis::Redis;
use support::{OTHER_HOST, Server, call_from};

const HOME: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// An embedded server and two servers on one Redis.
struct Stores {
    embedded: Server,
    shared: [Server; 2],
    _redis: Redis,
}

impl Stores {
    fn start(test: &str) -> Option<Stores> {
        let redis = Redis::start(test)?;
        let url = redis.url();
        let opts = ["--store", &url, "--quiet", "--probe-interval", "0"];
        Some(Stores {
            embedded: Server::start(&["--quiet", "--probe-interval", "0"]),
            shared: [Server::start(&opts), Server::start(&opts)],
            _redis: redis,
        })
    }

    /// The embedded reply, and the shared store's through server `via`.
    fn both(&self, via: usize, from: Ipv4Addr, parts: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let shared = self.shared[via % 2].addr;
        (
            call_from(from, self.embedded.addr, parts),
            call_from(from, shared, parts),
        )
    }
}

/// Every result code of every operation, host refusals included.
const TABLE: &[(Ipv4Addr, &[&str], u8)] = &[
    (HOME, &["REGISTER", "a"], 0),
    (HOME, &["REGISTER", "a"], 1),
    (HOME, &["UNREGISTER", "b"], 1),
    (HOME, &["CONNECT", "b", "5000"], 1),
    (HOME, &["DISCONNECT", "b"], 1),
    (HOME, &["DISCONNECT", "a"], 2),
    (HOME, &["PUBLISH", "a", "f", "d"], 2),
    (HOME, &["DELETE", "a", "f"], 2),
    (HOME, &["LIST_USERS", "a"], 2),
    (HOME, &["LIST_USERS", "b"], 1),
    (HOME, &["LIST_CONTENT", "a", "a"], 2),
    (HOME, &["SEARCH", "a", "f"], 2),
    (HOME, &["CONNECT", "a", "5000"], 0),
    (HOME, &["CONNECT", "a", "5001"], 2),
    (HOME, &["UNREGISTER", "a"], 2),
    (HOME, &["PUBLISH", "a", "f", "about f"], 0),
    (HOME, &["PUBLISH", "a", "f", "again"], 3),
    (HOME, &["DELETE", "a", "g"], 3),
    (HOME, &["PUBLISH", "a", "g", "about g"], 0),
    (HOME, &["LIST_CONTENT", "a", "zz"], 3),
    (HOME, &["LIST_CONTENT", "a", "a"], 0),
    (HOME, &["SEARCH", "a", "g"], 0),
    (HOME, &["LIST_USERS", "a"], 0),
    // Connected from HOME: another host may not act for a.
    (OTHER_HOST, &["PUBLISH", "a", "h", "x"], 4),
    (OTHER_HOST, &["DELETE", "a", "f"], 4),
    (OTHER_HOST, &["DISCONNECT", "a"], 3),
    (OTHER_HOST, &["CONNECT", "a", "6000"], 3),
    (OTHER_HOST, &["UNREGISTER", "a"], 2),
    (OTHER_HOST, &["LIST_USERS", "a"], 3),
    (OTHER_HOST, &["LIST_CONTENT", "a", "a"], 4),
    (OTHER_HOST, &["SEARCH", "a", "f"], 3),
    // REGISTER is nobody's act: a taken name is 1 from anywhere.
    (OTHER_HOST, &["REGISTER", "a"], 1),
    (OTHER_HOST, &["REGISTER", "b"], 0),
    (OTHER_HOST, &["CONNECT", "b", "6000"], 0),
    (HOME, &["LIST_CONTENT", "a", "b"], 0),
    (HOME, &["DELETE", "a", "f"], 0),
    (HOME, &["DELETE", "a", "f"], 3),
    (HOME, &["DISCONNECT", "a"], 0),
    (OTHER_HOST, &["CONNECT", "a", "6001"], 0),
    (OTHER_HOST, &["DISCONNECT", "a"], 0),
    (HOME, &["UNREGISTER", "a"], 0),
    (HOME, &["UNREGISTER", "a"], 1),
    (HOME, &["REGISTER", "a"], 0),
    (HOME, &["CONNECT", "a", "5000"], 0),
    (HOME, &["LIST_CONTENT", "a", "a"], 0),
];

#[test]
fn every_code_of_every_operation_is_the_same_in_both_stores() {
    let Some(stores) = Stores::start("every_code_of_every_operation_is_the_same_in_both_stores")
    else {
        return;
    };
    for (i, (from, parts, code)) in TABLE.iter().enumerate() {
        let (embedded, shared) = stores.both(i, *from, parts);
        assert_eq!(
            embedded.first(),
            Some(code),
            "embedded: {parts:?} from {from}"
        );
        assert_eq!(embedded, shared, "step {i}: {parts:?} from {from}");
    }
    // Unregistered, then registered again: no files left in either.
    let (embedded, shared) = stores.both(0, HOME, &["LIST_CONTENT", "a", "a"]);
    assert_eq!(embedded, [0, b'0', 0]);
    assert_eq!(shared, embedded);
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn random_requests_get_the_same_replies_from_both_stores() {
    let Some(stores) = Stores::start("random_requests_get_the_same_replies_from_both_stores")
    else {
        return;
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let users = ["u0", "u1", "u2"];
    let files = ["notes.txt", "song.mp3", "notes-2.txt"];
    for i in 0..400 {
        let user = users[rng.below(3) as usize];
        let other = users[rng.below(3) as usize];
        let file = files[rng.below(3) as usize];
        let port = (5000 + rng.below(3)).to_string();
        let parts: Vec<&str> = match rng.below(10) {
            0 => vec!["REGISTER", user],
            1 => vec!["UNREGISTER", user],
            2 => vec!["CONNECT", user, &port],
            3 => vec!["DISCONNECT", user],
            4 | 5 => vec!["PUBLISH", user, file, "d"],
            6 => vec!["DELETE", user, file],
            7 => vec!["LIST_USERS", user],
            8 => vec!["LIST_CONTENT", user, other],
            _ => vec!["SEARCH", user, &file[..5]],
        };
        let from = if rng.below(8) == 0 { OTHER_HOST } else { HOME };
        let (embedded, shared) = stores.both(rng.below(2) as usize, from, &parts);
        assert!(!embedded.is_empty(), "step {i}: no reply to {parts:?}");
        assert_eq!(embedded, shared, "step {i}: {parts:?} from {from}");
    }
}
