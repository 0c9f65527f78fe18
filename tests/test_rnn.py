"""Recurrent layers (vanilla, LSTM, GRU) against a float64 numpy reference (forward and BPTT),
finite differences, torch.nn.RNN/LSTM/GRU (when torch imports), threads, validation."""

import numpy as np
import pytest

import dlcb_kernels as dk

GATES = {"vanilla": 1, "lstm": 4, "gru": 3}
CELLS = list(GATES)
KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


# ---------------------------------------------------------------------------------------------
# float64 reference
# ---------------------------------------------------------------------------------------------

def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def ref_forward(x, h0, w, cell, c0=None, nonlinearity="relu"):
    """Returns y (T, N, H), h_n, c_n and a per-step cache for ref_backward (all float64)."""
    x = x.astype(np.float64)
    h = h0.astype(np.float64)
    W = {k: v.astype(np.float64) for k, v in w.items()}
    H = W["weight_hh"].shape[1]
    c = np.zeros_like(h) if c0 is None else c0.astype(np.float64)
    ys, cache = [], []
    for t in range(x.shape[0]):
        gi = x[t] @ W["weight_ih"].T + W["bias_ih"]  # input part, (N, G*H)
        gh = h @ W["weight_hh"].T + W["bias_hh"]     # recurrent part, (N, G*H)
        step = {"h_prev": h, "c_prev": c}
        if cell == "vanilla":
            a = gi + gh
            h = np.maximum(a, 0.0) if nonlinearity == "relu" else np.tanh(a)
            step["a"] = a
        elif cell == "lstm":
            a = gi + gh
            i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
            i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
            c = f * c + i * g
            h = o * np.tanh(c)
            step.update(i=i, f=f, g=g, o=o, c=c)
        else:  # gru
            r = sigmoid(gi[:, :H] + gh[:, :H])
            z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            hn = gh[:, 2 * H:]
            n = np.tanh(gi[:, 2 * H:] + r * hn)
            h = (1.0 - z) * n + z * h
            step.update(r=r, z=z, n=n, hn=hn)
        step["h"] = h
        cache.append(step)
        ys.append(h)
    return np.stack(ys), h, (c if cell == "lstm" else None), cache


def ref_backward(x, w, cell, cache, dy, dh_n=None, dc_n=None, nonlinearity="relu"):
    """Backpropagation through time of sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n)."""
    x = x.astype(np.float64)
    W = {k: v.astype(np.float64) for k, v in w.items()}
    T, N, _ = x.shape
    H = W["weight_hh"].shape[1]
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    dx = np.zeros_like(x)
    dh_next = np.zeros((N, H)) if dh_n is None else dh_n.astype(np.float64)
    dc_next = np.zeros((N, H)) if dc_n is None else dc_n.astype(np.float64)
    for t in reversed(range(T)):
        s = cache[t]
        dh = dy[t].astype(np.float64) + dh_next
        if cell == "vanilla":
            if nonlinearity == "relu":
                da = dh * (s["a"] > 0)
            else:
                da = dh * (1.0 - s["h"] ** 2)
            dgi = dgh = da
            dh_direct = 0.0
        elif cell == "lstm":
            tc = np.tanh(s["c"])
            dc = dc_next + dh * s["o"] * (1.0 - tc ** 2)
            di = dc * s["g"] * s["i"] * (1 - s["i"])
            df = dc * s["c_prev"] * s["f"] * (1 - s["f"])
            dg = dc * s["i"] * (1 - s["g"] ** 2)
            do = dh * tc * s["o"] * (1 - s["o"])
            dgi = dgh = np.concatenate([di, df, dg, do], axis=1)
            dc_next = dc * s["f"]
            dh_direct = 0.0
        else:
            r, z, n, hn = s["r"], s["z"], s["n"], s["hn"]
            dan = dh * (1 - z) * (1 - n ** 2)
            dar = dan * hn * r * (1 - r)
            daz = dh * (s["h_prev"] - n) * z * (1 - z)
            dgi = np.concatenate([dar, daz, dan], axis=1)
            dgh = np.concatenate([dar, daz, dan * r], axis=1)
            dh_direct = dh * z
        grads["weight_ih"] += dgi.T @ x[t]
        grads["bias_ih"] += dgi.sum(0)
        grads["weight_hh"] += dgh.T @ s["h_prev"]
        grads["bias_hh"] += dgh.sum(0)
        dx[t] = dgi @ W["weight_ih"]
        dh_next = dgh @ W["weight_hh"] + dh_direct
    grads["h0"] = dh_next
    if cell == "lstm":
        grads["c0"] = dc_next
    grads["x"] = dx
    return grads


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def make(rng, cell, T, N, I, H, scale=1.0):
    G = GATES[cell]
    k = scale / np.sqrt(H)  # PyTorch's initialization range
    w = {
        "weight_ih": rng.uniform(-k, k, (G * H, I)),
        "weight_hh": rng.uniform(-k, k, (G * H, H)),
        "bias_ih": rng.uniform(-k, k, G * H),
        "bias_hh": rng.uniform(-k, k, G * H),
    }
    w = {n: v.astype(np.float32) for n, v in w.items()}
    x = rng.uniform(-1, 1, (T, N, I)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (N, H)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (N, H)).astype(np.float32) if cell == "lstm" else None
    return x, h0, c0, w


