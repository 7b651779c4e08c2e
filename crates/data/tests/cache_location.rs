//! Where the cache goes when the source folder is read-only: the per-user cache folder
//! (`$XDG_CACHE_HOME/reelvec`), private to the user, and never a cache someone else could have
//! planted. (Its own test binary: it sets `XDG_CACHE_HOME` for the process.)

#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use reelvec_data::{load, LoadOptions};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn read_only_sources_cache_in_a_private_per_user_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    std::env::set_var("XDG_CACHE_HOME", &xdg);
    std::env::remove_var("REELVEC_CACHE_DIR");
    assert_eq!(reelvec_data::cache::user_cache_dir().unwrap(), xdg.join("reelvec"));
    let src = tmp.path().join("ml-latest-small");
    std::fs::create_dir(&src).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml-latest-small");
    for entry in std::fs::read_dir(fixtures).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), src.join(entry.file_name())).unwrap();
    }
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o555)).unwrap();
    let opts = LoadOptions::default();

    assert!(!load(&src, &opts).unwrap().report.from_cache);
    let dir = xdg.join("reelvec");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let cache = &files[0];
    assert!(!src.join(".reelvec-cache").exists());
    assert_eq!((mode(&dir), mode(cache)), (0o700, 0o600));
    assert!(load(&src, &opts).unwrap().report.from_cache);

    // A cache file others may write is not loaded (and is replaced by a private one).
    std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!load(&src, &opts).unwrap().report.from_cache);
    assert_eq!(mode(cache), 0o600);
    assert!(load(&src, &opts).unwrap().report.from_cache);

    // Nor is one in a folder others may write; nothing is written there either.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = std::fs::metadata(cache).unwrap().ino();
    assert!(!load(&src, &opts).unwrap().report.from_cache);
    assert_eq!(std::fs::metadata(cache).unwrap().ino(), before);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(load(&src, &opts).unwrap().report.from_cache);

    // As root: a cache owned by another user (planted) is not loaded.
    if std::fs::metadata(tmp.path()).unwrap().uid() == 0 {
        std::os::unix::fs::chown(cache, Some(65534), None).unwrap();
        assert!(!load(&src, &opts).unwrap().report.from_cache);
    }
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
}
