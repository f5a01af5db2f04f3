//! The SOAP 1.1 face of the time service: the WSDL 1.1 document served at `/?wsdl`,
//! reading a request envelope, and writing response and Fault envelopes.
//!
//! Owns: the service's names (target namespace, the operations and their wrapper
//! elements), the envelope grammar accepted and the Fault codes chosen. Does not own:
//! HTTP (the parent module decides status codes, headers and limits).
//!
//! The WSDL is document/literal wrapped. It offers the lab's original `get_time` and
//! the names students' clients call (STATEMENTS.md): `get_datetime` and
//! `get_current_datetime`, all three the same answer. For each operation OP the
//! request is a `tns:OP` element with one optional string `tns:dummy`: a student's
//! client whose own service declares a dummy input passes one, and zeep refuses an
//! argument the WSDL does not declare. Its content (and anything else inside) is
//! ignored. The response is a `tns:OPResponse` holding one `tns:OPResult` string,
//! SOAPAction `OP`.

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Target namespace of the WSDL, its schema and the wrapper elements.
pub(super) const TNS: &str = "urn:peerdex:time";
/// SOAP 1.1 envelope namespace.
pub(super) const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace: recognised only to answer VersionMismatch.
const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Deepest element nesting accepted in a request. A `get_time` call is three levels
/// deep (Envelope, Body, get_time); 32 leaves room for headers from other toolkits
/// and bounds the parser's stack of open elements.
const MAX_DEPTH: usize = 32;

/// A call decoded from a request envelope: which operation (they all answer the
/// current DATETIME, each in its own response element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Time,
    Datetime,
    CurrentDatetime,
}

impl Call {
    /// Every operation, in the WSDL's order.
    pub(crate) const ALL: [Call; 3] = [Call::Time, Call::Datetime, Call::CurrentDatetime];

    /// The operation's name (also its request element and its SOAPAction).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Call::Time => "get_time",
            Call::Datetime => "get_datetime",
            Call::CurrentDatetime => "get_current_datetime",
        }
    }

    fn from_name(name: &[u8]) -> Option<Call> {
        Call::ALL.into_iter().find(|c| c.name().as_bytes() == name)
    }
}

/// The operation names, for messages: `get_time, get_datetime, get_current_datetime`.
fn offered() -> String {
    Call::ALL.map(Call::name).join(", ")
}

/// Why a request envelope was refused; becomes a SOAP 1.1 Fault (section 4.4.1 of
/// the SOAP 1.1 note).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.code(), self.reason())]
pub(crate) enum Fault {
    /// The envelope is not in the SOAP 1.1 namespace (e.g. a SOAP 1.2 envelope).
    VersionMismatch(String),
    /// A header entry carries `mustUnderstand="1"`: this service understands none.
    MustUnderstand(String),
    /// The message is malformed or asks for something this service does not offer.
    Client(String),
}

impl Fault {
    /// The `faultcode` value, qualified with the envelope prefix used in replies.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Fault::VersionMismatch(_) => "soap:VersionMismatch",
            Fault::MustUnderstand(_) => "soap:MustUnderstand",
            Fault::Client(_) => "soap:Client",
        }
    }

    pub(crate) fn reason(&self) -> &str {
        match self {
            Fault::VersionMismatch(s) | Fault::MustUnderstand(s) | Fault::Client(s) => s,
        }
    }
}

/// Whether a SOAPAction header value names one of the operations. SOAP 1.1
/// section 6.1.1: the value is a (usually quoted) URI; empty means "the HTTP request
/// URI". Accepted: empty, an operation's name, or any URI ending in `/OP`, `#OP` or
/// `:OP`. The Body's element decides which operation answers.
pub(super) fn action_matches(value: &str) -> bool {
    let v = value.trim().trim_matches('"');
    v.is_empty()
        || Call::ALL.iter().any(|c| {
            let op = c.name();
            v == op
                || v.strip_suffix(op).is_some_and(|rest| {
                    rest.ends_with('/') || rest.ends_with('#') || rest.ends_with(':')
                })
        })
}

/// The message of a Fault for an unknown SOAPAction.
pub(super) fn unknown_action(action: &str) -> Fault {
    Fault::Client(format!(
        "unknown SOAPAction {action}: this service offers {}",
        offered()
    ))
}

/// A namespace-resolved element name.
struct Name {
    ns: Option<Vec<u8>>,
    local: Vec<u8>,
}

impl Name {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns.as_bytes()) && self.local == local.as_bytes()
    }
}

