//! `cargo xtask fetch NAME`: downloads a GroupLens data set named in `datasets/manifest.toml`,
//! verifies it, and unpacks it into `datasets/downloaded/NAME/`.
//!
//! The guarantee this module keeps: **anything that looks like a data set was verified and
//! completely unpacked.** Every intermediate lives under a dot-prefixed temporary name in the
//! destination folder (`.NAME.download-*` for the archive, `.NAME.unpack-*` for the staging tree)
//! and is removed on every exit path; the finished tree appears under its real name through one
//! `rename`, which is atomic on the same file system.
//!
//! Steps: check the manifest entry (`archive_root` must be a relative path of plain folder names);
//! download with ureq to the temporary file, hashing SHA-256 and MD5 while writing, and check the
//! byte count against `Content-Length` and the manifest (a pinned size is a hard limit: a
//! `Content-Length` above it is refused before the body is read, and reading stops as soon as the
//! body exceeds it); verify every digest the manifest pins (an archive with none is refused
//! unless `--insecure-skip-verify`, and the computed digests are printed so they can be pinned);
//! read the zip's whole directory and reject it if any entry's path is absolute, has a `..`
//! component, is not `enclosed_name()`-safe, is a symlink, or is a duplicate (the central
//! directory is walked independently of `zip`, which silently keeps one of several entries with
//! one name; two names that unpack to the same path count as duplicates too), before writing a
//! single file; extract into the staging folder, counting the bytes actually decompressed against
//! per-entry and total limits ([`UnpackLimits`]: the manifest's `max_unpacked`, else 20 times
//! the archive size, at least 64 MiB, at most 16 GiB), so a zip bomb stops at the limit whatever
//! sizes its headers declare; rename its top folder into place.
//!
//! What it does not do: resume partial downloads, keep the archive, or touch anything outside the
//! destination folder.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use md5::Md5;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::util::project_root;

const USAGE: &str = "\
cargo xtask fetch NAME [--dest DIR] [--url URL] [--force] [--insecure-skip-verify] [--manifest FILE]
cargo xtask fetch --list

Downloads a GroupLens MovieLens data set listed in datasets/manifest.toml, verifies its checksum
and unpacks it into DIR/NAME (default DIR: datasets/downloaded, git-ignored).

  --dest DIR               folder that receives NAME/ (created when missing)
  --url URL                download from URL instead of the manifest's (a mirror); still verified
  --force                  replace DIR/NAME when it already exists
  --insecure-skip-verify   accept an archive the manifest pins no digest for (ml-latest); prints
                           the computed digests. A pinned digest that does not match is always an error.
  --manifest FILE          read another manifest (default datasets/manifest.toml)
  --list                   list the data sets and whether each is already downloaded
";

/// The `datasets/manifest.toml` file: one `[[dataset]]` table per downloadable archive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The data sets, in file order.
    #[serde(rename = "dataset", default)]
    pub datasets: Vec<DatasetEntry>,
}

/// One downloadable data set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetEntry {
    /// The name given to `cargo xtask fetch` and the folder it lands in.
    pub name: String,
    /// One line on what the data set holds.
    #[serde(default)]
    pub description: String,
    /// Where the zip archive is downloaded from.
    pub url: String,
    /// The archive's size in bytes; 0 when not pinned.
    #[serde(default)]
    pub size: u64,
    /// Lower-case hex SHA-256 of the archive, or empty.
    #[serde(default)]
    pub sha256: String,
    /// Lower-case hex MD5 of the archive, or empty.
    #[serde(default)]
    pub md5: String,
    /// The top-level folder inside the archive whose contents become `DEST/NAME/` (a relative
    /// path of plain folder names: no leading `/`, no `.` or `..`).
    #[serde(default)]
    pub archive_root: String,
    /// The most bytes the archive may unpack to, in total and per entry; 0 for the default
    /// (see [`UnpackLimits`]).
    #[serde(default)]
    pub max_unpacked: u64,
    /// The reelvec-data layout name of the unpacked files.
    pub layout: String,
    /// A one-line licence summary.
    pub licence: String,
}

impl DatasetEntry {
    /// Whether the manifest pins at least one digest for this archive.
    pub fn is_pinned(&self) -> bool {
        !self.sha256.is_empty() || !self.md5.is_empty()
    }
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses and validates manifest text: names are unique and filesystem-safe, digests are hex of
    /// the right length (or empty).
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)?;
        let mut seen = std::collections::HashSet::new();
        for entry in &manifest.datasets {
            let name = &entry.name;
            let name_ok = !name.is_empty()
                && !name.starts_with('.')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                bail!("data set name {name:?} must be non-empty ASCII letters, digits, '-', '_' or '.'");
            }
            if !seen.insert(name.clone()) {
                bail!("data set {name:?} is listed twice");
            }
            check_hex(name, "sha256", &entry.sha256, 64)?;
            check_hex(name, "md5", &entry.md5, 32)?;
            if !(entry.url.starts_with("https://") || entry.url.starts_with("http://")) {
                bail!("data set {name:?}: url {:?} is not http(s)", entry.url);
            }
            check_archive_root(name, &entry.archive_root)?;
        }
        Ok(manifest)
    }

    /// The entry called `name`, or an error listing the known names.
    pub fn get(&self, name: &str) -> Result<&DatasetEntry> {
        self.datasets.iter().find(|d| d.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.datasets.iter().map(|d| d.name.as_str()).collect();
            anyhow!("unknown data set {name:?}; known: {}", known.join(", "))
        })
    }
}

/// `archive_root` must be empty or a relative path of plain folder names (`a` or `a/b`): never
/// absolute, never `.` or `..`, no backslash or NUL, so it always names a folder inside the
/// staging tree.
fn check_archive_root(name: &str, root: &str) -> Result<()> {
    let plain = |part: &str| !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0']);
    let valid = root.is_empty() || (root.split('/').all(plain) && Path::new(root).is_relative());
    if !valid {
        bail!(
            "data set {name:?}: archive_root {root:?} must be a relative path of plain folder names \
             (no leading `/`, `.` or `..`)"
        );
    }
    Ok(())
}

