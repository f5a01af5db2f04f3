//! `peerdex client`: the interactive shell (PROTOCOL.md section 5).
//!
//! Not built yet: this module is filled in by the client issue.

/// Command-line options of `peerdex client`.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Index server host.
    #[arg(short, long)]
    pub server: String,
    /// Index server port.
    #[arg(short, long)]
    pub port: u16,
}

/// Runs the shell.
pub fn run(_args: ClientArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("the client is not built yet".into())
}
