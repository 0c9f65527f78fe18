"""GPU arrays as the entry points see them (DLPack, CUDA Array Interface, bfloat16 bits), and
the argument checks of the GPU paths of gemm, conv2d and rnn. Runs everywhere: host memory
dressed up as a CUDA producer stands in for GPU arrays, since every check runs before the
extension is touched (on a machine without a GPU the valid calls then end in RuntimeError
naming why CUDA is unavailable)."""

import types

import numpy as np
import pytest

import dlcb_kernels as dk
from dlcb_kernels import cuda
from dlcb_kernels.device_array import (
    BFloat16Array,
    as_bfloat16,
    as_device_array,
    bfloat16_bits,
    bfloat16_round,
    is_device_array,
    to_host,
)

HAS_GPU = cuda.status().available


class FakeDlpackGpu:
    """numpy memory presented as a CUDA array through DLPack (device type 2)."""

    def __init__(self, array, device=0):
        self.array = array
        self.device = device
        self.shape = array.shape

    def __dlpack_device__(self):
        return (2, self.device)

    def __dlpack__(self, stream=None):
        return self.array.__dlpack__()

    def get(self):
        return self.array.copy()


class FakeCaiGpu:
    """numpy memory presented through the CUDA Array Interface only."""

    def __init__(self, array, device=0):
        self.array = array
        self.device = types.SimpleNamespace(id=device)
        strides = None if array.flags.c_contiguous else array.strides
        self.__cuda_array_interface__ = {"shape": array.shape, "typestr": array.dtype.str, "strides": strides,
                                         "data": (array.ctypes.data, False), "version": 3}


def gpu(shape, dtype=np.float32, device=0):
    return FakeDlpackGpu(np.zeros(shape, dtype), device)


@pytest.mark.parametrize("maker", [FakeDlpackGpu, FakeCaiGpu])
def test_views_report_pointer_shape_strides_dtype(maker):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = as_device_array(maker(base), "a")
    assert (view.ptr, view.shape, view.strides, view.dtype) == (base.ctypes.data, (4, 6), (6, 1), "float32")
    assert view.is_c_contiguous() and view.span() == (base.ctypes.data, base.ctypes.data + 96)
    transposed = as_device_array(maker(base.T), "a")
    assert transposed.shape == (6, 4) and transposed.strides == (1, 6) and not transposed.is_c_contiguous()
    half = as_device_array(maker(np.zeros((3, 5), np.float16)), "a")
    assert half.dtype == "float16" and half.itemsize == 2


def test_big_endian_cuda_array_interface_is_refused():
    with pytest.raises(TypeError, match="byte order '>f4'"):
        as_device_array(FakeCaiGpu(np.zeros(3, ">f4")), "x")


def test_dlpack_device_index_is_kept():
    assert as_device_array(gpu((2, 2), device=3), "x").device == 3


def test_rejections_name_the_argument():
    with pytest.raises(TypeError, match="weights must have dtype float32, float16 or bfloat16, got f64"):
        as_device_array(gpu((2,), np.float64), "weights")
    with pytest.raises(TypeError, match="as_bfloat16"):
        as_device_array(gpu((2,), np.uint16), "x")
    with pytest.raises(TypeError, match="b is a numpy array"):
        as_device_array(np.zeros(3, np.float32), "b")
    with pytest.raises(TypeError, match="c must be a GPU array"):
        as_device_array([1.0, 2.0], "c")


def test_bfloat16_wrapper():
    bits = gpu((2, 3), np.uint16)
    view = as_device_array(as_bfloat16(bits), "x")
    assert view.dtype == "bfloat16" and view.shape == (2, 3) and view.ptr == bits.array.ctypes.data
    with pytest.raises(TypeError, match="16-bit integer"):
        as_bfloat16(gpu((2,), np.float32))
    assert is_device_array(as_bfloat16(bits)) and is_device_array(bits)
    assert not is_device_array(np.zeros(2, np.float32))


def test_bfloat16_rounding_is_nearest_even_and_exact_on_the_host():
    values = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-9, -2.5, 3.0e38, 1e-40], np.float32)
    rounded = bfloat16_round(values)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0);
    # 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
    assert rounded.tolist()[:5] == [1.0, 1.0, 1.0 + 2**-6, 1.0, -2.5]
    assert np.array_equal(bfloat16_round(rounded), rounded)
    bits = bfloat16_bits(values)
    assert bits.dtype == np.uint16
    widened = to_host(BFloat16Array(FakeDlpackGpu(bits)))
    assert np.array_equal(widened, rounded)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(np.float32)
    assert np.max(np.abs(bfloat16_round(x) - x) / np.abs(x)) <= 2.0**-8


