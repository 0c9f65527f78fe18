"""The numpy baselines, which in float64 are also the reference every result is checked against:
against direct sums, adjointness, finite differences and (when installed) torch."""

import numpy as np
import pytest

from dlcb_kernels import numpy_ops


def direct_conv(x, w, stride, padding, dilation, groups):
    """The definition, one output tap at a time (small shapes only)."""
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    p = numpy_ops.conv_output_size(h, r, padding[0], stride[0], dilation[0])
    q = numpy_ops.conv_output_size(wd, s, padding[1], stride[1], dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((n, k, p, q))
    kg = k // groups
    for kk in range(k):
        g = kk // kg
        for i in range(r):
            for j in range(s):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * dilation[0]:i * dilation[0] + stride[0] * (p - 1) + 1:stride[0],
                           j * dilation[1]:j * dilation[1] + stride[1] * (q - 1) + 1:stride[1]]
                y[:, kk] += np.einsum("ncpq,c->npq", patch, w[kk, :, i, j])
    return y


CASES = [
    # (n, c, h, w, k, r, s, pad, stride, dilation, groups)
    (2, 3, 7, 9, 4, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 11, 10, 6, 5, 2, (2, 0), (2, 3), (1, 1), 2),
    (3, 2, 13, 17, 5, 3, 3, (3, 1), (1, 2), (2, 3), 1),
    (2, 6, 8, 8, 6, 3, 3, (1, 1), (2, 2), (1, 1), 6),
    (1, 1, 16, 40, 3, 5, 20, (0, 0), (2, 2), (1, 1), 1),
    (2, 8, 5, 5, 4, 1, 1, (0, 0), (1, 1), (1, 1), 1),
]


@pytest.mark.parametrize("case", CASES)
def test_conv_matches_the_definition_and_backward_ops_are_its_adjoints(case):
    n, c, h, wd, k, r, s, pad, stride, dil, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((k, c // groups, r, s))
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
    y = numpy_ops.conv2d_forward(x, w, **kw)
    np.testing.assert_allclose(y, direct_conv(x, w, stride, pad, dil, groups), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = numpy_ops.conv2d_backward_data(dy, w, x.shape, **kw)
    dw = numpy_ops.conv2d_backward_filter(x, dy, w.shape, **kw)
    assert np.vdot(y, dy) == pytest.approx(np.vdot(x, dx), rel=1e-10)
    assert np.vdot(y, dy) == pytest.approx(np.vdot(w, dw), rel=1e-10)


def _rnn_weights(rng, cell, inp, hidden):
    g = numpy_ops.GATES[cell]
    return {"weight_ih": rng.uniform(-0.5, 0.5, (g * hidden, inp)),
            "weight_hh": rng.uniform(-0.5, 0.5, (g * hidden, hidden)),
            "bias_ih": rng.uniform(-0.5, 0.5, g * hidden), "bias_hh": rng.uniform(-0.5, 0.5, g * hidden)}


@pytest.mark.parametrize("cell", ["vanilla", "lstm", "gru"])
def test_rnn_backward_matches_finite_differences(cell):
    rng = np.random.default_rng(1)
    t, n, inp, hidden = 4, 2, 3, 5
    x = rng.standard_normal((t, n, inp))
    h0 = rng.standard_normal((n, hidden))
    weights = _rnn_weights(rng, cell, inp, hidden)
    nonlin = "tanh"  # smooth, so central differences are exact to O(eps^2)
    y, _, _, saved = numpy_ops.rnn_forward(x, h0, weights, cell, nonlinearity=nonlin)
    dy = rng.standard_normal(y.shape)
    grads = numpy_ops.rnn_backward(saved, weights, dy)
    eps = 1e-6

    def loss():
        return float(np.vdot(numpy_ops.rnn_forward(x, h0, weights, cell, nonlinearity=nonlin)[0], dy))

    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        flat = weights[name].reshape(-1)
        for index in rng.choice(flat.size, min(6, flat.size), replace=False):
            keep = flat[index]
            flat[index] = keep + eps
            up = loss()
            flat[index] = keep - eps
            down = loss()
            flat[index] = keep
            assert grads[name].reshape(-1)[index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7)


def test_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 11))
    w = rng.standard_normal((6, 2, 3, 3))
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    np.testing.assert_allclose(numpy_ops.conv2d_forward(x, w, **kw), ref, rtol=1e-10, atol=1e-10)
    for cell, module in (("vanilla", torch.nn.RNN), ("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        extra = {"nonlinearity": "relu"} if cell == "vanilla" else {}
        net = module(3, 5, **extra).double()
        weights = {name: getattr(net, f"{name}_l0").detach().numpy().copy()
                   for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        xs = torch.from_numpy(rng.standard_normal((6, 2, 3))).requires_grad_(False)
        h0 = torch.from_numpy(rng.standard_normal((1, 2, 5)))
        state = (h0, torch.zeros_like(h0)) if cell == "lstm" else h0
        out, _ = net(xs, state)
        y, _, _, saved = numpy_ops.rnn_forward(xs.numpy(), h0[0].numpy(), weights, cell)
        np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        out.backward(torch.from_numpy(dy))
        grads = numpy_ops.rnn_backward(saved, weights, dy)
        for name in weights:
            np.testing.assert_allclose(grads[name], getattr(net, f"{name}_l0").grad.numpy(), rtol=1e-9, atol=1e-12)
