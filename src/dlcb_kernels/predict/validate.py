"""Validation: reference models run end to end on this CPU, against the predictor's figures.

Two runners time a model's forward pass (inference) and training step at a batch size:

- "torch": the model's layers as PyTorch CPU modules (dlcb_kernels.layer_runners.TorchModel); a
  training step is forward, the loss (the sum of every output weighted by a fixed random
  gradient), backward (weights, and inputs except the model's), SGD with momentum.
- "ours": the same layers on our kernels (layer_runners.OursModel: conv2d and its two backward
  passes, gemm for the fully-connected layers and attention products, rnn/rnn_backward) with
  numpy for the memory-bound layers and the optimizer update, every buffer allocated once. numpy's
  element-wise operations run on one thread and take two to four passes where a fused kernel
  takes one, so these layers run well below the memory bandwidth. That is why the table
  measures every memory-bound layer call too (MemoryProblem, registry.memory_layers: the very
  TorchLayer and OursLayer of these runners), and the predictor charges each layer its call.

**Layer-sequence execution.** A model description lists its layers with their shapes but not
the graph's edges (ResNet shortcuts, inception branches, repeated blocks folded into a count).
Both runners therefore execute the model as the sequence of its layers, each occurrence on an
input tensor of its own declared shape: every layer's compute runs once per step, in one
timed run, which is exactly what the predictor sums. What this leaves out is the data
dependence between layers (a layer reads a fresh buffer, not the one the previous layer just
wrote, so cache reuse across layers is not modelled on either side).

**The machine between the table and the run.** A call that allocates its output pays for its
fresh pages, and on a shared VM that cost per page moves several-fold within an hour, so a table
measured minutes before a run can be far off for models whose layers allocate large outputs.
Each model's runs are therefore bracketed by a fresh-page probe and the exact records moved to
its cost (first_touch "now", ThroughputModel); "table" predicts from the records as measured.
Each step's own page faults are counted and priced at that cost (rows: page_faults_per_step,
first_touch_share). Under glibc's default allocator whether a call's buffers are fresh pages
depends on the process's history, so the table's calls and a model's step fault differently and
that difference is not predicted; `dlcb bench` therefore measures under the steady allocator
(allocator_policy) and `dlcb validate` runs under the table's, where neither faults after the
warm-up. The machine's own speed also drifts over minutes: `rounds` measures every model that
many times, the models in turn, and pools the samples.
**Leave-one-model-out** (leave_one_out): each model is also predicted from the table without a
record of any problem it uses (held_out_table), as a model never measured would be.

`validate()` times the models, predicts them from a throughput table (predict_model on the
table's records of the matching implementation: torch's records, "*/torch", for the torch
runner; ours for ours) and reports predicted against measured per model and mode, with the
summary the goals ask for, and the held-out per-kernel evaluation (ThroughputModel's
cross-validation). `validation_problems()` lists every kernel problem and memory-bound layer
call those predictions need, and `python -m dlcb_kernels.predict.validate --make-table FILE`
measures them into a table.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable

import numpy as np

from .._validate import require_choice, require_int, require_threads
from ..measure import FixedRepeats, HostTimer, Warmup, measure
from ..layer_runners import (
    SGD_LR,
    SGD_MOMENTUM,
    OursModel,
    TorchModel,
    torch_available,
    torch_threads,
)

IMPLS = ("torch", "ours")
# "now": predict at the fresh-page cost probed around each model's runs; "table": at the records'
FIRST_TOUCH_CHOICES = ("now", "table")
MODES = ("infer", "train")
PASSES = ("fwd", "bwd_data", "bwd_weights")

# The reference models (../shared/CONTEXT.md), each at a batch whose step takes seconds, not
# minutes, on a 2-core CPU.
DEFAULT_BATCHES = {
    "AlexNet": 8, "AlexNetOWT": 8, "GoogLeNet": 8, "VGG16": 4, "VGG19": 4, "ResNet50": 4, "ResNet101": 4,
    "ResNet152": 4, "EnglishAcoustic": 64, "TextCNN": 64, "DeepMNIST": 64,
}
GOAL_MODEL_ERROR = 0.20         # no model above 20 %
GOAL_MEAN_ERROR = 0.10          # mean |error| over the models at most 10 %
# Leave-one-model-out (the model's own records removed from the table): mean at most 15 %, none
# above 30 %, and the stated uncertainty covering the measured time in at least 80 % of the rows.
GOAL_HELD_OUT_MEAN_ERROR = 0.15
GOAL_HELD_OUT_MODEL_ERROR = 0.30
GOAL_COVERAGE = 0.80

# Timing ----------------------------------------------------------------------------------------

def _time_runs(step: Callable[[], None], warmup: int, repeats: int) -> tuple[list[float], float | None]:
    """`repeats` timed steps after `warmup` untimed ones, through the package's measurement loop
    (a whole step takes long enough that a fixed count is the stopping criterion), and the page
    faults a step took (None where the OS does not count them)."""
    from ..measure import contention

    measurement = measure(step, HostTimer(), FixedRepeats(repeats), warmup=Warmup(min_calls=warmup, min_time=0.0),
                          settle_s=0.0, watch=contention.BlockWatch(None))
    return measurement.samples, measurement.blocks[0].get("page_faults_per_call")


def _summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    median = statistics.median(ordered)
    return {"count": len(ordered), "median": median, "min": ordered[0], "max": ordered[-1],
            "rel_spread": (ordered[-1] - ordered[0]) / median if median > 0 else float("inf")}


def _check_run_args(batch, threads, warmup, repeats, modes) -> None:
    for name, value, minimum in (("batch", batch, 1), ("threads", threads, 1), ("warmup", warmup, 0),
                                 ("repeats", repeats, 1)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}, got {modes!r}")


def _result(implementation: str, name: str, batch: int, threads: int, samples: dict, faults: dict,
            execution: str = "layer-sequence") -> dict:
    stats = {mode: _summary(values) for mode, values in samples.items()}
    return {
        "model": name, "implementation": implementation, "batch": batch, "threads": threads,
        "execution": execution, "page_faults_per_step": faults,
        "forward_s": stats["infer"]["median"] if "infer" in stats else None,
        "train_step_s": stats["train"]["median"] if "train" in stats else None,
        "samples": samples, "stats": stats,
    }


def run_torch(model, batch: int, threads: int, *, warmup: int = 2, repeats: int = 5,
              modes: tuple[str, ...] = MODES, seed: int = 0) -> dict:
    """Times the model's forward pass (no_grad, eval mode) and training step (train mode:
    forward, backward of sum(output * fixed gradient) over every layer, SGD with momentum)
    with PyTorch on `threads` threads; medians of `repeats` runs after `warmup`."""
    _check_run_args(batch, threads, warmup, repeats, modes)
    with torch_threads(threads) as torch:
        net = TorchModel(model, batch, torch, seed)
        optimizer = torch.optim.SGD(net.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)
        samples, faults = {}, {}
        if "infer" in modes:
            net.set_training(False)

            def infer() -> None:
                with torch.no_grad():
                    net.forward()

            samples["infer"], faults["infer"] = _time_runs(infer, warmup, repeats)
        if "train" in modes:
            net.set_training(True)
            grads = net.gradients()
            mask = net.backward_mask()
            leaves = net.inputs()

            def train() -> None:
                optimizer.zero_grad()
                for tensor in leaves:
                    tensor.grad = None
                outputs = net.forward()
                torch.autograd.backward([y for y, keep in zip(outputs, mask) if keep], grads)
                optimizer.step()

            samples["train"], faults["train"] = _time_runs(train, warmup, repeats)
    return _result(f"torch {torch.__version__}", model.name, batch, threads, samples, faults)


def run_ours(model, batch: int, threads: int, *, warmup: int = 2, repeats: int = 5,
             modes: tuple[str, ...] = MODES, seed: int = 0) -> dict:
    """Times the model's forward pass and training step (forward keeping what backward needs,
    backward in reverse layer order, SGD with momentum) on our kernels and numpy, on
    `threads` threads; medians of `repeats` runs after `warmup`."""
    _check_run_args(batch, threads, warmup, repeats, modes)
    from .. import __version__

    net = OursModel(model, batch, threads, seed)
    samples, faults = {}, {}
    if "infer" in modes:
        samples["infer"], faults["infer"] = _time_runs(lambda: net.forward(False), warmup, repeats)
    if "train" in modes:
        samples["train"], faults["train"] = _time_runs(net.train_step, warmup, repeats)
    return _result(f"dlcb_kernels {__version__} (numpy {np.__version__} for memory-bound layers)", model.name, batch,
                   threads, samples, faults)


RUNNERS = {"torch": run_torch, "ours": run_ours}


def run_torch_module(net, example, threads: int, *, warmup: int = 2, repeats: int = 5,
                     modes: tuple[str, ...] = MODES, seed: int = 0, loss: bool = False) -> dict:
    """Times a real torch.nn.Module end to end on `example` (its batch): the forward pass (eval
    mode, no_grad) and a training step (train mode: forward, backward of sum(output * a fixed
    gradient), or with `loss` of the softmax cross-entropy of the output's last dimension against
    fixed random labels, then SGD with momentum), the graph as the module runs it; medians of
    `repeats` runs."""
    batch = int(example.shape[0])
    _check_run_args(batch, threads, warmup, repeats, modes)
    was_training = net.training
    with torch_threads(threads) as torch, _restoring_mode(net, was_training):
        samples, faults = {}, {}
        if "infer" in modes:
            net.eval()

            def infer() -> None:
                with torch.no_grad():
                    net(example)

            samples["infer"], faults["infer"] = _time_runs(infer, warmup, repeats)
        if "train" in modes:
            net.train()
            optimizer = torch.optim.SGD(net.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)
            generator = torch.Generator().manual_seed(seed)
            output = _first_tensor(net(example))
            grad = torch.randn(output.shape, generator=generator, dtype=output.dtype)
            labels = torch.randint(0, output.shape[-1], output.shape[:-1], generator=generator).reshape(-1)

            def train() -> None:
                optimizer.zero_grad()
                output = _first_tensor(net(example))
                if loss:
                    torch.nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), labels).backward()
                else:
                    torch.autograd.backward(output, grad)
                optimizer.step()

            samples["train"], faults["train"] = _time_runs(train, warmup, repeats)
    return _result(f"torch {torch.__version__}", type(net).__name__, batch, threads, samples, faults,
                   execution="graph")


@contextlib.contextmanager
def _restoring_mode(net, training: bool):
    """The module back in its train/eval mode after the block."""
    try:
        yield
    finally:
        net.train(training)


def _first_tensor(output):
    """A module's output, or the first tensor of a tuple/list output (an RNN's)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


