//! `peerdex logger`: the ONC-RPC audit logger (PROTOCOL.md section 3).
//!
//! Not built yet: this module is filled in by the logger issue.

/// Command-line options of `peerdex logger`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoggerArgs {
    /// Port for TCP and UDP (0: any).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Runs the logger.
pub fn run(_args: LoggerArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("the logger is not built yet".into())
}
