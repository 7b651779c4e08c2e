// The P1 cost and gradient on the GPU: the CUDA twin of cost.rs / likes.rs (see cost.rs for the
// derivation). One full-batch step is seven to nine launches on one stream:
//
//   cooc_spmm_segments (+ cooc_spmm_fixup)  A = L V                (users x k)
//   cooc_spmm_segments (+ cooc_spmm_fixup)  X0 V = L^T A - D V     (movies x k)
//   cooc_gram_partials                      per block of rows: G = V^T V, tr(V^T X0 V), sum |v_i|^4 (f64)
//   cooc_reduce_gram, cooc_reduce_cost      G (f64, and an f32 copy), the masked and unmasked costs
//   cooc_grad                               grad = 4 (V G - X0 V) - 4 |v_i|^2 v_i (masked)
//
// Sparse products: the rows of a CSR matrix are cut into segments of at most SEGMENT non-zeros
// (built once on the host). One warp sums one segment in CSR order, lanes over columns. A row of
// one segment is written directly (the same additions in the same order as the CPU, so the
// result is bitwise the CPU's); a longer row writes one partial per segment, and the fix-up
// kernel adds its partials in segment order. Everything is deterministic: no atomics in any sum.
//
// Reductions are in f64 like the CPU's; partials per block are summed in block order.

#define WARP 32
#define MAX_COL_REGS 4  // columns per lane per pass: up to 128 columns at once

// One warp per segment. seg_slot < 0: the segment is the whole row, write out[row];
// else write partial[slot]. With minus_diag, a direct row starts from -(d_row) v_row, where
// d_row = row_ptr[row + 1] - row_ptr[row] (the CPU's transpose_times_minus_diag).
extern "C" __global__ void cooc_spmm_segments(const unsigned int* __restrict__ seg_row,
                                              const unsigned int* __restrict__ seg_begin,
                                              const unsigned int* __restrict__ seg_end,
                                              const int* __restrict__ seg_slot,
                                              const unsigned int* __restrict__ cols,
                                              const unsigned int* __restrict__ row_ptr,
                                              const float* __restrict__ x, const float* __restrict__ v,
                                              unsigned int k, unsigned int n_segs, int minus_diag,
                                              float* __restrict__ out, float* __restrict__ partial) {
    unsigned int warp = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    unsigned int lane = threadIdx.x % WARP;
    if (warp >= n_segs) return;
    unsigned int row = seg_row[warp];
    unsigned int begin = seg_begin[warp];
    unsigned int end = seg_end[warp];
    int slot = seg_slot[warp];
    float d = (float)(row_ptr[row + 1] - row_ptr[row]);
    for (unsigned int c0 = 0; c0 < k; c0 += WARP * MAX_COL_REGS) {
        float acc[MAX_COL_REGS];
#pragma unroll
        for (int r = 0; r < MAX_COL_REGS; r++) {
            unsigned int c = c0 + r * WARP + lane;
            acc[r] = (slot < 0 && minus_diag && c < k) ? -d * v[(unsigned long long)row * k + c] : 0.0f;
        }
        for (unsigned int p = begin; p < end; p += WARP) {
            unsigned int mine = (p + lane < end) ? cols[p + lane] : 0u;
            unsigned int count = min(end - p, (unsigned int)WARP);
#pragma unroll 8
            for (unsigned int t = 0; t < count; t++) {
                unsigned long long j = __shfl_sync(0xffffffffu, mine, t);
                const float* src = x + j * k;
#pragma unroll
                for (int r = 0; r < MAX_COL_REGS; r++) {
                    unsigned int c = c0 + r * WARP + lane;
                    if (c < k) acc[r] += src[c];
                }
            }
        }
        float* dst = slot < 0 ? out + (unsigned long long)row * k : partial + (unsigned long long)slot * k;
#pragma unroll
        for (int r = 0; r < MAX_COL_REGS; r++) {
            unsigned int c = c0 + r * WARP + lane;
            if (c < k) dst[c] = acc[r];
        }
    }
}

