"""The engines the collectives run on: MPI on host buffers (mpi4py), NCCL on GPU buffers (CuPy).

A backend turns a CommProblem into a Prepared collective on this rank's buffers: `run(k)` does
the collective k times and returns when they are done (NCCL: the stream is synchronised),
`reset()` puts the inputs back (broadcast writes into its input on the non-root ranks), and
`max_error(expected)` compares the output with the exact expectation on this rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from .collectives import CommProblem
from .world import World

BACKENDS = ("mpi", "nccl")


@dataclass
class Prepared:
    run: Callable[[int], None]
    reset: Callable[[], None]
    output: Callable[[], np.ndarray]          # this rank's output, on the host

    def max_error(self, expected: np.ndarray) -> float:
        got = self.output()
        if got.shape != expected.shape:
            return float("inf")
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        return float(diff.max()) if diff.size else 0.0


class MpiBackend:
    """MPI collectives on numpy buffers, through mpi4py's buffer interface (no pickling)."""

    name = "mpi"

    def __init__(self, world: World):
        self.world = world

    @staticmethod
    def unavailable_reason(world: World) -> str | None:
        return None if world.uses_mpi else "MPI is not initialised (mpi4py missing)"

    def describe(self) -> dict:
        import mpi4py

        return {"backend": "mpi", "library": self.world.mpi_library, "mpi4py": mpi4py.__version__,
                "buffers": "host (numpy)"}

    def prepare(self, problem: CommProblem) -> Prepared:
        from mpi4py import MPI

        comm, rank = self.world.comm, self.world.rank
        send = problem.send_data(rank)
        recv = np.empty(problem.recv_shape(), send.dtype)
        initial = send.copy()

        if problem.collective == "allreduce":
            def once():
                comm.Allreduce(send, recv, op=MPI.SUM)
        elif problem.collective == "allgather":
            def once():
                comm.Allgather(send, recv)
        elif problem.collective == "reducescatter":
            def once():
                comm.Reduce_scatter_block(send, recv, op=MPI.SUM)
        else:
            recv = send  # broadcast works in place

            def once():
                comm.Bcast(send, root=0)

        def run(k: int) -> None:
            for _ in range(k):
                once()

        def reset() -> None:
            send[...] = initial

        return Prepared(run, reset, lambda: recv)


class NcclBackend:
    """NCCL collectives on CuPy device buffers, one GPU per rank, on a stream of our own.

    The NCCL unique id travels from rank 0 over MPI; each rank takes GPU local_rank mod the
    number of visible GPUs (launch one rank per GPU)."""

    name = "nccl"

    def __init__(self, world: World):
        import cupy
        from cupy.cuda import nccl

        self.world = world
        self.cupy, self.nccl = cupy, nccl
        self.device = world.local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.device).use()
        uid = world.bcast(nccl.get_unique_id() if world.is_root else None)
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    @staticmethod
    def unavailable_reason(world: World) -> str | None:
        if not world.uses_mpi:
            return "NCCL ranks exchange their unique id over MPI, which is not initialised (mpi4py missing)"
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as exc:
            return f"CuPy is not installed ({exc}): pip install 'dlcb-kernels[gpu]'"
        if not getattr(nccl, "available", False):
            return "CuPy was built or installed without NCCL (install NCCL for CuPy's CUDA version)"
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as exc:
            return f"no usable CUDA device ({exc})"
        return None if count > 0 else "no CUDA device is visible"

    def describe(self) -> dict:
        props = self.cupy.cuda.runtime.getDeviceProperties(self.device)
        name = props["name"]
        return {"backend": "nccl", "library": f"NCCL {self.nccl.get_version()}", "cupy": self.cupy.__version__,
                "buffers": f"device (CuPy) on GPU {self.device}",
                "gpu": name.decode() if isinstance(name, bytes) else name}

    def prepare(self, problem: CommProblem) -> Prepared:
        cupy, nccl, comm, stream = self.cupy, self.nccl, self.comm, self.stream
        dtype = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}[problem.dtype]
        host = problem.send_data(self.world.rank)
        send = cupy.asarray(host)
        recv = send if problem.collective == "broadcast" else cupy.empty(problem.recv_shape(), host.dtype)
        sp, rp, s = send.data.ptr, recv.data.ptr, stream.ptr

        if problem.collective == "allreduce":
            def once():
                comm.allReduce(sp, rp, problem.count, dtype, nccl.NCCL_SUM, s)
        elif problem.collective == "allgather":
            def once():
                comm.allGather(sp, rp, problem.chunk, dtype, s)
        elif problem.collective == "reducescatter":
            def once():
                comm.reduceScatter(sp, rp, problem.chunk, dtype, nccl.NCCL_SUM, s)
        else:
            def once():
                comm.broadcast(sp, rp, problem.count, dtype, 0, s)

        def run(k: int) -> None:
            for _ in range(k):
                once()
            stream.synchronize()

        def reset() -> None:
            send.set(host)
            cupy.cuda.Device(self.device).synchronize()

        return Prepared(run, reset, lambda: cupy.asnumpy(recv))


def make_backend(name: str, world: World):
    """The backend, or ValueError saying why it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    cls = MpiBackend if name == "mpi" else NcclBackend
    reason = cls.unavailable_reason(world)
    if reason:
        raise ValueError(f"backend {name} is unavailable: {reason}")
    return cls(world)
