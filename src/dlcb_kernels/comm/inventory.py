"""Multi-node inventory: `mpirun -n P dlcb bench` measures each device of each host once.

Ranks are grouped by (host, device). The lowest rank of a group measures; the others idle,
since two ranks timing the same CPU or GPU at once would steal each other's cores or SMs, and
are listed in the group's device block ("ranks"). Every measuring rank writes its own table as
it goes, to a per-rank file beside the output, so an interrupted or failed job keeps what was
finished; at the end rank 0 gathers the tables into one.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..table import TableError, merge

# How often a rank that has finished looks whether the others have: rarely enough to leave the
# cores to the ranks still measuring, often enough that the merge starts promptly.
_WAIT_POLL_S = 0.2


@dataclass(frozen=True)
class Placement:
    """Where one rank runs: its host and its device there ("cpu" or "cuda:N"). `identity` tells
    devices apart physically where the label may not (a GPU's PCI bus id: with CUDA_VISIBLE_DEVICES
    set per rank, every rank's GPU is its cuda:0); empty, the label does."""

    rank: int
    host: str
    device: str
    identity: str = ""

    def __post_init__(self):
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 0:
            raise ValueError(f"rank must be an int >= 0, got {self.rank!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"rank {self.rank}: host must be a non-empty string, got {self.host!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda:\d+", self.device):
            raise ValueError(f"rank {self.rank}: device must be 'cpu' or 'cuda:N', got {self.device!r}")


@dataclass(frozen=True)
class DeviceGroup:
    """The ranks on one device of one host; the first (lowest) of them measures it."""

    host: str
    device: str
    ranks: tuple[int, ...]

    @property
    def measuring_rank(self) -> int:
        return self.ranks[0]

    def block_fields(self) -> dict:
        """What the device block of the table says about the job's ranks on this device."""
        return {"host": self.host, "ranks": list(self.ranks), "mpi_rank": self.measuring_rank}

    def describe(self) -> str:
        others = f" (ranks {', '.join(map(str, self.ranks))})" if len(self.ranks) > 1 else ""
        return f"{self.device} on {self.host} by rank {self.measuring_rank}{others}"


def group_ranks(placements: list[Placement]) -> list[DeviceGroup]:
    """The devices of a job, each with its ranks in order, ordered by their measuring rank."""
    ranks = Counter(p.rank for p in placements)
    repeated = sorted(r for r, count in ranks.items() if count > 1)
    if repeated:
        raise ValueError(f"rank(s) {', '.join(map(str, repeated))} placed more than once")
    by_device: dict[tuple[str, str], list[Placement]] = {}
    for p in sorted(placements, key=lambda p: p.rank):
        by_device.setdefault((p.host, p.identity or p.device), []).append(p)
    groups = [DeviceGroup(members[0].host, members[0].device, tuple(p.rank for p in members))
              for members in by_device.values()]
    labels: dict[tuple[str, str], DeviceGroup] = {}
    for group in groups:
        same = labels.setdefault((group.host, group.device), group)
        if same is not group:
            raise ValueError(f"ranks {same.measuring_rank} and {group.measuring_rank} on {group.host} each call a "
                             f"different GPU {group.device} (CUDA_VISIBLE_DEVICES set per rank?): let every rank "
                             f"see all of the host's GPUs; the job places one rank on each")
    return groups


def group_of(groups: list[DeviceGroup], rank: int) -> DeviceGroup:
    for group in groups:
        if rank in group.ranks:
            return group
    raise ValueError(f"rank {rank} is in no device group")


def rank_gpu_index(requested: str, parsed_index: int, local_rank: int, device_count: int) -> int:
    """The GPU a rank measures: an explicit cuda:N stays N; "auto", "cuda" and "gpu" spread the
    ranks of a host over its GPUs by their index among the host's ranks."""
    if re.fullmatch(r"\s*(?:cuda|gpu):\d+\s*", requested, flags=re.IGNORECASE):
        return parsed_index
    if device_count < 1:
        raise ValueError(f"no CUDA device to place a rank on (device {requested!r})")
    if local_rank < 0:
        raise ValueError(f"local_rank must be >= 0, got {local_rank}")
    return local_rank % device_count


def rank_table_path(out: Path, rank: int) -> Path:
    """The per-rank table beside the job's output: results/t.json -> results/t.rank3.json."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 0:
        raise ValueError(f"rank must be an int >= 0, got {rank!r}")
    out = Path(out)
    return out.with_name(f"{out.stem}.rank{rank}{out.suffix}")


def merge_rank_tables(docs: list[dict]) -> dict:
    """The measuring ranks' tables as one. Each device block must be unique: two hosts that
    report the same hostname would otherwise merge into one device holding both's records."""
    ids = Counter(device["id"] for doc in docs for device in doc["devices"])
    repeated = sorted(device for device, count in ids.items() if count > 1)
    if repeated:
        raise TableError(f"device(s) {', '.join(repeated)} measured by more than one rank: do two hosts "
                         f"report the same hostname?")
    return merge(docs)


def cpu_binding_note() -> str | None:
    """Why this rank would not use all of its host's CPUs (the launcher bound it to some), else
    None. Open MPI binds each rank to a core when the ranks do not outnumber them."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed, total = len(os.sched_getaffinity(0)), os.cpu_count()
    if total is None or allowed >= total:
        return None
    return (f"this rank's threads run on {allowed} of the host's {total} CPUs only (its CPU affinity, "
            f"e.g. the launcher's binding); start the job with `mpirun --bind-to none` to measure the "
            f"whole CPU")


def wait_for_all_ranks(world) -> None:
    """Returns once every rank has called it. A non-blocking barrier polled with sleeps: a
    blocking MPI wait spins on a core, which would slow the ranks still measuring on this host,
    and a sleeping rank still takes Ctrl-C. No deadline: a measurement may take hours, and a
    rank that fails aborts the job (run_guarded) while one that dies is ended by the launcher."""
    if world.comm is None:
        return
    request = world.comm.Ibarrier()
    while not request.Test():
        time.sleep(_WAIT_POLL_S)


class PrefixedLines:
    """A text stream that writes each complete line to `stream` behind `prefix` (a rank's
    progress lines, told apart from rank 0's)."""

    def __init__(self, prefix: str, stream: TextIO):
        self.prefix = prefix
        self.stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.stream.write(f"{self.prefix}{line}\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
