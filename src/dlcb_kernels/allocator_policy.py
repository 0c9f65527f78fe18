"""How the C library's allocator hands memory to a run: chosen per `dlcb bench` / `dlcb validate`
run and recorded with it (environment.allocator, and each validation row).

glibc's malloc by default gives an allocation above a moving threshold (128 KiB, raised by frees
up to 32 MiB) its own fresh mapping, and gives freed memory at the heap's top back to the system
above a trim threshold. Whether a call's output and the library's scratch buffers arrive as fresh
pages (a page fault each, about 1 us a page on a VM) therefore depends on the process's whole
allocation history, not on the call. Measured on this project's Zen 4 VM (glibc 2.36, torch 2.13
CPU, 2 threads):
- torch's 1x1 convolution N8 C16 112x112 -> 96 in a loop in a fresh process: 18,818 faults and
  29-40 ms every call; the same call late in a long benchmark process: 0 faults and 6.9 ms;
- a models-suite table timed VGG16's first convolution (batch 4) at 57 ms (faulting every call)
  while the model ran it in 7.8-9.2 ms (no faults); MobileNetV2 batch 8 inference took 69k faults
  and 203 ms a step, 0 faults and 95 ms with the settings below.

"steady": GLIBC_TUNABLES with glibc.malloc.mmap_max=0 (no allocation gets its own mapping) and a
trim threshold of 1 TiB (freed memory stays with the process), so that after the first call or
step every buffer is memory the process has touched before: times are the kernels' and the
framework's, as under a caching allocator (jemalloc, tcmalloc, a framework's own pool), and do not
depend on what ran before. The cost is memory: the heap keeps its peak.
"system": the C library as the environment configured it; the faults are part of the time.

glibc reads its tunables when the process starts, so asking for another state than the process
has means starting the command again with the environment set (an exec before any measurement,
as for the OpenMP wait policy). Whether the settings hold is probed, not assumed: a 64 MiB
allocation must come from the heap and stay there after its free (mallinfo2).
"""

from __future__ import annotations

import ctypes
import os

from ._restart import restart_command

MODES = ("steady", "system")
TUNABLES_ENV = "GLIBC_TUNABLES"
STEADY_TUNABLES = ("glibc.malloc.mmap_max=0", "glibc.malloc.trim_threshold=1099511627776")
# Set on the restarted process: the choice was made, so a probe that still fails is an error,
# not a reason to restart again.
CHOICE_ENV = "DLCB_ALLOCATOR_CHOICE"
_PROBE_BYTES = 64 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _glibc():
    """The process's glibc (ctypes), or None where the C library is another one."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError, TypeError):   # no dlopen(NULL), or not glibc >= 2.33
        return None
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def glibc_version() -> str | None:
    libc = _glibc()
    return libc.gnu_get_libc_version().decode() if libc is not None else None


def probe() -> str:
    """"steady" when a 64 MiB allocation comes from the heap (no mapping of its own) and its
    memory stays with the process after the free; "system" when either does not; "unknown"
    without glibc's mallinfo2 (another C library, or glibc before 2.33)."""
    libc = _glibc()
    if libc is None:
        return "unknown"
    before = libc.mallinfo2()
    block = libc.malloc(_PROBE_BYTES)   # never touched: costs address space, not memory
    if not block:
        return "unknown"
    held = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    mapped = held.hblkhd > before.hblkhd
    trimmed = after.arena < held.arena
    return "system" if mapped or trimmed else "steady"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"allocator must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def restart_environment(mode: str, state: str | None = None) -> dict | None:
    """The environment to start the command again with for `mode`, or None where the process
    already runs under it (or cannot: "system" never restarts; a C library other than glibc
    takes no tunables). state: the probe's answer where the caller has it (else probed here).
    A restarted process that still does not probe steady is an error."""
    if check_mode(mode) == "system":
        return None
    state = probe() if state is None else state
    if state in ("steady", "unknown"):
        return None
    if os.environ.get(CHOICE_ENV):
        raise ValueError(f"the C library did not take the steady allocator's settings ({TUNABLES_ENV}="
                         f"{os.environ.get(TUNABLES_ENV, '')!r}); run with --allocator system")
    given = os.environ.get(TUNABLES_ENV, "")
    # Ours last: where the user set the same tunable, the later setting is the one glibc keeps.
    tunables = ":".join(part for part in (given, *STEADY_TUNABLES) if part)
    return dict(os.environ, **{TUNABLES_ENV: tunables, CHOICE_ENV: mode})


def describe(mode: str | None, why: str) -> dict:
    """What a run records: the mode asked for (None: not chosen, e.g. a call from Python), the
    state probed now, why, and the tunables the process started with."""
    return {"mode": mode, "state": probe(), "why": why, "glibc": glibc_version(),
            "tunables": os.environ.get(TUNABLES_ENV)}


def table_state(doc: dict) -> str:
    """The allocator state a table was measured under: "steady" only when every run of it
    recorded steady; "system" otherwise (also tables from before the state was recorded)."""
    states = {((run.get("environment") or {}).get("allocator") or {}).get("state") for run in doc.get("runs", [])}
    return "steady" if states == {"steady"} else "system"


_FROM_PYTHON = "called from Python, where the C library read its settings at start"


def apply(mode: str, *, may_restart: bool, command: str, stream=None, why_not: str = _FROM_PYTHON) -> str:
    """Why the allocator is in the state it is for `dlcb COMMAND`; starts the command again
    under `mode` where that is needed and allowed (may_restart: the program itself, not a call
    from Python, whose C library read its settings at start; why_not: what to record when a
    restart is not allowed). Returns only when no restart."""
    if check_mode(mode) == "system":
        return "asked for (--allocator system): the C library as the environment set it"
    state = probe()
    env = restart_environment(mode, state)
    if env is None:
        if state == "unknown":
            return "steady asked for, not applied: the C library is not glibc >= 2.33 (no tunables to set)"
        if os.environ.get(CHOICE_ENV):
            return f"asked for (--allocator steady): started again with {TUNABLES_ENV}"
        return "asked for (--allocator steady): the environment's settings already give it"
    if not may_restart:
        return f"steady asked for, not applied: {why_not}"
    if stream is not None:
        print(f"dlcb {command}: starting again with {TUNABLES_ENV}={env[TUNABLES_ENV]} (--allocator steady: "
              "buffers reused, not faulted in afresh)", file=stream, flush=True)
    restart_command(env)
