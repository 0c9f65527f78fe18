"""tc-mma-sync-multistage (csrc/cuda/gemm/tc_mma_sync_multistage.cu): fp16/bf16 GEMM on sm_80+
tensor cores, called through the native binding and checked against float64 numpy on the host.

Inputs are rounded to the element type on the host, so the reference sees exactly what the
kernel sees; a correct kernel accumulates in fp32 and rounds each output once, so its error is
about one unit roundoff of the output type (2**-8 bf16, 2**-11 f16) of the element's size. The
padding columns of A, B (past k, m or n, inside the leading dimension) hold NaN, so a kernel
that reads past the matrix edges instead of zero-filling fails; those of C hold a sentinel that
must survive. Support reasons need only the extension, not a device."""

import importlib
import importlib.util

import numpy as np
import pytest

from dlcb_kernels import cuda

VARIANT = "tc-mma-sync-multistage"
F16, BF16 = 1, 2
UNIT_ROUNDOFF = {F16: 2.0**-11, BF16: 2.0**-8}
DTYPE_IDS = {F16: "f16", BF16: "bf16"}
LAYOUTS = [(False, False), (False, True), (True, False), (True, True)]
LAYOUT_IDS = ["NN", "NT", "TN", "TT"]

STATUS = cuda.status()
requires_gpu = pytest.mark.skipif(
    not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}"
)
requires_extension = pytest.mark.skipif(
    importlib.util.find_spec("dlcb_kernels._cuda") is None,
    reason="dlcb_kernels._cuda is not built",
)


# --- host-side element types (uint16 bit patterns) -------------------------------------------

