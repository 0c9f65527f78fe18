// Python binding of the GEMM variants (gemm/gemm.h). Arguments arrive as a dict of the
// GemmArgs fields, pointers as ints; dlcb_kernels/ops/gemm_cuda.py validates them first.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_args.h"
#include "gemm/gemm.h"

namespace py = pybind11;
using namespace dlcb::cuda;
using namespace dlcb::cuda::bind;

namespace {

GemmArgs gemm_args(const py::dict& d) {
  GemmArgs a;
  a.m = field<int64_t>(d, "m");
  a.n = field<int64_t>(d, "n");
  a.k = field<int64_t>(d, "k");
  a.dtype = enum_field<DType>(d, "dtype", 3);
  a.a = pointer(d, "a");
  a.lda = field<int64_t>(d, "lda");
  a.trans_a = field<bool>(d, "trans_a");
  a.b = pointer(d, "b");
  a.ldb = field<int64_t>(d, "ldb");
  a.trans_b = field<bool>(d, "trans_b");
  a.c = mutable_pointer(d, "c");
  a.ldc = field<int64_t>(d, "ldc");
  a.alpha = field<float>(d, "alpha");
  a.beta = field<float>(d, "beta");
  return a;
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def(
      "gemm_variants",
      [] {
        py::list out;
        for (const auto& v : gemm_variants()) {
          py::dict d;
          d["name"] = v.name;
          d["dtype"] = dtype_name(v.dtype);
          d["technique"] = v.technique;
          d["min_cc"] = v.min_cc;
          d["exact_cc"] = v.exact_cc;
          out.append(d);
        }
        return out;
      },
      "The GEMM variants: name, dtype, technique, min_cc and exact_cc (10 * major + minor).");
  m.def(
      "gemm_unsupported_reason",
      [](const std::string& variant, const py::dict& args, int cc) {
        return gemm_unsupported_reason(variant, gemm_args(args), cc);
      },
      py::arg("variant"), py::arg("args"), py::arg("cc"),
      "Why `variant` cannot run `args` on compute capability cc; \"\" when it can.");
  m.def(
      "gemm",
      [](const std::string& variant, const py::dict& args, int device, std::uintptr_t stream) {
        const GemmArgs a = gemm_args(args);
        py::gil_scoped_release release;
        gemm(variant, a, device, stream);
      },
      py::arg("variant"), py::arg("args"), py::arg("device"), py::arg("stream"),
      "Queue C = alpha op(A) op(B) + beta C on `stream` of `device` (see gemm/gemm.h).");
}
