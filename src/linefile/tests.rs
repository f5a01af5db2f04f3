use super::*;
use parking_lot::Mutex;
use proptest::prelude::*;
use std::collections::VecDeque;

/// What the next operation on the stand-in file does.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// A write that stores only this many bytes, then fails (disk full).
    ShortWrite(usize),
    /// A failing `set_len`.
    CutFails,
}

/// A file in memory whose writes, cuts and syncs fail when told to.
#[derive(Default)]
struct Flaky {
    bytes: Mutex<Vec<u8>>,
    faults: Mutex<VecDeque<Fault>>,
}

impl Flaky {
    fn take(&self, want: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut faults = self.faults.lock();
        let f = *faults.front()?;
        want(f).then(|| faults.pop_front().expect("front exists"))
    }
}

impl Backing for Flaky {
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self.take(|f| matches!(f, Fault::ShortWrite(_))) {
            Some(Fault::ShortWrite(n)) => {
                let n = n.min(bytes.len().saturating_sub(1));
                self.bytes.lock().extend_from_slice(&bytes[..n]);
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            _ => {
                self.bytes.lock().extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.take(|f| matches!(f, Fault::CutFails)).is_some() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.bytes.lock().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}

fn fault() -> impl Strategy<Value = Option<Fault>> {
    prop_oneof![
        3 => Just(None),
        1 => (0usize..40).prop_map(|n| Some(Fault::ShortWrite(n))),
        1 => Just(Some(Fault::CutFails)),
    ]
}

proptest! {
    /// Whatever fails when, the file holds exactly the lines whose append succeeded,
    /// followed at most by remains that the next append cuts first; and the length
    /// kept in memory is the length of those lines.
    #[test]
    fn holds_exactly_the_acknowledged_lines(
        steps in proptest::collection::vec(("[a-z]{0,20}", fault(), fault()), 1..40),
    ) {
        let mut lf = LineFile::with_len(Flaky::default(), 0);
        let flaky = lf.handle();
        let mut acknowledged = Vec::new();
        for (text, first, second) in steps {
            flaky.faults.lock().extend(first.into_iter().chain(second));
            let line = format!("{text}\n");
            if lf.append(line.as_bytes()).is_ok() {
                acknowledged.extend_from_slice(line.as_bytes());
            }
            flaky.faults.lock().clear();
            let bytes = flaky.bytes.lock().clone();
            prop_assert_eq!(lf.len(), acknowledged.len() as u64);
            prop_assert!(bytes.starts_with(&acknowledged));
            if !lf.is_torn() {
                prop_assert_eq!(&bytes, &acknowledged);
            }
        }
        lf.append(b"").unwrap();
        prop_assert_eq!(&*flaky.bytes.lock(), &acknowledged);
    }
}

#[test]
fn open_cuts_a_torn_last_line_and_appends_after_the_whole_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lines");
    std::fs::write(&path, "one\ntwo\nthr").unwrap();
    let (mut lf, cut) = LineFile::open(&path).unwrap();
    assert_eq!((lf.len(), cut), (8, 3));
    lf.append(b"four\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nfour\n");
    drop(lf);
    std::fs::write(&path, "no newline at all").unwrap();
    let (lf, cut) = LineFile::open(&path).unwrap();
    assert_eq!((lf.len(), cut), (0, 17));
    let (lf2, cut) = LineFile::open(&dir.path().join("new")).unwrap();
    assert_eq!((lf.len(), lf2.len(), cut), (0, 0, 0));
}

/// A tmpfs of a few pages, mounted by the test (as root), unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mounted = root
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Skips visibly (and notes it for `make test`), or fails when system tests are
/// required, as tests/support's `require_tools` does.
fn skip(test: &str, why: &str) {
    let msg = format!("{test}: needs {why}");
    if std::env::var("PEERDEX_REQUIRE_SYSTEM_TESTS").is_ok_and(|v| v == "1") {
        panic!("{msg} (PEERDEX_REQUIRE_SYSTEM_TESTS=1)");
    }
    eprintln!("SKIPPED {msg}; set PEERDEX_REQUIRE_SYSTEM_TESTS=1 to make this a failure");
    if let Some(path) = std::env::var_os("PEERDEX_SKIPPED_FILE")
        && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = Write::write_all(&mut f, format!("{msg}\n").as_bytes());
    }
}

/// On a real full disk: appends fail and leave nothing behind, the file stays whole
/// lines of exactly the acknowledged appends, and appends work again once there is
/// room.
#[test]
fn a_full_disk_leaves_only_whole_acknowledged_lines() {
    let Some(fs) = Tmpfs::mount() else {
        return skip(
            "linefile::a_full_disk_leaves_only_whole_acknowledged_lines",
            "root (to mount a tmpfs)",
        );
    };
    let path = fs.0.path().join("lines");
    let (mut lf, _) = LineFile::open(&path).unwrap();
    let line = format!("{}\n", "x".repeat(1000));
    let mut acknowledged = 0u64;
    let mut failures = 0;
    // Fill the disk with lines until appends fail a few times.
    while failures < 3 {
        match lf.append(line.as_bytes()) {
            Ok(()) => acknowledged += 1,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                failures += 1;
            }
        }
        assert!(acknowledged < 1000, "the 64k tmpfs never filled");
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!((len, lf.len()), (acknowledged * 1001, acknowledged * 1001));
    // Room again (the file emptied): appends succeed.
    lf.clear().unwrap();
    lf.append(line.as_bytes()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), line);
}