def to_bits(x, dtype):
    """float array -> uint16 bit patterns of the nearest f16 / bf16 (round to nearest even)."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == F16:
        return x.astype(np.float16).view(np.uint16)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bits(bits, dtype):
    bits = np.asarray(bits, dtype=np.uint16)
    if dtype == F16:
        return bits.view(np.float16).astype(np.float64)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def padded_ld(cols, pad):
    return -(-cols // 8) * 8 + pad


def stored(values, ld, dtype, fill):
    """A row-major buffer of `values` (rows x cols) with row stride ld; fill past the columns."""
    rows, cols = values.shape
    buf = np.full((rows, ld), fill, dtype=np.float32)
    buf[:, :cols] = values
    return to_bits(buf, dtype)


# --- device buffers: cupy if installed, else torch --------------------------------------------

class DeviceBuffer:
    def __init__(self, host_bits):
        self.shape = host_bits.shape
        try:
            import cupy

            self._lib = "cupy"
            self._array = cupy.asarray(np.ascontiguousarray(host_bits))
            self.ptr = self._array.data.ptr
        except ImportError:
            torch = pytest.importorskip("torch", reason="needs cupy or torch for device buffers")
            self._lib = "torch"
            host = torch.from_numpy(np.ascontiguousarray(host_bits).view(np.int16))
            self._array = host.to("cuda:0")
            self.ptr = self._array.data_ptr()

    def to_host(self):
        if self._lib == "cupy":
            import cupy

            return cupy.asnumpy(self._array).view(np.uint16)
        return self._array.cpu().numpy().view(np.uint16)


# --- running one GEMM --------------------------------------------------------------------------

def run_case(rng, dtype, trans_a, trans_b, m, n, k, *, pad=0, alpha=1.0, beta=0.0, offset_a=0):
    ext = cuda.module()
    a = from_bits(to_bits(rng.uniform(-1, 1, (m, k)), dtype), dtype)
    b = from_bits(to_bits(rng.uniform(-1, 1, (k, n)), dtype), dtype)
    c0 = from_bits(to_bits(rng.uniform(-1, 1, (m, n)), dtype), dtype)

    a_stored = a.T if trans_a else a
    b_stored = b.T if trans_b else b
    lda = padded_ld(a_stored.shape[1], pad)
    ldb = padded_ld(b_stored.shape[1], pad)
    ldc = padded_ld(n, pad)
    sentinel = 7.0
    dev_a = DeviceBuffer(stored(a_stored, lda, dtype, np.nan))
    dev_b = DeviceBuffer(stored(b_stored, ldb, dtype, np.nan))
    c_init = c0 if beta != 0.0 else np.full((m, n), np.nan)
    dev_c = DeviceBuffer(stored(c_init, ldc, dtype, sentinel))

    args = {
        "m": m, "n": n, "k": k, "dtype": dtype,
        "a": dev_a.ptr, "lda": lda, "trans_a": trans_a,
        "b": dev_b.ptr, "ldb": ldb, "trans_b": trans_b,
        "c": dev_c.ptr, "ldc": ldc,
        "alpha": alpha, "beta": beta,
    }
    ext.gemm(VARIANT, args, 0, 0)
    cuda.synchronize(0)

    out_full = from_bits(dev_c.to_host(), dtype)
    out = out_full[:, :n]
    assert np.all(out_full[:, n:] == sentinel), "the kernel wrote past column n of C"
    ref = alpha * (a @ b) + (beta * c0 if beta != 0.0 else 0.0)
    check_close(out, ref, dtype, k)


def check_close(out, ref, dtype, k):
    assert np.all(np.isfinite(out)), "non-finite output (read NaN padding, or read C at beta 0?)"
    u = UNIT_ROUNDOFF[dtype]
    scale = max(np.sqrt(np.mean(ref * ref)), 1e-30)
    # fp32 accumulation adds ~sqrt(k) * 2**-24 relative to the terms; negligible but counted.
    accumulate = 4.0 * np.sqrt(k) * 2.0**-24
    max_err = np.max(np.abs(out - ref)) / scale
    rms_err = np.sqrt(np.mean((out - ref) ** 2)) / scale
    # One rounding of the output: |err_i| <= u |ref_i|, and max |ref| stays below ~8 rms here.
    assert max_err <= 8.0 * u + accumulate, f"max error {max_err:.3g} x rms(ref)"
    assert rms_err <= u + accumulate, f"rms error {rms_err:.3g} x rms(ref)"


SHAPES = [
    # m, n, k, padding of the leading dimensions (elements)
    (8, 8, 8, 0),
    (16, 8, 16, 0),
    (1, 1, 1, 0),
    (7, 13, 5, 8),
    (136, 264, 520, 0),  # primes 131, 263, 521 rounded to multiples of 8
    (131, 263, 521, 8),  # the primes themselves: partial chunks and tiles on every edge
    (129, 257, 65, 0),  # one past a tile in m, n and k
    (255, 511, 127, 16),
    (1100, 600, 96, 0),  # 9 tile rows: a partial raster group
]


@requires_gpu
@pytest.mark.parametrize("dtype", [F16, BF16], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("trans_a,trans_b", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("m,n,k,pad", SHAPES)
def test_matches_float64_reference(rng, dtype, trans_a, trans_b, m, n, k, pad):
    run_case(rng, dtype, trans_a, trans_b, m, n, k, pad=pad)


@requires_gpu
@pytest.mark.parametrize("dtype", [F16, BF16], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("trans_a,trans_b", LAYOUTS, ids=LAYOUT_IDS)
# Odd n as well: the last column of C is then read and written as a single element.
@pytest.mark.parametrize("m,n,k", [(8, 8, 8), (136, 264, 520), (200, 300, 130), (131, 263, 521)])
def test_alpha_and_beta(rng, dtype, trans_a, trans_b, m, n, k):
    run_case(rng, dtype, trans_a, trans_b, m, n, k, pad=8, alpha=0.75, beta=-1.5)


@requires_gpu
@pytest.mark.parametrize("dtype", [F16, BF16], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True)], ids=["NN", "NT"])
def test_large_k(rng, dtype, trans_a, trans_b):
    run_case(rng, dtype, trans_a, trans_b, 128, 128, 16384)


@requires_gpu
def test_misaligned_pointer_raises():
    ext = cuda.module()
    buf = DeviceBuffer(np.zeros((64, 64), dtype=np.uint16))
    args = {
        "m": 8, "n": 8, "k": 8, "dtype": BF16,
        "a": buf.ptr + 2, "lda": 8, "trans_a": False,
        "b": buf.ptr, "ldb": 8, "trans_b": False,
        "c": buf.ptr + 1024, "ldc": 8,
        "alpha": 1.0, "beta": 0.0,
    }
    with pytest.raises(ValueError, match="a must be 16-byte aligned"):
        ext.gemm(VARIANT, args, 0, 0)


# --- support reasons (extension only, fake pointers: nothing is launched) ----------------------

def reason_args(**overrides):
    args = {
        "m": 64, "n": 64, "k": 64, "dtype": BF16,
        "a": 0x10000, "lda": 64, "trans_a": False,
        "b": 0x20000, "ldb": 64, "trans_b": False,
        "c": 0x30000, "ldc": 64,
        "alpha": 1.0, "beta": 0.0,
    }
    args.update(overrides)
    return args


def reason(cc=90, **overrides):
    ext = importlib.import_module("dlcb_kernels._cuda")
    return ext.gemm_unsupported_reason(VARIANT, reason_args(**overrides), cc)


@requires_extension
@pytest.mark.parametrize("dtype", [F16, BF16], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("trans_a,trans_b", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("cc", [80, 86, 89, 90, 100])
def test_supported(dtype, trans_a, trans_b, cc):
    assert reason(cc, dtype=dtype, trans_a=trans_a, trans_b=trans_b) == ""


@requires_extension
def test_listed_for_both_types():
    ext = importlib.import_module("dlcb_kernels._cuda")
    listed = {(v["name"], v["dtype"]) for v in ext.gemm_variants()}
    assert {(VARIANT, "float16"), (VARIANT, "bfloat16")} <= listed


@requires_extension
@pytest.mark.parametrize(
    "overrides,expected",
    [
        ({"a": 0x10002}, "a must be 16-byte aligned"),
        ({"b": 0x20008}, "b must be 16-byte aligned"),
        ({"c": 0x30004}, "c must be 16-byte aligned"),
        ({"lda": 68}, "lda must be a multiple of 8"),
        ({"ldb": 66}, "ldb must be a multiple of 8"),
        ({"ldc": 65}, "ldc must be a multiple of 8"),
        ({"dtype": 0}, "does not run float32"),
    ],
)
def test_unsupported_reasons(overrides, expected):
    assert expected in reason(**overrides)


@requires_extension
@pytest.mark.parametrize("cc", [70, 75])
def test_needs_sm80(cc):
    assert "compute capability >= 8.0" in reason(cc)
