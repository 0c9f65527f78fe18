"""onnxruntime on the CPU (its MLAS kernels): one-node ONNX graphs for Gemm, Conv and
RNN/LSTM/GRU, built with the onnx package. Inference only: backward problems are unavailable.

Optional (the `vendor` extra). Inputs and outputs are bound to the problem's numpy buffers
(IOBinding), so no copy is timed. Layer weights (conv filters, RNN weights) are graph
initializers, as in an exported model, so onnxruntime may pre-pack them when the session is
built, outside the timing; GEMM's B is an input like A. Sessions run sequentially on the run's
thread count (intra-op threads; one inter-op thread).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from . import Implementation, PreparedRun, register, vendor_missing

OPSET = 17
IR_VERSION = 8      # readable by every onnxruntime the vendor extra admits (>= 1.16)

# Gate blocks in ONNX order, as indices of PyTorch's blocks: LSTM i,o,f,c from i,f,g,o; GRU
# z,r,h from r,z,n (with linear_before_reset=1, ONNX's GRU is PyTorch's form).
_GATE_ORDER = {"vanilla": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
_OPS = {"vanilla": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _unavailable(problem=None) -> str | None:
    for module in ("onnxruntime", "onnx"):
        reason = vendor_missing(module)()
        if reason:
            return reason
    if problem is not None and getattr(problem, "direction", "fwd") != "fwd":
        return "unavailable: onnxruntime runs inference only (no backward kernels)"
    return None


def _library() -> str:
    import onnx
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider, MLAS; graphs from onnx {onnx.__version__})"


def _session(nodes, inputs, outputs, initializers, threads: int):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    def value_info(name, shape):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape))

    graph = helper.make_graph(nodes, "dlcb", [value_info(n, s) for n, s in inputs],
                              [value_info(n, s) for n, s in outputs],
                              [onnx.numpy_helper.from_array(np.ascontiguousarray(a), n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _bound_run(session, inputs: dict, output_name: str, output: np.ndarray, threads: int, algorithm: str,
               extra_outputs=()) -> PreparedRun:
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_cpu_input(name, array)
    binding.bind_output(output_name, "cpu", 0, np.float32, list(output.shape), output.ctypes.data)
    for name in extra_outputs:     # outputs nobody reads still need a home
        binding.bind_output(name, "cpu")

    def run() -> None:
        session.run_with_iobinding(binding)

    return PreparedRun(run, output, threads, algorithm)


def _gemm() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from onnx import helper

        a, b = inputs["a"], inputs["b"]
        c = np.empty((problem.m, problem.n), dtype=problem.dtype)
        node = helper.make_node("Gemm", ["a", "b"], ["c"], transA=int(problem.trans_a), transB=int(problem.trans_b))
        session = _session([node], [("a", a.shape), ("b", b.shape)], [("c", c.shape)], [], threads)
        yield _bound_run(session, {"a": a, "b": b}, "c", c, threads, "ONNX Gemm node (MLAS sgemm)")

    return Implementation("gemm", "cpu", "onnxruntime", "vendor", _library, _unavailable, prepare)


def _conv() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from onnx import helper

        x = inputs["x"]
        y = np.empty(problem.y_shape, dtype=problem.dtype)
        node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[problem.r, problem.s],
                                pads=[problem.pad_h, problem.pad_w, problem.pad_h, problem.pad_w],
                                strides=[problem.stride_h, problem.stride_w],
                                dilations=[problem.dil_h, problem.dil_w], group=problem.groups)
        session = _session([node], [("x", x.shape)], [("y", y.shape)], [("w", inputs["w"])], threads)
        yield _bound_run(session, {"x": x}, "y", y, threads, "ONNX Conv node (MLAS; filters pre-packed as an initializer)")

    return Implementation("conv", "cpu", "onnxruntime", "vendor", _library, _unavailable, prepare)


def _onnx_rnn_weights(problem, weights: dict) -> list:
    """PyTorch-layout weights as ONNX's W, R, B (one direction, gates reordered)."""
    h = problem.hidden

    def reorder(array):
        return np.concatenate([array[g * h:(g + 1) * h] for g in _GATE_ORDER[problem.cell]], axis=0)

    return [("W", reorder(weights["weight_ih"])[None]), ("R", reorder(weights["weight_hh"])[None]),
            ("B", np.concatenate([reorder(weights["bias_ih"]), reorder(weights["bias_hh"])])[None])]


def _rnn() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from onnx import helper

        t, n, h = problem.timesteps, problem.batch, problem.hidden
        x = inputs["x"]
        h0 = inputs["h0"][None]
        y = np.empty((t, 1, n, h), dtype=problem.dtype)
        attrs = {"hidden_size": h}
        if problem.cell == "vanilla":
            attrs["activations"] = ["Relu"]
        if problem.cell == "gru":
            attrs["linear_before_reset"] = 1
        names = ["X", "W", "R", "B", "", "initial_h"]
        feeds = {"X": x, "initial_h": h0}
        graph_inputs = [("X", x.shape), ("initial_h", h0.shape)]
        outputs = ["Y", "Y_h"]
        if problem.cell == "lstm":
            names.append("initial_c")
            feeds["initial_c"] = inputs["c0"][None]
            graph_inputs.append(("initial_c", h0.shape))
            outputs.append("Y_c")
        node = helper.make_node(_OPS[problem.cell], names, outputs, **attrs)
        graph_outputs = [("Y", y.shape)] + [(name, h0.shape) for name in outputs[1:]]
        session = _session([node], graph_inputs, graph_outputs, _onnx_rnn_weights(problem, inputs["weights"]),
                           threads)
        prepared = _bound_run(session, feeds, "Y", y, threads,
                              f"ONNX {_OPS[problem.cell]} node (weights as initializers)", outputs[1:])
        prepared.output = y[:, 0]
        yield prepared

    return Implementation("rnn", "cpu", "onnxruntime", "vendor", _library, _unavailable, prepare)


register(_gemm())
register(_conv())
register(_rnn())
