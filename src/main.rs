//! The `peerdex` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "peerdex",
    version,
    about = "Napster-style peer-to-peer file sharing",
    after_help = TOP_EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const TOP_EXAMPLES: &str = "\
Examples:
  make run                                    logger, time service and index server at once
  peerdex server -p 9090                      an index server on port 9090
  peerdex client -s 127.0.0.1 -p 9090 --share ~/peerdex-share
                                              a shell (type HELP); one per user
  peerdex client -s host -p 9090 < script.txt run commands from a file
  peerdex <command> --help                    the options and examples of each command";

const SERVER_EXAMPLES: &str = "\
Examples:
  peerdex server -p 9090                                  every interface, audit to the local logger
  peerdex server -p 9090 --logger loghost --advertise 10.0.0.5
  peerdex server -p 9090 --ephemeral --no-logger          a throw-away server for a quick test";

const LOGGER_EXAMPLES: &str = "\
Examples:
  peerdex logger --port 9091                  fixed port, registered with rpcbind when it runs
  peerdex logger --audit /var/log/peerdex.jsonl
  rpcinfo -t localhost 536870913              is it registered? (program 0x20000001)";

const TIME_EXAMPLES: &str = "\
Examples:
  peerdex time --port 8000                    the time service clients ask by default
  peerdex time --port 8000 --bind 127.0.0.1   for clients on this machine only";

#[derive(Subcommand)]
enum Command {
    /// Run the index server.
    #[command(after_help = SERVER_EXAMPLES)]
    Server(peerdex::ServerArgs),
    /// Run the interactive client shell.
    Client(peerdex::ClientArgs),
    /// Run the ONC-RPC audit logger.
    #[command(after_help = LOGGER_EXAMPLES)]
    Logger(peerdex::LoggerArgs),
    /// Run the time web service.
    #[command(after_help = TIME_EXAMPLES)]
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
