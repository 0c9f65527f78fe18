// Python binding of the L2 flusher (l2_flush.h).
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>

#include "l2_flush.h"

namespace py = pybind11;

using dlcb::cuda::L2Flusher;

void bind_l2_flush(py::module_& m) {
  py::class_<L2Flusher>(m, "L2Flusher",
                        "Owns one device buffer larger than the L2; flush() overwrites it so the "
                        "L2 holds none of the next timed kernel's data.")
      .def(py::init([](int device, int64_t nbytes) {
             if (nbytes < 0) throw py::value_error("nbytes must be >= 0 (0: twice the L2 size)");
             return std::make_unique<L2Flusher>(device, static_cast<std::size_t>(nbytes));
           }),
           py::arg("device"), py::arg("nbytes") = 0)
      .def(
          "flush",
          [](const L2Flusher& f, std::uintptr_t stream) {
            py::gil_scoped_release release;
            f.flush(stream);
          },
          py::arg("stream") = 0,
          "Queue the overwrite on `stream` (a cudaStream_t handle of this device as an int; "
          "0: the default stream).")
      .def_property_readonly("device", &L2Flusher::device)
      .def_property_readonly("nbytes", &L2Flusher::nbytes,
                             "Buffer size in bytes (rounded up to 16).");
}
