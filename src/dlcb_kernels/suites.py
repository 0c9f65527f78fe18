"""Problem suites: named lists of problems, with the sets they come from.

quick:      a few problems of each op; under two minutes on a 2-core machine.
gpu-quick:  the GPU goals' problems: GEMM float32 and bfloat16 at 4096^3 and 8192^3, ResNet-50's
            3x3 layers in bfloat16 NHWC (N=32; the first also backward), LSTM H=1024 at batch
            4 and 128 in float32 and bfloat16. `dlcb bench --suite quick` runs it on a GPU.
deepbench-train / deepbench-inference: the shapes of Baidu's DeepBench (data/deepbench, see its
            README for the source). Training times convolutions in all three directions and RNNs
            forward and backward; inference (server and device sets) times forward only.
models:     every distinct kernel layer (conv, fully-connected, RNN, attention GEMM) of the reference models
            (dlcb_kernels.models) at a batch size, forward; the labels say which layers of which
            models each problem stands for, so the predictor can find them.
Problems above a FLOP budget per call are scaled down unless `full` is asked for (GEMM halves
its largest dimension, conv its batch, RNNs their timesteps); a scaled problem keeps its
original shape and the reason in its labels.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from importlib import resources

from . import models
from .problems import ConvProblem, GemmProblem, OverheadProblem, RnnProblem

SUITES = ("quick", "gpu-quick", "deepbench-train", "deepbench-inference", "models")
OPS = ("gemm", "conv", "rnn")
MODEL_OPS = OPS + ("memory", "overhead")   # the models suite also measures its memory-bound layer
                                          # calls and the runners' framework overhead
MODEL_MODES = ("infer", "train", "both")
DEFAULT_MODEL_BATCH = 8

# A budget that keeps one call near 10-50 ms on a few-core CPU, so a problem times in a second.
DEFAULT_MAX_FLOPS = 8e9


@dataclass
class SuiteProblem:
    problem: object
    labels: dict = field(default_factory=dict)   # set, source, scaled_from, ...


def _deepbench_rows(name: str) -> list[dict]:
    text = resources.files("dlcb_kernels").joinpath("data", "deepbench", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def deepbench_gemm(sets: tuple[str, ...]) -> list[SuiteProblem]:
    """DeepBench GEMM rows of the given sets, first occurrence of each shape kept."""
    out: list[SuiteProblem] = []
    seen: set = set()
    for row in _deepbench_rows("gemm.csv"):
        if row["set"] not in sets:
            continue
        problem = GemmProblem(int(row["m"]), int(row["n"]), int(row["k"]),
                              trans_a=row["a_t"] == "1", trans_b=row["b_t"] == "1")
        if problem in seen:
            continue
        seen.add(problem)
        out.append(SuiteProblem(problem, {"set": f"deepbench-{row['set']}", "source": "DeepBench gemm_problems.h"}))
    return out


def deepbench_conv(sets: tuple[str, ...], directions: tuple[str, ...]) -> list[SuiteProblem]:
    """DeepBench conv rows (s = filter width, r = filter height) in the given directions."""
    out: list[SuiteProblem] = []
    for row in _deepbench_rows("conv.csv"):
        if row["set"] not in sets:
            continue
        for direction in directions:
            problem = ConvProblem(n=int(row["n"]), c=int(row["c"]), h=int(row["h"]), w=int(row["w"]), k=int(row["k"]),
                                  r=int(row["r"]), s=int(row["s"]), pad_h=int(row["pad_h"]), pad_w=int(row["pad_w"]),
                                  stride_h=int(row["stride_h"]), stride_w=int(row["stride_w"]), direction=direction)
            out.append(SuiteProblem(problem, {"set": f"deepbench-{row['set']}", "source": "DeepBench conv_problems.h"}))
    return out


def deepbench_rnn(sets: tuple[str, ...], directions: tuple[str, ...]) -> list[SuiteProblem]:
    """DeepBench RNN rows; the input size is the hidden size, as DeepBench runs them."""
    out: list[SuiteProblem] = []
    for row in _deepbench_rows("rnn.csv"):
        if row["set"] not in sets:
            continue
        for direction in directions:
            problem = RnnProblem(int(row["hidden"]), int(row["batch"]), int(row["timesteps"]), row["cell"],
                                 direction=direction)
            out.append(SuiteProblem(problem, {"set": f"deepbench-{row['set']}", "source": "DeepBench rnn_problems.h"}))
    return out


def resolve_models(names) -> list:
    """Models by reference name (case-insensitive) or model file (.json/.yaml)."""
    return [models.get_model(name) for name in names]


def model_problems(model_list, batch_by_model: dict, mode: str = "both", ops: tuple[str, ...] = MODEL_OPS,
                   label_set: str = "models") -> list[SuiteProblem]:
    """Every kernel problem and memory-bound layer call the predictor charges for the models at
    their batch sizes, once each, labelled with every (model, layer, pass, count) it stands for.

    mode "infer": the forward kernels and each memory-bound layer's inference forward (none for
    dropout, the identity there, nor for the loss); "train": the forward, backward data and backward weights of each
    kernel layer (no backward data where the model input needs no gradient, as model_specs and the
    predictor decide) and each memory-bound layer's training forward and backward; "both": all.
    Also the runners' framework overhead per layer call (and, in training, per parameter tensor of
    the optimizer): OverheadProblem, op "overhead".
    """
    from .layer_runners import model_specs
    from .problems.memory import MEMORY_KINDS, MemoryProblem

    if mode not in MODEL_MODES:
        raise ValueError(f"mode must be one of {', '.join(MODEL_MODES)}; got {mode!r}")
    infer, train = mode in ("infer", "both"), mode in ("train", "both")
    users: dict = {}
    batches: dict = {}

    def use(problem, entry: dict, batch: int) -> None:
        if problem.op in ops:
            users.setdefault(problem, []).append(entry)
            batches.setdefault(problem, set()).add(batch)

    for model in model_list:
        if model.name not in batch_by_model:
            raise ValueError(f"batch_by_model has no batch size for {model.name}")
        batch = batch_by_model[model.name]
        for layer, spec in zip(model.layers, model_specs(model, batch)):
            if layer.kind in MEMORY_KINDS:
                calls = [("fwd", True)] if train else []
                calls += [("fwd", False)] if infer and layer.runs_at_inference else []
                calls += [("bwd_data", True)] if train and spec.backward and spec.input_grad else []
                for pass_, training in calls:
                    label = pass_ if pass_ != "fwd" else f"fwd {'train' if training else 'infer'}"
                    use(MemoryProblem.from_layer(layer, batch, pass_, training=training),
                        {"model": model.name, "layer": layer.name, "pass": label, "count": layer.count}, batch)
            if not layer.is_kernel:
                continue
            passes = [p for p in ("fwd", "bwd_data", "bwd_weights")
                      if (p == "fwd" and (infer or train))
                      or (train and p != "fwd" and spec.backward and (p != "bwd_data" or spec.input_grad))]
            for pass_ in passes:
                for problem, times in layer.kernel_problems(batch, pass_):
                    use(problem, {"model": model.name, "layer": layer.name, "pass": pass_,
                                  "count": layer.count * times}, batch)
    overhead = ([OverheadProblem("layer", False)] if infer else []) + \
        ([OverheadProblem("layer", True), OverheadProblem("step", True)] if train else [])
    for problem in overhead:
        for model in model_list:
            use(problem, {"model": model.name, "layer": "(framework)", "pass": "per call", "count": 1},
                batch_by_model[model.name])
    return [SuiteProblem(problem, {"set": label_set, "batch": sorted(batches[problem]), "layers": layers})
            for problem, layers in users.items()]


def quick_conv() -> list[SuiteProblem]:
    shapes = [
        # the 3x3 layer of ResNet-50's first stage at batch 8 (the conv goal's problem)
        dict(n=8, c=64, h=56, w=56, k=64, r=3, s=3, pad_h=1, pad_w=1),
        dict(n=8, c=256, h=56, w=56, k=64, r=1, s=1),                       # 1x1 bottleneck
        dict(n=8, c=128, h=28, w=28, k=128, r=3, s=3, pad_h=1, pad_w=1, stride_h=2, stride_w=2),
        dict(n=4, c=1, h=161, w=700, k=32, r=5, s=20, stride_h=2, stride_w=2),   # DeepBench speech
        # TextCNN's widest filter, as wide as the input (1 x W outputs): an algorithm choice that
        # ignored the wasted work once ran this 130x slower than the vendors
        dict(n=64, c=1, h=59, w=128, k=128, r=5, s=128, pad_h=2),
    ]
    out = [SuiteProblem(ConvProblem(**shape), {"set": "quick"}) for shape in shapes]
    first = ConvProblem(**shapes[0])
    for direction in ("bwd_data", "bwd_filter"):
        out.append(SuiteProblem(dataclasses.replace(first, direction=direction), {"set": "quick"}))
    return out


def quick_rnn() -> list[SuiteProblem]:
    # The RNN goal's shape for each cell, then an LSTM backward.
    out = [SuiteProblem(RnnProblem(512, 32, 25, cell), {"set": "quick"}) for cell in ("lstm", "gru", "vanilla")]
    out.append(SuiteProblem(RnnProblem(512, 32, 25, "lstm", direction="bwd"), {"set": "quick"}))
    return out


def quick_gemm() -> list[SuiteProblem]:
    shapes = [
        (2048, 2048, 2048, False, False),   # the headline square problem
        (1024, 1024, 1024, False, False),
        (1024, 1024, 1024, True, False),
        (1024, 1024, 1024, False, True),
        (1760, 128, 1760, False, False),    # DeepBench-like skinny (batch 128)
        (4096, 16, 4096, False, False),     # DeepBench-like skinny (batch 16)
        (35, 8457, 2048, False, False),     # DeepBench-like short-and-wide
        (257, 131, 509, False, False),      # odd sizes: edge tiles everywhere
    ]
    return [SuiteProblem(GemmProblem(m, n, k, ta, tb), {"set": "quick"}) for m, n, k, ta, tb in shapes]


def gpu_quick_gemm() -> list[SuiteProblem]:
    return [SuiteProblem(GemmProblem(size, size, size, dtype=dtype), {"set": "gpu-quick"})
            for dtype in ("float32", "bfloat16") for size in (4096, 8192)]


def gpu_quick_conv() -> list[SuiteProblem]:
    # ResNet-50's 3x3 convolutions (stride 1, pad 1), one per stage, in the layout and type
    # tensor cores want; the first stage's layer backward too.
    layers = [ConvProblem(n=32, c=c, h=hw, w=hw, k=c, r=3, s=3, pad_h=1, pad_w=1, dtype="bfloat16", layout="NHWC")
              for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7))]
    layers += [dataclasses.replace(layers[0], direction=d) for d in ("bwd_data", "bwd_filter")]
    return [SuiteProblem(p, {"set": "gpu-quick", "source": "ResNet-50 3x3 layers"}) for p in layers]


def gpu_quick_rnn() -> list[SuiteProblem]:
    return [SuiteProblem(RnnProblem(1024, batch, 25, "lstm", dtype=dtype), {"set": "gpu-quick"})
            for dtype in ("float32", "bfloat16") for batch in (4, 128)]


def load_suite(name: str, ops: tuple[str, ...] | None = None, *, full: bool = False,
               max_flops: float = DEFAULT_MAX_FLOPS, batch: int = DEFAULT_MODEL_BATCH,
               model_names: tuple[str, ...] | None = None, mode: str = "infer",
               anchors: bool = True) -> list[SuiteProblem]:
    """A suite's problems for these ops (default: all of the suite's). The models suite: `model_names` (reference names or model
    files; default all reference models) at `batch`, the passes of `mode` (see model_problems), and
    with `anchors` the anchor layers' (models.anchors: the shapes that let the predictor
    interpolate for models it has not measured; their framework overhead is the models')."""
    if name not in SUITES:
        raise ValueError(f"suite must be one of {', '.join(SUITES)}; got {name!r}")
    allowed = MODEL_OPS if name == "models" else OPS
    ops = allowed if ops is None else ops
    unknown = set(ops) - set(allowed)
    if unknown:
        raise ValueError(f"ops must be among {', '.join(allowed)}; got {', '.join(sorted(unknown))}")
    if max_flops <= 0:
        raise ValueError(f"max_flops must be > 0, got {max_flops}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if model_names and name != "models":
        raise ValueError(f"models can only be chosen for the models suite, not {name!r}")
    if not isinstance(anchors, bool):
        raise TypeError(f"anchors must be a bool, got {type(anchors).__name__}")
    problems: list[SuiteProblem] = []
    if name in ("quick", "gpu-quick"):
        loaders = {"gemm": quick_gemm, "conv": quick_conv, "rnn": quick_rnn} if name == "quick" else \
            {"gemm": gpu_quick_gemm, "conv": gpu_quick_conv, "rnn": gpu_quick_rnn}
        for op in OPS:
            if op in ops:
                problems += loaders[op]()
    elif name == "models":
        chosen = resolve_models(model_names) if model_names else list(models.MODELS.values())
        problems = model_problems(chosen, {m.name: batch for m in chosen}, mode, ops)
        if anchors:
            from .models.anchors import ANCHOR_BATCH, ANCHORS, LEAD

            problems += [sp for sp in model_problems([ANCHORS], {ANCHORS.name: ANCHOR_BATCH}, mode, ops,
                                                     label_set="anchors")
                         if sp.problem.op != "overhead" and any(u["layer"] != LEAD for u in sp.labels["layers"])]
    else:
        train = name == "deepbench-train"
        sets = ("train",) if train else ("inference_server", "inference_device")
        if "gemm" in ops:
            problems += deepbench_gemm(sets)
        if "conv" in ops:
            problems += deepbench_conv(sets, ("fwd", "bwd_data", "bwd_filter") if train else ("fwd",))
        if "rnn" in ops:
            problems += deepbench_rnn(sets, ("fwd", "bwd") if train else ("fwd",))
    if name.startswith("deepbench") and not full:
        problems = [_within_budget(sp, max_flops) for sp in problems]
    return _dedupe(problems)


def _within_budget(sp: SuiteProblem, max_flops: float) -> SuiteProblem:
    scaled = sp.problem.scaled_to(max_flops)
    if scaled == sp.problem:
        return sp
    labels = dict(sp.labels)
    labels["scaled_from"] = sp.problem.params()
    labels["scaled_reason"] = (f"{sp.problem.flops() / 1e9:.1f} GFLOP per call exceeds the "
                               f"{max_flops / 1e9:g} GFLOP budget; run with --full for the original")
    return SuiteProblem(scaled, labels)


def _dedupe(problems: list[SuiteProblem]) -> list[SuiteProblem]:
    """Scaling can map two shapes onto one; keep the first so records stay unique."""
    seen: set = set()
    out = []
    for sp in problems:
        if sp.problem not in seen:
            seen.add(sp.problem)
            out.append(sp)
    return out
