"""Our CPU convolutions (forward, backward data, backward filter) against a float64 numpy
reference, against each other (adjoint identities), against torch when it imports, and their
argument checks."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dlcb_kernels as dk


# ---------------------------------------------------------------------------------------------
# float64 reference: one strided window view per filter tap (r, s), contracted with einsum.


def out_size(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def taps(x_padded, r, s, p, q, stride, dil):
    """x_padded[:, :, r*dh + oh*sh, s*dw + ow*sw] for every output pixel (oh, ow)."""
    (sh, sw), (dh, dw) = stride, dil
    return x_padded[:, :, r * dh: r * dh + sh * (p - 1) + 1: sh, s * dw: s * dw + sw * (q - 1) + 1: sw]


def ref_forward(x, w, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    k, cg, r_, s_ = w.shape
    p, q = out_size(h, r_, stride[0], pad[0], dil[0]), out_size(wd, s_, stride[1], pad[1], dil[1])
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    w64 = w.astype(np.float64)
    y = np.zeros((n, k, p, q))
    kg = k // groups
    for g in range(groups):
        xs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for r in range(r_):
            for s in range(s_):
                y[:, ks] += np.einsum("ncpq,kc->nkpq", taps(xp[:, xs], r, s, p, q, stride, dil), w64[ks, :, r, s])
    return y


def ref_backward_data(dy, w, x_shape, stride, pad, dil, groups):
    n, c, h, wd = x_shape
    k, cg, r_, s_ = w.shape
    p, q = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * pad[0], wd + 2 * pad[1]))
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    kg = k // groups
    for g in range(groups):
        xs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for r in range(r_):
            for s in range(s_):
                taps(dxp[:, xs], r, s, p, q, stride, dil)[...] += np.einsum("nkpq,kc->ncpq", dy64[:, ks], w64[ks, :, r, s])
    return dxp[:, :, pad[0]: pad[0] + h, pad[1]: pad[1] + wd]


def ref_backward_filter(x, dy, w_shape, stride, pad, dil, groups):
    k, cg, r_, s_ = w_shape
    p, q = dy.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    dy64 = dy.astype(np.float64)
    dw = np.zeros(w_shape)
    kg = k // groups
    for g in range(groups):
        xs, ks = slice(g * cg, (g + 1) * cg), slice(g * kg, (g + 1) * kg)
        for r in range(r_):
            for s in range(s_):
                dw[ks, :, r, s] = np.einsum("nkpq,ncpq->kc", dy64[:, ks], taps(xp[:, xs], r, s, p, q, stride, dil))
    return dw


def assert_close(got, want, terms):
    """Max error relative to the reference's rms, allowed to grow with sqrt(summed terms)."""
    assert got.shape == want.shape and got.dtype == np.float32
    rms = float(np.sqrt(np.mean(want**2))) if want.size else 0.0
    err = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    tol = 4e-7 * np.sqrt(max(terms, 1)) * 8
    assert err <= tol * max(rms, 1e-30), f"error {err:.3g} > {tol:.3g} * rms {rms:.3g}"


# ---------------------------------------------------------------------------------------------
# Shapes: (N, C, H, W, K, R, S, stride, padding, dilation, groups).

CASES = [
    (2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1),
    (1, 1, 7, 5, 1, 1, 1, 1, 0, 1, 1),  # C = K = 1, 1x1
    (2, 16, 9, 11, 33, 1, 1, 1, 0, 1, 1),  # 1x1 across the 14 x 32 tiles
    (2, 4, 6, 6, 30, 1, 1, 2, 0, 1, 1),  # 1x1 stride 2 (ResNet downsampling)
    (1, 4, 5, 5, 3, 1, 1, 1, 1, 1, 1),  # 1x1 padded
    (3, 8, 13, 17, 15, 3, 3, 2, 1, 1, 1),
    (2, 4, 11, 11, 6, 3, 3, 3, 2, 1, 2),
    (2, 8, 10, 12, 8, 3, 3, 1, 2, 2, 4),
    (2, 8, 9, 9, 8, 3, 3, 1, 1, 1, 8),  # depthwise
    (2, 6, 12, 12, 12, 3, 3, 2, 1, 1, 6),  # depthwise, channel multiplier 2, stride 2
    (1, 3, 23, 23, 8, 7, 7, 2, 3, 1, 1),  # ResNet conv1 in miniature
    (2, 4, 13, 11, 5, 5, 5, 1, 2, 1, 1),
    (1, 2, 32, 41, 4, 5, 20, 2, 0, 1, 1),  # DeepBench speech: 5 (height) x 20 (width), stride 2
    (2, 3, 32, 41, 5, 5, 20, 2, (2, 9), 1, 1),
    (1, 64, 9, 9, 20, 3, 3, 1, 1, 1, 1),  # C*R*S = 576 crosses the k block
    (2, 1, 17, 19, 3, 3, 3, 1, 3, 1, 1),  # padding wider than the filter span
    (1, 5, 31, 29, 29, 3, 3, 1, 0, 2, 1),  # primes, dilation 2
    (1, 7, 7, 7, 1, 2, 2, 3, 0, 1, 1),  # K = 1, even filter
    (2, 4, 15, 14, 6, 3, 2, (1, 2), (0, 2), (2, 1), 2),  # different stride/padding/dilation per axis
    (1, 3, 30, 30, 70, 3, 3, 1, 1, 1, 1),  # K = 70: five 14-row blocks; P*Q = 900
    (5, 2, 6, 7, 3, 3, 3, 1, 1, 1, 1),  # batch not a multiple of the threads
    (5, 2, 28, 28, 3, 3, 3, 1, 1, 1, 1),  # three batches of images over two threads: pixel split
    (1, 32, 121, 121, 4, 3, 3, 2, 1, 1, 1),  # column gradient larger than one col2im block
    (2, 1, 59, 128, 16, 5, 128, 1, (2, 0), 1, 1),  # TextCNN: the filter spans the whole width (Q = 1)
    (1, 2, 40, 64, 8, 3, 64, 1, (1, 0), 1, 1),  # 1 x W outputs, two channels
    (2, 3, 8, 8, 4, 8, 8, 1, 0, 1, 1),  # the filter covers the whole input: 1 x 1 outputs
    # 1x1 layers that read padding: DeepBench's pad 3, stride 2 on 7x7 (16 of 49 outputs read
    # the input), padding only on one axis, grouped with a stride, and one whose every output
    # reads padding (pad 2 at stride 3: no output pixel lands on the 1x1 image)
    (2, 16, 7, 7, 12, 1, 1, 2, 3, 1, 1),
    (3, 6, 9, 8, 10, 1, 1, (2, 1), (0, 2), 1, 2),
    (2, 5, 1, 1, 4, 1, 1, 3, 2, 1, 1),
    # C*R*S = 513 in two k blocks of 257: the second starts mid-channel (tap 5 of channel 28);
    # stride 1, 2 and 3 take the three load kinds of the vectorized im2col packers
    (1, 57, 22, 22, 470, 3, 3, 1, 1, 1, 1),
    (1, 57, 44, 43, 470, 3, 3, 2, 1, 1, 1),
    (1, 57, 66, 64, 470, 3, 3, 3, 1, 1, 1),
    (1, 150, 9, 9, 8, 3, 3, 1, 1, 1, 1),  # 150 channels in one k block: the packers' channel blocks
]


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def case_id(case):
    n, c, h, w, k, r, s, st, pad, dil, g = case
    return f"n{n}c{c}h{h}w{w}k{k}r{r}s{s}st{st}p{pad}d{dil}g{g}".replace(" ", "")


