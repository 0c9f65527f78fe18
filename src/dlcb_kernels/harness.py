"""One implementation on one problem, the way every kernel timing in dlcb is taken (`dlcb bench`
and the pytest plugin alike): verify against the float64 reference, then warm up and sample
with the measurement loop (measure.harness), watching each block for contention and the clock,
then make the record.

problem -> implementation -> measurement -> record: a wrong result is recorded as failed and
never timed; an implementation that cannot run the problem is recorded as unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass

from .device_array import to_host
from .measure import Settings, combine, contention, measure
from .records import failed_record, timed_record
from .results import Record
from .registry.gpu_inputs import host_inputs


def host_result(output):
    """The result as numpy (GPU results copied back), dicts of results element-wise."""
    if isinstance(output, dict):
        return {name: to_host(value) for name, value in output.items()}
    return None if output is None else to_host(output)


@dataclass
class Context:
    """What stays the same for every implementation of a run: where the kernels run, how they
    are measured, the flush for cold caches, the device monitor and canary, and the peak."""

    target: object                   # CpuTarget or CudaTarget
    threads: int
    settings: Settings
    flush: object = None             # callable, for cold-cache samples
    monitor: object = None           # the target's monitor: the clock or NVML after each block
    canary: object = None            # the target's canary: the machine's speed around each block
    peak_gflops: float | None = None
    peak_label: str | None = None
    first_touch: object = None       # the target's first-touch probe: a fresh page's cost around each block


def measure_implementation(problem, inputs, impl, base: Record, context: Context, previous: list) -> Record:
    """One round of one implementation: verify, then measure; the record pools this round's
    measurement with `previous` ones (this round's is appended to it)."""
    reason = impl.mismatch(problem) or impl.unavailable_reason(problem)
    if reason:
        return failed_record(base, "unavailable", reason)
    library = impl.library()
    tolerance = impl.tolerance_for(problem)
    base = base.replace(error={**base.error, "tolerance": tolerance})
    target = context.target
    try:
        with impl.prepare(problem, inputs, context.threads, **target.prepare_kwargs()) as prepared:
            prepared.run()
            target.synchronize()
            base = base.replace(threads=prepared.threads)
            error = problem.check_error(host_inputs(inputs), host_result(prepared.output))
            if not error <= tolerance:
                return failed_record(base, "failed", f"result differs from the reference: error {error:.3g} "
                                     f"> tolerance {tolerance:.3g}; not timed",
                                     library=library, error=error)
            timer = target.timer_for(prepared.run, base.cache)
            watch = contention.BlockWatch(context.monitor, cpu_kernels=target.backend == "cpu",
                                          canary=context.canary, first_touch=context.first_touch)
            criterion = context.settings.criterion()
            measurement = measure(prepared.run, timer, criterion, warmup=context.settings.warmup(),
                                  settle_s=context.settings.settle, cache=base.cache, flush=context.flush,
                                  watch=watch, retries=context.settings.retries)
            measurement.extra["timer"] = timer.name
            previous.append(measurement)
            return timed_record(base, combine(previous, criterion), peak_gflops=context.peak_gflops,
                                peak_label=context.peak_label, error=error, library=library,
                                algorithm=prepared.algorithm, kernel=prepared.kernel)
    except (MemoryError, RuntimeError, ValueError, TypeError) as exc:
        return failed_record(base, "error", f"{type(exc).__name__}: {exc}", library=library)
