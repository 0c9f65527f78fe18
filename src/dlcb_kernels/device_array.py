"""Arrays in GPU memory, whoever made them: CuPy, PyTorch, JAX, Numba, or anything else that
speaks DLPack or the CUDA Array Interface. The GPU entry points see only a DeviceArray: a
pointer, shape, strides in elements, dtype and device, with the producing object kept alive.

DLPack comes first (it carries the device and bfloat16); the CUDA Array Interface is the
fallback (it has no bfloat16 and no device index, so the device is asked of the pointer).

bfloat16 data held as 16-bit integers (CuPy has no bfloat16 dtype) is passed by wrapping it:
``as_bfloat16(bits)``. Results come back as the inputs' library makes them: CuPy arrays, torch
tensors, or BFloat16Array wrappers around CuPy uint16 arrays.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

GPU_DTYPES = ("float32", "float16", "bfloat16")

# DLPack's device types and type codes (dlpack.h, version 0.8 and later).
_DL_CPU, _DL_CUDA, _DL_CUDA_MANAGED = 1, 2, 13
_DL_INT, _DL_UINT, _DL_FLOAT, _DL_BFLOAT = 0, 1, 2, 4


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@dataclass(frozen=True)
class DeviceArray:
    """A view of GPU memory. `strides` are in elements; `owner` keeps the memory alive."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str
    device: int
    readonly: bool
    library: str        # "cupy", "torch", ... (the producing object's top-level module)
    owner: Any

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 2

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def is_c_contiguous(self) -> bool:
        expected = 1
        for extent, stride in zip(reversed(self.shape), reversed(self.strides)):
            if extent != 1 and stride != expected:
                return False
            expected *= extent
        return True

    def span(self) -> tuple[int, int]:
        """[first, last) byte addresses this view can touch."""
        if self.size == 0:
            return self.ptr, self.ptr
        low = sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        high = sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        return self.ptr + low * self.itemsize, self.ptr + (high + 1) * self.itemsize


class BFloat16Array:
    """bfloat16 values held as the bit patterns of a 16-bit integer GPU array (CuPy has no
    bfloat16 dtype). The GPU entry points read and write it as bfloat16; `bits` is the array."""

    def __init__(self, bits):
        view = _parse(bits, "bits", allow_integer16=True)
        if view.dtype not in ("uint16", "int16"):
            raise TypeError(f"bits must be a 16-bit integer GPU array, got dtype {view.dtype}")
        self.bits = bits

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.bits.shape)

    dtype = "bfloat16"

    def __repr__(self) -> str:
        return f"BFloat16Array(shape={self.shape}, bits={type(self.bits).__module__}.{type(self.bits).__name__})"


def as_bfloat16(bits) -> BFloat16Array:
    """Marks a 16-bit integer GPU array (e.g. cupy uint16) as holding bfloat16 bit patterns."""
    return BFloat16Array(bits)


def is_device_array(x) -> bool:
    """Whether x lives in GPU memory (and is not a numpy array): the GPU path takes it."""
    if isinstance(x, (np.ndarray, BFloat16Array)):
        return isinstance(x, BFloat16Array)
    if hasattr(x, "__dlpack_device__"):
        try:
            device_type, _ = x.__dlpack_device__()
        except Exception:  # noqa: BLE001 - a producer that cannot say is not a GPU array
            return False
        return int(device_type) in (_DL_CUDA, _DL_CUDA_MANAGED)
    return hasattr(x, "__cuda_array_interface__")


def as_device_array(x, name: str) -> DeviceArray:
    """The DeviceArray view of a GPU array; TypeError naming `name` for anything else."""
    if isinstance(x, BFloat16Array):
        bits = _parse(x.bits, name, allow_integer16=True)
        return DeviceArray(bits.ptr, bits.shape, bits.strides, "bfloat16", bits.device, bits.readonly,
                           bits.library, x)
    return _parse(x, name, allow_integer16=False)


def _library(x) -> str:
    return type(x).__module__.split(".")[0]


def _parse(x, name: str, *, allow_integer16: bool) -> DeviceArray:
    if isinstance(x, np.ndarray):
        raise TypeError(f"{name} is a numpy array (host memory) but other arguments are on the GPU; "
                        "pass all arrays on the same device")
    if hasattr(x, "__dlpack_device__") and hasattr(x, "__dlpack__"):
        device_type, device_id = (int(v) for v in x.__dlpack_device__())
        if device_type in (_DL_CUDA, _DL_CUDA_MANAGED):
            return _from_dlpack(x, name, device_id, allow_integer16)
        if not hasattr(x, "__cuda_array_interface__"):
            raise TypeError(f"{name} is not in GPU memory (DLPack device type {device_type}, "
                            f"{'CPU' if device_type == _DL_CPU else 'not CUDA'})")
    if hasattr(x, "__cuda_array_interface__"):
        return _from_cuda_array_interface(x, name, allow_integer16)
    raise TypeError(f"{name} must be a GPU array (CuPy, torch.cuda, or any DLPack / CUDA Array Interface "
                    f"producer), got {type(x).__module__}.{type(x).__name__}")


