//! `peerdex time`: the time web service (PROTOCOL.md section 4).
//!
//! Not built yet: this module is filled in by the time service issue.

/// Command-line options of `peerdex time`.
#[derive(clap::Args, Debug, Clone)]
pub struct TimeArgs {
    /// TCP port.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

/// Runs the time service.
pub fn run(_args: TimeArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("the time service is not built yet".into())
}
