//! Ships the server's audit records to the ONC-RPC logger.
//!
//! Owns: the `--logger`/`--no-logger` options and the consumer of the audit channel.
//! Until the RPC logger lands this consumer only writes each record to the debug log.
//! Does not own: the record type (`audit`).

use crate::audit::AuditSink;
use crate::net::Shutdown;

/// Logger options of `peerdex server`.
#[derive(clap::Args, Debug, Clone)]
pub struct ShipperArgs {
    /// Do not ship audit records anywhere.
    #[arg(long)]
    pub no_logger: bool,
}

/// Why shipping could not start.
#[derive(Debug)]
pub enum ShipperError {
    Thread(std::io::Error),
}

impl std::fmt::Display for ShipperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShipperError::Thread(e) => write!(f, "cannot start the shipper thread: {e}"),
        }
    }
}

impl std::error::Error for ShipperError {}

/// The running consumer.
pub struct Shipper {
    thread: std::thread::JoinHandle<()>,
}

impl Shipper {
    /// Waits until every record already queued has been handled (the sink must be
    /// dropped first, or the shutdown flag raised).
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

/// Starts the consumer and returns the sink for request threads.
pub fn start(
    args: &ShipperArgs,
    _shutdown: &Shutdown,
) -> Result<(AuditSink, Option<Shipper>), ShipperError> {
    if args.no_logger {
        return Ok((AuditSink::disabled(), None));
    }
    let (sink, rx) = AuditSink::channel();
    let thread = std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            for record in rx {
                log::debug!("audit: {}", record.line());
            }
        })
        .map_err(ShipperError::Thread)?;
    Ok((sink, Some(Shipper { thread })))
}
