//! The client's SOAP 1.1 time source (PROTOCOL.md section 4): a course time service
//! that speaks only SOAP, described by its WSDL (`http://host:port/?wsdl`).
//!
//! Owns: reading the WSDL (target namespace, the operation to call, its SOAPAction,
//! style and input, the endpoint), the request envelope, and finding the string
//! result in the response. Does not own: HTTP, its limits and timeouts (`timeclock`).
//!
//! Course services name their operation `get_time`, `get_datetime` or
//! `get_current_datetime` ([`KNOWN_OPERATIONS`]), and some declare an input the
//! operation ignores (a "dummy" argument) that a validating toolkit (spyne with
//! lxml) requires: the request carries an element for every input the WSDL
//! declares, each holding [`PLACEHOLDER`]. Only what such a service needs is read:
//! the message parts, and for document/literal the one level of children the part's
//! schema element declares (sequence, all, or the first of a choice). A DOCTYPE is
//! refused, so no entity is ever expanded.

use crate::proto::text::escape_for_terminal;

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
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SoapError {
    /// Not well-formed XML (or not UTF-8, or a DOCTYPE).
    #[error("soap: malformed XML: {}", escape_for_terminal(.0))]
    Xml(String),
    /// The WSDL lacks something the call needs.
    #[error("wsdl: {0}")]
    Wsdl(&'static str),
    /// The service answered a SOAP Fault (its text as the service sent it).
    #[error("soap: fault: {}", escape_for_terminal(.0))]
    Fault(String),
    /// The response carries no string result.
    #[error("soap: the response carries no result")]
    NoResult,
}

/// The operations a course time service is known to offer, in the order one is
/// chosen when the WSDL offers several (STATEMENTS.md: students named it any of
/// these). A WSDL offering none of them has its first operation called.
pub(crate) const KNOWN_OPERATIONS: [&str; 3] = ["get_time", "get_datetime", "get_current_datetime"];

/// The text sent in every input element the WSDL declares. The operations take no
/// real argument (a declared input is a placeholder the service ignores), but a
/// validating service refuses a missing or empty one. `0` is a valid lexical value
/// of `xs:string` (also with a minimum length of 1), of every XML Schema integer and
/// decimal type, of `float`, `double` and `boolean`.
pub(crate) const PLACEHOLDER: &str = "0";

/// What the WSDL says about calling its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Service {
    pub tns: String,
    pub operation: String,
    /// The binding's soapAction (may be empty).
    pub action: String,
    /// The soap:address location: where the envelope is POSTed.
    pub location: String,
    /// The elements the request's Body holds, in order.
    pub body: Vec<Arg>,
}

/// One element of a request: its namespace (None: unqualified) and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arg {
    pub ns: Option<String>,
    pub local: String,
    pub content: Content,
}

/// What a request element holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content {
    /// Nothing: a wrapper the WSDL declares no children for.
    Empty,
    /// [`PLACEHOLDER`]: an input whose value the operation ignores.
    Placeholder,
    /// Child elements (a wrapper and the parts or sequence it holds).
    Elements(Vec<Arg>),
}

impl Arg {
    fn new(ns: Option<String>, local: &str, content: Content) -> Arg {
        Arg {
            ns,
            local: local.to_owned(),
            content,
        }
    }
}

/// A namespace-qualified name as written in a QName-valued attribute
/// (`element="tns:get_time"`), resolved where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QName {
    ns: Option<String>,
    local: String,
}

/// Attributes whose values are QNames, resolved while reading (the prefixes in scope
/// are known only then).
const QNAME_ATTRS: [&str; 5] = ["element", "type", "message", "binding", "ref"];

/// One element of the WSDL document, kept as a tree so the references between its
/// parts (port -> binding -> portType -> message -> schema element) can be followed.
#[derive(Debug, Default)]
struct Node {
    ns: Option<String>,
    local: String,
    attrs: Vec<(String, String)>,
    qnames: Vec<(&'static str, QName)>,
    children: Vec<Node>,
}

impl Node {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn qname(&self, name: &str) -> Option<&QName> {
        self.qnames.iter().find(|(k, _)| *k == name).map(|(_, q)| q)
    }

