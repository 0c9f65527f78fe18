"""Convolution and RNN cells written with numpy and its BLAS: im2col + matmul, per-step matmuls.

Two uses, one code: in float32 these are the "numpy/OpenBLAS" vendor baselines (their time
includes the im2col copies, as an im2col + BLAS library's would); in float64 they are the
reference that every result is checked against before timing. They are deliberately plain, and
tests/test_numpy_ops.py checks them against direct sums and, when installed, against torch.

Conventions: NCHW activations, weights (K, C/groups, R, S); RNN time-major x (T, N, I) and
PyTorch's weight names, shapes and gate order (LSTM i, f, g, o; GRU r, z, n).
"""

from __future__ import annotations

import numpy as np

# Convolution -----------------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, pad: int, stride: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x: np.ndarray, r: int, s: int, pad, stride, dilation) -> np.ndarray:
    """(N, C, P, Q, R, S) view of the zero-padded input: element [n, c, p, q, i, j] is the input
    pixel that filter tap (i, j) meets at output (p, q)."""
    ph, pw = pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    span_h, span_w = dilation[0] * (r - 1) + 1, dilation[1] * (s - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def im2col(x: np.ndarray, n: int, group: int, c_per_group: int, r: int, s: int, pad, stride,
           dilation) -> np.ndarray:
    """Image n's columns for one group: (C/g * R * S, P * Q), rows ordered (c, r, s) like the
    flattened weights."""
    win = _windows(x[n:n + 1, group * c_per_group:(group + 1) * c_per_group], r, s, pad, stride, dilation)[0]
    cg, p, q = win.shape[:3]
    return win.transpose(0, 3, 4, 1, 2).reshape(cg * r * s, p * q)


def conv2d_forward(x, w, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, out=None):
    n_img, c, h, wd = x.shape
    k, cg, r, s = w.shape
    p = conv_output_size(h, r, padding[0], stride[0], dilation[0])
    q = conv_output_size(wd, s, padding[1], stride[1], dilation[1])
    kg = k // groups
    y = np.empty((n_img, k, p, q), dtype=x.dtype) if out is None else out
    for n in range(n_img):
        for g in range(groups):
            cols = im2col(x, n, g, cg, r, s, padding, stride, dilation)
            wg = w[g * kg:(g + 1) * kg].reshape(kg, cg * r * s)
            np.matmul(wg, cols, out=y[n, g * kg:(g + 1) * kg].reshape(kg, p * q))
    return y


def conv2d_backward_data(dy, w, input_shape, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                         out=None):
    """dx: columns W^T dy, scattered back (col2im) onto the padded input and cropped."""
    n_img, c, h, wd = input_shape
    k, cg, r, s = w.shape
    _, _, p, q = dy.shape
    kg = k // groups
    ph, pw = padding
    dxp = np.zeros((c, h + 2 * ph, wd + 2 * pw), dtype=dy.dtype)
    dx = np.empty(input_shape, dtype=dy.dtype) if out is None else out
    rows_h = stride[0] * (p - 1) + 1
    rows_w = stride[1] * (q - 1) + 1
    for n in range(n_img):
        dxp[...] = 0
        for g in range(groups):
            wg = w[g * kg:(g + 1) * kg].reshape(kg, cg * r * s)
            cols = (wg.T @ dy[n, g * kg:(g + 1) * kg].reshape(kg, p * q)).reshape(cg, r, s, p, q)
            target = dxp[g * cg:(g + 1) * cg]
            for i in range(r):
                for j in range(s):
                    hi, wj = i * dilation[0], j * dilation[1]
                    target[:, hi:hi + rows_h:stride[0], wj:wj + rows_w:stride[1]] += cols[:, i, j]
        dx[n] = dxp[:, ph:ph + h, pw:pw + wd]
    return dx


def conv2d_backward_filter(x, dy, weight_shape, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                           out=None):
    """dw = sum over images of dy (K/g x PQ) times the image's columns transposed."""
    k, cg, r, s = weight_shape
    n_img = x.shape[0]
    _, _, p, q = dy.shape
    kg = k // groups
    dw = np.empty(weight_shape, dtype=x.dtype) if out is None else out
    for g in range(groups):
        acc = dw[g * kg:(g + 1) * kg].reshape(kg, cg * r * s)
        acc[...] = 0
        for n in range(n_img):
            cols = im2col(x, n, g, cg, r, s, padding, stride, dilation)
            acc += dy[n, g * kg:(g + 1) * kg].reshape(kg, p * q) @ cols.T
    return dw


# RNN cells -------------------------------------------------------------------------------------

GATES = {"vanilla": 1, "lstm": 4, "gru": 3}


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def rnn_forward(x, h0, weights: dict, cell: str, c0=None, *, nonlinearity: str = "relu"):
    """Returns (y (T, N, H), h_n, c_n, saved) where saved holds what rnn_backward needs."""
    t_steps, n, _ = x.shape
    hidden = h0.shape[1]
    w_ih, w_hh = weights["weight_ih"], weights["weight_hh"]
    b_ih, b_hh = weights["bias_ih"], weights["bias_hh"]
    # The input projection of all timesteps is one matmul.
    xp = (x.reshape(t_steps * n, -1) @ w_ih.T + b_ih).reshape(t_steps, n, -1)
    y = np.empty((t_steps, n, hidden), dtype=x.dtype)
    h = h0
    if cell == "lstm" and c0 is None:
        c0 = np.zeros_like(h0)
    c = c0
    acts, cs, hn_terms = [], [], []
    for t in range(t_steps):
        rec = h @ w_hh.T + b_hh
        if cell == "vanilla":
            pre = xp[t] + rec
            h = np.maximum(pre, 0) if nonlinearity == "relu" else np.tanh(pre)
            acts.append(h)
        elif cell == "lstm":
            g = xp[t] + rec
            i, f, gg, o = (g[:, j * hidden:(j + 1) * hidden] for j in range(4))
            i, f, gg, o = _sigmoid(i), _sigmoid(f), np.tanh(gg), _sigmoid(o)
            c = f * c + i * gg
            h = o * np.tanh(c)
            acts.append(np.concatenate([i, f, gg, o], axis=1))
            cs.append(c)
        else:
            xr, xz, xn = (xp[t][:, j * hidden:(j + 1) * hidden] for j in range(3))
            hr, hz, hn = (rec[:, j * hidden:(j + 1) * hidden] for j in range(3))
            rg, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            nn = np.tanh(xn + rg * hn)
            h = (1 - z) * nn + z * h
            acts.append(np.concatenate([rg, z, nn], axis=1))
            hn_terms.append(hn)
        y[t] = h
    saved = {"x": x, "h0": h0, "c0": c0, "y": y, "acts": acts, "cs": cs, "hn": hn_terms, "cell": cell,
             "nonlinearity": nonlinearity}
    return y, h, c, saved


def rnn_backward(saved: dict, weights: dict, dy):
    """Backprop through time: weight and bias gradients (PyTorch names) and h0's gradient."""
    x, h0, y, cell = saved["x"], saved["h0"], saved["y"], saved["cell"]
    t_steps, n, _ = x.shape
    hidden = h0.shape[1]
    w_hh = weights["weight_hh"]
    gate_grads = np.empty((t_steps, n, GATES[cell] * hidden), dtype=x.dtype)  # w.r.t. W_ih x + b_ih
    # w.r.t. W_hh h + b_hh: the same but for the GRU, whose n gate sees r * (W_hn h + b_hn)
    rec_grads = np.empty_like(gate_grads) if cell == "gru" else gate_grads
    dh = np.zeros_like(h0)
    dc = np.zeros_like(h0)
    for t in reversed(range(t_steps)):
        dh = dh + dy[t]
        a = saved["acts"][t]
        h_prev = y[t - 1] if t else h0
        if cell == "vanilla":
            dpre = dh * (a > 0) if saved["nonlinearity"] == "relu" else dh * (1 - a * a)
            gate_grads[t] = dpre
            dh = dpre @ w_hh
        elif cell == "lstm":
            i, f, g, o = (a[:, j * hidden:(j + 1) * hidden] for j in range(4))
            c = saved["cs"][t]
            c_prev = saved["cs"][t - 1] if t else saved["c0"]
            tc = np.tanh(c)
            dc = dc + dh * o * (1 - tc * tc)
            grads = [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g), dh * tc * o * (1 - o)]
            gate_grads[t] = np.concatenate(grads, axis=1)
            dc = dc * f
            dh = gate_grads[t] @ w_hh
        else:
            rg, z, nn = (a[:, j * hidden:(j + 1) * hidden] for j in range(3))
            hn = saved["hn"][t]
            dn = dh * (1 - z) * (1 - nn * nn)
            dz = dh * (h_prev - nn) * z * (1 - z)
            dr = dn * hn * rg * (1 - rg)
            gate_grads[t] = np.concatenate([dr, dz, dn], axis=1)
            rec_grads[t] = np.concatenate([dr, dz, dn * rg], axis=1)
            dh = dh * z + rec_grads[t] @ w_hh
    flat = gate_grads.reshape(t_steps * n, -1)
    rec = rec_grads.reshape(t_steps * n, -1)
    h_prev_all = np.concatenate([h0[None], y[:-1]], axis=0).reshape(t_steps * n, hidden)
    return {
        "weight_ih": flat.T @ x.reshape(t_steps * n, -1),
        "weight_hh": rec.T @ h_prev_all,
        "bias_ih": flat.sum(axis=0),
        "bias_hh": rec.sum(axis=0),
        "h0": dh,
    }
