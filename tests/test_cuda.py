"""dlcb_kernels.cuda and the _cuda extension. Most tests run everywhere (no GPU, no driver);
those that need a device skip with the reason CUDA is unavailable."""

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from dlcb_kernels import cuda

STATUS = cuda.status()
requires_gpu = pytest.mark.skipif(
    not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}"
)
requires_extension = pytest.mark.skipif(
    importlib.util.find_spec("dlcb_kernels._cuda") is None,
    reason="dlcb_kernels._cuda is not built (test_extension_built_when_nvcc_present: should it be?)",
)


def test_import_is_lazy():
    code = "import sys, dlcb_kernels, dlcb_kernels.cuda; print('dlcb_kernels._cuda' in sys.modules)"
    # From outside the source tree, so the installed package is the one imported.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    assert out.stdout.strip() == "False"


def _has_nvidia_gpu() -> bool:
    """What cmake/cuda.cmake's AUTO looks for."""
    if os.path.exists("/dev/nvidia0"):
        return True
    if shutil.which("nvidia-smi") is None:
        return False
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "GPU" in out.stdout


def test_extension_built_when_asked_for():
    # CI builds with DLCB_ENABLE_CUDA=ON: a CUDA build that silently fell back to "no CUDA" must
    # fail here. AUTO builds it only where a GPU is (and nvcc works).
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH: the CUDA extension is optional")
    mode = os.environ.get("DLCB_ENABLE_CUDA", "AUTO").upper()
    if mode == "OFF" or (mode == "AUTO" and not _has_nvidia_gpu()):
        pytest.skip(f"DLCB_ENABLE_CUDA={mode} on a machine without an NVIDIA GPU: not built")
    assert importlib.util.find_spec("dlcb_kernels._cuda") is not None


def test_status_is_consistent():
    assert isinstance(STATUS, cuda.CudaStatus)
    assert isinstance(STATUS.reason, str) and STATUS.reason
    if STATUS.available:
        assert STATUS.device_count > 0
        assert STATUS.runtime_version > 0 and STATUS.driver_version > 0
    else:
        assert STATUS.device_count == 0
    assert cuda.status() is STATUS


def test_status_is_frozen():
    with pytest.raises(AttributeError):
        STATUS.available = True


@pytest.mark.skipif(STATUS.available, reason="CUDA is available here")
def test_module_raises_with_reason():
    with pytest.raises(RuntimeError, match="CUDA is unavailable: " + re.escape(STATUS.reason)):
        cuda.module()


INSUFFICIENT = "cudaErrorInsufficientDriver"


class _FakeExtension:
    def __init__(self, runtime, driver, count, error):
        self.runtime_version = lambda: runtime
        self.driver_version = lambda: driver
        self.device_count = lambda: (count, error)


@pytest.mark.parametrize(
    ("driver", "count", "error", "available", "reason"),
    [
        (0, 0, f"{INSUFFICIENT}: CUDA driver version is insufficient", False, "no CUDA driver"),
        (12040, 0, f"{INSUFFICIENT}: CUDA driver version is insufficient", False, "too old: it supports CUDA 12.4"),
        (13000, 0, "cudaErrorNoDevice: no CUDA-capable device is detected", False, "DEVICES '': does it hide"),
        (13000, 0, "cudaErrorUnknown: unknown error", False, "query failed: cudaErrorUnknown"),
        (13000, 2, "", True, "2 CUDA device(s) visible"),
    ],
)
def test_reasons_are_specific(monkeypatch, driver, count, error, available, reason):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    s = cuda._diagnose(_FakeExtension(13000, driver, count, error))
    assert s == cuda.CudaStatus(available, s.reason, count, 13000, driver)
    assert reason in s.reason


def test_reason_when_built_without_cuda(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", missing)
    s, ext = cuda._load.__wrapped__()
    assert ext is None and not s.available
    assert "built without CUDA" in s.reason and "DLCB_ENABLE_CUDA=OFF" in s.reason


def test_reason_when_import_fails(monkeypatch):
    def broken(name):
        raise ImportError("libfoo.so: cannot open shared object file")

    monkeypatch.setattr(importlib, "import_module", broken)
    s, _ = cuda._load.__wrapped__()
    assert not s.available and "failed to import: libfoo.so" in s.reason


@pytest.mark.parametrize("bad", ["0", 0.0, True, None])
def test_device_properties_rejects_non_int(bad):
    with pytest.raises(TypeError, match="index must be an int"):
        cuda.device_properties(bad)


def test_device_properties_rejects_negative():
    with pytest.raises(ValueError, match="index must be >= 0"):
        cuda.device_properties(-1)


def test_device_properties_out_of_range():
    # numpy integers are accepted as indices.
    index = np.int64(STATUS.device_count)
    if STATUS.available:
        with pytest.raises(ValueError, match=f"index={index} is out of range"):
            cuda.device_properties(index)
    else:
        with pytest.raises(RuntimeError, match="CUDA is unavailable"):
            cuda.device_properties(index)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"device": 0.5}, TypeError, "device must be an int"),
        ({"nbytes": "1"}, TypeError, "nbytes must be an int"),
        ({"device": -1}, ValueError, "device must be >= 0"),
        ({"nbytes": -1}, ValueError, "nbytes must be >= 0"),
    ],
)
def test_l2_flusher_validates(kwargs, error, message):
    with pytest.raises(error, match=message):
        cuda.L2Flusher(**kwargs)


@requires_extension
def test_extension_imports_and_explains_zero_devices():
    ext = importlib.import_module("dlcb_kernels._cuda")
    assert ext.runtime_version() >= 11000
    assert ext.driver_version() >= 0
    count, error = ext.device_count()
    assert isinstance(count, int) and isinstance(error, str)
    if count == 0:
        assert error.startswith("cudaError")
    else:
        assert error == ""


@requires_extension
def test_extension_raises_runtime_error_not_crash():
    ext = importlib.import_module("dlcb_kernels._cuda")
    bad = ext.device_count()[0]  # one past the last device (0 where there is none)
    calls = (lambda: ext.device_properties(bad), lambda: ext.L2Flusher(bad), lambda: ext.synchronize(bad))
    for call in calls:
        with pytest.raises(RuntimeError, match="failed: cudaError"):
            call()
    with pytest.raises(ValueError, match="nbytes must be >= 0"):
        ext.L2Flusher(0, -1)


@requires_gpu
def test_device_properties_are_sane():
    for index in range(STATUS.device_count):
        p = cuda.device_properties(index)
        assert p["index"] == index
        assert p["name"]
        assert p["compute_capability"] == f"{p['major']}.{p['minor']}" and p["major"] >= 3
        for key in (
            "sm_count",
            "max_sm_clock_khz",
            "memory_clock_khz",
            "memory_bus_width_bits",
            "l2_cache_bytes",
            "total_memory_bytes",
            "shared_memory_per_sm_bytes",
        ):
            assert p[key] > 0, key
        assert re.fullmatch(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]", p["pci_bus_id"], re.I)


@requires_gpu
def test_l2_flusher_default_size_and_flush():
    l2 = cuda.device_properties(0)["l2_cache_bytes"]
    f = cuda.L2Flusher(0)
    assert f.device == 0 and f.nbytes >= 2 * l2 and f.nbytes % 16 == 0
    for _ in range(3):
        f.flush()
    cuda.synchronize(0)


@requires_gpu
def test_l2_flusher_rounds_small_size_up():
    f = cuda.L2Flusher(0, nbytes=1000)
    assert f.nbytes == 1008
    f.flush(stream=0)
    cuda.synchronize(0)