def assert_close(got, want, name, tol):
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= tol, f"{name}: relative error {err:.3g} > {tol:.3g}"


def tolerance(T, I, H):
    # Observed errors are 1e-8 .. 1e-6 relative to the largest value; float32 accumulation over
    # I + H products, a few steps deep.
    return 1e-6 + 2e-7 * np.sqrt(I + H)


# ---------------------------------------------------------------------------------------------
# against the reference: forward and backward over many shapes
# ---------------------------------------------------------------------------------------------

SHAPES = [  # T, N, I, H: every H crosses or sits on a panel edge (mr 14 / 4 / 6, nr 32 / 16)
    (1, 1, 3, 1), (2, 3, 4, 5), (7, 16, 9, 17), (2, 33, 20, 64), (7, 3, 50, 130), (1, 16, 7, 130),
    (2, 1, 64, 17), (7, 33, 5, 5), (1, 3, 130, 64), (2, 16, 1, 1),
    (5, 2, 30, 70), (3, 1, 9, 300), (4, 4, 11, 129),  # batch 1 to 4: forward_small_batch.cpp
]


ISAS = dk.available_isas()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,N,I,H", SHAPES)
def test_forward_backward_match_reference(rng, isa, cell, T, N, I, H):
    x, h0, c0, w = make(rng, cell, T, N, I, H)
    out = dk.rnn(x, h0, w, cell=cell, c0=c0, training=True, isa=isa)
    assert isa == "auto" or isa in out.algorithm
    y, h_n, c_n, cache = ref_forward(x, h0, w, cell, c0)
    tol = tolerance(T, I, H)
    assert out.y.shape == (T, N, H) and out.y.dtype == np.float32
    assert_close(out.y, y, "y", tol)
    assert_close(out.h_n, h_n, "h_n", tol)
    if cell == "lstm":
        assert_close(out.c_n, c_n, "c_n", tol)
    else:
        assert out.c_n is None

    dy = rng.uniform(-1, 1, (T, N, H)).astype(np.float32)
    dh_n = rng.uniform(-1, 1, (N, H)).astype(np.float32)
    dc_n = rng.uniform(-1, 1, (N, H)).astype(np.float32) if cell == "lstm" else None
    got = dk.rnn_backward(out, dy, dh_n=dh_n, dc_n=dc_n, input_grad=True)
    want = ref_backward(x, w, cell, cache, dy, dh_n, dc_n)
    expected = set(KEYS) | {"h0", "x"} | ({"c0"} if cell == "lstm" else set())
    assert set(got) == expected
    for k in expected:
        assert_close(got[k], want[k], k, 4 * tol)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("T,N,I,H", [(7, 33, 20, 130), (2, 3, 5, 17)])
