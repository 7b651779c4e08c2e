//! The optimizers on the device: the CUDA twins of [`crate::optim`] (kernels in
//! `optim/adam.cu` and `optim/sgd.cu`, beside the CPU code).
//!
//! One launch updates every table of the model (a descriptor array of device pointers, built
//! once), reads each gradient once, updates the moments and parameters in place and zeroes the
//! gradient and touched flags: the whole step is one pass over memory and one launch.
//!
//! **Soundness.** The descriptor array holds raw device addresses, so [`GpuOptimizer::step`]
//! borrows the [`GpuParams`] and [`GpuGrads`] it updates (mutably: the kernel writes them) and,
//! before launching, checks that their buffers are still the ones the descriptors name (same
//! device address and length, same device). Dropped or replaced tables can therefore never be
//! written: the borrow keeps them alive for the launch (and cudarc frees a buffer on its stream,
//! after every launch queued before), and a mismatch is an error, not a write. A step without the
//! buffers does not compile:
//!
//! ```compile_fail
//! # use reelvec_engine::gpu::{Gpu, GpuGrads, GpuOptimizer, GpuParams};
//! # fn f(gpu: &Gpu, mut opt: GpuOptimizer, params: GpuParams, mut grads: GpuGrads) {
//! drop(params);
//! opt.step(gpu, &mut params, &mut grads, 1e-3); // error: `params` was moved (dropped)
//! # }
//! ```

use cudarc::driver::{CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg};

use super::{Gpu, GpuGrads, GpuParams, KernelSource, BLOCK};
use crate::optim::adam::StepScalars;
use crate::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use crate::EngineError;

pub(super) const ADAM_CU: KernelSource = KernelSource {
    name: "adam.cu",
    source: include_str!("../optim/adam.cu"),
    functions: &["adam_dense", "adam_lazy"],
};

pub(super) const SGD_CU: KernelSource =
    KernelSource { name: "sgd.cu", source: include_str!("../optim/sgd.cu"), functions: &["sgd_dense"] };

// SAFETY: `StepScalars` is `#[repr(C)]` plain-old-data with the layout of adam.cu's
// `struct AdamScalars` (eight f32, one i32, one f32).
unsafe impl DeviceRepr for StepScalars {}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Adam(AdamConfig),
    AdamW(AdamConfig),
    LazyAdam(AdamConfig),
    Sgd(SgdConfig),
}

/// An optimizer whose state lives on the device.
#[derive(Debug)]
pub struct GpuOptimizer {
    rule: Rule,
    t: u64,
    /// First moments (Adam) or momentum buffers (SGD), one per table.
    m: Vec<CudaSlice<f32>>,
    /// Second moments (Adam), one per table.
    v: Vec<CudaSlice<f32>>,
    /// 7 x u64 per table: p, g, m, v, touched, n, rows << 32 | cols.
    desc: CudaSlice<u64>,
    /// The host copy of `desc`: what each step checks the borrowed buffers against.
    words: Vec<u64>,
    /// The device the descriptors belong to.
    ordinal: usize,
    n_tables: u32,
    /// Elements of the largest table (sizes the dense grid).
    max_elems: usize,
    /// Rows of the largest table (sizes the lazy grid).
    max_rows: usize,
}

impl GpuOptimizer {
    /// State for `params` and `grads`; every [`step`](Self::step) must be given these same
    /// buffers (the descriptor array holds their device addresses; a step checks them).
    pub fn new(
        gpu: &Gpu,
        config: &OptimizerConfig,
        params: &GpuParams,
        grads: &GpuGrads,
    ) -> Result<Self, EngineError> {
        let rule = match *config {
            OptimizerConfig::Adam(c) | OptimizerConfig::Auto(c) => Rule::Adam(c),
            OptimizerConfig::AdamW(c) => Rule::AdamW(c),
            OptimizerConfig::LazyAdam(c) => Rule::LazyAdam(c),
            OptimizerConfig::Sgd(c) => Rule::Sgd(c),
        };
        let mut m = Vec::new();
        let mut v = Vec::new();
        for t in params.tables() {
            let n = t.rows * t.cols;
            m.push(gpu.zeros::<f32>(n, &format!("optimizer first moment of {}", t.name))?);
            let v_len = if matches!(rule, Rule::Sgd(_)) { 1 } else { n };
            v.push(gpu.zeros::<f32>(v_len, &format!("optimizer second moment of {}", t.name))?);
        }
        let words = descriptors(gpu, params, grads, &m, &v)?;
        let desc = gpu.upload(&words, "optimizer table descriptors")?;
        let max_elems = params.tables().iter().map(|t| t.rows * t.cols).max().unwrap_or(1);
        let max_rows = params.tables().iter().map(|t| t.rows).max().unwrap_or(1);
        // Compile now so the first step's time is not the compiler's.
        match rule {
            Rule::Sgd(_) => {
                gpu.function(&SGD_CU, "sgd_dense")?;
            }
            _ => {
                gpu.function(&ADAM_CU, "adam_dense")?;
            }
        }
        Ok(Self {
            rule,
            t: 0,
            m,
            v,
            desc,
            words,
            ordinal: gpu.ordinal(),
            n_tables: params.tables().len() as u32,
            max_elems,
            max_rows,
        })
    }

