#pragma once
// A kernel that occupies a stream for a set wall-clock time. Queued just before a start event,
// it keeps the GPU busy while the host records the event and launches the timed work, so the
// timed interval holds no host launch gap; with a known length it also checks event timing.
// Plain C++ (no CUDA headers).
#include <cstdint>

namespace dlcb::cuda {

// Queues one single-thread kernel on `stream` of `device` that returns once `seconds` have
// passed on the GPU's global timer. Throws std::invalid_argument unless 0 <= seconds <= 10.
void spin(int device, std::uintptr_t stream, double seconds);

}  // namespace dlcb::cuda