def make(rng, case):
    n, c, h, w, k, r, s, st, pad, dil, g = case
    st, pad, dil = pair(st), pair(pad), pair(dil)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c // g, r, s)).astype(np.float32)
    p, q = out_size(h, r, st[0], pad[0], dil[0]), out_size(w, s, st[1], pad[1], dil[1])
    dy = rng.standard_normal((n, k, p, q)).astype(np.float32)
    return x, wt, dy, dict(stride=st, padding=pad, dilation=dil, groups=g)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_all_directions_match_reference(rng, case):
    x, w, dy, kw = make(rng, case)
    ref_args = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    n, c = x.shape[:2]
    k, cg, r, s = w.shape
    p, q = dy.shape[2:]

    y, info = dk.conv2d_with_info(x, w, **kw)
    assert_close(y, ref_forward(x, w, *ref_args), cg * r * s)
    assert info["algorithm"] in ("gemm-1x1", "gemm-1x1-gathered", "implicit-im2col-gemm", *SHIFTED_NAMES)
    assert info["threads"] >= 1

    dx, info_d = dk.conv2d_backward_data_with_info(dy, w, input_shape=x.shape, **kw)
    assert_close(dx, ref_backward_data(dy, w, x.shape, *ref_args), (k // kw["groups"]) * r * s)
    assert info_d["algorithm"] in ("gemm-1x1", "gemm-1x1-gathered", "flipped-forward", "gemm-col2im")

    dw, info_f = dk.conv2d_backward_filter_with_info(x, dy, weight_shape=w.shape, **kw)
    assert_close(dw, ref_backward_filter(x, dy, w.shape, *ref_args), n * p * q)
    assert info_f["algorithm"] in ("gemm-1x1", "gemm-1x1-gathered", "implicit-im2col-gemm", *SHIFTED_FILTER_NAMES)

    # The backward ops are the adjoints of the forward one: <conv(x,w), dy> = <x, dx> = <w, dw>.
    inner = float(np.vdot(y.astype(np.float64), dy))
    scale = np.sqrt(float(np.sum(y.astype(np.float64) ** 2)) * float(np.sum(dy.astype(np.float64) ** 2)))
    assert abs(inner - float(np.vdot(x.astype(np.float64), dx))) <= 1e-5 * scale
    assert abs(inner - float(np.vdot(w.astype(np.float64), dw))) <= 1e-5 * scale


# Stride 1, one group, at least 512 GEMM rows ((P-1) * padded width + Q) and K <= 128: the
# padded shifted-window GEMM ("padded-shifted-gemm-t"), including its split of rows over threads.
SHIFTED_CASES = [
    (1, 3, 25, 27, 1, 3, 3, 1, 1, 1, 1),  # K = 1, N = 1 (rows split over the threads)
    (3, 4, 29, 23, 5, 3, 3, 1, 0, 1, 1),  # K = 5, pad 0, N odd
    (2, 6, 27, 31, 33, 3, 3, 1, 2, 1, 1),  # K = 33 (a 32-wide panel plus one), pad 2
    (3, 5, 31, 29, 70, 3, 3, 1, 1, 2, 1),  # K = 70, dilation 2
    (2, 3, 24, 40, 8, 2, 5, 1, (1, 2), 1, 1),  # rectangular even/odd filter, rectangular padding
    (1, 2, 33, 21, 7, 5, 1, 1, (2, 0), (1, 1), 1),  # 5 x 1 filter
    (2, 4, 26, 26, 9, 3, 3, 1, 1, (2, 3), 1),  # different dilation per axis
    (5, 7, 23, 25, 16, 3, 3, 1, 1, 1, 1),  # five images over two threads: rows split
    (1, 64, 24, 24, 64, 3, 3, 1, 1, 1, 1),  # C*R*S = 576: two k blocks
]


SHIFTED_FILTER_NAMES = ("padded-shifted-gemm", "padded-shifted-gemm (strided phase planes)")
SHIFTED_NAMES = ("padded-shifted-gemm-t", "padded-shifted-gemm-t (stride 2 phase planes)",
                 "padded-shifted-gemm-t (strided phase planes)")


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", SHIFTED_CASES, ids=case_id)
def test_padded_shifted_gemm(rng, case, threads):
    x, w, dy, kw = make(rng, case)
    ref_args = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    k, cg, r, s = w.shape
    y, info = dk.conv2d_with_info(x, w, threads=threads, **kw)
    assert info["algorithm"] == "padded-shifted-gemm-t" and 1 <= info["threads"] <= threads
    assert_close(y, ref_forward(x, w, *ref_args), cg * r * s)
    np.testing.assert_array_equal(dk.conv2d(x, w, threads=1, **kw), y)  # same sums whatever the split
    # Backward data of a stride-1 layer runs a forward convolution (flipped filters).
    dx = dk.conv2d_backward_data(dy, w, input_shape=x.shape, threads=threads, **kw)
    assert_close(dx, ref_backward_data(dy, w, x.shape, *ref_args), k * r * s)


# Strided layers through phase planes (stride s: s*s planes per channel, then a stride-1
# shifted-window GEMM over them). DLCB_CONV_SHIFTED=1 is not needed: every case has K <= 128
# and at least 512 GEMM rows.
STRIDED_SHIFTED_CASES = [
    (1, 3, 45, 49, 1, 3, 3, 2, 1, 1, 1),  # K = 1, N = 1, H and W odd
    (3, 4, 50, 48, 5, 3, 3, 2, 0, 1, 1),  # K = 5, pad 0, even sizes, N odd
    (2, 6, 47, 50, 33, 3, 3, 2, 3, 1, 1),  # K = 33, pad 3 (wider than the filter)
    (3, 5, 61, 59, 70, 3, 3, 2, 1, 2, 1),  # K = 70, dilation 2 with stride 2
    (1, 2, 61, 160, 8, 5, 20, 2, 0, 1, 1),  # speech-like 5 x 20 filter, pad 0
    (2, 3, 77, 76, 16, 7, 7, 2, 3, 1, 1),  # ResNet conv1-like 7 x 7, pad 3
    (2, 4, 70, 71, 9, 3, 3, 3, 1, 1, 1),  # stride 3
    (1, 3, 80, 83, 7, 4, 5, 3, (0, 3), (2, 1), 1),  # stride 3, even filter, dilation per axis
    (2, 3, 57, 62, 6, 3, 5, (2, 3), (1, 0), (1, 2), 1),  # different stride per axis
    (5, 4, 45, 47, 16, 3, 3, 2, 1, 1, 1),  # five images over two threads: rows split
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", STRIDED_SHIFTED_CASES, ids=case_id)
def test_strided_shifted_gemm(rng, case, threads):
    x, w, dy, kw = make(rng, case)
    ref_args = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    k, cg, r, s = w.shape
    y, info = dk.conv2d_with_info(x, w, threads=threads, **kw)
    st = kw["stride"]
    want = SHIFTED_NAMES[1] if st == (2, 2) else SHIFTED_NAMES[2]
    assert info["algorithm"] == want and 1 <= info["threads"] <= threads
    assert_close(y, ref_forward(x, w, *ref_args), cg * r * s)
    np.testing.assert_array_equal(dk.conv2d(x, w, threads=1, **kw), y)  # same sums whatever the split
    # Backward data of a strided layer stays on gemm-col2im.
    dx, info_d = dk.conv2d_backward_data_with_info(dy, w, input_shape=x.shape, threads=threads, **kw)
    assert info_d["algorithm"] == "gemm-col2im"
    assert_close(dx, ref_backward_data(dy, w, x.shape, *ref_args), k * r * s)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", SHIFTED_CASES + STRIDED_SHIFTED_CASES, ids=case_id)
def test_shifted_backward_filter(rng, case, threads):
    # Every shape whose grid is real enough for its filter count takes the shifted windows (a
    # 1x1 layer stays a plain GEMM); images are split over the threads with partial sums, or a
    # single image's GEMM over all of them.
    x, w, dy, kw = make(rng, case)
    n, p, q = dy.shape[0], dy.shape[2], dy.shape[3]
    dw, info = dk.conv2d_backward_filter_with_info(x, dy, weight_shape=w.shape, threads=threads, **kw)
    strided = kw["stride"] != (1, 1)
    k = w.shape[0]
    if w.shape[2:] != (1, 1) and grid_fraction(x.shape, w.shape, kw) >= (7 + k) / (35 + k):
        assert info["algorithm"] == SHIFTED_FILTER_NAMES[strided] and 1 <= info["threads"] <= threads
    assert_close(dw, ref_backward_filter(x, dy, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]),
                 n * p * q)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", [(7, 4, 7, 7, 40, 3, 3, 1, 1, 1, 2), (9, 3, 9, 9, 300, 3, 3, 2, 1, 1, 1),
                                  (16, 6, 5, 6, 8, 2, 3, 1, 0, 1, 2)], ids=case_id)
