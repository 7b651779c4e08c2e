//! Device tables of the item2vec GPU objective: the flat example arrays uploaded once per fit.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The flat example arrays of `examples.rs` on the device.
#[derive(Debug)]
pub(super) struct DeviceExamples {
    pub(super) seq_offsets: CudaSlice<u32>,
    pub(super) ctx_offsets: CudaSlice<u32>,
    pub(super) ctx_tokens: CudaSlice<u32>,
    pub(super) targets: CudaSlice<u32>,
    /// Host copy of the sequence offsets (batch sizes without a device read).
    pub(super) host_seq_offsets: Vec<u32>,
    /// Host copy of the context offsets (pair counts).
    pub(super) host_ctx_offsets: Vec<u32>,
}

impl DeviceExamples {
    pub(super) fn upload(gpu: &Gpu, ex: &Examples, what: &str) -> Result<Self, EngineError> {
        let mut seq_offsets: Vec<u32> =
            (0..ex.sequences()).map(|s| ex.sequence_range(s).start as u32).collect();
        seq_offsets.push(ex.len() as u32);
        let mut ctx_offsets = Vec::with_capacity(ex.len() + 1);
        let mut ctx_tokens = Vec::new();
        ctx_offsets.push(0u32);
        for e in 0..ex.len() {
            ctx_tokens.extend_from_slice(ex.context(e));
            ctx_offsets.push(ctx_tokens.len() as u32);
        }
        Ok(Self {
            seq_offsets: gpu.upload(&seq_offsets, &format!("{what} sequence offsets"))?,
            ctx_offsets: gpu.upload(&ctx_offsets, &format!("{what} context offsets"))?,
            ctx_tokens: gpu.upload(&ctx_tokens, &format!("{what} context tokens"))?,
            targets: gpu.upload(ex.targets(), &format!("{what} targets"))?,
            host_seq_offsets: seq_offsets,
            host_ctx_offsets: ctx_offsets,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.host_ctx_offsets.len() - 1
    }

    /// Examples and (target, context token) pairs of the units.
    pub(super) fn count(&self, units: &[u32]) -> (usize, usize) {
        let (mut n, mut pairs) = (0usize, 0usize);
        for &u in units {
            let (lo, hi) = (self.host_seq_offsets[u as usize], self.host_seq_offsets[u as usize + 1]);
            n += (hi - lo) as usize;
            pairs += (self.host_ctx_offsets[hi as usize] - self.host_ctx_offsets[lo as usize]) as usize;
        }
        (n, pairs)
    }
}
