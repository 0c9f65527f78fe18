"""tc-wgmma-tma, the Hopper (sm_90a) fp16/bf16 GEMM, through the native binding, against a
float64 product on the host of the same rounded inputs.

GEMM runs need a device of compute capability 9.0 and CuPy or torch for device memory; the
support reasons that need no device run wherever the extension is built."""

import importlib
import importlib.util

import numpy as np
import pytest

from dlcb_kernels import cuda

VARIANT = "tc-wgmma-tma"
DTYPE_CODE = {"f16": 1, "bf16": 2}
# Unit roundoff of the stored result: C is rounded once from fp32.
ROUNDOFF = {"f16": 2.0**-11, "bf16": 2.0**-8}
NAN_BITS = {"f16": 0x7E00, "bf16": 0x7FC0}
SENTINEL_BITS = 0x3C01  # a finite value in both formats, never produced by these products

STATUS = cuda.status()


def _device_cc():
    if not STATUS.available:
        return None
    p = cuda.device_properties(0)
    return p["major"], p["minor"]


requires_hopper = pytest.mark.skipif(
    _device_cc() != (9, 0),
    reason=f"needs a compute capability 9.0 device (sm_90a): {STATUS.reason if not STATUS.available else _device_cc()}",
)
requires_extension = pytest.mark.skipif(
    importlib.util.find_spec("dlcb_kernels._cuda") is None, reason="dlcb_kernels._cuda is not built"
)


