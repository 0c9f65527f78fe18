#pragma once
// CUDA graph capture of the work queued on one stream between begin() and end(), replayed by
// launch(): one launch for many kernels, so the GPU runs them back to back with no host launch
// gap between them. Plain C++ (no CUDA headers); failures throw std::runtime_error.
#include <cstddef>
#include <cstdint>

namespace dlcb::cuda {

class GraphCapture {
 public:
  GraphCapture(int device, std::uintptr_t stream);
  ~GraphCapture();
  GraphCapture(const GraphCapture&) = delete;
  GraphCapture& operator=(const GraphCapture&) = delete;

  // Starts capturing `stream` in thread-local mode: calls of this thread that could synchronize
  // with the capture (cudaMalloc, a legacy-stream synchronize, ...) fail and invalidate it.
  // Replaces a graph captured before.
  void begin();
  // Ends the capture and instantiates the graph. A capture invalidated in between throws with
  // the CUDA error; the stream is out of capture mode either way, usable as before.
  void end();
  // Queues the captured work on `stream` (any stream of this device; 0: the default).
  void launch(std::uintptr_t stream) const;

  // Kernels, copies, ... the capture recorded (0: nothing was queued on the stream).
  std::size_t node_count() const { return node_count_; }
  bool capturing() const { return capturing_; }
  bool ready() const { return exec_ != nullptr; }
  int device() const { return device_; }

 private:
  void release();

  int device_;
  std::uintptr_t stream_;
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  std::size_t node_count_ = 0;
  bool capturing_ = false;
};

}  // namespace dlcb::cuda
