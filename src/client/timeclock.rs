//! The DATETIME stamped on every index request: asked from the time service
//! (PROTOCOL.md section 4), or taken from the local clock when the service cannot
//! be reached.
//!
//! Owns: the HTTP request to the time service, its timeout and body limit, the
//! validation of the answer, and the one-time warning on stderr. Does not own: the
//! DATETIME format (`clock`) or the time service itself (`timesvc`).

use std::fmt;
use std::time::Duration;

use crate::proto::datetime;

/// How long one request to the time service may take in all (connect, send, answer).
/// The service is meant to be local or nearby; a second is ample, and a dead service
/// costs each command at most this much before the local clock is used.
pub(super) const TIME_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest answer read from the time service. The real answer has 19 bytes; anything
/// much longer is not a DATETIME.
const MAX_TIME_BODY: u64 = 256;

/// Why the time service gave no usable DATETIME.
#[derive(Debug)]
pub(crate) enum TimeError {
    Http(ureq::Error),
    /// The body is not `dd/mm/YYYY HH:MM:SS`.
    Malformed(String),
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeError::Http(e) => write!(f, "http: {e}"),
            TimeError::Malformed(body) => write!(f, "malformed: {body:?} is not a DATETIME"),
        }
    }
}

impl std::error::Error for TimeError {}

/// Source of DATETIMEs for one shell.
pub(crate) struct TimeClock {
    url: String,
    agent: ureq::Agent,
    warned: bool,
}

impl TimeClock {
    pub(crate) fn new(url: String) -> TimeClock {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIME_TIMEOUT))
            // The time service is on the local network: never route it through a
            // proxy from the environment.
            .proxy(None)
            .build();
        TimeClock {
            url,
            agent: config.into(),
            warned: false,
        }
    }

    /// Asks the time service once.
    pub(crate) fn fetch(&self) -> Result<String, TimeError> {
        let mut response = self.agent.get(&self.url).call().map_err(TimeError::Http)?;
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_TIME_BODY)
            .read_to_string()
            .map_err(TimeError::Http)?;
        let time = body.trim();
        if datetime::is_datetime(time) {
            Ok(time.to_owned())
        } else {
            Err(TimeError::Malformed(time.chars().take(64).collect()))
        }
    }

    /// The DATETIME for the next request: the service's, or the local clock's (and a
    /// warning on stderr the first time that happens).
    pub(crate) fn now(&mut self) -> String {
        match self.fetch() {
            Ok(time) => time,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    eprintln!(
                        "peerdex: time service {} unavailable ({e}); using the local clock",
                        self.url
                    );
                }
                log::debug!("time service: {e}");
                datetime::now()
            }
        }
    }
}
