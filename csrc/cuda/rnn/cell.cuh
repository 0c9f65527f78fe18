#pragma once
// Device helpers shared by the RNN kernels: element conversion and the fp32 cell update of one
// (batch row, hidden unit) from its gate pre-activations.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "rnn/rnn.h"

namespace dlcb::cuda::rnn_impl {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// pre[g]: gate g's x-part (gx, biases included) plus its h-part (h_{t-1} W_hh^T row), except
// GRU's n gate, whose two parts stay apart (pre = gx_n, hn = W_hn h + b_hn) because r scales
// only the h-part. h and c: this unit's previous state in, the new state out.
template <int G>
__device__ __forceinline__ void cell_update(RnnCell cell, const float* pre, float hn, float& h,
                                            float& c) {
  if constexpr (G == 1) {
    h = cell == RnnCell::vanilla_relu ? fmaxf(pre[0], 0.0f) : tanhf(pre[0]);
  } else if constexpr (G == 4) {  // i, f, g, o
    c = sigmoid(pre[1]) * c + sigmoid(pre[0]) * tanhf(pre[2]);
    h = sigmoid(pre[3]) * tanhf(c);
  } else {  // r, z, n
    const float r = sigmoid(pre[0]), z = sigmoid(pre[1]);
    const float n = tanhf(pre[2] + r * hn);
    h = (1.0f - z) * n + z * h;
  }
}

}  // namespace dlcb::cuda::rnn_impl
