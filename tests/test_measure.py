"""The measurement core: statistics, the sampling loop's stopping criteria, cold-cache flushing,
watching blocks for contention."""

import mmap
import subprocess
import sys
import time

import numpy as np
import pytest

from dlcb_kernels.measure import (
    FixedRepeats,
    HostTimer,
    NoiseTarget,
    Settings,
    Warmup,
    combine,
    contention,
    measure,
    measure_overhead,
    sample_until,
    summarize,
)

FAST = dict(settle=0.0, warmup_time=0.0, min_time=0.0)


def measure_with(fn, timer, settings: Settings, **kwargs):
    """The loop as `dlcb bench` drives it from its flat settings."""
    return measure(fn, timer, settings.criterion(), warmup=settings.warmup(), settle_s=settings.settle, **kwargs)


class FakeTimer:
    """Returns scripted durations, so the stopping rules can be tested without real time."""

    name = "fake"

    def __init__(self, durations):
        self.durations = iter(durations)
        self.calls = 0

    def synchronize(self):
        pass

    def time(self, fn):
        fn()
        self.calls += 1
        return next(self.durations)


def test_summarize_matches_numpy():
    x = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]
    s = summarize(x)
    assert s.count == 6 and s.min == 1.0 and s.max == 10.0
    assert s.median == pytest.approx(np.median(x))
    assert s.mean == pytest.approx(np.mean(x))
    assert s.stddev == pytest.approx(np.std(x, ddof=1))
    assert s.q1 == pytest.approx(np.percentile(x, 25)) and s.q3 == pytest.approx(np.percentile(x, 75))
    assert s.iqr == pytest.approx(s.q3 - s.q1)
    assert s.rel_noise == pytest.approx(s.iqr / s.median)


def test_summarize_single_sample_and_bad_input():
    s = summarize([2.0])
    assert s.stddev == 0.0 and s.iqr == 0.0
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, float("nan")])


def test_stops_when_noise_target_reached():
    timer = FakeTimer([1.0] * 1000)
    m = measure_with(lambda: None, timer, Settings(min_samples=10, **FAST))
    assert m.converged and m.stop_reason == "noise target reached"
    assert m.stats.count == 10 and len(m.samples) == 10


def test_keeps_sampling_while_noisy_until_max_samples():
    rng = np.random.default_rng(0)
    timer = FakeTimer(rng.uniform(1.0, 3.0, 1000))
    m = measure_with(lambda: None, timer, Settings(min_samples=5, max_samples=40, max_time=1e9, **FAST))
    assert not m.converged and m.stop_reason == "max_samples" and m.stats.count == 40


def test_stops_at_max_time():
    timer = FakeTimer([1.0, 3.0] * 500)
    m = measure_with(lambda: None, timer, Settings(min_samples=5, max_samples=500, max_time=20.0, **FAST))
    assert m.stop_reason == "max_time" and m.stats.count == 10 and not m.converged  # 10 x 2 s


def test_noise_converges_once_outliers_are_a_minority():
    # A few slow outliers do not move the IQR: robust statistics.
    timer = FakeTimer([1.0] * 17 + [5.0] * 3 + [1.0] * 100)
    m = measure_with(lambda: None, timer, Settings(min_samples=20, **FAST))
    assert m.converged and m.stats.median == 1.0 and m.stats.max == 5.0


def test_warmup_runs_before_samples():
    calls = []
    timer = FakeTimer([1.0] * 100)
    m = measure_with(lambda: calls.append(1), timer, Settings(min_samples=10, min_warmup=3, **FAST))
    assert m.warmup_count == 3 and len(calls) == 3 + 10


def test_warmup_time_counts_work_done_not_work_queued():
    """A device timer's calls only queue work: the warm-up waits for each, so a 10 ms kernel
    gets a few warm-up calls in 30 ms, not thousands queued behind each other."""
    queued = []

    class QueueingTimer(FakeTimer):
        def synchronize(self):
            while queued:
                queued.pop()
                time.sleep(0.01)

    m = measure(lambda: queued.append(1), QueueingTimer([1.0] * 10), FixedRepeats(2),
                warmup=Warmup(min_calls=1, min_time=0.03), settle_s=0.0)
    assert 1 <= m.warmup_count <= 4


def test_cold_mode_flushes_before_every_sample_outside_the_timing():
    events = []
    timer = FakeTimer([1.0] * 100)
    m = measure_with(lambda: events.append("run"), timer, Settings(min_samples=10, min_warmup=2, **FAST),
                cache="cold", flush=lambda: events.append("flush"))
    assert m.cache == "cold"
    timed = events[2:]  # after warm-up
    assert timed == ["flush", "run"] * 10