def _round(x, dtype):
    """float32 values -> their fp16/bf16 bit patterns (round to nearest even)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "f16":
        return x.astype(np.float16).view(np.uint16)
    u = x.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _decode(bits, dtype):
    if dtype == "f16":
        return bits.view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


class _DeviceMemory:
    """uint16 arrays on device 0 through CuPy, else torch."""

    def __init__(self):
        try:
            import cupy

            self._cp, self._torch = cupy, None
        except ImportError:
            self._cp, self._torch = None, pytest.importorskip("torch", reason="needs CuPy or torch")

    def upload(self, bits):
        if self._cp is not None:
            return self._cp.asarray(bits)
        return self._torch.from_numpy(bits.view(np.int16).copy()).to("cuda:0")

    def pointer(self, x):
        return x.data.ptr if self._cp is not None else x.data_ptr()

    def download(self, x):
        if self._cp is not None:
            return self._cp.asnumpy(x)
        return x.cpu().numpy().view(np.uint16)


@pytest.fixture(scope="module")
def memory():
    return _DeviceMemory()


def _storage(rng, rows, cols, ld, dtype, fill):
    """rows x cols random values rounded to dtype, stored with row stride ld; the columns past
    cols hold `fill` bits (NaN for inputs: reading them would poison C)."""
    bits = np.full((rows, ld), fill, dtype=np.uint16)
    bits[:, :cols] = _round(rng.uniform(-1.0, 1.0, size=(rows, cols)), dtype)
    return bits


def _check_gemm(memory, dtype, m, n, k, trans_a=False, trans_b=False, alpha=1.0, beta=0.0,
                nan_c=False, extra_ld=0, seed=0):
    rng = np.random.default_rng(seed)
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb, ldc = (-(-cols // 8) * 8 + extra_ld for cols in (a_cols, b_cols, n))
    a = _storage(rng, a_rows, a_cols, lda, dtype, NAN_BITS[dtype])
    b = _storage(rng, b_rows, b_cols, ldb, dtype, NAN_BITS[dtype])
    c = _storage(rng, m, n, ldc, dtype, SENTINEL_BITS)
    if nan_c:
        c[:, :n] = NAN_BITS[dtype]

    da, db, dc = memory.upload(a), memory.upload(b), memory.upload(c)
    args = {
        "m": m, "n": n, "k": k, "dtype": DTYPE_CODE[dtype],
        "a": memory.pointer(da), "lda": lda, "trans_a": trans_a,
        "b": memory.pointer(db), "ldb": ldb, "trans_b": trans_b,
        "c": memory.pointer(dc), "ldc": ldc, "alpha": alpha, "beta": beta,
    }
    ext = cuda.module()
    assert ext.gemm_unsupported_reason(VARIANT, args, 90) == ""
    ext.gemm(VARIANT, args, 0, 0)
    cuda.synchronize(0)
    out = memory.download(dc)

    op_a = _decode(a[:, :a_cols], dtype)
    op_b = _decode(b[:, :b_cols], dtype)
    op_a = op_a.T if trans_a else op_a
    op_b = op_b.T if trans_b else op_b
    ref = alpha * (op_a @ op_b)
    scale = abs(alpha) * (np.abs(op_a) @ np.abs(op_b))
    if beta != 0.0:
        c_old = _decode(c[:, :n], dtype)
        ref += beta * c_old
        scale += abs(beta) * np.abs(c_old)
    got = _decode(out[:, :n], dtype)
    # One rounding of the fp32 result, plus fp32 accumulation error (far below 2**-17 of the
    # sum of magnitudes for these sizes; a lost K block or a misplaced element is far above).
    tol = ROUNDOFF[dtype] * np.abs(ref) + 2.0**-17 * scale + 2.0**-24
    err = np.abs(got - ref)
    bad = ~(err <= tol)  # NaN counts as bad
    assert not bad.any(), (
        f"{int(bad.sum())} of {m * n} elements wrong; first at {np.argwhere(bad)[0].tolist()}, "
        f"max error {np.nanmax(err):.3g}"
    )
    assert (out[:, n:] == SENTINEL_BITS).all(), "wrote C past column n"


LAYOUTS = [(False, False), (True, False), (False, True), (True, True)]
LAYOUT_IDS = ["NN", "TN", "NT", "TT"]
SHAPES = [
    (128, 256, 64),  # exactly one block tile and one stage
    (200, 136, 72),  # partial tiles in m, n and k
    (1, 1, 1),
    (7, 13, 5),
    (136, 328, 232),  # multiples of 8 by primes
    (2200, 2100, 136),  # more tiles than SMs (persistent loop), a partial group of block rows
]


@requires_hopper
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize(("trans_a", "trans_b"), LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize(("m", "n", "k"), SHAPES, ids=lambda v: str(v))
def test_layouts_and_shapes(memory, dtype, trans_a, trans_b, m, n, k):
    _check_gemm(memory, dtype, m, n, k, trans_a, trans_b)


@requires_hopper
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize(("m", "n", "k"), [(128, 256, 16384), (1024, 1024, 1024)])
def test_large(memory, dtype, m, n, k):
    _check_gemm(memory, dtype, m, n, k)


@requires_hopper
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize(("trans_a", "trans_b"), LAYOUTS, ids=LAYOUT_IDS)
def test_alpha_beta(memory, dtype, trans_a, trans_b):
    _check_gemm(memory, dtype, 300, 264, 96, trans_a, trans_b, alpha=0.5, beta=-1.5, seed=1)


@requires_hopper
@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_beta_zero_never_reads_c(memory, dtype):
    _check_gemm(memory, dtype, 200, 300, 64, alpha=2.0, beta=0.0, nan_c=True, seed=2)


@requires_hopper
@pytest.mark.parametrize(("trans_a", "trans_b"), LAYOUTS, ids=LAYOUT_IDS)
def test_padded_leading_dimensions(memory, trans_a, trans_b):
    _check_gemm(memory, "bf16", 150, 90, 100, trans_a, trans_b, extra_ld=40, seed=3)


def _args(**overrides):
    # Pointers are never dereferenced by the support check.
    args = {
        "m": 256, "n": 256, "k": 256, "dtype": DTYPE_CODE["bf16"],
        "a": 0x10000, "lda": 256, "trans_a": False,
        "b": 0x20000, "ldb": 256, "trans_b": False,
        "c": 0x30000, "ldc": 256, "alpha": 1.0, "beta": 0.0,
    }
    args.update(overrides)
    return args


@requires_extension
@pytest.mark.parametrize(
    ("overrides", "cc", "reason"),
    [
        ({}, 80, "runs only on compute capability 9.0"),
        ({}, 100, "runs only on compute capability 9.0"),
        ({"a": 0x10002}, 90, "A and B 16-byte aligned"),
        ({"b": 0x20008}, 90, "A and B 16-byte aligned"),
        ({"lda": 260}, 90, "lda and ldb to be multiples of 8"),
        ({"ldb": 257, "trans_b": True}, 90, "lda and ldb to be multiples of 8"),
        ({"ldc": 257}, 90, "ldc even"),
        ({"c": 0x30002}, 90, "C 4-byte aligned"),
        ({"dtype": 0}, 90, "does not run float32"),
    ],
)
def test_support_reasons(overrides, cc, reason):
    ext = importlib.import_module("dlcb_kernels._cuda")
    assert reason in ext.gemm_unsupported_reason(VARIANT, _args(**overrides), cc)


@requires_hopper
def test_unsupported_call_raises_with_reason(memory):
    buf = memory.upload(np.zeros(256 * 256 + 8, dtype=np.uint16))
    ptr = memory.pointer(buf)
    args = _args(a=ptr + 2, b=ptr, c=ptr)
    with pytest.raises(ValueError, match="16-byte aligned"):
        cuda.module().gemm(VARIANT, args, 0, 0)
