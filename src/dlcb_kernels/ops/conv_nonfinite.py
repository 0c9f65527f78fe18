"""Non-finite weights or output gradients in a convolution: the contribution of each such value
computed over the real taps only, so that no algorithm multiplies it by zero padding.

Every CPU algorithm reads zero padding as numbers (im2col columns, zero-padded planes, dy padded
for the flipped forward), and 0 * inf is NaN: one infinite weight would turn the borders of y
or dx into NaN where the convolution's definition (and PyTorch) has finite values, and which
borders depended on the algorithm. The callers run the native kernel with the non-finite values
replaced by zero, then add what those values contribute here: per filter tap, one small GEMM
(einsum) between the non-finite values and the input pixels that tap really reads. Results then
do not depend on the algorithm; only where both operands hold non-finite values can a finite
value's zero stand-in meet an infinity (a NaN either way).
"""

from __future__ import annotations

import numpy as np


def split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(a with non-finite values zeroed, those values with the rest zeroed), or (a, None) when a is
    finite (the common case, one pass over a)."""
    finite = np.isfinite(a)
    if finite.all():
        return a, None
    return np.where(finite, a, np.float32(0)), np.where(finite, np.float32(0), a)


def _taps(r, s, p, q, h, w, stride, padding, dilation):
    """For each filter tap (i, j): the output rows [p0, p1) and columns [q0, q1) whose input pixel
    is real, and the slices of the input those outputs read."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    for i in range(r):
        p0, p1 = _valid(p, h, sh, ph, i * dh)
        for j in range(s):
            q0, q1 = _valid(q, w, sw, pw, j * dw)
            if p1 > p0 and q1 > q0:
                rows = slice(p0 * sh - ph + i * dh, (p1 - 1) * sh - ph + i * dh + 1, sh)
                cols = slice(q0 * sw - pw + j * dw, (q1 - 1) * sw - pw + j * dw + 1, sw)
                yield i, j, slice(p0, p1), slice(q0, q1), rows, cols


def _valid(out_size, in_size, stride, pad, offset):
    """Outputs o in [o0, o1) with 0 <= o * stride - pad + offset < in_size."""
    lo = max(0, -(-(pad - offset) // stride))
    hi = min(out_size, (in_size - 1 + pad - offset) // stride + 1)
    return lo, max(lo, hi)


def add_forward(y, x, w_bad, stride, padding, dilation, groups) -> None:
    """y += the part of conv(x, w) that the non-finite weights w_bad (zero elsewhere) contribute."""
    k, cg, r, s = w_bad.shape
    kg = k // groups
    for i, j, ps, qs, rows, cols in _taps(r, s, y.shape[2], y.shape[3], x.shape[2], x.shape[3], stride, padding,
                                          dilation):
        for g in range(groups):
            tap = w_bad[g * kg:(g + 1) * kg, :, i, j]
            if tap.any():
                y[:, g * kg:(g + 1) * kg, ps, qs] += np.einsum(
                    "nchw,kc->nkhw", x[:, g * cg:(g + 1) * cg, rows, cols], tap, optimize=True)


def add_backward_data(dx, dy, w_bad, stride, padding, dilation, groups) -> None:
    """dx += the part of the input gradient that the non-finite weights w_bad contribute."""
    k, cg, r, s = w_bad.shape
    kg = k // groups
    for i, j, ps, qs, rows, cols in _taps(r, s, dy.shape[2], dy.shape[3], dx.shape[2], dx.shape[3], stride,
                                          padding, dilation):
        for g in range(groups):
            tap = w_bad[g * kg:(g + 1) * kg, :, i, j]
            if tap.any():
                dx[:, g * cg:(g + 1) * cg, rows, cols] += np.einsum(
                    "nkpq,kc->ncpq", dy[:, g * kg:(g + 1) * kg, ps, qs], tap, optimize=True)


def add_backward_filter(dw, x, dy_bad, stride, padding, dilation, groups) -> None:
    """dw += the part of the filter gradient that the non-finite output gradients dy_bad (zero
    elsewhere) contribute."""
    k, cg, r, s = dw.shape
    kg = k // groups
    for i, j, ps, qs, rows, cols in _taps(r, s, dy_bad.shape[2], dy_bad.shape[3], x.shape[2], x.shape[3], stride,
                                          padding, dilation):
        for g in range(groups):
            part = dy_bad[:, g * kg:(g + 1) * kg, ps, qs]
            if part.any():
                dw[g * kg:(g + 1) * kg, :, i, j] += np.einsum(
                    "nkpq,ncpq->kc", part, x[:, g * cg:(g + 1) * cg, rows, cols], optimize=True)
