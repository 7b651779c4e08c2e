// EASE^R on the GPU: the element-wise steps of ease_gpu.rs around cuBLAS (the Gram) and
// cuSOLVER (Cholesky and inverse); the CPU twin is ease.rs.
//
//   ease_scatter      X_c[u - u0, j] = value for every interaction (u, j) of users u0..u1
//                     (value 1 before the chunk's GEMM, 0 after it, so the dense chunk is clean
//                     for the next one without a full clear)
//   ease_gram_to_f64  P = (double) G + lambda I        (G holds exact integer counts)
//   ease_weights      B[i, j] = -P[i, j] / P[j, j] off the diagonal, 0 on it   (row-major f32)
//
// P is column-major and, after potrf + potri with the LOWER fill mode, only its lower
// triangle (row >= column) holds P^-1: element (r, c) with r >= c is at P[c * m + r], and the
// upper elements are read through symmetry.
//
// Indices are 64-bit (m^2 exceeds 2^32 for m > 65,535) and every kernel strides over the grid.

extern "C" __global__ void ease_scatter(
    const unsigned int* __restrict__ row_ptr,
    const unsigned int* __restrict__ cols,
    float* __restrict__ x,
    unsigned int u0,
    unsigned int u1,
    unsigned int m,
    float value) {
    // One warp per user of the chunk.
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warps = (gridDim.x * blockDim.x) >> 5;
    for (unsigned int u = u0 + ((blockIdx.x * blockDim.x + threadIdx.x) >> 5); u < u1; u += warps) {
        float* xrow = x + (unsigned long long)(u - u0) * m;
        for (unsigned int idx = row_ptr[u] + lane; idx < row_ptr[u + 1]; idx += 32u) {
            xrow[cols[idx]] = value;
        }
    }
}

extern "C" __global__ void ease_gram_to_f64(
    const float* __restrict__ g,
    double* __restrict__ p,
    unsigned int m,
    double lambda) {
    const unsigned long long total = (unsigned long long)m * m;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        double v = (double)g[idx];
        if (idx / m == idx % m) {
            v += lambda;
        }
        p[idx] = v;
    }
}

extern "C" __global__ void ease_weights(
    const double* __restrict__ p,
    float* __restrict__ b,
    unsigned int m) {
    const unsigned long long total = (unsigned long long)m * m;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += stride) {
        const unsigned long long i = idx / m;
        const unsigned long long j = idx % m;
        float w = 0.0f;
        if (i != j) {
            // (i, j) from the lower triangle: (max, min) at P[min * m + max].
            const double pij = (i > j) ? p[j * m + i] : p[i * m + j];
            w = (float)(-pij / p[j * m + j]);
        }
        b[idx] = w;
    }
}