# Predictions ----------------------------------------------------------------------------------

def predict_seconds(model, table_doc: dict, batch: int, impl: str, first_touch: float | None = None) -> dict:
    """{"infer": s, "train": s, "sources": {mode: {source: seconds}}, "uncertainty": {mode: relative}}
    from predict_model on the table's records of the runner's implementation: "torch" (conv/cpu/torch, gemm/cpu/torch,
    rnn/cpu/torch) or "ours" (provider ours). first_touch: seconds a fresh page costs now, to
    which exact records are moved (ThroughputModel); None keeps the records' times."""
    from .kernel_model import ThroughputModel
    from .model_time import predict_model

    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    kernels = ThroughputModel(table_doc, impl=impl, first_touch=first_touch)     # fitted once for both modes
    out: dict = {"sources": {}, "uncertainty": {}}
    for mode in MODES:
        prediction = predict_model(model, kernels, batch=batch, mode=mode)
        out[mode] = prediction.step_seconds
        out["uncertainty"][mode] = prediction.uncertainty
        sources = {"memory": prediction.optimizer_seconds} if prediction.optimizer_seconds else {}
        if prediction.overhead_seconds:
            sources["overhead"] = prediction.overhead_seconds
        for layer in prediction.layers:
            for source, seconds in layer.sources.items():
                sources[source] = sources.get(source, 0.0) + seconds
        out["sources"][mode] = sources
    return out