def test_backward_filter_batches_small_images(rng, case, threads):
    # Small images go through the implicit GEMM several at a time (k runs over all their
    # pixels), each thread over its own images: the batches must not cross a thread's share.
    x, w, dy, kw = make(rng, case)
    n, p, q = dy.shape[0], dy.shape[2], dy.shape[3]
    dw, info = dk.conv2d_backward_filter_with_info(x, dy, weight_shape=w.shape, threads=threads, **kw)
    assert_close(dw, ref_backward_filter(x, dy, w.shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]),
                 n * p * q)


def grid_fraction(x_shape, w_shape, kw):
    """Output pixels over the pixels of the padded-width grid the shifted paths compute."""
    (sh, sw), (ph, pw), (dh, dw) = kw["stride"], kw["padding"], kw["dilation"]
    p = out_size(x_shape[2], w_shape[2], sh, ph, dh)
    q = out_size(x_shape[3], w_shape[3], sw, pw, dw)
    wp = q + (w_shape[3] - 1) * dw // sw
    return p * q / ((p - 1) * wp + q)


@pytest.mark.parametrize("case", CASES[::3], ids=case_id)
def test_matches_torch(rng, case):
    torch = pytest.importorskip("torch")
    x, w, dy, kw = make(rng, case)
    t = dict(stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"])
    tx, tw, tdy = (torch.from_numpy(a.astype(np.float64)) for a in (x, w, dy))
    k, cg, r, s = w.shape
    n, p, q = dy.shape[0], dy.shape[2], dy.shape[3]
    assert_close(dk.conv2d(x, w, **kw), torch.nn.functional.conv2d(tx, tw, **t).numpy(), cg * r * s)
    assert_close(dk.conv2d_backward_data(dy, w, input_shape=x.shape, **kw),
                 torch.nn.grad.conv2d_input(x.shape, tw, tdy, **t).numpy(), (k // kw["groups"]) * r * s)
    assert_close(dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, **kw),
                 torch.nn.grad.conv2d_weight(tx, w.shape, tdy, **t).numpy(), n * p * q)


EXPECTED_ALGORITHMS = [
    # case, forward, backward data, backward filter
    ((2, 16, 9, 11, 33, 1, 1, 1, 0, 1, 1), "gemm-1x1", "gemm-1x1", "gemm-1x1"),
    # 1x1 with a stride or padding: a pointwise GEMM between the pixels that read the input
    ((2, 4, 6, 6, 30, 1, 1, 2, 0, 1, 1), "gemm-1x1-gathered", "gemm-col2im", "gemm-1x1-gathered"),
    ((2, 2, 24, 24, 3, 1, 1, 1, 1, 1, 1), "gemm-1x1-gathered", "gemm-1x1-gathered", "gemm-1x1-gathered"),
    ((2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1), "implicit-im2col-gemm", "flipped-forward", "padded-shifted-gemm"),
    ((2, 8, 10, 12, 8, 3, 3, 1, 2, 2, 4), "implicit-im2col-gemm", "flipped-forward", "implicit-im2col-gemm"),
    ((2, 1, 17, 19, 3, 3, 3, 1, 3, 1, 1), "padded-shifted-gemm-t", "gemm-col2im", "padded-shifted-gemm"),
    ((3, 8, 13, 17, 15, 3, 3, 2, 1, 1, 1), "implicit-im2col-gemm", "gemm-col2im",
     "padded-shifted-gemm (strided phase planes)"),
    ((1, 3, 30, 30, 70, 3, 3, 1, 1, 1, 1), "padded-shifted-gemm-t", "flipped-forward", "padded-shifted-gemm"),
    ((1, 3, 30, 30, 130, 3, 3, 1, 1, 1, 1), "implicit-im2col-gemm", "flipped-forward", "padded-shifted-gemm"),
    ((1, 3, 30, 30, 8, 3, 3, 2, 1, 1, 1), "implicit-im2col-gemm", "gemm-col2im",
     "padded-shifted-gemm (strided phase planes)"),
    ((1, 2, 32, 41, 4, 5, 20, 2, 0, 1, 1), "implicit-im2col-gemm", "gemm-col2im",
     "padded-shifted-gemm (strided phase planes)"),
    ((1, 1, 61, 120, 8, 5, 20, 2, 0, 1, 1), "padded-shifted-gemm-t (stride 2 phase planes)", "gemm-col2im",
     "padded-shifted-gemm (strided phase planes)"),
    ((1, 4, 80, 80, 8, 1, 1, 2, 0, 1, 1), "gemm-1x1-gathered", "gemm-col2im", "gemm-1x1-gathered"),
    ((1, 4, 60, 60, 129, 3, 3, 2, 1, 1, 1), "implicit-im2col-gemm", "gemm-col2im",
     "padded-shifted-gemm (strided phase planes)"),
    # Filters as wide as the padded input: the shifted paths would compute W - 1 dropped rows for
    # each output pixel (TextCNN's forward ran 130x slower on it), so the implicit GEMM is chosen
    # (a 1 x 1 output is a grid of one pixel, where the shifted backward filter wastes nothing).
    # The shifted backward filter needs a share of its grid real that grows with the filter
    # count, (7 + K) / (35 + K): 0.72 for the 4- and 8-filter layers above, 0.90 for K = 256.
    ((2, 1, 59, 128, 16, 5, 128, 1, (2, 0), 1, 1), "implicit-im2col-gemm", "flipped-forward", "implicit-im2col-gemm"),
    ((1, 2, 40, 64, 8, 3, 64, 1, (1, 0), 1, 1), "implicit-im2col-gemm", "flipped-forward", "implicit-im2col-gemm"),
    ((2, 3, 8, 8, 4, 8, 8, 1, 0, 1, 1), "implicit-im2col-gemm", "flipped-forward", "padded-shifted-gemm"),
]


@pytest.mark.parametrize("case,fwd,bwd_data,bwd_filter", EXPECTED_ALGORITHMS, ids=lambda v: str(v))
def test_algorithm_choice(rng, case, fwd, bwd_data, bwd_filter):
    x, w, dy, kw = make(rng, case)
    assert dk.conv2d_with_info(x, w, **kw)[1]["algorithm"] == fwd
    assert dk.conv2d_backward_data_with_info(dy, w, input_shape=x.shape, **kw)[1]["algorithm"] == bwd_data
    assert dk.conv2d_backward_filter_with_info(x, dy, weight_shape=w.shape, **kw)[1]["algorithm"] == bwd_filter


@pytest.mark.parametrize("case", [CASES[0], CASES[5], CASES[8], CASES[13], CASES[16], CASES[19], CASES[20], CASES[21]], ids=case_id)
def test_thread_counts_agree(rng, case):
    x, w, dy, kw = make(rng, case)
    for op in (
        lambda t: dk.conv2d(x, w, threads=t, **kw),
        lambda t: dk.conv2d_backward_data(dy, w, input_shape=x.shape, threads=t, **kw),
    ):
        one = op(1)
        for t in (2, 3, 4):  # each output sums in the same order whatever the split
            np.testing.assert_array_equal(op(t), one)
    dw1 = dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, threads=1, **kw)
    for t in (2, 3):  # the sum over images is split differently: equal up to rounding
        dwt = dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, threads=t, **kw)
        np.testing.assert_allclose(dwt, dw1, rtol=1e-5, atol=1e-5 * float(np.abs(dw1).max()))
    info = dk.conv2d_with_info(x, w, threads=2, **kw)[1]
    assert 1 <= info["threads"] <= 2


