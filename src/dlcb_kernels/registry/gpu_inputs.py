"""A problem's inputs on the GPU, made once per problem and device and shared by every GPU
implementation (ours and the vendors' run on the very same buffers).

The host inputs come from problem.make_inputs(): float32 and float16 numpy arrays, and
bfloat16 values held in float32 arrays (numpy has no bfloat16). On the device they are CuPy
arrays, bfloat16 ones as BFloat16Array wrappers around uint16 bit patterns (CuPy has no
bfloat16 either); torch reads the same memory through DLPack.
"""

from __future__ import annotations

import numpy as np

from .. import cuda
from ..device_array import BFloat16Array, bfloat16_bits

_KEY = "_device_copies"


def gpu_unavailable_reason(problem=None) -> str | None:
    """Why GPU implementations cannot run here (no extension, no device, no CuPy), else None."""
    status = cuda.status()
    if not status.available:
        return f"unavailable: {status.reason}"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "unavailable: CuPy is not installed (it holds the GPU buffers); install dlcb-kernels[gpu]"
    return None


def _to_device(value, dtype: str):
    import cupy

    if isinstance(value, dict):
        return {name: _to_device(v, dtype) for name, v in value.items()}
    if value is None:
        return None
    if dtype == "bfloat16":
        return BFloat16Array(cupy.asarray(bfloat16_bits(value)))
    return cupy.asarray(np.ascontiguousarray(value))


def device_inputs(problem, inputs: dict, device: int) -> dict:
    """The GPU copies of `inputs` on `device` (made on first use, then cached in `inputs`)."""
    import cupy

    copies = inputs.setdefault(_KEY, {})
    if device not in copies:
        with cupy.cuda.Device(device):
            copies[device] = {name: _to_device(value, problem.dtype)
                              for name, value in inputs.items() if name != _KEY}
            cupy.cuda.Device(device).synchronize()
    return copies[device]


def host_inputs(inputs: dict) -> dict:
    """`inputs` without the device copies (what the reference check reads)."""
    return {name: value for name, value in inputs.items() if name != _KEY}


def torch_view(array):
    """A torch tensor sharing the memory of a CuPy array or BFloat16Array (zero copy)."""
    import torch

    if isinstance(array, BFloat16Array):
        return torch.from_dlpack(array.bits).view(torch.bfloat16)
    return torch.from_dlpack(array)
