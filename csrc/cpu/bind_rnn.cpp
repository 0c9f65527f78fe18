// Python binding of the recurrent layers. dlcb_kernels.rnn validates and explains errors to
// users; the checks here repeat everything that guards memory safety (dtype, C-contiguity,
// exact shapes, sizes of packed panels), so a direct call into _cpu cannot crash the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind_checks.h"
#include "gemm/gemm.h"
#include "rnn/forward_small_batch.h"
#include "rnn/rnn.h"

namespace py = pybind11;

namespace {

using dlcb::rnn::Cell;
using FloatArray = py::array_t<float, py::array::c_style>;

Cell cell_from_name(const std::string& name) {
  if (name == "vanilla") return Cell::kVanilla;
  if (name == "lstm") return Cell::kLstm;
  if (name == "gru") return Cell::kGru;
  throw py::value_error("cell must be 'vanilla', 'lstm' or 'gru', not '" + name + "'");
}

const dlcb::gemm::KernelSet& kernel_set(const std::string& isa) {
  const auto* ks = dlcb::gemm::select_kernel_set(isa.c_str());
  if (ks == nullptr) throw py::value_error("isa '" + isa + "' is unknown or not supported by this CPU");
  return *ks;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

// A float32, C-contiguous array of exactly `shape`; returns its data.
const float* input(const py::handle& obj, const char* name, const std::vector<int64_t>& shape) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<float>())) throw py::type_error(std::string(name) + " must be float32");
  if (!(arr.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  dlcb::bind::require_float_aligned(arr.data(), name);
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = arr.shape(i) == shape[i];
  if (!ok) throw py::value_error(std::string(name) + " must have shape " + shape_str(shape));
  return static_cast<const float*>(arr.data());
}

const float* optional_input(const py::object& obj, const char* name, const std::vector<int64_t>& shape) {
  return obj.is_none() ? nullptr : input(obj, name, shape);
}

FloatArray output(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return FloatArray(s);
}

float* data(FloatArray& a) { return a.mutable_data(); }

struct Sizes {
  Cell cell;
  int64_t G, T, N, I, H;
};

// Sizes from x and weight_hh / weight_ih, with the basic sanity checks.
Sizes sizes_of(const std::string& cell_name, const py::array& x, const py::array& w_ih, const py::array& w_hh) {
  Sizes s{};
  s.cell = cell_from_name(cell_name);
  s.G = dlcb::rnn::gate_count(s.cell);
  if (x.ndim() != 3) throw py::value_error("x must be 3-D (T, N, I)");
  if (w_hh.ndim() != 2 || w_ih.ndim() != 2) throw py::value_error("weights must be 2-D");
  s.T = x.shape(0);
  s.N = x.shape(1);
  s.I = x.shape(2);
  s.H = w_hh.shape(1);
  if (s.T < 1 || s.N < 1 || s.I < 1 || s.H < 1) throw py::value_error("T, N, I and H must be >= 1");
  return s;
}

py::array pack(const std::string& cell_name, const py::array& w_hh, const std::string& direction,
               const std::string& isa, int threads) {
  const auto& ks = kernel_set(isa);
  const Cell cell = cell_from_name(cell_name);
  const int64_t G = dlcb::rnn::gate_count(cell);
  if (w_hh.ndim() != 2 || w_hh.shape(1) < 1) throw py::value_error("weight_hh must be 2-D with H >= 1");
  const int64_t H = w_hh.shape(1);
  const float* w = input(w_hh, "weight_hh", {G * H, H});
  dlcb::bind::require_threads(threads);
  const bool fwd = direction == "forward";
  if (!fwd && direction != "backward") throw py::value_error("direction must be 'forward' or 'backward'");
  const int64_t floats = fwd ? dlcb::rnn::packed_forward_floats(ks, cell, H)
                             : dlcb::rnn::packed_backward_floats(ks, cell, H);
  FloatArray out = output({floats});
  float* dst = data(out);
  {
    py::gil_scoped_release release;
    if (fwd)
      dlcb::rnn::pack_forward(ks, cell, H, w, dst, threads);
    else
      dlcb::rnn::pack_backward(ks, cell, H, w, dst, threads);
  }
  return out;
}

py::tuple forward(const std::string& cell_name, bool relu, const py::array& x, const py::array& h0,
                  const py::object& c0, const py::array& w_ih, const py::array& w_hh,
                  const py::array& b_ih, const py::array& b_hh, const py::object& packed,
                  bool training, const std::string& isa, int threads) {
  const auto& ks = kernel_set(isa);
  const Sizes s = sizes_of(cell_name, x, w_ih, w_hh);
  const int64_t GH = s.G * s.H;
  const bool lstm = s.cell == Cell::kLstm, gru = s.cell == Cell::kGru;
  dlcb::bind::require_threads(threads);
  dlcb::rnn::ForwardArgs a{};
  a.x = input(x, "x", {s.T, s.N, s.I});
  a.h0 = input(h0, "h0", {s.N, s.H});
  if (!lstm && !c0.is_none()) throw py::value_error("c0 is for the LSTM only");
  a.c0 = optional_input(c0, "c0", {s.N, s.H});
  a.w_ih = input(w_ih, "weight_ih", {GH, s.I});
  a.w_hh = input(w_hh, "weight_hh", {GH, s.H});
  a.b_ih = input(b_ih, "bias_ih", {GH});
  a.b_hh = input(b_hh, "bias_hh", {GH});
  a.packed = optional_input(packed, "packed", {dlcb::rnn::packed_forward_floats(ks, s.cell, s.H)});

  FloatArray hs = output({s.T + 1, s.N, s.H});
  a.hs = data(hs);
  py::object c_n = py::none(), gates = py::none(), cs = py::none(), hn = py::none();
  FloatArray c_n_arr, gates_arr, cs_arr, hn_arr;
  if (lstm) {
    c_n_arr = output({s.N, s.H});
    a.c_n = data(c_n_arr);
    c_n = c_n_arr;
  }
  if (training && s.cell != Cell::kVanilla) {
    gates_arr = output({s.T, GH, s.N});
    a.gates = data(gates_arr);
    gates = gates_arr;
  }
  if (training && lstm) {
    cs_arr = output({s.T + 1, s.H, s.N});
    a.cs = data(cs_arr);
    cs = cs_arr;
  }
  if (training && gru) {
    hn_arr = output({s.T, s.H, s.N});
    a.hn = data(hn_arr);
    hn = hn_arr;
  }
  const dlcb::rnn::Dims d{s.cell, relu, s.T, s.N, s.I, s.H};
  int used;
  {
    py::gil_scoped_release release;
    used = dlcb::rnn::forward(ks, d, a, threads);
  }
  return py::make_tuple(hs, c_n, gates, cs, hn, used);
}

py::tuple backward(const std::string& cell_name, bool relu, const py::array& x, const py::array& w_ih,
                   const py::array& w_hh, const py::object& packed, const py::array& hs,
                   const py::object& gates, const py::object& cs, const py::object& hn,
                   const py::array& dy, const py::object& dh_n, const py::object& dc_n,
                   bool input_grad, const std::string& isa, int threads) {
  const auto& ks = kernel_set(isa);
  const Sizes s = sizes_of(cell_name, x, w_ih, w_hh);
  const int64_t GH = s.G * s.H;
  const bool lstm = s.cell == Cell::kLstm, gru = s.cell == Cell::kGru;
  dlcb::bind::require_threads(threads);
  dlcb::rnn::BackwardArgs a{};
  a.x = input(x, "x", {s.T, s.N, s.I});
  a.w_ih = input(w_ih, "weight_ih", {GH, s.I});
  a.w_hh = input(w_hh, "weight_hh", {GH, s.H});
  a.packed = optional_input(packed, "packed", {dlcb::rnn::packed_backward_floats(ks, s.cell, s.H)});
  a.hs = input(hs, "saved h", {s.T + 1, s.N, s.H});
  if (s.cell != Cell::kVanilla) {
    if (gates.is_none()) throw py::value_error("saved gates are required for the LSTM and GRU");
    a.gates = input(gates, "saved gates", {s.T, GH, s.N});
  }
  if (lstm) {
    if (cs.is_none()) throw py::value_error("saved c is required for the LSTM");
    a.cs = input(cs, "saved c", {s.T + 1, s.H, s.N});
  }
  if (gru) {
    if (hn.is_none()) throw py::value_error("saved hn is required for the GRU");
    a.hn = input(hn, "saved hn", {s.T, s.H, s.N});
  }
  a.dy = input(dy, "dy", {s.T, s.N, s.H});
  a.dh_n = optional_input(dh_n, "dh_n", {s.N, s.H});
  if (!lstm && !dc_n.is_none()) throw py::value_error("dc_n is for the LSTM only");
  a.dc_n = optional_input(dc_n, "dc_n", {s.N, s.H});

  FloatArray dw_ih = output({GH, s.I}), dw_hh = output({GH, s.H}), db_ih = output({GH}),
             db_hh = output({GH}), dh0 = output({s.N, s.H});
  a.dw_ih = data(dw_ih);
  a.dw_hh = data(dw_hh);
  a.db_ih = data(db_ih);
  a.db_hh = data(db_hh);
  a.dh0 = data(dh0);
  py::object dc0 = py::none(), dx = py::none();
  FloatArray dc0_arr, dx_arr;
  if (lstm) {
    dc0_arr = output({s.N, s.H});
    a.dc0 = data(dc0_arr);
    dc0 = dc0_arr;
  }
  if (input_grad) {
    dx_arr = output({s.T, s.N, s.I});
    a.dx = data(dx_arr);
    dx = dx_arr;
  }
  const dlcb::rnn::Dims d{s.cell, relu, s.T, s.N, s.I, s.H};
  int used;
  {
    py::gil_scoped_release release;
    used = dlcb::rnn::backward(ks, d, a, threads);
  }
  return py::make_tuple(dw_ih, dw_hh, db_ih, db_hh, dh0, dc0, dx, used);
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.attr("rnn_small_batch_max") = dlcb::rnn::kSmallBatchMax;
  m.def("rnn_pack", &pack, py::arg("cell"), py::arg("weight_hh"), py::arg("direction"),
        py::arg("isa"), py::arg("threads"),
        "W_hh packed into the recurrent micro-kernel panels ('forward' or 'backward' layout).");
  m.def("rnn_forward", &forward, py::arg("cell"), py::arg("relu"), py::arg("x"), py::arg("h0"),
        py::arg("c0"), py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih"),
        py::arg("bias_hh"), py::arg("packed"), py::arg("training"), py::arg("isa"), py::arg("threads"),
        "Recurrent layer forward; returns (hs (T+1,N,H), c_n, gates (T,G*H,N), cs (T+1,H,N),\n"
        "hn (T,H,N), threads used); the saved arrays are None unless training and needed.");
  m.def("rnn_backward", &backward, py::arg("cell"), py::arg("relu"), py::arg("x"),
        py::arg("weight_ih"), py::arg("weight_hh"), py::arg("packed"), py::arg("hs"),
        py::arg("gates"), py::arg("cs"), py::arg("hn"), py::arg("dy"), py::arg("dh_n"),
        py::arg("dc_n"), py::arg("input_grad"), py::arg("isa"), py::arg("threads"),
        "Backpropagation through time; returns (dW_ih, dW_hh, db_ih, db_hh, dh0, dc0, dx, threads).");
}