def expect_unavailable_or_pass(call):
    """Valid arguments: on a GPU-less machine the call must end in CUDA's reason, nothing else."""
    if HAS_GPU:
        pytest.skip("a real GPU is present: the fakes hold host memory")
    with pytest.raises(RuntimeError, match="CUDA is unavailable"):
        call()


def test_gemm_gpu_arguments():
    a, b = gpu((3, 4)), gpu((4, 5))
    with pytest.raises(ValueError, match="inner dimensions differ"):
        dk.gemm(a, gpu((5, 6)))
    with pytest.raises(TypeError, match="b has dtype float16 but a has float32"):
        dk.gemm(a, gpu((4, 5), np.float16))
    with pytest.raises(ValueError, match="b is on cuda:1 but a is on cuda:0"):
        dk.gemm(a, gpu((4, 5), device=1))
    with pytest.raises(TypeError, match="numpy array"):
        dk.gemm(a, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="variant must be one of"):
        dk.gemm(a, b, variant="nonesuch")
    with pytest.raises(ValueError, match="beta=0.5 needs c"):
        dk.gemm(a, b, beta=0.5)
    with pytest.raises(ValueError, match="a must be 2-D"):
        dk.gemm(gpu((3, 4, 1)), b)
    with pytest.raises(ValueError, match="unit stride along one axis"):
        dk.gemm(FakeDlpackGpu(np.zeros((6, 8), np.float32)[::2, ::2]), b)
    with pytest.raises(ValueError, match="m, n, k >= 1"):
        dk.gemm(gpu((0, 4)), b)
    with pytest.raises(ValueError, match="GPU arrays only"):
        dk.gemm(np.zeros((3, 4), np.float32), np.zeros((4, 5), np.float32), variant="sgemm-naive")
    expect_unavailable_or_pass(lambda: dk.gemm(a, b))
    # a transposed view is read in place (its storage flips the transpose flag)
    expect_unavailable_or_pass(lambda: dk.gemm(FakeDlpackGpu(np.zeros((4, 3), np.float32).T), b))


def test_gemm_output_checks_run_before_the_device(monkeypatch):
    # With a stand-in extension the output checks are reached: shape, dtype, overlap.
    from dlcb_kernels.ops import _cuda_common

    monkeypatch.setattr(_cuda_common, "native_module", lambda device: object())
    from dlcb_kernels.ops import gemm_cuda

    monkeypatch.setattr(gemm_cuda, "native_module", lambda device: object())
    base = np.zeros(40, np.float32)
    a, b = FakeDlpackGpu(base[:12].reshape(3, 4)), gpu((4, 5))
    with pytest.raises(ValueError, match=r"c must have shape \(3, 5\)"):
        dk.gemm(a, b, c=gpu((5, 3)))
    with pytest.raises(TypeError, match="c must have dtype float32"):
        dk.gemm(a, b, c=gpu((3, 5), np.float16))
    with pytest.raises(ValueError, match="c must be C-contiguous"):
        dk.gemm(a, b, c=FakeDlpackGpu(np.zeros((5, 3), np.float32).T))
    with pytest.raises(ValueError, match="c shares memory with a"):
        dk.gemm(a, b, c=FakeDlpackGpu(base[10:25].reshape(3, 5)))


