//! The binary cache through `load`: written on first load, used on the next, rebuilt when the
//! source changes.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use reelvec_data::{load, LoadOptions};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn cache_is_used_and_invalidated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ml-latest-small");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ml-latest-small"), &dir);
    let opts = LoadOptions::default();
    let first = load(&dir, &opts).unwrap();
    assert!(!first.report.from_cache);
    assert!(dir.join(".reelvec-cache/ml-latest.rvc").is_file());
    let second = load(&dir, &opts).unwrap();
    assert!(second.report.from_cache);
    let mut expected = first.clone();
    expected.report.from_cache = true;
    assert_eq!(second, expected);

    // A changed source is parsed again (and the cache rewritten).
    let mut ratings = std::fs::read_to_string(dir.join("ratings.csv")).unwrap();
    ratings.push_str("4,1,5.0,1500000000\n");
    std::fs::write(dir.join("ratings.csv"), ratings).unwrap();
    let third = load(&dir, &opts).unwrap();
    assert!(!third.report.from_cache);
    assert_eq!(third.ratings.len(), first.ratings.len() + 1);
    assert!(load(&dir, &opts).unwrap().report.from_cache);

    // A new optional file changes the fingerprint too.
    std::fs::remove_file(dir.join("links.csv")).unwrap();
    let fourth = load(&dir, &opts).unwrap();
    assert!(!fourth.report.from_cache);
    assert!(fourth.catalogue.links().is_empty());

    // A corrupted cache is rebuilt, not trusted.
    let cache = dir.join(".reelvec-cache/ml-latest.rvc");
    let mut bytes = std::fs::read(&cache).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&cache, bytes).unwrap();
    let fifth = load(&dir, &opts).unwrap();
    assert!(!fifth.report.from_cache);
    assert_eq!(fifth.ratings, fourth.ratings);

    // With the cache off nothing is read.
    assert!(!load(&dir, &LoadOptions { use_cache: false, ..opts }).unwrap().report.from_cache);
}

#[test]
fn generic_files_cache_per_column_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("r.tsv");
    std::fs::write(&f, "1\t2\t3\t4\n2\t1\t5\t6\n").unwrap();
    let tab = reelvec_data::GenericColumns { delimiter: b'\t', ..Default::default() };
    let swapped = reelvec_data::GenericColumns { user: 1, movie: 0, ..tab };
    let a = LoadOptions { generic: Some(tab), ..LoadOptions::default() };
    let b = LoadOptions { generic: Some(swapped), ..LoadOptions::default() };
    assert!(!load(&f, &a).unwrap().report.from_cache);
    let from_b = load(&f, &b).unwrap();
    assert!(!from_b.report.from_cache);
    assert_eq!(from_b.users.raws(), &[2, 1]);
    assert!(load(&f, &a).unwrap().report.from_cache);
    assert_eq!(load(&f, &a).unwrap().users.raws(), &[1, 2]);
}
