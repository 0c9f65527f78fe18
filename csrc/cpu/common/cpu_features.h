#pragma once
// Which instruction sets this CPU (and its OS) can run, and which CPU it is; asked once, at run
// time.
namespace dlcb {

struct CpuFeatures {
  bool avx2_fma = false;  // AVX2 + FMA3
  bool avx512 = false;    // AVX-512 F, BW, VL, DQ (what our AVX-512 kernels are compiled for)
  bool avx512_bf16 = false;
  // CPUID identity (x86; empty / 0 elsewhere): vendor string, display family and model.
  char vendor[13] = {};
  int family = 0;
  int model = 0;
};

const CpuFeatures& cpu_features();

}  // namespace dlcb
