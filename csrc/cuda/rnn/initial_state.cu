// The carried state starts as fp32 copies of h0 (and c0 for LSTM) in the workspace, so that
// every step of every technique reads and updates fp32 state (rnn.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/launch.cuh"
#include "rnn/cell.cuh"
#include "rnn/kernels.h"

namespace dlcb::cuda::rnn_impl {

namespace {

template <typename T>
__global__ void initial_state_kernel(const T* __restrict__ h0, const T* __restrict__ c0,
                                     float* __restrict__ h, float* __restrict__ c, int count) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) {
    h[i] = to_float(h0[i]);
    if (c0) c[i] = to_float(c0[i]);
  }
}

template <typename T>
void launch_typed(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  const int count = a.batch * a.hidden;
  const int blocks = ceil_div(count, 256) < 1024 ? ceil_div(count, 256) : 1024;
  initial_state_kernel<T><<<blocks, 256, 0, stream>>>(
      static_cast<const T*>(a.h0), a.cell == RnnCell::lstm ? static_cast<const T*>(a.c0) : nullptr,
      ws.h, ws.c, count);
  check_launch("initial_state_kernel");
}

}  // namespace

void launch_initial_state(const RnnArgs& a, const Workspace& ws, cudaStream_t stream) {
  switch (a.dtype) {
    case DType::f32: return launch_typed<float>(a, ws, stream);
    case DType::f16: return launch_typed<__half>(a, ws, stream);
    case DType::bf16: return launch_typed<__nv_bfloat16>(a, ws, stream);
  }
}

}  // namespace dlcb::cuda::rnn_impl
