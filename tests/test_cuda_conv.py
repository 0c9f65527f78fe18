"""GPU convolutions (csrc/cuda/conv) through the native binding, against torch references:
float64 on the CPU for small problems, float32 on the GPU (TF32 off) for large ones. Inputs are
rounded to the kernel's dtype first, so the reference sees exactly what the kernel sees. Skips
without a CUDA device."""

import pytest

from dlcb_kernels import cuda

STATUS = cuda.status()
pytestmark = pytest.mark.skipif(not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}")

FORWARD, BACKWARD_DATA, BACKWARD_FILTER = 0, 1, 2
DIRECTIONS = {"fwd": FORWARD, "bwd_data": BACKWARD_DATA, "bwd_filter": BACKWARD_FILTER}
LAYOUTS = {"nchw": 0, "nhwc": 1}
DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}
VARIANTS = [
    ("implicit-gemm-simt", "float32"),
    ("implicit-gemm-simt", "float16"),
    ("implicit-gemm-simt", "bfloat16"),
    ("implicit-gemm-tc", "float16"),
    ("implicit-gemm-tc", "bfloat16"),
]
# The Hopper variant has its own tests (it runs a subset: forward, NHWC, C and K multiples of 64).
WGMMA = "implicit-gemm-wgmma"
LISTED = VARIANTS + [(WGMMA, "float16"), (WGMMA, "bfloat16")]
MIN_CC = {"implicit-gemm-simt": 0, "implicit-gemm-tc": 80, WGMMA: 90}
# Unit roundoff of each output type.
ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def geom(n, c, h, w, k, r, s, pad=0, stride=1, dil=1, groups=1):
    (ph, pw), (sh, sw), (dh, dw) = _pair(pad), _pair(stride), _pair(dil)
    return {"n": n, "c": c, "h": h, "w": w, "k": k, "r": r, "s": s, "pad_h": ph, "pad_w": pw,
            "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw, "groups": groups}


SHAPES = {
    "1x1": geom(2, 16, 8, 8, 24, 1, 1),
    "3x3_pad1": geom(2, 16, 9, 9, 16, 3, 3, pad=1),
    "5x5": geom(1, 8, 11, 13, 16, 5, 5, pad=2),
    "stride2": geom(2, 16, 15, 15, 32, 3, 3, pad=1, stride=2),
    "stride3_ragged": geom(2, 8, 10, 10, 8, 3, 3, stride=3),
    "dilation2": geom(1, 16, 12, 12, 16, 3, 3, pad=2, dil=2),
    "groups2": geom(2, 32, 7, 7, 16, 3, 3, pad=1, groups=2),
    "depthwise": geom(2, 16, 9, 9, 16, 3, 3, pad=1, groups=16),
    "odd_c3": geom(1, 3, 7, 7, 5, 3, 3, pad=1),
    "n1_asymmetric": geom(1, 8, 5, 17, 8, 3, 1, pad=(1, 0), stride=(2, 1), dil=(1, 2)),
    "primes": geom(3, 24, 13, 11, 40, 3, 5, pad=(1, 2), stride=(1, 2)),
    "deep_c": geom(2, 136, 6, 6, 72, 3, 3, pad=1),
    "resnet_3x3_28": geom(1, 128, 28, 28, 128, 3, 3, pad=1),
}
# Large enough to reach each tensor-core tile on a 132-SM GPU (H100 SXM, H200), with partial
# tiles in M and N; the filter gradient uses the large tile when K/groups > 64.
LARGE_SHAPES = {
    "tile_large": geom(31, 256, 14, 14, 248, 3, 3, pad=1),
    "tile_medium": geom(31, 128, 28, 28, 136, 3, 3, pad=1),
    "tile_small": geom(8, 64, 56, 56, 64, 3, 3, pad=1),
    "resnet_3x3_7": geom(4, 512, 7, 7, 512, 3, 3, pad=1),
    "bwd_filter_split": geom(16, 32, 28, 28, 32, 3, 3, pad=1, stride=2),
}


def tc_expected(g, layout):
    return (layout == "nhwc" and (g["c"] // g["groups"]) % 8 == 0
            and (g["k"] // g["groups"]) % 8 == 0)


@pytest.fixture(scope="module")
def ext():
    return cuda.module()


@pytest.fixture(scope="module")
def cc():
    p = cuda.device_properties(0)
    return 10 * p["major"] + p["minor"]


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch cannot see the CUDA device")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def output_size(g):
    p = (g["h"] + 2 * g["pad_h"] - g["dil_h"] * (g["r"] - 1) - 1) // g["stride_h"] + 1
    q = (g["w"] + 2 * g["pad_w"] - g["dil_w"] * (g["s"] - 1) - 1) // g["stride_w"] + 1
    return p, q


def reference(torch, g, direction, x, w, y, on_gpu):
    """The operation in NCHW from float tensors (x, w, dy as the direction reads them)."""
    dev, dt = ("cuda", torch.float32) if on_gpu else ("cpu", torch.float64)
    x, w, y = (None if t is None else t.to(dev, dt) for t in (x, w, y))
    kw = {"stride": (g["stride_h"], g["stride_w"]), "padding": (g["pad_h"], g["pad_w"]),
          "dilation": (g["dil_h"], g["dil_w"]), "groups": g["groups"]}
    if direction == "fwd":
        out = torch.nn.functional.conv2d(x, w, **kw)
    elif direction == "bwd_data":
        out = torch.nn.grad.conv2d_input((g["n"], g["c"], g["h"], g["w"]), w, y, **kw)
    else:
        out = torch.nn.grad.conv2d_weight(x, (g["k"], g["c"] // g["groups"], g["r"], g["s"]), y,
                                          **kw)
    return out.to("cpu", torch.float64)


def to_layout(t, layout):
    return t.permute(0, 2, 3, 1).contiguous() if layout == "nhwc" else t.contiguous()


def from_layout(t, layout):
    return t.permute(0, 3, 1, 2) if layout == "nhwc" else t


def run_case(ext, torch, variant, dtype, direction, layout, g, on_gpu):
    tdt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    p, q = output_size(g)
    gen = torch.Generator(device="cuda").manual_seed(1234)
    shapes = {
        "x": (g["n"], g["c"], g["h"], g["w"]),
        "w": (g["k"], g["c"] // g["groups"], g["r"], g["s"]),
        "y": (g["n"], g["k"], p, q),
    }
    written = {FORWARD: "y", BACKWARD_DATA: "x", BACKWARD_FILTER: "w"}[DIRECTIONS[direction]]
    nchw = {}
    for name, shape in shapes.items():
        if name != written:
            nchw[name] = torch.randn(shape, generator=gen, device="cuda").to(tdt)
    dev = {name: to_layout(t, layout) for name, t in nchw.items()}
    dev[written] = torch.full(shapes[written] if layout == "nchw" else
                              (shapes[written][0], *shapes[written][2:], shapes[written][1]),
                              float("nan"), device="cuda", dtype=tdt)
    args = dict(g, layout=LAYOUTS[layout], direction=DIRECTIONS[direction], dtype=DTYPES[dtype],
                x=dev["x"].data_ptr(), filter=dev["w"].data_ptr(), y=dev["y"].data_ptr(),
                workspace=0)
    assert ext.conv_output_size(args) == (p, q)
    nbytes = ext.conv_workspace_bytes(variant, args)
    workspace = torch.empty(max(nbytes, 1), dtype=torch.uint8, device="cuda")
    if nbytes:
        args["workspace"] = workspace.data_ptr()
    torch.cuda.synchronize()
    ext.conv(variant, args, 0, 0)
    cuda.synchronize(0)
    got = from_layout(dev[written], layout).to("cpu", torch.float64)

    inputs = [nchw.get(name) for name in ("x", "w", "y")]
    want = reference(torch, g, direction, *inputs, on_gpu)
    magnitude = reference(torch, g, direction, *(None if t is None else t.float().abs()
                                                 for t in inputs), on_gpu)
    # fp32 accumulation error (a fraction of the sum of |products|) plus the output rounding; a
    # dropped or misplaced tap costs about magnitude / depth, well above the first term.
    tol = 1e-5 * magnitude + 2 * ROUNDOFF[dtype] * want.abs() + 1e-30
    err = (got - want).abs()
    bad = ~(err <= tol)  # NaN (an element never written) counts as bad
    if bad.any():
        worst = int((err.nan_to_num(float("inf")) - tol).flatten().argmax())
        pytest.fail(f"{int(bad.sum())} of {bad.numel()} elements off; e.g. flat index {worst}: "
                    f"got {float(got.flatten()[worst])}, want {float(want.flatten()[worst])}")


def test_variants_listed(ext):
    listed = [(v["name"], v["dtype"]) for v in ext.conv_variants()]
    assert listed == LISTED
    for v in ext.conv_variants():
        assert v["technique"] and v["min_cc"] == MIN_CC[v["name"]]


def cases(shapes):
    for variant, dtype in VARIANTS:
        for direction in DIRECTIONS:
            for layout in LAYOUTS:
                for name in shapes:
                    yield pytest.param(variant, dtype, direction, layout, name,
                                       id=f"{variant}-{dtype}-{direction}-{layout}-{name}")


@pytest.mark.parametrize(("variant", "dtype", "direction", "layout", "shape"), list(cases(SHAPES)))
def test_matches_reference(ext, torch, cc, variant, dtype, direction, layout, shape):
    g = SHAPES[shape]
    args = dict(g, layout=LAYOUTS[layout], direction=DIRECTIONS[direction], dtype=DTYPES[dtype],
                x=16, filter=16, y=16, workspace=0)
    reason = ext.conv_unsupported_reason(variant, args, cc)
    if variant == "implicit-gemm-tc":
        assert (reason == "") == tc_expected(g, layout), reason
    else:
        assert reason == ""
    if reason:
        pytest.skip(reason)
    run_case(ext, torch, variant, dtype, direction, layout, g, on_gpu=False)


@pytest.mark.parametrize(("variant", "dtype", "direction", "layout", "shape"),
                         [p for p in cases(LARGE_SHAPES)
                          if p.values[3] == "nhwc" and p.values[1] != "float16"])
def test_large_matches_gpu_reference(ext, torch, cc, variant, dtype, direction, layout, shape):
    g = LARGE_SHAPES[shape]
    if variant == "implicit-gemm-tc" and not tc_expected(g, layout):
        pytest.skip("the tensor-core variant runs NHWC only")
    if variant == "implicit-gemm-simt" and shape != "bwd_filter_split" and dtype != "bfloat16":
        pytest.skip("CUDA-core variant: one dtype on the large shapes keeps the file fast")
    run_case(ext, torch, variant, dtype, direction, layout, g, on_gpu=True)


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_tc_large_float16(ext, torch, direction):
    run_case(ext, torch, "implicit-gemm-tc", "float16", direction, "nhwc",
             LARGE_SHAPES["tile_large"], on_gpu=True)


def base_args(**over):
    args = dict(geom(2, 16, 8, 8, 16, 3, 3, pad=1), layout=1, direction=0, dtype=2, x=256,
                filter=256, y=256, workspace=0)
    args.update(over)
    return args


@pytest.mark.parametrize(
    ("variant", "over", "expected"),
    [
        ("implicit-gemm-tc", {"layout": 0}, "NHWC"),
        ("implicit-gemm-tc", {"direction": 1, "c": 16, "k": 12}, "multiples of 8"),
        ("implicit-gemm-tc", {"direction": 2, "c": 12, "k": 16}, "multiples of 8"),
        ("implicit-gemm-tc", {"c": 12, "k": 16}, "multiples of 8"),
        ("implicit-gemm-tc", {"groups": 4}, "multiples of 8"),  # C/g = 4
        ("implicit-gemm-tc", {"dtype": 0}, "does not run float32"),
        ("implicit-gemm-tc", {"x": 258}, "16-byte aligned"),
        ("implicit-gemm-tc", {"workspace": 260}, "workspace 8-byte aligned"),
        ("implicit-gemm-simt", {"workspace": 258}, "workspace 4-byte aligned"),
        ("implicit-gemm-simt", {"groups": 3}, "groups must divide"),
        ("implicit-gemm-simt", {"h": 1, "pad_h": 0}, "output size"),
        ("implicit-gemm-simt", {"n": 0}, ">= 1"),
        ("implicit-gemm-simt", {"stride_w": 0}, "stride"),
        ("implicit-gemm-simt", {"dil_h": 0}, "dilation"),
        ("implicit-gemm-simt", {"pad_w": -1}, "padding"),
        ("implicit-gemm-simt", {"y": 0}, "non-null"),
        ("implicit-gemm-simt", {"n": 65536, "c": 128, "h": 256, "w": 256}, "2**31"),
        ("no-such-conv", {}, "unknown convolution variant"),
    ],
)
def test_support_reasons(ext, cc, variant, over, expected):
    reason = ext.conv_unsupported_reason(variant, base_args(**over), cc)
    assert expected in reason
    if variant != "no-such-conv":
        assert expected in ext.conv_unsupported_reason(variant, base_args(**over), 90)


def test_tc_needs_sm80(ext):
    assert "compute capability >= 8.0" in ext.conv_unsupported_reason("implicit-gemm-tc",
                                                                      base_args(), 75)
    assert ext.conv_unsupported_reason("implicit-gemm-tc", base_args(), 80) == ""


def test_unsupported_call_raises(ext):
    with pytest.raises(ValueError, match="NHWC"):
        ext.conv("implicit-gemm-tc", base_args(layout=0), 0, 0)


def test_workspace_only_for_split_filter_gradient(ext):
    big = geom(16, 32, 28, 28, 32, 3, 3, pad=1)
    for direction in (FORWARD, BACKWARD_DATA):
        assert ext.conv_workspace_bytes("implicit-gemm-simt", base_args(**big, direction=direction)) == 0
    nbytes = ext.conv_workspace_bytes("implicit-gemm-simt", base_args(**big, direction=2))
    assert nbytes > 0 and nbytes % (4 * 32 * 32 * 9) == 0
    assert ext.conv_workspace_bytes("implicit-gemm-tc", base_args(**big)) == 0
    nbytes = ext.conv_workspace_bytes("implicit-gemm-tc", base_args(**big, direction=2))
    assert nbytes > 0 and nbytes % (4 * 32 * 32 * 9) == 0


def test_workspace_size_needs_no_pointers(ext):
    args = base_args(**geom(16, 32, 28, 28, 32, 3, 3, pad=1), direction=2)
    sized = {v: ext.conv_workspace_bytes(v, args) for v in ("implicit-gemm-simt", "implicit-gemm-tc")}
    args.update(x=0, filter=0, y=0)
    assert {v: ext.conv_workspace_bytes(v, args) for v in sized} == sized


def test_missing_workspace_raises(ext):
    args = base_args(**geom(16, 32, 28, 28, 32, 3, 3, pad=1), direction=2)
    with pytest.raises(ValueError, match="workspace"):
        ext.conv("implicit-gemm-simt", args, 0, 0)


def test_missing_field_is_value_error(ext):
    args = base_args()
    del args["filter"]
    with pytest.raises(ValueError, match="filter"):
        ext.conv_output_size(args)


# implicit-gemm-wgmma: ResNet-50's 3x3 layers (at N=2), an M that is not a multiple of the
# 128-pixel tile, 1x1 and 5x5 filters, C != K, strides and dilation; "bn128" is sized so that
# the launch picks the 128-filter tile on 114 and 132 SMs (the others take the 64-filter tile).
WGMMA_SHAPES = {
    "resnet_56": geom(2, 64, 56, 56, 64, 3, 3, pad=1),
    "resnet_28": geom(2, 128, 28, 28, 128, 3, 3, pad=1),
    "resnet_14": geom(2, 256, 14, 14, 256, 3, 3, pad=1),
    "resnet_7": geom(2, 512, 7, 7, 512, 3, 3, pad=1),
    "m49_edge": geom(1, 64, 7, 7, 64, 3, 3, pad=1),
    "1x1": geom(2, 64, 9, 10, 128, 1, 1),
    "5x5_pad2_c128_k64": geom(1, 128, 11, 13, 64, 5, 5, pad=2),
    "c128_k64": geom(3, 128, 10, 9, 64, 3, 3, pad=1),
    "strided_dilated_k192": geom(2, 64, 15, 13, 192, 3, 3, pad=(1, 2), stride=2, dil=(1, 2)),
    "bn128": geom(16, 64, 14, 14, 512, 3, 3, pad=1),
    # Fewer 64-deep GEMM-K blocks than, as many as, or one more than the producer's lag
    # (kStages - 2: 2 on the 64-wide tile, 3 on the 128-wide one): the "full" barriers of the
    # last stages are signalled after the producer's main loop.
    "1x1_kb2_bn64": geom(2, 128, 9, 10, 64, 1, 1),
    "1x1_kb2_bn128": geom(16, 128, 14, 14, 512, 1, 1),
    "1x1_kb4_bn128": geom(16, 256, 14, 14, 512, 1, 1),
}


@pytest.fixture(scope="module")
def hopper(cc):
    if cc != 90:
        pytest.skip(f"{WGMMA} needs compute capability 9.0, the device has {cc / 10:.1f}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("shape", list(WGMMA_SHAPES))
def test_wgmma_matches_reference(ext, torch, cc, hopper, shape, dtype):
    g = WGMMA_SHAPES[shape]
    args = dict(g, layout=LAYOUTS["nhwc"], direction=FORWARD, dtype=DTYPES[dtype], x=256,
                filter=256, y=256, workspace=0)
    assert ext.conv_unsupported_reason(WGMMA, args, cc) == ""
    assert ext.conv_workspace_bytes(WGMMA, args) == 0
    run_case(ext, torch, WGMMA, dtype, "fwd", "nhwc", g, on_gpu=True)


def test_wgmma_is_the_first_choice(torch, hopper):
    from dlcb_kernels.ops.conv_cuda import plan_conv

    def chosen(c, k):
        x = torch.zeros((1, 8, 8, c), dtype=torch.bfloat16, device="cuda")
        w = torch.zeros((k, 3, 3, c), dtype=torch.bfloat16, device="cuda")
        return plan_conv("fwd", x, w, padding=1, layout="NHWC")[1].variant

    assert chosen(64, 128) == WGMMA
    assert chosen(32, 64) == "implicit-gemm-tc"  # refused (C % 64), the next one taken


def wgmma_args(**over):
    return base_args(**{**geom(2, 64, 8, 8, 64, 3, 3, pad=1), **over})


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"c": 96}, "multiples of 64"),
        ({"k": 32}, "multiples of 64"),
        ({"c": 128, "k": 128, "groups": 2}, "groups == 1"),
        ({"layout": 0}, "NHWC"),
        ({"direction": 1}, "forward direction only"),
        ({"direction": 2}, "forward direction only"),
        ({"dtype": 0}, "does not run float32"),
        ({"filter": 264}, "16-byte aligned"),
    ],
)
def test_wgmma_support_reasons(ext, over, expected):
    assert expected in ext.conv_unsupported_reason(WGMMA, wgmma_args(**over), 90)


def test_wgmma_needs_sm90(ext):
    assert "compute capability >= 9.0" in ext.conv_unsupported_reason(WGMMA, wgmma_args(), 80)
    assert "compute capability 9.0" in ext.conv_unsupported_reason(WGMMA, wgmma_args(), 100)
