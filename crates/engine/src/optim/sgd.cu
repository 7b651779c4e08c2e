// SGD with momentum as a single-pass kernel: the CUDA twin of sgd.rs (PyTorch semantics).
// Same descriptor layout as adam.cu (7 x u64 per table; m = momentum buffer, v unused).

extern "C" __global__ void sgd_dense(const unsigned long long* desc, float lr, float momentum, float dampening,
                                     float weight_decay, int nesterov, int first) {
    const unsigned long long* d = desc + 7 * blockIdx.y;
    float* p = (float*)d[0];
    float* g = (float*)d[1];
    float* buf = (float*)d[2];
    unsigned int* touched = (unsigned int*)d[4];
    unsigned long long n = d[5];
    unsigned long long rows = d[6] >> 32;
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float gi = g[i] + weight_decay * p[i];
        float step = gi;
        if (momentum != 0.0f) {
            float b = first ? gi : momentum * buf[i] + (1.0f - dampening) * gi;
            buf[i] = b;
            step = nesterov ? gi + momentum * b : b;
        }
        p[i] -= lr * step;
        g[i] = 0.0f;
        if (i < rows) touched[i] = 0u;
    }
}
