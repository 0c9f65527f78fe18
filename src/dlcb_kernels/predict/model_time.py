"""A model's step time from a throughput table: every layer lowered to kernel problems and bytes.

Inference = the forward pass. A training step = forward + backward data + backward weights of
the kernel layers, forward and backward of the memory-bound layers (measured calls, or their bytes at the
measured bandwidth), and the optimizer update (SGD with momentum: read weights, gradients and momentum,
write weights and momentum, 5 x itemsize bytes per weight). Both add the runner's framework overhead
where the table measured it (OverheadProblem): a cost per layer call (inference: forward; training:
forward and backward through autograd) and, in training, per parameter tensor the optimizer visits.

The input gradient: nothing needs the gradient of the model input (models.layers.without_input_gradient
says which layers skip their backward, or its backward data). Other parallel branches of the
input that a layer list cannot tell apart are charged their input gradient.

Memory-bound layers of the kinds MemoryProblem describes are calls, each predicted by the
ThroughputModel like a kernel (an exact record of the call, a per-kind time model a + bytes / b
fitted to the table's calls, else bytes at the measured bandwidth); other memory-bound kinds, and
float16/bfloat16 tables, are bytes at the measured bandwidth.

Kernel problems take the table's dtype, and convolutions its layout where the table measured one
layout only. Dropout (the identity) and the loss are not run at inference, and not charged there. Each layer's uncertainty is the
time-weighted mean of its parts' (the kernel predictions', and MEMORY_UNCERTAINTY for bytes);
the model's is the time-weighted mean of its layers': errors of one table tend to share their
sign, so they are not assumed to cancel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..models.layers import without_input_gradient
from ..problems._common import itemsize as dtype_itemsize
from ..problems.memory import MEMORY_KINDS, MemoryProblem
from .kernel_model import MEMORY_UNCERTAINTY, SOURCES, ThroughputModel

# Per-call overheads move with the interpreter's and allocator's state: a wide uncertainty.
OVERHEAD_UNCERTAINTY = 0.3

MODES = ("train", "infer")
PASSES = ("fwd", "bwd_data", "bwd_weights")


@dataclass
class LayerPrediction:
    """One layer entry of the model, times summed over its `count` occurrences."""

    name: str
    kind: str
    count: int
    fwd_s: float
    bwd_data_s: float
    bwd_weights_s: float
    memory_s: float                 # memory-bound work of the layer (all passes of the mode)
    weight_bytes: int               # its weights, all occurrences (what the all-reduce moves)
    sources: dict                   # seconds by source: exact, fitted, roofline, memory
    uncertainty: float
    kernels: list = field(default_factory=list)   # per kernel problem: pass, key, runs, prediction

    @property
    def total_s(self) -> float:
        return self.fwd_s + self.bwd_data_s + self.bwd_weights_s + self.memory_s


@dataclass
class ModelPrediction:
    model: str
    batch: int
    mode: str
    impl: str
    step_seconds: float
    throughput: float               # samples per second
    uncertainty: float              # relative, time-weighted over the layers
    layers: list
    optimizer_seconds: float
    device_id: str
    dtype: str
    table: str                      # what the kernel model holds
    overhead_seconds: float = 0.0   # the runner's framework overhead: layer calls and optimizer visits
    overhead_note: str = ""         # how it was charged, or why it was not

    def source_seconds(self) -> dict:
        """Step seconds by source: exact, fitted, roofline, memory (optimizer included)."""
        totals = dict.fromkeys((*SOURCES, "memory"), 0.0)
        for layer in self.layers:
            for source, seconds in layer.sources.items():
                totals[source] += seconds
        totals["memory"] += self.optimizer_seconds
        totals["overhead"] = self.overhead_seconds
        return totals


def predict_model(model, table_doc, *, batch: int, mode: str = "train", impl: str = "best",
                  device_id: str | None = None, dtype: str = "float32") -> ModelPrediction:
    """Step time, throughput and per-layer breakdown of `model` at `batch` samples per step.

    table_doc: a loaded throughput table, or a ThroughputModel already built from one (to reuse
    its fits over many calls; impl, device_id and dtype must then be its own or left default).
    """
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise TypeError(f"batch must be an int, got {type(batch).__name__}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not hasattr(model, "layers") or not hasattr(model, "name"):
        raise TypeError(f"model must be a Model (name, layers), got {type(model).__name__}")
    if not model.layers:
        raise ValueError(f"model {model.name} has no layers")
    kernels = _kernel_model(table_doc, impl, device_id, dtype)
    itemsize = dtype_itemsize(kernels.dtype)
    layers = list(model.layers)
    no_backward, no_data = without_input_gradient(layers, batch) if mode == "train" else (set(), set())

    predictions = []
    weight_elements = 0
    for index, layer in enumerate(layers):
        if mode == "infer":
            passes = ("fwd",) if layer.runs_at_inference else ()
        elif index in no_backward:
            passes = ("fwd",)
        else:
            passes = tuple(p for p in PASSES if not (p == "bwd_data" and index in no_data))
        predictions.append(_layer_prediction(layer, passes, batch, itemsize, kernels, mode == "train"))
        weight_elements += layer.weight_elements * layer.count

    optimizer_seconds = 0.0
    if mode == "train":
        optimizer_seconds, _ = kernels.memory_seconds(5 * itemsize * weight_elements)
    overhead_seconds, overhead_note = framework_overhead(layers, mode, kernels.overhead)
    step = sum(p.total_s for p in predictions) + optimizer_seconds + overhead_seconds
    weighted = sum(p.total_s * p.uncertainty for p in predictions) + optimizer_seconds * MEMORY_UNCERTAINTY + \
        overhead_seconds * OVERHEAD_UNCERTAINTY
    return ModelPrediction(
        model=model.name, batch=batch, mode=mode, impl=kernels.impl, step_seconds=step,
        throughput=batch / step if step > 0 else float("inf"),
        uncertainty=weighted / step if step > 0 else 0.0, layers=predictions,
        optimizer_seconds=optimizer_seconds, device_id=kernels.device_id, dtype=kernels.dtype,
        table=kernels.describe(), overhead_seconds=overhead_seconds, overhead_note=overhead_note)


def parameter_tensors(layer) -> int:
    """The parameter tensors of one occurrence of a layer, as a framework's optimizer visits them."""
    if layer.kind in ("conv", "fc"):
        return 1 + bool(layer.bias)
    if layer.kind == "rnn":
        return 2 + 2 * bool(layer.bias)
    if layer.kind in ("bn", "layernorm"):
        return 2
    return 1 if layer.kind == "embedding" else 0