fn resolve(reader: &NsReader<&[u8]>, e: &BytesStart) -> Name {
    let (ns, local) = reader.resolve_element(e.name());
    Name {
        ns: match ns {
            ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
            _ => None,
        },
        local: local.as_ref().to_vec(),
    }
}

/// True when a header entry carries `soap:mustUnderstand="1"`.
fn must_understand(reader: &NsReader<&[u8]>, e: &BytesStart) -> Result<bool, Fault> {
    for attr in e.attributes() {
        let attr = attr.map_err(|err| Fault::Client(format!("malformed attribute: {err}")))?;
        let (ns, local) = reader.resolve_attribute(attr.key);
        let in_env = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == SOAP11_ENV.as_bytes());
        if in_env && local.as_ref() == b"mustUnderstand" {
            let v = attr.value.as_ref();
            return Ok(v == b"1" || v == b"true");
        }
    }
    Ok(false)
}

/// Decodes a SOAP 1.1 request envelope. The whole document must be well-formed; the
/// first child of `Body` names the operation. A DOCTYPE is refused (SOAP 1.1
/// section 3: a SOAP message must not contain one), so no entity is ever expanded.
pub(super) fn parse_call(body: &[u8]) -> Result<Call, Fault> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Fault::Client("the request body is not UTF-8".into()))?;
    let mut reader = NsReader::from_reader(text.as_bytes());
    let mut walk = Walk::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| Fault::Client(format!("malformed XML: {e}")))?;
        match &event {
            Event::Start(e) => walk.start(&reader, e, false)?,
            Event::Empty(e) => walk.start(&reader, e, true)?,
            Event::End(_) => walk.end(),
            Event::DocType(_) => {
                return Err(Fault::Client(
                    "a SOAP message must not contain a DOCTYPE".into(),
                ));
            }
            Event::Text(t) if walk.stack.is_empty() && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(Fault::Client("text outside the envelope".into()));
            }
            Event::Eof => return walk.finish(),
            _ => {}
        }
    }
}

/// Where [`parse_call`] is in the document.
#[derive(Default)]
struct Walk {
    /// Open elements; only the first two levels matter, the depth is what is bounded.
    stack: Vec<Name>,
    seen_body: bool,
    /// The operation the Body names (or why it is refused), once seen.
    call: Option<Result<Call, Fault>>,
    root_done: bool,
}

impl Walk {
    /// An element opens (`empty`: and closes at once).
    fn start(
        &mut self,
        reader: &NsReader<&[u8]>,
        e: &BytesStart,
        empty: bool,
    ) -> Result<(), Fault> {
        if self.root_done {
            return Err(Fault::Client("content after the envelope".into()));
        }
        let name = resolve(reader, e);
        let in_header = self.stack.len() == 2 && self.stack[1].is(SOAP11_ENV, "Header");
        if in_header && must_understand(reader, e)? {
            return Err(Fault::MustUnderstand(format!(
                "header entry {} is not understood",
                String::from_utf8_lossy(&name.local)
            )));
        }
        match self.stack.len() {
            0 => check_root(&name)?,
            1 => {
                if name.is(SOAP11_ENV, "Body") && !self.seen_body {
                    self.seen_body = true;
                } else if self.seen_body || !name.is(SOAP11_ENV, "Header") {
                    return Err(Fault::Client(
                        "an Envelope holds an optional Header, then one Body".into(),
                    ));
                }
            }
            2 if !in_header && self.call.is_none() => self.call = Some(operation(&name)),
            _ => {}
        }
        if !empty {
            if self.stack.len() >= MAX_DEPTH {
                return Err(Fault::Client(format!(
                    "elements nested deeper than {MAX_DEPTH}"
                )));
            }
            self.stack.push(name);
        } else if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn end(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.root_done = true;
        }
    }

    /// The document ended: the call, or what was missing.
    fn finish(self) -> Result<Call, Fault> {
        if !self.stack.is_empty() {
            return Err(Fault::Client("malformed XML: unclosed elements".into()));
        }
        if !self.root_done {
            return Err(Fault::Client("no SOAP envelope".into()));
        }
        if !self.seen_body {
            return Err(Fault::Client("the Envelope has no Body".into()));
        }
        self.call
            .unwrap_or_else(|| Err(Fault::Client("the Body names no operation".into())))
    }
}

