//! `cargo xtask pipeline`: builds the release `reelvec` binary and runs `reelvec pipeline`.
//!
//! The pipeline itself lives in the binary so that it also runs where there is no cargo (the GPU
//! machine). Arguments pass through unchanged.

use anyhow::Result;

use crate::util::{cargo, run_checked};

pub fn run(args: &[String]) -> Result<()> {
    crate::setup::run(&[])?;
    run_checked(
        cargo().args(["run", "--release", "--quiet", "-p", "reelvec-cli", "--", "pipeline"]).args(args),
    )
}
