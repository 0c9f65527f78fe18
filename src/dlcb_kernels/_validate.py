"""Argument checks shared by the public kernel entry points.

Every check raises TypeError (wrong kind of value) or ValueError (right kind, bad value) with a
message that names the argument, before anything reaches native code.
"""

from __future__ import annotations

import numbers
import operator
import os

import numpy as np

from . import _cpu


def require_array(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__cuda_array_interface__") or hasattr(x, "__dlpack_device__"):
            raise TypeError(
                f"{name} is a {type(x).__module__}.{type(x).__name__} (GPU memory) but the other "
                "arguments are numpy arrays: pass all arrays on the same device"
            )
        raise TypeError(
            f"{name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"convert it with numpy.asarray({name}, dtype=numpy.float32)"
        )
    return x


def require_dtype(x: np.ndarray, name: str, dtype) -> None:
    if x.dtype != np.dtype(dtype):
        raise TypeError(
            f"{name} must have dtype {np.dtype(dtype).name} (native byte order), got {x.dtype.str} "
            f"({x.dtype.name}); convert it explicitly with {name}.astype(numpy.{np.dtype(dtype).name})"
        )


def require_ndim(x: np.ndarray, name: str, ndim: int) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}")


def element_strided(x: np.ndarray) -> np.ndarray:
    """x itself when it is aligned and every stride is a whole number of elements, else a
    contiguous copy (native code reads floats at float boundaries only)."""
    if not x.flags.aligned:
        return np.array(x, order="C")
    item = x.itemsize
    for stride in x.strides:
        if stride % item:
            return np.ascontiguousarray(x)
    return x


def contiguous(x: np.ndarray) -> np.ndarray:
    """x itself when C-contiguous and aligned, else a copy that is: what the native kernels take
    (np.ascontiguousarray keeps an array that starts 1 byte into a buffer as it is)."""
    return np.require(x, requirements=("C", "A"))
    return np.ascontiguousarray(x)


def require_bool(x, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def require_real(x, name: str) -> float:
    if type(x) is float or type(x) is int:  # the common case, without the ABC check's cost
        return float(x)
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    return float(x)


def require_int(x, name: str, minimum: int) -> int:
    """An int (numpy integers too, never bool) that is at least `minimum`."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(x).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def require_threads(threads) -> int:
    """A kernel's thread count: None -> OpenMP's default (OMP_NUM_THREADS, else all cores);
    otherwise an int from 1 to the limit (4 per CPU this process can run on, at most 1024: more
    only oversubscribes, and a thread libgomp cannot create aborts the process)."""
    limit = _cpu.thread_limit()
    if threads is None:
        default = _cpu.omp_max_threads()
        if default > limit:
            raise ValueError(f"OMP_NUM_THREADS asks for {default} threads, more than the {limit} allowed here "
                             "(4 per CPU); set threads= or a smaller OMP_NUM_THREADS")
        return default
    value = require_int(threads, "threads", 1)
    if value > limit:
        raise ValueError(f"threads must be at most {limit} (4 per CPU this process can run on), got {value}")
    return value


def require_choice(x, name: str, choices) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, got {type(x).__name__}")
    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {x!r}")
    return x


def require_int_pair(x, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each at least `minimum`."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"{name} must be an int or a pair (height, width), got {tuple(x)!r}")
        pair = tuple(require_int(v, name, minimum=-(2**63)) for v in x)
    else:
        try:
            v = require_int(x, name, minimum=-(2**63))
        except TypeError:
            raise TypeError(
                f"{name} must be an int or a pair of ints (height, width), got {type(x).__name__}"
            ) from None
        pair = (v, v)
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {pair}")
    return pair


def shares_memory(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether x and y share memory; when the exact answer is too costly, assume they do."""
    try:
        return bool(np.shares_memory(x, y, max_work=100_000))
    except np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError:
        return True


def require_output(out, name: str, shape: tuple, dtype, inputs: dict) -> np.ndarray:
    """A writeable, C-contiguous array of exactly `shape` and `dtype` that shares no memory with
    any of `inputs` ({name: array})."""
    out = require_array(out, name)
    require_dtype(out, name, dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if not out.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous (strides {out.strides}); pass numpy.ascontiguousarray({name}) "
            "and read the result back from the return value"
        )
    for other_name, other in inputs.items():
        if shares_memory(out, other):
            raise ValueError(f"{name} shares memory with {other_name}: the result would overwrite its own input")
    return out


def physical_memory_bytes() -> int | None:
    """This machine's RAM, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(nbytes: int, what: str) -> None:
    """ValueError before a copy or allocation of nbytes that could never fit in this machine's
    RAM (what names the arguments that ask for it), instead of a MemoryError, or swapping, later."""
    total = physical_memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} would need {nbytes / 2**30:.4g} GiB, more than this machine's "
                         f"{total / 2**30:.4g} GiB of memory")
