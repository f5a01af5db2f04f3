//! The `peerdex` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "peerdex",
    version,
    about = "Napster-style peer-to-peer file sharing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the index server.
    Server(peerdex::ServerArgs),
    /// Run the interactive client shell.
    Client(peerdex::ClientArgs),
    /// Run the ONC-RPC audit logger.
    Logger(peerdex::LoggerArgs),
    /// Run the time web service.
    Time(peerdex::TimeArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Server(args) => peerdex::run_server(args).map_err(Into::into),
        Command::Client(args) => peerdex::run_client(args),
        Command::Logger(args) => peerdex::run_logger(args),
        Command::Time(args) => peerdex::run_time(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peerdex: {e}");
            ExitCode::FAILURE
        }
    }
}