def test_cold_mode_needs_a_flush_and_cache_is_checked():
    with pytest.raises(ValueError, match="flush"):
        measure(lambda: None, HostTimer(), NoiseTarget(), cache="cold")
    with pytest.raises(ValueError, match="cache must be one of"):
        measure(lambda: None, HostTimer(), NoiseTarget(), cache="lukewarm")


@pytest.mark.parametrize("kwargs", [dict(noise_target=0), dict(noise_target=1.5), dict(min_samples=1),
                                    dict(max_samples=3, min_samples=10), dict(settle=-1),
                                    dict(min_time=2.0, max_time=1.0)])
def test_settings_are_validated(kwargs):
    with pytest.raises(ValueError):
        Settings(**kwargs)


def test_host_timer_measures_real_time():
    elapsed = HostTimer().time(lambda: time.sleep(0.02))
    assert 0.015 < elapsed < 0.5


def test_harness_overhead_is_small_and_positive():
    s = measure_overhead(HostTimer(), samples=500)
    assert 0 < s.median < 1e-4


def test_fixed_repeats_takes_exactly_n_samples_whatever_the_noise():
    timer = FakeTimer([1.0, 9.0] * 50)
    m = measure(lambda: None, timer, FixedRepeats(7), warmup=Warmup(1, 0.0), settle_s=0.0)
    assert m.stats.count == 7 and m.stop_reason == "fixed repeats" and m.warmup_count == 1
    assert not m.converged  # the spread is far above the label's noise target
    steady = measure(lambda: None, FakeTimer([2.0] * 10), FixedRepeats(3), warmup=Warmup(0, 0.0), settle_s=0.0)
    assert steady.converged
    with pytest.raises(ValueError, match="repeats"):
        FixedRepeats(0)
    with pytest.raises(TypeError, match="repeats"):
        FixedRepeats(2.5)


def test_time_budget_counts_every_call_of_a_sample():
    # samples of 0.1 and 0.3 s per call, 5 calls each: the 4 s budget stops once the calls sum to 4 s
    samples, reason = sample_until(iter([0.1, 0.3] * 50).__next__, NoiseTarget(min_samples=3, max_time=4.0,
                                                                               min_time=0.0), calls_per_sample=5)
    assert reason == "max_time"
    assert sum(samples[:-1]) * 5 < 4.0 <= sum(samples) * 5


def test_combined_rounds_converge_only_when_the_pooled_samples_do():
    criterion = NoiseTarget(noise_target=0.02, min_samples=5, min_time=0.0)
    fast = measure(lambda: None, FakeTimer([1.0] * 10), criterion, warmup=Warmup(0, 0.0), settle_s=0.0)
    slow = measure(lambda: None, FakeTimer([1.5] * 10), criterion, warmup=Warmup(0, 0.0), settle_s=0.0)
    assert fast.converged and slow.converged
    pooled = combine([fast, slow], criterion)
    assert pooled.stats.count == 10 and not pooled.converged  # the rounds disagree by 50 %
    assert combine([fast, fast], criterion).converged


class ScriptedMonitor:
    def __init__(self, throttled):
        self.throttled = throttled

    def sample(self):
        return {"clock_after_ghz": 1.0, "reference_ghz": 3.0, "throttled": self.throttled}


def test_block_watch_flags_contention_and_keeps_it_apart_from_throttling():
    quiet = contention.BlockWatch(ScriptedMonitor(throttled=True))
    quiet.start()
    time.sleep(0.3)
    seen = quiet.stop()
    if seen["machine"] is None:
        pytest.skip("no /proc here")
    if seen["machine"]["busy"]:
        pytest.skip("this machine is busy with other work; an idle block cannot be checked")
    assert seen["throttled"] is True and seen["contended"] is False  # a low clock on a quiet machine

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = contention.BlockWatch(ScriptedMonitor(throttled=True))
        busy.start()
        time.sleep(0.5)
        seen = busy.stop()
    finally:
        hog.kill()
        hog.wait()
    assert seen["contended"] is True and seen["machine"]["other_busy_cpus"] > 0.5
    # the clock probe shared its core with the hog: disturbed, not throttled
    assert seen["throttled"] is False and seen["clock_disturbed"] is True


def test_a_short_block_is_watched_long_enough_to_see_a_busy_core():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        watch = contention.BlockWatch(None)
        watch.start()
        seen = watch.stop()                      # a block of no time at all
    finally:
        hog.kill()
        hog.wait()
    if seen["machine"] is None:
        pytest.skip("no /proc here")
    assert seen["machine"]["window_s"] >= contention.MIN_WINDOW_S
    assert seen["contended"] is True and seen["machine"]["other_busy_cpus"] > 0.5


