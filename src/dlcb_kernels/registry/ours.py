"""Our CPU kernels in the registry: GEMM, convolution and RNNs, one entry per micro-kernel ISA
(ours-avx512, ours-avx2, ours-portable), so one run can time every path this CPU has. "--impl
ours" takes the entry of the ISA "auto" resolves to (DLCB_ISA honoured)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np

from .. import __version__ as package_version
from .. import _cpu
from ..ops import conv as conv_ops
from ..ops import rnn as rnn_ops
from ..ops.gemm import ISAS, available_isas, gemm_plan, kernel_info, prepare_gemm, resolve_isa
from . import Implementation, PreparedRun, register


def kernel_record(isa: str, plan: dict | None = None) -> dict:
    """The micro-kernel and cache blocking a record of ours ran with: the kernel set's blocked-
    schedule blocks and the rule that chose them, or a GEMM's own plan (schedule and blocks)."""
    info = kernel_info(isa)
    record = {key: info[key] for key in ("isa", "mr", "nr", "kc", "mc", "nc")}
    if plan is not None:
        record.update({key: plan[key] for key in ("schedule", "transposed", "kc", "mc", "nc")})
    record["blocking_rule"] = info["blocking_rule"]
    return record


def _default_isa() -> str:
    """The ISA whose entries "--impl ours" runs: what "auto" resolves to (DLCB_ISA honoured)."""
    try:
        return resolve_isa("auto")
    except ValueError:  # DLCB_ISA names an ISA this CPU lacks: the CLI says so before any run
        return (available_isas() or ["portable"])[0]


def _unavailable(isa: str) -> Callable[..., str | None]:
    def reason(problem=None) -> str | None:
        if isa not in available_isas():
            return f"this CPU does not run the {isa} micro-kernel"
        return None

    return reason


def _library(isa: str) -> Callable[[], str]:
    def library() -> str:
        info = kernel_info(isa)
        return f"dlcb_kernels {package_version} ({isa} {info['mr']}x{info['nr']} micro-kernel, {_cpu.compiler})"

    return library


def _entry(op: str, isa: str, prepare) -> Implementation:
    return Implementation(op, "cpu", f"ours-{isa}", "ours", _library(isa), _unavailable(isa), prepare,
                          default=isa == _default_isa())


def _gemm(isa: str) -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        a, b = inputs["a"], inputs["b"]
        c = np.empty((problem.m, problem.n), dtype=problem.dtype)
        plan = gemm_plan(problem.m, problem.n, problem.k, isa, trans_a=problem.trans_a, trans_b=problem.trans_b)
        prepared = PreparedRun(lambda: None, c, threads, _gemm_algorithm(plan), kernel=kernel_record(isa, plan))

        # Validated once, as numpy's matmul is called directly: the timed call is the kernel's.
        _, call = prepare_gemm(a, b, trans_a=problem.trans_a, trans_b=problem.trans_b, c=c, isa=isa, threads=threads)

        def run() -> None:
            # Small problems run on fewer threads than asked: the record states the count used.
            prepared.threads = call()

        prepared.run = run
        yield prepared

    return _entry("gemm", isa, prepare)


def _gemm_algorithm(plan: dict) -> str:
    if plan["schedule"] == "inner-product":
        return "inner-product (blocked dot products along k, no packing)"
    text = (f"goto-blis {plan['schedule']} schedule, {plan['mr']}x{plan['nr']} micro-kernel, "
            f"kc<={plan['kc']} mc<={plan['mc']} nc<={plan['nc']}")
    return f"C^T = B^T A^T, {text}" if plan["transposed"] else text


def _conv(isa: str) -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        out = np.empty(problem.output_shape(), dtype=problem.dtype)
        args = dict(problem.conv_args(), out=out, threads=threads, isa=isa)
        if problem.direction == "fwd":
            def call():
                return conv_ops.conv2d_with_info(inputs["x"], inputs["w"], **args)
        elif problem.direction == "bwd_data":
            def call():
                return conv_ops.conv2d_backward_data_with_info(inputs["dy"], inputs["w"],
                                                               input_shape=problem.x_shape, **args)
        else:
            def call():
                return conv_ops.conv2d_backward_filter_with_info(inputs["x"], inputs["dy"],
                                                                 weight_shape=problem.w_shape, **args)
        prepared = PreparedRun(lambda: None, out, threads, kernel=kernel_record(isa))

        def run() -> None:
            _, info = call()
            prepared.threads, prepared.algorithm = info["threads"], info["algorithm"]

        prepared.run = run
        yield prepared

    return _entry("conv", isa, prepare)


def _rnn(isa: str) -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        # Weights are validated and packed once, as a framework does when the layer is built.
        weights = rnn_ops.prepare_rnn_weights(inputs["weights"], problem.cell, isa=isa)
        kwargs = dict(cell=problem.cell, c0=inputs.get("c0"), threads=threads, isa=isa)
        prepared = PreparedRun(lambda: None, None, threads, kernel=kernel_record(isa))
        if problem.direction == "fwd":
            def run() -> None:
                result = rnn_ops.rnn(inputs["x"], inputs["h0"], weights, **kwargs)
                prepared.output, prepared.threads, prepared.algorithm = result.y, result.threads, result.algorithm
        else:
            # The forward pass that saves the states runs once; backward is what is timed.
            forward = rnn_ops.rnn(inputs["x"], inputs["h0"], weights, training=True, **kwargs)

            def run() -> None:
                prepared.output = rnn_ops.rnn_backward(forward, inputs["dy"], threads=threads)
                prepared.threads = forward.threads
                prepared.algorithm = f"backprop through time for the weight gradients ({forward.algorithm})"
        prepared.run = run
        yield prepared

    return _entry("rnn", isa, prepare)


for _isa in ISAS[1:]:
    register(_gemm(_isa))
    register(_conv(_isa))
    register(_rnn(_isa))
