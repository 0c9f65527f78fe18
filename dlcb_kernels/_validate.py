"""Argument checks shared by the public kernel entry points.

Every check raises TypeError (wrong kind of value) or ValueError (right kind, bad value) with a
message that names the argument, before anything reaches native code.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np


def require_array(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        if hasattr(x, "__cuda_array_interface__") or hasattr(x, "__dlpack_device__"):
            raise TypeError(
                f"{name} is a {type(x).__module__}.{type(x).__name__}, not a numpy array: "
                "only the CPU backend is available in this version"
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
    """x itself when every stride is a whole number of elements, else a contiguous copy."""
    if all(s % x.itemsize == 0 for s in x.strides):
        return x
    return np.ascontiguousarray(x)


def require_bool(x, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(x).__name__}")
    return bool(x)


def require_real(x, name: str) -> float:
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


def require_threads(threads, default: int) -> int:
    """None -> `default`; otherwise a positive int."""
    return default if threads is None else require_int(threads, "threads", 1)


def require_choice(x, name: str, choices) -> str:
    if not isinstance(x, str):
        raise TypeError(f"{name} must be a str, got {type(x).__name__}")
    if x not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {x!r}")
    return x