def test_nhwc_layout_by_transposing_copies(rng):
    x, w, dy, kw = make(rng, CASES[5])
    x_nhwc, dy_nhwc = x.transpose(0, 2, 3, 1).copy(), dy.transpose(0, 2, 3, 1).copy()
    y, info = dk.conv2d_with_info(x_nhwc, w, layout="NHWC", **kw)
    assert info["algorithm"].startswith("nhwc-transpose+")
    np.testing.assert_array_equal(y, dk.conv2d(x, w, **kw).transpose(0, 2, 3, 1))
    dx = dk.conv2d_backward_data(dy_nhwc, w, input_shape=x_nhwc.shape, layout="NHWC", **kw)
    np.testing.assert_array_equal(dx, dk.conv2d_backward_data(dy, w, input_shape=x.shape, **kw).transpose(0, 2, 3, 1))
    dw = dk.conv2d_backward_filter(x_nhwc, dy_nhwc, weight_shape=w.shape, layout="NHWC", **kw)
    np.testing.assert_array_equal(dw, dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, **kw))
    out = np.empty_like(y)
    assert dk.conv2d(x_nhwc, w, layout="NHWC", out=out, **kw) is out
    np.testing.assert_array_equal(out, y)


def test_int_parameters_and_out(rng):
    x, w, dy, kw = make(rng, CASES[0])
    y = dk.conv2d(x, w, stride=1, padding=1, dilation=1)
    np.testing.assert_array_equal(y, dk.conv2d(x, w, **kw))
    out = np.full_like(y, np.nan)
    assert dk.conv2d(x, w, out=out, **kw) is out
    np.testing.assert_array_equal(out, y)
    dx = np.full(x.shape, np.nan, np.float32)
    assert dk.conv2d_backward_data(dy, w, input_shape=x.shape, out=dx, **kw) is dx
    dw = np.full(w.shape, np.nan, np.float32)
    assert dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, out=dw, **kw) is dw
    assert_close(dw, ref_backward_filter(x, dy, w.shape, (1, 1), (1, 1), (1, 1), 1), 128)


