// CUDA event pair around the timed work (see event_timer.h).
#include <cuda_runtime_api.h>

#include <stdexcept>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "timing/event_timer.h"
#include "timing/release_on_device.cuh"

namespace dlcb::cuda {

namespace {

cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }
cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

}  // namespace

EventTimer::EventTimer(int device) : device_(device) {
  DeviceGuard guard(device);
  // Default flags: timing enabled; the host spins in elapsed(), which wakes soonest after the
  // stop event (the interval itself is measured on the GPU either way).
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  start_ = start;
  const cudaError_t e = cudaEventCreate(&stop);
  if (e != cudaSuccess) {
    cudaEventDestroy(start);
    check(e, "cudaEventCreate");
  }
  stop_ = stop;
}

EventTimer::~EventTimer() {
  const cudaEvent_t start = as_event(start_), stop = as_event(stop_);
  release_on_device(device_, [start, stop] {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  });
}

void EventTimer::start(std::uintptr_t stream) {
  DeviceGuard guard(device_);
  check(cudaEventRecord(as_event(start_), as_stream(stream)), "cudaEventRecord(start)");
  started_ = true;
  stopped_ = false;
}

void EventTimer::stop(std::uintptr_t stream) {
  if (!started_) throw std::runtime_error("EventTimer.stop() before start()");
  DeviceGuard guard(device_);
  check(cudaEventRecord(as_event(stop_), as_stream(stream)), "cudaEventRecord(stop)");
  stopped_ = true;
}

double EventTimer::elapsed() {
  if (!started_ || !stopped_)
    throw std::runtime_error("EventTimer.elapsed() needs start() and then stop() first");
  started_ = stopped_ = false;
  DeviceGuard guard(device_);
  // The stop event completes after everything queued before it on its stream: a kernel that
  // failed in the timed region is reported here.
  check(cudaEventSynchronize(as_event(stop_)), "cudaEventSynchronize(stop)");
  float ms = 0.0f;
  check(cudaEventElapsedTime(&ms, as_event(start_), as_event(stop_)), "cudaEventElapsedTime");
  return static_cast<double>(ms) * 1e-3;
}

}  // namespace dlcb::cuda
