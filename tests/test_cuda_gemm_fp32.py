"""The fp32 CUDA-core GEMM ladder (csrc/cuda/gemm/sgemm_*.cu), called through the native
binding, against a float64 reference computed by numpy on the host.

Every variant runs every layout over shapes that hit the tile edges (1, primes, sizes one past
a tile, a long k), with leading dimensions wider than the rows, beta != 0 over a filled C and
beta == 0 over a C full of NaNs (which must not leak in). Each C sits in a larger buffer whose
padding columns and guard row must come back untouched."""

import importlib
import importlib.util

import numpy as np
import pytest

from dlcb_kernels import cuda

STATUS = cuda.status()
requires_gpu = pytest.mark.skipif(not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}")
requires_extension = pytest.mark.skipif(
    importlib.util.find_spec("dlcb_kernels._cuda") is None, reason="dlcb_kernels._cuda is not built"
)

SCALAR = ["sgemm-naive", "sgemm-smem-tiled", "sgemm-register-blocked"]
# float4 loads and stores: 16-byte aligned pointers, leading dimensions multiples of 4.
VECTORIZED = ["sgemm-vectorized", "sgemm-warp-tiled-double-buffered"]
VARIANTS = SCALAR + VECTORIZED
LAYOUTS = [(False, False), (False, True), (True, False), (True, True)]
SHAPES = [  # m, n, k
    (1, 1, 1),
    (127, 131, 257),
    (128, 128, 64),
    (129, 257, 9),
    (3, 200, 5),
    (300, 1, 17),
    (1, 300, 31),
    (257, 63, 33),
    (64, 64, 8191),
]
F32 = 0


