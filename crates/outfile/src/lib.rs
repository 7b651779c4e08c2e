//! Output files for reelvec: the one owner of "write this file atomically and safely".
//!
//! Every writer of the workspace (exports, plots, the report, checkpoints) goes through
//! [`write_file`]; commands call [`check_file`] / [`check_dir`] on every output before long work
//! starts, so a read-only target fails in a second rather than after training.
//!
//! Rules:
//! - An existing output must be a regular file (for [`check_file`]) or a directory (for
//!   [`check_dir`]). Devices, FIFOs and sockets are refused, so `--out /dev/null` never replaces
//!   `/dev/null` with a regular file, even as root.
//! - The last component of an output path is never a symbolic link: a link is refused with a
//!   clear error, never followed (there is no flag to allow it; write to the link's target).
//! - Bytes go to a temporary file created with `O_EXCL` (the `tempfile` crate, random name
//!   `.NAME.XXXXXX.tmp`) in the destination folder, synced, then renamed over the target. The
//!   temporary file is removed on every error path (it is deleted when dropped).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("emb.csv");
//! reelvec_outfile::check_file(&out).unwrap();
//! reelvec_outfile::write_file(&out, b"movieId,d0\n").unwrap();
//! assert_eq!(std::fs::read(&out).unwrap(), b"movieId,d0\n");
//! ```
//!
//! This crate depends on no other reelvec crate, so that reelvec-report may use it too.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Why an output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output exists and is something that must not be replaced or followed.
    #[error("{}: {problem}", path.display())]
    Refused {
        /// The output path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The file system refused (permissions, missing parent, full disk, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being created or written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl OutputError {
    fn refused(path: &Path, problem: impl Into<String>) -> Self {
        Self::Refused { path: path.to_path_buf(), problem: problem.into() }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }
}

/// What kind of thing sits at `path`, without following a final symbolic link.
fn kind_of(path: &Path) -> Result<Option<fs::FileType>, OutputError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m.file_type())),
        // A missing folder on the way (or a file where one is expected) is reported by the
        // folder check.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            Ok(None)
        }
        Err(e) => Err(OutputError::io(path, e)),
    }
}

fn describe(t: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The folder a file output goes into (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Checks that `dir` (created later when missing) can hold new files: the deepest existing
/// folder on its path must be a directory in which a probe file can be created (and is removed
/// at once).
fn check_creatable(dir: &Path) -> Result<(), OutputError> {
    let mut existing = dir;
    loop {
        match fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(OutputError::refused(existing, "is not a directory")),
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => existing = p,
                    _ => {
                        existing = Path::new(".");
                        break;
                    }
                }
            }
            Err(e) => return Err(OutputError::io(existing, e)),
        }
    }
    tempfile::Builder::new()
        .prefix(".reelvec-probe-")
        .tempfile_in(existing)
        .map(drop)
        .map_err(|e| OutputError::io(existing, e))
}

/// Checks, before any work, that `path` can be written as a file: it is absent or a regular
/// file (not a symbolic link, device, FIFO, socket or directory), and its folder exists or can
/// be created, and is writable.
pub fn check_file(path: &Path) -> Result<(), OutputError> {
    if let Some(t) = kind_of(path)? {
        if !t.is_file() {
            return Err(OutputError::refused(
                path,
                format!("is {}; refusing to replace it (give a regular file path)", describe(t)),
            ));
        }
    }
    check_creatable(parent_of(path))
}

/// Checks, before any work, that `dir` can hold output files: it is absent (and creatable) or a
/// writable directory. A symbolic link to a directory is accepted here (files are written inside
/// it, the link itself is never replaced).
pub fn check_dir(dir: &Path) -> Result<(), OutputError> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(OutputError::refused(dir, "exists and is not a directory")),
        _ => check_creatable(dir),
    }
}

/// Writes `bytes` to `path` atomically (mode 0644 before the umask): see [`write_with`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_with(path, 0o644, |w| w.write_all(bytes).map_err(|e| OutputError::io(path, e)))
}

/// Writes `path` atomically by streaming: [`check_file`], create the folder when missing, create
/// an `O_EXCL` temporary file beside the target with Unix permission bits `mode` (subject to the
/// umask), let `fill` write it through a buffer, flush and sync it, check the target again and
/// rename over it. On any error from `fill` or the file system (or a panic inside `fill`) the
/// temporary file is removed and the target is untouched; a killed process can leave a
/// `.NAME.*.tmp` file behind, never a partial file under the final name.
pub fn write_with<E: From<OutputError>>(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut BufWriter<&fs::File>) -> Result<(), E>,
) -> Result<(), E> {
    check_file(path)?;
    let dir = parent_of(path);
    fs::create_dir_all(dir).map_err(|e| OutputError::io(dir, e))?;
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let tmp = builder.tempfile_in(dir).map_err(|e| OutputError::io(dir, e))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        fill(&mut w)?;
        w.flush().map_err(|e| OutputError::io(tmp.path(), e))?;
    }
    tmp.as_file().sync_all().map_err(|e| OutputError::io(tmp.path(), e))?;
    // Something may have been put there while we wrote: check again right before the rename.
    check_file(path)?;
    // On failure `persist` hands the temporary back inside the error; dropping it removes it.
    tmp.persist(path).map_err(|e| OutputError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn writes_replaces_a_regular_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("sub/a.txt");
        write_file(&out, b"one").unwrap();
        write_file(&out, b"two").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), vec!["a.txt".to_string()]);
    }

    #[test]
    fn a_failed_streaming_write_leaves_neither_the_file_nor_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let failed: Result<(), OutputError> = write_with(&path, 0o644, |w| {
            w.write_all(&[b'x'; 3_000_000]).unwrap();
            Err(OutputError::refused(Path::new("x"), "stopped half-way"))
        });
        assert!(failed.unwrap_err().to_string().contains("half-way"));
        assert_eq!(names(dir.path()), Vec::<String>::new());
        // An old file under the name is left as it was.
        fs::write(&path, b"old").unwrap();
        let _ = write_with(&path, 0o644, |_| Err(OutputError::refused(Path::new("x"), "no")));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["out.csv".to_string()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            write_with(&path, 0o600, |w| w.write_all(b"new").map_err(|e| OutputError::io(&path, e))).unwrap();
            assert_eq!(fs::read(&path).unwrap(), b"new");
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o077, 0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_fifos_devices_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_file(&link, b"x").unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let err = write_file(&fifo, b"x").unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");

        let err = check_file(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(err.contains("a device"), "{err}");
        let err = write_file(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        // Nothing but what we made ourselves.
        assert_eq!(names(dir.path()), vec!["fifo", "link.txt", "target.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_folder_fails_the_check_before_any_write() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // Root ignores permission bits; the check is then rightly satisfied.
        let writable = tempfile::tempfile_in(&ro).is_ok();
        assert_eq!(check_file(&ro.join("a.csv")).is_ok(), writable);
        assert_eq!(check_dir(&ro.join("new/deeper")).is_ok(), writable);
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(names(&ro), Vec::<String>::new());
        let file = dir.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(check_dir(&file).unwrap_err().to_string().contains("not a directory"));
        assert!(check_file(&file.join("x")).unwrap_err().to_string().contains("not a directory"));
    }
}