fn check_hex(name: &str, field: &str, value: &str, len: usize) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() != len || !value.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("data set {name:?}: {field} {value:?} is not {len} hex digits");
    }
    Ok(())
}

/// How one fetch behaves.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The folder that receives `NAME/`.
    pub dest: PathBuf,
    /// Download from here instead of the manifest's URL.
    pub url: Option<String>,
    /// Replace an existing `DEST/NAME`.
    pub force: bool,
    /// Accept an archive for which the manifest pins no digest.
    pub insecure_skip_verify: bool,
    /// Print progress to stderr.
    pub progress: bool,
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The data set was downloaded, verified and unpacked here.
    Fetched(PathBuf),
    /// `DEST/NAME` already existed and `force` was off; nothing was downloaded.
    AlreadyPresent(PathBuf),
}

/// The digests and length of a downloaded archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Bytes received.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Lower-case hex MD5.
    pub md5: String,
}

/// Entry point of `cargo xtask fetch`.
pub fn run(args: &[String]) -> Result<()> {
    let mut name: Option<String> = None;
    let mut dest: Option<PathBuf> = None;
    let mut url: Option<String> = None;
    let mut manifest_path = project_root().join("datasets").join("manifest.toml");
    let mut force = false;
    let mut insecure = false;
    let mut list = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value =
            |flag: &str| iter.next().cloned().ok_or_else(|| anyhow!("{flag} needs a value\n\n{USAGE}"));
        match arg.as_str() {
            "--dest" => dest = Some(PathBuf::from(value("--dest")?)),
            "--url" => url = Some(value("--url")?),
            "--manifest" => manifest_path = PathBuf::from(value("--manifest")?),
            "--force" => force = true,
            "--insecure-skip-verify" => insecure = true,
            "--list" => list = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag}\n\n{USAGE}"),
            positional => {
                if let Some(first) = &name {
                    bail!("one data set at a time (got {first:?} and {positional:?})\n\n{USAGE}");
                }
                name = Some(positional.to_string());
            }
        }
    }
    let manifest = Manifest::load(&manifest_path)?;
    let dest = dest.unwrap_or_else(|| project_root().join("datasets").join("downloaded"));
    if list {
        print_list(&manifest, &dest);
        return Ok(());
    }
    let Some(name) = name else {
        bail!("which data set? (`cargo xtask fetch --list` shows them)\n\n{USAGE}");
    };
    let entry = manifest.get(&name)?;
    let options = FetchOptions { dest, url, force, insecure_skip_verify: insecure, progress: true };
    match fetch(entry, &options)? {
        FetchOutcome::Fetched(path) => {
            println!("{name}: ready in {} (layout {})", path.display(), entry.layout);
            println!("licence: {}", entry.licence);
            println!("use it with: --data {}", path.display());
        }
        FetchOutcome::AlreadyPresent(path) => {
            println!("{name}: already present in {} (pass --force to fetch it again)", path.display());
        }
    }
    Ok(())
}

fn print_list(manifest: &Manifest, dest: &Path) {
    println!("{:<16} {:>10}  {:<8} {:<10} {:<10} description", "name", "size", "verify", "layout", "here");
    for d in &manifest.datasets {
        let size = if d.size == 0 { "?".to_string() } else { format!("{:.1} MB", d.size as f64 / 1e6) };
        let verify = match (d.sha256.is_empty(), d.md5.is_empty()) {
            (false, _) => "sha256",
            (true, false) => "md5",
            (true, true) => "none",
        };
        let here = if dest.join(&d.name).is_dir() { "yes" } else { "-" };
        println!(
            "{:<16} {:>10}  {:<8} {:<10} {:<10} {}",
            d.name, size, verify, d.layout, here, d.description
        );
    }
    println!("\ndownloads land in {}", dest.display());
}

/// Downloads, verifies and unpacks `entry` into `options.dest/NAME`.
///
/// On any error nothing named `NAME` is created and every temporary is removed.
pub fn fetch(entry: &DatasetEntry, options: &FetchOptions) -> Result<FetchOutcome> {
    check_archive_root(&entry.name, &entry.archive_root)?;
    let target = options.dest.join(&entry.name);
    if target.exists() && !options.force {
        return Ok(FetchOutcome::AlreadyPresent(target));
    }
    fs::create_dir_all(&options.dest).with_context(|| format!("cannot create {}", options.dest.display()))?;
    let url = options.url.as_deref().unwrap_or(&entry.url);
    remove_stale_temporaries(&options.dest, &entry.name);
    let tag = unique_tag();

    let archive = TempPath::new(options.dest.join(format!(".{}.download-{tag}", entry.name)));
    let digests = {
        let mut file = File::create_new(archive.path())
            .with_context(|| format!("cannot create {}", archive.path().display()))?;
        let pinned_size = (entry.size != 0).then_some(entry.size);
        let digests = download(url, &mut file, options.progress, pinned_size)?;
        file.sync_all().with_context(|| format!("cannot flush {}", archive.path().display()))?;
        digests
    };
    verify(entry, &digests, options.insecure_skip_verify)?;

    let staging = TempPath::new(options.dest.join(format!(".{}.unpack-{tag}", entry.name)));
    fs::create_dir(staging.path()).with_context(|| format!("cannot create {}", staging.path().display()))?;
    let limits = UnpackLimits::for_entry(entry, digests.bytes);
    unpack(archive.path(), staging.path(), limits)
        .with_context(|| format!("cannot unpack the archive from {url}"))?;
    let root = unpacked_root(staging.path(), &entry.archive_root)?;
    write_provenance(&root, entry, url, &digests)?;

    if target.exists() {
        // --force: move the old tree aside first so the new one still appears in one rename; if
        // that rename fails the old tree goes back, so a failed --force loses nothing.
        let old = options.dest.join(format!(".{}.old-{tag}", entry.name));
        fs::rename(&target, &old)
            .with_context(|| format!("cannot move the old {} aside", target.display()))?;
        if let Err(err) = fs::rename(&root, &target) {
            let _ = fs::rename(&old, &target);
            return Err(err).with_context(|| format!("cannot move into {}", target.display()));
        }
        drop(TempPath::new(old));
    } else {
        fs::rename(&root, &target).with_context(|| format!("cannot move into {}", target.display()))?;
    }
    Ok(FetchOutcome::Fetched(target))
}

