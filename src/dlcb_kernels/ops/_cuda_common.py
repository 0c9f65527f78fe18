"""What the GPU entry points share: turning arguments into DeviceArrays with checks that name
the argument, the device's compute capability, output allocation, and picking a variant."""

from __future__ import annotations

import functools

from .. import cuda
from .._validate import require_int
from ..device_array import DeviceArray, as_device_array, empty_like_library, zeros_bytes

DTYPE_CODES = {"float32": 0, "float16": 1, "bfloat16": 2}


@functools.cache
def compute_capability(device: int) -> int:
    """10 * major + minor of `device` (90 for an H100)."""
    props = cuda.device_properties(device)
    return 10 * props["major"] + props["minor"]


def device_arrays(named: dict, dtypes=tuple(DTYPE_CODES)) -> dict[str, DeviceArray]:
    """{name: DeviceArray} for the GPU arrays in `named` (None values skipped), all of one
    dtype among `dtypes` and on one device."""
    views = {name: as_device_array(x, name) for name, x in named.items() if x is not None}
    first_name, first = next(iter(views.items()))
    for name, view in views.items():
        if view.dtype not in dtypes:
            raise TypeError(f"{name} has dtype {view.dtype}; the GPU kernels take {', '.join(dtypes)}")
        if view.dtype != first.dtype:
            raise TypeError(f"{name} has dtype {view.dtype} but {first_name} has {first.dtype}: "
                            "convert them to one dtype")
        if view.device != first.device:
            raise ValueError(f"{name} is on cuda:{view.device} but {first_name} is on cuda:{first.device}")
    return views


def native_module(device: int):
    """The CUDA extension, once the arguments are checked: RuntimeError with the reason when
    the extension, a driver or the device is missing."""
    ext = cuda.module()
    if device >= cuda.status().device_count:
        raise ValueError(f"the arrays are on cuda:{device}, which is not visible here")
    return ext


def require_contiguous(view: DeviceArray, name: str) -> None:
    if not view.is_c_contiguous():
        raise ValueError(f"{name} must be C-contiguous on the GPU (strides {view.strides} elements); "
                         "make a contiguous copy first")


def require_shape(view: DeviceArray, name: str, shape: tuple) -> None:
    if view.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {view.shape}")


def require_writable_output(view: DeviceArray, name: str, inputs: dict[str, DeviceArray]) -> None:
    if view.readonly:
        raise ValueError(f"{name} is read-only")
    lo, hi = view.span()
    for other_name, other in inputs.items():
        olo, ohi = other.span()
        if lo < ohi and olo < hi:
            raise ValueError(f"{name} shares memory with {other_name}: the result would overwrite its own input")


def output(out, name: str, template: DeviceArray, shape: tuple, dtype: str, inputs: dict[str, DeviceArray]):
    """(array, view): `out` checked (C-contiguous, shape, dtype, device, no overlap), or a new
    array from the inputs' library."""
    if out is None:
        array = empty_like_library(template, shape, dtype)
        return array, as_device_array(array, name)
    view = as_device_array(out, name)
    if view.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {view.dtype}")
    if view.device != template.device:
        raise ValueError(f"{name} is on cuda:{view.device} but the inputs are on cuda:{template.device}")
    require_shape(view, name, shape)
    require_contiguous(view, name)
    require_writable_output(view, name, inputs)
    return out, view


def stream_handle(stream) -> int:
    """A cudaStream_t as an int: None or 0 is the legacy default stream; CuPy and torch stream
    objects are accepted too."""
    if stream is None:
        return 0
    for attribute in ("ptr", "cuda_stream", "handle"):
        if hasattr(stream, attribute) and not isinstance(stream, int):
            return require_int(getattr(stream, attribute), "stream", 0)
    return require_int(stream, "stream", 0)


class NativeCall:
    """One fully checked call of a native kernel entry point: calling it queues the kernel and
    nothing else (the checks that built it cost tens of microseconds, which repeated calls,
    timed ones above all, should not pay again)."""

    def __init__(self, function, variant: str, args: dict, device: int, stream: int):
        self.function, self.variant, self.args = function, variant, args
        self.device, self.stream = device, stream

    def __call__(self) -> None:
        self.function(self.variant, self.args, self.device, self.stream)


def pick_variant(variant: str, candidates: list[str], reason_of, what: str) -> str:
    """`variant` itself when it can run (ValueError with its reason otherwise); for "auto" the
    first candidate that can."""
    if variant != "auto":
        reason = reason_of(variant)
        if reason:
            raise ValueError(f"{what}: variant {variant!r} cannot run these arguments: {reason}")
        return variant
    reasons = []
    for name in candidates:
        reason = reason_of(name)
        if not reason:
            return name
        reasons.append(f"{name}: {reason}")
    raise ValueError(f"{what}: no variant can run these arguments ({'; '.join(reasons)})")


_WORKSPACES: dict[int, tuple[int, object]] = {}


def workspace_pointer(template: DeviceArray, nbytes: int) -> int:
    """Device memory of at least nbytes on template's device, kept for the process and reused:
    a kernel queued on any stream may still be using it when the call returns, so it is never
    handed back to an allocator while work could be pending (growing it waits for the device)."""
    if nbytes <= 0:
        return 0
    size, buffer = _WORKSPACES.get(template.device, (0, None))
    if size < nbytes:
        if buffer is not None:
            cuda.synchronize(template.device)
        buffer = zeros_bytes(template, nbytes)
        _WORKSPACES[template.device] = (nbytes, buffer)
    return int(buffer.data.ptr) if hasattr(buffer, "data") and hasattr(buffer.data, "ptr") else int(buffer.data_ptr())