def _leading_dim(variant, cols, padded):
    """Row stride for rows of `cols` floats: wider than the row when `padded` (odd for the
    scalar variants), a multiple of 4 for the vectorized ones."""
    if variant in VECTORIZED:
        return -(-cols // 4) * 4 + (4 if padded else 0)
    return cols + (3 if padded else 0)


def _args(m, n, k, a, lda, trans_a, b, ldb, trans_b, c, ldc, alpha, beta):
    return dict(m=m, n=n, k=k, dtype=F32, a=a, lda=lda, trans_a=trans_a, b=b, ldb=ldb,
                trans_b=trans_b, c=c, ldc=ldc, alpha=alpha, beta=beta)


def _tolerance(k):
    # fp32 rounding of a k-term sum grows like sqrt(k) eps; one wrong or missing term of the
    # sum is about rms(ref) / sqrt(k), far above it for every k tested.
    return 4e-6 * np.sqrt(k) + 1e-6


def _run(variant, m, n, k, trans_a, trans_b, padded, alpha, beta, seed=0):
    cp = pytest.importorskip("cupy")
    ext = cuda.module()
    rng = np.random.default_rng(seed)
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb = _leading_dim(variant, a_cols, padded), _leading_dim(variant, b_cols, padded)
    ldc = _leading_dim(variant, n, padded)
    a_host = rng.uniform(-1, 1, (a_rows, lda)).astype(np.float32)
    b_host = rng.uniform(-1, 1, (b_rows, ldb)).astype(np.float32)
    # One guard row after C; beta == 0 must ignore the NaNs in C.
    c_host = (np.full((m + 1, ldc), np.nan, np.float32) if beta == 0
              else rng.uniform(-1, 1, (m + 1, ldc)).astype(np.float32))
    op_a = a_host[:, :a_cols].astype(np.float64)
    op_b = b_host[:, :b_cols].astype(np.float64)
    op_a = op_a.T if trans_a else op_a
    op_b = op_b.T if trans_b else op_b
    ref = alpha * (op_a @ op_b)
    if beta != 0:
        ref += beta * c_host[:m, :n].astype(np.float64)

    a_dev, b_dev, c_dev = cp.asarray(a_host), cp.asarray(b_host), cp.asarray(c_host)
    args = _args(m, n, k, a_dev.data.ptr, lda, trans_a, b_dev.data.ptr, ldb, trans_b,
                 c_dev.data.ptr, ldc, alpha, beta)
    assert ext.gemm_unsupported_reason(variant, args, 80) == ""
    ext.gemm(variant, args, 0, 0)
    cuda.synchronize(0)
    out = cp.asnumpy(c_dev)

    got = out[:m, :n].astype(np.float64)
    assert np.isfinite(got).all(), "non-finite output (NaN read from C, or an unwritten element)"
    err = np.abs(got - ref).max() / np.sqrt(np.mean(ref**2))
    assert err < _tolerance(k), f"relative error {err:.3g} for {variant} {m}x{n}x{k}"
    np.testing.assert_array_equal(out[:m, n:], c_host[:m, n:], "wrote past column n")
    np.testing.assert_array_equal(out[m:], c_host[m:], "wrote past row m")


@requires_gpu
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(("trans_a", "trans_b"), LAYOUTS, ids=["NN", "NT", "TN", "TT"])
@pytest.mark.parametrize(("m", "n", "k"), SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_matches_float64_reference(variant, trans_a, trans_b, m, n, k):
    # Alternate the argument kinds over the shapes so that each meets every variant and layout.
    i = SHAPES.index((m, n, k))
    alpha, beta = ((1.0, 0.0), (0.75, -1.25))[i % 2]
    _run(variant, m, n, k, trans_a, trans_b, padded=i % 3 != 0, alpha=alpha, beta=beta, seed=i)


@requires_gpu
@pytest.mark.parametrize("variant", VARIANTS)
def test_many_full_tiles(variant):
    # Several interior tiles in every direction, each with several k slices, plus ragged edges.
    for trans_a, trans_b in LAYOUTS:
        _run(variant, 389, 515, 300, trans_a, trans_b, padded=True, alpha=1.5, beta=0.5, seed=7)


@requires_gpu
@pytest.mark.parametrize("variant", VARIANTS)
def test_alpha_zero_and_beta_one(variant):
    _run(variant, 33, 65, 17, False, False, padded=False, alpha=0.0, beta=1.0)


@requires_extension
def test_variants_are_registered():
    ext = importlib.import_module("dlcb_kernels._cuda")
    listed = {(v["name"], v["dtype"]) for v in ext.gemm_variants()}
    assert {(name, "float32") for name in VARIANTS} <= listed


def _reason(variant, **change):
    # No device needed: the support checks look at the numbers only.
    ext = importlib.import_module("dlcb_kernels._cuda")
    args = _args(64, 64, 64, 1 << 20, 64, False, 2 << 20, 64, False, 3 << 20, 64, 1.0, 0.0)
    args.update(change)
    return ext.gemm_unsupported_reason(variant, args, 90)


@requires_extension
@pytest.mark.parametrize("variant", VARIANTS)
def test_aligned_arguments_are_supported(variant):
    assert _reason(variant) == ""
    for trans_a, trans_b in LAYOUTS:
        assert _reason(variant, trans_a=trans_a, trans_b=trans_b) == ""


@requires_extension
@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"a": (1 << 20) + 4}, "a must be 16-byte aligned"),
        ({"b": (2 << 20) + 4}, "b must be 16-byte aligned"),
        ({"c": (3 << 20) + 8}, "c must be 16-byte aligned"),
        ({"lda": 65}, "lda must be a multiple of 4"),
        ({"ldb": 66}, "ldb must be a multiple of 4"),
        ({"ldc": 67}, "ldc must be a multiple of 4"),
    ],
)
def test_misalignment_reasons(change, word):
    for variant in VECTORIZED:
        assert word in _reason(variant, **change)
    for variant in SCALAR:  # any stride, any alignment of a float
        assert _reason(variant, **change) == ""


@requires_gpu
@pytest.mark.parametrize("variant", VECTORIZED)
def test_misaligned_buffer_is_refused(variant):
    cp = pytest.importorskip("cupy")
    ext = cuda.module()
    buf = cp.zeros(4 * 64 * 64 + 4, cp.float32)
    ptr = buf.data.ptr
    shifted = ptr + 4  # one float in: a valid pointer, but not 16-byte aligned
    args = _args(64, 64, 64, shifted, 64, False, ptr, 64, False, ptr + 4 * 64 * 64 * 2, 64, 1.0, 0.0)
    reason = ext.gemm_unsupported_reason(variant, args, 90)
    assert "a must be 16-byte aligned" in reason
    with pytest.raises(ValueError, match="16-byte aligned"):
        ext.gemm(variant, args, 0, 0)
