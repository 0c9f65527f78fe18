"""What every problem type shares: argument checks, construction from a record's params, and
the error measure of a result against its float64 reference."""

from __future__ import annotations

import dataclasses

import numpy as np

DTYPES = ("float32",)


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