// One warp per long row: out[row] = (minus_diag ? -d v_row : 0) + partials in segment order.
extern "C" __global__ void cooc_spmm_fixup(const unsigned int* __restrict__ long_row,
                                           const unsigned int* __restrict__ first_slot,
                                           const unsigned int* __restrict__ n_slots,
                                           const unsigned int* __restrict__ row_ptr,
                                           const float* __restrict__ v, const float* __restrict__ partial,
                                           unsigned int k, unsigned int n_long, int minus_diag,
                                           float* __restrict__ out) {
    unsigned int warp = (blockIdx.x * blockDim.x + threadIdx.x) / WARP;
    unsigned int lane = threadIdx.x % WARP;
    if (warp >= n_long) return;
    unsigned int row = long_row[warp];
    float d = (float)(row_ptr[row + 1] - row_ptr[row]);
    for (unsigned int c = lane; c < k; c += WARP) {
        float acc = minus_diag ? -d * v[(unsigned long long)row * k + c] : 0.0f;
        for (unsigned int s = 0; s < n_slots[warp]; s++) {
            acc += partial[(unsigned long long)(first_slot[warp] + s) * k + c];
        }
        out[(unsigned long long)row * k + c] = acc;
    }
}

#define GRAM_THREADS 256
#define GRAM_TILE 32        // rows staged in shared memory at once
#define GRAM_ROWS 256       // rows per block

// Block b covers rows [b * GRAM_ROWS, ...): writes partial_g[b] (k x k, f64, full matrix),
// partial_tr[b] = sum_i v_i . (X0 V)_i and partial_q[b] = sum_i |v_i|^4 (f64; the products of
// two f32 values are exact in f64, as on the CPU). Dynamic shared memory: GRAM_TILE * k floats.
extern "C" __global__ void cooc_gram_partials(const float* __restrict__ v, const float* __restrict__ x0v,
                                              unsigned int m, unsigned int k, double* __restrict__ partial_g,
                                              double* __restrict__ partial_tr,
                                              double* __restrict__ partial_q) {
    extern __shared__ float tile[];
    __shared__ double warp_tr[GRAM_THREADS / WARP];
    __shared__ double warp_q[GRAM_THREADS / WARP];
    unsigned int row0 = blockIdx.x * GRAM_ROWS;
    unsigned int row_end = min(row0 + GRAM_ROWS, m);
    unsigned int kk = k * k;
    double* pg = partial_g + (unsigned long long)blockIdx.x * kk;
    unsigned int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    double tr = 0.0, q = 0.0;  // per warp (lane 0 after the shuffles)
    bool first = true;
    for (unsigned int t0 = row0; t0 < row_end; t0 += GRAM_TILE) {
        unsigned int rows = min((unsigned int)GRAM_TILE, row_end - t0);
        for (unsigned int e = threadIdx.x; e < rows * k; e += GRAM_THREADS) {
            tile[e] = v[(unsigned long long)t0 * k + e];
        }
        __syncthreads();
        for (unsigned int e = threadIdx.x; e < kk; e += GRAM_THREADS) {
            unsigned int a = e / k, b = e % k;
            double s = 0.0;
            for (unsigned int r = 0; r < rows; r++) s += (double)tile[r * k + a] * (double)tile[r * k + b];
            pg[e] = first ? s : pg[e] + s;
        }
        // tr and |v|^4: one warp per row of the tile, lanes over columns.
        for (unsigned int r = w; r < rows; r += GRAM_THREADS / WARP) {
            double n2 = 0.0, dot = 0.0;
            for (unsigned int c = lane; c < k; c += WARP) {
                double vi = (double)tile[r * k + c];
                n2 += vi * vi;
                dot += vi * (double)x0v[(unsigned long long)(t0 + r) * k + c];
            }
            for (int off = WARP / 2; off > 0; off /= 2) {
                n2 += __shfl_down_sync(0xffffffffu, n2, off);
                dot += __shfl_down_sync(0xffffffffu, dot, off);
            }
            if (lane == 0) {
                tr += dot;
                q += n2 * n2;
            }
        }
        first = false;
        __syncthreads();
    }
    if (lane == 0) {
        warp_tr[w] = tr;
        warp_q[w] = q;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0, qq = 0.0;
        for (int i = 0; i < GRAM_THREADS / WARP; i++) {
            t += warp_tr[i];
            qq += warp_q[i];
        }
        partial_tr[blockIdx.x] = t;
        partial_q[blockIdx.x] = qq;
    }
}

