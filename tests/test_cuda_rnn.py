"""CUDA RNN layers (rnn/rnn.h through the native binding): every variant x cell x dtype it
supports against a float64 numpy reference on the host, plus the support checks and the order in
which "auto" tries the variants. Skips without a CUDA device; the device arrays are torch tensors
(torch has bfloat16)."""

import functools
import zlib

import numpy as np
import pytest

from dlcb_kernels import cuda

STATUS = cuda.status()
requires_gpu = pytest.mark.skipif(
    not STATUS.available, reason=f"needs a CUDA device: {STATUS.reason}"
)

CELLS = {"vanilla_relu": 0, "vanilla_tanh": 1, "lstm": 2, "gru": 3}
GATES = {"vanilla_relu": 1, "vanilla_tanh": 1, "lstm": 4, "gru": 3}
DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2}
TC = "fused-sequence-tc"
VARIANTS = ("fused-sequence", "persistent", TC)
# The tensor-core variant runs the 16-bit dtypes only.
VARIANT_DTYPES = [(v, d) for v in VARIANTS for d in DTYPES if not (v == TC and d == "float32")]
PERSISTENT_MAX_BATCH = 32
# (T, N, I, H): T = 1 .. 25; N = 1, 3, 8, 17, 32, 64, 67, 70 (two batch tiles of the tensor-core
# variant, the second partial), 128; H = 1, 7 (refused by the tensor-core variant: not a multiple
# of 8), 8, 64, 72 (a partial 64-deep k tile and a partial unit block), 130, 200, 256, 1023, 1024;
# I != H throughout.
SHAPES = [
    (4, 128, 64, 1024),
    (25, 1, 12, 8),
    (25, 3, 40, 72),
    (3, 70, 24, 72),
    (5, 17, 33, 200),
    (1, 1, 3, 1),
    (25, 3, 10, 7),
    (25, 8, 33, 64),
    (1, 64, 20, 256),
    (25, 3, 129, 256),
    (25, 1, 40, 1024),
    (25, 8, 64, 1024),
    (1, 3, 50, 1024),
    (25, 64, 17, 1024),
    # N = 32 (persistent's limit): on 132 SMs a float32 gated W_hh leaves room for h only in
    # 512-wide chunks (staged in two passes; H = 1023 without, H = 1024 with 16-byte loads), and
    # H = 1023 gives the last CTA fewer units; N = 67 spans two fused-sequence batch tiles.
    (5, 32, 24, 1023),
    (4, 32, 24, 1024),
    (3, 67, 24, 130),
]
# |out - ref| <= atol + rtol |ref|. The reference takes the same dtype-rounded inputs, so a correct
# kernel differs only by fp32 arithmetic (~1e-6) and the final rounding of each stored value to
# the dtype (half an ulp: 2**-12 for float16, 2**-9 for bfloat16 in [0.5, 1)). The tensor-core
# variant multiplies h_{t-1} rounded to the dtype (its y[t-1]); its reference rounds h the same way
# before each recurrent product, so the same tolerances hold.
TOLERANCE = {"float32": (1e-4, 1e-4), "float16": (1e-3, 1e-3), "bfloat16": (5e-3, 5e-3)}


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def reference(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, operand=lambda h: h):
    """float64 forward of torch.nn.RNN/LSTM/GRU's formulas: y (T, N, H), h_n, c_n (or None).
    operand(h) is what multiplies W_hh (h itself, or h rounded to a 16-bit dtype)."""
    hidden = h0.shape[1]
    gx = x @ w_ih.T + b_ih
    h, c, ys = h0, c0, []
    for t in range(x.shape[0]):
        gh = operand(h) @ w_hh.T + b_hh
        if cell == "vanilla_relu":
            h = np.maximum(gx[t] + gh, 0.0)
        elif cell == "vanilla_tanh":
            h = np.tanh(gx[t] + gh)
        elif cell == "lstm":
            a = gx[t] + gh
            i, f, g, o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        else:
            xr, xz, xn = (gx[t][:, k * hidden:(k + 1) * hidden] for k in range(3))
            hr, hz, hn = (gh[:, k * hidden:(k + 1) * hidden] for k in range(3))
            r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            h = (1.0 - z) * np.tanh(xn + r * hn) + z * h
        ys.append(h)
    return np.stack(ys), h, c if cell == "lstm" else None