/// A path removed (file or tree) when dropped: the temporaries of a fetch never outlive it.
struct TempPath(PathBuf);

impl TempPath {
    fn new(path: PathBuf) -> Self {
        TempPath(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        // Best effort: a leftover dot-file is harmless and never mistaken for a data set.
        if self.0.is_dir() {
            let _ = fs::remove_dir_all(&self.0);
        } else {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// Removes `.NAME.{download,unpack,old}-PID-NANOS` left behind by a fetch that was killed (its
/// guards never ran). Only temporaries whose process is gone are touched, so a concurrent fetch of
/// the same data set keeps its files. Liveness is read from `/proc`; where there is no `/proc`
/// nothing is removed.
fn remove_stale_temporaries(dest: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dest) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let Some(rest) = file_name.strip_prefix(&format!(".{name}.")) else { continue };
        let Some((kind, tag)) = rest.split_once('-') else { continue };
        if !matches!(kind, "download" | "unpack" | "old") {
            continue;
        }
        let Some(pid) = tag.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        drop(TempPath::new(entry.path()));
    }
}

fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:09}", std::process::id())
}

/// Streams `url` into `out`, hashing as it goes; fails on an HTTP error status, a transport error,
/// or a body shorter or longer than its `Content-Length`. With `max_bytes` (the manifest's pinned
/// size) a larger `Content-Length` is refused before the body is read, and reading stops as soon
/// as the body exceeds it (nothing past the limit is written).
pub fn download(url: &str, out: &mut impl Write, progress: bool, max_bytes: Option<u64>) -> Result<Digests> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .build();
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(code, response)) => {
            bail!("download of {url} failed: HTTP {code} {}", response.status_text())
        }
        Err(ureq::Error::Transport(err)) => bail!("download failed: {err}"),
    };
    let expected: Option<u64> = response.header("Content-Length").and_then(|v| v.trim().parse().ok());
    if let (Some(announced), Some(max)) = (expected, max_bytes) {
        if announced > max {
            bail!(
                "download of {url} refused: the server announces {announced} bytes, the manifest pins \
                 {max}; nothing was read"
            );
        }
    }
    let mut reader = response.into_reader();
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes: u64 = 0;
    let mut next_report = 0.0f64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => bail!("download of {url} broke off after {bytes} bytes: {err}"),
        };
        if let Some(max) = max_bytes {
            if bytes + n as u64 > max {
                bail!(
                    "download of {url} stopped: the body exceeds the {max} bytes the manifest pins \
                     (more than {} received)",
                    bytes + n as u64 - 1
                );
            }
        }
        let chunk = &buffer[..n];
        sha.update(chunk);
        md5.update(chunk);
        out.write_all(chunk).context("cannot write the download")?;
        bytes += n as u64;
        if let (true, Some(total)) = (progress, expected) {
            let fraction = bytes as f64 / total.max(1) as f64;
            if fraction >= next_report {
                eprint!("\rdownloading {url}: {:>3.0}% of {:.1} MB", fraction * 100.0, total as f64 / 1e6);
                next_report = fraction + 0.05;
            }
        }
    }
    if progress && expected.is_some() {
        eprintln!();
    }
    if let Some(total) = expected {
        if bytes != total {
            bail!("download of {url} is incomplete: got {bytes} of {total} bytes");
        }
    }
    out.flush().context("cannot write the download")?;
    Ok(Digests { bytes, sha256: hex(&sha.finalize()), md5: hex(&md5.finalize()) })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a download against what the manifest pins. A mismatch of any pinned value is an error;
/// an archive with no pinned digest is an error unless `insecure_skip_verify`.
pub fn verify(entry: &DatasetEntry, got: &Digests, insecure_skip_verify: bool) -> Result<()> {
    let name = &entry.name;
    if entry.size != 0 && got.bytes != entry.size {
        bail!(
            "{name}: size mismatch: the manifest says {} bytes, the download has {} \
             (sha256 {}); the archive was not unpacked",
            entry.size,
            got.bytes,
            got.sha256
        );
    }
    if !entry.sha256.is_empty() && !entry.sha256.eq_ignore_ascii_case(&got.sha256) {
        bail!(
            "{name}: SHA-256 mismatch: expected {}, got {}; the archive was not unpacked",
            entry.sha256,
            got.sha256
        );
    }
    if !entry.md5.is_empty() && !entry.md5.eq_ignore_ascii_case(&got.md5) {
        bail!("{name}: MD5 mismatch: expected {}, got {}; the archive was not unpacked", entry.md5, got.md5);
    }
    if !entry.is_pinned() {
        if !insecure_skip_verify {
            bail!(
                "{name}: the manifest pins no checksum, so the download cannot be verified and was not \
                 unpacked.\n  computed: size = {}, sha256 = \"{}\", md5 = \"{}\"\n  pin these in \
                 datasets/manifest.toml if you trust the source, or pass --insecure-skip-verify",
                got.bytes,
                got.sha256,
                got.md5
            );
        }
        eprintln!(
            "warning: {name} is UNVERIFIED (--insecure-skip-verify): size = {}, sha256 = \"{}\", md5 = \"{}\"",
            got.bytes, got.sha256, got.md5
        );
    }
    Ok(())
}

/// Validates an archive entry name and returns the relative path to extract it to.
///
/// Rejected: empty names, NUL bytes, absolute paths (`/x`, `\x`, `C:x`), any `..` component, and
/// anything `zip`'s `enclosed_name()` refuses.
pub fn safe_entry_path(raw_name: &str, enclosed: Option<PathBuf>) -> Result<PathBuf> {
    let absolute =
        raw_name.starts_with('/') || raw_name.starts_with('\\') || raw_name.as_bytes().get(1) == Some(&b':');
    if raw_name.is_empty() || raw_name.contains('\0') {
        bail!("archive entry {raw_name:?} has an empty or NUL-containing name");
    }
    if absolute {
        bail!("archive entry {raw_name:?} is an absolute path; refusing the whole archive");
    }
    if raw_name.split(['/', '\\']).any(|part| part == "..") {
        bail!("archive entry {raw_name:?} contains `..`; refusing the whole archive");
    }
    match enclosed {
        Some(path) if path.components().next().is_some() => Ok(path),
        _ => bail!("archive entry {raw_name:?} escapes the destination; refusing the whole archive"),
    }
}

