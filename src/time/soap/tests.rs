use super::*;

fn env(body: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

#[test]
fn accepts_a_get_time_call() {
    let req = env(r#"<t:get_time xmlns:t="urn:peerdex:time"/>"#);
    assert_eq!(parse_call(req.as_bytes()), Ok(Call::Time));
}

#[test]
fn accepts_every_operation_name_with_or_without_a_dummy_argument() {
    for call in Call::ALL {
        let op = call.name();
        let req = env(&format!(r#"<t:{op} xmlns:t="urn:peerdex:time"/>"#));
        assert_eq!(parse_call(req.as_bytes()), Ok(call));
        let req = env(&format!(
            r#"<t:{op} xmlns:t="urn:peerdex:time"><t:dummy>0</t:dummy></t:{op}>"#
        ));
        assert_eq!(parse_call(req.as_bytes()), Ok(call));
    }
    let req = env(r#"<t:get_datetimes xmlns:t="urn:peerdex:time"/>"#);
    assert!(matches!(parse_call(req.as_bytes()), Err(Fault::Client(_))));
}

#[test]
fn accepts_a_header_and_an_unqualified_operation() {
    let req = format!(
        r#"<e:Envelope xmlns:e="{SOAP11_ENV}"><e:Header><x:trace xmlns:x="urn:x">1</x:trace></e:Header><e:Body><get_time></get_time></e:Body></e:Envelope>"#
    );
    assert_eq!(parse_call(req.as_bytes()), Ok(Call::Time));
}

#[test]
fn rejects_malformed_xml() {
    let req = env("<t:get_time xmlns:t=\"urn:peerdex:time\">");
    assert!(matches!(parse_call(req.as_bytes()), Err(Fault::Client(_))));
    assert!(matches!(
        parse_call(b"not xml at all"),
        Err(Fault::Client(_))
    ));
    assert!(matches!(parse_call(b""), Err(Fault::Client(_))));
    let truncated = &env("<get_time/>")[..40];
    assert!(matches!(
        parse_call(truncated.as_bytes()),
        Err(Fault::Client(_))
    ));
}

#[test]
fn rejects_unknown_operations_and_namespaces() {
    let other = env(r#"<t:get_date xmlns:t="urn:peerdex:time"/>"#);
    assert!(matches!(
        parse_call(other.as_bytes()),
        Err(Fault::Client(_))
    ));
    let wrong_ns = env(r#"<t:get_time xmlns:t="urn:other"/>"#);
    assert!(matches!(
        parse_call(wrong_ns.as_bytes()),
        Err(Fault::Client(_))
    ));
    let empty_body = env("");
    assert!(matches!(
        parse_call(empty_body.as_bytes()),
        Err(Fault::Client(_))
    ));
    assert!(matches!(
        parse_call(b"<Envelope><Body><get_time/></Body></Envelope>"),
        Err(Fault::Client(_))
    ));
}

#[test]
fn answers_version_mismatch_to_soap12() {
    let req =
        format!(r#"<e:Envelope xmlns:e="{SOAP12_ENV}"><e:Body><get_time/></e:Body></e:Envelope>"#);
    assert!(matches!(
        parse_call(req.as_bytes()),
        Err(Fault::VersionMismatch(_))
    ));
}

#[test]
fn honours_must_understand() {
    let req = format!(
        r#"<e:Envelope xmlns:e="{SOAP11_ENV}"><e:Header><x:tx xmlns:x="urn:x" e:mustUnderstand="1"/></e:Header><e:Body><get_time/></e:Body></e:Envelope>"#
    );
    assert!(matches!(
        parse_call(req.as_bytes()),
        Err(Fault::MustUnderstand(_))
    ));
}

#[test]
fn refuses_doctype_and_deep_nesting() {
    let req = format!(
        r#"<!DOCTYPE e [<!ENTITY x "y">]><e:Envelope xmlns:e="{SOAP11_ENV}"><e:Body><get_time/></e:Body></e:Envelope>"#
    );
    assert!(matches!(parse_call(req.as_bytes()), Err(Fault::Client(_))));
    let deep = env(&format!(
        "<get_time>{}{}</get_time>",
        "<a>".repeat(100),
        "</a>".repeat(100)
    ));
    assert!(matches!(parse_call(deep.as_bytes()), Err(Fault::Client(_))));
}

#[test]
fn rejects_trailing_content() {
    let req = format!("{}<extra/>", env("<get_time/>"));
    assert!(matches!(parse_call(req.as_bytes()), Err(Fault::Client(_))));
}

#[test]
fn soap_action_values() {
    assert!(action_matches("\"get_time\""));
    assert!(action_matches(""));
    assert!(action_matches("\"\""));
    assert!(action_matches("urn:peerdex:time/get_time"));
    assert!(action_matches("\"get_datetime\""));
    assert!(action_matches("urn:peerdex:time#get_current_datetime"));
    assert!(!action_matches("get_datetime_x"));
    assert!(!action_matches("\"get_date\""));
    assert!(!action_matches("xget_time"));
}

#[test]
fn responses_escape_text_and_parse_back() {
    let f = fault_response(&Fault::Client("a < b & c".into()));
    assert!(f.contains("a &lt; b &amp; c"), "{f}");
    let mut reader = NsReader::from_str(&f);
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => break,
            _ => continue,
        }
    }
    assert!(
        time_response(Call::Time, "22/11/2026 09:05:07")
            .contains("<tns:get_timeResult>22/11/2026 09:05:07</tns:get_timeResult>")
    );
    assert!(
        time_response(Call::CurrentDatetime, "22/11/2026 09:05:07").contains(
            "<tns:get_current_datetimeResponse><tns:get_current_datetimeResult>22/11/2026 09:05:07</tns:get_current_datetimeResult></tns:get_current_datetimeResponse>"
        )
    );
}

#[test]
fn wsdl_names_the_location() {
    let w = wsdl("http://example.org:8000/");
    assert!(w.contains(r#"<soap:address location="http://example.org:8000/"/>"#));
    let mut reader = NsReader::from_str(&w);
    let mut elements = 0;
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => break,
            Event::Start(_) | Event::Empty(_) => elements += 1,
            _ => continue,
        }
    }
    assert!(elements > 20);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = parse_call(&body);
    }

    #[test]
    fn arbitrary_text_inside_the_call_is_a_call_or_a_client_fault(inner in "[<>/a-z:=\" ]{0,64}") {
        let req = env(&format!("<get_time>{inner}</get_time>"));
        match parse_call(req.as_bytes()) {
            Ok(Call::Time) | Err(Fault::Client(_)) => {}
        Ok(other) => proptest::prop_assert!(false, "{other:?}"),
            other => proptest::prop_assert!(false, "{other:?}"),
        }
    }
}
