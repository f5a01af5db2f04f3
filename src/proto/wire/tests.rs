use super::*;

fn reader(bytes: &[u8]) -> FieldReader<&[u8]> {
    FieldReader::new(bytes)
}

#[test]
fn reads_fields_in_order_and_consumes_everything() {
    let mut r = reader(b"REGISTER\0alice\0");
    assert_eq!(r.read_str(Field::Op, MAX_OP).unwrap(), "REGISTER");
    assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "alice");
    assert!(r.buffered().is_empty());
    assert!(matches!(
        r.read_str(Field::File, MAX_FIELD),
        Err(WireError::Truncated(Field::File))
    ));
}

#[test]
fn accepts_field_exactly_at_limit() {
    let mut bytes = vec![b'a'; MAX_FIELD];
    bytes.push(0);
    let mut r = reader(&bytes);
    assert_eq!(
        r.read_bytes(Field::User, MAX_FIELD).unwrap().len(),
        MAX_FIELD
    );
}

#[test]
fn rejects_field_one_over_limit() {
    let mut bytes = vec![b'a'; MAX_FIELD + 1];
    bytes.push(0);
    let mut r = reader(&bytes);
    assert!(matches!(
        r.read_bytes(Field::User, MAX_FIELD),
        Err(WireError::TooLong {
            field: Field::User,
            limit: MAX_FIELD
        })
    ));
}

#[test]
fn rejects_endless_field_without_reading_it_all() {
    // A reader that would hand out 10 MB without a NUL: we must stop early.
    struct Endless(usize);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'x');
            self.0 += buf.len();
            Ok(buf.len())
        }
    }
    let mut r = FieldReader::new(Endless(0));
    assert!(matches!(
        r.read_bytes(Field::User, MAX_FIELD),
        Err(WireError::TooLong { .. })
    ));
    assert!(r.get_ref().0 <= READ_BUFFER);
}

#[test]
fn rejects_truncated_field() {
    let mut r = reader(b"REGIS");
    assert!(matches!(
        r.read_str(Field::Op, MAX_OP),
        Err(WireError::Truncated(Field::Op))
    ));
}

#[test]
fn rejects_invalid_utf8() {
    let mut r = reader(b"\xff\xfe\0");
    assert!(matches!(
        r.read_str(Field::User, MAX_FIELD),
        Err(WireError::NotUtf8(Field::User))
    ));
}

#[test]
fn fields_split_across_reads_are_joined() {
    // A reader that returns one byte per call.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let mut r = FieldReader::new(Trickle(b"LIST_USERS\0bob\0"));
    assert_eq!(r.read_str(Field::Op, MAX_OP).unwrap(), "LIST_USERS");
    assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "bob");
}

#[test]
fn many_fields_larger_than_buffer_in_total() {
    let mut bytes = Vec::new();
    for i in 0..1000 {
        put_str(&mut bytes, &format!("field-{i}"));
    }
    let mut r = reader(&bytes);
    for i in 0..1000 {
        assert_eq!(
            r.read_str(Field::File, MAX_FIELD).unwrap(),
            format!("field-{i}")
        );
    }
}

#[test]
fn parses_decimal_numbers() {
    assert_eq!(parse_decimal(b"456"), Some(456));
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b""), None);
    assert_eq!(parse_decimal(b"+1"), None);
    assert_eq!(parse_decimal(b" 1"), None);
    assert_eq!(parse_decimal(b"12a"), None);
    assert_eq!(parse_decimal(b"99999999999999999999"), None);
}

#[test]
fn names_reject_whitespace_control_and_empty() {
    assert!(is_valid_name("alice"));
    assert!(is_valid_name("/tmp/notes.txt"));
    assert!(!is_valid_name(""));
    assert!(!is_valid_name("a b"));
    assert!(!is_valid_name("a\tb"));
    assert!(!is_valid_name("a\u{7f}"));
    assert!(!is_valid_name(&"a".repeat(MAX_FIELD + 1)));
    assert!(is_valid_description("lecture notes, week 3"));
    assert!(is_valid_description(""));
    assert!(!is_valid_description("line\nbreak"));
}

#[test]
fn peek_looks_ahead_without_consuming_and_stops_at_the_end() {
    let mut r = reader(b"ab\0c");
    assert_eq!(r.peek(2).unwrap(), b"ab");
    assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "ab");
    assert_eq!(r.peek(8).unwrap(), b"c");
    r.consume(1);
    assert_eq!(r.peek(1).unwrap(), b"");
}

#[test]
fn read_u8_then_fields() {
    let mut r = reader(b"\x002\0x\0");
    assert_eq!(r.read_u8(Field::Code).unwrap(), 0);
    assert_eq!(r.read_number(Field::Count).unwrap(), 2);
    assert_eq!(r.read_str(Field::User, MAX_FIELD).unwrap(), "x");
}

#[test]
fn into_parts_returns_unconsumed_bytes() {
    let mut r = reader(b"\x003\0abc");
    r.read_u8(Field::Code).unwrap();
    r.read_number(Field::Size).unwrap();
    let (_, rest) = r.into_parts();
    assert_eq!(rest, b"abc");
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let mut r = FieldReader::new(&bytes[..]);
        for _ in 0..8 {
            if r.read_str(Field::File, MAX_FIELD).is_err() { break; }
        }
    }

    #[test]
    fn round_trips_valid_names(names in proptest::collection::vec("[a-zA-Z0-9._/-]{1,256}", 1..20)) {
        let mut bytes = Vec::new();
        for n in &names { put_str(&mut bytes, n); }
        let mut r = FieldReader::new(&bytes[..]);
        for n in &names {
            proptest::prop_assert_eq!(&r.read_str(Field::File, MAX_FIELD).unwrap(), n);
        }
        proptest::prop_assert!(r.buffered().is_empty());
    }
}