def test_non_contiguous_inputs_are_copied(rng):
    x, w, dy, kw = make(rng, CASES[5])
    x_view = np.zeros((x.shape[0], x.shape[1], x.shape[2], 2 * x.shape[3]), np.float32)
    x_view[..., ::2] = x
    x_view = x_view[..., ::2]
    w_view = np.asfortranarray(w)
    np.testing.assert_array_equal(dk.conv2d(x_view, w_view, **kw), dk.conv2d(x, w, **kw))


def test_empty_batch_gives_empty_result(rng):
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y, info = dk.conv2d_with_info(x, w, padding=1)
    assert y.shape == (0, 4, 8, 8)
    dy = np.zeros((0, 4, 8, 8), np.float32)
    assert dk.conv2d_backward_data(dy, w, input_shape=x.shape, padding=1).shape == (0, 3, 8, 8)
    dw = dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, padding=1)
    np.testing.assert_array_equal(dw, np.zeros(w.shape, np.float32))  # an empty sum


def test_nan_and_inf_propagate(rng):
    x, w, dy, kw = make(rng, CASES[0])
    x[0, 0, 3, 3] = np.nan
    x[1, 1, 0, 0] = np.inf
    y = dk.conv2d(x, w, **kw)
    assert np.isnan(y[0]).any() and not np.isnan(y[0, :, 6:, 6:]).any()
    assert np.isinf(y[1]).any() or np.isnan(y[1]).any()
    w[0, 0, 0, 0] = np.nan
    assert np.isnan(dk.conv2d_backward_data(dy, w, input_shape=x.shape, **kw)).any()
    assert np.isnan(dk.conv2d_backward_filter(x, dy, weight_shape=w.shape, **kw)).any()


