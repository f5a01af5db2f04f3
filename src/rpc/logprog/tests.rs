use super::*;

#[test]
fn the_limits_are_the_ones_rpc_logger_x_declares() {
    let x = include_str!("../../../rpc/logger.x");
    for (name, value) in [
        ("LOG_MAX_USER", MAX_USER),
        ("LOG_MAX_OPERATION", MAX_OPERATION),
        ("LOG_MAX_DATETIME", MAX_DATETIME),
    ] {
        let line = format!("const {name} = {value};");
        assert!(x.contains(&line), "rpc/logger.x lacks `{line}`");
    }
}
use proptest::prelude::*;

fn rec() -> LogRecord<'static> {
    LogRecord {
        server_id: 0x0102_0304_0506_0708,
        seq: 7,
        user: "alice".into(),
        operation: "PUBLISH notes.txt".into(),
        datetime: "17/12/2014 13:20:35".into(),
        result: None,
    }
}

#[test]
fn version_3_appends_the_result_as_an_int() {
    let mut r = rec();
    let mut v2 = Vec::new();
    r.encode(&mut v2);
    r.result = Some(-1);
    assert_eq!(r.version(), V3);
    let mut v3 = Vec::new();
    r.encode(&mut v3);
    assert_eq!(&v3[..v2.len()], &v2[..]);
    assert_eq!(&v3[v2.len()..], &[0xff; 4]);
    assert_eq!(LogRecord::decode_version(&v3, V3).unwrap(), r);
    // Each version's argument is whole: neither decodes as the other.
    assert!(LogRecord::decode_version(&v3, V2).is_err());
    assert!(LogRecord::decode_version(&v2, V3).is_err());
}

#[test]
fn record_encoding_matches_rpcgen_layout() {
    let mut out = Vec::new();
    rec().encode(&mut out);
    // hyper, hyper, then three padded strings.
    assert_eq!(&out[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&out[8..16], &[0, 0, 0, 0, 0, 0, 0, 7]);
    assert_eq!(&out[16..20], &[0, 0, 0, 5]);
    assert_eq!(&out[20..28], b"alice\0\0\0");
    assert_eq!(LogRecord::decode(&out).unwrap(), rec());
}

#[test]
fn over_long_fields_are_clipped_on_encode() {
    let mut r = rec();
    r.user = "é".repeat(200).into(); // 400 bytes
    let mut out = Vec::new();
    r.encode(&mut out);
    let back = LogRecord::decode(&out).unwrap();
    assert_eq!(back.user.len(), 256);
}

#[test]
fn rejects_user_over_limit_and_trailing_bytes() {
    let mut out = Vec::new();
    xdr::put_u64(&mut out, 1);
    xdr::put_u64(&mut out, 1);
    xdr::put_string(&mut out, &"u".repeat(257));
    assert!(matches!(
        LogRecord::decode(&out),
        Err(XdrError::TooLong { field: "user", .. })
    ));
    let mut out = Vec::new();
    rec().encode(&mut out);
    out.extend_from_slice(&[0; 4]);
    assert_eq!(
        LogRecord::decode(&out),
        Err(XdrError::Trailing { extra: 4 })
    );
}

#[test]
fn v1_and_status_round_trip() {
    let mut out = Vec::new();
    encode_v1("hello", &mut out);
    assert_eq!(decode_v1(&out).unwrap(), "hello");
    let mut out = Vec::new();
    xdr::put_i32(&mut out, LOG_DUPLICATE);
    assert_eq!(decode_status(&out).unwrap(), LOG_DUPLICATE);
    assert!(decode_status(&[0, 0]).is_err());
}

fn strings(values: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        xdr::put_string(&mut out, v);
    }
    out
}

#[test]
fn any_argument_of_strings_and_ints_decodes() {
    let text = |s: &str| ArgValue::Text(s.to_owned());
    assert_eq!(
        decode_any(&strings(&["one line"])).unwrap(),
        [text("one line")]
    );
    let four = strings(&["alice", "PUBLISH", "notes.txt", "17/12/2014 13:20:35"]);
    let got = decode_any(&four).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2], text("notes.txt"));
    assert_eq!(describe_shape(&got), "4 strings");
    // An unset field is an empty string.
    let got = decode_any(&strings(&["bob", "REGISTER", "", "x"])).unwrap();
    assert_eq!(got[2], text(""));
    // An int among the strings: 3 is not a string here (its 3 "bytes" are
    // the next length's zeros).
    let mut mixed = Vec::new();
    xdr::put_i32(&mut mixed, 3);
    mixed.extend(strings(&["abc"]));
    xdr::put_i32(&mut mixed, -1);
    let got = decode_any(&mixed).unwrap();
    assert_eq!(got, [ArgValue::Int(3), text("abc"), ArgValue::Int(-1)]);
    assert_eq!(describe_shape(&got), "a string and 2 ints");
    assert!(decode_any(&[0, 0, 0, 5, b'a']).is_err());
    assert!(decode_any(&[0, 0]).is_err());
    assert!(decode_any(&[0; 4 * (MAX_V1_VALUES + 1)]).is_err());
    assert_eq!(decode_any(&[]).unwrap(), []);
}

#[test]
fn program_numbers_parse_in_hex_and_decimal() {
    assert_eq!(parse_program("0x20000001"), Ok(DEFAULT_PROGRAM));
    assert_eq!(parse_program("536870913"), Ok(DEFAULT_PROGRAM));
    assert!(parse_program("0").is_err());
    assert!(parse_program("0xzz").is_err());
}

proptest! {
    #[test]
    fn records_round_trip(server_id: u64, seq: u64, user in "[a-z]{0,256}",
                          operation in ".{0,100}", datetime in "[0-9/: ]{0,64}") {
        let r = LogRecord { server_id, seq, user: user.into(), operation: operation.into(), datetime: datetime.into(), result: None };
        let mut out = Vec::new();
        r.encode(&mut out);
        prop_assert_eq!(&LogRecord::decode(&out).unwrap(), &r);
        let r = LogRecord { result: Some(seq as i32), ..r };
        let mut out = Vec::new();
        r.encode(&mut out);
        prop_assert_eq!(LogRecord::decode_version(&out, V3).unwrap(), r);
    }

    #[test]
    fn arbitrary_arguments_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = LogRecord::decode(&bytes);
        let _ = LogRecord::decode_version(&bytes, V3);
        let _ = decode_v1(&bytes);
        let _ = decode_any(&bytes);
    }
}
