// Full-softmax CBOW / skip-gram on the device: the CUDA twin of softmax.rs (derivations there).
// The dense products (logits Z = H W^T, dW += dZ^T H, dH = dZ W, db += dZ^T 1) are cuBLAS
// sgemm calls made by gpu.rs; this file holds the gathers, the fused softmax cross-entropy with
// its gradient, and the scatter of dH into the embedding gradient.
//
// Layout: the examples of every sequence are uploaded once (seq_offsets, ctx_offsets,
// ctx_tokens, targets: the flat arrays of examples.rs). A batch is a list of example ids
// (`rows`), built on the device from the batch's unit (= sequence) ids by `batch_rows`.

#define NEG_INF __int_as_float(0xff800000)

// rows[out..] = the example ids of units[0..n_units] in order. One block; a block-wide
// inclusive scan of the units' example counts per chunk of blockDim.x units, with a carry.
extern "C" __global__ void batch_rows(const unsigned int* units, unsigned int n_units,
                                      const unsigned int* seq_offsets, unsigned int* rows) {
    __shared__ unsigned int scan[1024];
    __shared__ unsigned int carry;
    if (threadIdx.x == 0) carry = 0u;
    __syncthreads();
    for (unsigned int base = 0; base < n_units; base += blockDim.x) {
        unsigned int i = base + threadIdx.x;
        unsigned int start = 0u, count = 0u;
        if (i < n_units) {
            unsigned int s = units[i];
            start = seq_offsets[s];
            count = seq_offsets[s + 1] - start;
        }
        scan[threadIdx.x] = count;
        __syncthreads();
        for (unsigned int off = 1; off < blockDim.x; off <<= 1) {
            unsigned int v = threadIdx.x >= off ? scan[threadIdx.x - off] : 0u;
            __syncthreads();
            scan[threadIdx.x] += v;
            __syncthreads();
        }
        unsigned int out = carry + scan[threadIdx.x] - count;
        for (unsigned int j = 0; j < count; ++j) rows[out + j] = start + j;
        __syncthreads();
        if (threadIdx.x == blockDim.x - 1) carry += scan[threadIdx.x];
        __syncthreads();
    }
}