def test_vanilla_nonlinearities(rng, nonlinearity, T, N, I, H):
    x, h0, _, w = make(rng, "vanilla", T, N, I, H)
    out = dk.rnn(x, h0, w, cell="vanilla", nonlinearity=nonlinearity, training=True)
    y, _, _, cache = ref_forward(x, h0, w, "vanilla", nonlinearity=nonlinearity)
    assert_close(out.y, y, "y", tolerance(T, I, H))
    dy = rng.uniform(-1, 1, (T, N, H)).astype(np.float32)
    got = dk.rnn_backward(out, dy)
    want = ref_backward(x, w, "vanilla", cache, dy, nonlinearity=nonlinearity)
    for k in (*KEYS, "h0"):
        assert_close(got[k], want[k], k, 4 * tolerance(T, I, H))
    assert "x" not in got


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cell", CELLS)
def test_large_hidden_crosses_kc(rng, isa, cell):
    # H = 600 > kc (512): the recurrent micro-kernel runs H (or G*H) deep in one call.
    T, N, I, H = 2, 16, 40, 600
    x, h0, c0, w = make(rng, cell, T, N, I, H)
    out = dk.rnn(x, h0, w, cell=cell, c0=c0, training=True, isa=isa)
    y, _, _, cache = ref_forward(x, h0, w, cell, c0)
    assert_close(out.y, y, "y", tolerance(T, I, H))
    dy = rng.uniform(-1, 1, (T, N, H)).astype(np.float32)
    got = dk.rnn_backward(out, dy)
    want = ref_backward(x, w, cell, cache, dy)
    for k in (*KEYS, "h0"):
        assert_close(got[k], want[k], k, 4 * tolerance(T, I, H))


@pytest.mark.parametrize("cell", CELLS)
def test_reference_backward_by_finite_differences(rng, cell):
    # The float64 reference's backward against central differences of its own forward.
    T, N, I, H = 3, 2, 3, 4
    x, h0, c0, w = make(rng, cell, T, N, I, H)
    w = {k: v.astype(np.float64) for k, v in w.items()}
    dy = rng.uniform(-1, 1, (T, N, H))
    nl = "tanh" if cell == "vanilla" else "relu"

    def loss(ww, hh0):
        return float((ref_forward(x, hh0, ww, cell, c0, nl)[0] * dy).sum())

    _, _, _, cache = ref_forward(x, h0, w, cell, c0, nl)
    grads = ref_backward(x, w, cell, cache, dy, nonlinearity=nl)
    eps = 1e-6
    for k in KEYS:
        num = np.zeros_like(w[k])
        for idx in np.ndindex(w[k].shape):
            wp = {n: v.copy() for n, v in w.items()}
            wm = {n: v.copy() for n, v in w.items()}
            wp[k][idx] += eps
            wm[k][idx] -= eps
            num[idx] = (loss(wp, h0) - loss(wm, h0)) / (2 * eps)
        np.testing.assert_allclose(grads[k], num, rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_our_backward_by_finite_differences(rng, cell):
    # Our float32 kernels: central differences of our forward (eps large enough for float32).
    T, N, I, H = 3, 2, 3, 4
    x, h0, c0, w = make(rng, cell, T, N, I, H)
    dy = rng.uniform(-1, 1, (T, N, H)).astype(np.float32)
    nl = "tanh" if cell == "vanilla" else "relu"

    def loss(ww, hh0):
        out = dk.rnn(x, hh0, ww, cell=cell, c0=c0, nonlinearity=nl)
        return float((out.y.astype(np.float64) * dy).sum())

    got = dk.rnn_backward(dk.rnn(x, h0, w, cell=cell, c0=c0, nonlinearity=nl, training=True), dy)
    eps = 1e-2
    for k in KEYS:
        num = np.zeros(w[k].shape)
        for idx in np.ndindex(w[k].shape):
            wp = {n: v.copy() for n, v in w.items()}
            wm = {n: v.copy() for n, v in w.items()}
            wp[k][idx] += eps
            wm[k][idx] -= eps
            num[idx] = (loss(wp, h0) - loss(wm, h0)) / (2 * eps)
        np.testing.assert_allclose(got[k], num, rtol=2e-3, atol=2e-4, err_msg=k)
    num_h0 = np.zeros(h0.shape)
    for idx in np.ndindex(h0.shape):
        hp, hm = h0.copy(), h0.copy()
        hp[idx] += eps
        hm[idx] -= eps
        num_h0[idx] = (loss(w, hp) - loss(w, hm)) / (2 * eps)
    np.testing.assert_allclose(got["h0"], num_h0, rtol=2e-3, atol=2e-4, err_msg="h0")


# ---------------------------------------------------------------------------------------------
# against PyTorch with the same weights
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell,nonlinearity", [("vanilla", "relu"), ("vanilla", "tanh"), ("lstm", "relu"),
                                               ("gru", "relu")])
