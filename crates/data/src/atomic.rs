//! Whole-file writes that never leave a partial file under the final name, and the ownership
//! check for directories and files this crate trusts (the cache).
//!
//! [`write_atomically`] creates a fresh temporary beside the destination with `O_EXCL` and a
//! random name (`tempfile`, so a planted symlink or file is never followed or reused), writes it,
//! flushes it to disk and renames it over the final name. On any error, or a panic while writing,
//! the temporary is removed; a killed process can leave a `.tmp*` file behind, never a partial
//! file under the final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::DataError;

/// Writes `path` through a temporary in the same folder, renamed into place once complete.
/// `mode` is the file's Unix permission bits (subject to the umask; ignored elsewhere). The
/// folder must exist.
pub(crate) fn write_atomically(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let tmp = builder.tempfile_in(dir).map_err(|e| DataError::io(dir, e))?;
    {
        let mut w = BufWriter::with_capacity(4 << 20, tmp.as_file());
        fill(&mut w)?;
        w.flush().map_err(|e| DataError::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| DataError::io(path, e))?;
    // On failure `persist` hands the temporary back inside the error; dropping it removes it.
    tmp.persist(path).map_err(|e| DataError::io(path, e.error))?;
    Ok(())
}

/// Whether `meta` (of a directory or file) belongs to the current user and cannot be written by
/// group or others: what a cache must satisfy before it is read or written. Always true off Unix.
pub(crate) fn owned_and_private(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        meta.uid() == me && meta.mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// Creates `dir` (and missing parents) with mode 0700, or checks the existing one: an error when
/// it is not a directory owned by the current user and closed to group and others.
pub(crate) fn private_dir(dir: &Path) -> Result<(), DataError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| DataError::io(dir, e))?;
    let meta = std::fs::metadata(dir).map_err(|e| DataError::io(dir, e))?;
    if !meta.is_dir() || !owned_and_private(&meta) {
        return Err(DataError::Invalid(format!(
            "{}: not a directory owned by the current user and closed to others; not used",
            dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_neither_the_file_nor_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let err = write_atomically(&path, 0o644, |w| {
            w.write_all(&[b'x'; 10_000_000]).unwrap();
            Err(DataError::Invalid("stopped half-way".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("half-way"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // An old file under the name is left as it was.
        std::fs::write(&path, b"old").unwrap();
        let _ = write_atomically(&path, 0o644, |_| Err(DataError::Invalid("no".into())));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&path, 0o644, |w| w.write_all(b"new").map_err(|e| DataError::io("x", e))).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("c.rvc");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, 0o600, |w| w.write_all(b"cache").map_err(|e| DataError::io("x", e))).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_0700_and_open_ones_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&d).is_err());
    }
}