// h[r, j] for the n examples rows[0..n]: CBOW sums (mean: then scales by 1/|C|) the context
// rows of the embedding in context order, exactly as reduce_context; skip-gram copies E[target].
extern "C" __global__ void gather_hidden(const unsigned int* rows, unsigned int n,
                                         const unsigned int* ctx_offsets, const unsigned int* ctx_tokens,
                                         const unsigned int* targets, const float* emb, unsigned int k,
                                         int skipgram, int mean, float* h) {
    unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n * k) return;
    unsigned int r = (unsigned int)(idx / k), j = (unsigned int)(idx % k);
    unsigned int e = rows[r];
    float acc;
    if (skipgram) {
        acc = emb[(unsigned long long)targets[e] * k + j];
    } else {
        unsigned int lo = ctx_offsets[e], hi = ctx_offsets[e + 1];
        acc = 0.0f;
        for (unsigned int c = lo; c < hi; ++c) acc += emb[(unsigned long long)ctx_tokens[c] * k + j];
        if (mean && hi > lo) acc *= 1.0f / (float)(hi - lo);
    }
    h[idx] = acc;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ unsigned int warp_sum_u(unsigned int v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// One warp per row r of z (n x V, row-major, the logits W h without bias):
//   z += b; m = max z; e_j = exp(z_j - m); s = sum e_j; lse = m + ln s;
//   loss_r = |P| lse - sum_{p in P} z_p   (P: {target} for CBOW, the context for skip-gram)
// and with `grad`, in place: dz = (|P| scale / s) e - scale * sum_{p in P} onehot(p).
// Adds sum_r loss_r to loss_sum[0] (double atomics, one per row). With `want_rank` (CBOW
// validation) counts rows whose target has no logit above it (rank[0]) and fewer than 10 above
// it (rank[1]).
extern "C" __global__ void softmax_xent(float* z, unsigned int n, unsigned int V, const float* bias,
                                        const unsigned int* rows, const unsigned int* ctx_offsets,
                                        const unsigned int* ctx_tokens, const unsigned int* targets,
                                        int skipgram, float scale, int grad, double* loss_sum,
                                        int want_rank, unsigned long long* rank) {
    unsigned int warp = (unsigned int)(((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    unsigned int lane = threadIdx.x & 31u;
    if (warp >= n) return;
    float* zr = z + (unsigned long long)warp * V;
    unsigned int e = rows[warp];
    const unsigned int* pos;
    unsigned int npos;
    if (skipgram) {
        pos = ctx_tokens + ctx_offsets[e];
        npos = ctx_offsets[e + 1] - ctx_offsets[e];
    } else {
        pos = targets + e;
        npos = 1u;
    }
    float m = NEG_INF;
    for (unsigned int j = lane; j < V; j += 32) {
        float v = zr[j] + bias[j];
        zr[j] = v;
        m = fmaxf(m, v);
    }
    m = warp_max(m);
    __syncwarp();
    float zpos = 0.0f;
    for (unsigned int p = 0; p < npos; ++p) zpos += zr[pos[p]];
    if (want_rank) {
        float zt = zr[pos[0]];
        unsigned int above = 0u;
        for (unsigned int j = lane; j < V; j += 32) above += zr[j] > zt ? 1u : 0u;
        above = warp_sum_u(above);
        if (lane == 0) {
            if (above == 0u) atomicAdd(&rank[0], 1ull);
            if (above < 10u) atomicAdd(&rank[1], 1ull);
        }
    }
    float s = 0.0f;
    for (unsigned int j = lane; j < V; j += 32) {
        float ex = expf(zr[j] - m);
        if (grad) zr[j] = ex;
        s += ex;
    }
    s = warp_sum(s);
    float lse = m + logf(s);
    if (lane == 0) atomicAdd(loss_sum, (double)((float)npos * lse - zpos));
    if (grad) {
        float f = (float)npos * scale / s;
        for (unsigned int j = lane; j < V; j += 32) zr[j] *= f;
        __syncwarp();
        if (lane == 0)
            for (unsigned int p = 0; p < npos; ++p) zr[pos[p]] -= scale;
    }
}

// Scatters dh (n x k) into the embedding gradient: CBOW adds f dh[r] to every context row
// (f = 1, or 1/|C| for the mean), skip-gram adds dh[r] to the target's row; float atomics (rows
// repeat within a batch) and touched flags. Threads below V also flag every row of out_weight
// and out_bias (the full softmax writes all of them).
extern "C" __global__ void scatter_hidden_grad(const float* dh, const unsigned int* rows, unsigned int n,
                                               unsigned int k, const unsigned int* ctx_offsets,
                                               const unsigned int* ctx_tokens, const unsigned int* targets,
                                               int skipgram, int mean, float* grad_emb,
                                               unsigned int* touched_emb, unsigned int* touched_w,
                                               unsigned int* touched_b, unsigned int V) {
    unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < V) {
        touched_w[idx] = 1u;
        touched_b[idx] = 1u;
    }
    if (idx >= (unsigned long long)n * k) return;
    unsigned int r = (unsigned int)(idx / k), j = (unsigned int)(idx % k);
    unsigned int e = rows[r];
    float g = dh[idx];
    if (skipgram) {
        unsigned int t = targets[e];
        atomicAdd(&grad_emb[(unsigned long long)t * k + j], g);
        if (j == 0) touched_emb[t] = 1u;
    } else {
        unsigned int lo = ctx_offsets[e], hi = ctx_offsets[e + 1];
        float f = (mean && hi > lo) ? 1.0f / (float)(hi - lo) : 1.0f;
        for (unsigned int c = lo; c < hi; ++c) {
            unsigned int t = ctx_tokens[c];
            atomicAdd(&grad_emb[(unsigned long long)t * k + j], f * g);
            if (j == 0) touched_emb[t] = 1u;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small vocabularies (V <= SV_MAX_V, k <= SV_MAX_K; P0's notebook size is V = 50, k = 20): the
// whole forward and backward pass of a chunk in two launches instead of four kernels and four
// cuBLAS calls, because at this size a step is bound by the host's launch cost, not by the GPU.
//
// small_vocab_step: one warp per example r. h (the context sum/mean, or E[target] for
// skip-gram) and the row of logits z = W h + b live in shared memory; softmax cross-entropy and
// its gradient dz as in softmax_xent; dh = W^T dz, scattered into the embedding gradient as in
// scatter_hidden_grad. With `grad` it also writes h and dz to h_out (n x k) and dz_out (n x V)
// for small_vocab_out_grad.

#define SV_MAX_K 64
#define SV_MAX_V 256
#define SV_WARPS 8

extern "C" __global__ void small_vocab_step(const unsigned int* rows, unsigned int n, unsigned int V,
                                            unsigned int k, const float* emb, const float* w,
                                            const float* bias, const unsigned int* ctx_offsets,
                                            const unsigned int* ctx_tokens, const unsigned int* targets,
                                            int skipgram, int mean, float scale, int grad, float* h_out,
                                            float* dz_out, float* emb_grad, unsigned int* emb_touched,
                                            double* loss_sum, int want_rank, unsigned long long* rank) {
    __shared__ float sh[SV_WARPS][SV_MAX_K];
    __shared__ float sz[SV_WARPS][SV_MAX_V];
    unsigned int wib = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    unsigned int r = blockIdx.x * SV_WARPS + wib;
    if (r >= n) return;  // whole warps only: no block-wide barrier below
    float* hs = sh[wib];
    float* zs = sz[wib];
    unsigned int e = rows[r];
    unsigned int clo = ctx_offsets[e], chi = ctx_offsets[e + 1];
    for (unsigned int j = lane; j < k; j += 32) {
        float acc;
        if (skipgram) {
            acc = emb[(unsigned long long)targets[e] * k + j];
        } else {
            acc = 0.0f;
            for (unsigned int c = clo; c < chi; ++c) acc += emb[(unsigned long long)ctx_tokens[c] * k + j];
            if (mean && chi > clo) acc *= 1.0f / (float)(chi - clo);
        }
        hs[j] = acc;
        if (grad) h_out[(unsigned long long)r * k + j] = acc;
    }
    __syncwarp();
    float m = NEG_INF;
    for (unsigned int v = lane; v < V; v += 32) {
        const float* wv = w + (unsigned long long)v * k;
        float z = 0.0f;
        for (unsigned int j = 0; j < k; ++j) z += wv[j] * hs[j];
        z += bias[v];
        zs[v] = z;
        m = fmaxf(m, z);
    }
    m = warp_max(m);
    __syncwarp();
    const unsigned int* pos;
    unsigned int npos;
    if (skipgram) {
        pos = ctx_tokens + clo;
        npos = chi - clo;
    } else {
        pos = targets + e;
        npos = 1u;
    }
    float zpos = 0.0f;
    for (unsigned int p = 0; p < npos; ++p) zpos += zs[pos[p]];
    if (want_rank) {
        float zt = zs[pos[0]];
        unsigned int above = 0u;
        for (unsigned int v = lane; v < V; v += 32) above += zs[v] > zt ? 1u : 0u;
        above = warp_sum_u(above);
        if (lane == 0) {
            if (above == 0u) atomicAdd(&rank[0], 1ull);
            if (above < 10u) atomicAdd(&rank[1], 1ull);
        }
    }
    __syncwarp();
    float s = 0.0f;
    for (unsigned int v = lane; v < V; v += 32) {
        float ex = expf(zs[v] - m);
        if (grad) zs[v] = ex;
        s += ex;
    }
    s = warp_sum(s);
    float lse = m + logf(s);
    if (lane == 0) atomicAdd(loss_sum, (double)((float)npos * lse - zpos));
    if (!grad) return;
    float f = (float)npos * scale / s;
    for (unsigned int v = lane; v < V; v += 32) zs[v] *= f;
    __syncwarp();
    if (lane == 0)
        for (unsigned int p = 0; p < npos; ++p) zs[pos[p]] -= scale;
    __syncwarp();
    for (unsigned int v = lane; v < V; v += 32) dz_out[(unsigned long long)r * V + v] = zs[v];
    float cf = (!skipgram && mean && chi > clo) ? 1.0f / (float)(chi - clo) : 1.0f;
    for (unsigned int j = lane; j < k; j += 32) {
        float dh = 0.0f;
        for (unsigned int v = 0; v < V; ++v) dh += zs[v] * w[(unsigned long long)v * k + j];
        if (skipgram) {
            unsigned int t = targets[e];
            atomicAdd(&emb_grad[(unsigned long long)t * k + j], dh);
            if (j == 0) emb_touched[t] = 1u;
        } else {
            for (unsigned int c = clo; c < chi; ++c) {
                unsigned int t = ctx_tokens[c];
                atomicAdd(&emb_grad[(unsigned long long)t * k + j], cf * dh);
                if (j == 0) emb_touched[t] = 1u;
            }
        }
    }
}

// dW[v] += sum_r dz[r, v] h[r] and db[v] += sum_r dz[r, v] for the n rows of a chunk: one block
// per class v, 8 stripes of 32 lanes; lane l owns columns l, l + 32, l + 64 of [h | 1]; the
// stripes are summed in a fixed order (deterministic, no atomics). Flags every row of W and b.
extern "C" __global__ void small_vocab_out_grad(const float* h, const float* dz, unsigned int n,
                                                unsigned int V, unsigned int k, float* w_grad,
                                                float* b_grad, unsigned int* w_touched,
                                                unsigned int* b_touched) {
    __shared__ float part[8][SV_MAX_K + 1];
    unsigned int v = blockIdx.x;
    unsigned int lane = threadIdx.x & 31u, stripe = threadIdx.x >> 5;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (unsigned int r = stripe; r < n; r += 8) {
        float d = dz[(unsigned long long)r * V + v];
#pragma unroll
        for (int q = 0; q < 3; ++q) {
            unsigned int j = lane + 32u * q;
            if (j < k) acc[q] += d * h[(unsigned long long)r * k + j];
            else if (j == k) acc[q] += d;
        }
    }
#pragma unroll
    for (int q = 0; q < 3; ++q) {
        unsigned int j = lane + 32u * q;
        if (j <= k) part[stripe][j] = acc[q];
    }
    __syncthreads();
    if (stripe == 0) {
#pragma unroll
        for (int q = 0; q < 3; ++q) {
            unsigned int j = lane + 32u * q;
            if (j <= k) {
                float sum = 0.0f;
                for (int s = 0; s < 8; ++s) sum += part[s][j];
                if (j < k) w_grad[(unsigned long long)v * k + j] += sum;
                else b_grad[v] += sum;
            }
        }
        if (lane == 0) {
            w_touched[v] = 1u;
            b_touched[v] = 1u;
        }
    }
}