    /// Children in `ns` named `local`.
    fn kids<'a>(&'a self, ns: &'a str, local: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }

    /// The first child in `ns` named `local` whose `name` attribute is `name`.
    fn named(&self, ns: &str, local: &str, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.is(ns, local) && c.attr("name") == Some(name))
    }

    /// Every descendant (depth first) in `ns` named `local`.
    fn descendants<'a>(&'a self, ns: &'a str, local: &'a str, out: &mut Vec<&'a Node>) {
        for c in &self.children {
            if c.is(ns, local) {
                out.push(c);
            }
            c.descendants(ns, local, out);
        }
    }
}

fn resolved(r: ResolveResult<'_>) -> Option<String> {
    match r {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        _ => None,
    }
}

/// Reads a document into a tree of its elements (text is not kept), refusing a
/// DOCTYPE and bounding the depth.
fn tree(doc: &[u8]) -> Result<Node, SoapError> {
    let doc = std::str::from_utf8(doc).map_err(|_| SoapError::Xml("not UTF-8".into()))?;
    let mut reader = NsReader::from_reader(doc.as_bytes());
    // The open elements; the bottom one collects the root.
    let mut open: Vec<Node> = vec![Node::default()];
    loop {
        let (e, empty) = match reader
            .read_event()
            .map_err(|e| SoapError::Xml(e.to_string()))?
        {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                if open.len() > 1 {
                    let done = open.pop().expect("more than one open");
                    open.last_mut().expect("the bottom").children.push(done);
                }
                continue;
            }
            Event::DocType(_) => return Err(SoapError::Xml("a DOCTYPE is not accepted".into())),
            Event::Eof => break,
            _ => continue,
        };
        let node = element(&reader, &e)?;
        if empty {
            open.last_mut().expect("the bottom").children.push(node);
        } else {
            if open.len() > MAX_DEPTH {
                return Err(SoapError::Xml(format!("nested deeper than {MAX_DEPTH}")));
            }
            open.push(node);
        }
    }
    if open.len() != 1 {
        return Err(SoapError::Xml("unclosed elements".into()));
    }
    open.pop()
        .and_then(|bottom| bottom.children.into_iter().next())
        .ok_or(SoapError::Xml("no root element".into()))
}

/// One element's node: its resolved name and attributes (QName values resolved too).
fn element(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Node, SoapError> {
    let (ns, local) = reader.resolve_element(e.name());
    let mut node = Node {
        ns: resolved(ns),
        local: String::from_utf8_lossy(local.as_ref()).into_owned(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|err| SoapError::Xml(err.to_string()))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| SoapError::Xml(err.to_string()))?
            .into_owned();
        if let Some(&q) = QNAME_ATTRS.iter().find(|&&q| q == key) {
            // A QName value resolves like an element name: unprefixed means the
            // default namespace (XML Schema part 2, section 3.2.18).
            let (ns, local) =
                reader.resolve(quick_xml::name::QName(value.trim().as_bytes()), false);
            let local = String::from_utf8_lossy(local.as_ref()).into_owned();
            node.qnames.push((
                q,
                QName {
                    ns: resolved(ns),
                    local,
                },
            ));
        }
        node.attrs.push((key, value));
    }
    Ok(node)
}

const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// The schemas in the WSDL's `types`, for looking up the elements and complex types
/// a message part names.
struct Schemas<'a> {
    schemas: Vec<&'a Node>,
}

