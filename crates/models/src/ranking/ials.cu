// iALS on the GPU: the CUDA twin of `cg_row` / `solve_rows` in ials.rs (same model, same
// warm-started conjugate-gradient steps per row; see ials.rs for the loss and the normal
// equations).
//
// For row x (a user, or a movie in the other half), with the other side's factors Y fixed:
//
//   A = G + lambda I + (c - 1) sum_{i in I_x} y_i y_i^T,   b = c sum_{i in I_x} y_i
//
// where G = Y^T Y (WITHOUT lambda: the host forms it with one cuBLAS sgemm per half-iteration
// and lambda is added here, as lambda v, in every product). A is never formed: A v is
// G v + lambda v + (c - 1) sum_i (y_i . v) y_i.
//
// Layout: ONE WARP PER ROW. Lane l owns the elements e = l + 32 t (t < IALS_PER_LANE) of the
// row's x, r, p and A p, in registers; k <= 32 * IALS_PER_LANE = 256 (the host refuses larger
// k). Dot products are a per-lane partial sum then a butterfly (xor) shuffle reduction: every
// lane ends with the same bits (each level adds the same two values in either order), so the
// scalar CG quantities (rs, step, beta) and the early exit are uniform across the warp. G v
// needs all of v: the warp stages v in its slice of shared memory (k floats per warp) and
// reads G column-wise (G[b k + e], coalesced across lanes; G is symmetric). Rows of one block
// never synchronise with each other (only __syncwarp), so a warp whose row is out of range
// returns at once.
//
// A row without interactions becomes zero (its exact solution), as on the CPU.
//
// Summation order differs from the CPU's (its dot products run over the elements in order on
// one thread), so results agree to f32 rounding, not bit for bit.

#define IALS_PER_LANE 8
// Items whose loads and reductions one warp overlaps.
#define IALS_ITEMS 4

__device__ __forceinline__ float ials_warp_sum(float v) {
    #pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, m);
    }
    return v;
}

// out = (G + lambda I) v + (c - 1) sum_{i in cols[begin..end)} (y_i . v) y_i; with WITH_RHS,
// rhs = c sum_i y_i as well. `sv` is this warp's k floats of shared memory.
template <bool WITH_RHS>
__device__ __forceinline__ void ials_apply(
    const float* __restrict__ gram,
    const float* __restrict__ y,
    const unsigned int* __restrict__ cols,
    unsigned int begin,
    unsigned int end,
    unsigned int k,
    float lambda,
    float c,
    unsigned int lane,
    float* sv,
    const float (&v)[IALS_PER_LANE],
    float (&out)[IALS_PER_LANE],
    float (&rhs)[IALS_PER_LANE]) {
    #pragma unroll
    for (int t = 0; t < IALS_PER_LANE; ++t) {
        unsigned int e = lane + 32u * t;
        if (e < k) {
            sv[e] = v[t];
        }
        out[t] = (e < k) ? lambda * v[t] : 0.0f;
        if (WITH_RHS) {
            rhs[t] = 0.0f;
        }
    }
    __syncwarp();
    for (unsigned int b = 0; b < k; ++b) {
        const float vb = sv[b];
        const float* gb = gram + (unsigned long long)b * k;
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            unsigned int e = lane + 32u * t;
            if (e < k) {
                out[t] += gb[e] * vb;
            }
        }
    }
    // Every lane has read sv before the caller stages the next vector into it.
    __syncwarp();
    const float cm1 = c - 1.0f;
    unsigned int idx = begin;
    // Groups of IALS_ITEMS items: their loads and their shuffle reductions are independent, so
    // they overlap (a movie with 80,000 users is one warp's serial loop). The additions into
    // `out` stay in item order.
    for (; end - idx >= IALS_ITEMS; idx += IALS_ITEMS) {
        float yv[IALS_ITEMS][IALS_PER_LANE];
        float part[IALS_ITEMS];
        #pragma unroll
        for (int q = 0; q < IALS_ITEMS; ++q) {
            const float* yi = y + (unsigned long long)cols[idx + q] * k;
            part[q] = 0.0f;
            #pragma unroll
            for (int t = 0; t < IALS_PER_LANE; ++t) {
                unsigned int e = lane + 32u * t;
                yv[q][t] = (e < k) ? yi[e] : 0.0f;
                part[q] += yv[q][t] * v[t];
            }
        }
        #pragma unroll
        for (int q = 0; q < IALS_ITEMS; ++q) {
            part[q] = ials_warp_sum(part[q]);
        }
        #pragma unroll
        for (int q = 0; q < IALS_ITEMS; ++q) {
            const float s = cm1 * part[q];
            #pragma unroll
            for (int t = 0; t < IALS_PER_LANE; ++t) {
                out[t] += s * yv[q][t];
                if (WITH_RHS) {
                    rhs[t] += c * yv[q][t];
                }
            }
        }
    }
    for (; idx < end; ++idx) {
        const float* yi = y + (unsigned long long)cols[idx] * k;
        float yv[IALS_PER_LANE];
        float part = 0.0f;
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            unsigned int e = lane + 32u * t;
            yv[t] = (e < k) ? yi[e] : 0.0f;
            part += yv[t] * v[t];
        }
        const float s = cm1 * ials_warp_sum(part);
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            out[t] += s * yv[t];
            if (WITH_RHS) {
                rhs[t] += c * yv[t];
            }
        }
    }
}

