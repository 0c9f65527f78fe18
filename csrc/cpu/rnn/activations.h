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
// tanh(x): see fast_tanh.
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

// tanh(x): for |x| < 0.55, x + x^3 P(x^2) with P of degree 5 fitted (weighted least squares on
// Chebyshev nodes) to (tanh(x) / x - 1) / x^2: at most 0.8 ulp in float32, down to denormals
// (1 - 2 / (e^{2x} + 1) cancels to nothing near 0: 0 at 1e-8, 19 % off at 1e-7). Beyond, that
// form is within a few ulp (1.7 with an exact exp). Both are computed and one selected, so the
// loop stays branch-free; NaN fails both comparisons and takes the second, which keeps it.
inline float fast_tanh(float x) {
  const float z = x * x;
  float p = 0.002395352115854621f;
  p = p * z - 0.00841345451772213f;
  p = p * z + 0.02178262174129486f;
  p = p * z - 0.05395961180329323f;
  p = p * z + 0.13333293795585632f;
  p = p * z - 0.3333333134651184f;
  const float near_zero = x + x * z * p;
  const float elsewhere = 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f);
  return x > -0.55f && x < 0.55f ? near_zero : elsewhere;
}

}  // namespace
}  // namespace dlcb::rnn
