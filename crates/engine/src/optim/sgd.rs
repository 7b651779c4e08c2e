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

use super::Optimizer;
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
            if c.momentum == 0.0 {
                for (p, &g) in table.data.iter_mut().zip(g) {
                    let g = g + c.weight_decay * *p;
                    *p -= lr * g;
                }
                continue;
            }
            let buf = &mut self.momentum[i];
            for ((p, &g), b) in table.data.iter_mut().zip(g).zip(buf.iter_mut()) {
                let g = g + c.weight_decay * *p;
                *b = if first { g } else { c.momentum * *b + (1.0 - c.dampening) * g };
                let d = if c.nesterov { g + c.momentum * *b } else { *b };
                *p -= lr * d;
            }
        }
    }

    fn steps_taken(&self) -> u64 {
        self.t
    }
}