def _dtype_name(kind: str, bits: int, name: str, allow_integer16: bool) -> str:
    if kind == "f" and bits == 32:
        return "float32"
    if kind == "f" and bits == 16:
        return "float16"
    if kind == "bf" and bits == 16:
        return "bfloat16"
    if allow_integer16 and kind in ("u", "i") and bits == 16:
        return "uint16" if kind == "u" else "int16"
    hint = " (bfloat16 bits in a 16-bit integer array: wrap it with dlcb_kernels.as_bfloat16)" \
        if kind in ("u", "i") and bits == 16 else ""
    raise TypeError(f"{name} must have dtype float32, float16 or bfloat16, got {kind}{bits}{hint}")


def _from_dlpack(x, name: str, device_id: int, allow_integer16: bool) -> DeviceArray:
    # stream=1: the legacy default stream, on which the kernels are queued (DLPack asks the
    # producer to order its pending work before that stream).
    try:
        capsule = x.__dlpack__(stream=1)
    except TypeError:
        capsule = x.__dlpack__()
    # The capsule is read, not consumed: it keeps its name, so when it is collected (with the
    # DeviceArray that holds it) its destructor calls the producer's deleter.
    address = _capsule_pointer(capsule, b"dltensor")
    tensor = _DLTensor.from_address(address)  # DLManagedTensor starts with its DLTensor
    if tensor.dtype.lanes != 1:
        raise TypeError(f"{name} has a vector dtype ({tensor.dtype.lanes} lanes)")
    kind = {_DL_FLOAT: "f", _DL_BFLOAT: "bf", _DL_INT: "i", _DL_UINT: "u"}.get(tensor.dtype.code, "?")
    dtype = _dtype_name(kind, tensor.dtype.bits, name, allow_integer16)
    shape = tuple(int(tensor.shape[i]) for i in range(tensor.ndim))
    if tensor.strides:
        strides = tuple(int(tensor.strides[i]) for i in range(tensor.ndim))
    else:
        strides = _contiguous_strides(shape)
    ptr = (tensor.data or 0) + int(tensor.byte_offset)
    readonly = bool(getattr(getattr(x, "flags", None), "writeable", True) is False)
    return DeviceArray(ptr, shape, strides, dtype, device_id, readonly, _library(x), (x, capsule))


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for extent in reversed(shape):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))


def _from_cuda_array_interface(x, name: str, allow_integer16: bool) -> DeviceArray:
    cai = x.__cuda_array_interface__
    typestr = cai["typestr"]
    if typestr[0] == ">":
        raise TypeError(f"{name} has byte order {typestr!r}; only little-endian arrays run on the GPU")
    kind, nbytes = typestr[1], int(typestr[2:])
    dtype = _dtype_name(kind, 8 * nbytes, name, allow_integer16)
    shape = tuple(int(v) for v in cai["shape"])
    if cai.get("strides") is None:
        strides = _contiguous_strides(shape)
    else:
        byte_strides = tuple(int(v) for v in cai["strides"])
        if any(s % nbytes for s in byte_strides):
            raise ValueError(f"{name} has strides {byte_strides} bytes, not whole elements")
        strides = tuple(s // nbytes for s in byte_strides)
    ptr, readonly = cai["data"]
    device_attr = getattr(x, "device", None)
    device = getattr(device_attr, "id", getattr(device_attr, "index", None))
    if device is None:
        from . import cuda

        device = cuda.module().pointer_device(int(ptr)) if ptr else 0
    return DeviceArray(int(ptr or 0), shape, strides, dtype, int(device), bool(readonly), _library(x), x)


# Allocating results with the inputs' library ---------------------------------------------

def empty_like_library(template: DeviceArray, shape: tuple[int, ...], dtype: str):
    """A new C-contiguous GPU array of `shape` and `dtype` on template's device, made by
    template's library (CuPy or torch); ValueError when that library cannot be used."""
    if template.library == "cupy":
        import cupy

        with cupy.cuda.Device(template.device):
            if dtype == "bfloat16":
                return BFloat16Array(cupy.empty(shape, dtype=cupy.uint16))
            return cupy.empty(shape, dtype=dtype)
    if template.library == "torch":
        import torch

        torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
        return torch.empty(shape, dtype=torch_dtype, device=f"cuda:{template.device}")
    raise ValueError(f"cannot allocate a result for {template.library} arrays: pass out= "
                     "(a C-contiguous GPU array of the result's shape and dtype)")


def zeros_bytes(template: DeviceArray, nbytes: int):
    """Scratch space of nbytes on template's device (made by CuPy when installed, else torch)."""
    nbytes = max(int(nbytes), 1)
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        with cupy.cuda.Device(template.device):
            return cupy.empty(nbytes, dtype=cupy.uint8)
    import torch

    return torch.empty(nbytes, dtype=torch.uint8, device=f"cuda:{template.device}")


def to_host(x) -> np.ndarray:
    """A numpy copy of a GPU array (bfloat16 widened to float32, exactly); numpy passes through."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, BFloat16Array):
        bits = to_host(x.bits).astype(np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32)
    if _library(x) == "torch":
        import torch

        if x.dtype == torch.bfloat16:
            return x.detach().float().cpu().numpy()
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    raise TypeError(f"cannot copy a {type(x).__module__}.{type(x).__name__} to the host")


def bfloat16_round(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), still as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) of float32 values, rounded to nearest even."""
    return (bfloat16_round(x).view(np.uint32) >> np.uint32(16)).astype(np.uint16)
