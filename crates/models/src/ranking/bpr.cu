// BPR on the GPU: the CUDA twin of the lane loop in bpr.rs (same loss, same update, the same
// samples: see bpr.rs for the loss and the gradient).
//
// bpr_step runs samples [start, end) of one epoch, ONE WARP PER SAMPLE (grid-stride). Each warp
// draws its sample exactly as bpr.rs's `draw` does: the SplitMix64 stream (seed, epoch, t),
// the interaction `units[floor(x * nnz / 2^64)]` (__umul64hi is the high half of the 128-bit
// product), then a negative (uniform: floor(x * n_items / 2^64); popularity: the first cdf
// entry > u, u = (x >> 11) 2^-53, capped at the last entry) redrawn while it is one of the
// user's movies (a binary search of the user's CSR row) at most MAX_REDRAWS times; every lane
// computes the same draw. Then x = p_u . (q_i - q_j) + b_i - b_j (per-lane partial sums and a
// butterfly shuffle reduction: every lane holds the same x), z = sigmoid(-x), and each lane
// moves its elements by the same step as triple_step:
//
//   p_u += (decay p - p) + lz (q_i - q_j),  q_i += (decay q_i - q_i) + lz p,
//   q_j += (decay q_j - q_j) - lz p,        b_i, b_j likewise  (decay = 1 - lr lambda, lz = lr z)
//
// applied with atomicAdd: the samples of one launch run concurrently against the live tables
// (Hogwild, as implicit's GPU BPR, but no update is lost). A launch with one sample is the CPU's
// sequential step. A non-finite updated value sets *bad.

#define BPR_MAX_REDRAWS 32

__device__ __forceinline__ unsigned long long bpr_splitmix(unsigned long long* s) {
    *s += 0x9E3779B97F4A7C15ull;
    unsigned long long z = *s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ float bpr_warp_sum(float v) {
    #pragma unroll
    for (int m = 16; m > 0; m >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, m);
    }
    return v;
}

// Whether `c` is in the sorted row cols[begin..end).
__device__ __forceinline__ bool bpr_contains(const unsigned int* __restrict__ cols,
                                             unsigned int begin, unsigned int end, unsigned int c) {
    while (begin < end) {
        unsigned int mid = begin + (end - begin) / 2;
        unsigned int v = cols[mid];
        if (v == c) {
            return true;
        }
        if (v < c) {
            begin = mid + 1;
        } else {
            end = mid;
        }
    }
    return false;
}

extern "C" __global__ void bpr_step(
    float* __restrict__ users,              // n_users x k
    float* __restrict__ items,              // n_items x (k + 1), the bias last
    const unsigned int* __restrict__ units, // (user, movie) of each interaction, 2 nnz
    const unsigned int* __restrict__ row_ptr, // users' CSR offsets
    const unsigned int* __restrict__ cols,    // users' CSR movies (sorted per row)
    const double* __restrict__ cdf,           // popularity cdf (n_items entries) or unused
    unsigned int popularity,
    unsigned int n_items,
    unsigned long long nnz,
    unsigned int k,
    float lr,
    float regularization,
    unsigned long long seed,
    unsigned long long epoch,
    unsigned long long start,
    unsigned long long end,
    unsigned int* __restrict__ bad) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned long long warp = (blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x) >> 5;
    const unsigned long long warps = ((unsigned long long)gridDim.x * blockDim.x) >> 5;
    const float decay = 1.0f - lr * regularization;
    const unsigned int w = k + 1;
    for (unsigned long long t = start + warp; t < end; t += warps) {
        // SplitMix64::stream(seed, epoch, t).
        unsigned long long s = seed ^ (epoch * 0xD1B54A32D192ED03ull);
        s = bpr_splitmix(&s) ^ (t * 0x8CB92BA72F3D8DD7ull);
        unsigned long long unit = __umul64hi(bpr_splitmix(&s), nnz);
        unsigned int u = units[2 * unit];
        unsigned int i = units[2 * unit + 1];
        unsigned int begin = row_ptr[u], stop = row_ptr[u + 1];
        unsigned int j = 0xffffffffu;
        for (int r = 0; r <= BPR_MAX_REDRAWS; ++r) {
            unsigned int c;
            if (popularity) {
                double x = (double)(bpr_splitmix(&s) >> 11) * (1.0 / 9007199254740992.0);
                unsigned int lo = 0, hi = n_items;
                while (lo < hi) {
                    unsigned int mid = lo + (hi - lo) / 2;
                    if (cdf[mid] <= x) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                c = lo < n_items - 1 ? lo : n_items - 1;
            } else {
                c = (unsigned int)__umul64hi(bpr_splitmix(&s), (unsigned long long)n_items);
            }
            if (!bpr_contains(cols, begin, stop, c)) {
                j = c;
                break;
            }
        }
        if (j == 0xffffffffu) {
            continue; // every draw was one of the user's movies: skipped, as on the CPU
        }
        float* p = users + (unsigned long long)u * k;
        float* qi = items + (unsigned long long)i * w;
        float* qj = items + (unsigned long long)j * w;
        float part = 0.0f;
        for (unsigned int e = lane; e < k; e += 32u) {
            part += p[e] * (qi[e] - qj[e]);
        }
        const float x = bpr_warp_sum(part) + (qi[k] - qj[k]);
        // sigmoid(-x), stable as bpr.rs's sigmoid.
        const float sx = -x;
        float z;
        if (sx >= 0.0f) {
            z = 1.0f / (1.0f + expf(-sx));
        } else {
            float ex = expf(sx);
            z = ex / (1.0f + ex);
        }
        const float lz = lr * z;
        bool finite = true;
        for (unsigned int e = lane; e < k; e += 32u) {
            float p0 = p[e], a0 = qi[e], b0 = qj[e];
            float np = decay * p0 + lz * (a0 - b0);
            float na = decay * a0 + lz * p0;
            float nb = decay * b0 - lz * p0;
            finite = finite && isfinite(np) && isfinite(na) && isfinite(nb);
            atomicAdd(p + e, np - p0);
            atomicAdd(qi + e, na - a0);
            atomicAdd(qj + e, nb - b0);
        }
        if (lane == 0) {
            float bi = qi[k], bj = qj[k];
            float nbi = decay * bi + lz;
            float nbj = decay * bj - lz;
            finite = finite && isfinite(nbi) && isfinite(nbj);
            atomicAdd(qi + k, nbi - bi);
            atomicAdd(qj + k, nbj - bj);
        }
        if (!finite) {
            atomicOr(bad, 1u);
        }
        __syncwarp();
    }
}