def framework_overhead(layers, mode: str, per_call: dict) -> tuple[float, str]:
    """(seconds, how) of the runner's overhead: every layer call (a training step's forward and
    backward, or inference's forward) and, in training, the optimizer's visit of every parameter
    tensor, at the table's measured cost per call (OverheadProblem records of the runner)."""
    training = mode == "train"
    layer_cost = per_call.get(("layer", training))
    if layer_cost is None:
        return 0.0, (f"not charged: the table has no {'training' if training else 'inference'} layer-call overhead "
                     "of this runner (dlcb bench --suite models measures it)")
    calls = sum(layer.count for layer in layers if training or layer.runs_at_inference)
    seconds = calls * layer_cost
    how = f"{calls} layer calls x {layer_cost * 1e6:.1f} us"
    if training:
        step_cost = per_call.get(("step", True))
        if step_cost is None:
            how += "; the optimizer's per-tensor cost is not in the table"
        else:
            tensors = sum(parameter_tensors(layer) * layer.count for layer in layers)
            seconds += tensors * step_cost
            how += f" + {tensors} parameter tensors x {step_cost * 1e6:.1f} us"
    return seconds, how


def _kernel_model(table_doc, impl, device_id, dtype) -> ThroughputModel:
    if not isinstance(table_doc, ThroughputModel):
        return ThroughputModel(table_doc, device_id=device_id, impl=impl, dtype=dtype)
    conflicts = [f"{name}={value!r} (the model's: {own!r})" for name, value, own, default in (
        ("impl", impl, table_doc.impl, "best"), ("device_id", device_id, table_doc.device_id, None),
        ("dtype", dtype, table_doc.dtype, "float32")) if value not in (own, default)]
    if conflicts:
        raise ValueError(f"a ThroughputModel was given, but {', '.join(conflicts)} differ from it")
    return table_doc


def _as_measured(problem, kernels: ThroughputModel):
    """The problem in the model's dtype, and a convolution in the table's layout where the table
    measured convolutions in one layout only (GPU tables: NHWC, the layout tensor cores take)."""
    changes = {}
    if problem.dtype != kernels.dtype:
        changes["dtype"] = kernels.dtype
    layouts = kernels.conv_layouts
    if problem.op == "conv" and len(layouts) == 1 and problem.layout not in layouts:
        changes["layout"] = next(iter(layouts))
    return dataclasses.replace(problem, **changes) if changes else problem


