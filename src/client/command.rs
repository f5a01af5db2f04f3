//! The shell's commands: one table ([`COMMANDS`]) gives each command's word, its
//! parameters, its usage line, what it does, and how its typed [`Command`] is built.
//! Parsing, HELP, the usage lines of `peerdex client --help` and Tab completion all
//! read that table.
//!
//! Owns: turning a line into a [`Command`] or a [`Refusal`] (unknown word, wrong
//! arguments, `&` on a command that cannot run in the background). Does not own:
//! what a command does (`session`) or the messages it prints (`messages`).

use std::fmt;

/// Which command a transfer answers (GET_FILE and FETCH share the downloader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    GetFile,
    Fetch,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::GetFile => "GET_FILE",
            Kind::Fetch => "FETCH",
        }
    }
}

/// Which command of the watch list a line is (client extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchOp {
    Watch,
    Unwatch,
    Watches,
}

impl WatchOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WatchOp::Watch => "WATCH",
            WatchOp::Unwatch => "UNWATCH",
            WatchOp::Watches => "WATCHES",
        }
    }
}

/// What an argument is: how it is read and what Tab completes in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// A user name to create (nothing to complete).
    NewUser,
    /// A user name the server knows (completed from the last LIST_USERS or SEARCH).
    User,
    /// A file name the index lists (completed from the last LIST_CONTENT).
    ListedFile,
    /// A local path, relative to the share folder.
    LocalPath,
    /// A SEARCH pattern (free text, one word).
    Pattern,
    /// PUBLISH's description: every word up to the end of the line.
    Description,
    /// A background job's number.
    Job,
    /// `on` or `off`.
    Switch,
    /// A pattern of the watch list (completed from it).
    Watched,
}

/// One command of the shell.
pub(crate) struct Spec {
    pub(crate) word: &'static str,
    /// The parameters in order; the first `required` must be given.
    pub(crate) params: &'static [Param],
    required: usize,
    /// Whether a trailing `&` may run it in the background.
    background: bool,
    pub(crate) usage: &'static str,
    pub(crate) help: &'static str,
    build: fn(&Words<'_>) -> Result<Command, Bad>,
}

/// Why a builder of the table refused its arguments.
enum Bad {
    /// They do not fit: the usage line says what does.
    Usage,
    Refused(Refusal),
}

/// A parsed command line, its arguments typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Register(String),
    Unregister(String),
    Connect(String),
    Disconnect(String),
    Publish {
        file: String,
        description: String,
    },
    Delete(String),
    ListUsers,
    /// LIST_CONTENT of a user, or of the connected user without one.
    ListContent(Option<String>),
    Search(String),
    /// GET_FILE or FETCH.
    Download(Download),
    Jobs,
    Cancel(u64),
    Reshare(bool),
    /// `WATCH <pattern>`: fetch new matches of a SEARCH pattern by themselves.
    Watch(String),
    Unwatch(String),
    Watches,
    Help,
    Quit,
}

/// A GET_FILE or FETCH line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Download {
    pub(crate) kind: Kind,
    /// GET_FILE's user; `None` for FETCH, which asks every owner of the file.
    pub(crate) owner: Option<String>,
    pub(crate) remote: String,
    /// The local name as typed (`None`: the remote file's base name).
    pub(crate) local: Option<String>,
    /// A trailing `&`: run as a background job.
    pub(crate) background: bool,
}

impl Download {
    /// The local name: as typed, else the remote name's last component; `None`
    /// when it has none (`dir/`, `x/..`).
    pub(crate) fn local_name(&self) -> Option<&str> {
        self.local.as_deref().or_else(|| base_name(&self.remote))
    }
}

impl fmt::Display for Download {
    /// The line as it would be typed, without `&` (JOBS shows it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        let words = [self.owner.as_ref(), Some(&self.remote), self.local.as_ref()];
        words
            .into_iter()
            .flatten()
            .try_for_each(|w| write!(f, " {w}"))
    }
}

/// Why a line is not a command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The first word names no command.
    Unknown(String),
    /// The arguments do not fit the command.
    Usage(&'static Spec),
    /// A trailing `&` on a command that only runs in the foreground.
    NotBackground(&'static str),
    /// CANCEL of something that is not a job number.
    NotAJob(String),
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word)
    }
}

