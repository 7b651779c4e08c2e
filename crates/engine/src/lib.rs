//! The reelvec training engine: a parameter store of named f32 tables, hand-written optimizers
//! (SGD, Adam, AdamW, lazy Adam), schedulers, a trainer loop, and the CPU (rayon) and CUDA
//! backends. There is no autograd: models write their own forward and backward passes.