/// How many bytes an archive may unpack to: in total, and per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// All entries together.
    pub total: u64,
    /// One entry.
    pub per_entry: u64,
}

impl UnpackLimits {
    /// The manifest's `max_unpacked` (for both) when set, else 20 times the archive's size
    /// (MovieLens archives expand 3-6 times), at least 64 MiB and at most 16 GiB.
    pub fn for_entry(entry: &DatasetEntry, archive_bytes: u64) -> Self {
        let total = if entry.max_unpacked != 0 {
            entry.max_unpacked
        } else {
            archive_bytes.saturating_mul(20).clamp(64 << 20, 16 << 30)
        };
        UnpackLimits { total, per_entry: total }
    }
}

/// The raw names of the zip's central directory records, walked independently of `zip` (whose
/// reader keeps only one of several entries with the same name).
fn central_directory_names(archive: &Path, start: u64) -> Result<Vec<Vec<u8>>> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    file.seek(SeekFrom::Start(start)).context("cannot read the zip's central directory")?;
    let mut reader = io::BufReader::new(file);
    let mut names = Vec::new();
    loop {
        let mut fixed = [0u8; 46];
        if reader.read_exact(&mut fixed).is_err() || fixed[..4] != [0x50, 0x4b, 0x01, 0x02] {
            return Ok(names);
        }
        let field = |at: usize| u64::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
        let mut name = vec![0u8; field(28) as usize];
        reader.read_exact(&mut name).context("truncated zip central directory")?;
        let skip = field(30) + field(32);
        if io::copy(&mut (&mut reader).take(skip), &mut io::sink())? != skip {
            bail!("truncated zip central directory");
        }
        names.push(name);
    }
}

/// Extracts every entry of the zip at `archive` under `into` (an empty folder). All names are
/// checked before anything is written (absolute, `..`, symlinks, duplicates), so a hostile
/// archive leaves `into` empty; the bytes decompressed are counted against `limits` as they are
/// written, whatever sizes the archive declares.
pub fn unpack(archive: &Path, into: &Path, limits: UnpackLimits) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).context("not a valid zip archive")?;
    let raw_names = central_directory_names(archive, zip.central_directory_start())?;
    let mut seen_raw = std::collections::HashSet::new();
    for name in &raw_names {
        if !seen_raw.insert(name.as_slice()) {
            bail!(
                "archive entry {:?} appears more than once; refusing the whole archive",
                String::from_utf8_lossy(name)
            );
        }
    }
    if raw_names.len() != zip.len() {
        bail!(
            "the zip's central directory lists {} entries but {} distinct names; refusing the whole archive",
            raw_names.len(),
            zip.len()
        );
    }
    let mut plan = Vec::with_capacity(zip.len());
    let mut seen = std::collections::HashMap::new();
    for index in 0..zip.len() {
        let entry = zip.by_index_raw(index).with_context(|| format!("cannot read zip entry {index}"))?;
        let relative = safe_entry_path(entry.name(), entry.enclosed_name())?;
        if entry.is_symlink() {
            bail!("archive entry {:?} is a symbolic link; refusing the whole archive", entry.name());
        }
        if let Some(first) = seen.insert(relative.clone(), entry.name().to_string()) {
            bail!(
                "archive entries {first:?} and {:?} both unpack to {}; refusing the whole archive",
                entry.name(),
                relative.display()
            );
        }
        plan.push((index, relative, entry.is_dir()));
    }
    let mut unpacked: u64 = 0;
    for (index, relative, is_dir) in plan {
        let path = into.join(&relative);
        if is_dir {
            fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut entry = zip.by_index(index).with_context(|| format!("cannot read zip entry {index}"))?;
        let mut out = File::create_new(&path)
            .with_context(|| format!("cannot create {} (duplicate entry?)", path.display()))?;
        let cap = limits.per_entry.min(limits.total - unpacked);
        let too_big = || {
            anyhow!(
                "archive entry {:?} unpacks to more than {cap} bytes (limits: {} per entry, {} in all; \
                 set max_unpacked in the manifest if this archive is genuine); refusing the archive",
                relative.display(),
                limits.per_entry,
                limits.total
            )
        };
        if entry.size() > cap {
            return Err(too_big());
        }
        // Count what is really decompressed: read at most one byte past the cap. The zip reader
        // checks each entry's CRC-32 when it reaches the end of the entry.
        let copied = io::copy(&mut (&mut entry).take(cap + 1), &mut out)
            .with_context(|| format!("cannot extract {:?} (corrupt archive?)", relative.display()))?;
        if copied > cap {
            return Err(too_big());
        }
        unpacked += copied;
    }
    Ok(())
}

/// The folder whose contents become `DEST/NAME`: `staging/archive_root` when the manifest names
/// it, else the archive's only top-level folder, else `staging` itself.
fn unpacked_root(staging: &Path, archive_root: &str) -> Result<PathBuf> {
    if !archive_root.is_empty() {
        check_archive_root("the archive", archive_root)?;
        let root = staging.join(archive_root);
        let is_real_dir = fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir());
        if is_real_dir {
            return Ok(root);
        }
        bail!("the archive has no top-level folder {archive_root:?} as the manifest says");
    }
    let mut entries = fs::read_dir(staging)
        .with_context(|| format!("cannot list {}", staging.display()))?
        .collect::<io::Result<Vec<_>>>()?;
    if entries.len() == 1 && entries[0].file_type()?.is_dir() {
        if let Some(only) = entries.pop() {
            return Ok(only.path());
        }
    }
    // The whole staging folder becomes the data set; rename it out of the TempPath guard's way by
    // moving its contents into a fresh subfolder.
    let inner = staging.join(".root");
    fs::create_dir(&inner)?;
    for entry in entries {
        fs::rename(entry.path(), inner.join(entry.file_name()))?;
    }
    Ok(inner)
}

