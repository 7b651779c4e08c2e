// Skip-gram with negative sampling (SGNS) on the device, Hogwild style (word2vec): the CUDA
// twin of negative.rs for large runs. Loss and gradients are those of negative.rs: for the
// centre token t (h = E[t]) and a context token c with negatives n_1..n_K,
//   s_x = W[x] . h + b_x,  loss = softplus(-s_c) + sum_j softplus(s_{n_j}),
//   g_x = lr (label_x - sigma(s_x)),  W[x] += g_x h,  b_x += g_x,  E[t] += sum_x g_x W[x]
// (plain SGD on each pair, no batch mean, lr decaying linearly over the run like word2vec).
//
// One warp per centre position, lanes over k (K_PER_LANE values each, k <= 32 K_PER_LANE).
// Positions are taken in grid-stride order, so the run sweeps the corpus roughly in order and
// the lr schedule follows the sweep. The centre's row is read once and updated once, after all
// of its window's pairs (the sum of their g_x W[x] terms, each with W[x] as read for its pair).
// Updates are unsynchronised (Hogwild): with `atomics` every update is an atomicAdd (no update
// is lost, but a row may change between a warp's read and its write); without, plain stores
// (concurrent warps may lose each other's writes to the same row, as word2vec's threads do).
//
// Negatives come from a Walker alias table of unigram^power (prob, alias: V entries) with a
// counter-based hash of (seed, epoch, pair id, draw), so every run with the same seed draws
// the same negatives whatever the scheduling. A negative equal to the positive is redrawn up to
// 8 times (as negative.rs).

#define K_PER_LANE 4
#define MAX_ROWS 16  // 1 positive + up to 15 negatives

__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ unsigned int draw_token(unsigned long long u, const float* prob,
                                                   const unsigned int* alias, unsigned int V) {
    unsigned int bucket = (unsigned int)(((u >> 32) * (unsigned long long)V) >> 32);
    float coin = (float)(unsigned int)(u & 0xffffffffull) * 2.3283064365386963e-10f;
    return coin < prob[bucket] ? bucket : alias[bucket];
}

__device__ __forceinline__ float softplus_f(float y) {
    return fmaxf(y, 0.0f) + log1pf(expf(-fabsf(y)));
}

__device__ __forceinline__ float sigmoid_f(float s) {
    if (s >= 0.0f) return 1.0f / (1.0f + expf(-s));
    float e = expf(s);
    return e / (1.0f + e);
}

// The last position of the context window of position i (ContextSide::window_bounds): i + window
// capped at the sequence's end for both sides; i itself (so the window is i - window .. i - 1) for
// the previous tokens only. The window's first position is i - window (at least 0) either way.
__device__ __forceinline__ unsigned int context_hi(unsigned int i, unsigned int len, unsigned int window,
                                                  int previous) {
    if (previous) return i;
    return i + window < len ? i + window : len - 1;
}

// tok_seq[p] = the sequence of token position p (one block per sequence).
extern "C" __global__ void token_sequences(const unsigned int* seq_offsets, unsigned int n_seqs,
                                           unsigned int* tok_seq) {
    for (unsigned int s = blockIdx.x; s < n_seqs; s += gridDim.x) {
        for (unsigned int p = seq_offsets[s] + threadIdx.x; p < seq_offsets[s + 1]; p += blockDim.x)
            tok_seq[p] = s;
    }
}

// Counts the (centre, context) pairs of the corpus (same rule as the SGNS kernel) into *pairs.
extern "C" __global__ void count_pairs(const unsigned int* tok_seq, const unsigned int* seq_offsets,
                                       unsigned int n_tokens, unsigned int window, int previous,
                                       int drop_ends, unsigned long long* pairs) {
    unsigned long long local = 0;
    for (unsigned int p = blockIdx.x * blockDim.x + threadIdx.x; p < n_tokens; p += gridDim.x * blockDim.x) {
        unsigned int s = tok_seq[p];
        unsigned int start = seq_offsets[s], len = seq_offsets[s + 1] - start, i = p - start;
        if (drop_ends && (i == 0 || i + 1 >= len)) continue;
        unsigned int lo = i > window ? i - window : 0u;
        unsigned int hi = context_hi(i, len, window, previous);
        local += hi - lo;
    }
    for (int off = 16; off > 0; off >>= 1) local += __shfl_xor_sync(0xffffffffu, local, off);
    if ((threadIdx.x & 31u) == 0 && local) atomicAdd(pairs, local);
}

