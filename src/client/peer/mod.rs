//! The peer protocol (PROTOCOL.md section 2): one client downloads a file directly
//! from another.
//!
//! Owns: the table of files this client published ([`SharedFiles`], `files`), the
//! listener that serves them ([`PeerListener`], `listener`), and the downloader
//! ([`download`]): GET_FILE_RANGE first, the statement's GET_FILE as the fallback,
//! temporary file then rename, and a hidden partial file to resume from. Does not own: the
//! messages (`proto::peer`), the index protocol or the shell (`client`), the accept
//! loop and the connection cap (`net`).
//!
//! Safety of serving: only names in the table are served. A name is resolved once,
//! when it is published, to a canonical path (no `..`, no symlink left in it). At
//! serve time that path is opened one component at a time with `O_NOFOLLOW`, so a
//! symlink swapped in anywhere along it afterwards is refused (code 1, no bytes), and
//! only a regular file is sent. Content goes from the file to the socket with
//! `sendfile(2)` on Linux (a plain `std::io::copy` elsewhere): memory stays constant
//! whatever the file size.

mod download;
mod files;
mod listener;

use std::time::Duration;

pub(crate) use download::{Done, DownloadError, Progress, Source, download};
pub(crate) use files::SharedFiles;
pub(crate) use listener::{PeerListener, ServeOptions};

/// Downloads served at once by one peer. Each holds a thread (256 KiB stack) and a
/// socket; 64 is far more parallel downloads than one user's uplink can feed, and
/// bounds what a flood of connections can pin. Past it the oldest connection that has
/// not sent its request yet is closed (see `net`).
pub(crate) const MAX_UPLOADS: usize = 64;

/// How long a connection to the listener may take to deliver its request. A request
/// is two or three short fields; a peer that has not sent them in 10 s is not going
/// to.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write of file content may block on a downloader that does not read.
/// Past it the upload is abandoned so a stalled downloader cannot pin a thread.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the downloader waits to connect to a peer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the downloader tolerates silence from the peer, before the reply and
/// between chunks of content. A live peer on any real link sends something within
/// 10 s; past it the download fails and the temporary file is removed.
pub(crate) const DOWNLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the downloader waits for a whole reply header (the code byte, and SIZE
/// and VERSION after GET_FILE_RANGE's 0), however the peer dribbles it. A live peer
/// answers at once; past 10 s a GET_FILE_RANGE attempt counts as unanswered and the
/// plain GET_FILE as failed.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer of the download loop. Large reads amortise the system calls on fast links
/// (loopback moves several GB/s) while keeping the downloader's memory constant.
pub(crate) const DOWNLOAD_BUFFER: usize = 256 * 1024;
