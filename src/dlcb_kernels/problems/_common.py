"""What every problem type shares: argument checks, construction from a record's params, and
the error measure of a result against its float64 reference."""

from __future__ import annotations

import dataclasses

import numpy as np

DTYPES = ("float32", "float16", "bfloat16")

# Unit roundoff of each dtype: a correct kernel that accumulates in float32 and rounds its
# result once is off by at most this much relative to each element.
UNIT_ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}

# How far above rms(ref) the largest element of a result typically lies: the output rounding
# of that element, relative to rms(ref), is what the check sees.
_PEAK_TO_RMS = 5.0


def itemsize(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """Host values representable in `dtype`: float32 and float16 as numpy arrays of that type;
    bfloat16 (which numpy lacks) as float32 arrays holding values rounded to bfloat16, which the
    GPU implementations narrow exactly."""
    if dtype == "float32":
        return values.astype(np.float32)
    if dtype == "float16":
        return values.astype(np.float16)
    from ..device_array import bfloat16_round

    return bfloat16_round(values.astype(np.float32))


def output_rounding(dtype: str) -> float:
    """The check's allowance for rounding the result to `dtype` (0 for float32, whose
    tolerances already cover it)."""
    return 0.0 if dtype == "float32" else _PEAK_TO_RMS * UNIT_ROUNDOFF[dtype]


def check_dims(problem, names, minimum: int) -> None:
    """Each named field is an int >= minimum (numpy ints are converted, bools refused)."""
    kind = type(problem).__name__
    for name in names:
        value = getattr(problem, name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{kind}.{name} must be an int, got {type(value).__name__}")
        if value < minimum:
            raise ValueError(f"{kind}.{name} must be >= {minimum}, got {value}")
        object.__setattr__(problem, name, int(value))


def check_choice(problem, name: str, choices) -> None:
    value = getattr(problem, name)
    if value not in choices:
        raise ValueError(f"{type(problem).__name__}.{name} must be one of {', '.join(choices)}; got {value!r}")


def check_flag(problem, name: str) -> None:
    """A bool field, or "true"/"false" as `dlcb bench --problem` passes it."""
    value = getattr(problem, name)
    if isinstance(value, str) and value.lower() in ("true", "false"):   # from the CLI
        object.__setattr__(problem, name, value.lower() == "true")
    elif not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{type(problem).__name__}.{name} must be a bool, got {type(value).__name__}")


def from_params(cls, params: dict):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(params) - fields
    if unknown:
        raise ValueError(f"unknown {cls.__name__} parameters: {sorted(unknown)}")
    return cls(**params)


def sample(count: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most `limit` of `count` items, the same for the same seed."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def relative_error(result: np.ndarray, ref: np.ndarray) -> float:
    """max |result - ref| / rms(ref); inf for a wrong shape or any non-finite difference."""
    if result is None or np.shape(result) != ref.shape:
        return float("inf")
    scale = float(np.sqrt(np.mean(ref * ref))) if ref.size else 1.0
    diff = np.abs(np.asarray(result, dtype=np.float64) - ref)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    return float(diff.max(initial=0.0)) / (scale or 1.0)
