"""Problem types: one per op, each with its shape parameters, FLOP and byte model, inputs and
reference check. Nothing here knows how a problem is run or timed.
"""

from __future__ import annotations

from ._common import DTYPES
from .conv import ConvProblem
from .gemm import GemmProblem
from .memory import MemoryProblem
from .overhead import OverheadProblem
from .rnn import RnnProblem

PROBLEM_TYPES = {"gemm": GemmProblem, "conv": ConvProblem, "rnn": RnnProblem, "memory": MemoryProblem,
                 "overhead": OverheadProblem}


def problem_from_params(op: str, params: dict):
    try:
        cls = PROBLEM_TYPES[op]
    except KeyError:
        raise ValueError(f"unknown op {op!r}; known: {sorted(PROBLEM_TYPES)}") from None
    return cls.from_params(params)


__all__ = ["DTYPES", "ConvProblem", "GemmProblem", "MemoryProblem", "OverheadProblem", "PROBLEM_TYPES", "RnnProblem",
           "problem_from_params"]
