//! The DATETIME stamped on every index request: asked from the time service
//! (PROTOCOL.md section 4), or taken from the local clock when the service cannot
//! be reached.
//!
//! Two kinds of service: a REST one answers a GET of its URL (any path: peerdex's
//! `/`, a course service's `/fecha` or `/datetime`) with the DATETIME as plain text
//! or as JSON (`{"datetime": "..."}`, or a bare JSON string as FastAPI sends a
//! returned `str`), told apart by the Content-Type and the body ([`read_answer`]);
//! a course service that speaks only SOAP 1.1 is given by its WSDL address (a URL
//! ending in `?wsdl`, or the `WSDL_URL` variable as the reference client reads it):
//! the WSDL is read once, then every DATETIME is one SOAP call (`soap_time`).
//!
//! Owns: choosing the source, the HTTP requests, their timeout and body limits, the
//! validation of the answer, and the one-time warning on stderr. Does not own: the
//! DATETIME format (`clock`), the SOAP documents (`soap_time`) or the time service
//! itself (`timesvc`).

use std::time::Duration;

use super::output::Output;
use super::soap_time::{self, Service, SoapError};
use crate::proto::datetime;

/// The time service when neither `--time-url` nor `WSDL_URL` names one.
pub(crate) const DEFAULT_TIME_URL: &str = "http://127.0.0.1:8000/";

/// Largest WSDL read. A one-operation WSDL is 2-4 KiB (spyne's is 3 KiB); this
/// leaves room for big generated ones and caps what a wrong URL makes us read.
const MAX_WSDL: u64 = 256 * 1024;

/// Largest SOAP response read: the envelope around a 19-byte string is under 1 KiB;
/// a Fault with a stack trace can be a few KiB.
const MAX_SOAP_BODY: u64 = 64 * 1024;

