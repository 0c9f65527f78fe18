"""Recurrent layers (vanilla RNN, LSTM, GRU) with our own CPU kernels: forward, BPTT backward.

Conventions (the same as torch.nn.RNN / LSTM / GRU with num_layers=1, unidirectional,
batch_first=False, so weights and results can be exchanged with PyTorch):

- x is time-major (T, N, I); h0 and c0 are (N, H); y (T, N, H) holds every hidden state
  h_1 ... h_T; h_n = h_T and, for the LSTM, c_n = c_T.
- weights: a dict {"weight_ih": (G*H, I), "weight_hh": (G*H, H), "bias_ih": (G*H,),
  "bias_hh": (G*H,)}, PyTorch's ``weight_ih_l0`` etc. without the ``_l0`` suffix, gates stacked
  in PyTorch's order: G = 1 (vanilla), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n).
- vanilla: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = relu (default, as DeepBench) or tanh.
- LSTM: i, f, o = sigmoid(...), g = tanh(...), c' = f*c + i*g, h' = o * tanh(c'); no peepholes.
- GRU (PyTorch's form): r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

Algorithm: the input projection of all T steps is one GEMM ((T*N x I) times W_ih^T, our sgemm);
each step then runs the recurrent GEMM (gates^T = W_hh h^T, with W_hh packed once into the
micro-kernel's panels so that a thread's panels hold all G gates of the same hidden units) fused
with the element-wise cell math, one barrier per step. Backward is backpropagation through time:
per step the gate gradients and dh_{t-1} = dgates_t W_hh, then dW_hh, dW_ih (and dx) as single
GEMMs over all timesteps. The transcendental functions are our own vectorized approximations
(absolute error about 1e-7).

A batch of zero (N = 0) or zero timesteps (T = 0) is rejected with a ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _cpu
from .._validate import (
    contiguous,
    require_array,
    require_bool,
    require_choice,
    require_dtype,
    require_memory,
    require_ndim,
    require_threads,
)
from ..device_array import is_device_array
from .gemm import resolve_isa

CELLS = ("vanilla", "lstm", "gru")
NONLINEARITIES = ("relu", "tanh")
GATES = {"vanilla": 1, "lstm": 4, "gru": 3}
WEIGHT_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _isa(isa: str = "auto") -> str:
    """The micro-kernel ISA `isa` resolves to on this CPU (ValueError when it cannot run)."""
    return resolve_isa(isa)


class PreparedRnnWeights:
    """Validated weights of one recurrent layer, with W_hh packed once into the recurrent
    micro-kernel's panels (forward and backward layouts), for repeated calls of rnn() and
    rnn_backward() (steady-state timing, inference). The arrays are private read-only copies,
    so later changes to the caller's arrays do not desynchronize the packed panels.

    Attributes: cell, gates (G), hidden_size (H), input_size (I), weights (dict of the four
    arrays), packed (True when the panels are held), isa (the micro-kernel they were packed for).
    """

    def __init__(self, weights: dict, cell: str, *, pack: bool = True, copy: bool = True, threads=None,
                 isa: str = "auto"):
        self.cell = require_choice(cell, "cell", CELLS)
        self.isa = _isa(isa)
        self.gates = GATES[cell]
        checked = _check_weights(weights, cell)
        if copy:
            checked = {k: np.array(v, dtype=np.float32, order="C", copy=True) for k, v in checked.items()}
            for v in checked.values():
                v.flags.writeable = False
        else:
            checked = {k: contiguous(v) for k, v in checked.items()}
        self.weights = checked
        self.hidden_size = checked["weight_hh"].shape[1]
        self.input_size = checked["weight_ih"].shape[1]
        self.packed = bool(pack)
        self._packed_fwd = self._packed_bwd = None
        if pack:
            nt = require_threads(threads)
            self._packed_fwd = _cpu.rnn_pack(cell, checked["weight_hh"], "forward", self.isa, nt)
            self._packed_bwd = _cpu.rnn_pack(cell, checked["weight_hh"], "backward", self.isa, nt)

    def __repr__(self) -> str:
        return (f"PreparedRnnWeights(cell={self.cell!r}, input_size={self.input_size}, "
                f"hidden_size={self.hidden_size}, packed={self.packed}, isa={self.isa!r})")


def prepare_rnn_weights(weights: dict, cell: str, *, threads: int | None = None,
                        isa: str = "auto") -> PreparedRnnWeights:
    """Validates `weights` (see the module docstring) for `cell`, copies them and packs W_hh into
    the recurrent micro-kernel's panels once; rnn() and rnn_backward() accept the result in place
    of the dict and then skip the packing. isa picks the micro-kernel ("auto": DLCB_ISA when set,
    else the best this CPU runs); calls with these weights run on it."""
    return PreparedRnnWeights(weights, cell, pack=True, copy=True, threads=threads, isa=isa)


@dataclass
class RnnOutput:
    """Result of rnn().

    y: (T, N, H) every hidden state; h_n: (N, H); c_n: (N, H) for the LSTM, else None.
    algorithm: what ran (cell, ISA, where the W_hh panels came from). threads: the thread count
    the recurrent loop ran on. saved: None unless training=True; then a dict of what
    rnn_backward needs: "x" (T, N, I) the input; "h" (T+1, N, H) h0 followed by every hidden
    state (y is a view of h[1:]); "gates" (T, G*H, N) the activated gates (LSTM i, f, g, o;
    GRU r, z, n; None for the vanilla cell, whose derivative comes from h); "c" (T+1, H, N) the
    LSTM's cell states c0 ... c_T; "hn" (T, H, N) the GRU's W_hn h_{t-1} + b_hn. The last three
    are unit-major (hidden unit, then batch), the layout the kernels read. saved["x"] and the
    weights are references, not copies (except prepared weights, which are private copies):
    modifying them before rnn_backward changes the gradients, as with any autograd tape.
    """

    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    algorithm: str
    threads: int
    cell: str
    nonlinearity: str
    training: bool
    saved: dict | None = None
    weights: PreparedRnnWeights | None = field(default=None, repr=False)


def _check_weights(weights, cell: str) -> dict:
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a dict with keys {WEIGHT_KEYS} or a PreparedRnnWeights, "
                        f"got {type(weights).__name__}")
    missing = [k for k in WEIGHT_KEYS if k not in weights]
    extra = [k for k in weights if k not in WEIGHT_KEYS]
    if missing:
        raise ValueError(f"weights is missing {missing} (needs exactly {list(WEIGHT_KEYS)})")
    if extra:
        raise ValueError(f"weights has unexpected keys {extra} (needs exactly {list(WEIGHT_KEYS)})")
    out = {}
    for k in WEIGHT_KEYS:
        name = f"weights[{k!r}]"
        v = require_array(weights[k], name)
        require_dtype(v, name, np.float32)
        require_ndim(v, name, 2 if k.startswith("weight") else 1)
        out[k] = v
    G = GATES[cell]
    w_hh, w_ih = out["weight_hh"], out["weight_ih"]
    H = w_hh.shape[1]
    if H < 1:
        raise ValueError(f"weights['weight_hh'] must have at least one column (H >= 1), got shape {w_hh.shape}")
    GH = G * H
    if w_hh.shape != (GH, H):
        raise ValueError(f"weights['weight_hh'] must have shape (G*H, H) = ({GH}, {H}) for cell {cell!r} "
                         f"(G = {G}), got {w_hh.shape}")
    if w_ih.shape[0] != GH or w_ih.shape[1] < 1:
        raise ValueError(f"weights['weight_ih'] must have shape (G*H, I) = ({GH}, I >= 1) for cell {cell!r}, "
                         f"got {w_ih.shape}")
    for k in ("bias_ih", "bias_hh"):
        if out[k].shape != (GH,):
            raise ValueError(f"weights[{k!r}] must have shape ({GH},) (G*H), got {out[k].shape}")
    return out


def _resolve_weights(weights, cell: str, isa: str) -> PreparedRnnWeights:
    if isinstance(weights, PreparedRnnWeights):
        if weights.cell != cell:
            raise ValueError(f"weights were prepared for cell {weights.cell!r}, not {cell!r}")
        if isa != "auto" and _isa(isa) != weights.isa:
            raise ValueError(f"weights were prepared for isa {weights.isa!r}, not {isa!r}")
        return weights
    return PreparedRnnWeights(weights, cell, pack=False, copy=False, isa=isa)


def _f32(x, name: str, ndim: int) -> np.ndarray:
    x = require_array(x, name)
    require_dtype(x, name, np.float32)
    require_ndim(x, name, ndim)
    return x


def rnn(x, h0, weights, *, cell: str = "vanilla", c0=None, nonlinearity: str = "relu",
        training: bool = False, threads: int | None = None, isa: str = "auto", variant: str = "auto",
        stream=None) -> RnnOutput:
    """Runs one recurrent layer over all T timesteps of x (see the module docstring for the
    conventions). x: float32 (T, N, I); h0: float32 (N, H); weights: dict or PreparedRnnWeights;
    cell: "vanilla", "lstm" or "gru"; c0: (N, H) for the LSTM (default zeros), must be None for
    the others; nonlinearity: "relu" or "tanh", vanilla cell only; training=True keeps what
    rnn_backward needs (RnnOutput.saved); threads defaults to OpenMP's (OMP_NUM_THREADS); isa
    picks the micro-kernel (for testing; prepared weights fix it). Non-contiguous inputs are copied. Returns an RnnOutput.

    GPU arrays (x, h0, c0 and a dict of weights, CuPy/torch/DLPack, float32/float16/bfloat16,
    C-contiguous) run our CUDA kernels forward (ops/rnn_cuda.py): `variant`
    "fused-sequence-tc" (16-bit, tensor cores), "persistent", "fused-sequence" or "auto", queued
    on `stream`; the LSTM needs c0 there. The RnnOutput then
    holds GPU arrays, and training, threads and isa do not apply.
    """
    if is_device_array(x):
        if training or threads is not None or isa != "auto":
            raise ValueError("training, threads and isa apply to CPU arrays; x is a GPU array")
        from .rnn_cuda import rnn_cuda

        y, h_n, c_n, chosen = rnn_cuda(x, h0, weights, cell=cell, c0=c0, nonlinearity=nonlinearity,
                                       variant=variant, stream=stream)
        return RnnOutput(y=y, h_n=h_n, c_n=c_n, algorithm=f"{cell}: CUDA {chosen}", threads=1, cell=cell,
                         nonlinearity=nonlinearity, training=False, saved=None, weights=None)
    if variant != "auto" or stream is not None:
        raise ValueError("variant and stream apply to GPU arrays only; x is on the host")
    return _forward(x, h0, weights, cell, c0, nonlinearity, training, threads, isa, ("x", "h0", "c0"))


def _forward(x, h0, weights, cell, c0, nonlinearity, training, threads, isa, names) -> RnnOutput:
    """rnn() with the argument names its messages use (rnn_cell's are x_t, h, c)."""
    x_name, h_name, c_name = names
    require_choice(cell, "cell", CELLS)
    require_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    if cell != "vanilla" and nonlinearity != "relu":
        raise ValueError(f"nonlinearity applies to the vanilla cell only; cell {cell!r} has fixed activations")
    training = require_bool(training, "training")
    nt = require_threads(threads)
    w = _resolve_weights(weights, cell, isa)
    H, I = w.hidden_size, w.input_size
    if x_name == "x":
        x = _f32(x, "x", 3)
    h0 = _f32(h0, h_name, 2)
    T, N, I_x = x.shape
    if T < 1:
        raise ValueError(f"x must have at least one timestep (T >= 1), got shape {x.shape}")
    if N < 1:
        raise ValueError(f"{x_name} must have a batch of at least 1 (N >= 1), got shape {x.shape}")
    if I_x != I:
        raise ValueError(f"{x_name} has input size {I_x} but weights['weight_ih'] has {I} columns")
    if h0.shape != (N, H):
        raise ValueError(f"{h_name} must have shape (N, H) = ({N}, {H}), got {h0.shape}")
    if cell == "lstm":
        if c0 is not None:
            c0 = _f32(c0, c_name, 2)
            if c0.shape != (N, H):
                raise ValueError(f"{c_name} must have shape (N, H) = ({N}, {H}), got {c0.shape}")
            c0 = contiguous(c0)
    elif c0 is not None:
        raise ValueError(f"{c_name} is for the LSTM only; it must be None for cell {cell!r}")
    gates = {"vanilla": 1, "lstm": 4, "gru": 3}[cell]
    # x's copy, y, the input projection, and what training keeps: checked before any copy.
    floats = T * N * I + (T + 1) * N * H + gates * H * T * N + (gates * H * T * N + (T + 1) * H * N if training else 0)
    require_memory(4 * floats, f"this {cell} layer ({x_name} {x.shape}, hidden size {H})")
    x = contiguous(x)
    h0 = contiguous(h0)
    ww = w.weights
    isa = w.isa
    hs, c_n, gates, cs, hn, used = _cpu.rnn_forward(
        cell, nonlinearity == "relu", x, h0, c0, ww["weight_ih"], ww["weight_hh"], ww["bias_ih"],
        ww["bias_hh"], w._packed_fwd, training, isa, nt)
    if N <= _cpu.rnn_small_batch_max:  # what csrc/cpu/rnn/forward.cpp runs at this batch
        algorithm = (f"{cell}: input GEMM + recurrent dot products of W_hh's rows with h and the cell "
                     f"math across units (batch <= {_cpu.rnn_small_batch_max}), {isa}")
    else:
        source = "prepared W_hh panels" if w._packed_fwd is not None else "W_hh panels packed in the call"
        info = _cpu.gemm_isa(isa)
        algorithm = (f"{cell}: input GEMM + fused recurrent GEMM/cell step, {isa} "
                     f"{info['mr']}x{info['nr']} micro-kernel, {source}")
    saved = None
    if training:
        saved = {"x": x, "h": hs, "gates": gates, "c": cs, "hn": hn}
    return RnnOutput(y=hs[1:], h_n=hs[T].copy(), c_n=c_n, algorithm=algorithm, threads=int(used),
                     cell=cell, nonlinearity=nonlinearity, training=training, saved=saved,
                     weights=w)


def rnn_backward(output: RnnOutput, dy, *, dh_n=None, dc_n=None, input_grad: bool = False,
                 threads: int | None = None) -> dict:
    """Backpropagation through time for an rnn(..., training=True) result.

    dy: float32 (T, N, H), the gradient of the loss w.r.t. every output y; dh_n (N, H) and, for
    the LSTM, dc_n (N, H): gradients w.r.t. the final states (default zero). Returns a dict with
    PyTorch's names: "weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0", for the LSTM "c0",
    and "x" when input_grad=True (off by default: DeepBench's backward excludes it).
    """
    if not isinstance(output, RnnOutput):
        raise TypeError(f"output must be the RnnOutput of rnn(), got {type(output).__name__}")
    if not output.training or output.saved is None:
        raise ValueError("output was computed with training=False: call rnn(..., training=True) "
                         "to keep what the backward pass needs")
    input_grad = require_bool(input_grad, "input_grad")
    nt = require_threads(threads)
    cell = output.cell
    s = output.saved
    T, N, H = output.y.shape
    dy = _f32(dy, "dy", 3)
    if dy.shape != (T, N, H):
        raise ValueError(f"dy must have the shape of y, (T, N, H) = {(T, N, H)}, got {dy.shape}")
    if dh_n is not None:
        dh_n = _f32(dh_n, "dh_n", 2)
        if dh_n.shape != (N, H):
            raise ValueError(f"dh_n must have shape (N, H) = ({N}, {H}), got {dh_n.shape}")
        dh_n = contiguous(dh_n)
    if dc_n is not None:
        if cell != "lstm":
            raise ValueError(f"dc_n is for the LSTM only; it must be None for cell {cell!r}")
        dc_n = _f32(dc_n, "dc_n", 2)
        if dc_n.shape != (N, H):
            raise ValueError(f"dc_n must have shape (N, H) = ({N}, {H}), got {dc_n.shape}")
        dc_n = contiguous(dc_n)
    w = output.weights
    ww = w.weights
    isa = w.isa
    dw_ih, dw_hh, db_ih, db_hh, dh0, dc0, dx, _ = _cpu.rnn_backward(
        cell, output.nonlinearity == "relu", s["x"], ww["weight_ih"], ww["weight_hh"], w._packed_bwd,
        s["h"], s["gates"], s["c"], s["hn"], contiguous(dy), dh_n, dc_n, input_grad, isa, nt)
    grads = {"weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db_ih, "bias_hh": db_hh, "h0": dh0}
    if cell == "lstm":
        grads["c0"] = dc0
    if input_grad:
        grads["x"] = dx
    return grads


def rnn_cell(x_t, h, weights, *, cell: str = "vanilla", c=None, nonlinearity: str = "relu",
             threads: int | None = None, isa: str = "auto"):
    """One step of the cell: x_t (N, I), h (N, H) (and c (N, H) for the LSTM, default zeros)
    -> (h', c'), c' None unless LSTM. The same kernels as rnn() with T = 1."""
    x_t = _f32(x_t, "x_t", 2)
    out = _forward(x_t[None], h, weights, cell, c, nonlinearity, False, threads, isa, ("x_t", "h", "c"))
    return out.h_n, out.c_n
