// Adam, AdamW and lazy Adam as single-pass kernels: the CUDA twins of adam.rs (same per-element
// arithmetic, in PyTorch's order of operations; see adam.rs for the formulas).
//
// All tables of a model are updated by ONE launch: blockIdx.y picks the table, whose pointers
// and sizes come from a descriptor array (7 x u64 per table: p, g, m, v, touched, n, rows<<32|cols)
// uploaded once when the optimizer is created. Each kernel also zeroes the gradient it consumed
// and the table's touched-row flags, so the gradient buffers are clean for the next batch.

struct AdamScalars {
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float eps;
    float l2;
    float decay;
    float neg_step_size;
    float bias_correction2_sqrt;
    int small_weight;
    // The CPU loop's bound for a negligible gradient square (adam.rs, g_negligible): unused
    // here (the GPU computes the plain term), kept for the shared layout.
    float g_negligible;
};

__device__ __forceinline__ void adam_element(const AdamScalars& s, float* p, float* g, float* m, float* v,
                                             unsigned long long i) {
    float pi = p[i] * s.decay;
    float gi = g[i] + s.l2 * pi;
    float mi = m[i];
    float w = s.one_minus_beta1;
    mi = s.small_weight ? mi + w * (gi - mi) : gi - (gi - mi) * (1.0f - w);
    float vi = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    float denom = sqrtf(vi) / s.bias_correction2_sqrt + s.eps;
    p[i] = pi + s.neg_step_size * mi / denom;
    m[i] = mi;
    v[i] = vi;
    g[i] = 0.0f;
}

// Every element of every table (PyTorch Adam / AdamW on dense embedding gradients).
extern "C" __global__ void adam_dense(const unsigned long long* desc, AdamScalars s) {
    const unsigned long long* d = desc + 7 * blockIdx.y;
    float* p = (float*)d[0];
    float* g = (float*)d[1];
    float* m = (float*)d[2];
    float* v = (float*)d[3];
    unsigned int* touched = (unsigned int*)d[4];
    unsigned long long n = d[5];
    unsigned long long rows = d[6] >> 32;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        adam_element(s, p, g, m, v, i);
        if (i < rows) touched[i] = 0u;
    }
}

// Only the rows whose touched flag is set: one warp per row, grid-striding over rows.
extern "C" __global__ void adam_lazy(const unsigned long long* desc, AdamScalars s) {
    const unsigned long long* d = desc + 7 * blockIdx.y;
    float* p = (float*)d[0];
    float* g = (float*)d[1];
    float* m = (float*)d[2];
    float* v = (float*)d[3];
    unsigned int* touched = (unsigned int*)d[4];
    unsigned long long rows = d[6] >> 32;
    unsigned long long cols = d[6] & 0xffffffffull;
    unsigned int lane = threadIdx.x & 31u;
    unsigned long long warp = ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    unsigned long long warps = ((unsigned long long)gridDim.x * blockDim.x) >> 5;
    for (unsigned long long r = warp; r < rows; r += warps) {
        if (touched[r] == 0u) continue;
        for (unsigned long long c = lane; c < cols; c += 32) adam_element(s, p, g, m, v, r * cols + c);
        __syncwarp();
        if (lane == 0) touched[r] = 0u;
    }
}
