//! `cargo xtask bench`: runs the benchmark suite.

use anyhow::Result;

use crate::util::{cargo, run_checked};

pub fn run(args: &[String]) -> Result<()> {
    crate::setup::run(&[])?;
    run_checked(cargo().args(["bench", "-p", "reelvec-benches"]).args(args))
}
