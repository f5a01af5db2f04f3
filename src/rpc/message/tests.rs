use super::*;
use proptest::prelude::*;

fn call_bytes(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_call(&mut out, xid, prog, vers, proc_, args);
    out
}

#[test]
fn call_round_trips_through_record_marking() {
    let bytes = call_bytes(42, 0x2000_0001, 2, 1, &[0, 0, 0, 9]);
    assert!(has_complete_record(&bytes));
    let mut buf = Vec::new();
    read_record(&mut &bytes[..], &mut buf).unwrap();
    assert_eq!(
        parse_call(&buf),
        Incoming::Call(Call {
            xid: 42,
            program: 0x2000_0001,
            version: 2,
            procedure: 1,
            args: &[0, 0, 0, 9],
        })
    );
}

#[test]
fn joins_a_record_of_several_fragments() {
    let whole = call_bytes(7, 1, 1, 0, &[]);
    let msg = &whole[4..];
    let mut split = Vec::new();
    for (i, chunk) in msg.chunks(5).enumerate() {
        let last = (i + 1) * 5 >= msg.len();
        let h = chunk.len() as u32 | if last { LAST_FRAGMENT } else { 0 };
        split.extend_from_slice(&h.to_be_bytes());
        split.extend_from_slice(chunk);
    }
    assert!(has_complete_record(&split));
    assert!(!has_complete_record(&split[..split.len() - 1]));
    let mut buf = Vec::new();
    read_record(&mut &split[..], &mut buf).unwrap();
    assert_eq!(buf, msg);
}

#[test]
fn rejects_a_huge_fragment_without_allocating_it() {
    let bytes = (0x7fff_ffffu32 | LAST_FRAGMENT).to_be_bytes();
    let mut buf = Vec::new();
    let e = read_record(&mut &bytes[..], &mut buf).unwrap_err();
    assert!(matches!(e, RecordError::TooLarge { .. }), "{e}");
    assert!(buf.capacity() < MAX_RECORD);
}