def direct(x_shape, w_shape, stride, pad, dil, groups):
    """Every (n, k, p, q, c, r, s) term of the convolution whose input pixel is real (zero padding
    contributes no term at all), for the direct references below."""
    n_, c_, h, wd = x_shape
    k_, cg, r_, s_ = w_shape
    p_, q_ = out_size(h, r_, stride[0], pad[0], dil[0]), out_size(wd, s_, stride[1], pad[1], dil[1])
    kg = k_ // groups
    for n in range(n_):
        for k in range(k_):
            for p in range(p_):
                for q in range(q_):
                    for ci in range(cg):
                        for r in range(r_):
                            for s in range(s_):
                                hh, ww = p * stride[0] - pad[0] + r * dil[0], q * stride[1] - pad[1] + s * dil[1]
                                if 0 <= hh < h and 0 <= ww < wd:
                                    yield n, k, p, q, (k // kg) * cg + ci, ci, r, s, hh, ww


NONFINITE_CASES = [  # (x shape, w shape, stride, pad, dilation, groups): one per algorithm family
    ((1, 1, 4, 4), (1, 1, 3, 3), 1, 1, 1, 1),     # the report's case: flipped-forward backward data
    ((2, 3, 6, 7), (4, 3, 3, 3), 1, 1, 1, 1),
    ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1, 1, 1),     # strided: gemm-col2im, phase planes
    ((2, 4, 5, 5), (6, 2, 3, 3), 1, 2, 2, 2),     # dilated, grouped
    ((1, 3, 5, 5), (2, 3, 1, 1), 2, 1, 1, 1),     # padded 1x1: gemm-1x1-gathered
    ((1, 1, 5, 9), (2, 1, 5, 9), 1, (2, 0), 1, 1),  # filter spanning the whole width
]


@pytest.mark.parametrize("case", NONFINITE_CASES, ids=lambda c: f"x{c[0]}-w{c[1]}-s{c[2]}-p{c[3]}")
def test_nonfinite_values_never_meet_padding(rng, case):
    # One infinite weight must not turn dy's or x's zero padding into NaN: the result is the
    # convolution's own terms (as PyTorch gives), whatever algorithm runs.
    x_shape, w_shape, stride, pad, dil, groups = case
    stride, pad, dil = pair(stride), pair(pad), pair(dil)
    x = rng.uniform(0.5, 1, x_shape).astype(np.float32)  # no zeros: inf * x stays inf
    w = rng.uniform(0.5, 1, w_shape).astype(np.float32)
    w[0, 0, 0, 0], w[-1, -1, -1, -1] = np.inf, -np.inf
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y = np.zeros((x_shape[0], w_shape[0], out_size(x_shape[2], w_shape[2], stride[0], pad[0], dil[0]),
                  out_size(x_shape[3], w_shape[3], stride[1], pad[1], dil[1])))
    dy = rng.uniform(0.5, 1, y.shape).astype(np.float32)
    dx, dw = np.zeros(x_shape), np.zeros(w_shape)
    dy_bad = dy.copy()
    dy_bad[0, 0, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN here as in the kernels
        for n, k, p, q, c, ci, r, s, hh, ww in direct(x_shape, w_shape, stride, pad, dil, groups):
            y[n, k, p, q] += float(x[n, c, hh, ww]) * float(w[k, ci, r, s])
            dx[n, c, hh, ww] += float(dy[n, k, p, q]) * float(w[k, ci, r, s])
            dw[k, ci, r, s] += float(x[n, c, hh, ww]) * float(dy_bad[n, k, p, q])
        got_y = dk.conv2d(x, w, **kw)
        got_dx = dk.conv2d_backward_data(dy, w, input_shape=x_shape, **kw)
        got_dw = dk.conv2d_backward_filter(x, dy_bad, weight_shape=w_shape, **kw)
    for got, want in ((got_y, y), (got_dx, dx), (got_dw, dw)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # NaN and inf where the terms have them


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the RSS from /proc")
def test_huge_padding_builds_no_giant_planes_and_keeps_no_scratch():
    # 8x8 image, padding 6000, stride 4: stride-squared phase planes would be 576 MB of zeros.
    x, w = np.ones((1, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32)
    before = rss_bytes()
    for direction in ("fwd", "bwd_filter"):
        if direction == "fwd":
            y, info = dk.conv2d_with_info(x, w, stride=4, padding=6000)
        else:
            y, info = dk.conv2d_backward_filter_with_info(x, np.ones((1, 1, 3002, 3002), np.float32),
                                                          weight_shape=w.shape, stride=4, padding=6000)
        assert "shifted" not in info["algorithm"]
        del y
    assert rss_bytes() - before < 100 << 20


def test_padding_that_cannot_fit_in_memory_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r"padding \(1099511627776, 0\).*GiB, more than this machine"):
        dk.conv2d(np.ones((1, 1, 8, 8), np.float32), np.ones((1, 1, 3, 3), np.float32), padding=(2**40, 0))


# ---------------------------------------------------------------------------------------------
# Argument checks: each raises before any native call, naming the argument.

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 2, 3, 3), np.float32)  # groups=2
DY = np.zeros((2, 6, 6, 6), np.float32)