// One epoch of SGNS over every centre position. `progress_base` and `progress_total` are in
// positions: lr = lr0 * max(min_lr_fraction, 1 - (progress_base + p) / progress_total).
// Adds the loss sum (before each pair's update) to loss_sum[0] and the pair count to pairs[0].
extern "C" __global__ void sgns_epoch(const unsigned int* tokens, const unsigned int* tok_seq,
                                      const unsigned int* seq_offsets, unsigned int n_tokens,
                                      const float* alias_prob, const unsigned int* alias_idx, unsigned int V,
                                      float* emb, float* w, float* b, unsigned int k, unsigned int window,
                                      int previous, int drop_ends, unsigned int negatives,
                                      unsigned long long seed,
                                      unsigned int epoch, double progress_base, double progress_total,
                                      float lr0, float min_lr_fraction, int atomics, double* loss_sum,
                                      unsigned long long* pairs) {
    unsigned int lane = threadIdx.x & 31u;
    unsigned int warp = (unsigned int)(((unsigned long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    unsigned int n_warps = (unsigned int)(((unsigned long long)gridDim.x * blockDim.x) >> 5);
    unsigned int n_rows = negatives + 1 < MAX_ROWS ? negatives + 1 : MAX_ROWS;
    unsigned long long epoch_key = mix64(seed ^ (0x9E3779B97F4A7C15ull * (epoch + 1ull)));
    double loss = 0.0;
    unsigned long long count = 0;
    for (unsigned int p = warp; p < n_tokens; p += n_warps) {
        unsigned int s = tok_seq[p];
        unsigned int start = seq_offsets[s], len = seq_offsets[s + 1] - start, i = p - start;
        if (drop_ends && (i == 0 || i + 1 >= len)) continue;
        unsigned int lo = i > window ? i - window : 0u;
        unsigned int hi = context_hi(i, len, window, previous);
        if (hi == lo) continue;
        double frac = 1.0 - (progress_base + (double)p) / progress_total;
        float lr = lr0 * (float)(frac > (double)min_lr_fraction ? frac : (double)min_lr_fraction);
        unsigned int t = tokens[p];
        float h[K_PER_LANE], acc[K_PER_LANE];
#pragma unroll
        for (int q = 0; q < K_PER_LANE; ++q) {
            unsigned int j = lane + 32u * q;
            h[q] = j < k ? emb[(unsigned long long)t * k + j] : 0.0f;
            acc[q] = 0.0f;
        }
        float pair_loss = 0.0f;
        for (unsigned int q = lo; q <= hi; ++q) {
            if (q == i) continue;
            unsigned int c = tokens[start + q];
            unsigned long long pair_key = mix64(epoch_key ^ ((unsigned long long)p * 64ull + (q - lo)));
            unsigned int x[MAX_ROWS];
            x[0] = c;
#pragma unroll
            for (int r = 1; r < MAX_ROWS; ++r) {
                if ((unsigned int)r >= n_rows) break;
                unsigned long long u = mix64(pair_key + 0x632BE59BD9B4E019ull * r);
                unsigned int tok = draw_token(u, alias_prob, alias_idx, V);
                for (int retry = 0; retry < 8 && tok == c; ++retry) {
                    u = mix64(u + 0xD1B54A32D192ED03ull);
                    tok = draw_token(u, alias_prob, alias_idx, V);
                }
                x[r] = tok;
            }
            // Scores of every row: lane partial products, then xor-butterfly sums.
            float sc[MAX_ROWS];
#pragma unroll
            for (int r = 0; r < MAX_ROWS; ++r) {
                float d = 0.0f;
                if ((unsigned int)r < n_rows) {
                    const float* wr = w + (unsigned long long)x[r] * k;
#pragma unroll
                    for (int qq = 0; qq < K_PER_LANE; ++qq) {
                        unsigned int j = lane + 32u * qq;
                        if (j < k) d += wr[j] * h[qq];
                    }
                }
                sc[r] = d;
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) {
#pragma unroll
                for (int r = 0; r < MAX_ROWS; ++r)
                    if ((unsigned int)r < n_rows) sc[r] += __shfl_xor_sync(0xffffffffu, sc[r], off);
            }
#pragma unroll
            for (int r = 0; r < MAX_ROWS; ++r) {
                if ((unsigned int)r >= n_rows) continue;
                unsigned int xr = x[r];
                float sxr = sc[r] + b[xr];
                float label = r == 0 ? 1.0f : 0.0f;
                pair_loss += softplus_f(r == 0 ? -sxr : sxr);
                float g = lr * (label - sigmoid_f(sxr));
                float* wr = w + (unsigned long long)xr * k;
#pragma unroll
                for (int qq = 0; qq < K_PER_LANE; ++qq) {
                    unsigned int j = lane + 32u * qq;
                    if (j < k) {
                        float wv = wr[j];
                        acc[qq] += g * wv;
                        if (atomics) atomicAdd(&wr[j], g * h[qq]);
                        else wr[j] = wv + g * h[qq];
                    }
                }
                if (lane == 0) {
                    if (atomics) atomicAdd(&b[xr], g);
                    else b[xr] += g;
                }
            }
            ++count;
        }
#pragma unroll
        for (int q = 0; q < K_PER_LANE; ++q) {
            unsigned int j = lane + 32u * q;
            if (j < k) {
                if (atomics) atomicAdd(&emb[(unsigned long long)t * k + j], acc[q]);
                else emb[(unsigned long long)t * k + j] = h[q] + acc[q];
            }
        }
        loss += (double)pair_loss;
    }
    if (lane == 0 && count) {
        atomicAdd(loss_sum, loss);
        atomicAdd(pairs, count);
    }
}

// ---------------------------------------------------------------------------------------------
// Negative sampling under the engine's optimizers (P0's protocol with `loss = negative_sampling`):
// the CUDA twin of negative_lane in negative.rs, with the same draws. One warp per example; the
// SplitMix64 stream of (seed, draw, position in the batch) and the unigram^0.75 CDF search are
// computed identically by every lane, so each lane knows every negative. Loss and gradients as
// in negative.rs: s = W[x].h + b[x], loss softplus(-s) for the positive, softplus(s) for a
// negative, ds = (sigma(s) - label) * scale, dW[x] += ds h, db[x] += ds, dh += ds W[x]; dh is then
// scattered into the embedding rows (CBOW: every context row, / |C| for the mean; skip-gram: the
// target's row). Float atomics for the gradients (rows repeat across a batch), touched flags set.

#define NS_MAX_K 256
#define NS_WARPS 8

__device__ __forceinline__ unsigned long long ns_next(unsigned long long* state) {
    *state += 0x9E3779B97F4A7C15ull;
    unsigned long long z = *state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ double ns_next_f64(unsigned long long* state) {
    return (double)(ns_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

// First index whose cdf exceeds u (Rust's partition_point(|c| c <= u)), clamped to V - 1.
__device__ __forceinline__ unsigned int ns_token_for(const double* cdf, unsigned int V, double u) {
    unsigned int lo = 0, hi = V;
    while (lo < hi) {
        unsigned int mid = (lo + hi) >> 1;
        if (cdf[mid] <= u) lo = mid + 1; else hi = mid;
    }
    return lo < V ? lo : V - 1;
}

__device__ __forceinline__ float ns_softplus(float y) { return fmaxf(y, 0.0f) + log1pf(expf(-fabsf(y))); }

__device__ __forceinline__ float ns_sigmoid(float s) {
    if (s >= 0.0f) return 1.0f / (1.0f + expf(-s));
    float e = expf(s);
    return e / (1.0f + e);
}

__device__ __forceinline__ float ns_warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

extern "C" __global__ void ns_step(const unsigned int* rows, unsigned int n, unsigned int first_position,
                                   unsigned int V, unsigned int k, const float* emb, const float* w,
                                   const float* bias, const unsigned int* ctx_offsets,
                                   const unsigned int* ctx_tokens, const unsigned int* targets, int skipgram,
                                   int mean, const double* cdf, unsigned int negatives,
                                   unsigned long long seed, unsigned long long draw, float scale, int grad,
                                   float* emb_grad, unsigned int* emb_touched, float* w_grad,
                                   unsigned int* w_touched, float* b_grad, unsigned int* b_touched,
                                   double* loss_sum) {
    __shared__ float sh[NS_WARPS][NS_MAX_K];
    unsigned int wib = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    unsigned int r = blockIdx.x * NS_WARPS + wib;
    if (r >= n) return;
    float* hs = sh[wib];
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
    }
    __syncwarp();
    // SplitMix64::stream(seed, draw, position)
    unsigned long long state = seed ^ (draw * 0xD1B54A32D192ED03ull);
    unsigned long long a = ns_next(&state);
    unsigned long long position = (unsigned long long)first_position + r;
    state = a ^ (position * 0x8CB92BA72F3D8DD7ull);
    float dh[NS_MAX_K / 32];
#pragma unroll
    for (int q = 0; q < NS_MAX_K / 32; ++q) dh[q] = 0.0f;
    double loss = 0.0;
    const unsigned int* pos = skipgram ? ctx_tokens + clo : targets + e;
    unsigned int npos = skipgram ? chi - clo : 1u;
    for (unsigned int pi = 0; pi < npos; ++pi) {
        unsigned int p = pos[pi];
        for (unsigned int t = 0; t <= negatives; ++t) {
            unsigned int x = p;
            float label = 1.0f;
            if (t > 0) {
                label = 0.0f;
                x = ns_token_for(cdf, V, ns_next_f64(&state));
                for (int again = 0; again < 8 && x == p; ++again) x = ns_token_for(cdf, V, ns_next_f64(&state));
            }
            const float* wx = w + (unsigned long long)x * k;
            float part = 0.0f;
            for (unsigned int j = lane; j < k; j += 32) part += wx[j] * hs[j];
            float s = ns_warp_sum(part) + bias[x];
            loss += (double)(label > 0.5f ? ns_softplus(-s) : ns_softplus(s));
            if (grad) {
                float g = (ns_sigmoid(s) - label) * scale;
#pragma unroll
                for (int q = 0; q < NS_MAX_K / 32; ++q) {
                    unsigned int j = lane + 32u * q;
                    if (j < k) {
                        atomicAdd(&w_grad[(unsigned long long)x * k + j], g * hs[j]);
                        dh[q] += g * wx[j];
                    }
                }
                if (lane == 0) {
                    atomicAdd(&b_grad[x], g);
                    w_touched[x] = 1u;
                    b_touched[x] = 1u;
                }
            }
        }
    }
    if (lane == 0) atomicAdd(loss_sum, loss);
    if (!grad) return;
    float cf = (!skipgram && mean && chi > clo) ? 1.0f / (float)(chi - clo) : 1.0f;
#pragma unroll
    for (int q = 0; q < NS_MAX_K / 32; ++q) {
        unsigned int j = lane + 32u * q;
        if (j >= k) continue;
        if (skipgram) {
            unsigned int t = targets[e];
            atomicAdd(&emb_grad[(unsigned long long)t * k + j], dh[q]);
            if (j == 0) emb_touched[t] = 1u;
        } else {
            for (unsigned int c = clo; c < chi; ++c) {
                unsigned int t = ctx_tokens[c];
                atomicAdd(&emb_grad[(unsigned long long)t * k + j], cf * dh[q]);
                if (j == 0) emb_touched[t] = 1u;
            }
        }
    }
}
