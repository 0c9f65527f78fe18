#pragma once
// Device-side timing: a pair of CUDA events recorded on a stream around the timed work. The
// interval is measured by the GPU between the two points of the stream, so host launch costs
// count only where they leave the GPU idle between the events. Plain C++ (no CUDA headers).
#include <cstdint>

namespace dlcb::cuda {

class EventTimer {
 public:
  explicit EventTimer(int device);
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Record the start / stop event on `stream` (a cudaStream_t of this device; 0: the default).
  void start(std::uintptr_t stream);
  void stop(std::uintptr_t stream);
  // Seconds between the two events; waits for the stop event. Throws if either was not recorded
  // since the last elapsed(), or for the CUDA error of the work in between.
  double elapsed();

  int device() const { return device_; }

 private:
  int device_;
  void* start_ = nullptr;  // cudaEvent_t
  void* stop_ = nullptr;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace dlcb::cuda