def fwd(**kw):
    args = dict(x=X, w=W, groups=2)
    args.update(kw)
    return dk.conv2d(args.pop("x"), args.pop("w"), **args)


def bwd_data(**kw):
    args = dict(dy=DY, w=W, input_shape=X.shape, groups=2)
    args.update(kw)
    return dk.conv2d_backward_data(args.pop("dy"), args.pop("w"), **args)


def bwd_filter(**kw):
    args = dict(x=X, dy=DY, weight_shape=W.shape, groups=2)
    args.update(kw)
    return dk.conv2d_backward_filter(args.pop("x"), args.pop("dy"), **args)


BAD = [
    (fwd, dict(x=X.astype(np.float64)), TypeError, "x must have dtype float32"),
    (fwd, dict(w=W.astype(np.float16)), TypeError, "w must have dtype float32"),
    (fwd, dict(x=X.tolist()), TypeError, "x must be a numpy.ndarray"),
    (fwd, dict(x=X[0]), ValueError, "x must be 4-D"),
    (fwd, dict(w=W[0]), ValueError, "w must be 4-D"),
    (fwd, dict(w=np.zeros((6, 3, 3, 3), np.float32)), ValueError, "channel mismatch"),
    (fwd, dict(groups=3), ValueError, "groups=3 must divide the input channels"),
    (fwd, dict(groups=4, w=np.zeros((6, 1, 3, 3), np.float32)), ValueError, "groups=4 must divide the output channels"),
    (fwd, dict(groups=0), ValueError, "groups must be >= 1"),
    (fwd, dict(padding=(-1, 0)), ValueError, "padding must be >= 0, got (-1, 0)"),
    (fwd, dict(stride=0), ValueError, "stride must be >= 1, got (0, 0)"),
    (fwd, dict(dilation=(1, 0)), ValueError, "dilation must be >= 1, got (1, 0)"),
    (fwd, dict(stride=(1, 2, 3)), ValueError, "stride must be an int or a pair"),
    (fwd, dict(stride=1.5), TypeError, "stride must be an int or a pair"),
    (fwd, dict(padding=(1.0, 1)), TypeError, "padding must be an int"),
    (fwd, dict(dilation=5), ValueError, "output height would be"),
    (fwd, dict(w=np.zeros((6, 2, 9, 3), np.float32)), ValueError, "output height would be"),
    (fwd, dict(layout="CHWN"), ValueError, "layout must be one of"),
    (fwd, dict(threads=0), ValueError, "threads must be >= 1"),
    (fwd, dict(threads=2.0), TypeError, "threads must be an int"),
    (fwd, dict(out=np.zeros((2, 6, 6, 5), np.float32)), ValueError, "out must have shape (2, 6, 6, 6)"),
    (fwd, dict(out=np.zeros((2, 6, 6, 6), np.float64)), TypeError, "out must have dtype float32"),
    (fwd, dict(out=np.zeros((2, 6, 6, 12), np.float32)[..., ::2]), ValueError, "out must be C-contiguous"),
    (fwd, dict(x=np.zeros((2, 4, 0, 8), np.float32)), ValueError, "x must have at least one"),
    (bwd_data, dict(dy=DY.astype(np.float64)), TypeError, "dy must have dtype float32"),
    (bwd_data, dict(dy=DY[:, :, :5]), ValueError, "dy must have shape (2, 6, 6, 6)"),
    (bwd_data, dict(input_shape=(2, 4, 8)), ValueError, "input_shape must be a 4-tuple"),
    (bwd_data, dict(input_shape=(2, 6, 8, 8)), ValueError, "channel mismatch"),
    (bwd_data, dict(input_shape=(2, 4, 8, 8.0)), TypeError, "input_shape[3] must be an int"),
    (bwd_data, dict(out=np.zeros((2, 4, 8, 9), np.float32)), ValueError, "out must have shape (2, 4, 8, 8)"),
    (bwd_data, dict(padding=-2), ValueError, "padding must be >= 0, got (-2, -2)"),
    (bwd_filter, dict(dy=DY[:1]), ValueError, "dy must have shape (2, 6, 6, 6)"),
    (bwd_filter, dict(weight_shape=(6, 3, 3, 3)), ValueError, "channel mismatch"),
    (bwd_filter, dict(weight_shape=(6, 2, 3)), ValueError, "weight_shape must be a 4-tuple"),
    (bwd_filter, dict(x=X.astype(np.int32)), TypeError, "x must have dtype float32"),
    (bwd_filter, dict(out=np.zeros((6, 2, 3, 3), np.float64)), TypeError, "out must have dtype float32"),
]


@pytest.mark.parametrize("op,kwargs,exc,text", BAD, ids=[f"{b[0].__name__}-{b[3]}" for b in BAD])
def test_bad_arguments(op, kwargs, exc, text):
    with pytest.raises(exc) as info:
        op(**kwargs)
    assert text in str(info.value)


