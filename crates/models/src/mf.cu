// The MF family (P2, P3, P4) on the GPU: the CUDA twin of MfObjective in mf.rs (same model, same
// per-example arithmetic; see mf.rs for the loss and gradient derivation).
//
//   x = p_u . q_i (+ b_u + c_i),  y = link(x),  loss += (y - t)^2
//   g = (y - t) * (2 / |B|) * dy/dx
//   grad p_u += g q_i,  grad q_i += g p_u,  grad b_u += g,  grad c_i += g   (atomicAdd)
//
// Layout: a GROUP of G lanes (G a power of two <= 32, chosen by the host so that G >= k / V
// when possible) handles one example; a warp holds 32 / G groups. Lane j of a group reads the
// chunks j, j + G, ... of the two factor rows (V = 4: float4 chunks, V = 1: floats), so a
// group's loads of one row are coalesced. The group's partial dot products are reduced by
// shuffles and lane 0's sum is broadcast (every lane then uses the same x, bit for bit). The
// grid is persistent: warps stride over the examples.
//
// The loss sum: each group's lane 0 adds (double)(e * e) to a per-thread double (the CPU adds
// f64::from(e * e) too), then one block reduction and ONE double atomicAdd per block.
//
// With MF_VECTOR_ATOMICS defined (the host compiles a variant with it and falls back to this
// plain file when that variant does not compile) and compute capability >= 9.0, the V = 4
// gradient rows are added with float4 atomicAdd: one instruction per four elements, each
// element still added atomically on its own (the same sums as scalar atomics).

#define MF_BLOCK 256

__device__ __forceinline__ void mf_link(int sigmoid_range, float lo, float hi, float x, float* y, float* dy) {
    if (sigmoid_range) {
        float s = 1.0f / (1.0f + expf(-x));
        *y = s * (hi - lo) + lo;
        *dy = (hi - lo) * s * (1.0f - s);
    } else {
        *y = x;
        *dy = 1.0f;
    }
}

__device__ __forceinline__ void mf_add4(float* dst, float4 v) {
#if defined(MF_VECTOR_ATOMICS) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd((float4*)dst, v);
#else
    atomicAdd(dst + 0, v.x);
    atomicAdd(dst + 1, v.y);
    atomicAdd(dst + 2, v.z);
    atomicAdd(dst + 3, v.w);
#endif
}

// Block-wide sum of `local` into *out (one atomicAdd per block).
__device__ __forceinline__ void mf_block_sum(double local, double* out) {
    __shared__ double partial[MF_BLOCK / 32];
    for (int off = 16; off > 0; off >>= 1) local += __shfl_down_sync(0xffffffffu, local, off);
    unsigned int lane = threadIdx.x & 31u;
    unsigned int warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = local;
    __syncthreads();
    if (warp == 0) {
        unsigned int warps = blockDim.x >> 5;
        double v = lane < warps ? partial[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0 && v != 0.0) atomicAdd(out, v);
    }
}

