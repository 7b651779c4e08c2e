//! `cargo xtask test`: setup, formatting, clippy with warnings denied, then every test.

use anyhow::{bail, Result};

use crate::util::{cargo, run_checked};

pub fn run(args: &[String]) -> Result<()> {
    if let Some(other) = args.first() {
        bail!("test: unknown argument `{other}`");
    }
    crate::setup::run(&[])?;
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_checked(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run_checked(cargo().args(["test", "--workspace", "--all-targets"]))?;
    run_checked(cargo().args(["test", "--workspace", "--doc"]))?;
    if crate::setup::on_path("chromium") {
        eprintln!("test: the report's headless Chromium rendering test ran (chromium found)");
    } else {
        eprintln!(
            "test: skipped the report's headless Chromium rendering test: chromium not installed \
             (install it with `cargo xtask setup --browser`)"
        );
    }
    Ok(())
}
