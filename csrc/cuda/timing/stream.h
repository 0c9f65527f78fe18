#pragma once
// A CUDA stream owned by an object: created non-blocking (it never waits for the legacy default
// stream, so timed work there is not serialized behind unrelated work), destroyed with it.
// Plain C++ (no CUDA headers); failures throw std::runtime_error naming the CUDA error.
#include <cstdint>

namespace dlcb::cuda {

class Stream {
 public:
  explicit Stream(int device);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The cudaStream_t as an integer, as the kernels' `stream` arguments take it.
  std::uintptr_t handle() const { return handle_; }
  int device() const { return device_; }
  // Waits for the work queued on this stream; raises the error of a kernel that failed.
  void synchronize() const;

 private:
  int device_;
  std::uintptr_t handle_ = 0;
};

}  // namespace dlcb::cuda
