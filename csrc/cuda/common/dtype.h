#pragma once
// Element types of the CUDA kernels. Plain C++ (no CUDA headers): bindings use it too.
#include <cstddef>

namespace dlcb::cuda {

// Tensor-core types accumulate in fp32; fp32 kernels use CUDA-core FMAs.
enum class DType : int { f32 = 0, f16 = 1, bf16 = 2 };

inline std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
  }
  return "?";
}

}  // namespace dlcb::cuda
