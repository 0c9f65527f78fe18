// dlcb_kernels._cuda: the CUDA kernels and runtime queries. Compiled by the host compiler
// against the plain C++ API of the nvcc-built library; each technique binds itself in its own
// file. The CUDA runtime is linked statically and loads the driver only when first asked, so
// the module imports on machines without a GPU or a driver.
#include <pybind11/pybind11.h>

#include "device.h"

namespace py = pybind11;

void bind_l2_flush(py::module_& m);
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_rnn(py::module_& m);
void bind_timing(py::module_& m);

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "dlcb-kernels CUDA kernels (static CUDA runtime; imports without a GPU)";
  m.def("runtime_version", &dlcb::cuda::runtime_version,
        "CUDA runtime version this module was built with (1000 * major + 10 * minor).");
  m.def("driver_version", &dlcb::cuda::driver_version,
        "CUDA version the installed driver supports; 0 when no driver is installed.");
  m.def(
      "device_count",
      [] {
        const auto c = dlcb::cuda::device_count();
        return py::make_tuple(c.count, c.error);
      },
      "(count, error): the number of visible devices, and why it is 0 (\"\" when the query "
      "succeeded). Never raises.");
  m.def(
      "device_properties",
      [](int index) {
        const auto p = dlcb::cuda::device_properties(index);
        py::dict d;
        d["index"] = p.index;
        d["name"] = p.name;
        d["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
        d["major"] = p.major;
        d["minor"] = p.minor;
        d["sm_count"] = p.sm_count;
        d["max_sm_clock_khz"] = p.max_sm_clock_khz;
        d["memory_clock_khz"] = p.memory_clock_khz;
        d["memory_bus_width_bits"] = p.memory_bus_width_bits;
        d["l2_cache_bytes"] = p.l2_cache_bytes;
        d["total_memory_bytes"] = p.total_memory_bytes;
        d["shared_memory_per_sm_bytes"] = p.shared_memory_per_sm_bytes;
        d["pci_bus_id"] = p.pci_bus_id;
        return d;
      },
      py::arg("index"), "Static properties of device `index` as a dict.");
  m.def("pointer_device", &dlcb::cuda::pointer_device, py::arg("ptr"),
        "The device index that owns the device (or managed) memory at `ptr`.");
  m.def(
      "synchronize",
      [](int index) {
        py::gil_scoped_release release;
        dlcb::cuda::synchronize(index);
      },
      py::arg("index"),
      "Wait for all work queued on device `index`; raises the error of any kernel that failed.");
  bind_l2_flush(m);
  bind_gemm(m);
  bind_conv(m);
  bind_rnn(m);
  bind_timing(m);
}
