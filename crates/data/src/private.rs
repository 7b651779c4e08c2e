//! The ownership checks for directories and files this crate trusts (the cache): owned by the
//! current user and closed to group and others. Whole-file writes go through
//! [`reelvec_outfile::write_with`] (an `O_EXCL` temporary renamed into place), the workspace's
//! one owner of output files.

use std::path::Path;

use crate::error::DataError;

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
