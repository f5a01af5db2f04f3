//! The command line of `peerdex client` and what it makes: the [`Settings`] of a
//! session, the output's colour, the end of `--help`.
//!
//! Owns: the options, checking the share folder, the errors that stop the shell
//! before or after it ran. Does not own: the session (`session`) or the shell loop
//! (`client`).

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use super::command;
use super::fetch;
use super::jobs;
use super::peer::ServeOptions;
use super::published;
use super::session::Settings;
use super::shell;
use super::timeclock::{self, TimeClock};
use super::watch;

/// Command-line options of `peerdex client`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = client_after_help())]
pub struct ClientArgs {
    /// Index server host.
    #[arg(short, long)]
    pub server: String,
    /// Index server port.
    #[arg(short, long)]
    pub port: u16,
    /// Time service asked for the DATETIME of every request: http://HOST:PORT/ (plain
    /// GET), or a SOAP service's WSDL, http://HOST:PORT/?wsdl. Default: $WSDL_URL (a
    /// WSDL), else http://127.0.0.1:8000/. The local clock is used when it cannot be
    /// reached.
    #[arg(long, value_name = "URL")]
    pub time_url: Option<String>,
    /// Folder that relative file names (PUBLISH, GET_FILE's local file) resolve
    /// against.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub share: PathBuf,
    /// Where this client keeps its record of what its users published from here
    /// (default: $XDG_STATE_HOME/peerdex, else ~/.local/state/peerdex). Only files in
    /// that record are ever served.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Send requests in the first-version layout, without DATETIME (for index servers
    /// written to part 1 of the statement); the time service is not asked.
    #[arg(long)]
    pub no_datetime: bool,
    /// In a script (stdin not a terminal), exit 0 even when commands failed. Without
    /// it a script exits 1 after any FAIL message or usage error.
    #[arg(long)]
    pub keep_going: bool,
    /// Upload rate limit per download served, in bytes per second (default: none).
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_upload_rate: Option<u64>,
    /// Serve plain GET_FILE with `SIZE\0` after the result byte 0, as some course
    /// slides show it (the statement sends no size; its downloaders then store the
    /// size text as part of the file).
    #[arg(long)]
    pub get_file_size_header: bool,
    /// The course statement the lab follows, for what the bytes cannot tell: 2024
    /// (2023-24: PUBLISH and DELETE send the name as typed; plain GET_FILE answers 0
    /// then the content) or 2025 (2024-25: they send the file's absolute path, which
    /// must be inside --share, and the peer serves it by that path only; 0, the size
    /// string, then the content, as `--get-file-size-header`).
    #[arg(long, default_value = "2024", value_name = "YEAR")]
    pub statement: crate::proto::index::Statement,
    /// Background transfers (`GET_FILE ... &`, `FETCH ... &`) run at once; the rest
    /// wait in order.
    #[arg(long, default_value_t = jobs::DEFAULT_MAX_DOWNLOADS, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=jobs::MAX_MAX_DOWNLOADS))]
    pub max_downloads: u16,
    /// FETCH downloads from up to N owners of the same content at once, block by
    /// block, every block verified against the owners' hash tree (peerdex peers
    /// only; 1: one owner at a time).
    #[arg(long, default_value_t = fetch::DEFAULT_MAX_SOURCES, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=fetch::MAX_MAX_SOURCES))]
    pub max_sources: u16,
    /// PUBLISH every completed download under its local name with the remote
    /// description (the shell's `RESHARE on|off` toggles it).
    #[arg(long)]
    pub reshare: bool,
    /// Seconds between two SEARCHes of a WATCH pattern, jittered by 20%, doubled
    /// (up to 15 min) while nothing new is found; never under 5 s per pattern.
    #[arg(long, default_value_t = watch::DEFAULT_INTERVAL_SECS, value_name = "SECS",
          value_parser = clap::value_parser!(u64)
              .range(watch::MIN_INTERVAL_SECS..=watch::MAX_INTERVAL_SECS))]
    pub watch_interval: u64,
}

/// Why the shell could not start, or why it ends in failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error("share folder {}: {source}", path.display())]
    Share { path: PathBuf, source: io::Error },
    #[error("input: {0}")]
    Input(#[source] io::Error),
    /// A script ran to its end but some of its commands failed.
    #[error("some commands failed (see above; --keep-going exits 0)")]
    CommandsFailed,
}

impl ClientArgs {
    /// The session these options describe; fails when the share folder is not one.
    pub(crate) fn settings(&self) -> Result<Settings, ClientError> {
        let share = std::fs::canonicalize(&self.share).map_err(|source| ClientError::Share {
            path: self.share.clone(),
            source,
        })?;
        if !share.is_dir() {
            return Err(ClientError::Share {
                path: self.share.clone(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let env = std::env::var("WSDL_URL").ok();
        let (url, soap) = timeclock::choose_url(self.time_url.as_deref(), env.as_deref());
        Ok(Settings {
            server: format!("{}:{}", self.server, self.port),
            clock: TimeClock::new(url, soap),
            no_datetime: self.no_datetime,
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| published::default_state_dir(&share)),
            share,
            serve: ServeOptions {
                max_rate: self.max_upload_rate,
                size_header: self.get_file_size_header,
                statement: self.statement,
            },
            reshare: self.reshare,
            watch_interval: std::time::Duration::from_secs(self.watch_interval),
            max_sources: usize::from(self.max_sources),
            terminal_out: io::stdout().is_terminal(),
        })
    }
}

/// Whether messages are coloured: stdout is a terminal and NO_COLOR is not set.
pub(crate) fn colour() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The end of `peerdex client --help`: the shell's commands, where the history is
/// kept (as this environment says), and a few examples.
fn client_after_help() -> String {
    let history = shell::history_path().map_or_else(
        || "not kept: neither XDG_STATE_HOME nor HOME is set".to_owned(),
        |p| p.display().to_string(),
    );
    let mut out = command::command_list();
    out.push_str(&format!(
        "\nIn a terminal: line editing, history ({history}), Tab completion of \
         commands, user and file names and local paths.\n"
    ));
    out.push_str(
        "\nExamples:\n  \
         peerdex client -s 127.0.0.1 -p 9090 --share ~/peerdex-share\n  \
         peerdex client -s host -p 9090 --time-url http://host:8000/ < script.txt\n  \
         printf 'REGISTER ann\\nCONNECT ann\\nLIST_USERS\\n' | peerdex client -s host -p 9090\n\
         \nA script exits 1 if any command failed (--keep-going: 0).",
    );
    out
}