def test_read_only_and_aliased_outputs_are_refused():
    out = np.zeros((2, 6, 6, 6), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        fwd(out=out)
    buf = np.zeros(X.size + DY.size, np.float32)
    x_alias = buf[: X.size].reshape(X.shape)
    out_alias = buf[X.size - DY.size // 2: X.size + DY.size // 2].reshape(DY.shape)
    with pytest.raises(ValueError, match="out shares memory with x"):
        fwd(x=x_alias, out=out_alias)
    buf = np.zeros(max(X.size, DY.size), np.float32)
    with pytest.raises(ValueError, match="out shares memory with dy"):
        bwd_data(dy=buf[: DY.size].reshape(DY.shape), out=buf[: X.size].reshape(X.shape))
    buf = np.zeros(max(W.size, DY.size), np.float32)
    with pytest.raises(ValueError, match="out shares memory with dy"):
        bwd_filter(dy=buf[: DY.size].reshape(DY.shape), out=buf[: W.size].reshape(W.shape))


def test_native_entry_points_reject_bad_input_without_crashing():
    from dlcb_kernels import _cpu

    y = np.zeros((2, 6, 6, 6), np.float32)
    args = (1, 1, 0, 0, 1, 1, 2, 1)
    with pytest.raises(TypeError):
        _cpu.conv2d_forward(X.astype(np.float64), W, y, *args)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X[..., ::2], W, y, *args)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, y[:, :, :5].copy(), *args)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, y, 1, 1, -1, 0, 1, 1, 2, 1)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, y, 1, 1, 0, 0, 1, 1, 3, 1)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, y, 1, 1, 0, 0, 1, 1, 2, 0)
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, X, *args)  # wrong shape and aliasing x
    y.flags.writeable = False
    with pytest.raises(ValueError):
        _cpu.conv2d_forward(X, W, y, *args)
    dw = np.zeros((6, 2, 3, 3), np.float32)
    with pytest.raises(ValueError):
        _cpu.conv2d_backward_filter(X, DY, dw, 1, 1, 0, 0, 1, 1, 2, 0)
    with pytest.raises(TypeError):  # does not fit a C int
        _cpu.conv2d_backward_filter(X, DY, dw, 1, 1, 0, 0, 1, 1, 2, 1 << 40)
    with pytest.raises(ValueError):  # sizes whose products would overflow
        _cpu.conv2d_forward(X, W, y, 1, 1, 1 << 40, 0, 1, 1, 2, 1)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), cg=st.integers(1, 3), kg=st.integers(1, 5), groups=st.integers(1, 2),
    h=st.integers(1, 19), w=st.integers(1, 40), r=st.integers(1, 4), s=st.integers(1, 5),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)), pad=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    dil=st.tuples(st.integers(1, 3), st.integers(1, 3)), threads=st.integers(1, 3), seed=st.integers(0, 2**31),
)
def test_property_random_shapes(n, cg, kg, groups, h, w, r, s, stride, pad, dil, threads, seed):
    # Random small geometry: exercises padding on every side of the packed runs, strides 1-4 (the
    # unit-stride, stride-2 and gather paths), and runs that wrap rows and images.
    p, q = out_size(h, r, stride[0], pad[0], dil[0]), out_size(w, s, stride[1], pad[1], dil[1])
    assume(p >= 1 and q >= 1)
    rng = np.random.default_rng(seed)
    c, k = cg * groups, kg * groups
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, cg, r, s)).astype(np.float32)
    dy = rng.standard_normal((n, k, p, q)).astype(np.float32)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, threads=threads)
    ref = (stride, pad, dil, groups)
    assert_close(dk.conv2d(x, wt, **kw), ref_forward(x, wt, *ref), cg * r * s)
    assert_close(dk.conv2d_backward_data(dy, wt, input_shape=x.shape, **kw),
                 ref_backward_data(dy, wt, x.shape, *ref), kg * r * s)
    assert_close(dk.conv2d_backward_filter(x, dy, weight_shape=wt.shape, **kw),
                 ref_backward_filter(x, dy, wt.shape, *ref), n * p * q)


@pytest.mark.parametrize("isa", dk.available_isas())
@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[6], CASES[12], CASES[15], CASES[18], CASES[20],
                                  SHIFTED_CASES[2], SHIFTED_CASES[7]], ids=case_id)
def test_every_kernel_set(rng, isa, case):
    # The public API runs the best kernel set; the native entry points take any, so the portable
    # packing (used where AVX-512 is absent) is checked on this machine too.
    from dlcb_kernels import _cpu

    x, w, dy, kw = make(rng, case)
    args = (*kw["stride"], *kw["padding"], *kw["dilation"], kw["groups"], 2, isa)
    ref = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    k, cg, r, s = w.shape
    n, p, q = dy.shape[0], dy.shape[2], dy.shape[3]
    y = np.empty((n, k, p, q), np.float32)
    _cpu.conv2d_forward(x, w, y, *args)
    assert_close(y, ref_forward(x, w, *ref), cg * r * s)
    dx = np.empty_like(x)
    _cpu.conv2d_backward_data(dy, w, dx, *args)
    assert_close(dx, ref_backward_data(dy, w, x.shape, *ref), (k // kw["groups"]) * r * s)
    dw = np.empty_like(w)
    _cpu.conv2d_backward_filter(x, dy, dw, *args)
    assert_close(dw, ref_backward_filter(x, dy, w.shape, *ref), n * p * q)
