//! The client's SOAP 1.1 time source (PROTOCOL.md section 4): a course time service
//! that speaks only SOAP, described by its WSDL (`http://host:port/?wsdl`).
//!
//! Owns: reading the WSDL (target namespace, the one operation, its SOAPAction and
//! the endpoint), the request envelope, and finding the string result in the
//! response. Does not own: HTTP, its limits and timeouts (`timeclock`).
//!
//! Only what a one-operation document/literal or rpc/literal service needs is read;
//! no schema is interpreted. A DOCTYPE is refused, so no entity is ever expanded.

use std::fmt;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
const WSDL_SOAP11_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// Deepest element nesting accepted in a WSDL or a response: real ones stay under
/// ten; the bound keeps a hostile document from growing the element stack.
const MAX_DEPTH: usize = 64;

/// Why the WSDL or a response could not be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SoapError {
    /// Not well-formed XML (or not UTF-8, or a DOCTYPE).
    Xml(String),
    /// The WSDL lacks something the call needs.
    Wsdl(&'static str),
    /// The service answered a SOAP Fault.
    Fault(String),
    /// The response carries no string result.
    NoResult,
}

impl fmt::Display for SoapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoapError::Xml(e) => write!(f, "soap: malformed XML: {e}"),
            SoapError::Wsdl(what) => write!(f, "wsdl: {what}"),
            SoapError::Fault(s) => write!(f, "soap: fault: {s}"),
            SoapError::NoResult => write!(f, "soap: the response carries no result"),
        }
    }
}

impl std::error::Error for SoapError {}

/// What the WSDL says about calling its one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    pub tns: String,
    pub operation: String,
    /// The binding's soapAction (may be empty).
    pub action: String,
    /// The soap:address location: where the envelope is POSTed.
    pub location: String,
}

fn is_in(reader: &NsReader<&[u8]>, e: &BytesStart, ns: &str, local: &str) -> bool {
    let (n, l) = reader.resolve_element(e.name());
    matches!(n, ResolveResult::Bound(b) if b.as_ref() == ns.as_bytes())
        && l.as_ref() == local.as_bytes()
}

