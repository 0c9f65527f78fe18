#pragma once
// Split-K for the filter gradient: CTAs of one output tile that cover different ranges of the
// deep GEMM-K dimension (N*P*Q) each write fp32 partial sums to their own slice of the
// workspace; this kernel then adds the slices and rounds once to the output type (never
// atomics on 16-bit outputs).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "common/check.cuh"
#include "common/launch.cuh"

namespace dlcb::cuda::conv_split_k {

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// out[i] = sum over splits z of partial[z * elements + i].
template <typename T>
__global__ void reduce_splits_kernel(const float* __restrict__ partial, T* __restrict__ out,
                                     int elements, int splits) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < elements;
       i += gridDim.x * blockDim.x) {
    float sum = 0.0f;
    for (int z = 0; z < splits; ++z) sum += partial[static_cast<int64_t>(z) * elements + i];
    out[i] = from_float<T>(sum);
  }
}

template <typename T>
void reduce_splits(const float* partial, T* out, int elements, int splits, cudaStream_t stream) {
  const int blocks = std::min(ceil_div(elements, 256), 4096);
  reduce_splits_kernel<T><<<blocks, 256, 0, stream>>>(partial, out, elements, splits);
  check_launch("reduce_splits_kernel");
}

}  // namespace dlcb::cuda::conv_split_k