@functools.cache
def problem(cell, dtype, shape):
    """Inputs rounded to `dtype` (torch CPU tensors) and the float64 reference outputs."""
    torch = pytest.importorskip("torch")
    T, N, I, H = shape
    G = GATES[cell]
    rng = np.random.default_rng(zlib.crc32(repr((cell, dtype, shape)).encode()))
    bound = 1.0 / np.sqrt(H)  # torch.nn's initialization
    arrays = {
        "x": rng.standard_normal((T, N, I)),
        "h0": rng.uniform(-1, 1, (N, H)),
        "c0": rng.uniform(-1, 1, (N, H)),
        "w_ih": rng.uniform(-bound, bound, (G * H, I)),
        "w_hh": rng.uniform(-bound, bound, (G * H, H)),
        "b_ih": rng.uniform(-bound, bound, G * H),
        "b_hh": rng.uniform(-bound, bound, G * H),
    }
    tdtype = getattr(torch, dtype)
    tensors = {k: torch.from_numpy(v.astype(np.float32)).to(tdtype) for k, v in arrays.items()}
    exact = {k: v.to(torch.float64).numpy() for k, v in tensors.items()}
    return tensors, reference(cell, **exact)


@functools.cache
def expected(variant, cell, dtype, shape):
    """The reference outputs that `variant` must match: problem()'s, or for the tensor-core
    variant the reference whose recurrent operand is h rounded to the dtype."""
    if variant != TC:
        return problem(cell, dtype, shape)[1]
    torch = pytest.importorskip("torch")
    tensors, _ = problem(cell, dtype, shape)
    exact = {k: v.to(torch.float64).numpy() for k, v in tensors.items()}
    tdtype = getattr(torch, dtype)
    return reference(cell, **exact,
                     operand=lambda h: torch.from_numpy(h).to(tdtype).to(torch.float64).numpy())


def _args(cell, dtype, shape, **pointers):
    T, N, I, H = shape
    names = ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "y", "h_n", "c_n", "workspace")
    args = {"cell": CELLS[cell], "dtype": DTYPES[dtype], "timesteps": T, "batch": N,
            "input_size": I, "hidden": H}
    args.update({name: pointers.get(name, 0) for name in names})
    return args


def _fake_args(cell, dtype, shape):
    """Non-null, aligned pointers that the support checks accept but never dereference."""
    return _args(cell, dtype, shape, **{name: 1 << 20 for name in
                                        ("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "y",
                                         "h_n", "c_n", "workspace")})


def run_layer(variant, cell, dtype, shape, repeats=1, side_stream=False):
    """Runs the variant `repeats` times on one workspace, back to back on the default stream or
    on a new (non-blocking) torch stream; returns the last run's y, h_n, c_n as float64 numpy
    arrays, or the support check's reason (a str) when it refuses."""
    torch = pytest.importorskip("torch")
    ext = cuda.module()
    tensors, _ = problem(cell, dtype, shape)
    T, N, _, H = shape
    dev = {k: v.cuda() for k, v in tensors.items()}
    tdtype = getattr(torch, dtype)
    nan = float("nan")  # never-written outputs stay NaN and fail the comparison
    out = {"y": torch.full((T, N, H), nan, dtype=tdtype, device="cuda"),
           "h_n": torch.full((N, H), nan, dtype=tdtype, device="cuda"),
           "c_n": torch.full((N, H), nan, dtype=tdtype, device="cuda")}
    pointers = {k: v.data_ptr() for k, v in {**dev, **out}.items()}
    if cell != "lstm":
        pointers["c0"] = pointers["c_n"] = 0
    args = _args(cell, dtype, shape, **pointers)
    nbytes = ext.rnn_workspace_bytes(variant, args)
    # All ones: no kernel may count on a zeroed workspace (e.g. the grid barrier's counter).
    workspace = torch.full((nbytes,), 255, dtype=torch.uint8, device="cuda")
    args["workspace"] = workspace.data_ptr()
    reason = ext.rnn_unsupported_reason(variant, args, 0)
    if reason:
        return reason
    stream = torch.cuda.Stream() if side_stream else None
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        for _ in range(repeats):
            for v in out.values():
                v.fill_(nan)
            ext.rnn_forward(variant, args, 0, stream.cuda_stream if stream else 0)
    cuda.synchronize(0)
    return tuple(out[k].to(torch.float64).cpu().numpy() for k in ("y", "h_n", "c_n"))


