"""The one registry of implementations: op x backend x variant.

An implementation takes a problem and its inputs and returns a prepared run: a callable that
computes the result into a buffer allocated once, so timing sees the kernel and nothing else.
Vendor baselines live here beside our own kernels and run on the very same input arrays.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from . import __version__ as package_version
from . import _cpu
from .ops.gemm import available_isas, gemm_with_threads, kernel_info

PROVIDERS = ("ours", "vendor")


@dataclass
class PreparedRun:
    run: Callable[[], None]          # one execution of the kernel, result into `output`
    output: np.ndarray
    threads: int                     # threads the kernel runs on (known after the first run)
    algorithm: str | None = None     # what the implementation says it ran, where it says


@dataclass(frozen=True)
class Implementation:
    op: str
    backend: str
    variant: str
    provider: str                                   # "ours" or "vendor"
    library: Callable[[], str]                      # library and version, for the record
    unavailable_reason: Callable[[], str | None]    # None when it can run here
    prepare: Callable[..., contextlib.AbstractContextManager[PreparedRun]]
    default: bool = True                            # chosen by "--impl ours" / "vendor"
    dtypes: tuple[str, ...] = field(default=("float32",))

    @property
    def name(self) -> str:
        return f"{self.op}/{self.backend}/{self.variant}"


_REGISTRY: list[Implementation] = []


def register(impl: Implementation) -> Implementation:
    if any(existing.name == impl.name for existing in _REGISTRY):
        raise ValueError(f"implementation {impl.name} is registered twice")
    if impl.provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {PROVIDERS}, got {impl.provider!r}")
    _REGISTRY.append(impl)
    return impl


def implementations(op: str | None = None) -> list[Implementation]:
    return [impl for impl in _REGISTRY if op is None or impl.op == op]


def select(ops: list[str], spec: str) -> list[Implementation]:
    """Implementations for `ops` named by a comma list of providers ("ours", "vendor"), "all",
    variant names ("ours-avx2", "numpy") or full names ("gemm/cpu/numpy")."""
    chosen: list[Implementation] = []
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ValueError("impl must name at least one implementation or provider")
    candidates = [impl for impl in _REGISTRY if impl.op in ops]
    for token in tokens:
        if token == "all":
            matched = candidates
        elif token in PROVIDERS:
            matched = [impl for impl in candidates if impl.provider == token and impl.default]
        else:
            matched = [impl for impl in candidates if token in (impl.variant, impl.name)]
        if not matched:
            known = sorted({impl.variant for impl in candidates} | set(PROVIDERS) | {"all"})
            raise ValueError(f"impl {token!r} matches no implementation of {ops}; known: {', '.join(known)}")
        chosen.extend(impl for impl in matched if impl not in chosen)
    return chosen


# GEMM, CPU -------------------------------------------------------------------------------------

def _ours_gemm(isa: str) -> Implementation:
    def unavailable() -> str | None:
        if isa not in available_isas():
            return f"this CPU does not run the {isa} micro-kernel"
        return None

    def library() -> str:
        info = kernel_info(isa)
        return f"dlcb_kernels {package_version} ({isa} {info['mr']}x{info['nr']} micro-kernel, {_cpu.compiler})"

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        a, b = inputs["a"], inputs["b"]
        c = np.empty((problem.m, problem.n), dtype=problem.dtype)
        info = kernel_info(isa)
        schedule = _cpu.gemm_schedule(isa, problem.m, problem.n)
        prepared = PreparedRun(lambda: None, c, threads,
                               f"goto-blis {schedule} schedule, {info['mr']}x{info['nr']} micro-kernel, "
                               f"kc<={info['kc']} mc<={info['mc']} nc<={info['nc']}")

        def run() -> None:
            # Small problems run on fewer threads than asked: the record states the count used.
            _, prepared.threads = gemm_with_threads(a, b, trans_a=problem.trans_a, trans_b=problem.trans_b,
                                                    c=c, isa=isa, threads=threads)

        prepared.run = run
        yield prepared

    return Implementation("gemm", "cpu", f"ours-{isa}", "ours", library, unavailable, prepare,
                          default=isa == (available_isas() or ["portable"])[0])


def _threadpoolctl_missing() -> str | None:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return "threadpoolctl is not installed, so numpy's BLAS threads cannot be pinned: pip install threadpoolctl"
    return None


def blas_info() -> list[dict]:
    """The BLAS libraries numpy loaded, with vendor, version, threading layer and kernel core."""
    missing = _threadpoolctl_missing()
    if missing:
        return [{"error": missing}]
    from threadpoolctl import threadpool_info

    np.ones(1) @ np.ones(1)  # make sure numpy's BLAS is loaded
    return [info for info in threadpool_info() if info.get("user_api") == "blas"]


def _numpy_gemm() -> Implementation:
    def library() -> str:
        blas = ", ".join(
            f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, {b.get('threading_layer')})"
            for b in blas_info()
        )
        return f"numpy {np.__version__} / {blas or 'unknown BLAS'}"

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from threadpoolctl import threadpool_limits

        a = inputs["a"].T if problem.trans_a else inputs["a"]
        b = inputs["b"].T if problem.trans_b else inputs["b"]
        c = np.empty((problem.m, problem.n), dtype=problem.dtype)
        with threadpool_limits(limits=threads, user_api="blas"):
            def run() -> None:
                np.matmul(a, b, out=c)

            yield PreparedRun(run, c, threads, "sgemm via numpy.matmul")

    return Implementation("gemm", "cpu", "numpy", "vendor", library, _threadpoolctl_missing, prepare)


for _isa in ("avx512", "avx2", "portable"):
    register(_ours_gemm(_isa))
register(_numpy_gemm())