impl PartialEq for Spec {
    fn eq(&self, other: &Spec) -> bool {
        self.word == other.word
    }
}

impl Eq for Spec {}

/// The words of a line after its command word.
struct Words<'a> {
    args: Vec<&'a str>,
    /// Everything after the first argument, as typed (a PUBLISH description).
    rest: &'a str,
    background: bool,
}

impl Words<'_> {
    /// Argument `i` (the table's arity check makes every required one present).
    fn get(&self, i: usize) -> String {
        self.args
            .get(i)
            .map_or_else(String::new, |s| (*s).to_owned())
    }

    fn opt(&self, i: usize) -> Option<String> {
        self.args.get(i).map(|s| (*s).to_owned())
    }
}

use Param::*;

const fn spec(
    word: &'static str,
    params: &'static [Param],
    required: usize,
    usage: &'static str,
    help: &'static str,
    build: fn(&Words<'_>) -> Result<Command, Bad>,
) -> Spec {
    Spec {
        word,
        params,
        required,
        background: false,
        usage,
        help,
        build,
    }
}

const fn in_background(mut s: Spec) -> Spec {
    s.background = true;
    s
}

/// The commands of the shell, in HELP order.
pub(crate) const COMMANDS: &[Spec] = &[
    spec(
        "REGISTER",
        &[NewUser],
        1,
        "REGISTER <user>",
        "create a user name at the index server",
        |w| Ok(Command::Register(w.get(0))),
    ),
    spec(
        "UNREGISTER",
        &[User],
        1,
        "UNREGISTER <user>",
        "remove a user name and everything it published (DISCONNECT it first)",
        |w| Ok(Command::Unregister(w.get(0))),
    ),
    spec(
        "CONNECT",
        &[User],
        1,
        "CONNECT <user>",
        "act as this user: others can now list you and download what you publish",
        |w| Ok(Command::Connect(w.get(0))),
    ),
    spec(
        "DISCONNECT",
        &[User],
        1,
        "DISCONNECT <user>",
        "stop acting as this user; its files stay listed but cannot be downloaded",
        |w| Ok(Command::Disconnect(w.get(0))),
    ),
    spec(
        "PUBLISH",
        &[LocalPath, Description],
        2,
        "PUBLISH <file> <description...>",
        "offer a file of the --share folder to others, with a description",
        |w| {
            Ok(Command::Publish {
                file: w.get(0),
                description: description(w.rest).to_owned(),
            })
        },
    ),
    spec(
        "DELETE",
        &[ListedFile],
        1,
        "DELETE <file>",
        "stop offering a file you published",
        |w| Ok(Command::Delete(w.get(0))),
    ),
    spec(
        "LIST_USERS",
        &[],
        0,
        "LIST_USERS",
        "the connected users with their address and port",
        |_| Ok(Command::ListUsers),
    ),
    spec(
        "LIST_CONTENT",
        &[User],
        0,
        "LIST_CONTENT [<user>]",
        "the files a user published, with their descriptions (yours without a user)",
        |w| Ok(Command::ListContent(w.opt(0))),
    ),
    in_background(spec(
        "GET_FILE",
        &[User, ListedFile, LocalPath],
        2,
        "GET_FILE <user> <remote_file> [<local_file>]",
        "download a file from the user's client into --share (as its own name by default)",
        |w| {
            Ok(Command::Download(Download {
                kind: Kind::GetFile,
                owner: Some(w.get(0)),
                remote: w.get(1),
                local: w.opt(2),
                background: w.background,
            }))
        },
    )),
    spec(
        "SEARCH",
        &[Pattern],
        1,
        "SEARCH <pattern>",
        "files of connected users whose name contains the pattern (case-sensitive)",
        |w| Ok(Command::Search(w.get(0))),
    ),
    in_background(spec(
        "FETCH",
        &[ListedFile, LocalPath],
        1,
        "FETCH <file> [local_file] [&]",
        "download a file by name from any connected owner, trying the next on failure",
        |w| {
            Ok(Command::Download(Download {
                kind: Kind::Fetch,
                owner: None,
                remote: w.get(0),
                local: w.opt(1),
                background: w.background,
            }))
        },
    )),
    spec(
        "JOBS",
        &[],
        0,
        "JOBS",
        "the background transfers (GET_FILE ... & and FETCH ... &) and their progress",
        |_| Ok(Command::Jobs),
    ),
    spec(
        "CANCEL",
        &[Job],
        1,
        "CANCEL <n>",
        "stop background transfer n",
        |w| {
            let n = w.get(0);
            n.parse()
                .map(Command::Cancel)
                .map_err(|_| Bad::Refused(Refusal::NotAJob(n)))
        },
    ),
    spec(
        "RESHARE",
        &[Switch],
        1,
        "RESHARE on|off",
        "publish every completed download under its local name (--reshare)",
        |w| match w.get(0).to_ascii_lowercase().as_str() {
            "on" => Ok(Command::Reshare(true)),
            "off" => Ok(Command::Reshare(false)),
            _ => Err(Bad::Usage),
        },
    ),
    spec(
        "WATCH",
        &[Pattern],
        1,
        "WATCH <pattern>",
        "SEARCH for the pattern now and then, and FETCH each new match in the background",
        |w| Ok(Command::Watch(w.get(0))),
    ),
    spec(
        "UNWATCH",
        &[Watched],
        1,
        "UNWATCH <pattern>",
        "stop watching a pattern (transfers it started go on; CANCEL stops them)",
        |w| Ok(Command::Unwatch(w.get(0))),
    ),
    spec(
        "WATCHES",
        &[],
        0,
        "WATCHES",
        "the watched patterns, with how many files each has fetched",
        |_| Ok(Command::Watches),
    ),
    spec("HELP", &[], 0, "HELP", "this list", |_| Ok(Command::Help)),
    spec(
        "QUIT",
        &[],
        0,
        "QUIT",
        "disconnect and leave (Ctrl+D too; Ctrl+C cancels a running command)",
        |_| Ok(Command::Quit),
    ),
];

/// The command of a word, in any case.
pub(crate) fn find(word: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.word.eq_ignore_ascii_case(word))
}

