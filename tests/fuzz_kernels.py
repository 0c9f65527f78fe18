"""A seeded fuzz of the CPU kernels against float64 numpy references: random shapes, layouts,
strides, parameters, thread counts and ISAs for gemm, conv (all three directions) and the RNN
layers. Run by .ci/sanitize under AddressSanitizer and UBSan (where a memory error or undefined
behaviour stops it), and usable alone: python tests/fuzz_kernels.py --seed S --cases N. Exits
non-zero on the first wrong result, printing the case."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))  # the tests' references

import dlcb_kernels as dk  # noqa: E402
from test_conv import ref_backward_data, ref_backward_filter, ref_forward  # noqa: E402
from test_rnn import ref_forward as rnn_reference  # noqa: E402


def close(got, want, terms: int) -> bool:
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    return want.size == 0 or float(np.abs(got - want).max()) / scale <= 1e-5 * max(1.0, np.sqrt(terms)) * 8


def strided(rng, a):
    """a itself, or the same values as a non-contiguous view (every other element of a bigger array)."""
    if rng.random() < 0.5:
        return a
    big = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    big[:, ::2] = a
    return big[:, ::2]


def gemm_case(rng, isa):
    m, n, k = (int(v) for v in rng.integers(1, 160, 3))
    if rng.random() < 0.2:
        n = int(rng.integers(1, 5))  # GEMV-like
    ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
    a = rng.uniform(-1, 1, (k, m) if ta else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if tb else (k, n)).astype(np.float32)
    alpha, beta = float(rng.choice([1.0, -0.5])), float(rng.choice([0.0, 1.0, 0.25]))
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    c = c0.copy()
    dk.gemm(strided(rng, a), strided(rng, b), trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, c=c, isa=isa,
            threads=int(rng.integers(1, 4)))
    want = alpha * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)) + beta * c0
    return close(c, want, k), f"gemm m={m} n={n} k={k} ta={ta} tb={tb} alpha={alpha} beta={beta}"


def conv_case(rng, isa):
    groups = int(rng.choice([1, 1, 2]))
    n, cg, kg = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    r, s = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    h = int(rng.integers(max(1, dil[0] * (r - 1) + 1 - 2 * pad[0]), 24))
    w = int(rng.integers(max(1, dil[1] * (s - 1) + 1 - 2 * pad[1]), 24))
    x = rng.uniform(-1, 1, (n, cg * groups, h, w)).astype(np.float32)
    wt = rng.uniform(-1, 1, (kg * groups, cg, r, s)).astype(np.float32)
    kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, isa=isa, threads=int(rng.integers(1, 4)))
    y = dk.conv2d(x, wt, **kw)
    dy = rng.uniform(-1, 1, y.shape).astype(np.float32)
    terms = cg * r * s
    ok = close(y, ref_forward(x, wt, stride, pad, dil, groups), terms)
    ok = ok and close(dk.conv2d_backward_data(dy, wt, input_shape=x.shape, **kw),
                      ref_backward_data(dy, wt, x.shape, stride, pad, dil, groups), kg * r * s)
    ok = ok and close(dk.conv2d_backward_filter(x, dy, weight_shape=wt.shape, **kw),
                      ref_backward_filter(x, dy, wt.shape, stride, pad, dil, groups), n * y.shape[2] * y.shape[3])
    return ok, f"conv x={x.shape} w={wt.shape} stride={stride} pad={pad} dil={dil} groups={groups}"


def rnn_case(rng, isa):
    cell = str(rng.choice(["vanilla", "lstm", "gru"]))
    t, n, i, hidden = (int(v) for v in (rng.integers(1, 5), rng.integers(1, 7), rng.integers(1, 40),
                                        rng.integers(1, 40)))
    g = {"vanilla": 1, "lstm": 4, "gru": 3}[cell]
    bound = 1 / np.sqrt(hidden)
    w = {name: rng.uniform(-bound, bound, shape).astype(np.float32) for name, shape in
         (("weight_ih", (g * hidden, i)), ("weight_hh", (g * hidden, hidden)), ("bias_ih", (g * hidden,)),
          ("bias_hh", (g * hidden,)))}
    x = rng.uniform(-1, 1, (t, n, i)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (n, hidden)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (n, hidden)).astype(np.float32) if cell == "lstm" else None
    out = dk.rnn(x, h0, w, cell=cell, c0=c0, isa=isa, threads=int(rng.integers(1, 4)))
    want = rnn_reference(x, h0, w, cell, c0)[0]
    return close(out.y, want, i + hidden), f"rnn {cell} T={t} N={n} I={i} H={hidden}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    isas = dk.available_isas()
    cases = (gemm_case, conv_case, rnn_case)
    for number in range(args.cases):
        case = cases[number % len(cases)]
        isa = str(rng.choice(isas))
        ok, what = case(rng, isa)
        if not ok:
            print(f"fuzz: case {number} ({isa}) wrong: {what}", file=sys.stderr)
            return 1
    print(f"fuzz: {args.cases} cases (seed {args.seed}, ISAs {', '.join(isas)}) match the references")
    return 0


if __name__ == "__main__":
    sys.exit(main())
