// dlcb_kernels._cpu: the CPU kernels. Each op family binds itself in its own file.
#include <omp.h>
#include <pybind11/pybind11.h>

#include "common/thread_limit.h"
#include "common/cpu_features.h"

namespace py = pybind11;

void bind_conv(py::module_& m);
void bind_gemm(py::module_& m);
void bind_probe(py::module_& m);
void bind_rnn(py::module_& m);

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "dlcb-kernels CPU kernels (OpenMP, run-time ISA dispatch)";
  m.def("cpu_features", [] {
    const auto& f = dlcb::cpu_features();
    py::dict d;
    d["avx2_fma"] = f.avx2_fma;
    d["avx512"] = f.avx512;
    d["avx512_bf16"] = f.avx512_bf16;
    return d;
  });
  m.def("omp_max_threads", [] { return omp_get_max_threads(); },
        "OpenMP's default team size (follows OMP_NUM_THREADS).");
  m.def("thread_limit", &dlcb::thread_limit,
        "The most threads a kernel may be asked for: 4 per CPU this process can run on, at most 1024.");
  m.attr("compiler") = DLCB_COMPILER_ID " " DLCB_COMPILER_VERSION;
  m.attr("build_revision") = DLCB_BUILD_REVISION;
  bind_conv(m);
  bind_gemm(m);
  bind_probe(m);
  bind_rnn(m);
}