@pytest.mark.parametrize("T,N,I,H", [(5, 3, 7, 17), (4, 33, 48, 64)])
def test_matches_torch(cell, nonlinearity, T, N, I, H):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls = {"vanilla": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    kw = {"nonlinearity": nonlinearity} if cell == "vanilla" else {}
    m = cls(I, H, **kw)
    w = {k: getattr(m, k + "_l0").detach().numpy().copy() for k in KEYS}
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    h0 = rng.standard_normal((N, H)).astype(np.float32)
    c0 = rng.standard_normal((N, H)).astype(np.float32) if cell == "lstm" else None
    dy = rng.standard_normal((T, N, H)).astype(np.float32)

    out = dk.rnn(x, h0, w, cell=cell, c0=c0, nonlinearity=nonlinearity, training=True)
    grads = dk.rnn_backward(out, dy)

    h0_t = torch.tensor(h0[None], requires_grad=True)
    if cell == "lstm":
        c0_t = torch.tensor(c0[None], requires_grad=True)
        y_t, (h_t, c_t) = m(torch.tensor(x), (h0_t, c0_t))
        np.testing.assert_allclose(out.c_n, c_t[0].detach().numpy(), atol=2e-5)
    else:
        y_t, h_t = m(torch.tensor(x), h0_t)
    np.testing.assert_allclose(out.y, y_t.detach().numpy(), atol=2e-5)
    np.testing.assert_allclose(out.h_n, h_t[0].detach().numpy(), atol=2e-5)
    (y_t * torch.tensor(dy)).sum().backward()
    for k in KEYS:
        want = getattr(m, k + "_l0").grad.numpy()
        np.testing.assert_allclose(grads[k], want, atol=2e-4 * max(1.0, float(np.abs(want).max())), err_msg=k)
    np.testing.assert_allclose(grads["h0"], h0_t.grad[0].numpy(), atol=2e-5)
    if cell == "lstm":
        np.testing.assert_allclose(grads["c0"], c0_t.grad[0].numpy(), atol=2e-5)


# ---------------------------------------------------------------------------------------------
# API behaviour
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_rnn_cell_is_one_step(rng, cell):
    x, h0, c0, w = make(rng, cell, 1, 5, 6, 19)
    h1, c1 = dk.rnn_cell(x[0], h0, w, cell=cell, c=c0)
    out = dk.rnn(x, h0, w, cell=cell, c0=c0)
    np.testing.assert_array_equal(h1, out.h_n)
    np.testing.assert_array_equal(h1, out.y[0])
    if cell == "lstm":
        np.testing.assert_array_equal(c1, out.c_n)
    else:
        assert c1 is None


@pytest.mark.parametrize("cell", CELLS)
def test_threads_agree_and_prepared_weights(rng, cell):
    T, N, I, H = 4, 20, 30, 70
    x, h0, c0, w = make(rng, cell, T, N, I, H)
    dy = rng.uniform(-1, 1, (T, N, H)).astype(np.float32)
    results = []
    for threads in (1, 2, 3):
        out = dk.rnn(x, h0, w, cell=cell, c0=c0, training=True, threads=threads)
        results.append((out, dk.rnn_backward(out, dy, threads=threads)))
    prepared = dk.prepare_rnn_weights(w, cell)
    out_p = dk.rnn(x, h0, prepared, cell=cell, c0=c0, training=True)
    results.append((out_p, dk.rnn_backward(out_p, dy)))
    assert "prepared" in out_p.algorithm and "packed in the call" in results[0][0].algorithm
    assert results[0][0].threads == 1
    base_out, base_g = results[0]
    for out, g in results[1:]:
        np.testing.assert_allclose(out.y, base_out.y, rtol=1e-5, atol=1e-6)
        for k in base_g:
            np.testing.assert_allclose(g[k], base_g[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_prepared_weights_are_a_private_copy(rng):
    x, h0, _, w = make(rng, "gru", 2, 3, 4, 5)
    prepared = dk.prepare_rnn_weights(w, "gru")
    before = dk.rnn(x, h0, prepared, cell="gru").y.copy()
    w["weight_hh"][:] = 0.0
    np.testing.assert_array_equal(dk.rnn(x, h0, prepared, cell="gru").y, before)
    assert not prepared.weights["weight_hh"].flags.writeable
    with pytest.raises(ValueError, match="prepared for cell 'gru'"):
        dk.rnn(x, h0, prepared, cell="lstm")


def test_non_contiguous_inputs(rng):
    x, h0, c0, w = make(rng, "lstm", 3, 4, 5, 6)
    x_nc = np.asfortranarray(x)
    w_nc = dict(w, weight_hh=np.asfortranarray(w["weight_hh"]))
    out = dk.rnn(x_nc, h0, w_nc, cell="lstm", c0=c0)
    np.testing.assert_array_equal(out.y, dk.rnn(x, h0, w, cell="lstm", c0=c0).y)


def test_lstm_c0_defaults_to_zero(rng):
    x, h0, _, w = make(rng, "lstm", 3, 4, 5, 6)
    out = dk.rnn(x, h0, w, cell="lstm")
    y, _, _, _ = ref_forward(x, h0, w, "lstm")
    assert_close(out.y, y, "y", 1e-5)


def test_training_saves_state(rng):
    T, N, I, H = 3, 4, 5, 6
    for cell in CELLS:
        x, h0, c0, w = make(rng, cell, T, N, I, H)
        out = dk.rnn(x, h0, w, cell=cell, c0=c0, training=True)
        s = out.saved
        assert s["h"].shape == (T + 1, N, H)
        np.testing.assert_array_equal(s["h"][0], h0)
        np.testing.assert_array_equal(s["h"][1:], out.y)
        assert (s["gates"] is None) == (cell == "vanilla")
        if cell != "vanilla":
            assert s["gates"].shape == (T, GATES[cell] * H, N)
        assert (s["c"] is not None) == (cell == "lstm")
        assert (s["hn"] is not None) == (cell == "gru")
        assert dk.rnn(x, h0, w, cell=cell, c0=c0).saved is None


def test_nan_input_does_not_crash(rng):
    for cell in CELLS:
        x, h0, c0, w = make(rng, cell, 3, 4, 5, 6)
        x[1, 2, 3] = np.nan
        out = dk.rnn(x, h0, w, cell=cell, c0=c0, training=True)
        assert np.isnan(out.y[1:, 2]).any()
        assert np.isfinite(out.y[0]).all()
        dk.rnn_backward(out, np.ones_like(out.y))


def test_validation_errors(rng):
    x, h0, c0, w = make(rng, "lstm", 3, 4, 5, 6)
    with pytest.raises(ValueError, match="cell"):
        dk.rnn(x, h0, w, cell="transformer")
    with pytest.raises(TypeError, match="x"):
        dk.rnn(x.tolist(), h0, w, cell="lstm")
    with pytest.raises(TypeError, match="x must have dtype float32"):
        dk.rnn(x.astype(np.float64), h0, w, cell="lstm")
    with pytest.raises(ValueError, match="x must be 3-D"):
        dk.rnn(x[0], h0, w, cell="lstm")
    with pytest.raises(TypeError, match="h0"):
        dk.rnn(x, h0.astype(np.float16), w, cell="lstm")
    with pytest.raises(ValueError, match="h0 must have shape"):
        dk.rnn(x, h0[:, :5], w, cell="lstm")
    with pytest.raises(ValueError, match="c0 must have shape"):
        dk.rnn(x, h0, w, cell="lstm", c0=c0[:3])
    with pytest.raises(ValueError, match="c0 is for the LSTM only"):
        dk.rnn(x, h0, make(rng, "gru", 3, 4, 5, 6)[3], cell="gru", c0=c0)
    with pytest.raises(ValueError, match="input size"):
        dk.rnn(x[:, :, :4], h0, w, cell="lstm")
    with pytest.raises(ValueError, match="N >= 1"):
        dk.rnn(x[:, :0], h0[:0], w, cell="lstm")
    with pytest.raises(ValueError, match="T >= 1"):
        dk.rnn(x[:0], h0, w, cell="lstm")
    with pytest.raises(ValueError, match="weight_hh"):
        dk.rnn(x, h0, w, cell="gru")  # G = 4 weights for a G = 3 cell
    with pytest.raises(ValueError, match="missing"):
        dk.rnn(x, h0, {k: w[k] for k in KEYS[:3]}, cell="lstm")
    with pytest.raises(ValueError, match="unexpected keys"):
        dk.rnn(x, h0, dict(w, weight_hr=w["weight_hh"]), cell="lstm")
    with pytest.raises(TypeError, match="bias_hh"):
        dk.rnn(x, h0, dict(w, bias_hh=w["bias_hh"].astype(np.float64)), cell="lstm")
    with pytest.raises(ValueError, match="bias_ih"):
        dk.rnn(x, h0, dict(w, bias_ih=w["bias_ih"][:-1]), cell="lstm")
    with pytest.raises(ValueError, match="weight_ih"):
        dk.rnn(x, h0, dict(w, weight_ih=w["weight_ih"][:-1]), cell="lstm")
    with pytest.raises(TypeError, match="weights must be a dict"):
        dk.rnn(x, h0, list(w.values()), cell="lstm")
    with pytest.raises(ValueError, match="nonlinearity"):
        dk.rnn(x, h0, w, cell="lstm", nonlinearity="tanh")
    with pytest.raises(ValueError, match="nonlinearity"):
        dk.rnn(x, h0, w, cell="lstm", nonlinearity="gelu")
    with pytest.raises(ValueError, match="threads"):
        dk.rnn(x, h0, w, cell="lstm", threads=0)
    with pytest.raises(TypeError, match="training"):
        dk.rnn(x, h0, w, cell="lstm", training=1)

    out = dk.rnn(x, h0, w, cell="lstm")
    with pytest.raises(ValueError, match="training=True"):
        dk.rnn_backward(out, np.ones_like(out.y))
    out = dk.rnn(x, h0, w, cell="lstm", training=True)
    with pytest.raises(ValueError, match="dy must have the shape"):
        dk.rnn_backward(out, np.ones_like(out.y)[:, :3])
    with pytest.raises(TypeError, match="dy"):
        dk.rnn_backward(out, np.ones(out.y.shape))
    with pytest.raises(ValueError, match="dh_n"):
        dk.rnn_backward(out, np.ones_like(out.y), dh_n=np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match="output"):
        dk.rnn_backward({"y": out.y}, np.ones_like(out.y))
    gw = make(rng, "gru", 3, 4, 5, 6)[3]
    out_g = dk.rnn(x, h0, gw, cell="gru", training=True)
    with pytest.raises(ValueError, match="dc_n is for the LSTM only"):
        dk.rnn_backward(out_g, np.ones_like(out_g.y), dc_n=np.ones((4, 6), np.float32))


def test_rnn_cell_messages_name_its_arguments(rng):
    x, h0, c0, w = make(rng, "lstm", 1, 4, 5, 6)
    with pytest.raises(ValueError, match="x_t must be 2-D"):
        dk.rnn_cell(x, h0, w, cell="lstm")
    with pytest.raises(ValueError, match="h must have shape"):
        dk.rnn_cell(x[0], h0[:, :3], w, cell="lstm")
    with pytest.raises(ValueError, match="c must have shape"):
        dk.rnn_cell(x[0], h0, w, cell="lstm", c=c0[:2])
    with pytest.raises(ValueError, match="x_t has input size"):
        dk.rnn_cell(x[0, :, :2], h0, w, cell="lstm")


def test_more_threads_than_work(rng):
    from dlcb_kernels import _cpu

    most = _cpu.thread_limit()  # the most threads a call may ask for here
    x, h0, c0, w = make(rng, "lstm", 2, 8, 4, 5)  # batch 8: the micro-kernel steps
    out = dk.rnn(x, h0, w, cell="lstm", c0=c0, threads=most, training=True)
    # one thread per unit group of mr hidden units (one batch panel): 1 on AVX2 and AVX-512
    assert out.threads == -(-5 // dk.kernel_info()["mr"])
    ref = dk.rnn(x, h0, w, cell="lstm", c0=c0, threads=1, training=True)
    np.testing.assert_array_equal(out.y, ref.y)
    g64 = dk.rnn_backward(out, np.ones_like(out.y), threads=most)
    g1 = dk.rnn_backward(ref, np.ones_like(ref.y), threads=1)
    for k in g1:
        np.testing.assert_allclose(g64[k], g1[k], rtol=1e-5, atol=1e-6)
    dk.prepare_rnn_weights(w, "lstm", threads=most)


def test_native_binding_rechecks_shapes(rng):
    # Direct calls into _cpu with inconsistent arrays raise instead of reading out of bounds.
    from dlcb_kernels import _cpu

    x, h0, c0, w = make(rng, "lstm", 3, 4, 5, 6)
    args = dict(cell="lstm", relu=True, x=x, h0=h0, c0=c0, weight_ih=w["weight_ih"],
                weight_hh=w["weight_hh"], bias_ih=w["bias_ih"], bias_hh=w["bias_hh"], packed=None,
                training=False, isa="auto", threads=1)
    _cpu.rnn_forward(**args)
    for k, bad in [("h0", h0[:2]), ("bias_hh", w["bias_hh"][:3]), ("x", np.asfortranarray(x)),
                   ("packed", np.zeros(7, np.float32)), ("weight_ih", w["weight_ih"].astype(np.float64)),
                   ("cell", "gru")]:
        with pytest.raises((ValueError, TypeError)):
            _cpu.rnn_forward(**dict(args, **{k: bad}))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("cell,nonlinearity", [("vanilla", "tanh"), ("lstm", "relu")])
@pytest.mark.parametrize("N", [1, 16])  # both forward step paths
def test_tanh_keeps_relative_precision_near_zero(rng, isa, cell, nonlinearity, N):
    # Tiny pre-activations (1e-9 .. 1e-5): tanh(a) ~ a, so the output must match the float64
    # reference relative to its own size, not only to 1 (1 - 2 / (e^2a + 1) gave 0 at 1e-8).
    x, h0, c0, w = make(rng, cell, 2, N, 5, 7)
    x = np.abs(x)  # all terms positive: no cancellation in the pre-activation sums themselves
    for scale in (1e-9, 1e-7, 1e-5):
        ws = {k: np.abs(v) * np.float32(scale) for k, v in w.items()}
        h0s = np.abs(h0) * np.float32(scale)
        c0s = None if c0 is None else np.abs(c0) * np.float32(scale)
        out = dk.rnn(x, h0s, ws, cell=cell, nonlinearity=nonlinearity, c0=c0s, isa=isa)
        want = ref_forward(x, h0s, ws, cell, c0s, nonlinearity)[0]
        rel = np.abs(out.y - want) / np.maximum(np.abs(want), 1e-30)
        assert rel.max() < 1e-5, (scale, rel.max())


def test_misaligned_arrays_are_copied(rng):
    from test_gemm import misaligned

    x, h0, c0, w = make(rng, "lstm", 3, 2, 5, 7)
    want = dk.rnn(x, h0, w, cell="lstm", c0=c0)
    got = dk.rnn(misaligned(x), misaligned(h0), {k: misaligned(v) for k, v in w.items()}, cell="lstm",
                 c0=misaligned(c0))
    np.testing.assert_array_equal(got.y, want.y)
