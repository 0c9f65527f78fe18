#pragma once
// Argument checks shared by the CPU bindings (bind_conv.cpp, bind_gemm.cpp, bind_rnn.cpp): a
// direct call into _cpu with a bad value is a ValueError naming it, never a crash.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "common/thread_limit.h"

namespace dlcb::bind {

inline void require_threads(int threads) {
  if (threads < 1 || threads > thread_limit())
    throw pybind11::value_error("threads must be between 1 and " + std::to_string(thread_limit()) + ", got " +
                                std::to_string(threads));
}

// Floats read at a float boundary only (numpy allows an array to start 1 byte into a buffer).
inline void require_float_aligned(const void* data, const std::string& name) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(float) != 0)
    throw pybind11::value_error(name + " is not aligned to 4 bytes (copy it)");
}

}  // namespace dlcb::bind
