// Item side features on the GPU (LightFM's hybrid form; the CPU forms and the gradient
// derivations are in mf.rs, "Item side features"): the CUDA twin of folding a table's feature
// rows into its item rows, and of the feature rows' gradient. Any model whose item rows take
// the form
//
//   x~_i = x_i + sum_{f in F_i} w_i e_f,   w_i = 1 / |F_i|   (x~_i = x_i when F_i is empty)
//
// runs its own kernels on the folded table x~ unchanged, since dx~/dx = I makes the item rows'
// gradient that of x; features_scatter then adds w_i * grad x_i to every e_f of the items the
// batch touched and flags those feature rows touched, as the CPU's per-example loop does. The
// CPU adds (g w_i) p per example, this kernel w_i (sum_e g p): equal up to rounding.
//
// `offsets` (n_rows + 1) and `ids` are the CSR of the items' feature ids. One thread per element
// of the n_rows x k table, grid-stride. The fold is the CPU's `FeatureTables::item`: start from
// x_i (or 0 when `base` is null), add w_i e_f feature by feature in the table's order, the same
// f32 operations (NVRTC runs without FMA contraction), so the folded rows are the CPU's bits.

extern "C" __global__ void features_fold(unsigned int n_rows, unsigned int k, const float* base,
                                         const unsigned int* __restrict__ offsets,
                                         const unsigned int* __restrict__ ids, const float* __restrict__ feat,
                                         float* out) {
    const unsigned long long total = (unsigned long long)n_rows * k;
    for (unsigned long long x = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; x < total;
         x += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned int i = (unsigned int)(x / k);
        const unsigned int j = (unsigned int)(x % k);
        const unsigned int lo = offsets[i];
        const unsigned int hi = offsets[i + 1];
        float acc = base ? base[x] : 0.0f;
        if (hi > lo) {
            const float w = 1.0f / (float)(hi - lo);
            for (unsigned int a = lo; a < hi; ++a) acc += w * feat[(unsigned long long)ids[a] * k + j];
        }
        out[x] = acc;
    }
}

// The feature rows' gradient from the item rows' gradient `grad` a batch left (see the top);
// `touched` is the item table's touched flags of this batch.
extern "C" __global__ void features_scatter(unsigned int n_rows, unsigned int k,
                                            const unsigned int* __restrict__ offsets,
                                            const unsigned int* __restrict__ ids,
                                            const unsigned int* __restrict__ touched,
                                            const float* __restrict__ grad, float* feat_grad,
                                            unsigned int* feat_touched) {
    const unsigned long long total = (unsigned long long)n_rows * k;
    for (unsigned long long x = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; x < total;
         x += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned int i = (unsigned int)(x / k);
        const unsigned int j = (unsigned int)(x % k);
        const unsigned int lo = offsets[i];
        const unsigned int hi = offsets[i + 1];
        if (!touched[i] || hi == lo) continue;
        const float w = 1.0f / (float)(hi - lo);
        const float g = grad[x];
        for (unsigned int a = lo; a < hi; ++a) {
            const unsigned int f = ids[a];
            atomicAdd(feat_grad + (unsigned long long)f * k + j, w * g);
            if (j == 0) feat_touched[f] = 1u;
        }
    }
}