    /// Refuses buffers other than those the descriptors were built from (a dropped, replaced or
    /// resized table, or another model's), so the kernel only writes memory borrowed here.
    fn check_buffers(&self, gpu: &Gpu, params: &GpuParams, grads: &GpuGrads) -> Result<(), EngineError> {
        let mismatch = |message: String| EngineError::Gpu { what: "an optimizer step".to_string(), message };
        if gpu.ordinal() != self.ordinal {
            return Err(mismatch(format!(
                "the optimizer was built on CUDA device {} and stepped on {}",
                self.ordinal,
                gpu.ordinal()
            )));
        }
        let now = descriptors(gpu, params, grads, &self.m, &self.v)?;
        if now != self.words {
            return Err(mismatch(
                "the parameters or gradients are not the buffers the optimizer was built for".to_string(),
            ));
        }
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.t
    }

    /// One update of every table of `params` with learning rate `lr` from `grads`; zeroes the
    /// gradients and flags. `params` and `grads` must be the buffers given to
    /// [`new`](Self::new) (else an error, and nothing is launched).
    pub fn step(
        &mut self,
        gpu: &Gpu,
        params: &mut GpuParams,
        grads: &mut GpuGrads,
        lr: f32,
    ) -> Result<(), EngineError> {
        self.check_buffers(gpu, params, grads)?;
        if self.n_tables == 0 {
            return Ok(());
        }
        self.t += 1;
        let stream = gpu.stream();
        let sms = gpu.multiprocessors() as u32;
        match self.rule {
            Rule::Adam(c) | Rule::AdamW(c) => {
                let scalars = StepScalars::new(&c, lr, self.t, matches!(self.rule, Rule::AdamW(_)));
                let f = gpu.function(&ADAM_CU, "adam_dense")?;
                let blocks = (self.max_elems.div_ceil(BLOCK as usize) as u32).clamp(1, sms * 8);
                let cfg = LaunchConfig {
                    grid_dim: (blocks, self.n_tables, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = stream.launch_builder(&f);
                launch.arg(&self.desc).arg(&scalars);
                // SAFETY: `check_buffers` proved the descriptors name the buffers of `params`,
                // `grads` and `self` (borrowed for this call, so alive), with the sizes stated.
                unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("adam_dense", e))?;
            }
            Rule::LazyAdam(c) => {
                let scalars = StepScalars::new(&c, lr, self.t, false);
                let f = gpu.function(&ADAM_CU, "adam_lazy")?;
                let warps_per_block = BLOCK as usize / 32;
                let blocks = (self.max_rows.div_ceil(warps_per_block) as u32).clamp(1, sms * 16);
                let cfg = LaunchConfig {
                    grid_dim: (blocks, self.n_tables, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let mut launch = stream.launch_builder(&f);
                launch.arg(&self.desc).arg(&scalars);
                // SAFETY: as above.
                unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("adam_lazy", e))?;
            }
            Rule::Sgd(c) => {
                let f = gpu.function(&SGD_CU, "sgd_dense")?;
                let blocks = (self.max_elems.div_ceil(BLOCK as usize) as u32).clamp(1, sms * 8);
                let cfg = LaunchConfig {
                    grid_dim: (blocks, self.n_tables, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                let nesterov = i32::from(c.nesterov);
                let first = i32::from(self.t == 1);
                let mut launch = stream.launch_builder(&f);
                launch
                    .arg(&self.desc)
                    .arg(&lr)
                    .arg(&c.momentum)
                    .arg(&c.dampening)
                    .arg(&c.weight_decay)
                    .arg(&nesterov)
                    .arg(&first);
                // SAFETY: as above.
                unsafe { launch.launch(cfg) }.map_err(|e| gpu.launch_error("sgd_dense", e))?;
            }
        }
        Ok(())
    }

    /// Device memory held by the optimizer state, in bytes.
    pub fn state_bytes(&self) -> usize {
        self.m.iter().chain(&self.v).map(|s| s.len() * 4).sum()
    }
}

/// The descriptor words for `params`, `grads` and the moments: per table p, g, m, v, touched,
/// n, rows << 32 | cols. The table counts and shapes must agree.
fn descriptors(
    gpu: &Gpu,
    params: &GpuParams,
    grads: &GpuGrads,
    m: &[CudaSlice<f32>],
    v: &[CudaSlice<f32>],
) -> Result<Vec<u64>, EngineError> {
    let (tables, grad_tables) = (params.tables(), grads.tables());
    if grad_tables.len() != tables.len() || m.len() != tables.len() {
        return Err(EngineError::ShapeMismatch {
            what: "optimizer tables (parameters, gradients, moments)".to_string(),
            expected: tables.len(),
            actual: grad_tables.len().min(m.len()),
        });
    }
    let stream = gpu.stream();
    let mut words = Vec::with_capacity(7 * tables.len());
    for (i, t) in tables.iter().enumerate() {
        let g = &grad_tables[i];
        let n = t.rows * t.cols;
        let sized = t.data.len() >= n && g.data.len() >= n && m[i].len() >= n && g.touched.len() >= t.rows;
        if !sized {
            return Err(EngineError::ShapeMismatch {
                what: format!("device buffers of table `{}`", t.name),
                expected: n,
                actual: t.data.len().min(g.data.len()).min(m[i].len()),
            });
        }
        let (p_ptr, _) = t.data.device_ptr(stream);
        let (g_ptr, _) = g.data.device_ptr(stream);
        let (m_ptr, _) = m[i].device_ptr(stream);
        let (v_ptr, _) = v[i].device_ptr(stream);
        let (f_ptr, _) = g.touched.device_ptr(stream);
        words.extend_from_slice(&[
            p_ptr,
            g_ptr,
            m_ptr,
            v_ptr,
            f_ptr,
            n as u64,
            ((t.rows as u64) << 32) | t.cols as u64,
        ]);
    }
    Ok(words)
}