// One half-iteration: `cg_steps` CG steps for every row of x (n_rows x k, warm start in place)
// against the other side's factors y. Launch: blockDim.x a multiple of 32, one warp per row,
// dynamic shared memory (blockDim.x / 32) * k floats.
extern "C" __global__ void ials_cg_rows(
    const float* __restrict__ gram,
    const float* __restrict__ y,
    const unsigned int* __restrict__ row_ptr,
    const unsigned int* __restrict__ cols,
    float* __restrict__ x,
    unsigned int n_rows,
    unsigned int k,
    float lambda,
    float c,
    unsigned int cg_steps) {
    extern __shared__ float ials_shared[];
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    const unsigned int row = blockIdx.x * (blockDim.x >> 5) + warp;
    if (row >= n_rows) {
        return;
    }
    float* sv = ials_shared + (unsigned long long)warp * k;
    float* xrow = x + (unsigned long long)row * k;
    const unsigned int begin = row_ptr[row];
    const unsigned int end = row_ptr[row + 1];
    if (begin == end) {
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            unsigned int e = lane + 32u * t;
            if (e < k) {
                xrow[e] = 0.0f;
            }
        }
        return;
    }
    float xr[IALS_PER_LANE], r[IALS_PER_LANE], p[IALS_PER_LANE], ap[IALS_PER_LANE];
    #pragma unroll
    for (int t = 0; t < IALS_PER_LANE; ++t) {
        unsigned int e = lane + 32u * t;
        xr[t] = (e < k) ? xrow[e] : 0.0f;
    }
    // r = b - A x, p = r.
    ials_apply<true>(gram, y, cols, begin, end, k, lambda, c, lane, sv, xr, ap, r);
    float part = 0.0f;
    #pragma unroll
    for (int t = 0; t < IALS_PER_LANE; ++t) {
        r[t] = r[t] - ap[t];
        p[t] = r[t];
        part += r[t] * r[t];
    }
    float rs_old = ials_warp_sum(part);
    for (unsigned int s = 0; s < cg_steps; ++s) {
        if (rs_old < 1e-20f) {
            break;
        }
        ials_apply<false>(gram, y, cols, begin, end, k, lambda, c, lane, sv, p, ap, r);
        part = 0.0f;
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            part += p[t] * ap[t];
        }
        const float step = rs_old / ials_warp_sum(part);
        part = 0.0f;
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            xr[t] += step * p[t];
            r[t] -= step * ap[t];
            part += r[t] * r[t];
        }
        const float rs_new = ials_warp_sum(part);
        const float beta = rs_new / rs_old;
        #pragma unroll
        for (int t = 0; t < IALS_PER_LANE; ++t) {
            p[t] = r[t] + beta * p[t];
        }
        rs_old = rs_new;
    }
    #pragma unroll
    for (int t = 0; t < IALS_PER_LANE; ++t) {
        unsigned int e = lane + 32u * t;
        if (e < k) {
            xrow[e] = xr[t];
        }
    }
}