def _layer_prediction(layer, passes: tuple, batch: int, itemsize: int, kernels: ThroughputModel,
                      training: bool) -> LayerPrediction:
    count = layer.count
    times = dict.fromkeys(PASSES, 0.0)
    sources = {}
    weighted_uncertainty = 0.0
    details = []
    memory_bytes = 0
    layer_calls_s = 0.0
    # Memory-bound kinds measured as calls (MemoryProblem): fwd, and bwd = bwd_data + bwd_weights.
    as_calls = not layer.is_kernel and layer.kind in MEMORY_KINDS and kernels.dtype == "float32"
    for pass_ in passes:
        if layer.is_kernel:
            for problem, runs in layer.kernel_problems(batch, pass_):
                problem = _as_measured(problem, kernels)
                prediction = kernels.predict(problem)
                seconds = prediction.seconds * runs * count
                times[pass_] += seconds
                sources[prediction.source] = sources.get(prediction.source, 0.0) + seconds
                weighted_uncertainty += seconds * prediction.uncertainty
                details.append({"pass": pass_, "problem": problem.key(), "runs": runs,
                                "seconds": prediction.seconds, "source": prediction.source,
                                "uncertainty": prediction.uncertainty,
                                "implementation": prediction.implementation, "detail": prediction.detail})
        elif as_calls and pass_ in ("fwd", "bwd_data"):
            problem = MemoryProblem.from_layer(layer, batch, pass_, training=training)
            prediction = kernels.predict(problem)
            seconds = prediction.seconds * count
            layer_calls_s += seconds
            sources[prediction.source] = sources.get(prediction.source, 0.0) + seconds
            weighted_uncertainty += seconds * prediction.uncertainty
            details.append({"pass": "+".join(problem.passes), "problem": problem.key(), "runs": 1,
                            "seconds": prediction.seconds, "source": prediction.source,
                            "uncertainty": prediction.uncertainty,
                            "implementation": prediction.implementation, "detail": prediction.detail})
        elif not (as_calls and pass_ == "bwd_weights" and "bwd_data" in passes):   # else: in the bwd call
            memory_bytes += layer.memory_bytes(batch, pass_, itemsize)
    bandwidth_s, memory_detail = kernels.memory_seconds(memory_bytes * count)
    if bandwidth_s > 0:
        sources["memory"] = sources.get("memory", 0.0) + bandwidth_s
        weighted_uncertainty += bandwidth_s * MEMORY_UNCERTAINTY
        details.append({"pass": "+".join(passes), "problem": f"{layer.kind} memory", "runs": count,
                        "seconds": bandwidth_s / count, "source": "memory", "uncertainty": MEMORY_UNCERTAINTY,
                        "implementation": None, "detail": memory_detail})
    memory_s = layer_calls_s + bandwidth_s
    total = sum(times.values()) + memory_s
    return LayerPrediction(
        name=layer.name, kind=layer.kind, count=count, fwd_s=times["fwd"], bwd_data_s=times["bwd_data"],
        bwd_weights_s=times["bwd_weights"], memory_s=memory_s,
        weight_bytes=layer.weight_elements * itemsize * count, sources=sources,
        uncertainty=weighted_uncertainty / total if total > 0 else 0.0, kernels=details)


def prediction_to_dict(pred: ModelPrediction) -> dict:
    """JSON-ready form (for --json and for tools reading predictions)."""
    out = dataclasses.asdict(pred)
    out["source_seconds"] = pred.source_seconds()
    for layer, entry in zip(pred.layers, out["layers"]):
        entry["total_s"] = layer.total_s
    return out


def format_prediction(pred: ModelPrediction, top: int = 15) -> str:
    """Per-layer table (the `top` slowest entries), the totals and where the time comes from."""
    if not isinstance(pred, ModelPrediction):
        raise TypeError(f"pred must be a ModelPrediction, got {type(pred).__name__}")
    if isinstance(top, bool) or not isinstance(top, int):
        raise TypeError(f"top must be an int, got {type(top).__name__}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    step = pred.step_seconds
    what = "training step" if pred.mode == "train" else "inference"
    lines = [f"{pred.model}: {what}, batch {pred.batch}, {pred.dtype}, impl {pred.impl}", f"table: {pred.table}", ""]
    header = ("layer", "kind", "x", "fwd ms", "bwd data", "bwd wts", "memory", "total ms", "% step", "+-", "source")
    rows = []
    ordered = sorted(pred.layers, key=lambda layer: layer.total_s, reverse=True)
    for layer in ordered[:top]:
        main = max(layer.sources, key=layer.sources.get) if layer.sources else "-"
        rows.append((layer.name, layer.kind, str(layer.count), *(f"{s * 1e3:.3f}" for s in (
            layer.fwd_s, layer.bwd_data_s, layer.bwd_weights_s, layer.memory_s, layer.total_s)),
            f"{100 * layer.total_s / step:.1f}" if step else "-", f"{layer.uncertainty:.0%}", main))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines.append("  ".join(h.rjust(w) if i >= 2 else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i >= 2 and i < 10 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    rest = ordered[top:]
    if rest:
        lines.append(f"... {len(rest)} more layer entries: {sum(l.total_s for l in rest) * 1e3:.3f} ms")
    lines.append("")
    parts = {"forward": sum(l.fwd_s for l in pred.layers), "backward data": sum(l.bwd_data_s for l in pred.layers),
             "backward weights": sum(l.bwd_weights_s for l in pred.layers),
             "memory-bound layers": sum(l.memory_s for l in pred.layers), "optimizer update": pred.optimizer_seconds,
             "framework overhead": pred.overhead_seconds}
    for name, seconds in parts.items():
        if seconds or name == "forward":
            lines.append(f"  {name:<20} {seconds * 1e3:10.3f} ms")
    if pred.overhead_note:
        lines.append(f"  (framework overhead: {pred.overhead_note})")
    lines.append(f"step time {step * 1e3:.3f} ms +- {pred.uncertainty:.0%}, throughput {pred.throughput:.1f} samples/s")
    fractions = pred.source_seconds()
    lines.append("time from: " + ", ".join(f"{source} {seconds / step:.1%}" for source, seconds in fractions.items()
                                           if step))
    return "\n".join(lines)
