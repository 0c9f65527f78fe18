// Stream capture into a CUDA graph, instantiated once and replayed (see graph_capture.h).
#include <cuda_runtime_api.h>

#include <stdexcept>

#include "common/check.cuh"
#include "common/device_guard.cuh"
#include "timing/graph_capture.h"
#include "timing/release_on_device.cuh"

namespace dlcb::cuda {

namespace {

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

}  // namespace

GraphCapture::GraphCapture(int device, std::uintptr_t stream) : device_(device), stream_(stream) {
  // The legacy default stream cannot be captured: refuse it here rather than at begin().
  if (stream == 0) throw std::invalid_argument("graph capture needs a stream other than the default (0)");
  DeviceGuard guard(device);  // validates the device index
}

GraphCapture::~GraphCapture() {
  const cudaStream_t stream = as_stream(stream_);
  const bool capturing = capturing_;
  const auto graph = static_cast<cudaGraph_t>(graph_);
  const auto exec = static_cast<cudaGraphExec_t>(exec_);
  release_on_device(device_, [=] {
    // Never leave the stream in capture mode: end it and drop whatever it recorded.
    if (capturing) {
      cudaGraph_t partial = nullptr;
      if (cudaStreamEndCapture(stream, &partial) == cudaSuccess && partial) cudaGraphDestroy(partial);
    }
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  });
}

void GraphCapture::release() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  exec_ = graph_ = nullptr;
  node_count_ = 0;
}

void GraphCapture::begin() {
  if (capturing_) throw std::runtime_error("GraphCapture.begin() while already capturing");
  DeviceGuard guard(device_);
  release();
  check(cudaStreamBeginCapture(as_stream(stream_), cudaStreamCaptureModeThreadLocal),
        "cudaStreamBeginCapture");
  capturing_ = true;
}

void GraphCapture::end() {
  if (!capturing_) throw std::runtime_error("GraphCapture.end() without begin()");
  DeviceGuard guard(device_);
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(as_stream(stream_), &graph);
  capturing_ = false;  // ended, successfully or not: the stream is out of capture mode
  if (ended != cudaSuccess && graph) cudaGraphDestroy(graph);
  check(ended, "cudaStreamEndCapture (the capture was invalidated by a call that is not allowed "
               "while capturing, such as a synchronization or an allocation)");
  graph_ = graph;
  std::size_t nodes = 0;
  cudaGraphExec_t exec = nullptr;
  cudaError_t e = cudaGraphGetNodes(graph, nullptr, &nodes);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
  // Upload now, so that the first timed launch does not pay for it.
  if (e == cudaSuccess) e = cudaGraphUpload(exec, as_stream(stream_));
  exec_ = exec;
  if (e != cudaSuccess) {
    release();
    check(e, "CUDA graph instantiation");
  }
  node_count_ = nodes;
}

void GraphCapture::launch(std::uintptr_t stream) const {
  if (!exec_) throw std::runtime_error("GraphCapture.launch() needs a successful begin()/end() first");
  DeviceGuard guard(device_);
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), as_stream(stream)), "cudaGraphLaunch");
}

}  // namespace dlcb::cuda
