//! `cargo xtask fetch NAME`: downloads a GroupLens data set named in `datasets/manifest.toml`.

use anyhow::{bail, Result};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("fetch: not implemented yet")
}
