"""The recurrent-layer problem: one unidirectional layer of T steps, forward or backward.

DeepBench's conventions (data/deepbench/README.md): vanilla cells use ReLU, LSTM has no
peepholes, the GRU has sigmoid reset/update gates; the input size equals the hidden size;
"backward" is backprop through time for the weight gradients, without the input gradient.
Weights use PyTorch's names, shapes and gate order (LSTM i, f, g, o; GRU r, z, n).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import numpy_ops
from ._common import (
    DTYPES,
    UNIT_ROUNDOFF,
    check_choice,
    check_dims,
    from_params,
    itemsize,
    relative_error,
    sample,
    storage,
)

CELLS = ("vanilla", "lstm", "gru")
DIRECTIONS = ("fwd", "bwd")
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@dataclass(frozen=True)
class RnnProblem:
    """FLOPs, two ways:

    flops()       DeepBench's count, the recurrent GEMMs only: 2 G T N H^2 per pass (vanilla
                  G=1 plus T N H for the ReLU, LSTM G=4, GRU G=3); backward does two such
                  GEMMs per step (dh through W_hh, and dW_hh), so twice that.
    flops_full()  everything the layer multiplies: adds the input projection 2 G T N H I
                  (backward: dW_ih, the same count again), element-wise work not counted.
    """

    hidden: int
    batch: int
    timesteps: int
    cell: str = "lstm"
    input_size: int = 0              # 0: the hidden size, as in DeepBench
    direction: str = "fwd"
    dtype: str = "float32"

    op = "rnn"

    def __post_init__(self):
        check_dims(self, ("hidden", "batch", "timesteps"), minimum=1)
        check_dims(self, ("input_size",), minimum=0)
        check_choice(self, "cell", CELLS)
        check_choice(self, "direction", DIRECTIONS)
        check_choice(self, "dtype", DTYPES)

    @property
    def inputs_per_step(self) -> int:
        return self.input_size or self.hidden

    @property
    def gates(self) -> int:
        return numpy_ops.GATES[self.cell]

    @property
    def itemsize(self) -> int:
        return itemsize(self.dtype)

    def flops(self) -> int:
        t, n, h = self.timesteps, self.batch, self.hidden
        forward = 2 * self.gates * t * n * h * h + (t * n * h if self.cell == "vanilla" else 0)
        return forward if self.direction == "fwd" else 2 * forward

    def flops_full(self) -> int:
        projection = 2 * self.gates * self.timesteps * self.batch * self.hidden * self.inputs_per_step
        return self.flops() + projection

    def bytes_min(self) -> int:
        """Weights read once, x read, all hidden states written (backward: dy read, the saved
        states read, the weight gradients written)."""
        g, h, i = self.gates, self.hidden, self.inputs_per_step
        weights = g * h * (h + i) + 2 * g * h
        seq_in = self.timesteps * self.batch * i
        seq_out = self.timesteps * self.batch * h
        if self.direction == "fwd":
            return self.itemsize * (weights + seq_in + seq_out)
        return self.itemsize * (2 * weights + seq_in + 2 * seq_out)

    def arithmetic_intensity(self) -> float:
        return self.flops() / self.bytes_min()

    def key(self) -> str:
        text = f"rnn {self.cell} {self.direction} h{self.hidden} n{self.batch} t{self.timesteps}"
        text += f" i{self.input_size}" if self.input_size else ""
        return text if self.dtype == "float32" else f"{text} {self.dtype}"

    def params(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_params(cls, params: dict) -> "RnnProblem":
        return from_params(cls, params)

    def scaled_to(self, max_flops: float) -> "RnnProblem":
        """Within a FLOP budget by halving the timesteps (each step is the same work, so the
        per-step throughput is unchanged), then, at one step, the batch."""
        scaled = self
        while scaled.flops() > max_flops and (scaled.timesteps > 1 or scaled.batch > 1):
            if scaled.timesteps > 1:
                scaled = dataclasses.replace(scaled, timesteps=scaled.timesteps // 2)
            else:
                scaled = dataclasses.replace(scaled, batch=scaled.batch // 2)
        return scaled

    # Inputs and the reference --------------------------------------------------------------------

    @property
    def error_metric(self) -> str:
        if self.direction == "fwd":
            return "max|y - y_ref| / rms(y_ref) over all steps, float64 reference on sampled batch rows"
        return "max over weight gradients of max|g - g_ref| / rms(g_ref), float64 reference"

    def make_inputs(self, seed: int = 0) -> dict:
        """x, h0 (c0 for the LSTM), weights uniform in +-1/sqrt(H) (PyTorch's initialisation),
        and for backward the output gradient dy."""
        rng = np.random.default_rng(seed)
        g, h, i = self.gates, self.hidden, self.inputs_per_step
        bound = 1.0 / np.sqrt(h)

        def uniform(shape, limit=1.0):
            return storage(rng.uniform(-limit, limit, shape), self.dtype)

        inputs = {
            "x": uniform((self.timesteps, self.batch, i)),
            "h0": uniform((self.batch, h)),
            "weights": {"weight_ih": uniform((g * h, i), bound), "weight_hh": uniform((g * h, h), bound),
                        "bias_ih": uniform(g * h, bound), "bias_hh": uniform(g * h, bound)},
        }
        if self.cell == "lstm":
            inputs["c0"] = uniform((self.batch, h))
        if self.direction == "bwd":
            inputs["dy"] = uniform((self.timesteps, self.batch, h))
        return inputs

    def tolerance(self) -> float:
        """float32 rounding compounds over the steps as well as over the sums of each step."""
        terms = (self.hidden + self.inputs_per_step) * self.timesteps
        if self.direction == "bwd":
            terms *= self.batch
        # A 16-bit hidden state is rounded every step and fed back: the roundings of the steps
        # add up like a random walk.
        rounding = 0.0 if self.dtype == "float32" else 4.0 * UNIT_ROUNDOFF[self.dtype] * float(np.sqrt(self.timesteps))
        return 1e-5 + 5e-6 * float(np.sqrt(terms)) + rounding

    def check_error(self, inputs: dict, out, max_rows: int = 4, seed: int = 1) -> float:
        """fwd: `out` is y (T, N, H), checked on a few batch rows (rows are independent).
        bwd: `out` is a dict of the four weight gradients (they sum over the batch, so the
        reference runs on all of it)."""
        weights = {name: inputs["weights"][name].astype(np.float64) for name in WEIGHT_NAMES}
        c0 = inputs.get("c0")
        if self.direction == "fwd":
            rows = sample(self.batch, max_rows, seed)
            ref, _, _, _ = numpy_ops.rnn_forward(inputs["x"][:, rows].astype(np.float64),
                                                 inputs["h0"][rows].astype(np.float64), weights, self.cell,
                                                 None if c0 is None else c0[rows].astype(np.float64))
            if np.shape(out) != (self.timesteps, self.batch, self.hidden):
                return float("inf")
            return relative_error(out[:, rows], ref)
        if not isinstance(out, dict) or any(name not in out for name in WEIGHT_NAMES):
            return float("inf")
        _, _, _, saved = numpy_ops.rnn_forward(inputs["x"].astype(np.float64), inputs["h0"].astype(np.float64),
                                               weights, self.cell, None if c0 is None else c0.astype(np.float64))
        ref = numpy_ops.rnn_backward(saved, weights, inputs["dy"].astype(np.float64))
        return max(relative_error(out[name], ref[name]) for name in WEIGHT_NAMES)