impl Spec {
    /// Whether `n` arguments fit (a description takes every word left).
    fn fits(&self, n: usize) -> bool {
        let most = match self.params.last() {
            Some(Description) => usize::MAX,
            _ => self.params.len(),
        };
        (self.required..=most).contains(&n)
    }
}

/// Reads one line: `Ok(None)` for an empty line or a `#` comment.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, Refusal> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // A trailing `&` runs GET_FILE or FETCH in the background.
    let (line, background) = match line.strip_suffix('&') {
        Some(rest) => (rest.trim_end(), true),
        None => (line, false),
    };
    let (word, after) = split_word(line);
    let Some(spec) = find(word) else {
        return Err(Refusal::Unknown(word.to_ascii_uppercase()));
    };
    if background && !spec.background {
        return Err(Refusal::NotBackground(spec.word));
    }
    let words = Words {
        args: after.split_whitespace().collect(),
        rest: split_word(after).1,
        background,
    };
    if !spec.fits(words.args.len()) {
        return Err(Refusal::Usage(spec));
    }
    match (spec.build)(&words) {
        Ok(command) => Ok(Some(command)),
        Err(Bad::Usage) => Err(Refusal::Usage(spec)),
        Err(Bad::Refused(refusal)) => Err(refusal),
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// A description as typed, without one pair of enclosing double quotes (LIST_CONTENT
/// shows descriptions in quotes, so users tend to type them that way).
fn description(rest: &str) -> &str {
    let rest = rest.trim();
    rest.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(rest)
}

/// The last component of a remote file name (what GET_FILE and FETCH save it as
/// when no local name is given), or `None` when it has none (`dir/`, `..`).
pub(crate) fn base_name(remote: &str) -> Option<&str> {
    let base = remote.rsplit(['/', '\\']).next()?;
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

/// The HELP text: each command's usage and what it does, one line each.
pub(crate) fn help() -> String {
    let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
    let mut out = String::from("c> commands (the command word is case-insensitive):\n");
    for c in COMMANDS {
        out.push_str(&format!("\t{:width$}  {}\n", c.usage, c.help));
    }
    out
}

/// The commands for `peerdex client --help`: usage, then what each does.
pub(crate) fn command_list() -> String {
    let mut out = String::from("Commands at the c> prompt (the word is case-insensitive):\n");
    for c in COMMANDS {
        out.push_str(&format!("  {}\n      {}\n", c.usage, c.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    #[test]
    fn words_are_case_insensitive_and_the_description_kept() {
        assert_eq!(
            parsed("  publish notes.txt   week 3  notes "),
            Command::Publish {
                file: "notes.txt".into(),
                description: "week 3  notes".into()
            }
        );
        assert_eq!(parsed("List_Users"), Command::ListUsers);
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("# a comment &"), Ok(None));
    }

    #[test]
    fn strips_one_pair_of_quotes_from_a_description() {
        assert_eq!(description("\"week 3\""), "week 3");
        assert_eq!(description("week \"3\""), "week \"3\"");
        assert_eq!(description("\""), "\"");
    }

    #[test]
    fn arguments_are_counted_against_the_table() {
        let usage = |line: &str| match parse(line) {
            Err(Refusal::Usage(s)) => s.usage,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(usage("REGISTER"), "REGISTER <user>");
        assert_eq!(usage("PUBLISH onlyfile"), "PUBLISH <file> <description...>");
        assert_eq!(
            usage("get_file a"),
            "GET_FILE <user> <remote_file> [<local_file>]"
        );
        assert_eq!(usage("LIST_USERS extra"), "LIST_USERS");
        assert_eq!(usage("RESHARE maybe"), "RESHARE on|off");
        assert_eq!(usage("FETCH"), "FETCH <file> [local_file] [&]");
        assert_eq!(parse("FROB x"), Err(Refusal::Unknown("FROB".into())));
        assert_eq!(parse("CANCEL x"), Err(Refusal::NotAJob("x".into())));
        assert_eq!(
            parse("LIST_USERS &"),
            Err(Refusal::NotBackground("LIST_USERS"))
        );
        assert_eq!(parsed("LIST_CONTENT"), Command::ListContent(None));
        assert_eq!(parsed("reshare OFF"), Command::Reshare(false));
        assert_eq!(parsed("watch .pdf"), Command::Watch(".pdf".into()));
        assert_eq!(parsed("UNWATCH .pdf"), Command::Unwatch(".pdf".into()));
        assert_eq!(parsed("Watches"), Command::Watches);
        assert_eq!(usage("WATCH"), "WATCH <pattern>");
        assert_eq!(usage("WATCH a b"), "WATCH <pattern>");
        assert_eq!(parse("WATCH a &"), Err(Refusal::NotBackground("WATCH")));
    }

    #[test]
    fn a_trailing_ampersand_runs_a_transfer_in_the_background() {
        let Command::Download(get) = parsed("get_file alice c.bin c2.bin&") else {
            panic!("not a download");
        };
        assert_eq!(
            get,
            Download {
                kind: Kind::GetFile,
                owner: Some("alice".into()),
                remote: "c.bin".into(),
                local: Some("c2.bin".into()),
                background: true
            }
        );
        assert_eq!(get.to_string(), "GET_FILE alice c.bin c2.bin");
        let Command::Download(fetch) = parsed("FETCH labs/b.bin &") else {
            panic!("not a download");
        };
        assert_eq!(fetch.to_string(), "FETCH labs/b.bin");
        assert_eq!(fetch.local_name(), Some("b.bin"));
        assert!(fetch.background);
        let Command::Download(nameless) = parsed("FETCH x/..") else {
            panic!("not a download");
        };
        assert_eq!(nameless.local_name(), None);
    }

    #[test]
    fn base_name_of_a_remote_file() {
        assert_eq!(base_name("notes.txt"), Some("notes.txt"));
        assert_eq!(base_name("labs/lab1.txt"), Some("lab1.txt"));
        assert_eq!(base_name("/home/a/notes.txt"), Some("notes.txt"));
        assert_eq!(base_name("C:\\work\\a.pdf"), Some("a.pdf"));
        assert_eq!(base_name("labs/"), None);
        assert_eq!(base_name(".."), None);
        assert_eq!(base_name("x/.."), None);
    }

    #[test]
    fn usage_lines_name_their_command_and_help_has_one_line_each() {
        let help = help();
        for c in COMMANDS {
            assert!(c.usage.starts_with(c.word));
            assert!(c.params.len() >= c.required);
            assert!(
                help.lines()
                    .any(|l| l.contains(c.usage) && l.ends_with(c.help)),
                "{help}"
            );
        }
        assert_eq!(help.lines().count(), COMMANDS.len() + 1);
    }
}