def _assert_close(name, got, want, dtype):
    atol, rtol = TOLERANCE[dtype]
    err = np.abs(got - want)
    bad = ~(err <= atol + rtol * np.abs(want))  # NaN counts as bad
    if bad.any():
        idx = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        pytest.fail(f"{name}: {int(bad.sum())} of {err.size} elements off; worst at {idx}: "
                    f"got {got[idx]!r}, want {want[idx]!r} (atol {atol}, rtol {rtol})")


@requires_gpu
def test_variants_listed():
    listed = {(v["name"], v["dtype"]) for v in cuda.module().rnn_variants()}
    assert listed == set(VARIANT_DTYPES)
    for v in cuda.module().rnn_variants():
        assert v["technique"] and v["min_cc"] == 80


def test_reference_matches_torch_nn():
    """The numpy reference follows torch.nn's gate order and GRU form (runs on the CPU)."""
    torch = pytest.importorskip("torch")
    T, N, I, H = 4, 3, 5, 6
    for cell in CELLS:
        kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cell)
        torch.manual_seed(0)
        if kind is None:
            layer = torch.nn.RNN(I, H, nonlinearity=cell.split("_")[1], dtype=torch.float64)
        else:
            layer = kind(I, H, dtype=torch.float64)
        x = torch.randn(T, N, I, dtype=torch.float64)
        h0 = torch.randn(1, N, H, dtype=torch.float64)
        c0 = torch.randn(1, N, H, dtype=torch.float64)
        with torch.no_grad():
            if cell == "lstm":
                y, (h_n, c_n) = layer(x, (h0, c0))
            else:
                y, h_n = layer(x, h0)
        w = {k: getattr(layer, k + "_l0").detach().numpy()
             for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        ry, rh, rc = reference(cell, x.numpy(), h0[0].numpy(), c0[0].numpy(), w["weight_ih"],
                               w["weight_hh"], w["bias_ih"], w["bias_hh"])
        np.testing.assert_allclose(ry, y.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rh, h_n[0].numpy(), rtol=1e-12, atol=1e-12)
        if cell == "lstm":
            np.testing.assert_allclose(rc, c_n[0].numpy(), rtol=1e-12, atol=1e-12)


@requires_gpu
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}-N{}-I{}-H{}".format(*s))
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("variant,dtype", VARIANT_DTYPES)
def test_forward_matches_reference(variant, cell, dtype, shape):
    result = run_layer(variant, cell, dtype, shape)
    if isinstance(result, str):
        if variant == TC:
            assert shape[3] % 8 and "multiple of 8" in result, result
            return
        assert variant == "persistent", result
        if shape[1] > PERSISTENT_MAX_BATCH:
            assert "batch" in result
            return
        # An H100/H200 (132 SMs x 227 KiB) holds every W_hh here; smaller GPUs may not.
        assert "does not fit on chip" in result, result
        assert cuda.device_properties(0)["sm_count"] < 132, result
        pytest.skip(result)
    y, h_n, c_n = result
    ry, rh, rc = expected(variant, cell, dtype, shape)
    _assert_close("y", y, ry, dtype)
    _assert_close("h_n", h_n, rh, dtype)
    np.testing.assert_array_equal(h_n, y[-1])  # the same rounded values
    if cell == "lstm":
        _assert_close("c_n", c_n, rc, dtype)


