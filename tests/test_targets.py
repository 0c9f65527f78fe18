"""Where a benchmark runs: device parsing, and how the CUDA target picks its timer (checked
with stand-ins for the extension and the event timer, so it runs without a GPU)."""

import types

import pytest

from dlcb_kernels import cuda, targets
from dlcb_kernels.measure import cuda_timer


def test_parse_device():
    assert targets.parse_device("cpu") == ("cpu", 0)
    expected_auto = ("cuda", 0) if cuda.status().available else ("cpu", 0)
    assert targets.parse_device("auto") == expected_auto
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
        targets.parse_device("tpu")
    if not cuda.status().available:
        with pytest.raises(ValueError, match="CUDA is unavailable"):
            targets.parse_device("cuda:0")


class FakeTimer:
    """Stands in for CudaEventTimer: every call 'takes' the class's per_call seconds."""

    per_call = 1e-3

    def __init__(self, device, stream, mode="single", batch=1):
        self.device, self.stream, self.mode, self.batch = device, stream, mode, batch
        self.name = f"{mode} x{batch}"

    def synchronize(self):
        pass

    def time(self, fn):
        return self.per_call


@pytest.fixture
def cuda_target(monkeypatch):
    stream = types.SimpleNamespace(handle=77, synchronize=lambda: None)
    monkeypatch.setattr(cuda, "module", lambda: types.SimpleNamespace(Stream=lambda index: stream))
    monkeypatch.setattr(cuda_timer, "CudaEventTimer", FakeTimer)

    def make(timing="auto", per_call=1e-3):
        FakeTimer.per_call = per_call
        return targets.CudaTarget(0, timing)

    return make


def test_cuda_timer_choice(cuda_target):
    target = cuda_target(per_call=2e-3)
    assert target.prepare_kwargs() == {"device": 0, "stream": 77}
    timer = target.timer_for(lambda: None)
    assert (timer.mode, timer.batch, timer.stream) == ("single", 1, 77)
    short = cuda_target(per_call=10e-6).timer_for(lambda: None)
    assert (short.mode, short.batch) == ("batched", 100)      # >= 1 ms of calls per sample
    assert cuda_target("graph", per_call=10e-6).timer_for(lambda: None).mode == "graph"
    assert cuda_target("batched", per_call=5e-3).timer_for(lambda: None).mode == "batched"
    cold = cuda_target(per_call=10e-6).timer_for(lambda: None, "cold")
    assert (cold.mode, cold.batch) == ("single", 1)          # only a single call after a flush is cold
    with pytest.raises(ValueError, match="timing must be one of"):
        cuda_target("fast")


def test_cublas_that_cupy_cannot_load_is_unavailable_not_an_error(monkeypatch):
    # CuPy 14 loads libcublas when cupy.cuda.cublas is first imported: an ImportError there
    # must make the baseline unavailable instead of escaping from prepare() and ending the bench.
    import sys

    from dlcb_kernels.registry import cupy_vendor

    def missing_library(name):  # what cupy.cuda's lazy loader raises without libcublas
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError('Failure finding "libcublasLt.so.13 or libcublasLt.so.12"')

    monkeypatch.setattr(cupy_vendor, "gpu_unavailable_reason", lambda problem=None: None)
    fake_cuda = types.ModuleType("cupy.cuda")
    fake_cuda.__getattr__ = missing_library
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.cuda = fake_cuda
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", fake_cuda)
    assert cupy_vendor._unavailable().startswith("unavailable: CuPy cannot load cuBLAS: Failure finding")
    fake_cuda.cublas = types.ModuleType("cupy.cuda.cublas")
    assert cupy_vendor._unavailable() is None
