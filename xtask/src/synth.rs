//! `cargo xtask synth`: writes a synthetic data set through `reelvec data synth`.

use anyhow::Result;

use crate::util::{cargo, run_checked};

pub fn run(args: &[String]) -> Result<()> {
    run_checked(
        cargo().args(["run", "--release", "--quiet", "-p", "reelvec-cli", "--", "data", "synth"]).args(args),
    )
}
