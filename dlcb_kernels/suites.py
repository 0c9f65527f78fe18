"""Problem suites: named lists of problems, with the sets they come from.

deepbench-*: the shapes of Baidu's DeepBench (data/deepbench, see its README for the source).
Problems above a FLOP budget per call are scaled down (the largest dimension halved until it
fits) unless `full` is asked for; a scaled problem keeps its original shape in its labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources

from .problems import GemmProblem

SUITES = ("quick", "deepbench-train", "deepbench-inference")
OPS = ("gemm",)

# A budget that keeps one call near 10-50 ms on a few-core CPU, so a problem times in a second.
DEFAULT_MAX_FLOPS = 8e9


@dataclass
class SuiteProblem:
    problem: object
    labels: dict = field(default_factory=dict)   # set, source, scaled_from, ...


def _deepbench_rows(name: str) -> list[dict]:
    text = resources.files("dlcb_kernels").joinpath("data", "deepbench", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def deepbench_gemm(sets: tuple[str, ...]) -> list[SuiteProblem]:
    """DeepBench GEMM rows of the given sets, first occurrence of each shape kept."""
    out: list[SuiteProblem] = []
    seen: set = set()
    for row in _deepbench_rows("gemm.csv"):
        if row["set"] not in sets:
            continue
        problem = GemmProblem(int(row["m"]), int(row["n"]), int(row["k"]),
                              trans_a=row["a_t"] == "1", trans_b=row["b_t"] == "1")
        if problem in seen:
            continue
        seen.add(problem)
        out.append(SuiteProblem(problem, {"set": f"deepbench-{row['set']}", "source": "DeepBench gemm_problems.h"}))
    return out


def quick_gemm() -> list[SuiteProblem]:
    shapes = [
        (2048, 2048, 2048, False, False),   # the headline square problem
        (1024, 1024, 1024, False, False),
        (1024, 1024, 1024, True, False),
        (1024, 1024, 1024, False, True),
        (1760, 128, 1760, False, False),    # DeepBench-like skinny (batch 128)
        (4096, 16, 4096, False, False),     # DeepBench-like skinny (batch 16)
        (35, 8457, 2048, False, False),     # DeepBench-like short-and-wide
        (257, 131, 509, False, False),      # odd sizes: edge tiles everywhere
    ]
    return [SuiteProblem(GemmProblem(m, n, k, ta, tb), {"set": "quick"}) for m, n, k, ta, tb in shapes]


def load_suite(name: str, ops: tuple[str, ...] = OPS, *, full: bool = False,
               max_flops: float = DEFAULT_MAX_FLOPS) -> list[SuiteProblem]:
    if name not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}; got {name!r}")
    unknown = set(ops) - set(OPS)
    if unknown:
        raise ValueError(f"ops must be among {', '.join(OPS)}; got {', '.join(sorted(unknown))}")
    if max_flops <= 0:
        raise ValueError(f"max_flops must be > 0, got {max_flops}")
    problems: list[SuiteProblem] = []
    if "gemm" in ops:
        if name == "quick":
            problems += quick_gemm()
        elif name == "deepbench-train":
            problems += deepbench_gemm(("train",))
        else:
            problems += deepbench_gemm(("inference_server", "inference_device"))
    if name != "quick" and not full:
        problems = [_within_budget(sp, max_flops) for sp in problems]
    return _dedupe(problems)


def _within_budget(sp: SuiteProblem, max_flops: float) -> SuiteProblem:
    scaled = sp.problem.scaled_to(max_flops)
    if scaled == sp.problem:
        return sp
    labels = dict(sp.labels)
    labels["scaled_from"] = sp.problem.params()
    labels["scaled_reason"] = (f"{sp.problem.flops() / 1e9:.1f} GFLOP per call exceeds the "
                               f"{max_flops / 1e9:g} GFLOP budget; run with --full for the original")
    return SuiteProblem(scaled, labels)


def _dedupe(problems: list[SuiteProblem]) -> list[SuiteProblem]:
    """Scaling can map two shapes onto one; keep the first so records stay unique."""
    seen: set = set()
    out = []
    for sp in problems:
        if sp.problem not in seen:
            seen.add(sp.problem)
            out.append(sp)
    return out
