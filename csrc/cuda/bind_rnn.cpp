// Python binding of the RNN variants (rnn/rnn.h). Arguments arrive as a dict of the RnnArgs
// fields (cell 0 vanilla_relu / 1 vanilla_tanh / 2 lstm / 3 gru, dtype 0 f32 / 1 f16 / 2 bf16),
// pointers as ints, 0 for absent ones.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_args.h"
#include "rnn/rnn.h"

namespace py = pybind11;
using namespace dlcb::cuda;
using namespace dlcb::cuda::bind;

namespace {

RnnArgs rnn_args(const py::dict& d) {
  RnnArgs a;
  a.cell = enum_field<RnnCell>(d, "cell", 4);
  a.dtype = enum_field<DType>(d, "dtype", 3);
  a.timesteps = field<int>(d, "timesteps");
  a.batch = field<int>(d, "batch");
  a.input_size = field<int>(d, "input_size");
  a.hidden = field<int>(d, "hidden");
  a.x = pointer(d, "x");
  a.h0 = pointer(d, "h0");
  a.c0 = pointer(d, "c0");
  a.w_ih = pointer(d, "w_ih");
  a.w_hh = pointer(d, "w_hh");
  a.b_ih = pointer(d, "b_ih");
  a.b_hh = pointer(d, "b_hh");
  a.y = mutable_pointer(d, "y");
  a.h_n = mutable_pointer(d, "h_n");
  a.c_n = mutable_pointer(d, "c_n");
  a.workspace = mutable_pointer(d, "workspace");
  return a;
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def(
      "rnn_variants",
      [] {
        py::list out;
        for (const auto& v : rnn_variants()) {
          py::dict d;
          d["name"] = v.name;
          d["dtype"] = dtype_name(v.dtype);
          d["technique"] = v.technique;
          d["min_cc"] = v.min_cc;
          out.append(d);
        }
        return out;
      },
      "The RNN variants: name, dtype, technique and min_cc (10 * major + minor).");
  m.def(
      "rnn_unsupported_reason",
      [](const std::string& variant, const py::dict& args, int device) {
        const RnnArgs a = rnn_args(args);
        py::gil_scoped_release release;
        return rnn_unsupported_reason(variant, a, device);
      },
      py::arg("variant"), py::arg("args"), py::arg("device"),
      "Why `variant` cannot run `args` on device `device`; \"\" when it can.");
  m.def(
      "rnn_workspace_bytes",
      [](const std::string& variant, const py::dict& args) {
        return rnn_workspace_bytes(variant, rnn_args(args));
      },
      py::arg("variant"), py::arg("args"),
      "Bytes of device memory to pass as `workspace` to rnn_forward.");
  m.def(
      "rnn_forward",
      [](const std::string& variant, const py::dict& args, int device, std::uintptr_t stream) {
        const RnnArgs a = rnn_args(args);
        py::gil_scoped_release release;
        rnn_forward(variant, a, device, stream);
      },
      py::arg("variant"), py::arg("args"), py::arg("device"), py::arg("stream"),
      "Queue the layer's forward pass over the whole sequence on `stream` of `device` (see "
      "rnn/rnn.h).");
}
