//! `cargo xtask setup`: installs the system packages the build needs, idempotently.
//!
//! ndarray-linalg links Debian's OpenBLAS (`libopenblas-dev`), found through `pkg-config`.
//! `--browser` also installs Debian's Chromium for the report's rendering test.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::util::run_checked;

struct Package {
    name: &'static str,
    present: fn() -> bool,
}

const BUILD_PACKAGES: &[Package] = &[
    Package { name: "pkg-config", present: || on_path("pkg-config") },
    Package { name: "libopenblas-dev", present: openblas_present },
];

const BROWSER_PACKAGES: &[Package] = &[Package { name: "chromium", present: || on_path("chromium") }];

pub fn run(args: &[String]) -> Result<()> {
    let mut wanted: Vec<&Package> = BUILD_PACKAGES.iter().collect();
    for arg in args {
        match arg.as_str() {
            "--browser" => wanted.extend(BROWSER_PACKAGES.iter()),
            other => bail!("setup: unknown argument `{other}` (expected --browser)"),
        }
    }
    ensure(&wanted)
}

/// Installs whichever of `packages` are missing; prints what it found either way.
fn ensure(packages: &[&Package]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if missing.is_empty() {
        eprintln!("setup: system packages present ({})", names(packages));
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!(
            "setup: missing {} and no apt-get here; install them with your system's package manager",
            missing.join(", ")
        );
    }
    let root = is_root();
    if !root && !on_path("sudo") {
        bail!("setup: missing {}; run as root or install sudo", missing.join(", "));
    }
    let apt = |args: &[&str]| {
        let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
        if !root {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    eprintln!("setup: installing {}", missing.join(", "));
    run_checked(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&missing);
    run_checked(&mut install)?;
    let still: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if !still.is_empty() {
        bail!("setup: {} still missing after apt-get install", still.join(", "));
    }
    Ok(())
}

fn names(packages: &[&Package]) -> String {
    packages.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

fn openblas_present() -> bool {
    let pkg_config = Command::new("pkg-config")
        .args(["--exists", "openblas"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    pkg_config
        || ["/usr/lib/x86_64-linux-gnu/libopenblas.so", "/usr/lib/aarch64-linux-gnu/libopenblas.so"]
            .iter()
            .any(|p| Path::new(p).exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