fn attr(e: &BytesStart, name: &str) -> Result<Option<String>, SoapError> {
    for a in e.attributes() {
        let a = a.map_err(|err| SoapError::Xml(err.to_string()))?;
        if a.key.as_ref() == name.as_bytes() {
            let v = a
                .unescape_value()
                .map_err(|err| SoapError::Xml(err.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// One thing [`walk`] visits.
enum Node<'r, 'e> {
    /// A start (or empty) element and the number of elements open around it.
    Start(&'r NsReader<&'r [u8]>, &'e BytesStart<'e>, usize),
    /// A text node and the number of elements open around it.
    Text(&'e str, usize),
}

/// Visits every start (or empty) element and text node, refusing a DOCTYPE and
/// bounding the depth.
fn walk(
    doc: &[u8],
    mut visit: impl FnMut(Node<'_, '_>) -> Result<(), SoapError>,
) -> Result<(), SoapError> {
    let doc = std::str::from_utf8(doc).map_err(|_| SoapError::Xml("not UTF-8".into()))?;
    let mut reader = NsReader::from_reader(doc.as_bytes());
    let mut depth = 0usize;
    loop {
        match reader
            .read_event()
            .map_err(|e| SoapError::Xml(e.to_string()))?
        {
            Event::Start(e) => {
                visit(Node::Start(&reader, &e, depth))?;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SoapError::Xml(format!("nested deeper than {MAX_DEPTH}")));
                }
            }
            Event::Empty(e) => visit(Node::Start(&reader, &e, depth))?,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                let t = t.decode().map_err(|e| SoapError::Xml(e.to_string()))?;
                visit(Node::Text(&t, depth))?;
            }
            Event::CData(t) => {
                let t = t.decode().map_err(|e| SoapError::Xml(e.to_string()))?;
                visit(Node::Text(&t, depth))?;
            }
            Event::DocType(_) => return Err(SoapError::Xml("a DOCTYPE is not accepted".into())),
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// Reads a WSDL 1.1 document: the target namespace, the first operation of its
/// port type, that operation's SOAP 1.1 soapAction and the SOAP 1.1 address.
pub(crate) fn parse_wsdl(doc: &[u8]) -> Result<Service, SoapError> {
    let mut tns = None;
    let mut operation: Option<String> = None;
    let mut action = None;
    let mut location = None;
    let mut in_port_type = None;
    let mut in_binding_op: Option<usize> = None;
    walk(doc, |node| {
        let Node::Start(r, e, depth) = node else {
            return Ok(());
        };
        {
            if in_port_type.is_some_and(|d| depth <= d) {
                in_port_type = None;
            }
            if in_binding_op.is_some_and(|d| depth <= d) {
                in_binding_op = None;
            }
            if depth == 0 && is_in(r, e, WSDL_NS, "definitions") {
                tns = attr(e, "targetNamespace")?;
            } else if is_in(r, e, WSDL_NS, "portType") {
                in_port_type = Some(depth);
            } else if in_port_type.is_some() && is_in(r, e, WSDL_NS, "operation") {
                if operation.is_none() {
                    operation = attr(e, "name")?;
                }
            } else if is_in(r, e, WSDL_NS, "operation") {
                // An operation of a binding: its soap:operation follows inside.
                let name = attr(e, "name")?;
                if operation.is_none() || name == operation {
                    in_binding_op = Some(depth);
                }
            } else if in_binding_op.is_some()
                && action.is_none()
                && is_in(r, e, WSDL_SOAP11_NS, "operation")
            {
                action = Some(attr(e, "soapAction")?.unwrap_or_default());
            } else if location.is_none() && is_in(r, e, WSDL_SOAP11_NS, "address") {
                location = attr(e, "location")?;
            }
            Ok(())
        }
    })?;
    Ok(Service {
        tns: tns.ok_or(SoapError::Wsdl("no targetNamespace"))?,
        operation: operation.ok_or(SoapError::Wsdl("no operation in a portType"))?,
        action: action.unwrap_or_default(),
        location: location.ok_or(SoapError::Wsdl("no SOAP 1.1 address"))?,
    })
}

/// The SOAP 1.1 request envelope calling `service`'s operation without arguments
/// (the wrapper element in the target namespace, as document/literal wrapped and
/// rpc/literal both expect).
pub(crate) fn request(service: &Service) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:tns="{}"><soapenv:Body><tns:{}/></soapenv:Body></soapenv:Envelope>"#,
        escape(service.tns.as_str()),
        escape(service.operation.as_str()),
    )
}

/// The string result of a response envelope: the first non-blank text inside the
/// Body (the result element inside the response wrapper), trimmed; a Fault's
/// faultstring is an error.
pub(crate) fn parse_response(doc: &[u8]) -> Result<String, SoapError> {
    let mut body_depth = None;
    let mut fault_depth = None;
    let mut result: Option<String> = None;
    let mut fault_text: Option<String> = None;
    let mut in_faultstring = false;
    walk(doc, |node| {
        match node {
            Node::Start(r, e, depth) => {
                if body_depth.is_none() && is_in(r, e, SOAP11_ENV, "Body") {
                    body_depth = Some(depth);
                } else if body_depth.is_some_and(|b| depth == b + 1)
                    && is_in(r, e, SOAP11_ENV, "Fault")
                {
                    fault_depth = Some(depth);
                }
                in_faultstring = fault_depth.is_some() && e.local_name().as_ref() == b"faultstring";
            }
            Node::Text(t, depth) => {
                let t = t.trim();
                if t.is_empty() || body_depth.is_none_or(|b| depth <= b + 1) {
                    return Ok(());
                }
                if fault_depth.is_some() {
                    if in_faultstring && fault_text.is_none() {
                        fault_text = Some(t.to_owned());
                    }
                } else if result.is_none() {
                    result = Some(t.to_owned());
                }
            }
        }
        Ok(())
    })?;
    if fault_depth.is_some() {
        return Err(SoapError::Fault(
            fault_text.unwrap_or_else(|| "no faultstring".into()),
        ));
    }
    result.ok_or(SoapError::NoResult)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WSDL spyne 2.14 serves for the course's time service (abridged types).
    const SPYNE_WSDL: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<wsdl:definitions xmlns:wsdlsoap11="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:tns="http://time.example/soap" targetNamespace="http://time.example/soap" name="Application"><wsdl:message name="get_time"><wsdl:part name="get_time" element="tns:get_time"/></wsdl:message><wsdl:service name="TimeService"><wsdl:port name="Application" binding="tns:Application"><wsdlsoap11:address location="http://127.0.0.1:38301/"/></wsdl:port></wsdl:service><wsdl:portType name="Application"><wsdl:operation name="get_time" parameterOrder="get_time"><wsdl:input name="get_time" message="tns:get_time"/></wsdl:operation></wsdl:portType><wsdl:binding name="Application" type="tns:Application"><wsdlsoap11:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/><wsdl:operation name="get_time"><wsdlsoap11:operation soapAction="get_time" style="document"/></wsdl:operation></wsdl:binding></wsdl:definitions>"#;

    #[test]
    fn reads_the_spyne_wsdl() {
        assert_eq!(
            parse_wsdl(SPYNE_WSDL.as_bytes()).unwrap(),
            Service {
                tns: "http://time.example/soap".into(),
                operation: "get_time".into(),
                action: "get_time".into(),
                location: "http://127.0.0.1:38301/".into(),
            }
        );
    }

    #[test]
    fn rejects_a_wsdl_without_address_or_with_a_doctype() {
        let no_addr = SPYNE_WSDL.replace("wsdlsoap11:address", "other");
        assert_eq!(
            parse_wsdl(no_addr.as_bytes()),
            Err(SoapError::Wsdl("no SOAP 1.1 address"))
        );
        let doctype = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{}", &SPYNE_WSDL[39..]);
        assert!(matches!(
            parse_wsdl(doctype.as_bytes()),
            Err(SoapError::Xml(_))
        ));
    }

    #[test]
    fn finds_the_result_and_reports_faults() {
        let ok = r#"<?xml version='1.0' encoding='UTF-8'?>
<soap11env:Envelope xmlns:soap11env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="http://time.example/soap"><soap11env:Body><tns:get_timeResponse><tns:get_timeResult>01/02/2003 04:05:06</tns:get_timeResult></tns:get_timeResponse></soap11env:Body></soap11env:Envelope>"#;
        assert_eq!(
            parse_response(ok.as_bytes()).unwrap(),
            "01/02/2003 04:05:06"
        );
        let fault = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault><faultcode>e:Server</faultcode><faultstring>boom</faultstring></e:Fault></e:Body></e:Envelope>"#;
        assert_eq!(
            parse_response(fault.as_bytes()),
            Err(SoapError::Fault("boom".into()))
        );
        let empty = r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><r/></e:Body></e:Envelope>"#;
        assert_eq!(parse_response(empty.as_bytes()), Err(SoapError::NoResult));
    }

    #[test]
    fn the_request_names_the_operation_in_its_namespace() {
        let s = parse_wsdl(SPYNE_WSDL.as_bytes()).unwrap();
        let req = request(&s);
        assert!(req.contains(r#"xmlns:tns="http://time.example/soap""#));
        assert!(req.contains("<tns:get_time/>"));
    }
}
