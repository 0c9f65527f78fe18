// Python binding of the CPU convolutions. dlcb_kernels.conv2d* validate and explain errors to
// users; the checks here repeat everything that guards memory safety (dtype, rank, contiguity,
// shapes, a writeable output that overlaps no input), so a direct call into _cpu cannot crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <string>

#include "bind_checks.h"
#include "conv/conv.h"
#include "conv/scratch.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace {

using dlcb::conv::ConvRun;
using dlcb::conv::ConvShape;

std::array<int64_t, 4> dims_of(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<float>>(a) || !a.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(name) + " must be a float32 array");
  if (a.ndim() != 4) throw py::value_error(std::string(name) + " must be 4-D");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  dlcb::bind::require_float_aligned(a.data(), name);
  return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

void require_shape(const py::array& a, const char* name, std::array<int64_t, 4> want) {
  if (dims_of(a, name) != want) throw py::value_error(std::string(name) + " has the wrong shape");
}

bool overlap(const py::array& a, const py::array& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  const auto* a0 = static_cast<const char*>(a.data());
  const auto* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

void require_output(py::array& out, const char* name, const py::array& in1, const py::array& in2) {
  if (!out.writeable()) throw py::value_error(std::string(name) + " is read-only");
  if (overlap(out, in1) || overlap(out, in2)) throw py::value_error(std::string(name) + " overlaps an input");
}

// The problem from the input image shape (n, c, h, w) and the filter shape (k, c/groups, r, s).
ConvShape shape_of(std::array<int64_t, 4> x, std::array<int64_t, 4> w, int64_t stride_h, int64_t stride_w,
                   int64_t pad_h, int64_t pad_w, int64_t dil_h, int64_t dil_w, int64_t groups) {
  if (groups < 1) throw py::value_error("groups must be >= 1");
  if (w[1] * groups != x[1]) throw py::value_error("w.shape[1] * groups must equal the input channels");
  ConvShape s{x[0], x[1], x[2], x[3], w[0], w[2], w[3], groups, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w};
  dlcb::conv::finalize(s);  // std::invalid_argument -> ValueError
  return s;
}

const dlcb::gemm::KernelSet& kernels(const std::string& isa) {
  const dlcb::gemm::KernelSet* ks = dlcb::gemm::select_kernel_set(isa.c_str());
  if (ks == nullptr) throw py::value_error("isa '" + isa + "' is unknown or not supported by this CPU");
  return *ks;
}

py::tuple result(const ConvRun& r) { return py::make_tuple(r.algorithm, r.threads, r.parallel); }

py::tuple forward(const py::array& x, const py::array& w, py::array& y, int64_t sh, int64_t sw, int64_t ph,
                  int64_t pw, int64_t dh, int64_t dw, int64_t groups, int threads, const std::string& isa) {
  dlcb::bind::require_threads(threads);
  const ConvShape s = shape_of(dims_of(x, "x"), dims_of(w, "w"), sh, sw, ph, pw, dh, dw, groups);
  require_shape(y, "y", {s.n, s.k, s.p, s.q});
  require_output(y, "y", x, w);
  const auto& ks = kernels(isa);
  const auto* xp = static_cast<const float*>(x.data());
  const auto* wp = static_cast<const float*>(w.data());
  auto* yp = static_cast<float*>(y.mutable_data());
  ConvRun run;
  {
    py::gil_scoped_release release;
    const dlcb::conv::ScratchTrim trim;  // on this thread, whose scratch the call used
    run = dlcb::conv::forward(ks, s, xp, wp, yp, threads);
  }
  return result(run);
}

py::tuple backward_data(const py::array& dy, const py::array& w, py::array& dx, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups, int threads, const std::string& isa) {
  dlcb::bind::require_threads(threads);
  const ConvShape s = shape_of(dims_of(dx, "dx"), dims_of(w, "w"), sh, sw, ph, pw, dh, dw, groups);
  require_shape(dy, "dy", {s.n, s.k, s.p, s.q});
  require_output(dx, "dx", dy, w);
  const auto& ks = kernels(isa);
  const auto* dyp = static_cast<const float*>(dy.data());
  const auto* wp = static_cast<const float*>(w.data());
  auto* dxp = static_cast<float*>(dx.mutable_data());
  ConvRun run;
  {
    py::gil_scoped_release release;
    const dlcb::conv::ScratchTrim trim;  // on this thread, whose scratch the call used
    run = dlcb::conv::backward_data(ks, s, dyp, wp, dxp, threads);
  }
  return result(run);
}

py::tuple backward_filter(const py::array& x, const py::array& dy, py::array& dw_out, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups, int threads, const std::string& isa) {
  dlcb::bind::require_threads(threads);
  const ConvShape s = shape_of(dims_of(x, "x"), dims_of(dw_out, "dw"), sh, sw, ph, pw, dh, dw, groups);
  require_shape(dy, "dy", {s.n, s.k, s.p, s.q});
  require_output(dw_out, "dw", x, dy);
  const auto& ks = kernels(isa);
  const auto* xp = static_cast<const float*>(x.data());
  const auto* dyp = static_cast<const float*>(dy.data());
  auto* dwp = static_cast<float*>(dw_out.mutable_data());
  ConvRun run;
  {
    py::gil_scoped_release release;
    const dlcb::conv::ScratchTrim trim;  // on this thread, whose scratch the call used
    run = dlcb::conv::backward_filter(ks, s, xp, dyp, dwp, threads);
  }
  return result(run);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &forward, py::arg("x"), py::arg("w"), py::arg("y"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dil_h"), py::arg("dil_w"),
        py::arg("groups"), py::arg("threads"), py::arg("isa") = "auto",
        "y = conv(x, w), NCHW float32, C-contiguous; returns (algorithm, threads, parallel).");
  m.def("conv2d_backward_data", &backward_data, py::arg("dy"), py::arg("w"), py::arg("dx"), py::arg("stride_h"),
        py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dil_h"), py::arg("dil_w"),
        py::arg("groups"), py::arg("threads"), py::arg("isa") = "auto",
        "dx = conv_transpose(dy, w) (dx's shape fixes the input size); returns (algorithm, threads, parallel).");
  m.def("conv2d_backward_filter", &backward_filter, py::arg("x"), py::arg("dy"), py::arg("dw"),
        py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dil_h"),
        py::arg("dil_w"), py::arg("groups"), py::arg("threads"), py::arg("isa") = "auto",
        "dw = sum_n dy[n] im2col(x[n])^T (dw's shape fixes the filter size); returns (algorithm, threads, parallel).");
}
