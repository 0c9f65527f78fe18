// Python binding of the GPU convolutions (conv/conv.h). Arguments arrive as a dict of the
// ConvArgs fields, pointers (x, filter, y, workspace) as ints.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_args.h"
#include "conv/conv.h"

namespace py = pybind11;
using namespace dlcb::cuda;
using namespace dlcb::cuda::bind;

namespace {

ConvArgs conv_args(const py::dict& d) {
  ConvArgs a;
  a.n = field<int>(d, "n");
  a.c = field<int>(d, "c");
  a.h = field<int>(d, "h");
  a.w = field<int>(d, "w");
  a.k = field<int>(d, "k");
  a.r = field<int>(d, "r");
  a.s = field<int>(d, "s");
  a.pad_h = field<int>(d, "pad_h");
  a.pad_w = field<int>(d, "pad_w");
  a.stride_h = field<int>(d, "stride_h");
  a.stride_w = field<int>(d, "stride_w");
  a.dil_h = field<int>(d, "dil_h");
  a.dil_w = field<int>(d, "dil_w");
  a.groups = field<int>(d, "groups");
  a.layout = enum_field<ConvLayout>(d, "layout", 2);
  a.direction = enum_field<ConvDirection>(d, "direction", 3);
  a.dtype = enum_field<DType>(d, "dtype", 3);
  a.x = pointer(d, "x");
  a.filter = pointer(d, "filter");
  a.y = mutable_pointer(d, "y");
  a.workspace = mutable_pointer(d, "workspace");
  return a;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv_variants",
      [] {
        py::list out;
        for (const auto& v : conv_variants()) {
          py::dict d;
          d["name"] = v.name;
          d["dtype"] = dtype_name(v.dtype);
          d["technique"] = v.technique;
          d["min_cc"] = v.min_cc;
          out.append(d);
        }
        return out;
      },
      "The convolution variants: name, dtype, technique and min_cc (10 * major + minor).");
  m.def(
      "conv_output_size",
      [](const py::dict& args) {
        const ConvArgs a = conv_args(args);
        return py::make_tuple(conv_output_h(a), conv_output_w(a));
      },
      py::arg("args"), "(P, Q), the output height and width; < 1 when the geometry is invalid.");
  m.def(
      "conv_unsupported_reason",
      [](const std::string& variant, const py::dict& args, int cc) {
        return conv_unsupported_reason(variant, conv_args(args), cc);
      },
      py::arg("variant"), py::arg("args"), py::arg("cc"),
      "Why `variant` cannot run `args` on compute capability cc; \"\" when it can.");
  m.def(
      "conv_workspace_bytes",
      [](const std::string& variant, const py::dict& args) {
        return conv_workspace_bytes(variant, conv_args(args));
      },
      py::arg("variant"), py::arg("args"),
      "Bytes of device scratch memory `variant` needs for `args` (pass them as workspace).");
  m.def(
      "conv",
      [](const std::string& variant, const py::dict& args, int device, std::uintptr_t stream) {
        const ConvArgs a = conv_args(args);
        py::gil_scoped_release release;
        conv(variant, a, device, stream);
      },
      py::arg("variant"), py::arg("args"), py::arg("device"), py::arg("stream"),
      "Queue the convolution on `stream` of `device` (see conv/conv.h); the output is "
      "overwritten.");
}