impl<'a> Schemas<'a> {
    fn of(definitions: &'a Node) -> Schemas<'a> {
        let mut schemas = Vec::new();
        for types in definitions.kids(WSDL_NS, "types") {
            schemas.extend(types.kids(XSD_NS, "schema"));
        }
        Schemas { schemas }
    }

    /// The top-level declaration `what` (`element` or `complexType`) named `name`,
    /// and the schema holding it.
    fn top(&self, what: &str, name: &QName) -> Option<(&'a Node, &'a Node)> {
        self.schemas.iter().find_map(|s| {
            let tns = s.attr("targetNamespace");
            (tns == name.ns.as_deref())
                .then(|| s.named(XSD_NS, what, &name.local).map(|d| (*s, d)))
                .flatten()
        })
    }

    /// The request element for a document/literal part naming `element`: the
    /// element, holding a placeholder for each child its type declares.
    fn part_element(&self, element: &QName) -> Arg {
        let content = match self.top("element", element) {
            None => Content::Empty,
            Some((schema, decl)) => self.content_of(schema, decl),
        };
        Arg::new(element.ns.clone(), &element.local, content)
    }

    /// What an element declaration holds: its inline complex type's children, or
    /// its named complex type's, or (a simple type) a placeholder.
    fn content_of(&self, schema: &'a Node, decl: &'a Node) -> Content {
        if let Some(ct) = decl.kids(XSD_NS, "complexType").next() {
            return Content::Elements(self.children_of(schema, ct));
        }
        match decl.qname("type") {
            Some(t) if t.ns.as_deref() != Some(XSD_NS) => match self.top("complexType", t) {
                Some((schema, ct)) => Content::Elements(self.children_of(schema, ct)),
                // A simple type of the schema (a restricted string, ...).
                None => Content::Placeholder,
            },
            Some(_) => Content::Placeholder,
            // No type at all: xs:anyType; nothing is sent.
            None => Content::Empty,
        }
    }

    /// The child elements a complex type declares in its sequence, all or choice
    /// (of a choice, the first), each with a placeholder.
    fn children_of(&self, schema: &'a Node, ct: &'a Node) -> Vec<Arg> {
        let qualified = schema.attr("elementFormDefault") == Some("qualified");
        let tns = schema.attr("targetNamespace").map(str::to_owned);
        let mut out = Vec::new();
        for group in ["sequence", "all", "choice"] {
            for g in ct.kids(XSD_NS, group) {
                let elements = g.kids(XSD_NS, "element");
                let elements: Vec<&Node> = if group == "choice" {
                    elements.take(1).collect()
                } else {
                    elements.collect()
                };
                for el in elements {
                    if let Some(r) = el.qname("ref") {
                        out.push(Arg::new(r.ns.clone(), &r.local, Content::Placeholder));
                    } else if let Some(name) = el.attr("name") {
                        let form = el.attr("form").map_or(qualified, |f| f == "qualified");
                        let ns = if form { tns.clone() } else { None };
                        out.push(Arg::new(ns, name, Content::Placeholder));
                    }
                }
            }
        }
        out
    }
}

/// Reads a WSDL 1.1 document: the target namespace, the operation to call (the
/// first of [`KNOWN_OPERATIONS`] its port type offers, else its first), that
/// operation's SOAP 1.1 soapAction and style, the SOAP 1.1 address, and the
/// elements its input message declares.
///
/// The port type is the one the SOAP 1.1 port's binding names, when those
/// references resolve; else the document's first binding and port type.
pub(crate) fn parse_wsdl(doc: &[u8]) -> Result<Service, SoapError> {
    let root = tree(doc)?;
    if !root.is(WSDL_NS, "definitions") {
        return Err(SoapError::Wsdl("the root is not a WSDL 1.1 definitions"));
    }
    let tns = root
        .attr("targetNamespace")
        .ok_or(SoapError::Wsdl("no targetNamespace"))?
        .to_owned();
    let (location, binding) = soap_port(&root)?;
    let op = operation(&root, binding)?;
    let operation = op
        .attr("name")
        .ok_or(SoapError::Wsdl("an operation without a name"))?
        .to_owned();
    let view = BindingView::of(binding, &operation, &tns);
    let body = input_body(&root, op, &view, &tns, &operation);
    Ok(Service {
        tns,
        operation,
        action: view.action,
        location,
        body,
    })
}

/// The first SOAP 1.1 port: its address, and the binding it names (else the first
/// SOAP 1.1 binding, else the first binding).
fn soap_port(root: &Node) -> Result<(String, Option<&Node>), SoapError> {
    let mut addresses = Vec::new();
    root.descendants(WSDL_SOAP11_NS, "address", &mut addresses);
    let location = addresses
        .first()
        .and_then(|a| a.attr("location"))
        .ok_or(SoapError::Wsdl("no SOAP 1.1 address"))?
        .to_owned();
    let port_binding = root
        .kids(WSDL_NS, "service")
        .flat_map(|s| s.kids(WSDL_NS, "port"))
        .find(|p| p.kids(WSDL_SOAP11_NS, "address").next().is_some())
        .and_then(|p| p.qname("binding"))
        .map(|q| q.local.clone());
    let bindings: Vec<&Node> = root.kids(WSDL_NS, "binding").collect();
    let binding = port_binding
        .and_then(|name| bindings.iter().find(|b| b.attr("name") == Some(&name)))
        .or_else(|| {
            bindings
                .iter()
                .find(|b| b.kids(WSDL_SOAP11_NS, "binding").next().is_some())
        })
        .or(bindings.first())
        .copied();
    Ok((location, binding))
}

/// The operation to call: of the binding's port type (else the first port type),
/// a known time operation if there is one, else the first.
fn operation<'a>(root: &'a Node, binding: Option<&'a Node>) -> Result<&'a Node, SoapError> {
    let port_type = binding
        .and_then(|b| b.qname("type"))
        .and_then(|t| root.named(WSDL_NS, "portType", &t.local))
        .or_else(|| root.kids(WSDL_NS, "portType").next())
        .ok_or(SoapError::Wsdl("no portType"))?;
    let ops: Vec<&Node> = port_type.kids(WSDL_NS, "operation").collect();
    KNOWN_OPERATIONS
        .iter()
        .find_map(|known| ops.iter().find(|o| o.attr("name") == Some(known)))
        .or(ops.first())
        .copied()
        .ok_or(SoapError::Wsdl("no operation in a portType"))
}

/// The binding's view of the operation: soapAction, style, rpc namespace.
struct BindingView {
    action: String,
    rpc: bool,
    rpc_ns: String,
}

impl BindingView {
    fn of(binding: Option<&Node>, operation: &str, tns: &str) -> BindingView {
        let binding_op = binding.and_then(|b| b.named(WSDL_NS, "operation", operation));
        let soap_op = binding_op.and_then(|o| o.kids(WSDL_SOAP11_NS, "operation").next());
        let action = soap_op
            .and_then(|o| o.attr("soapAction"))
            .unwrap_or_default()
            .to_owned();
        let style = soap_op
            .and_then(|o| o.attr("style"))
            .or_else(|| {
                binding
                    .and_then(|b| b.kids(WSDL_SOAP11_NS, "binding").next())
                    .and_then(|b| b.attr("style"))
            })
            .unwrap_or("document");
        let rpc_ns = binding_op
            .and_then(|o| o.kids(WSDL_NS, "input").next())
            .and_then(|i| i.kids(WSDL_SOAP11_NS, "body").next())
            .and_then(|b| b.attr("namespace"))
            .unwrap_or(tns)
            .to_owned();
        BindingView {
            action,
            rpc: style == "rpc",
            rpc_ns,
        }
    }
}

/// The elements the request's body carries, from the input message's parts.
fn input_body(root: &Node, op: &Node, view: &BindingView, tns: &str, operation: &str) -> Vec<Arg> {
    let parts: Vec<&Node> = op
        .kids(WSDL_NS, "input")
        .next()
        .and_then(|i| i.qname("message"))
        .and_then(|m| root.named(WSDL_NS, "message", &m.local))
        .map(|m| m.kids(WSDL_NS, "part").collect())
        .unwrap_or_default();
    if view.rpc {
        // rpc/literal: a wrapper named after the operation, one unqualified
        // accessor per part (WSDL 1.1 section 3.5, WS-I Basic Profile 4.7.20).
        let accessors = parts
            .iter()
            .filter_map(|p| p.attr("name"))
            .map(|name| Arg::new(None, name, Content::Placeholder))
            .collect();
        return vec![Arg::new(
            Some(view.rpc_ns.clone()),
            operation,
            Content::Elements(accessors),
        )];
    }
    if parts.is_empty() {
        // No input message declared: the wrapper element document/literal wrapped
        // would expect.
        return vec![Arg::new(Some(tns.to_owned()), operation, Content::Empty)];
    }
    let schemas = Schemas::of(root);
    parts
        .iter()
        .filter_map(|p| match (p.qname("element"), p.attr("name")) {
            (Some(element), _) => Some(schemas.part_element(element)),
            (None, Some(name)) => Some(Arg::new(None, name, Content::Placeholder)),
            (None, None) => None,
        })
        .collect()
}

/// Appends one request element; `tns` elements use the envelope's `tns` prefix,
/// others declare their namespace on themselves (`n0`, `n1`, ... by depth).
fn write_arg(out: &mut String, arg: &Arg, tns: &str, depth: usize) {
    let (name, decl) = match arg.ns.as_deref() {
        Some(ns) if ns == tns => (format!("tns:{}", arg.local), String::new()),
        Some(ns) => (
            format!("n{depth}:{}", arg.local),
            format!(r#" xmlns:n{depth}="{}""#, escape(ns)),
        ),
        None => (arg.local.clone(), String::new()),
    };
    let name = escape(name.as_str()).into_owned();
    match &arg.content {
        Content::Empty => out.push_str(&format!("<{name}{decl}/>")),
        Content::Placeholder => out.push_str(&format!("<{name}{decl}>{PLACEHOLDER}</{name}>")),
        Content::Elements(kids) if kids.is_empty() => out.push_str(&format!("<{name}{decl}/>")),
        Content::Elements(kids) => {
            out.push_str(&format!("<{name}{decl}>"));
            for k in kids {
                write_arg(out, k, tns, depth + 1);
            }
            out.push_str(&format!("</{name}>"));
        }
    }
}

/// The SOAP 1.1 request envelope calling `service`'s operation, with an element
/// for every input the WSDL declares (a placeholder value in each).
pub(crate) fn request(service: &Service) -> String {
    let mut body = String::new();
    for arg in &service.body {
        write_arg(&mut body, arg, &service.tns, 0);
    }
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:tns="{}"><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#,
        escape(service.tns.as_str()),
    )
}

fn is_in(reader: &NsReader<&[u8]>, e: &BytesStart, ns: &str, local: &str) -> bool {
    let (n, l) = reader.resolve_element(e.name());
    matches!(n, ResolveResult::Bound(b) if b.as_ref() == ns.as_bytes())
        && l.as_ref() == local.as_bytes()
}

/// One thing [`walk`] visits.
enum Visit<'r, 'e> {
    /// A start (or empty) element and the number of elements open around it.
    Start(&'r NsReader<&'r [u8]>, &'e BytesStart<'e>, usize),
    /// A text node and the number of elements open around it.
    Text(&'e str, usize),
}

/// Visits every start (or empty) element and text node, refusing a DOCTYPE and
/// bounding the depth.
fn walk(
    doc: &[u8],
    mut visit: impl FnMut(Visit<'_, '_>) -> Result<(), SoapError>,
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
                visit(Visit::Start(&reader, &e, depth))?;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SoapError::Xml(format!("nested deeper than {MAX_DEPTH}")));
                }
            }
            Event::Empty(e) => visit(Visit::Start(&reader, &e, depth))?,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) => {
                let t = t.decode().map_err(|e| SoapError::Xml(e.to_string()))?;
                visit(Visit::Text(&t, depth))?;
            }
            Event::CData(t) => {
                let t = t.decode().map_err(|e| SoapError::Xml(e.to_string()))?;
                visit(Visit::Text(&t, depth))?;
            }
            Event::DocType(_) => return Err(SoapError::Xml("a DOCTYPE is not accepted".into())),
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
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
            Visit::Start(r, e, depth) => {
                if body_depth.is_none() && is_in(r, e, SOAP11_ENV, "Body") {
                    body_depth = Some(depth);
                } else if body_depth.is_some_and(|b| depth == b + 1)
                    && is_in(r, e, SOAP11_ENV, "Fault")
                {
                    fault_depth = Some(depth);
                }
                in_faultstring = fault_depth.is_some() && e.local_name().as_ref() == b"faultstring";
            }
            Visit::Text(t, depth) => {
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
                body: vec![Arg::new(
                    Some("http://time.example/soap".into()),
                    "get_time",
                    Content::Empty
                )],
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

    /// The WSDL spyne 2.14 serves for an operation `get_datetime` with a declared
    /// mandatory input `dummy` (tests/partners/time/soap_service.py --dummy).
    const SPYNE_DUMMY_WSDL: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<wsdl:definitions xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:wsdlsoap11="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:tns="http://sd.example/time" targetNamespace="http://sd.example/time" name="Application"><wsdl:types><xs:schema targetNamespace="http://sd.example/time" elementFormDefault="qualified"><xs:complexType name="get_datetimeResponse"><xs:sequence><xs:element name="get_datetimeResult" type="xs:string" minOccurs="0" nillable="true"/></xs:sequence></xs:complexType><xs:simpleType name="get_datetime_dummyType"><xs:restriction base="xs:string"><xs:minLength value="1"/></xs:restriction></xs:simpleType><xs:complexType name="get_datetime"><xs:sequence><xs:element name="dummy" type="tns:get_datetime_dummyType"/></xs:sequence></xs:complexType><xs:element name="get_datetimeResponse" type="tns:get_datetimeResponse"/><xs:element name="get_datetime" type="tns:get_datetime"/></xs:schema></wsdl:types><wsdl:message name="get_datetime"><wsdl:part name="get_datetime" element="tns:get_datetime"/></wsdl:message><wsdl:message name="get_datetimeResponse"><wsdl:part name="get_datetimeResponse" element="tns:get_datetimeResponse"/></wsdl:message><wsdl:service name="TimeService"><wsdl:port name="Application" binding="tns:Application"><wsdlsoap11:address location="http://127.0.0.1:18771/"/></wsdl:port></wsdl:service><wsdl:portType name="Application"><wsdl:operation name="get_datetime" parameterOrder="get_datetime"><wsdl:input name="get_datetime" message="tns:get_datetime"/><wsdl:output name="get_datetimeResponse" message="tns:get_datetimeResponse"/></wsdl:operation></wsdl:portType><wsdl:binding name="Application" type="tns:Application"><wsdlsoap11:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/><wsdl:operation name="get_datetime"><wsdlsoap11:operation soapAction="get_datetime" style="document"/><wsdl:input name="get_datetime"><wsdlsoap11:body use="literal"/></wsdl:input><wsdl:output name="get_datetimeResponse"><wsdlsoap11:body use="literal"/></wsdl:output></wsdl:operation></wsdl:binding></wsdl:definitions>"#;

    #[test]
    fn sends_an_element_for_a_declared_dummy_input() {
        let s = parse_wsdl(SPYNE_DUMMY_WSDL.as_bytes()).unwrap();
        assert_eq!(s.operation, "get_datetime");
        assert_eq!(s.action, "get_datetime");
        let req = request(&s);
        assert!(
            req.contains("<tns:get_datetime><tns:dummy>0</tns:dummy></tns:get_datetime>"),
            "{req}"
        );
    }

    #[test]
    fn an_inline_wrapper_with_unqualified_children() {
        let wsdl = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:s="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:x="http://www.w3.org/2001/XMLSchema" xmlns:t="urn:t" targetNamespace="urn:t"><types><x:schema targetNamespace="urn:t"><x:element name="get_current_datetime"><x:complexType><x:sequence><x:element name="a" type="x:int"/><x:element name="b" type="x:string" minOccurs="0"/></x:sequence></x:complexType></x:element></x:schema></types><message name="in"><part name="parameters" element="t:get_current_datetime"/></message><portType name="P"><operation name="get_current_datetime"><input message="t:in"/></operation></portType><binding name="B" type="t:P"><s:binding style="document"/><operation name="get_current_datetime"><s:operation soapAction=""/></operation></binding><service name="S"><port name="p" binding="t:B"><s:address location="http://h/"/></port></service></definitions>"#;
        let s = parse_wsdl(wsdl.as_bytes()).unwrap();
        assert_eq!(s.action, "");
        assert_eq!(
            request(&s).split("<soapenv:Body>").nth(1).unwrap(),
            "<tns:get_current_datetime><a>0</a><b>0</b></tns:get_current_datetime></soapenv:Body></soapenv:Envelope>"
        );
    }

    #[test]
    fn rpc_style_sends_one_accessor_per_part() {
        let wsdl = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:s="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:t="urn:t" targetNamespace="urn:t"><message name="in"><part name="dummy" type="xsd:string"/></message><portType name="P"><operation name="get_datetime"><input message="t:in"/></operation></portType><binding name="B" type="t:P"><s:binding style="rpc"/><operation name="get_datetime"><s:operation soapAction="urn:t#get_datetime"/><input><s:body use="literal" namespace="urn:rpc"/></input></operation></binding><service name="S"><port name="p" binding="t:B"><s:address location="http://h/"/></port></service></definitions>"#;
        let s = parse_wsdl(wsdl.as_bytes()).unwrap();
        let req = request(&s);
        assert!(
            req.contains(
                r#"<n0:get_datetime xmlns:n0="urn:rpc"><dummy>0</dummy></n0:get_datetime>"#
            ),
            "{req}"
        );
    }

    #[test]
    fn chooses_a_known_operation_and_follows_the_soap11_port() {
        // Two bindings: SOAP 1.2 first (not ours), then SOAP 1.1 naming port type Q,
        // whose operations are "help" and "get_current_datetime".
        let wsdl = r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:s="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:s12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:t="urn:t" targetNamespace="urn:t"><portType name="P"><operation name="other"/></portType><portType name="Q"><operation name="help"/><operation name="get_current_datetime"/></portType><binding name="B12" type="t:P"><s12:binding style="document"/></binding><binding name="B11" type="t:Q"><s:binding style="document"/><operation name="get_current_datetime"><s:operation soapAction="now"/></operation></binding><service name="S"><port name="p12" binding="t:B12"><s12:address location="http://h/12"/></port><port name="p11" binding="t:B11"><s:address location="http://h/11"/></port></service></definitions>"#;
        let s = parse_wsdl(wsdl.as_bytes()).unwrap();
        assert_eq!(s.operation, "get_current_datetime");
        assert_eq!(s.action, "now");
        assert_eq!(s.location, "http://h/11");
        assert!(request(&s).contains("<tns:get_current_datetime/>"));
        // With several known ones, get_time comes first.
        let both = wsdl.replace(r#"operation name="help""#, r#"operation name="get_time""#);
        assert_eq!(parse_wsdl(both.as_bytes()).unwrap().operation, "get_time");
    }

    #[test]
    fn rejects_a_document_that_is_not_a_wsdl() {
        assert_eq!(
            parse_wsdl(b"<html><body>hello</body></html>"),
            Err(SoapError::Wsdl("the root is not a WSDL 1.1 definitions"))
        );
        assert!(matches!(
            parse_wsdl(b"<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\">"),
            Err(SoapError::Xml(_))
        ));
        let deep = format!(
            r#"<definitions xmlns="http://schemas.xmlsoap.org/wsdl/">{}{}</definitions>"#,
            "<a>".repeat(MAX_DEPTH + 2),
            "</a>".repeat(MAX_DEPTH + 2)
        );
        assert!(matches!(
            parse_wsdl(deep.as_bytes()),
            Err(SoapError::Xml(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_wsdl_reader(doc in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_wsdl(&doc);
        }
    }
}