#define REDUCE_THREADS 256

// One thread per entry e of G: g64[e] = sum of the block partials in block order, and its f32
// copy for the gradient (the CPU rounds its f64 Gram matrix the same way).
extern "C" __global__ void cooc_reduce_gram(const double* __restrict__ partial_g, unsigned int n_blocks,
                                            unsigned int kk, double* __restrict__ g64,
                                            float* __restrict__ g32) {
    unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= kk) return;
    double g = 0.0;
    for (unsigned int b = 0; b < n_blocks; b++) g += partial_g[(unsigned long long)b * kk + e];
    g64[e] = g;
    g32[e] = (float)g;
}

// One block: ||G||_F^2 (fixed tree order), tr and the quartic sum (block order), then
// costs[0] = masked, costs[1] = unmasked (see cost.rs):
//   unmasked = ||G||_F^2 - 2 tr(V^T X0 V) + ||X0||_F^2,  masked = unmasked - sum_i |v_i|^4.
extern "C" __global__ void cooc_reduce_cost(const double* __restrict__ g64,
                                            const double* __restrict__ partial_tr,
                                            const double* __restrict__ partial_q, unsigned int n_blocks,
                                            unsigned int kk, double x0_frobenius_sq,
                                            double* __restrict__ costs) {
    __shared__ double sums[REDUCE_THREADS];
    double gsq = 0.0;
    for (unsigned int e = threadIdx.x; e < kk; e += REDUCE_THREADS) gsq += g64[e] * g64[e];
    sums[threadIdx.x] = gsq;
    __syncthreads();
    for (unsigned int half = REDUCE_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        double tr = 0.0, q = 0.0;
        for (unsigned int b = 0; b < n_blocks; b++) {
            tr += partial_tr[b];
            q += partial_q[b];
        }
        double unmasked = sums[0] - 2.0 * tr + x0_frobenius_sq;
        costs[0] = unmasked - q;
        costs[1] = unmasked;
    }
}

// One thread per element (i, c): grad = 4 ((V G)_ic - (X0 V)_ic) - 4 |v_i|^2 v_ic (the last term
// only when mask_diagonal), in f32 with the CPU's order of operations. A non-finite gradient
// records the step in *bad_step (atomicMin), which the host reads when it checks the run.
extern "C" __global__ void cooc_grad(const float* __restrict__ v, const float* __restrict__ x0v,
                                     const float* __restrict__ g32, unsigned int m, unsigned int k,
                                     int mask_diagonal, unsigned int step, float* __restrict__ grad,
                                     unsigned int* __restrict__ bad_step) {
    unsigned long long e = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (unsigned long long)m * k) return;
    unsigned long long i = e / k;
    unsigned int c = (unsigned int)(e % k);
    const float* vi = v + i * k;
    float n2 = 0.0f;
    if (mask_diagonal) {
        for (unsigned int a = 0; a < k; a++) n2 += vi[a] * vi[a];
    }
    float vg = 0.0f;
    for (unsigned int a = 0; a < k; a++) vg += vi[a] * g32[a * k + c];
    float g = 4.0f * (vg - x0v[e]) - 4.0f * n2 * vi[c];
    grad[e] = g;
    if (!isfinite(g)) atomicMin(bad_step, step);
}
