#pragma once
// Which instruction sets this CPU (and its OS) can run; asked once, at run time.
namespace dlcb {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3
  bool avx512 = false;    // AVX-512 F, BW, VL, DQ (what our AVX-512 kernels are compiled for)
  bool avx512_bf16 = false;
};

const CpuFeatures& cpu_features();

}  // namespace dlcb
