"""Memory-bound layers (MemoryProblem) as the validation runners execute them: "torch" builds the
very TorchLayer the PyTorch runner builds, "ours" the very OursLayer (numpy) our runner builds
(dlcb_kernels.layer_runners, which the validation runners use too), so a record measures what
runs in a model.

Forward: one call of the layer (torch under no_grad, in train or eval mode as the problem says).
Backward: the layer's backward alone. The forward that saves what it needs runs once when
prepared; torch times torch.autograd.grad(y, inputs and BN's gamma/beta, dy, retain_graph=True),
ours the runner's backward (BN: its gamma/beta gradients with the input gradient).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from . import Implementation, PreparedRun, register, vendor_missing
from .torch_vendor import _library as _torch_library
from ..layer_runners import torch_threads


def _spec(problem):
    from ..layer_runners import layer_spec

    layer, batch = problem.to_layer()
    return layer_spec(layer, batch)


def _torch() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from ..layer_runners import TorchLayer

        with torch_threads(threads) as torch:
            layer = TorchLayer(_spec(problem), torch)
            if layer.module is not None:
                layer.module.train(problem.training)
            if problem.kind == "bn":
                with torch.no_grad():
                    layer.module.weight.copy_(torch.from_numpy(inputs["gamma"]))
                    layer.module.bias.copy_(torch.from_numpy(inputs["beta"]))
            if problem.kind == "loss":
                layer.labels = torch.from_numpy(inputs["labels"])
            # an in-place call overwrites its input: a copy of it, so the bench's inputs stay as made
            xs = [torch.from_numpy(x.copy() if problem.inplace else x) for x in inputs["x"]]
            prepared = PreparedRun(lambda: None, None, threads, f"torch {problem.kind} layer of the validation runner")
            if problem.direction == "fwd":
                def run() -> None:
                    with torch.no_grad():
                        prepared.output = layer(xs).numpy()
                prepared.algorithm += " forward under no_grad"
            else:
                leaves = [x.clone().requires_grad_(True) for x in xs]
                targets = leaves + layer.parameters()
                y = layer(leaves)
                dy = torch.from_numpy(inputs["dy"])

                def run() -> None:
                    prepared.output = torch.autograd.grad(y, targets, dy, retain_graph=True)[0].numpy()
                prepared.algorithm += " backward (autograd.grad, retain_graph)"
            prepared.run = run
            yield prepared

    return Implementation("memory", "cpu", "torch", "vendor", _torch_library, vendor_missing("torch"), prepare)


def _always_available(problem=None) -> str | None:
    return None


def _ours() -> Implementation:
    def library() -> str:
        from .. import __version__

        return f"dlcb_kernels {__version__} (numpy {np.__version__}, the validation runner's layers)"

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from ..layer_runners import OursLayer

        spec = _spec(problem)
        grad_in = [np.empty(shape, dtype=np.float32) for shape in spec.inputs]
        layer = OursLayer(spec, list(inputs["x"]), inputs["dy"], grad_in, threads, np.random.default_rng(0))
        if problem.kind == "bn":
            np.copyto(layer.weights["gamma"], inputs["gamma"])
            np.copyto(layer.weights["beta"], inputs["beta"])
        if problem.kind == "loss":
            layer.labels = inputs["labels"]
        prepared = PreparedRun(lambda: None, None, 1, f"numpy {problem.kind} of our validation runner")
        if problem.direction == "fwd":
            def run() -> None:
                layer.forward(problem.training)
                # dropout at inference is the identity: the runner writes nothing
                prepared.output = layer.y if problem.training or problem.kind != "dropout" else layer.x[0]
        else:
            layer.forward(True)

            def run() -> None:
                layer.backward()
                prepared.output = grad_in[0]
        prepared.run = run
        yield prepared

    return Implementation("memory", "cpu", "ours", "ours", library, _always_available, prepare)


register(_torch())
register(_ours())
