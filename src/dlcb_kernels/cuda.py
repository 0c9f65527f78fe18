"""CUDA support, loaded lazily: the rest of the package asks here whether CUDA can be used.

Importing this module does not import the ``dlcb_kernels._cuda`` extension; the first call that
needs it does, once, and the outcome (module or reason for its absence) is cached.

>>> from dlcb_kernels import cuda
>>> s = cuda.status()
>>> if s.available:
...     props = cuda.device_properties(0)
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ._validate import require_int

_EXTENSION = "dlcb_kernels._cuda"


@dataclass(frozen=True)
class CudaStatus:
    """Whether CUDA kernels can run here, and if not, why not.

    Versions are CUDA's 1000 * major + 10 * minor (13000 is CUDA 13.0); ``None`` when the
    extension could not be loaded; ``driver_version`` is 0 when no driver is installed.
    """

    available: bool
    reason: str
    device_count: int
    runtime_version: int | None
    driver_version: int | None


def _version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _no_device_reason(error: str) -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = "unset" if visible is None else f"{visible!r}: does it hide them all?"
    reason = f"no CUDA device visible (CUDA_VISIBLE_DEVICES {hint})"
    return f"{reason}: {error}" if error else reason


def _diagnose(ext: ModuleType) -> CudaStatus:
    try:
        runtime = ext.runtime_version()
        driver = ext.driver_version()
    except RuntimeError as e:
        return CudaStatus(False, f"CUDA version query failed: {e}", 0, None, None)
    count, error = ext.device_count()
    if count > 0:
        reason = (
            f"{count} CUDA device(s) visible; driver supports CUDA {_version(driver)}, "
            f"runtime {_version(runtime)}"
        )
        return CudaStatus(True, reason, count, runtime, driver)
    if driver == 0:
        reason = (
            "no CUDA driver: libcuda could not be loaded (no NVIDIA driver installed, or none "
            f"mounted into this container): {error}"
        )
    elif error.startswith("cudaErrorInsufficientDriver"):
        reason = (
            f"CUDA driver too old: it supports CUDA {_version(driver)}, the extension was built "
            f"with CUDA {_version(runtime)}: {error}"
        )
    elif error.startswith("cudaErrorNoDevice") or not error:
        reason = _no_device_reason(error)
    else:
        reason = f"CUDA device query failed: {error}"
    return CudaStatus(False, reason, 0, runtime, driver)


@functools.cache
def _load() -> tuple[CudaStatus, ModuleType | None]:
    try:
        ext = importlib.import_module(_EXTENSION)
    except ImportError as e:
        if isinstance(e, ModuleNotFoundError) and e.name == _EXTENSION:
            reason = (
                f"dlcb-kernels was built without CUDA: {_EXTENSION} is absent (nvcc was not "
                "found at build time, or the build had DLCB_ENABLE_CUDA=OFF)"
            )
        else:
            reason = f"{_EXTENSION} failed to import: {e}"
        return CudaStatus(False, reason, 0, None, None), None
    s = _diagnose(ext)
    return s, ext if s.available else None


def status() -> CudaStatus:
    """Whether CUDA is usable, with a specific reason; computed once per process."""
    return _load()[0]


def module() -> ModuleType:
    """The ``dlcb_kernels._cuda`` extension, or RuntimeError("CUDA is unavailable: <reason>")."""
    s, ext = _load()
    if ext is None:
        raise RuntimeError(f"CUDA is unavailable: {s.reason}")
    return ext


def _visible_device(index: int, name: str) -> ModuleType:
    """The extension, once CUDA is known usable and device ``index`` exists."""
    ext = module()
    count = status().device_count
    if index >= count:
        raise ValueError(f"{name}={index} is out of range: {count} CUDA device(s) visible")
    return ext


def device_properties(index: int = 0) -> dict[str, Any]:
    """Static properties of device ``index``: name, compute capability, SM count, clocks (kHz),
    memory bus width, L2, memory and shared-memory sizes (bytes), PCI bus id."""
    index = require_int(index, "index", 0)
    return _visible_device(index, "index").device_properties(index)


def synchronize(device: int = 0) -> None:
    """Wait for all work queued on ``device``; raises RuntimeError for a kernel that failed."""
    device = require_int(device, "device", 0)
    _visible_device(device, "device").synchronize(device)


class L2Flusher:
    """One device buffer, allocated once, that :meth:`flush` overwrites so that the L2 holds
    none of the next timed kernel's data (cold-cache timing). ``nbytes=0`` sizes it at twice
    the device's L2; the buffer is freed when the object is collected."""

    def __init__(self, device: int = 0, nbytes: int = 0) -> None:
        device = require_int(device, "device", 0)
        nbytes = require_int(nbytes, "nbytes", 0)
        self._impl = _visible_device(device, "device").L2Flusher(device, nbytes)

    @property
    def device(self) -> int:
        return self._impl.device

    @property
    def nbytes(self) -> int:
        """Buffer size in bytes (the request rounded up to a multiple of 16)."""
        return self._impl.nbytes

    def flush(self, stream: int = 0) -> None:
        """Queue the overwrite on ``stream``, a cudaStream_t handle of this device as an int
        (``torch.cuda.Stream.cuda_stream``, ``cupy.cuda.Stream.ptr``); 0 is the default stream."""
        self._impl.flush(require_int(stream, "stream", 0))
