"""Recurrent layers on NVIDIA GPUs with our CUDA kernels, forward over a whole sequence: the
GPU path of dlcb_kernels.rnn. PyTorch's conventions (see ops/rnn.py); every tensor is a
C-contiguous GPU array of one dtype (float32, float16, bfloat16); the state and gate math are
float32 inside the kernels. Variants: "fused-sequence-tc" (one fused recurrent GEMM + cell kernel
per step on tensor cores: float16/bfloat16, H a multiple of 8), "persistent" (one launch for the
sequence, W_hh held on chip: small batches) and "fused-sequence" (one fused recurrent GEMM + cell
kernel per step on CUDA cores: every dtype and size).
"""

from __future__ import annotations

from .._validate import require_choice
from ._cuda_common import (
    DTYPE_CODES,
    NativeCall,
    device_arrays,
    native_module,
    output,
    pick_variant,
    require_contiguous,
    require_shape,
    stream_handle,
    workspace_pointer,
)

CELL_CODES = {("vanilla", "relu"): 0, ("vanilla", "tanh"): 1, ("lstm", "relu"): 2, ("gru", "relu"): 3}
GATES = {"vanilla": 1, "lstm": 4, "gru": 3}
VARIANTS = ("fused-sequence-tc", "persistent", "fused-sequence")
# "auto" takes the first of auto_candidates() whose support check passes. Up to this batch the
# persistent kernel (W_hh stays on chip, no launch per step) goes before the tensor-core one, whose
# 64-row batch tile would be mostly padding; to be retuned from H100 timings.
PERSISTENT_FIRST_MAX_BATCH = 16
WEIGHT_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def auto_candidates(dtype: str, batch: int) -> list[str]:
    """The order in which "auto" tries the variants: 16-bit fused-sequence-tc, persistent,
    fused-sequence (persistent first for batch <= PERSISTENT_FIRST_MAX_BATCH); float32 persistent,
    fused-sequence (the tensor-core variant takes 16-bit operands only)."""
    if dtype == "float32":
        return ["persistent", "fused-sequence"]
    if batch <= PERSISTENT_FIRST_MAX_BATCH:
        return ["persistent", "fused-sequence-tc", "fused-sequence"]
    return ["fused-sequence-tc", "persistent", "fused-sequence"]


def rnn_cuda(x, h0, weights: dict, *, cell: str, c0=None, nonlinearity: str = "relu", variant: str = "auto",
             stream=None):
    """Runs the layer; returns (y, h_n, c_n or None, variant used)."""
    (y, h_n, c_n), call = plan_rnn(x, h0, weights, cell=cell, c0=c0, nonlinearity=nonlinearity, variant=variant,
                                   stream=stream)
    call()
    return y, h_n, c_n, call.variant


def plan_rnn(x, h0, weights: dict, *, cell: str, c0=None, nonlinearity: str = "relu", variant: str = "auto",
             stream=None):
    """Checks the arguments, allocates the results and sets up the workspace; returns
    ((y, h_n, c_n or None), NativeCall) without running it."""
    require_choice(cell, "cell", tuple(GATES))
    require_choice(nonlinearity, "nonlinearity", ("relu", "tanh"))
    require_choice(variant, "variant", ("auto",) + VARIANTS)
    if cell != "vanilla" and nonlinearity != "relu":
        raise ValueError(f"nonlinearity applies to the vanilla cell only; cell {cell!r} has fixed activations")
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a dict of GPU arrays {WEIGHT_KEYS}, got {type(weights).__name__}")
    missing = [k for k in WEIGHT_KEYS if k not in weights]
    if missing or len(weights) != len(WEIGHT_KEYS):
        raise ValueError(f"weights must have exactly the keys {WEIGHT_KEYS}; missing {missing}, "
                         f"extra {sorted(set(weights) - set(WEIGHT_KEYS))}")
    if cell != "lstm" and c0 is not None:
        raise ValueError(f"c0 is for the LSTM only; it must be None for cell {cell!r}")
    stream = stream_handle(stream)
    named = {"x": x, "h0": h0, "c0": c0, **{f"weights['{k}']": weights[k] for k in WEIGHT_KEYS}}
    views = device_arrays(named)
    for name, view in views.items():
        require_contiguous(view, name)
    vx = views["x"]
    if vx.ndim != 3:
        raise ValueError(f"x must be 3-D (T, N, I), got shape {vx.shape}")
    t, n, i = vx.shape
    if min(t, n, i) < 1:
        raise ValueError(f"x must have T, N, I >= 1, got shape {vx.shape}")
    w_hh = views["weights['weight_hh']"]
    if w_hh.ndim != 2 or w_hh.shape[0] % GATES[cell] or w_hh.shape[0] != GATES[cell] * w_hh.shape[1]:
        raise ValueError(f"weights['weight_hh'] must have shape ({GATES[cell]}*H, H) for cell {cell!r}, got {w_hh.shape}")
    h = w_hh.shape[1]
    g = GATES[cell]
    require_shape(views["weights['weight_ih']"], "weights['weight_ih']", (g * h, i))
    require_shape(views["weights['bias_ih']"], "weights['bias_ih']", (g * h,))
    require_shape(views["weights['bias_hh']"], "weights['bias_hh']", (g * h,))
    require_shape(views["h0"], "h0", (n, h))
    if "c0" in views:
        require_shape(views["c0"], "c0", (n, h))
    if t * n * max(i, h) >= 2**31 or g * h * max(i, h) >= 2**31:
        raise ValueError("every tensor must have fewer than 2**31 elements")
    dtype = vx.dtype
    c0_ptr = views["c0"].ptr if "c0" in views else 0
    if cell == "lstm" and not c0_ptr:
        raise ValueError("the GPU LSTM needs c0 (pass zeros for a fresh state)")
    ext = native_module(vx.device)
    y, vy = output(None, "y", vx, (t, n, h), dtype, views)
    h_n, vh = output(None, "h_n", vx, (n, h), dtype, views)
    c_n = vc = None
    if cell == "lstm":
        c_n, vc = output(None, "c_n", vx, (n, h), dtype, views)
    args = {"cell": CELL_CODES[(cell, nonlinearity)], "dtype": DTYPE_CODES[dtype],
            "timesteps": t, "batch": n, "input_size": i, "hidden": h,
            "x": vx.ptr, "h0": views["h0"].ptr, "c0": c0_ptr,
            "w_ih": views["weights['weight_ih']"].ptr, "w_hh": w_hh.ptr,
            "b_ih": views["weights['bias_ih']"].ptr, "b_hh": views["weights['bias_hh']"].ptr,
            "y": vy.ptr, "h_n": vh.ptr, "c_n": vc.ptr if vc is not None else 0, "workspace": 0}
    candidates = auto_candidates(dtype, n)
    # The support checks look at the workspace too: it is set up first, large enough for any
    # variant that might be chosen.
    needed = max(ext.rnn_workspace_bytes(name, args) for name in (candidates if variant == "auto" else [variant]))
    args["workspace"] = workspace_pointer(vx, needed)
    chosen = pick_variant(variant, candidates,
                          lambda name: ext.rnn_unsupported_reason(name, args, vx.device), "rnn")
    return (y, h_n, c_n), NativeCall(ext.rnn_forward, chosen, args, vx.device, stream)