/// How long one request to the time service may take in all (connect, send, answer).
/// The service is meant to be local or nearby; a second is ample, and a dead service
/// costs each command at most this much before the local clock is used.
pub(super) const TIME_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest answer read from the time service. The real answer has 19 bytes (55 as
/// peerdex's JSON, a little more pretty-printed); anything much longer is not a
/// DATETIME.
const MAX_TIME_BODY: u64 = 256;

/// Why the time service gave no usable DATETIME.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TimeSourceError {
    #[error("http: {0}")]
    Http(#[source] ureq::Error),
    /// The WSDL or the SOAP response could not be used.
    #[error("{0}")]
    Soap(#[source] SoapError),
    /// A SOAP answer with a status other than 200 and no Fault.
    #[error("http: status {0}")]
    Status(u16),
    /// The body is not `dd/mm/YYYY HH:MM:SS`.
    #[error("malformed: {0:?} is not a DATETIME")]
    Malformed(String),
    /// A JSON answer that is not valid JSON, or has no `datetime` string.
    #[error("json: {0}")]
    Json(String),
}

/// The time service URL: `--time-url`, else `WSDL_URL` (if set and not empty),
/// else [`DEFAULT_TIME_URL`]; and whether it is a WSDL address (a SOAP service).
pub(crate) fn choose_url(option: Option<&str>, env: Option<&str>) -> (String, bool) {
    match (option, env.map(str::trim).filter(|e| !e.is_empty())) {
        (Some(url), _) => (url.to_owned(), is_wsdl_url(url)),
        (None, Some(wsdl)) => (wsdl.to_owned(), true),
        (None, None) => (DEFAULT_TIME_URL.to_owned(), false),
    }
}

/// A URL ending in `?wsdl` (any case) is a WSDL address.
pub(crate) fn is_wsdl_url(url: &str) -> bool {
    url.len() >= 5
        && url
            .get(url.len() - 5..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case("?wsdl"))
}

/// `application/json` or any `+json` type (parameters ignored).
fn is_json_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
        || media
            .get(media.len().saturating_sub(5)..)
            .is_some_and(|t| t.eq_ignore_ascii_case("+json"))
}

/// The DATETIME text of a REST answer (validated by the caller). JSON when the
/// Content-Type says so or the body starts with `{`: an object's `datetime` string,
/// or a bare JSON string; otherwise the body is the text.
fn read_answer(json_type: bool, body: &str) -> Result<String, TimeSourceError> {
    let trimmed = body.trim();
    if !json_type && !trimmed.starts_with('{') {
        return Ok(trimmed.to_owned());
    }
    let value: serde_json::Value = serde_json::from_str(trimmed)
        .map_err(|e| TimeSourceError::Json(format!("not JSON ({e})")))?;
    match value {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Object(map) => match map.get("datetime") {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(TimeSourceError::Json("\"datetime\" is not a string".into())),
            None => Err(TimeSourceError::Json(
                "the object has no \"datetime\" field".into(),
            )),
        },
        _ => Err(TimeSourceError::Json(
            "neither an object with \"datetime\" nor a string".into(),
        )),
    }
}

/// Source of DATETIMEs for one shell.
pub(crate) struct TimeClock {
    url: String,
    /// `url` is a WSDL address.
    soap: bool,
    /// The SOAP service, once its WSDL was read.
    service: Option<Service>,
    agent: ureq::Agent,
    warned: bool,
}

impl TimeClock {
    pub(crate) fn new(url: String, soap: bool) -> TimeClock {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIME_TIMEOUT))
            // The time service is on the local network: never route it through a
            // proxy from the environment.
            .proxy(None)
            .build();
        TimeClock {
            url,
            soap,
            service: None,
            agent: config.into(),
            warned: false,
        }
    }

    /// Asks the time service once.
    pub(crate) fn fetch(&mut self) -> Result<String, TimeSourceError> {
        let body = if self.soap {
            let result = self.call_soap();
            if result.is_err() {
                // Read the WSDL again next time: the service may have moved.
                self.service = None;
            }
            result?
        } else {
            let mut response = self
                .agent
                .get(&self.url)
                .call()
                .map_err(TimeSourceError::Http)?;
            let json = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_json_type);
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_TIME_BODY)
                .read_to_string()
                .map_err(TimeSourceError::Http)?;
            read_answer(json, &body)?
        };
        let time = body.trim();
        if datetime::is_datetime(time) {
            Ok(time.to_owned())
        } else {
            Err(TimeSourceError::Malformed(time.chars().take(64).collect()))
        }
    }

    /// Reads the WSDL (first time only), then calls its operation; returns the
    /// string result.
    fn call_soap(&mut self) -> Result<String, TimeSourceError> {
        if self.service.is_none() {
            let mut response = self
                .agent
                .get(&self.url)
                .call()
                .map_err(TimeSourceError::Http)?;
            let wsdl = response
                .body_mut()
                .with_config()
                .limit(MAX_WSDL)
                .read_to_vec()
                .map_err(TimeSourceError::Http)?;
            let service = soap_time::parse_wsdl(&wsdl).map_err(TimeSourceError::Soap)?;
            log::debug!("time service: {service:?}");
            self.service = Some(service);
        }
        let service = self.service.as_ref().expect("just read");
        let mut response = self
            .agent
            .post(&service.location)
            // A Fault comes with status 500 (SOAP 1.1 section 6.2): read its
            // faultstring rather than stop at the status.
            .config()
            .http_status_as_error(false)
            .build()
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{}\"", service.action))
            .send(soap_time::request(service))
            .map_err(TimeSourceError::Http)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_SOAP_BODY)
            .read_to_vec()
            .map_err(TimeSourceError::Http)?;
        let result = soap_time::parse_response(&body).map_err(TimeSourceError::Soap);
        match result {
            Ok(_) if status != 200 => Err(TimeSourceError::Status(status)),
            other => other,
        }
    }

    /// A clock of the same service for another thread (a watch's): its WSDL is read
    /// again when needed, and the warning said once by either is not said again.
    pub(crate) fn twin(&self) -> TimeClock {
        let mut twin = TimeClock::new(self.url.clone(), self.soap);
        twin.warned = self.warned;
        twin
    }

    /// The DATETIME for the next request: the service's, or the local clock's (and a
    /// warning on stderr the first time that happens).
    pub(crate) fn now(&mut self, out: &Output) -> String {
        match self.fetch() {
            Ok(time) => time,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    out.note(format!(
                        "time service {} unavailable ({e}); using the local clock",
                        self.url
                    ));
                }
                log::debug!("time service: {e}");
                datetime::now()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_beats_wsdl_url_beats_default() {
        assert_eq!(
            choose_url(Some("http://h:1/"), Some("http://w/?wsdl")),
            ("http://h:1/".into(), false)
        );
        assert_eq!(
            choose_url(Some("http://h:1/?WSDL"), None),
            ("http://h:1/?WSDL".into(), true)
        );
        assert_eq!(
            choose_url(None, Some("http://w:8000/?wsdl")),
            ("http://w:8000/?wsdl".into(), true)
        );
        assert_eq!(
            choose_url(None, Some(" ")),
            (DEFAULT_TIME_URL.into(), false)
        );
        assert!(!is_wsdl_url("wsdl"));
    }

    #[test]
    fn reads_text_and_json_answers() {
        let t = "02/12/2026 08:00:01";
        assert_eq!(read_answer(false, &format!("{t}\n")).unwrap(), t);
        let obj = format!(r#"{{"datetime": "{t}", "unix_ms": 1}}"#);
        assert_eq!(read_answer(true, &obj).unwrap(), t);
        // The body decides even under a text type (Flask's default for a dict is
        // JSON, but hand-written servers label it text/html).
        assert_eq!(read_answer(false, &format!(" {obj}")).unwrap(), t);
        // FastAPI returning a str: a JSON string.
        assert_eq!(read_answer(true, &format!("\"{t}\"")).unwrap(), t);
        assert!(matches!(
            read_answer(true, r#"{"fecha": "x"}"#),
            Err(TimeSourceError::Json(_))
        ));
        assert!(matches!(
            read_answer(true, r#"{"datetime": 5}"#),
            Err(TimeSourceError::Json(_))
        ));
        assert!(matches!(
            read_answer(false, "{not json"),
            Err(TimeSourceError::Json(_))
        ));
        assert!(matches!(
            read_answer(true, "[1]"),
            Err(TimeSourceError::Json(_))
        ));
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_type("application/json"));
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(!is_json_type("text/plain; charset=utf-8"));
        assert!(!is_json_type("json"));
    }
}
