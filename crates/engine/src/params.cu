// The CUDA twin of ParamStore::non_finite_table (params.rs): counts the NaN/inf values of a
// buffer, for the device trainer's end-of-epoch divergence guard.

extern "C" __global__ void count_non_finite(const float* x, unsigned long long n, unsigned int* count) {
    unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    unsigned int local = 0;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (!isfinite(x[i])) local++;
    }
    if (local) atomicAdd(count, local);
}