def test_measure_keeps_what_the_watch_saw_per_block():
    class Watch:
        def __init__(self):
            self.events = []

        def start(self):
            self.events.append("start")

        def stop(self):
            self.events.append("stop")
            return {"contended": False, "throttled": False}

    watch = Watch()
    m = measure(lambda: None, FakeTimer([1.0] * 20), NoiseTarget(min_samples=5, min_time=0.0),
                warmup=Warmup(0, 0.0), settle_s=0.0, watch=watch)
    assert watch.events == ["start", "stop"] and m.blocks == [{"contended": False, "throttled": False}]


class ScriptedWatch:
    """Says, block after block, what a BlockWatch would: slowed (retry) or not, at a speed."""

    def __init__(self, speeds):
        self.speeds = iter(speeds)

    def start(self):
        pass

    def stop(self):
        speed = next(self.speeds)
        return {"speed": speed, "slowed": speed < 0.9, "retry": speed < 0.9, "contended": False}


def test_a_block_on_a_slowed_machine_is_measured_again():
    timer = FakeTimer([2.0] * 10 + [1.0] * 10)   # the slowed block ran at half speed
    m = measure(lambda: None, timer, NoiseTarget(min_samples=10, min_time=0.0), warmup=Warmup(0, 0.0),
                settle_s=0.0, watch=ScriptedWatch([0.5, 0.98]), retries=2)
    assert m.stats.median == 1.0 and m.blocks[0]["speed"] == 0.98
    assert [b["median"] for b in m.extra["discarded_blocks"]] == [2.0]


def test_when_every_try_is_slowed_the_least_slowed_is_kept_and_flagged():
    timer = FakeTimer([3.0] * 10 + [2.0] * 10 + [2.5] * 10)
    m = measure(lambda: None, timer, NoiseTarget(min_samples=10, min_time=0.0), warmup=Warmup(0, 0.0),
                settle_s=0.0, watch=ScriptedWatch([0.4, 0.7, 0.6]), retries=2)
    assert m.stats.median == 2.0 and m.blocks[0]["slowed"] and len(m.extra["discarded_blocks"]) == 2
    with pytest.raises(ValueError, match="retries"):
        measure(lambda: None, timer, NoiseTarget(), retries=-1)


class Canary:
    def __init__(self, readings, reference=100.0):
        self.readings = iter(readings)
        self.reference_gflops = reference

    def __call__(self):
        return next(self.readings)


def test_block_watch_reads_the_canary_before_and_after():
    watch = contention.BlockWatch(None, canary=Canary([99.0, 60.0]))
    watch.start()
    seen = watch.stop()
    assert seen["canary_gflops"] == [99.0, 60.0] and seen["speed"] == 0.6 and seen["slowed"]
    assert seen["retry"] is (not seen["contended"])
    steady = contended_free_stop(contention.BlockWatch(None, canary=Canary([97.0, 95.0])))
    assert steady["slowed"] is False and steady["retry"] is False


def contended_free_stop(watch):
    watch.start()
    return watch.stop()


def test_block_watch_counts_page_faults_and_probes_a_fresh_pages_cost():
    readings = iter([2e-6, 4e-6])
    fresh = []

    def allocating_call():      # 4 MiB of fresh pages a call, as a large output from mmap gets them
        region = mmap.mmap(-1, 4 << 20)
        for offset in range(0, 4 << 20, 4096):
            region[offset] = 1
        region.close()
        fresh.append(1)

    watch = contention.BlockWatch(None, first_touch=lambda: next(readings))
    m = measure(allocating_call, HostTimer(), FixedRepeats(4), warmup=Warmup(0, 0.0), settle_s=0.0, watch=watch)
    block = m.blocks[0]
    assert block["first_touch_s_per_page"] == pytest.approx(3e-6)   # the mean of before and after
    if block.get("page_faults") is not None:      # a Unix: getrusage counts them
        assert block["page_faults_per_call"] == pytest.approx(block["page_faults"] / 4)
        assert block["page_faults_per_call"] >= 1        # 1,024 fresh 4 KiB pages a call (huge pages: fewer)
    quiet = contention.BlockWatch(None, cpu_kernels=False)
    quiet.start()
    assert "page_faults" not in quiet.stop()                     # GPU blocks: host faults say nothing


def test_a_records_conditions_hold_the_block_means_of_faults_and_first_touch():
    from dlcb_kernels.records import block_conditions

    conditions = block_conditions([{"page_faults_per_call": 10.0, "first_touch_s_per_page": 1e-6},
                                   {"page_faults_per_call": 30.0, "first_touch_s_per_page": 3e-6}, {}])
    assert conditions["page_faults_per_call"] == 20.0 and conditions["first_touch_s_per_page"] == 2e-6
    assert "page_faults_per_call" not in block_conditions([{"contended": False}])
