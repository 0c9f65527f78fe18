#pragma once
// exp, sigmoid and tanh for the element-wise cell math, written so that a loop over them
// vectorizes (no calls, no branches): std::exp / std::tanh are scalar library calls, which
// would keep the cell math (5 transcendentals per LSTM unit and batch element) scalar.
//
// exp(x) = 2^n * e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in
// two so r keeps float precision), e^r by its degree-6 Taylor polynomial (truncation error
// < 1.2e-7 relative), 2^n assembled in the exponent bits. x is clamped to [-87, 88] so 2^n
// stays a normal float; the clamps let NaN through (every comparison with NaN is false), so NaN
// in gives NaN out.
// tanh(x) = 1 - 2 / (e^{2x} + 1): absolute error ~1e-7, which is what the tests allow.
//
// Included by each ISA's translation unit; everything has internal linkage so each ISA keeps
// its own copy.
#include <cstdint>
#include <cstring>

namespace dlcb::rnn {
namespace {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // Adding 1.5 * 2^23 rounds x / ln 2 to an integer held in the low mantissa bits.
  const float magic = 12582912.0f;
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  float r = x - n * 0.693359375f;  // ln 2, high part (exact product)
  r = r - n * -2.12194440e-4f;     // ln 2, low part
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const uint32_t n_int = float_to_bits(t) - float_to_bits(magic);  // n mod 2^32
  return p * bits_to_float((n_int + 127u) << 23);
}

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

inline float fast_tanh(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }

}  // namespace
}  // namespace dlcb::rnn
