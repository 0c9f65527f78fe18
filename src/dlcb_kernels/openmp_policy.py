"""How the OpenMP runtime waits between parallel regions: chosen per `dlcb bench` run from how
busy the machine is, and recorded in the run (environment.openmp).

The runtime reads its wait policy once, when it loads, so a choice other than the one the
process started with means starting `dlcb bench` again with the environment set (an exec of the
same command before any measurement; the run says so).

Measured on a 2-core Zen 4 VM with libgomp, our GEMM on 2 threads, medians (p90) of 200 calls:
- idle: the runtime's default (workers spin about 300k iterations at a barrier before sleeping)
  0.24-0.37 ms (0.27-0.46) for 257x131x509 and 11-14 ms for 1024^3; OMP_WAIT_POLICY=PASSIVE
  (sleep at once) 0.58-0.65 ms and 13.7-15 ms: a wake-up per region costs more than the kernel
  on small problems, so an idle machine keeps the default;
- a busy-loop process on one core: default 0.37 ms (p90 4.4 ms: a worker waits for a core in
  4 ms scheduler ticks while the other spins on the free one) and 31.6 ms for 1024^3; PASSIVE
  0.43 ms (p90 0.47) and 22.8 ms. A sleeping worker frees its core so the scheduler moves the
  waiting one there, so a busy machine gets PASSIVE.
Thread binding (OMP_PROC_BIND) is never set by dlcb: a bound thread cannot leave a core that
another process shares; a binding the user set is recorded and, on a busy machine, warned about.
"""

from __future__ import annotations

import json
import os

MODES = ("auto", "runtime", "passive")
# Where a restarted run finds the choice made before the restart and the machine sample it
# was made from.
CHOICE_ENV = "DLCB_OMP_WAIT_CHOICE"
MACHINE_ENV = "DLCB_MACHINE_AT_START"
_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def user_setting() -> str | None:
    """The wait setting the user gave the runtime (not one dlcb made), e.g. "OMP_WAIT_POLICY=ACTIVE"."""
    if CHOICE_ENV in os.environ:
        return None
    given = [f"{name}={os.environ[name]}" for name in _WAIT_VARS if name in os.environ]
    return ", ".join(given) or None


def choose(mode: str, machine: dict | None) -> tuple[str, str]:
    """("runtime" | "passive" | "user", why) for a run starting on a machine in state `machine`
    (measure.contention.sample(); None where it cannot be read)."""
    if mode not in MODES:
        raise ValueError(f"omp-wait must be one of {', '.join(MODES)}, got {mode!r}")
    given = user_setting()
    if given:
        return "user", f"set by the user ({given}); --omp-wait leaves it alone"
    if mode == "passive":
        return "passive", "asked for (--omp-wait passive)"
    if mode == "runtime":
        return "runtime", "asked for (--omp-wait runtime): the runtime's default spin-then-sleep"
    if machine is None:
        return "runtime", "auto: the machine's load cannot be read here, so the runtime's default"
    if machine["busy"]:
        return "passive", (f"auto: other processes used {machine['other_busy_cpus']:.2f} CPUs at the start, and "
                           "spinning workers make our kernels wait for shared cores in scheduler ticks")
    return "runtime", "auto: the machine was idle at the start; the runtime's default spin is fastest"


def restart_environment(policy: str, why: str, machine: dict | None) -> dict | None:
    """The environment to start the run again with for `policy`, or None where the process
    already runs under it."""
    if policy != "passive" or os.environ.get("OMP_WAIT_POLICY") == "PASSIVE":
        return None
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env[CHOICE_ENV] = why
    env[MACHINE_ENV] = json.dumps(machine)
    return env


def inherited_choice() -> tuple[str | None, dict | None]:
    """(why, machine sample) handed over by the run that restarted this one; (None, None) if none."""
    why = os.environ.get(CHOICE_ENV)
    if why is None:
        return None, None
    try:
        machine = json.loads(os.environ.get(MACHINE_ENV, "null"))
    except json.JSONDecodeError:
        machine = None
    return why, machine if isinstance(machine, dict) else None


def binding_warning(machine: dict | None) -> str | None:
    bind = os.environ.get("OMP_PROC_BIND")
    if machine and machine.get("busy") and bind and bind.lower() not in ("false", "0"):
        return (f"OMP_PROC_BIND={bind} pins threads to cores that other processes share here; "
                "unset it for steadier timings on a busy machine")
    return None


def describe(why: str | None = None) -> dict:
    """The wait policy and binding this process's OpenMP runtime runs with, and why."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "runtime default"),
        "spincount": os.environ.get("GOMP_SPINCOUNT"),
        "proc_bind": os.environ.get("OMP_PROC_BIND", "runtime default (not bound)"),
        "places": os.environ.get("OMP_PLACES"),
        "affinity_cpus": affinity,
        "why": why or inherited_choice()[0] or user_setting() or "not chosen by dlcb (library use)",
    }
