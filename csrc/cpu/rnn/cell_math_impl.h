#pragma once
// Bodies of the element-wise cell kernels (see cell_math.h). Included once per ISA translation
// unit; internal linkage keeps each ISA's copy apart. `#pragma omp simd` asks for vector code
// (the loops have no dependences between batch columns).
#include "rnn/activations.h"
#include "rnn/cell_math.h"

namespace dlcb::rnn {
namespace {

void fwd_vanilla(const FwdRow& r, int64_t n) {
  const float* rec = r.rec[0];
  const float* x = r.x[0];
  const float b = r.bias[0];
  float* h = r.h_out;
  if (r.relu) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float a = rec[j] + x[j] + b;
      h[j] = a > 0.0f ? a : (a == a ? 0.0f : a);  // relu that keeps NaN
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) h[j] = fast_tanh(rec[j] + x[j] + b);
  }
}

void fwd_lstm(const FwdRow& r, int64_t n) {
  const float bi = r.bias[0], bf = r.bias[1], bg = r.bias[2], bo = r.bias[3];
  float* h = r.h_out;
  float* c_out = r.c_out;
  const float* c_in = r.c_in;
  if (r.save[0] != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float i = fast_sigmoid(r.rec[0][j] + r.x[0][j] + bi);
      const float f = fast_sigmoid(r.rec[1][j] + r.x[1][j] + bf);
      const float g = fast_tanh(r.rec[2][j] + r.x[2][j] + bg);
      const float o = fast_sigmoid(r.rec[3][j] + r.x[3][j] + bo);
      const float c = f * c_in[j] + i * g;
      c_out[j] = c;
      h[j] = o * fast_tanh(c);
      r.save[0][j] = i;
      r.save[1][j] = f;
      r.save[2][j] = g;
      r.save[3][j] = o;
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float i = fast_sigmoid(r.rec[0][j] + r.x[0][j] + bi);
      const float f = fast_sigmoid(r.rec[1][j] + r.x[1][j] + bf);
      const float g = fast_tanh(r.rec[2][j] + r.x[2][j] + bg);
      const float o = fast_sigmoid(r.rec[3][j] + r.x[3][j] + bo);
      const float c = f * c_in[j] + i * g;
      c_out[j] = c;
      h[j] = o * fast_tanh(c);
    }
  }
}

void fwd_gru(const FwdRow& r, int64_t n) {
  const float br = r.bias[0], bz = r.bias[1], bn = r.bias[2], bhn = r.bias_hn;
  const float* hp = r.h_prev;
  float* h = r.h_out;
  if (r.save[0] != nullptr) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float rr = fast_sigmoid(r.rec[0][j] + r.x[0][j] + br);
      const float z = fast_sigmoid(r.rec[1][j] + r.x[1][j] + bz);
      const float hn = r.rec[2][j] + bhn;
      const float nn = fast_tanh(r.x[2][j] + bn + rr * hn);
      h[j] = nn + z * (hp[j] - nn);
      r.save[0][j] = rr;
      r.save[1][j] = z;
      r.save[2][j] = nn;
      r.save_hn[j] = hn;
    }
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const float rr = fast_sigmoid(r.rec[0][j] + r.x[0][j] + br);
      const float z = fast_sigmoid(r.rec[1][j] + r.x[1][j] + bz);
      const float hn = r.rec[2][j] + bhn;
      const float nn = fast_tanh(r.x[2][j] + bn + rr * hn);
      h[j] = nn + z * (hp[j] - nn);
    }
  }
}

void bwd_vanilla(const BwdRow& r, int64_t n) {
  const float* dh = r.dh;
  const float* h = r.h;
  float* dg = r.dg[0];
  if (r.relu) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dg[j] = h[j] > 0.0f ? dh[j] : 0.0f;
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dg[j] = dh[j] * (1.0f - h[j] * h[j]);
  }
}

void bwd_lstm(const BwdRow& r, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float i = r.gate[0][j], f = r.gate[1][j], g = r.gate[2][j], o = r.gate[3][j];
    const float tc = fast_tanh(r.c[j]);
    const float dh = r.dh[j];
    const float dc = r.dc[j] + dh * o * (1.0f - tc * tc);
    r.dg[0][j] = dc * g * i * (1.0f - i);
    r.dg[1][j] = dc * r.c_prev[j] * f * (1.0f - f);
    r.dg[2][j] = dc * i * (1.0f - g * g);
    r.dg[3][j] = dh * tc * o * (1.0f - o);
    r.dc[j] = dc * f;
  }
}

void bwd_gru(const BwdRow& r, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float rr = r.gate[0][j], z = r.gate[1][j], nn = r.gate[2][j];
    const float dh = r.dh[j];
    const float dan = dh * (1.0f - z) * (1.0f - nn * nn);  // through n = tanh(a_n)
    const float dz = dh * (r.h[j] - nn);
    r.dg[0][j] = dan * r.hn[j] * rr * (1.0f - rr);
    r.dg[1][j] = dz * z * (1.0f - z);
    r.dg[2][j] = dan * rr;  // gradient of W_hn h + b_hn
    r.dg_in_n[j] = dan;     // gradient of W_in x + b_in
    r.dh_carry[j] = dh * z;
  }
}

}  // namespace
}  // namespace dlcb::rnn

// Defines the table `name` for the including translation unit.
#define DLCB_RNN_CELL_MATH_TABLE(name, isa_name)                                               \
  const ::dlcb::rnn::CellMath name {                                                           \
    isa_name, ::dlcb::rnn::fwd_vanilla, ::dlcb::rnn::fwd_lstm, ::dlcb::rnn::fwd_gru,           \
        ::dlcb::rnn::bwd_vanilla, ::dlcb::rnn::bwd_lstm, ::dlcb::rnn::bwd_gru                  \
  }
