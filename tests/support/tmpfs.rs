//! A small real file system to fill: a tmpfs mounted on a temporary directory,
//! unmounted when dropped (also when the test fails). Mounting needs root: without
//! it the test skips through `skip` (a failure in CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::skip;

pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's `size=` syntax, e.g. `4m`), or says why it
    /// cannot and returns `None` (the caller returns).
    pub fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            skip(test, "needs root (to mount a tmpfs)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            skip(test, "needs mount -t tmpfs");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The file [`Tmpfs::fill`] writes.
    pub fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Fills the file system to the last byte with the file `filler`.
    pub fn fill(&self) {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
    }

    /// Gives back the space [`Tmpfs::fill`] took.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process of the test may still hold a file open there.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
