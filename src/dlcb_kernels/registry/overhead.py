"""The runners' framework overhead (OverheadProblem), measured as each validation runner spends
it: "torch" calls PyTorch modules and its SGD optimizer as TorchModel's training step does,
"ours" calls our kernels' Python entry points and the numpy SGD update as OursModel does.

Layer chains are the identity on the input 1.0: torch's of Linear(1, 1) modules with weight 1
and bias 0 (a module with parameters, the common case; in training each call records an autograd
node, as a model's layers do); ours are 1x1x1 GEMMs of 1.0 (one a layer at inference, three in
training: the forward and the two backward GEMMs).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from . import Implementation, PreparedRun, register, vendor_missing
from .memory_layers import _always_available
from .torch_vendor import _library as _torch_library
from ..layer_runners import torch_threads


def _torch() -> Implementation:
    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from ..layer_runners import SGD_LR, SGD_MOMENTUM

        with torch_threads(threads) as torch:
            nn = torch.nn
            x = torch.from_numpy(inputs["x"])
            prepared = PreparedRun(lambda: None, None, threads)
            if problem.kind == "step":
                params = [nn.Parameter(torch.ones(1)) for _ in range(problem.calls)]
                for p in params:
                    p.grad = torch.zeros(1)
                optimizer = torch.optim.SGD(params, lr=SGD_LR, momentum=SGD_MOMENTUM)

                def run() -> None:
                    optimizer.zero_grad(set_to_none=False)
                    optimizer.step()
                    prepared.output = params[0].detach().numpy()
                prepared.algorithm = f"SGD with momentum over {problem.calls} parameter tensors (zero_grad, step)"
            else:
                chain = nn.Sequential(*[nn.Linear(1, 1) for _ in range(problem.calls)])
                with torch.no_grad():
                    for layer in chain:
                        layer.weight.fill_(1.0)
                        layer.bias.zero_()
                if problem.training:
                    leaf = x.clone().requires_grad_(True)

                    def run() -> None:
                        y = chain(leaf)
                        y.backward(torch.ones_like(y))
                        prepared.output = y.detach().numpy()
                    prepared.algorithm = f"{problem.calls} Linear(1, 1) modules, forward and autograd backward"
                else:
                    def run() -> None:
                        with torch.no_grad():
                            prepared.output = chain(x).numpy()
                    prepared.algorithm = f"{problem.calls} Linear(1, 1) modules under no_grad"
            prepared.run = run
            yield prepared

    return Implementation("overhead", "cpu", "torch", "vendor", _torch_library, vendor_missing("torch"), prepare)


def _ours() -> Implementation:
    def library() -> str:
        from .. import __version__

        return f"dlcb_kernels {__version__} (numpy {np.__version__} for the optimizer)"

    @contextlib.contextmanager
    def prepare(problem, inputs, threads: int) -> Iterator[PreparedRun]:
        from .. import gemm
        from ..layer_runners import SGD_LR, SGD_MOMENTUM

        prepared = PreparedRun(lambda: None, None, threads)
        if problem.kind == "step":
            weights = [np.ones(1, dtype=np.float32) for _ in range(problem.calls)]
            grads = [np.zeros(1, dtype=np.float32) for _ in range(problem.calls)]
            momenta = [np.zeros(1, dtype=np.float32) for _ in range(problem.calls)]

            def run() -> None:
                for w, g, v in zip(weights, grads, momenta):
                    v *= SGD_MOMENTUM
                    v += g
                    w -= SGD_LR * v
                prepared.output = weights[0]
            prepared.algorithm = f"numpy SGD with momentum over {problem.calls} parameter tensors"
        else:
            one = np.ones((1, 1), dtype=np.float32)
            out = np.empty((1, 1), dtype=np.float32)
            calls = 3 if problem.training else 1   # a layer's forward, backward data, backward weights

            value = inputs["x"].reshape(1, 1)

            def run() -> None:
                for _ in range(problem.calls * calls):
                    gemm(value, one, c=out, threads=threads)
                prepared.output = out.reshape(1).copy()
            prepared.algorithm = f"{problem.calls} x {calls} 1x1x1 GEMMs through the Python entry point"
        prepared.run = run
        yield prepared

    return Implementation("overhead", "cpu", "ours", "ours", library, _always_available, prepare)


register(_torch())
register(_ours())