def held_out_table(table_doc: dict, model, batch: int) -> dict:
    """The table without any record of a problem the model's prediction reads (its kernel
    problems and memory-bound calls in both modes; the runner's framework overhead is no model's
    own and stays): leave-one-model-out predicts the model from what the other models measured,
    as a model never measured would be predicted."""
    from ..problems import problem_from_params
    from ..suites import MODEL_OPS, model_problems
    from .kernel_model import OVERHEAD_OP, problem_key

    own = {problem_key(sp.problem) for sp in model_problems([model], {model.name: batch}, "both", MODEL_OPS)
           if sp.problem.op != OVERHEAD_OP}

    def own_record(record: dict) -> bool:
        try:
            return problem_key(problem_from_params(record["op"], record["params"])) in own
        except (KeyError, TypeError, ValueError):   # an error record without usable params
            return False

    return {**table_doc, "records": [r for r in table_doc["records"] if not own_record(r)]}


# Validation ------------------------------------------------------------------------------------

def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured: positive when the prediction is too slow."""
    if not measured > 0:
        raise ValueError(f"measured time must be > 0, got {measured}")
    return (predicted - measured) / measured


def validate_module(table_doc: dict, net, example, threads: int, *, warmup: int = 2, repeats: int = 5,
                    name: str | None = None, progress=None, runner: Callable | None = None,
                    leave_one_out: bool = False, loss: bool = False, first_touch: str = "now",
                    rounds: int = 1) -> list[dict]:
    """A torch.nn.Module run end to end (run_torch_module: the graph, not a layer sequence)
    against the prediction of its import (models.from_torch; with `loss`, the training step
    computes a cross-entropy loss and the import has it, models.with_loss) from the table's
    torch records: rows as validate()'s, execution "graph"; first_touch as validate()'s; rounds:
    the module measured that many times over, the samples pooled. `runner` replaces
    run_torch_module in tests."""
    from ..models import from_torch, with_loss

    model = from_torch(net, example, name=name)
    model = with_loss(model) if loss else model
    batch = int(example.shape[0])
    require_choice(first_touch, "first_touch", FIRST_TOUCH_CHOICES)
    require_int(rounds, "rounds", 1)
    pooled: dict = {}
    for round_index in range(rounds):
        _note(progress, f"{model.name} batch {batch}, torch module: measuring{_round_text(round_index, rounds)}...")
        with _first_touch_around(first_touch, threads) as touch:
            measured = (runner or run_torch_module)(net, example, threads, warmup=warmup, repeats=repeats, loss=loss)
        measured, cost = _pool(pooled, model.name, measured, touch.cost) if rounds > 1 else (measured, touch.cost)
    predicted = predict_seconds(model, table_doc, batch, "torch", cost)
    held_out = _held_out_prediction(predict_seconds, model, table_doc, batch, "torch", progress, cost) \
        if leave_one_out else None
    rows: list = []
    _add_rows(rows, model.name, "torch", batch, threads, measured, predicted, progress, held_out, cost)
    return rows


def _add_rows(rows: list, model_name: str, impl: str, batch: int, threads: int, measured: dict, predicted: dict,
              progress, held_out: dict | None = None, first_touch: float | None = None) -> None:
    """One row per mode of a measured run against its prediction (and, given, the held-out
    prediction: the table without the model's own records), appended and said as they come."""
    for mode, key in (("infer", "forward_s"), ("train", "train_step_s")):
        row = {"model": model_name, "impl": impl, "mode": mode, "batch": batch, "threads": threads,
               "measured_s": measured[key], "predicted_s": predicted[mode],
               "error": relative_error(predicted[mode], measured[key]),
               "uncertainty": predicted.get("uncertainty", {}).get(mode),
               "implementation": measured["implementation"], "execution": measured.get("execution"),
               "measured_spread": measured["stats"][mode]["rel_spread"],
               "sources": predicted.get("sources", {}).get(mode, {}), "first_touch_s_per_page": first_touch}
        # what the step's own page faults cost at the probed price: the part of a miss that is
        # fresh memory (the table's calls may have reused theirs)
        faults = (measured.get("page_faults_per_step") or {}).get(mode)
        row["page_faults_per_step"] = faults
        row["first_touch_share"] = faults * first_touch / measured[key] \
            if faults is not None and first_touch is not None else None
        text = f"  {mode:<5} measured {measured[key] * 1e3:9.2f} ms, predicted {predicted[mode] * 1e3:9.2f} ms " \
               f"({row['error']:+.1%})"
        if row["first_touch_share"] is not None:
            text += f" [{faults:,.0f} page faults a step at {first_touch * 1e6:.2f} us: ~{row['first_touch_share']:.0%}]"
        if held_out is not None:
            row["held_out_predicted_s"] = held_out[mode]
            row["held_out_error"] = relative_error(held_out[mode], measured[key])
            row["held_out_uncertainty"] = held_out.get("uncertainty", {}).get(mode)
            text += f", held out {held_out[mode] * 1e3:9.2f} ms ({row['held_out_error']:+.1%})"
        rows.append(row)
        _note(progress, text)


class _FirstTouch:
    cost: float | None = None


@contextlib.contextmanager
def _first_touch_around(choice: str, threads: int):
    """With "now": the mean of the fresh-page cost probed before and after the block, in `.cost`."""
    touch = _FirstTouch()
    if choice == "table":
        yield touch
        return
    from ..measure.monitor import FirstTouchProbe

    probe = FirstTouchProbe(threads)
    before = probe()
    yield touch
    touch.cost = (before + probe()) / 2


def _held_out_prediction(predictor: Callable, model, table_doc: dict, batch: int, impl: str, progress,
                         first_touch: float | None = None):
    """The model predicted from the table without its own records; None (said) where too little is left."""
    try:
        return predictor(model, held_out_table(table_doc, model, batch), batch, impl, first_touch)
    except ValueError as exc:
        _note(progress, f"  {model.name}: no held-out prediction ({exc})")
        return None


def validate(table_doc: dict, models, batch_by_model: dict, threads: int, impls=IMPLS, *,
             warmup: int = 2, repeats: int = 5, runners: dict | None = None,
             predictor: Callable | None = None, progress=None, rows_out: list | None = None,
             leave_one_out: bool = False, first_touch: str = "now", rounds: int = 1) -> list[dict]:
    """Measures every model with every runner in `impls`, predicts it from the table, and
    returns one row per (model, implementation, mode): model, impl, mode, batch, measured_s,
    predicted_s, error (relative, signed), sources. `runners` and `predictor`
    (model, table_doc, batch, impl) -> {"infer": s, "train": s} replace the real ones in tests.
    rows_out: a list the rows are appended to as they come (kept when the run is interrupted).
    leave_one_out: each row also holds the model predicted from the table without its own
    records (held_out_table): held_out_predicted_s, held_out_error, held_out_uncertainty.
    first_touch: "now" probes the cost of a fresh page before and after each model's runs and
    predicts at their mean (exact records moved to it, ThroughputModel), "table" keeps the
    records' own times. rounds: every model measured that many times, the models in turn, its
    samples pooled (a row is replaced by the pooled one after each round)."""
    require_choice(first_touch, "first_touch", FIRST_TOUCH_CHOICES)
    impls = tuple(impls)
    unknown = set(impls) - set(IMPLS)
    if unknown or not impls:
        raise ValueError(f"impls must be a non-empty subset of {IMPLS}, got {impls!r}")
    runners = runners or RUNNERS
    predictor = predictor or predict_seconds
    rows = rows_out if rows_out is not None else []
    require_int(rounds, "rounds", 1)
    for model in models:
        if model.name not in batch_by_model:
            raise ValueError(f"batch_by_model has no batch size for {model.name}")
    pooled: dict = {}
    for round_index in range(rounds):
        for model in models:
            batch = batch_by_model[model.name]
            for impl in impls:
                if impl == "torch" and runners is RUNNERS and not torch_available():
                    if round_index == 0:
                        _note(progress, f"{model.name}: torch is not installed; skipping its runner")
                    continue
                _note(progress, f"{model.name} batch {batch}, {impl}: measuring{_round_text(round_index, rounds)}...")
                with _first_touch_around(first_touch, threads) as touch:
                    measured = runners[impl](model, batch, threads, warmup=warmup, repeats=repeats)
                measured, cost = _pool(pooled, (model.name, impl), measured, touch.cost) if rounds > 1 \
                    else (measured, touch.cost)
                predicted = predictor(model, table_doc, batch, impl, cost)
                held_out = _held_out_prediction(predictor, model, table_doc, batch, impl, progress, cost) \
                    if leave_one_out else None
                rows[:] = [r for r in rows if (r["model"], r["impl"]) != (model.name, impl)]
                _add_rows(rows, model.name, impl, batch, threads, measured, predicted, progress, held_out, cost)
    return rows


def _round_text(index: int, rounds: int) -> str:
    return f" (round {index + 1} of {rounds})" if rounds > 1 else ""


def _pool(pooled: dict, key, measured: dict, cost: float | None) -> tuple[dict, float | None]:
    """The runs of `key` so far as one measurement: every round's samples together (medians over
    all of them), page faults a step and fresh-page cost averaged over the rounds."""
    if key not in pooled:
        pooled[key] = {"samples": {}, "faults": {}, "costs": []}
    kept = pooled[key]
    for mode, values in measured["samples"].items():
        kept["samples"].setdefault(mode, []).extend(values)
    for mode, faults in (measured.get("page_faults_per_step") or {}).items():
        kept["faults"].setdefault(mode, []).append(faults)
    if cost is not None:
        kept["costs"].append(cost)
    faults = {mode: None if None in values else statistics.fmean(values) for mode, values in kept["faults"].items()}
    result = _result(measured["implementation"], measured["model"], measured["batch"], measured["threads"],
                     {mode: list(values) for mode, values in kept["samples"].items()}, faults,
                     execution=measured.get("execution") or "layer-sequence")
    return result, (statistics.fmean(kept["costs"]) if kept["costs"] else None)


def covered(predicted: float, measured: float, uncertainty: float | None) -> bool | None:
    """Whether the measured time lies within the prediction's stated interval,
    predicted x (1 +- uncertainty); None where no uncertainty was stated."""
    if uncertainty is None:
        return None
    return bool(abs(predicted - measured) <= uncertainty * predicted)


def summarize_rows(rows: list[dict]) -> list[dict]:
    """Per (impl, mode), and per impl over both modes ("all") where both ran: models, mean
    |error|, max |error| and its model, count within 20 %, how often the stated uncertainty
    covers the measured time, whether the goals (mean <= 10 %, none above 20 %) are met; with
    held-out predictions, the same of those (goals: mean <= 15 %, none above 30 %, covered in
    >= 80 % of the rows)."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["impl"], row["mode"]), []).append(row)
    for impl in dict.fromkeys(row["impl"] for row in rows):
        modes = {mode for (i, mode) in groups if i == impl}
        if len(modes) > 1:
            groups[(impl, "all")] = [row for row in rows if row["impl"] == impl]
    return [_summary_of(impl, mode, group) for (impl, mode), group in groups.items()]


def _summary_of(impl: str, mode: str, group: list[dict]) -> dict:
    # Python numbers throughout (a numpy scalar from a prediction would stop json.dumps)
    errors = [float(abs(r["error"])) for r in group]
    worst = max(group, key=lambda r: abs(r["error"]))
    mean = sum(errors) / len(errors)
    out = {"impl": impl, "mode": mode, "models": len({r["model"] for r in group}), "rows": len(group),
           "mean_abs_error": mean, "max_abs_error": max(errors), "worst_model": worst["model"],
           "within_20pct": sum(e <= GOAL_MODEL_ERROR for e in errors),
           "covered": _coverage(group, "predicted_s", "uncertainty"),
           "goal_met": len(group) >= 6 and mean <= GOAL_MEAN_ERROR and all(e <= GOAL_MODEL_ERROR for e in errors)}
    held = [r for r in group if r.get("held_out_error") is not None]
    if held:
        held_errors = [float(abs(r["held_out_error"])) for r in held]
        held_worst = max(held, key=lambda r: abs(r["held_out_error"]))
        held_mean = sum(held_errors) / len(held_errors)
        coverage = _coverage(held, "held_out_predicted_s", "held_out_uncertainty")
        out["held_out"] = {
            "rows": len(held), "mean_abs_error": held_mean, "max_abs_error": max(held_errors),
            "worst_model": held_worst["model"], "covered": coverage,
            "goal_met": len(held) >= 6 and held_mean <= GOAL_HELD_OUT_MEAN_ERROR and
            max(held_errors) <= GOAL_HELD_OUT_MODEL_ERROR and coverage is not None and
            coverage["share"] >= GOAL_COVERAGE}
    return out


def _coverage(group: list[dict], predicted_key: str, uncertainty_key: str) -> dict | None:
    """{"count": rows covered, "of": rows with a stated uncertainty, "share"}; None without any."""
    flags = [covered(r[predicted_key], r["measured_s"], r.get(uncertainty_key)) for r in group]
    stated = [flag for flag in flags if flag is not None]
    if not stated:
        return None
    return {"count": sum(stated), "of": len(stated), "share": sum(stated) / len(stated)}


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def held_out_summary(table_doc: dict, impl: str = "best") -> list[dict]:
    """The per-kernel held-out evaluation: ThroughputModel.cross_validate() (every record
    predicted by a model fitted without it), |error| median and 90th percentile per op and
    overall. impl: "best", or a runner name ("torch", "ours") for that runner's records."""
    from .kernel_model import ThroughputModel

    results = ThroughputModel(table_doc, impl=impl).cross_validate()
    groups: dict = {"all": []}
    for result in results:
        error = abs(result["rel_error"])
        groups.setdefault(result["op"], []).append(error)
        groups["all"].append(error)
    return [{"op": op, "count": len(errors), "median_abs_error": _percentile(errors, 50),
             "p90_abs_error": _percentile(errors, 90)}
            for op, errors in groups.items() if errors]


def format_rows(rows: list[dict], summary: list[dict], held_out: dict | None = None,
                execution: str = "layer-sequence") -> str:
    """The readable table: one line per row (with the held-out prediction where made), the
    summary, the held-out kernel figures per runner."""
    loo = any("held_out_error" in r for r in rows)
    header = (f"{'model':<18} {'impl':<6} {'mode':<5} {'batch':>5} {'measured ms':>12} {'predicted ms':>13} "
              f"{'error':>8} {'+-':>5}" + (f" {'held out ms':>12} {'error':>8} {'+-':>5}" if loo else ""))
    lines = [header]
    for r in rows:
        flag = "  > 20%" if abs(r["error"]) > GOAL_MODEL_ERROR else ""
        line = (f"{r['model']:<18} {r['impl']:<6} {r['mode']:<5} {r['batch']:>5} {r['measured_s'] * 1e3:>12.2f} "
                f"{r['predicted_s'] * 1e3:>13.2f} {r['error']:>+8.1%} {_percent(r.get('uncertainty')):>5}")
        if loo:
            if r.get("held_out_error") is None:
                line += f" {'-':>12} {'-':>8} {'-':>5}"
            else:
                line += (f" {r['held_out_predicted_s'] * 1e3:>12.2f} {r['held_out_error']:>+8.1%} "
                         f"{_percent(r.get('held_out_uncertainty')):>5}")
        share = r.get("first_touch_share")
        touch = f"  page faults ~{share:.0%} of the step" if share is not None and share >= 0.05 else ""
        lines.append(line + flag + touch)
    lines.append("")
    lines.append("summary (goal: mean |error| <= 10% over >= 6 models, none above 20%"
                 + ("; held out: mean <= 15%, none above 30%, the stated +- covering >= 80%" if loo else "") + "):")
    for s in summary:
        lines.append(f"  {s['impl']:<6} {s['mode']:<5} {s['rows']} rows: mean |error| {s['mean_abs_error']:.1%}, "
                     f"max {s['max_abs_error']:.1%} ({s['worst_model']}), {s['within_20pct']}/{s['rows']} within "
                     f"20%, {_coverage_text(s['covered'])} -> {'met' if s['goal_met'] else 'not met'}")
        h = s.get("held_out")
        if h:
            lines.append(f"  {'':<6} {'':<5} held out: mean |error| {h['mean_abs_error']:.1%}, max "
                         f"{h['max_abs_error']:.1%} ({h['worst_model']}), {_coverage_text(h['covered'])} -> "
                         f"{'met' if h['goal_met'] else 'not met'}")
    for impl, figures in (held_out or {}).items():
        lines.append("")
        lines.append(f"held-out kernels, {impl} records (goal: median |error| <= 5%, 90th percentile <= 12%):")
        for h in figures:
            lines.append(f"  {h['op']:<5} {h['count']:>4} records: median {h['median_abs_error']:.1%}, "
                         f"p90 {h['p90_abs_error']:.1%}")
        if not figures:
            lines.append("  no records to cross-validate")
    lines.append("")
    lines.append("execution: graph (the module's own forward, end to end)" if execution == "graph" else
                 "execution: layer-sequence (each layer on an input of its declared shape; see "
                 "src/dlcb_kernels/predict/validate.py)")
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _coverage_text(coverage: dict | None) -> str:
    if coverage is None:
        return "no stated uncertainty"
    return f"+- covers {coverage['count']}/{coverage['of']}"


def _note(progress, text: str) -> None:
    if progress is not None:
        print(text, file=progress, flush=True)


# The validation table --------------------------------------------------------------------------

def validation_problems(models, batch_by_model: dict) -> list:
    """Every kernel problem and memory-bound layer call the validation looks up: the models suite's
    problems of both modes (suites.model_problems), labelled with set "validation"."""
    from ..suites import MODEL_OPS, model_problems

    return model_problems(models, batch_by_model, "both", MODEL_OPS, label_set="validation")


def make_table(path, models, batch_by_model: dict, threads: int, *, impls=IMPLS, max_time: float = 0.5,
               progress=sys.stderr) -> dict:
    """Measures validation_problems() with torch's and our implementations (dlcb_kernels.bench;
    the memory-bound layers with the runners' own layers, registry.memory_layers)
    into a throughput table at `path`; returns the table."""
    from .. import registry
    from ..bench import BenchConfig, run_bench
    from ..measure import Settings

    impls = tuple(impls)
    if set(impls) - set(IMPLS) or not impls:
        raise ValueError(f"impls must be a non-empty subset of {IMPLS}, got {impls!r}")
    problems = validation_problems(models, batch_by_model)
    ops = sorted({sp.problem.op for sp in problems})
    # "torch" is the variant of PyTorch's implementations, "ours" the provider of ours
    implementations = registry.select(ops, ",".join(impls), backend="cpu")
    settings = Settings(max_time=max_time, min_time=min(0.2, max_time), min_samples=5)
    config = BenchConfig(problems, implementations, threads, settings=settings, suite="validation")
    return run_bench(config, path, progress_stream=progress)


def parse_batches(models, batch: int | None) -> dict:
    """Each model's batch: `batch` for all when given, else DEFAULT_BATCHES (8 for others)."""
    return {model.name: batch or DEFAULT_BATCHES.get(model.name, 8) for model in models}


def resolve_models(names) -> list:
    from ..suites import resolve_models as resolve

    return resolve(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcb_kernels.predict.validate",
        description="Build the throughput table the validation needs: every kernel problem of the "
                    "models at their batch sizes, in every pass, with torch's and our implementations.")
    parser.add_argument("--make-table", type=str, required=True, metavar="FILE", help="table to write (JSON)")
    parser.add_argument("--models", default=",".join(DEFAULT_BATCHES), metavar="NAME,...",
                        help=f"models (default: {','.join(DEFAULT_BATCHES)})")
    parser.add_argument("--batch", type=int, default=None,
                        help="one batch size for every model (default: each model's own, as dlcb validate)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: OpenMP's)")
    parser.add_argument("--impl", default="torch,ours", help="torch, ours or both (default: torch,ours)")
    parser.add_argument("--max-time", type=float, default=0.5,
                        help="seconds of samples per record before giving up on the noise target (default 0.5)")
    args = parser.parse_args(argv)

    try:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        impls = tuple(i.strip() for i in args.impl.split(",") if i.strip())
        if set(impls) - set(IMPLS) or not impls:
            raise ValueError(f"--impl must name torch and/or ours, got {args.impl!r}")
        for name in ("batch", "threads"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
        if args.max_time <= 0:
            raise ValueError(f"--max-time must be > 0, got {args.max_time}")
        models = resolve_models(names)
        threads = require_threads(args.threads)
        make_table(args.make_table, models, parse_batches(models, args.batch), threads, impls=impls,
                   max_time=args.max_time)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"table: {args.make_table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
