//! SGD with momentum, PyTorch's `torch.optim.SGD` semantics.
//!
//! ```text
//! g = grad + weight_decay * p
//! buf = g                                  (first step)
//! buf = momentum * buf + (1 - dampening) * g   (later steps)
//! g = nesterov ? g + momentum * buf : buf  (when momentum != 0)
//! p -= lr * g
//! ```

use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::{Optimizer, PAR_CHUNK};
use crate::params::{Grads, ParamStore};

/// SGD hyperparameters (PyTorch defaults: no momentum, no decay).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SgdConfig {
    /// Momentum factor.
    pub momentum: f32,
    /// Dampening of the momentum's gradient term.
    pub dampening: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// SGD over every element of every table.
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    momentum: Vec<Vec<f32>>,
    t: u64,
}

impl Sgd {
    /// A fresh optimizer.
    pub fn new(config: SgdConfig) -> Self {
        Self { config, momentum: Vec::new(), t: 0 }
    }
}

/// The fused element loop without momentum.
#[inline]
fn sgd_plain(lr: f32, wd: f32, p: &mut [f32], g: &[f32]) {
    for (p, &g) in p.iter_mut().zip(g) {
        let g = g + wd * *p;
        *p -= lr * g;
    }
}

/// The fused element loop with momentum (`first`: the buffer starts as the gradient).
#[inline]
fn sgd_momentum(c: SgdConfig, lr: f32, first: bool, p: &mut [f32], g: &[f32], buf: &mut [f32]) {
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        let g = g + c.weight_decay * *p;
        *b = if first { g } else { c.momentum * *b + (1.0 - c.dampening) * g };
        let d = if c.nesterov { g + c.momentum * *b } else { *b };
        *p -= lr * d;
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut ParamStore, grads: &Grads, lr: f32) {
        let c = self.config;
        let first = self.t == 0;
        if c.momentum != 0.0 && self.momentum.len() != params.tables().len() {
            self.momentum = params.tables().iter().map(|t| vec![0.0; t.data.len()]).collect();
        }
        self.t += 1;
        for (i, table) in params.tables_mut().iter_mut().enumerate() {
            let g = &grads.tables()[i].data;
            let p = &mut table.data;
            let small = p.len() <= PAR_CHUNK;
            if c.momentum == 0.0 {
                if small {
                    sgd_plain(lr, c.weight_decay, p, g);
                } else {
                    p.par_chunks_mut(PAR_CHUNK)
                        .zip(g.par_chunks(PAR_CHUNK))
                        .for_each(|(p, g)| sgd_plain(lr, c.weight_decay, p, g));
                }
                continue;
            }
            let buf = &mut self.momentum[i];
            if small {
                sgd_momentum(c, lr, first, p, g, buf);
            } else {
                p.par_chunks_mut(PAR_CHUNK)
                    .zip(g.par_chunks(PAR_CHUNK))
                    .zip(buf.par_chunks_mut(PAR_CHUNK))
                    .for_each(|((p, g), b)| sgd_momentum(c, lr, first, p, g, b));
            }
        }
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}
