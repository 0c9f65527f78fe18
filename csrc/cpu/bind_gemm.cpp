// Python binding of the CPU GEMM. dlcb_kernels.gemm validates and explains errors to users;
// the checks here repeat the ones that guard memory safety, so a direct call into _cpu cannot
// crash the process either.
#include <omp.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_checks.h"
#include "gemm/blocking.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace {

using dlcb::gemm::StridedMatrix;

StridedMatrix view_of(const py::array& x, const char* name, bool transpose, int64_t& rows,
                      int64_t& cols) {
  if (!py::isinstance<py::array_t<float>>(x) || !x.dtype().is(py::dtype::of<float>()))
    throw py::type_error(std::string(name) + " must be a float32 array");
  if (x.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  for (int d = 0; d < 2; ++d)
    if (x.strides(d) % static_cast<py::ssize_t>(sizeof(float)) != 0)
      throw py::value_error(std::string(name) + " has strides that are not a multiple of 4 bytes");
  dlcb::bind::require_float_aligned(x.data(), name);
  const int64_t rs = x.strides(0) / 4, cs = x.strides(1) / 4;
  rows = transpose ? x.shape(1) : x.shape(0);
  cols = transpose ? x.shape(0) : x.shape(1);
  return StridedMatrix{static_cast<const float*>(x.data()), transpose ? cs : rs, transpose ? rs : cs};
}

dlcb::gemm::Schedule schedule_from_name(const std::string& name) {
  using dlcb::gemm::Schedule;
  for (Schedule s : {Schedule::kBlocked, Schedule::kNarrowN, Schedule::kNarrowM})
    if (name == dlcb::gemm::schedule_name(s)) return s;
  if (name == "auto") return Schedule::kAuto;
  throw py::value_error("schedule must be auto, blocked, narrow-n or narrow-m, not '" + name + "'");
}

int sgemm(const py::array& a, const py::array& b, py::array& c, bool trans_a, bool trans_b,
          float alpha, float beta, const std::string& isa, int threads, int64_t kc, int64_t mc,
          int64_t nc, const std::string& schedule) {
  dlcb::gemm::SgemmArgs g{};
  int64_t ka = 0, kb = 0;
  g.a = view_of(a, "a", trans_a, g.m, ka);
  g.b = view_of(b, "b", trans_b, kb, g.n);
  if (ka != kb) throw py::value_error("inner dimensions of a and b differ");
  g.k = ka;
  if (!py::isinstance<py::array_t<float>>(c) || !c.dtype().is(py::dtype::of<float>()) || c.ndim() != 2)
    throw py::type_error("c must be a 2-D float32 array");
  if (c.shape(0) != g.m || c.shape(1) != g.n) throw py::value_error("c has the wrong shape");
  if (!c.writeable()) throw py::value_error("c is read-only");
  const bool empty = g.m == 0 || g.n == 0;  // numpy gives empty arrays zero strides
  if (!empty && (c.strides(1) != sizeof(float) || c.strides(0) % 4 != 0 ||
                 (g.m > 1 && c.strides(0) < c.strides(1) * g.n)))
    throw py::value_error("c must have contiguous rows");
  dlcb::bind::require_float_aligned(c.data(), "c");
  g.c = static_cast<float*>(c.mutable_data());
  g.ldc = c.strides(0) / 4;
  g.alpha = alpha;
  g.beta = beta;
  dlcb::bind::require_threads(threads);
  if (kc < 0 || mc < 0 || nc < 0) throw py::value_error("cache blocks must be >= 0 (0: default)");
  dlcb::gemm::Blocking blocking{kc, mc, nc, schedule_from_name(schedule)};
  const dlcb::gemm::KernelSet* ks = dlcb::gemm::select_kernel_set(isa.c_str());
  if (ks == nullptr) throw py::value_error("isa '" + isa + "' is unknown or not supported by this CPU");
  py::gil_scoped_release release;
  return dlcb::gemm::sgemm(*ks, g, threads, blocking);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("sgemm", &sgemm, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("isa"), py::arg("threads"),
        py::arg("kc") = 0, py::arg("mc") = 0, py::arg("nc") = 0, py::arg("schedule") = "auto",
        "C = alpha * op(A) op(B) + beta * C on float32 arrays; returns the thread count used.\n"
        "kc, mc, nc override the kernel set's cache blocks (0: default) and schedule forces a loop\n"
        "nest (auto, blocked, narrow-n, narrow-m), for tuning and testing.");
  m.def(
      "gemm_plan",
      [](const std::string& isa, int64_t m, int64_t n, int64_t k, int64_t kc, int64_t mc, int64_t nc,
         const std::string& schedule, bool trans_a, bool trans_b) -> py::object {
        const auto* ks = dlcb::gemm::select_kernel_set(isa.c_str());
        if (ks == nullptr) return py::none();
        if (m < 0 || n < 0 || k < 0) throw py::value_error("m, n and k must be >= 0");
        if (kc < 0 || mc < 0 || nc < 0) throw py::value_error("cache blocks must be >= 0 (0: derived)");
        // Contiguous operands of that layout: only the strides and shapes are read.
        dlcb::gemm::SgemmArgs g{};
        g.m = m;
        g.n = n;
        g.k = k;
        g.a = trans_a ? StridedMatrix{nullptr, 1, m} : StridedMatrix{nullptr, k, 1};
        g.b = trans_b ? StridedMatrix{nullptr, 1, k} : StridedMatrix{nullptr, n, 1};
        const dlcb::gemm::Plan p = dlcb::gemm::plan_for(*ks, g, {kc, mc, nc, schedule_from_name(schedule)});
        py::dict d;
        d["isa"] = ks->isa;
        d["schedule"] = dlcb::gemm::schedule_name(p.schedule);
        d["transposed"] = p.transposed;
        d["kc"] = p.kc;
        d["mc"] = p.mc;
        d["nc"] = p.nc;
        return d;
      },
      py::arg("isa"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("kc") = 0, py::arg("mc") = 0,
      py::arg("nc") = 0, py::arg("schedule") = "auto", py::arg("trans_a") = false, py::arg("trans_b") = false,
      "What sgemm runs for an m x n x k problem with contiguous operands of that layout: {'isa',\n"
      "'schedule', 'transposed' (C^T = B^T A^T run, the blocks being for the n x m problem), 'kc',\n"
      "'mc', 'nc'} (cache blocks are upper bounds; inner-product: k, m, n), or None when the isa is\n"
      "unavailable.");
  m.def(
      "gemm_isa",
      [](const std::string& isa) -> py::object {
        const auto* ks = dlcb::gemm::select_kernel_set(isa.c_str());
        if (ks == nullptr) return py::none();
        const dlcb::gemm::BlockSizes& b = dlcb::gemm::block_sizes(*ks);
        py::dict d;
        d["isa"] = ks->isa;
        d["mr"] = ks->mr;
        d["nr"] = ks->nr;
        d["kc"] = b.kc;
        d["mc"] = b.mc;
        d["nc"] = b.nc;
        d["narrow_bytes"] = b.narrow_bytes;
        d["blocking_rule"] = b.rule;
        return d;
      },
      py::arg("isa") = "auto",
      "The kernel set `isa` selects ('auto': DLCB_ISA when set, else the best this CPU runs):\n"
      "{'isa', 'mr', 'nr', 'kc', 'mc', 'nc' (blocked schedule), 'narrow_bytes', 'blocking_rule'},\n"
      "or None when it is unknown or this CPU cannot run it.");
  m.def(
      "gemm_derived_blocking",
      [](const std::string& isa, int64_t l1d, int64_t l2, int64_t l3_share) -> py::object {
        const auto* ks = dlcb::gemm::select_kernel_set(isa.c_str());
        if (ks == nullptr) return py::none();
        if (l1d <= 0 || l2 <= 0 || l3_share <= 0) throw py::value_error("cache sizes must be > 0");
        const dlcb::gemm::BlockSizes b = dlcb::gemm::derive_block_sizes(*ks, {l1d, l2, l3_share, "given"});
        return py::make_tuple(b.kc, b.mc, b.nc, b.narrow_bytes);
      },
      py::arg("isa"), py::arg("l1d"), py::arg("l2"), py::arg("l3_share"),
      "(kc, mc, nc, narrow_bytes) the blocking rules give kernel set `isa` for these cache sizes\n"
      "(bytes), without the per-family overrides: to see what another CPU would get.");
}