@requires_gpu
@pytest.mark.parametrize("cell", list(CELLS))
def test_forward_repeats_on_one_workspace(cell):
    """Forwards queued back to back on one workspace (where the persistent grid barrier's
    counter ends at (T - 1) x CTAs) compute the same values: nothing carries over. On a
    non-blocking stream, so that work queued on the legacy default stream would be unordered.
    The tensor-core variant (16-bit only) runs float16: its steps overlap by programmatic
    dependent launch on sm_90+, and the next forward's first kernels must still wait for them."""
    shape = (25, 8, 33, 64)
    for variant in VARIANTS:
        dtype = "float16" if variant == TC else "float32"
        ry, rh, rc = expected(variant, cell, dtype, shape)
        y, h_n, c_n = run_layer(variant, cell, dtype, shape, repeats=3, side_stream=True)
        _assert_close("y", y, ry, dtype)
        _assert_close("h_n", h_n, rh, dtype)
        if cell == "lstm":
            _assert_close("c_n", c_n, rc, dtype)


@requires_gpu
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_persistent_refuses_w_hh_too_large(dtype):
    # LSTM H = 4096: W_hh is 4 x 4096 x 4096 elements (128 MiB in 16 bits), far beyond the
    # shared memory of any GPU (an H100's 132 x 227 KiB is 29 MiB).
    args = _fake_args("lstm", dtype, (2, 4, 16, 4096))
    reason = cuda.module().rnn_unsupported_reason("persistent", args, 0)
    assert "does not fit on chip" in reason and "4096" in reason and "B of shared memory" in reason
    with pytest.raises(ValueError, match="does not fit on chip"):
        cuda.module().rnn_forward("persistent", args, 0, 0)


@requires_gpu
def test_persistent_refuses_large_batch():
    reason = cuda.module().rnn_unsupported_reason(
        "persistent", _fake_args("gru", "float32", (2, 33, 16, 64)), 0)
    assert "batch 33 > 32" in reason
    assert cuda.module().rnn_unsupported_reason(
        "fused-sequence", _fake_args("gru", "float32", (2, 33, 16, 64)), 0) == ""


@requires_gpu
@pytest.mark.parametrize("variant", VARIANTS)
def test_common_checks(variant):
    ext = cuda.module()
    shape = (2, 4, 16, 32)
    f32 = "bfloat16" if variant == TC else "float32"  # the checks' wide dtype, where it runs
    assert ext.rnn_unsupported_reason(variant, _fake_args("lstm", "float16", shape), 0) == ""
    for field in ("timesteps", "batch", "input_size", "hidden"):
        args = _fake_args("lstm", "float16", shape)
        args[field] = 0
        assert ">= 1" in ext.rnn_unsupported_reason(variant, args, 0)
    for field in ("x", "w_hh", "y", "h_n", "workspace"):
        args = _fake_args("gru", f32, shape)
        args[field] = 0
        assert "non-null" in ext.rnn_unsupported_reason(variant, args, 0)
    args = _fake_args("lstm", f32, shape)
    args["c0"] = 0
    assert "c0" in ext.rnn_unsupported_reason(variant, args, 0)
    args = _fake_args("gru", f32, shape)
    args["c0"] = args["c_n"] = 0  # used by LSTM only
    assert ext.rnn_unsupported_reason(variant, args, 0) == ""
    args = _fake_args("vanilla_tanh", "bfloat16", shape)
    args["x"] += 1
    assert "aligned" in ext.rnn_unsupported_reason(variant, args, 0)
    args = _fake_args("lstm", f32, (100000, 100000, 16, 32))
    assert "2**31" in ext.rnn_unsupported_reason(variant, args, 0)
    assert "unknown RNN variant" in ext.rnn_unsupported_reason("nope", args, 0)
    with pytest.raises(ValueError, match="out of range"):
        ext.rnn_unsupported_reason(variant, {**args, "cell": 4}, 0)