// One pass over `n` examples. TRAIN: also the gradient (atomics) and the touched flags.
// `units` maps example e to its row of the columns (nullptr: row e).
template <int V, bool TRAIN>
__device__ __forceinline__ void mf_pass(const unsigned int* __restrict__ units, unsigned int n,
                                        const unsigned int* __restrict__ user,
                                        const unsigned int* __restrict__ movie,
                                        const float* __restrict__ target, const float* __restrict__ pf,
                                        const float* __restrict__ qf, const float* __restrict__ bu,
                                        const float* __restrict__ bi, float* gpf, float* gqf, float* gbu,
                                        float* gbi, unsigned int* tpf, unsigned int* tqf, unsigned int* tbu,
                                        unsigned int* tbi, unsigned int k, unsigned int group, int has_bias,
                                        int sigmoid_range, float lo, float hi, float inv_b, double* loss_sum) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int sub = lane & (group - 1u);
    const unsigned int per_warp = 32u / group;
    const unsigned int slot = lane / group;
    const unsigned long long warp = ((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const unsigned long long warps = ((unsigned long long)gridDim.x * blockDim.x) >> 5;
    const unsigned int chunks = k / V;
    double local = 0.0;
    for (unsigned long long base = warp * per_warp; base < n; base += warps * per_warp) {
        const unsigned long long e = base + slot;
        const bool active = e < n;
        unsigned int u = 0, i = 0;
        float t = 0.0f;
        if (active) {
            unsigned int r = units ? units[e] : (unsigned int)e;
            u = user[r];
            i = movie[r];
            t = target[r];
        }
        const float* p = pf + (unsigned long long)u * k;
        const float* q = qf + (unsigned long long)i * k;
        float acc = 0.0f;
        if (active) {
            if (V == 4) {
                const float4* p4 = (const float4*)p;
                const float4* q4 = (const float4*)q;
                for (unsigned int c = sub; c < chunks; c += group) {
                    float4 a = p4[c];
                    float4 b = q4[c];
                    acc += a.x * b.x;
                    acc += a.y * b.y;
                    acc += a.z * b.z;
                    acc += a.w * b.w;
                }
            } else {
                for (unsigned int c = sub; c < chunks; c += group) acc += p[c] * q[c];
            }
        }
        for (unsigned int off = group >> 1; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off, group);
        float x = __shfl_sync(0xffffffffu, acc, 0, group);
        if (!active) continue;
        if (has_bias) x += bu[u] + bi[i];
        float y, dy;
        mf_link(sigmoid_range, lo, hi, x, &y, &dy);
        const float err = y - t;
        if (sub == 0) local += (double)(err * err);
        if (TRAIN) {
            const float g = err * inv_b * dy;
            float* gp = gpf + (unsigned long long)u * k;
            float* gq = gqf + (unsigned long long)i * k;
            if (V == 4) {
                const float4* p4 = (const float4*)p;
                const float4* q4 = (const float4*)q;
                for (unsigned int c = sub; c < chunks; c += group) {
                    float4 a = p4[c];
                    float4 b = q4[c];
                    mf_add4(gp + 4 * c, make_float4(g * b.x, g * b.y, g * b.z, g * b.w));
                    mf_add4(gq + 4 * c, make_float4(g * a.x, g * a.y, g * a.z, g * a.w));
                }
            } else {
                for (unsigned int c = sub; c < chunks; c += group) {
                    atomicAdd(gp + c, g * q[c]);
                    atomicAdd(gq + c, g * p[c]);
                }
            }
            if (sub == 0) {
                tpf[u] = 1u;
                tqf[i] = 1u;
                if (has_bias) {
                    atomicAdd(gbu + u, g);
                    atomicAdd(gbi + i, g);
                    tbu[u] = 1u;
                    tbi[i] = 1u;
                }
            }
        }
    }
    mf_block_sum(local, loss_sum);
}

// Forward, loss and backward of one batch: examples e < n are training rows units[e].
#define MF_STEP(NAME, V)                                                                                     \
    extern "C" __global__ void NAME(const unsigned int* units, unsigned int n, const unsigned int* user,   \
                                    const unsigned int* movie, const float* target, const float* pf,       \
                                    const float* qf, const float* bu, const float* bi, float* gpf,         \
                                    float* gqf, float* gbu, float* gbi, unsigned int* tpf,                 \
                                    unsigned int* tqf, unsigned int* tbu, unsigned int* tbi, unsigned int k, \
                                    unsigned int group, int has_bias, int sigmoid_range, float lo, float hi, \
                                    float inv_b, double* loss_sum) {                                       \
        mf_pass<V, true>(units, n, user, movie, target, pf, qf, bu, bi, gpf, gqf, gbu, gbi, tpf, tqf, tbu,  \
                         tbi, k, group, has_bias, sigmoid_range, lo, hi, inv_b, loss_sum);                 \
    }

// Sum of squared errors over rows 0..n of the columns (validation): no gradient.
#define MF_EVAL(NAME, V)                                                                                     \
    extern "C" __global__ void NAME(unsigned int n, const unsigned int* user, const unsigned int* movie,   \
                                    const float* target, const float* pf, const float* qf, const float* bu, \
                                    const float* bi, unsigned int k, unsigned int group, int has_bias,      \
                                    int sigmoid_range, float lo, float hi, double* loss_sum) {             \
        mf_pass<V, false>(nullptr, n, user, movie, target, pf, qf, bu, bi, nullptr, nullptr, nullptr,       \
                          nullptr, nullptr, nullptr, nullptr, nullptr, k, group, has_bias, sigmoid_range,  \
                          lo, hi, 0.0f, loss_sum);                                                         \
    }

MF_STEP(mf_step_f1, 1)
MF_STEP(mf_step_f4, 4)
MF_EVAL(mf_eval_f1, 1)
MF_EVAL(mf_eval_f4, 4)

