//! The hash worker and its cache.

use super::*;
use crate::client::peer::files::SharedFiles;
use std::time::Duration;

/// A table of shared files with a cache, publishing `f` with `content`.
fn published(content: &[u8]) -> (tempfile::TempDir, Arc<SharedFiles>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("f"), content).unwrap();
    let cache = root.join("state/hashes");
    let files = SharedFiles::with_hash_cache(root.clone(), cache.clone());
    files.insert("f", files.resolve("f").unwrap());
    (dir, files, cache)
}

/// Polls the table until the tree of `f` at its current VERSION is ready.
fn wait_tree(files: &SharedFiles) -> Arc<HashTree> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let opened = files.open("f").unwrap();
        if let Some(r) = files.tree("f", &opened.version) {
            return r.tree;
        }
        assert!(Instant::now() < deadline, "no tree in 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_published_file_gets_its_tree_and_a_cache_file() {
    let (_dir, files, cache) = published(b"hello");
    let tree = wait_tree(&files);
    assert_eq!(tree.size, 5);
    assert_eq!(tree.blocks[0][..], Sha256::digest(b"hello")[..]);
    let path = cache_path(&cache, "f");
    assert_eq!(read_cache(&path, "f").as_ref(), Some(&*tree));
    assert_eq!(read_cache(&path, "g"), None);
    // A new table (the next session) takes it from the cache.
    let again = SharedFiles::with_hash_cache(files.local_path(""), cache.clone());
    again.insert("f", files.resolve("f").unwrap());
    assert_eq!(*wait_tree(&again), *tree);
}

#[test]
fn a_new_version_is_hashed_again_and_the_old_tree_is_never_given() {
    let (_dir, files, cache) = published(b"old bytes");
    let old = wait_tree(&files);
    std::fs::write(files.local_path("f"), b"new bytes!").unwrap();
    let opened = files.open("f").unwrap();
    assert_ne!(opened.version, old.version);
    // Asked for the VERSION the file has now, the old tree is never the answer.
    if let Some(r) = files.tree("f", &opened.version) {
        assert_eq!(r.tree.version, opened.version);
    }
    let new = wait_tree(&files);
    assert_eq!(new.version, opened.version);
    assert_eq!(new.blocks[0][..], Sha256::digest(b"new bytes!")[..]);
    assert_eq!(
        read_cache(&cache_path(&cache, "f"), "f").map(|t| t.version),
        Some(opened.version)
    );
}

#[test]
fn a_bad_cache_file_is_ignored_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("f"), b"content").unwrap();
    let cache = root.join("hashes");
    std::fs::create_dir_all(&cache).unwrap();
    let path = cache_path(&cache, "f");
    for bad in ["junk", "fifo", "link", "stale"] {
        let _ = std::fs::remove_file(&path);
        match bad {
            "junk" => std::fs::write(&path, b"peerdex-tree 1\0f\x005\0").unwrap(),
            "fifo" => crate::client::peer::files::tests::mkfifo(&path),
            "link" => std::os::unix::fs::symlink(root.join("f"), &path).unwrap(),
            _ => {
                let stale = HashTree::compute(&mut &b"other"[..], 5, "v0").unwrap();
                write_cache(&path, "f", &stale).unwrap();
            }
        }
        let files = SharedFiles::with_hash_cache(root.clone(), cache.clone());
        files.insert("f", files.resolve("f").unwrap());
        let tree = wait_tree(&files);
        assert_eq!(tree.blocks[0][..], Sha256::digest(b"content")[..], "{bad}");
        let cached = read_cache(&path, "f");
        assert_eq!(cached.as_ref(), Some(&*tree), "{bad}");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file(), "{bad}");
    }
    // The file the link pointed to is untouched.
    assert_eq!(std::fs::read(root.join("f")).unwrap(), b"content");
}

#[test]
fn a_deleted_name_has_no_tree_nor_cache_file_and_the_queue_is_bounded() {
    let (_dir, files, cache) = published(b"x");
    wait_tree(&files);
    assert!(cache_path(&cache, "f").is_file());
    files.remove("f");
    assert!(!cache_path(&cache, "f").exists());
    // CONNECT's clear keeps the cache for the names served again.
    files.insert("f", files.resolve("f").unwrap());
    wait_tree(&files);
    files.clear();
    assert!(cache_path(&cache, "f").is_file());
    let (queue, _jobs) = crossbeam_channel::bounded(1);
    let hashes = Hashes {
        table: Table::default(),
        queue,
        cache: None,
    };
    assert!(hashes.get("a", "v").is_none());
    assert!(matches!(hashes.table.lock().get("a"), Some(Slot::Pending)));
    // The queue is full: "b" is not pending, and is asked again next time.
    assert!(hashes.get("b", "v").is_none());
    assert!(hashes.table.lock().get("b").is_none());
    hashes.forget("a");
    assert!(hashes.table.lock().is_empty());
}
