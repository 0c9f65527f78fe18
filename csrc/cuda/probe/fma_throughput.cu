// CUDA-core FMA throughput (see probe.h). Each thread runs kChains independent FMA chains, so
// every scheduler has an independent FMA to issue each cycle despite the FMA latency (4 cycles
// on Ampere/Hopper, with up to 16 warps per scheduler on top); kUnroll rounds per loop trip keep
// the loop's own counter and branch under 3% of the issued instructions.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "common/launch.cuh"
#include "probe/probe.h"
#include "timing/event_timer.h"
#include "timing/stream.h"

namespace dlcb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kChains = 16;
constexpr int kUnroll = 8;
constexpr int kRuns = 5;
constexpr double kTargetSeconds = 0.02;
constexpr int kCalibrationTrips = 256;

// Written only when the sum of every chain equals a runtime value it never takes: the compiler
// cannot prove the store dead, so it must compute every chain in full.
__device__ float fma_sink;

// x < 1 and y > 0 (arguments, unknown to the compiler) keep every chain near y / (1 - x):
// finite and positive, never denormal.
__device__ __forceinline__ float fma_step(float a, float x, float y) { return fmaf(a, x, y); }
__device__ __forceinline__ __half2 fma_step(__half2 a, __half2 x, __half2 y) { return __hfma2(a, x, y); }

__device__ __forceinline__ float chain_start(float seed, int j, float) { return seed + j; }
__device__ __forceinline__ __half2 chain_start(float seed, int j, __half2) {
  return __floats2half2_rn(seed + j, seed + j + 0.5f);
}

__device__ __forceinline__ float to_float(float a) { return a; }
__device__ __forceinline__ float to_float(__half2 a) {
  const float2 f = __half22float2(a);
  return f.x + f.y;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) fma_chains(int trips, T x, T y, float never) {
  // Distinct starting values per chain, so that no two chains are the same computation.
  const float seed = static_cast<float>(threadIdx.x & 15) * 0.0625f;
  T acc[kChains];
#pragma unroll
  for (int j = 0; j < kChains; ++j) acc[j] = chain_start(seed, j, x);
  for (int t = 0; t < trips; ++t) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int j = 0; j < kChains; ++j) acc[j] = fma_step(acc[j], x, y);
    }
  }
  float total = 0.0f;
#pragma unroll
  for (int j = 0; j < kChains; ++j) total += to_float(acc[j]);
  if (total == never) fma_sink = total;
}

struct Launch {
  int blocks;
  int blocks_per_sm;
  int sms;
};

template <typename T>
Launch full_device_launch(int device) {
  int sms = 0, per_sm = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute(MultiProcessorCount)");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fma_chains<T>, kThreads, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  per_sm = std::max(per_sm, 1);
  return {sms * per_sm, per_sm, sms};
}

template <typename T>
double timed_run(const Launch& launch, int trips, T x, T y, const Stream& stream, EventTimer& timer) {
  const auto s = reinterpret_cast<cudaStream_t>(stream.handle());
  timer.start(stream.handle());
  fma_chains<T><<<launch.blocks, kThreads, 0, s>>>(trips, x, y, -1.0f);
  check_launch("fma_chains");
  timer.stop(stream.handle());
  return timer.elapsed();
}

template <typename T>
FmaThroughput measure(int device, T x, T y, int flop_per_lane, const char* instruction) {
  DeviceGuard guard(device);
  const Launch launch = full_device_launch<T>(device);
  Stream stream(device);
  EventTimer timer(device);
  // The calibration run also warms the device up (clock ramp, module load).
  const double calibration = timed_run(launch, kCalibrationTrips, x, y, stream, timer);
  const double scale = kTargetSeconds / std::max(calibration, 1e-6);
  const int trips = static_cast<int>(std::clamp(std::ceil(kCalibrationTrips * scale), 1.0, 1e9));
  double best = 0;
  for (int run = 0; run < kRuns; ++run) {
    const double seconds = timed_run(launch, trips, x, y, stream, timer);
    if (run == 0 || seconds < best) best = seconds;
  }
  FmaThroughput r;
  r.flops = static_cast<double>(launch.blocks) * kThreads * trips * kUnroll * kChains * flop_per_lane;
  r.seconds = best;
  r.gflops = r.flops / best * 1e-9;
  r.method = std::to_string(kChains) + " independent " + instruction + " chains per thread, " +
             std::to_string(launch.blocks) + " blocks x " + std::to_string(kThreads) + " threads (" +
             std::to_string(launch.blocks_per_sm) + " per SM on " + std::to_string(launch.sms) +
             " SMs), " + std::to_string(trips * kUnroll) + " FMA rounds; " +
             std::to_string(flop_per_lane) + " FLOP per lane per instruction; CUDA events, best of " +
             std::to_string(kRuns) + " runs";
  return r;
}

}  // namespace

FmaThroughput fma_throughput(int device, const std::string& dtype) {
  if (dtype == "float32") return measure<float>(device, 0.999f, 0.001f, 2, "FFMA");
  if (dtype == "float16")
    return measure<__half2>(device, __floats2half2_rn(0.999f, 0.999f), __floats2half2_rn(0.001f, 0.001f), 4,
                            "HFMA2");
  throw std::invalid_argument("dtype must be \"float32\" or \"float16\", got \"" + dtype + "\"");
}

}  // namespace dlcb::cuda
