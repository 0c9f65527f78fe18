"""Provenance of a run: software versions, BLAS, compiler, build revision, command line."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

from . import __version__, _cpu

_PACKAGES = ("numpy", "threadpoolctl", "torch", "onnxruntime", "onnx", "cupy-cuda13x", "nvidia-ml-py", "pytest-benchmark")
_ENV_VARS = ("OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
             "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "DLCB_ENABLE_CUDA",
             "DLCB_CONV_PARALLEL", "DLCB_CONV_BATCH_COLUMNS", "DLCB_CONV_BATCH_COLUMNS_1X1", "DLCB_CONV_SHIFTED",
             "DLCB_ISA", "DLCB_GEMM_SCHEDULE", "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def package_versions() -> dict:
    found = {"dlcb-kernels": __version__}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def describe(blas: list[dict]) -> dict:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "packages": package_versions(),
        "blas": blas,
        "compiler": _cpu.compiler,
        "build_revision": _cpu.build_revision,
        "openmp_max_threads": _cpu.omp_max_threads(),
        "env": {k: os.environ[k] for k in _ENV_VARS if k in os.environ},
        "command": [os.path.basename(sys.argv[0])] + sys.argv[1:],
    }


def describe_cuda() -> dict:
    """CUDA runtime and driver versions as the extension sees them, and the GPU libraries the
    vendor baselines load (each only if importable)."""
    from . import cuda

    status = cuda.status()

    def version(v):
        return f"{v // 1000}.{v % 1000 // 10}" if v else None

    found = {"available": status.available, "reason": status.reason,
             "runtime": version(status.runtime_version), "driver": version(status.driver_version)}
    try:
        import cupy

        found["cupy_cuda_runtime"] = version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception:  # noqa: BLE001 - provenance only
        pass
    try:
        import torch

        found["torch_cuda"] = torch.version.cuda
        found["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001 - provenance only
        pass
    return found