@requires_gpu
def test_workspace_bytes():
    ext = cuda.module()
    args = _fake_args("lstm", "float16", (25, 8, 64, 1024))
    # gx (T*N*4H fp32) + two h buffers + c + the barrier counter.
    assert ext.rnn_workspace_bytes("persistent", args) >= 4 * (25 * 8 * 4096 + 3 * 8 * 1024) + 4
    with pytest.raises(ValueError, match="unknown RNN variant"):
        ext.rnn_workspace_bytes("nope", args)


@requires_gpu
def test_tensor_core_support_reasons():
    ext = cuda.module()
    shape = (2, 4, 16, 72)
    assert ext.rnn_unsupported_reason(TC, _fake_args("lstm", "bfloat16", shape), 0) == ""
    assert ext.rnn_unsupported_reason(TC, _fake_args("gru", "float16", shape), 0) == ""
    f32 = _fake_args("lstm", "float32", shape)
    assert "does not run float32" in ext.rnn_unsupported_reason(TC, f32, 0)
    with pytest.raises(ValueError, match="does not run float32"):
        ext.rnn_workspace_bytes(TC, f32)
    for hidden in (1, 7, 12, 1020):
        args = _fake_args("vanilla_relu", "float16", (2, 4, 16, hidden))
        assert f"hidden {hidden} must be a multiple of 8" in ext.rnn_unsupported_reason(TC, args, 0)
    with pytest.raises(ValueError, match="multiple of 8"):
        ext.rnn_forward(TC, _fake_args("lstm", "bfloat16", (2, 4, 16, 7)), 0, 0)
    for field in ("w_hh", "h0", "y"):  # read or written as the 16-byte cp.async operands
        args = _fake_args("lstm", "bfloat16", shape)
        args[field] += 8
        assert "16-byte aligned" in ext.rnn_unsupported_reason(TC, args, 0)
    for field in ("x", "w_ih", "c0", "h_n"):  # element-aligned is enough
        args = _fake_args("lstm", "bfloat16", shape)
        args[field] += 8
        assert ext.rnn_unsupported_reason(TC, args, 0) == ""
    args = _fake_args("lstm", "bfloat16", (1, 65535 * 64 + 1, 1, 8))
    assert "batch must be <= 65535 * 64" in ext.rnn_unsupported_reason(TC, args, 0)
    args = _fake_args("lstm", "bfloat16", (1, 65535 * 64, 1, 8))
    assert ext.rnn_unsupported_reason(TC, args, 0) == ""


def test_auto_order():
    from dlcb_kernels.ops import rnn_cuda

    assert set(rnn_cuda.VARIANTS) == set(VARIANTS)
    limit = rnn_cuda.PERSISTENT_FIRST_MAX_BATCH
    for dtype in ("float16", "bfloat16"):
        assert rnn_cuda.auto_candidates(dtype, limit + 1) == [TC, "persistent", "fused-sequence"]
        assert rnn_cuda.auto_candidates(dtype, 1) == ["persistent", TC, "fused-sequence"]
    for batch in (1, limit + 1):
        assert rnn_cuda.auto_candidates("float32", batch) == ["persistent", "fused-sequence"]


@requires_gpu
@pytest.mark.parametrize("dtype,shape,want", [
    ("bfloat16", (4, 128, 64, 1024), TC),
    ("float16", (3, 70, 24, 72), TC),
    ("bfloat16", (25, 3, 129, 256), "persistent"),
    ("bfloat16", (25, 3, 40, 7), "persistent"),
    ("float32", (4, 128, 64, 1024), "fused-sequence"),
    ("float16", (1, 64, 20, 256), TC),
])
def test_auto_picks(dtype, shape, want):
    torch = pytest.importorskip("torch")
    from dlcb_kernels.ops import rnn_cuda

    tensors, _ = problem("lstm", dtype, shape)
    dev = {k: v.cuda() for k, v in tensors.items()}
    weights = {"weight_ih": dev["w_ih"], "weight_hh": dev["w_hh"], "bias_ih": dev["b_ih"],
               "bias_hh": dev["b_hh"]}
    _, _, _, chosen = rnn_cuda.rnn_cuda(dev["x"], dev["h0"], weights, cell="lstm", c0=dev["c0"])
    torch.cuda.synchronize()
    assert chosen == want