/// Records where the data came from, beside the data (`.reelvec-fetch.toml`).
fn write_provenance(root: &Path, entry: &DatasetEntry, url: &str, digests: &Digests) -> Result<()> {
    let text = format!(
        "# written by `cargo xtask fetch`\nname = {:?}\nurl = {:?}\nlayout = {:?}\nsize = {}\n\
         sha256 = {:?}\nmd5 = {:?}\nverified = {}\n",
        entry.name,
        url,
        entry.layout,
        digests.bytes,
        digests.sha256,
        digests.md5,
        entry.is_pinned()
    );
    let path = root.join(".reelvec-fetch.toml");
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (STYLE: no unwrap on user input)
mod tests {
    //! These tests never touch the internet: a tiny HTTP/1.1 server on 127.0.0.1 serves archives
    //! built in memory, and each test checks what is (and is not) left in the destination.

    use super::*;
    use std::io::{BufRead, BufReader, Cursor};
    use std::net::TcpListener;
    use std::thread::JoinHandle;
    use std::time::Instant;

    /// What the test server answers for one path.
    #[derive(Clone)]
    struct Route {
        path: &'static str,
        status: u16,
        body: Vec<u8>,
        /// Send only this many body bytes (after announcing the full length), then hang up.
        truncate_at: Option<usize>,
        /// Send no `Content-Length` (the body ends when the connection closes).
        no_length: bool,
    }

    impl Route {
        fn ok(path: &'static str, body: Vec<u8>) -> Self {
            Route { path, status: 200, body, truncate_at: None, no_length: false }
        }
    }

    /// Serves `routes` on an ephemeral 127.0.0.1 port for at most `max_requests` connections or
    /// 20 seconds, whichever comes first, then stops by itself.
    fn serve(routes: Vec<Route>, max_requests: usize) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut served = 0;
            while served < max_requests && Instant::now() < deadline {
                let (stream, _) = match listener.accept() {
                    Ok(conn) => conn,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => break,
                };
                served += 1;
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut stream = reader.into_inner();
                let route = routes.iter().find(|r| r.path == path).cloned().unwrap_or(Route {
                    path: "",
                    status: 404,
                    body: b"not found".to_vec(),
                    truncate_at: None,
                    no_length: false,
                });
                let reason = if route.status == 200 { "OK" } else { "Not Found" };
                let length = if route.no_length {
                    String::new()
                } else {
                    format!("Content-Length: {}\r\n", route.body.len())
                };
                let head = format!(
                    "HTTP/1.1 {} {reason}\r\n{length}Content-Type: application/zip\r\n\
                     Connection: close\r\n\r\n",
                    route.status,
                );
                let sent = route.truncate_at.unwrap_or(route.body.len());
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&route.body[..sent]);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        (base, handle)
    }

    /// A zip (deflated) holding `files` (name, contents) in the given order.
    fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, contents) in files {
            if name.ends_with('/') {
                writer.add_directory(*name, options).unwrap();
            } else {
                writer.start_file(*name, options).unwrap();
                writer.write_all(contents).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    const LIMITS: UnpackLimits = UnpackLimits { total: 64 << 20, per_entry: 64 << 20 };

    fn good_archive() -> Vec<u8> {
        zip_bytes(&[
            ("ml-test/", b""),
            ("ml-test/u.data", b"1\t1\t5\t874965758\n2\t1\t3\t876893171\n"),
            (
                "ml-test/u.item",
                b"1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
            ),
            ("ml-test/README", b"test data\n"),
        ])
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn entry_for(url: &str, archive: &[u8]) -> DatasetEntry {
        DatasetEntry {
            name: "ml-test".into(),
            description: "a test archive".into(),
            url: url.into(),
            size: archive.len() as u64,
            sha256: sha256_hex(archive),
            md5: hex(&Md5::digest(archive)),
            archive_root: "ml-test".into(),
            max_unpacked: 0,
            layout: "ml-100k".into(),
            licence: "test".into(),
        }
    }

    fn options(dest: &Path) -> FetchOptions {
        FetchOptions {
            dest: dest.to_path_buf(),
            url: None,
            force: false,
            insecure_skip_verify: false,
            progress: false,
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    #[test]
    fn good_archive_is_verified_and_unpacked_into_place() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("downloaded");
        let entry = entry_for(&format!("{base}/ml-test.zip"), &archive);

        let outcome = fetch(&entry, &options(&dest)).unwrap();
        server.join().unwrap();

        let target = dest.join("ml-test");
        assert_eq!(outcome, FetchOutcome::Fetched(target.clone()));
        assert_eq!(listing(&dest), vec!["ml-test"], "no temporaries may be left behind");
        assert_eq!(listing(&target), vec![".reelvec-fetch.toml", "README", "u.data", "u.item"]);
        assert_eq!(fs::read(target.join("u.data")).unwrap(), b"1\t1\t5\t874965758\n2\t1\t3\t876893171\n");
        let provenance = fs::read_to_string(target.join(".reelvec-fetch.toml")).unwrap();
        assert!(provenance.contains(&entry.sha256), "{provenance}");
        assert!(provenance.contains("verified = true"), "{provenance}");

        // A second fetch finds it and downloads nothing (no server is running any more).
        let again = fetch(&entry, &options(&dest)).unwrap();
        assert_eq!(again, FetchOutcome::AlreadyPresent(target));
    }

    #[test]
    fn temporaries_of_a_killed_fetch_are_cleaned_up_and_live_ones_kept() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        // pid 4294967295 cannot exist; our own pid is alive
        let dead_download = tmp.path().join(".ml-test.download-4294967295-000000001");
        let dead_unpack = tmp.path().join(".ml-test.unpack-4294967295-000000001");
        let live = tmp.path().join(format!(".ml-test.download-{}-000000002", std::process::id()));
        let other_set = tmp.path().join(".ml-other.download-4294967295-000000001");
        fs::write(&dead_download, b"partial").unwrap();
        fs::create_dir_all(dead_unpack.join("ml-test")).unwrap();
        fs::write(&live, b"in progress").unwrap();
        fs::write(&other_set, b"partial").unwrap();
        let entry = entry_for(&format!("{base}/ml-test.zip"), &archive);

        fetch(&entry, &options(tmp.path())).unwrap();
        server.join().unwrap();

        assert!(!dead_download.exists() && !dead_unpack.exists());
        assert!(live.exists(), "a live process's temporary is kept");
        assert!(other_set.exists(), "another data set's temporaries are not ours to judge");
        assert!(tmp.path().join("ml-test/u.data").is_file());
    }

    #[test]
    fn force_replaces_an_existing_data_set() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("ml-test");
        fs::create_dir_all(&target).unwrap();
        fs::write(target.join("stale"), b"old").unwrap();
        let entry = entry_for(&format!("{base}/ml-test.zip"), &archive);
        let mut opts = options(tmp.path());
        opts.force = true;

        fetch(&entry, &opts).unwrap();
        server.join().unwrap();

        assert_eq!(listing(tmp.path()), vec!["ml-test"]);
        assert!(!target.join("stale").exists());
        assert!(target.join("u.data").is_file());
    }

    #[test]
    fn corrupted_archive_fails_the_checksum_and_leaves_nothing() {
        let archive = good_archive();
        let mut corrupted = archive.clone();
        let middle = corrupted.len() / 2;
        corrupted[middle] ^= 0x5a;
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", corrupted)], 1);
        let tmp = tempfile::tempdir().unwrap();
        let entry = entry_for(&format!("{base}/ml-test.zip"), &archive);

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        server.join().unwrap();

        let message = format!("{err:#}");
        assert!(message.contains("SHA-256 mismatch"), "{message}");
        assert!(message.contains(&entry.sha256), "the expected digest is named: {message}");
        assert!(listing(tmp.path()).is_empty(), "left behind: {:?}", listing(tmp.path()));
    }

    #[test]
    fn md5_only_manifest_entry_is_checked_too() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 2);
        let tmp = tempfile::tempdir().unwrap();
        let mut entry = entry_for(&format!("{base}/ml-test.zip"), &archive);
        entry.sha256.clear();
        entry.md5 = "0".repeat(32);

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        assert!(format!("{err:#}").contains("MD5 mismatch"), "{err:#}");
        assert!(listing(tmp.path()).is_empty());

        entry.md5 = hex(&Md5::digest(&archive));
        fetch(&entry, &options(tmp.path())).unwrap();
        server.join().unwrap();
        assert_eq!(listing(tmp.path()), vec!["ml-test"]);
    }

    #[test]
    fn traversal_entry_rejects_the_whole_archive() {
        let archive = zip_bytes(&[
            ("ml-test/u.data", b"1\t1\t5\t1\n"),
            ("../evil", b"pwned"),
            ("ml-test/u.item", b"1|x|||x|0\n"),
        ]);
        let (base, server) = serve(vec![Route::ok("/evil.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("a").join("dest");
        let entry = entry_for(&format!("{base}/evil.zip"), &archive);

        let err = fetch(&entry, &options(&dest)).unwrap_err();
        server.join().unwrap();

        let message = format!("{err:#}");
        assert!(message.contains("../evil"), "the bad entry is named: {message}");
        assert!(listing(&dest).is_empty(), "left behind: {:?}", listing(&dest));
        // Nothing was written next to the staging folder, the destination, or above it.
        assert!(!dest.join("evil").exists());
        assert!(!tmp.path().join("a").join("evil").exists());
        assert!(!tmp.path().join("evil").exists());
    }

    #[test]
    fn truncated_response_is_an_error_and_leaves_nothing() {
        let archive = good_archive();
        let cut = archive.len() / 3;
        let route = Route { truncate_at: Some(cut), ..Route::ok("/ml-test.zip", archive.clone()) };
        let (base, server) = serve(vec![route], 1);
        let tmp = tempfile::tempdir().unwrap();
        let entry = entry_for(&format!("{base}/ml-test.zip"), &archive);

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        server.join().unwrap();

        let message = format!("{err:#}");
        assert!(message.contains("broke off") || message.contains("incomplete"), "{message}");
        assert!(listing(tmp.path()).is_empty(), "left behind: {:?}", listing(tmp.path()));
    }

    #[test]
    fn http_error_status_is_reported() {
        let (base, server) = serve(vec![], 1);
        let tmp = tempfile::tempdir().unwrap();
        let entry = entry_for(&format!("{base}/missing.zip"), b"whatever");

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        server.join().unwrap();

        assert!(format!("{err:#}").contains("HTTP 404"), "{err:#}");
        assert!(listing(tmp.path()).is_empty());
    }

    #[test]
    fn unpinned_archive_is_refused_unless_insecure_and_digests_are_printed() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 2);
        let tmp = tempfile::tempdir().unwrap();
        let mut entry = entry_for(&format!("{base}/ml-test.zip"), &archive);
        entry.sha256.clear();
        entry.md5.clear();
        entry.size = 0;

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("pins no checksum"), "{message}");
        assert!(message.contains(&sha256_hex(&archive)), "computed digest shown: {message}");
        assert!(listing(tmp.path()).is_empty());

        let mut opts = options(tmp.path());
        opts.insecure_skip_verify = true;
        fetch(&entry, &opts).unwrap();
        server.join().unwrap();
        let provenance = fs::read_to_string(tmp.path().join("ml-test/.reelvec-fetch.toml")).unwrap();
        assert!(provenance.contains("verified = false"), "{provenance}");
    }

    #[test]
    fn url_override_is_used_and_still_verified() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/mirror/ml-test.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let entry = entry_for("http://127.0.0.1:9/never-used.zip", &archive);
        let mut opts = options(tmp.path());
        opts.url = Some(format!("{base}/mirror/ml-test.zip"));

        fetch(&entry, &opts).unwrap();
        server.join().unwrap();
        let provenance = fs::read_to_string(tmp.path().join("ml-test/.reelvec-fetch.toml")).unwrap();
        assert!(provenance.contains("/mirror/ml-test.zip"), "{provenance}");
    }

    #[test]
    fn wrong_archive_root_is_an_error_and_leaves_nothing() {
        let archive = good_archive();
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let mut entry = entry_for(&format!("{base}/ml-test.zip"), &archive);
        entry.archive_root = "ml-other".into();

        let err = fetch(&entry, &options(tmp.path())).unwrap_err();
        server.join().unwrap();
        assert!(format!("{err:#}").contains("ml-other"), "{err:#}");
        assert!(listing(tmp.path()).is_empty());
    }

    #[test]
    fn archive_without_a_single_root_becomes_the_data_set_itself() {
        let archive =
            zip_bytes(&[("ratings.csv", b"userId,movieId,rating,timestamp\n"), ("movies.csv", b"x\n")]);
        let staging = tempfile::tempdir().unwrap();
        let zip_path = staging.path().join("a.zip");
        fs::write(&zip_path, &archive).unwrap();
        let into = staging.path().join("out");
        fs::create_dir(&into).unwrap();
        unpack(&zip_path, &into, LIMITS).unwrap();
        let root = unpacked_root(&into, "").unwrap();
        assert_eq!(listing(&root), vec!["movies.csv", "ratings.csv"]);
    }

    #[test]
    fn entry_names_are_checked() {
        let ok = |name: &str| safe_entry_path(name, Some(PathBuf::from(name))).map(|_| ());
        assert!(ok("ml-100k/u.data").is_ok());
        assert!(ok("ml-100k/").is_ok());
        assert!(ok("../evil").is_err());
        assert!(ok("ml-100k/../../evil").is_err());
        assert!(ok("ml-100k/..").is_err());
        assert!(ok("a\\..\\b").is_err());
        assert!(ok("/etc/passwd").is_err());
        assert!(ok("\\windows").is_err());
        assert!(ok("C:evil").is_err());
        assert!(ok("").is_err());
        assert!(ok("a\0b").is_err());
        // Whatever the raw name, zip's own check must agree.
        assert!(safe_entry_path("fine/name", None).is_err());
    }

    #[test]
    fn absolute_entry_in_a_real_archive_is_rejected() {
        let archive = zip_bytes(&[("/tmp/reelvec-evil-absolute", b"x")]);
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("a.zip");
        fs::write(&zip_path, &archive).unwrap();
        let into = dir.path().join("out");
        fs::create_dir(&into).unwrap();
        let err = unpack(&zip_path, &into, LIMITS).unwrap_err();
        assert!(format!("{err:#}").contains("absolute"), "{err:#}");
        assert!(listing(&into).is_empty());
    }

    #[test]
    fn the_shipped_manifest_is_valid_and_complete() {
        let manifest = Manifest::load(&project_root().join("datasets/manifest.toml")).unwrap();
        let names: Vec<&str> = manifest.datasets.iter().map(|d| d.name.as_str()).collect();
        for wanted in
            ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest"]
        {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        for d in &manifest.datasets {
            assert_eq!(d.url, format!("https://files.grouplens.org/datasets/movielens/{}.zip", d.name));
            assert!(["ml-100k", "ml-1m", "ml-10m", "ml-latest"].contains(&d.layout.as_str()), "{}", d.layout);
            assert!(!d.archive_root.is_empty() && !d.licence.is_empty());
        }
        // Only the rolling snapshot is unpinned.
        let unpinned: Vec<&str> =
            manifest.datasets.iter().filter(|d| !d.is_pinned()).map(|d| d.name.as_str()).collect();
        assert_eq!(unpinned, vec!["ml-latest"]);
        assert!(manifest.get("ml-9000").is_err());
    }

    #[test]
    fn malformed_manifests_are_rejected() {
        let base = "url = \"https://x/a.zip\"\nlayout = \"ml-100k\"\nlicence = \"l\"\n";
        let bad_digest = format!("[[dataset]]\nname = \"a\"\nsha256 = \"abc\"\n{base}");
        assert!(Manifest::parse(&bad_digest).is_err());
        let dup = format!("[[dataset]]\nname = \"a\"\n{base}[[dataset]]\nname = \"a\"\n{base}");
        assert!(Manifest::parse(&dup).is_err());
        let traversal = format!("[[dataset]]\nname = \"../a\"\n{base}");
        assert!(Manifest::parse(&traversal).is_err());
        let unknown_field = format!("[[dataset]]\nname = \"a\"\nsha512 = \"\"\n{base}");
        assert!(Manifest::parse(&unknown_field).is_err());
        let fine = format!("[[dataset]]\nname = \"a\"\n{base}");
        assert_eq!(Manifest::parse(&fine).unwrap().datasets.len(), 1);
    }

    #[test]
    fn archive_root_must_stay_inside_the_archive() {
        let base = "url = \"https://x/a.zip\"\nlayout = \"ml-100k\"\nlicence = \"l\"\n";
        for bad in ["/etc", "../x", "a/../../b", ".", "a//b", "a\\..\\b", "./a"] {
            let text = format!("[[dataset]]\nname = \"a\"\narchive_root = {bad:?}\n{base}");
            let err = Manifest::parse(&text).unwrap_err();
            assert!(format!("{err:#}").contains("archive_root"), "{bad}: {err:#}");
        }
        for good in ["", "ml-100k", "ml-latest/inner"] {
            let text = format!("[[dataset]]\nname = \"a\"\narchive_root = {good:?}\n{base}");
            assert!(Manifest::parse(&text).is_ok(), "{good}");
        }
        // An entry built in code is checked too, before anything is downloaded or moved: a
        // folder beside the staging tree (or anywhere) is never moved into the destination.
        let archive = good_archive();
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::create_dir(&victim).unwrap();
        fs::write(victim.join("precious"), b"keep").unwrap();
        for root in ["../victim".to_string(), victim.display().to_string()] {
            let (base, server) = serve(vec![Route::ok("/ml-test.zip", archive.clone())], 1);
            let mut entry = entry_for(&format!("{base}/ml-test.zip"), &archive);
            entry.archive_root = root.clone();
            let err = fetch(&entry, &options(tmp.path())).unwrap_err();
            assert!(format!("{err:#}").contains("archive_root"), "{root}: {err:#}");
            drop(server); // it was never asked
            assert_eq!(fs::read(victim.join("precious")).unwrap(), b"keep");
            assert_eq!(listing(tmp.path()), vec!["victim"], "{root}");
        }
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit_whatever_its_headers_say() {
        // 200 MiB of zeros deflate to ~200 KB.
        let zeros = vec![0u8; 200 << 20];
        let archive = zip_bytes(&[("ml-test/", b""), ("ml-test/u.data", &zeros)]);
        assert!(archive.len() < 1 << 20, "{}", archive.len());
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("bomb.zip");
        fs::write(&zip_path, &archive).unwrap();
        // The default for a ~200 KB archive is 64 MiB.
        let entry = DatasetEntry { max_unpacked: 0, ..entry_for("http://x/a.zip", &archive) };
        let limits = UnpackLimits::for_entry(&entry, archive.len() as u64);
        assert_eq!(limits.total, 64 << 20);
        let into = dir.path().join("out");
        fs::create_dir(&into).unwrap();
        let err = unpack(&zip_path, &into, limits).unwrap_err();
        assert!(format!("{err:#}").contains("unpacks to more than"), "{err:#}");
        let written = fs::metadata(into.join("ml-test/u.data")).map_or(0, |m| m.len());
        assert!(written <= (64 << 20) + 1, "{written}");

        // A lying header (declared size 1 byte) is caught by counting: patch the uncompressed
        // size fields (local header offset 22, central header offset 24) to 1.
        let mut lying = archive.clone();
        let mut patched = 0;
        for at in 0..lying.len().saturating_sub(4) {
            let field = match &lying[at..at + 4] {
                [0x50, 0x4b, 0x03, 0x04] => Some(at + 22),
                [0x50, 0x4b, 0x01, 0x02] => Some(at + 24),
                _ => None,
            };
            if let Some(f) = field {
                if u32::from_le_bytes(lying[f..f + 4].try_into().unwrap()) == 200 << 20 {
                    lying[f..f + 4].copy_from_slice(&1u32.to_le_bytes());
                    patched += 1;
                }
            }
        }
        assert_eq!(patched, 2);
        fs::write(&zip_path, &lying).unwrap();
        let into = dir.path().join("out2");
        fs::create_dir(&into).unwrap();
        let small = UnpackLimits { total: 1 << 20, per_entry: 1 << 20 };
        let err = unpack(&zip_path, &into, small).unwrap_err();
        assert!(format!("{err:#}").contains("more than"), "{err:#}");
        let written = fs::metadata(into.join("ml-test/u.data")).map_or(0, |m| m.len());
        assert!(written <= (1 << 20) + 1, "{written}: {err:#}");

        // The total is counted across entries too.
        let archive = zip_bytes(&[("a", &zeros[..600 << 10]), ("b", &zeros[..600 << 10])]);
        fs::write(&zip_path, &archive).unwrap();
        let into = dir.path().join("out3");
        fs::create_dir(&into).unwrap();
        let err = unpack(&zip_path, &into, UnpackLimits { total: 1 << 20, per_entry: 1 << 20 }).unwrap_err();
        assert!(format!("{err:#}").contains("\"b\""), "{err:#}");
    }

    #[test]
    fn a_body_larger_than_the_pinned_size_is_cut_off() {
        let big = vec![7u8; 8 << 20];
        for no_length in [false, true] {
            let route = Route { no_length, ..Route::ok("/ml-test.zip", big.clone()) };
            let (base, server) = serve(vec![route], 1);
            let tmp = tempfile::tempdir().unwrap();
            let mut entry = entry_for(&format!("{base}/ml-test.zip"), &big);
            entry.size = 1_000;
            let mut sink = Vec::new();
            let err = download(&entry.url, &mut sink, false, Some(entry.size)).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains("pins 1000") || message.contains("the 1000 bytes"), "{message}");
            assert!(sink.len() <= 1_000, "{} bytes written", sink.len());
            server.join().unwrap();
            drop(tmp);
        }
        // Through fetch: nothing is left.
        let (base, server) = serve(vec![Route::ok("/ml-test.zip", big.clone())], 1);
        let tmp = tempfile::tempdir().unwrap();
        let mut entry = entry_for(&format!("{base}/ml-test.zip"), &big);
        entry.size = 1_000;
        assert!(fetch(&entry, &options(tmp.path())).is_err());
        server.join().unwrap();
        assert!(listing(tmp.path()).is_empty());
    }

    #[test]
    fn duplicate_entries_are_refused() {
        // Two raw names that differ only in a `./` both unpack to ml-test/u.data.
        let archive = zip_bytes(&[("ml-test/u.data", b"1\t1\t5\t1\n"), ("ml-test/./u.data", b"evil\n")]);
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("dup.zip");
        fs::write(&zip_path, &archive).unwrap();
        let into = dir.path().join("out");
        fs::create_dir(&into).unwrap();
        let err = unpack(&zip_path, &into, LIMITS).unwrap_err();
        assert!(format!("{err:#}").contains("both unpack to"), "{err:#}");
        assert!(listing(&into).is_empty());
        // Byte-identical names (which `zip` silently collapses to one entry): rename
        // "ml-test/u.datb" to "ml-test/u.data" in the raw bytes.
        let archive = zip_bytes(&[("ml-test/u.data", b"good\n"), ("ml-test/u.datb", b"evil\n")]);
        let mut bytes = archive.clone();
        let mut renamed = 0;
        for at in 0..bytes.len() - 14 {
            if &bytes[at..at + 14] == b"ml-test/u.datb" {
                bytes[at + 13] = b'a';
                renamed += 1;
            }
        }
        assert_eq!(renamed, 2);
        fs::write(&zip_path, &bytes).unwrap();
        let err = unpack(&zip_path, &into, LIMITS).unwrap_err();
        assert!(format!("{err:#}").contains("more than once"), "{err:#}");
        assert!(listing(&into).is_empty());
    }
}