def test_conv_gpu_arguments():
    x, w = gpu((2, 3, 8, 8)), gpu((4, 3, 3, 3))
    with pytest.raises(ValueError, match="channel mismatch"):
        dk.conv2d(x, gpu((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        dk.conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="layout must be one of"):
        dk.conv2d(x, w, layout="CHWN")
    with pytest.raises(ValueError, match="output height would be"):
        dk.conv2d(gpu((2, 3, 2, 8)), w)
    with pytest.raises(ValueError, match="threads applies to CPU arrays"):
        dk.conv2d(x, w, threads=2)
    with pytest.raises(ValueError, match="dy must have shape"):
        dk.conv2d_backward_data(gpu((2, 4, 5, 5)), w, input_shape=(2, 3, 8, 8))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        dk.conv2d(FakeDlpackGpu(np.zeros((2, 8, 8, 3), np.float32).transpose(0, 3, 1, 2)), w)
    # NHWC on the GPU: filters K x R x S x C/g
    expect_unavailable_or_pass(lambda: dk.conv2d(gpu((2, 8, 8, 3)), gpu((4, 3, 3, 3)), layout="NHWC", padding=1))
    expect_unavailable_or_pass(lambda: dk.conv2d_backward_filter(x, gpu((2, 4, 6, 6)), weight_shape=(4, 3, 3, 3)))


def test_rnn_gpu_arguments():
    t, n, i, h = 3, 2, 5, 4
    weights = {"weight_ih": gpu((4 * h, i)), "weight_hh": gpu((4 * h, h)), "bias_ih": gpu((4 * h,)),
               "bias_hh": gpu((4 * h,))}
    x, h0, c0 = gpu((t, n, i)), gpu((n, h)), gpu((n, h))
    with pytest.raises(ValueError, match="needs c0"):
        dk.rnn(x, h0, weights, cell="lstm")
    with pytest.raises(ValueError, match="missing"):
        dk.rnn(x, h0, {k: v for k, v in weights.items() if k != "bias_hh"}, cell="lstm", c0=c0)
    with pytest.raises(ValueError, match=r"weight_hh'\] must have shape \(3\*H, H\)"):
        dk.rnn(x, h0, weights, cell="gru")
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\)"):
        dk.rnn(x, gpu((n, h + 1)), weights, cell="lstm", c0=c0)
    with pytest.raises(ValueError, match="training, threads and isa apply to CPU arrays"):
        dk.rnn(x, h0, weights, cell="lstm", c0=c0, training=True)
    expect_unavailable_or_pass(lambda: dk.rnn(x, h0, weights, cell="lstm", c0=c0))


class FakeExtension:
    """Stands in for dlcb_kernels._cuda: records the native calls, every variant supported."""

    def __init__(self, refuse=()):
        self.calls = []
        self.refuse = set(refuse)

    def _reason(self, variant, args, cc):
        return "refused in the test" if variant in self.refuse else ""

    gemm_unsupported_reason = conv_unsupported_reason = _reason

    def conv_workspace_bytes(self, variant, args):
        return 0

    def gemm(self, variant, args, device, stream):
        self.calls.append(("gemm", variant, dict(args), device, stream))

    def conv(self, variant, args, device, stream):
        self.calls.append(("conv", variant, dict(args), device, stream))


@pytest.fixture
def fake_ext(monkeypatch):
    from dlcb_kernels.ops import conv_cuda, gemm_cuda

    ext = FakeExtension(refuse={"tc-wgmma-tma"})
    for module in (gemm_cuda, conv_cuda):
        monkeypatch.setattr(module, "native_module", lambda device: ext)
        monkeypatch.setattr(module, "compute_capability", lambda device: 90)
    return ext


def test_gemm_native_arguments(fake_ext):
    from dlcb_kernels.ops.gemm_cuda import plan_gemm

    a_storage = np.zeros((7, 5), np.float16)      # a = a_storage.T is 5 x 7: a transposed view
    b = FakeDlpackGpu(np.zeros((7, 9), np.float16))
    c = FakeDlpackGpu(np.zeros((5, 9), np.float16))
    out, call = plan_gemm(FakeDlpackGpu(a_storage.T), b, c=c, alpha=2.0, beta=0.5, stream=1234)
    assert out is c and call.variant == "tc-mma-sync-multistage"  # wgmma refused, the next one taken
    call()
    (_, variant, args, device, stream), = fake_ext.calls
    assert (args["m"], args["n"], args["k"]) == (5, 9, 7)
    assert args["trans_a"] is True and args["lda"] == 5      # the storage is k x m
    assert args["trans_b"] is False and args["ldb"] == 9 and args["ldc"] == 9
    assert args["a"] == a_storage.ctypes.data and args["c"] == c.array.ctypes.data
    assert (args["dtype"], args["alpha"], args["beta"], stream) == (1, 2.0, 0.5, 1234)
    with pytest.raises(ValueError, match="variant 'tc-wgmma-tma' cannot run these arguments: refused"):
        plan_gemm(FakeDlpackGpu(a_storage.T), b, c=c, variant="tc-wgmma-tma")


@pytest.mark.parametrize("direction", ["fwd", "bwd_data", "bwd_filter"])
def test_conv_native_arguments(fake_ext, direction):
    from dlcb_kernels.ops.conv_cuda import plan_conv

    x = FakeDlpackGpu(np.zeros((2, 9, 8, 6), np.float32))   # NHWC: N=2, H=9, W=8, C=6
    w = FakeDlpackGpu(np.zeros((4, 3, 3, 3), np.float32))   # K x R x S x C/g with groups=2
    dy = FakeDlpackGpu(np.zeros((2, 5, 4, 4), np.float32))  # P = (9+2-3)//2+1 = 5, Q = (8+2-3)//2+1 = 4
    operands = {"fwd": (x, w, None), "bwd_data": (dy, w, (2, 9, 8, 6)), "bwd_filter": (x, dy, (4, 3, 3, 3))}
    first, second, shape = operands[direction]
    result = {"fwd": dy, "bwd_data": x, "bwd_filter": w}[direction]
    out = FakeDlpackGpu(np.zeros(result.shape, np.float32))
    plan_conv(direction, first, second, shape=shape, stride=2, padding=1, groups=2, layout="NHWC", out=out)[1]()
    (_, variant, args, _, _), = fake_ext.calls
    assert variant == "implicit-gemm-simt"
    assert (args["n"], args["c"], args["h"], args["w"], args["k"], args["r"], args["s"]) == (2, 6, 9, 8, 4, 3, 3)
    assert (args["stride_h"], args["pad_w"], args["groups"], args["layout"]) == (2, 1, 2, 1)
    pointers = {"x": x, "filter": w, "y": dy}
    written = {"fwd": "y", "bwd_data": "x", "bwd_filter": "filter"}[direction]
    for role, array in pointers.items():
        expected = out if role == written else array
        assert args[role] == expected.array.ctypes.data, role


class FakeRnnExtension:
    """Like the native RNN registry: a null workspace is refused; records the launch."""

    def __init__(self):
        self.calls = []

    def rnn_workspace_bytes(self, variant, args):
        return 4096

    def rnn_unsupported_reason(self, variant, args, device):
        if not args["workspace"]:
            return "workspace must be a non-null device pointer"
        if variant == "fused-sequence-tc" and args["dtype"] == 0:
            return "does not run float32"
        return ""

    def rnn_forward(self, variant, args, device, stream):
        self.calls.append((variant, dict(args)))


@pytest.mark.parametrize("dtype,batch,expected", [(np.float32, 3, "persistent"), (np.float16, 64, "fused-sequence-tc"),
                                                  (np.float16, 4, "persistent")])
def test_rnn_native_arguments(monkeypatch, dtype, batch, expected):
    from dlcb_kernels.ops import rnn_cuda

    ext = FakeRnnExtension()
    monkeypatch.setattr(rnn_cuda, "native_module", lambda device: ext)
    monkeypatch.setattr(rnn_cuda, "workspace_pointer", lambda template, nbytes: 0x10000 if nbytes else 0)

    def fake_output(out, name, template, shape, dtype_name, views):  # results in host memory
        array = FakeDlpackGpu(np.zeros(shape, dtype))
        return array, as_device_array(array, name)

    monkeypatch.setattr(rnn_cuda, "output", fake_output)
    t, i, h = 5, 6, 8
    weights = {"weight_ih": gpu((4 * h, i), dtype), "weight_hh": gpu((4 * h, h), dtype),
               "bias_ih": gpu((4 * h,), dtype), "bias_hh": gpu((4 * h,), dtype)}
    x, h0, c0 = gpu((t, batch, i), dtype), gpu((batch, h), dtype), gpu((batch, h), dtype)
    (y, h_n, c_n), call = rnn_cuda.plan_rnn(x, h0, weights, cell="lstm", c0=c0)
    assert call.variant == expected and call.args["workspace"] == 0x10000
    call()
    (variant, args), = ext.calls
    assert (args["cell"], args["timesteps"], args["batch"], args["input_size"], args["hidden"]) == (2, t, batch, i, h)
    assert args["x"] == x.array.ctypes.data and args["w_hh"] == weights["weight_hh"].array.ctypes.data
    assert y.shape == (t, batch, h) and c_n is not None
    if dtype == np.float32:
        with pytest.raises(ValueError, match="variant 'fused-sequence-tc' cannot run these arguments: does not run"):
            rnn_cuda.plan_rnn(x, h0, weights, cell="lstm", c0=c0, variant="fused-sequence-tc")