/// The root must be a SOAP 1.1 Envelope (a SOAP 1.2 one gets VersionMismatch).
fn check_root(name: &Name) -> Result<(), Fault> {
    if name.is(SOAP12_ENV, "Envelope") {
        return Err(Fault::VersionMismatch(
            "SOAP 1.2 envelope: this service speaks SOAP 1.1".into(),
        ));
    }
    if !name.is(SOAP11_ENV, "Envelope") {
        return Err(Fault::Client(
            "the root element is not a SOAP 1.1 Envelope".into(),
        ));
    }
    Ok(())
}

/// The operation the first child of Body names: one of ours in our namespace (or
/// unqualified), anything else a Client fault.
fn operation(name: &Name) -> Result<Call, Fault> {
    let tns_or_none = name.ns.is_none() || name.ns.as_deref() == Some(TNS.as_bytes());
    match Call::from_name(&name.local) {
        Some(call) if tns_or_none => Ok(call),
        _ => Err(Fault::Client(format!(
            "unknown operation {}: this service offers {} in {TNS}",
            String::from_utf8_lossy(&name.local),
            offered()
        ))),
    }
}

fn envelope(inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{SOAP11_ENV}" xmlns:tns="{TNS}"><soap:Body>{inner}</soap:Body></soap:Envelope>
"#
    )
}

/// The response envelope of `call`: `tns:OPResponse` holding `tns:OPResult`.
pub(super) fn time_response(call: Call, datetime: &str) -> String {
    let op = call.name();
    envelope(&format!(
        "<tns:{op}Response><tns:{op}Result>{}</tns:{op}Result></tns:{op}Response>",
        escape(datetime)
    ))
}

/// A Fault envelope (SOAP 1.1 section 4.4).
pub(super) fn fault_response(fault: &Fault) -> String {
    envelope(&format!(
        "<soap:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring></soap:Fault>",
        fault.code(),
        escape(fault.reason())
    ))
}

/// The WSDL 1.1 document, with `location` (an absolute http URL, already checked to
/// hold only URL-safe characters by the caller; escaped here anyway) as the
/// endpoint address.
pub(super) fn wsdl(location: &str) -> String {
    let location = escape(location);
    let [elements, messages, port_ops, binding_ops] = wsdl_operations();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="TimeService" targetNamespace="{TNS}"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{TNS}">
  <wsdl:types>
    <xs:schema targetNamespace="{TNS}" elementFormDefault="qualified">
{elements}    </xs:schema>
  </wsdl:types>
{messages}  <wsdl:portType name="TimeServicePortType">
{port_ops}  </wsdl:portType>
  <wsdl:binding name="TimeServiceBinding" type="tns:TimeServicePortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
{binding_ops}  </wsdl:binding>
  <wsdl:service name="TimeService">
    <wsdl:port name="TimeServicePort" binding="tns:TimeServiceBinding">
      <soap:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"#
    )
}

/// The parts of the WSDL that name each operation: its schema elements, its
/// messages, its port-type operation and its binding operation.
fn wsdl_operations() -> [String; 4] {
    let mut elements = String::new();
    let mut messages = String::new();
    let mut port_ops = String::new();
    let mut binding_ops = String::new();
    for call in Call::ALL {
        let op = call.name();
        elements.push_str(&format!(
            r#"      <xs:element name="{op}">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="dummy" type="xs:string" minOccurs="0"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
      <xs:element name="{op}Response">
        <xs:complexType>
          <xs:sequence>
            <xs:element name="{op}Result" type="xs:string"/>
          </xs:sequence>
        </xs:complexType>
      </xs:element>
"#
        ));
        messages.push_str(&format!(
            r#"  <wsdl:message name="{op}">
    <wsdl:part name="parameters" element="tns:{op}"/>
  </wsdl:message>
  <wsdl:message name="{op}Response">
    <wsdl:part name="parameters" element="tns:{op}Response"/>
  </wsdl:message>
"#
        ));
        port_ops.push_str(&format!(
            r#"    <wsdl:operation name="{op}">
      <wsdl:documentation>The current local time as dd/mm/YYYY HH:MM:SS.</wsdl:documentation>
      <wsdl:input name="{op}" message="tns:{op}"/>
      <wsdl:output name="{op}Response" message="tns:{op}Response"/>
    </wsdl:operation>
"#
        ));
        binding_ops.push_str(&format!(
            r#"    <wsdl:operation name="{op}">
      <soap:operation soapAction="{op}" style="document"/>
      <wsdl:input name="{op}"><soap:body use="literal"/></wsdl:input>
      <wsdl:output name="{op}Response"><soap:body use="literal"/></wsdl:output>
    </wsdl:operation>
"#
        ));
    }
    [elements, messages, port_ops, binding_ops]
}

#[cfg(test)]
mod tests;
