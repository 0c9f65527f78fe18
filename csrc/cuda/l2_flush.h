#pragma once
// Cold-cache timing: before each timed run, overwrite a buffer larger than the L2 so that the
// L2 holds none of the timed kernel's data. Plain C++ (no CUDA headers); failures throw
// std::runtime_error carrying the CUDA error name and string.
#include <cstddef>
#include <cstdint>

namespace dlcb::cuda {

class L2Flusher {
 public:
  // Allocates the buffer once, on `device`; nbytes == 0 picks twice the device's L2 size.
  L2Flusher(int device, std::size_t nbytes);
  ~L2Flusher();
  L2Flusher(const L2Flusher&) = delete;
  L2Flusher& operator=(const L2Flusher&) = delete;

  // Queues the overwrite on `stream` (a cudaStream_t of this device; 0 is the default stream).
  void flush(std::uintptr_t stream) const;

  int device() const { return device_; }
  std::size_t nbytes() const { return nbytes_; }

 private:
  int device_;
  std::size_t nbytes_;
  int blocks_;
  void* buffer_ = nullptr;
};

}  // namespace dlcb::cuda
