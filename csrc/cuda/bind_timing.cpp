// Python binding of the device-side timing tools (timing/*.h) and the measured-peak probes
// (probe/probe.h). Streams travel as their cudaStream_t handle, an int.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "probe/probe.h"
#include "timing/event_timer.h"
#include "timing/graph_capture.h"
#include "timing/spin.h"
#include "timing/stream.h"

namespace py = pybind11;
using namespace dlcb::cuda;

namespace {

void bind_stream(py::module_& m) {
  py::class_<Stream>(m, "Stream", "A non-blocking CUDA stream on one device, destroyed with the object.")
      .def(py::init<int>(), py::arg("device"))
      .def_property_readonly("handle", &Stream::handle, "The cudaStream_t as an int.")
      .def_property_readonly("device", &Stream::device)
      .def(
          "synchronize",
          [](const Stream& s) {
            py::gil_scoped_release release;
            s.synchronize();
          },
          "Wait for the work queued on this stream; raises the error of a kernel that failed.");
}

void bind_event_timer(py::module_& m) {
  py::class_<EventTimer>(m, "EventTimer",
                         "Two CUDA events: start() and stop() record them on a stream, elapsed() "
                         "returns the seconds between them as the GPU saw it.")
      .def(py::init<int>(), py::arg("device"))
      .def("start", &EventTimer::start, py::arg("stream"))
      .def("stop", &EventTimer::stop, py::arg("stream"))
      .def(
          "elapsed",
          [](EventTimer& t) {
            py::gil_scoped_release release;
            return t.elapsed();
          },
          "Seconds from start to stop; waits for the stop event. RuntimeError names the CUDA "
          "error of work that failed in between.")
      .def_property_readonly("device", &EventTimer::device);
}

void bind_graph_capture(py::module_& m) {
  py::class_<GraphCapture>(m, "GraphCapture",
                           "Captures the work queued on `stream` between begin() and end() into a "
                           "CUDA graph; launch() replays it. The graph is freed with the object.")
      .def(py::init<int, std::uintptr_t>(), py::arg("device"), py::arg("stream"))
      .def("begin", &GraphCapture::begin, "Start capturing the stream (thread-local mode).")
      .def("end", &GraphCapture::end,
           "End the capture and instantiate the graph; RuntimeError with the CUDA error if the "
           "capture was invalidated (the stream is usable again either way).")
      .def("launch", &GraphCapture::launch, py::arg("stream"), "Queue the captured work on `stream`.")
      .def_property_readonly("node_count", &GraphCapture::node_count,
                             "Operations the capture recorded (0: nothing was queued on the stream).")
      .def_property_readonly("capturing", &GraphCapture::capturing)
      .def_property_readonly("ready", &GraphCapture::ready, "Whether a captured graph can be launched.")
      .def_property_readonly("device", &GraphCapture::device);
}

void bind_spin(py::module_& m) {
  m.def("spin", &spin, py::arg("device"), py::arg("stream"), py::arg("seconds"),
        "Queue a kernel on `stream` that returns once `seconds` (0 to 10) have passed on the GPU's "
        "global timer: a head start before a start event, or a kernel of known length.");
}

void bind_probes(py::module_& m) {
  m.def(
      "fma_throughput",
      [](int device, const std::string& dtype) {
        FmaThroughput r;
        {
          py::gil_scoped_release release;
          r = fma_throughput(device, dtype);
        }
        py::dict d;
        d["flops"] = r.flops;
        d["seconds"] = r.seconds;
        d["gflops"] = r.gflops;
        d["method"] = r.method;
        return d;
      },
      py::arg("device"), py::arg("dtype") = "float32",
      "CUDA-core FMA throughput of `device`: dtype \"float32\" (FFMA) or \"float16\" (HFMA2). "
      "{flops, seconds, gflops, method}; takes about 0.2 s.");
  m.def(
      "copy_bandwidth",
      [](int device, int64_t nbytes) {
        if (nbytes < 0) throw py::value_error("nbytes must be >= 0 (0: min(1 GiB, free memory / 4))");
        CopyBandwidth r;
        {
          py::gil_scoped_release release;
          r = copy_bandwidth(device, static_cast<std::size_t>(nbytes));
        }
        py::dict d;
        d["bytes_moved"] = r.bytes_moved;
        d["seconds"] = r.seconds;
        d["gbs"] = r.gbs;
        d["method"] = r.method;
        return d;
      },
      py::arg("device"), py::arg("nbytes") = 0,
      "Device-to-device copy bandwidth of `device`: {bytes_moved (read + written), seconds, gbs, "
      "method}.");
}

}  // namespace

void bind_timing(py::module_& m) {
  bind_stream(m);
  bind_event_timer(m);
  bind_graph_capture(m);
  bind_spin(m);
  bind_probes(m);
}
