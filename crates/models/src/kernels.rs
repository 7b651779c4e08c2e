//! The registry of this crate's CUDA kernel files: every `.cu` the models compile at run time,
//! in every variant (MF with and without vector atomics), so CI can compile each one with
//! NVRTC and the runtime's options ([`reelvec_engine::gpu::compile_check`]) without a device.

use reelvec_engine::gpu::KernelSource;

/// Every kernel file of the models, as the runtime compiles it.
pub const KERNELS: &[KernelSource] = &[
    crate::mf_gpu::MF_CU,
    crate::mf_gpu::MF_CU_VECTOR_ATOMICS,
    crate::features_gpu::FEATURES_CU,
    crate::item2vec::gpu::SOFTMAX_CU,
    crate::item2vec::gpu::NEGATIVE_CU,
    crate::cooc::gpu::COOC_CU,
    crate::ranking::ials_gpu::IALS_CU,
    crate::ranking::ease_gpu::EASE_CU,
    crate::ranking::bpr_gpu::BPR_CU,
];
