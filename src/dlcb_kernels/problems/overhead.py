"""The framework overhead problem: what a runner spends around the work, per layer call and per
training step, measured on work so small that nothing else is left.

End-to-end steps of small models, and of models with many small layers, are dominated by it: a
PyTorch module call dispatches through Python, the module and the operator registry; in training,
autograd records a node per call and walks it back, and the optimizer visits every parameter
tensor. A predictor that sums kernel times alone misses all of it.

  kind "layer": `calls` layer calls in a chain on a one-element tensor (training: forward and
                backward through them), so one call's overhead is the time / calls;
  kind "step":  the optimizer of a training step over `calls` one-element parameter tensors
                (zero the gradients, SGD with momentum), so one tensor's share is the time / calls.

flops and bytes are stand-ins (one per call, four bytes per call) so that the record's GFLOP/s
and arithmetic intensity are defined; the predictor reads the time per call.

The check: the chain is built to be the identity on the input (1.0), and a step with zero
gradients leaves every parameter at 1.0, so the result must be exactly 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_choice, check_dims, check_flag, from_params

OVERHEAD_KINDS = ("layer", "step")
# Calls in one measured chain: enough that the timer's own cost is a small share.
DEFAULT_CALLS = 32


@dataclass(frozen=True)
class OverheadProblem:
    kind: str
    training: bool
    calls: int = DEFAULT_CALLS
    dtype: str = "float32"

    op = "overhead"
    error_metric = "max |out - 1| (the chain is the identity on 1.0)"

    def __post_init__(self):
        check_choice(self, "kind", OVERHEAD_KINDS)
        check_flag(self, "training")
        object.__setattr__(self, "training", bool(self.training))
        check_dims(self, ("calls",), minimum=1)
        if self.kind == "step" and not self.training:
            raise ValueError("OverheadProblem: an optimizer step is training only (training=True)")
        if self.dtype != "float32":
            raise ValueError(f"OverheadProblem.dtype must be float32, got {self.dtype!r}")

    def flops(self) -> int:
        return self.calls

    def bytes_min(self) -> int:
        return 4 * self.calls

    def key(self) -> str:
        return f"overhead {self.kind} {'train' if self.training else 'infer'} x{self.calls}"

    def params(self) -> dict:
        return {"kind": self.kind, "training": self.training, "calls": self.calls, "dtype": self.dtype}

    @classmethod
    def from_params(cls, params: dict) -> "OverheadProblem":
        return from_params(cls, params)

    def make_inputs(self, seed: int = 0) -> dict:
        return {"x": np.ones(1, dtype=np.float32)}

    def tolerance(self) -> float:
        return 0.0

    def check_error(self, inputs: dict, out) -> float:
        if out is None or np.shape(out) != (1,):
            return float("inf")
        return float(np.max(np.abs(np.asarray(out, dtype=np.float64) - 1.0)))