#[test]
fn rejects_fragments_adding_up_past_the_limit() {
    let mut bytes = Vec::new();
    for _ in 0..3 {
        bytes.extend_from_slice(&(40_000u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(0, 40_000));
    }
    let mut buf = Vec::new();
    assert!(matches!(
        read_record(&mut &bytes[..], &mut buf),
        Err(RecordError::TooLarge { .. })
    ));
}

#[test]
fn rejects_endless_empty_fragments() {
    let bytes: Vec<u8> = std::iter::repeat_n([0u8; 4], MAX_FRAGMENTS + 1)
        .flatten()
        .collect();
    let mut buf = Vec::new();
    assert!(matches!(
        read_record(&mut &bytes[..], &mut buf),
        Err(RecordError::TooManyFragments)
    ));
}

#[test]
fn tells_a_clean_close_from_a_truncated_record() {
    let mut buf = Vec::new();
    assert!(matches!(
        read_record(&mut &[][..], &mut buf),
        Err(RecordError::Closed)
    ));
    assert!(matches!(
        read_record(&mut &[0x80, 0][..], &mut buf),
        Err(RecordError::Truncated)
    ));
    let bytes = call_bytes(1, 1, 1, 0, &[]);
    assert!(matches!(
        read_record(&mut &bytes[..bytes.len() - 1], &mut buf),
        Err(RecordError::Truncated)
    ));
}

#[test]
fn classifies_rpc_version_mismatch() {
    let mut msg = call_bytes(9, 1, 1, 0, &[])[4..].to_vec();
    msg[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(parse_call(&msg), Incoming::RpcMismatch { xid: 9 });
}

#[test]
fn accepts_auth_sys_and_rejects_other_flavors() {
    let unix = onc_rpc::auth::AuthUnixParams::new(0, &b"host"[..], 0, 0, [0u32]);
    let body = CallBody::new(
        5,
        1,
        0,
        AuthFlavor::AuthUnix(unix),
        AuthFlavor::AuthNone(None),
        &[][..],
    );
    let msg = RpcMessage::new(3, MessageType::Call(body))
        .serialise()
        .unwrap();
    assert!(matches!(
        parse_call(&msg[4..]),
        Incoming::Call(Call { xid: 3, .. })
    ));

    let body = CallBody::new(
        5,
        1,
        0,
        AuthFlavor::AuthShort(&b"abcd"[..]),
        AuthFlavor::AuthNone(None),
        &[][..],
    );
    let msg = RpcMessage::new(4, MessageType::Call(body))
        .serialise()
        .unwrap();
    assert_eq!(parse_call(&msg[4..]), Incoming::AuthRejected { xid: 4 });
}

#[test]
fn replies_and_short_messages_are_garbage() {
    assert_eq!(parse_call(&[0, 0, 0, 1]), Incoming::Garbage);
    let mut out = Vec::new();
    put_reply(&mut out, 1, Answer::Success(&[]));
    assert_eq!(parse_call(&out[4..]), Incoming::Garbage);
    // A call whose credential length runs past the end.
    let mut msg = call_bytes(1, 1, 1, 0, &[])[4..].to_vec();
    msg.truncate(28);
    msg.extend_from_slice(&400u32.to_be_bytes());
    assert_eq!(parse_call(&msg), Incoming::Garbage);
}

#[test]
fn every_answer_round_trips() {
    let cases = [
        (Answer::Success(&[0, 0, 0, 1][..]), Ok(&[0u8, 0, 0, 1][..])),
        (Answer::ProgUnavail, Err(ReplyError::ProgUnavail)),
        (
            Answer::ProgMismatch { low: 1, high: 2 },
            Err(ReplyError::ProgMismatch { low: 1, high: 2 }),
        ),
        (Answer::ProcUnavail, Err(ReplyError::ProcUnavail)),
        (Answer::GarbageArgs, Err(ReplyError::GarbageArgs)),
        (Answer::SystemErr, Err(ReplyError::SystemErr)),
    ];
    for (answer, want) in cases {
        let mut out = Vec::new();
        put_reply(&mut out, 77, answer);
        let (xid, got) = parse_reply(&out[4..]);
        assert_eq!(xid, Some(77));
        assert_eq!(got, want);
    }
    let mut out = Vec::new();
    put_denied(&mut out, 78, rpc_mismatch());
    assert_eq!(parse_reply(&out[4..]), (Some(78), Err(ReplyError::Denied)));
    let mut out = Vec::new();
    put_denied(&mut out, 79, auth_rejected());
    assert_eq!(parse_reply(&out[4..]), (Some(79), Err(ReplyError::Denied)));
}

#[test]
fn a_header_announcing_more_than_arrives_allocates_only_what_arrived() {
    // Found by arbitrary_bytes_never_panic: a last-fragment header of length 5
    // and no data left a 5-byte zeroed buffer behind.
    let mut buf = Vec::new();
    let got = read_record(&mut &[128u8, 0, 0, 5][..], &mut buf);
    assert!(matches!(got, Err(RecordError::Truncated)));
    assert!(buf.is_empty());
    let mut buf = Vec::new();
    let got = read_record(&mut &[128u8, 0, 0, 5, 1, 2][..], &mut buf);
    assert!(matches!(got, Err(RecordError::Truncated)));
    assert!(buf.is_empty());
}

proptest! {
    #[test]
    fn calls_round_trip(xid: u32, prog: u32, vers: u32, proc_: u32,
                        words in proptest::collection::vec(any::<u32>(), 0..16)) {
        let args: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let bytes = call_bytes(xid, prog, vers, proc_, &args);
        let mut buf = Vec::new();
        read_record(&mut &bytes[..], &mut buf).unwrap();
        let want = Call { xid, program: prog, version: vers, procedure: proc_, args: &args };
        prop_assert_eq!(parse_call(&buf), Incoming::Call(want));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_call(&bytes);
        let _ = parse_reply(&bytes);
        let _ = has_complete_record(&bytes);
        let mut buf = Vec::new();
        let _ = read_record(&mut &bytes[..], &mut buf);
        prop_assert!(buf.len() <= bytes.len());
    }
}
