//! The peer protocol (PROTOCOL.md section 2): one client downloads a file directly
//! from another.
//!
//! Owns: the table of files this client published ([`SharedFiles`], `files`), the
//! listener that serves them ([`PeerListener`], `listener`), and the downloader
//! ([`Downloader`]): GET_FILE_RANGE to peers that said they speak it (`speaks`), the
//! statement's GET_FILE alone to the others, temporary file then rename, and a hidden
//! partial file to resume from. Does not own: the
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

mod blockfile;
mod blocks;
mod download;
mod files;
mod hashes;
mod listener;
mod open;
mod speaks;

pub(crate) use blockfile::BlockFile;
pub(crate) use blocks::BlockSink;
pub use blocks::{FetchedBlocks, fetch_blocks};
pub(crate) use download::{Done, DownloadError, Downloader, Progress, Source, Via, is_disk_full};
pub(crate) use files::SharedFiles;
pub(crate) use listener::{PeerListener, ServeOptions};
pub(crate) use open::{StateReadError, read_state};
