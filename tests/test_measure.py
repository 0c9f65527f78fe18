"""The measurement core: statistics, the sampling loop's stopping rules, cold-cache flushing."""

import time

import numpy as np
import pytest

from dlcb_kernels.measure import HostTimer, Settings, measure, measure_overhead, summarize

FAST = dict(settle=0.0, warmup_time=0.0, min_time=0.0)


class FakeTimer:
    """Returns scripted durations, so the stopping rules can be tested without real time."""

    name = "fake"

    def __init__(self, durations):
        self.durations = iter(durations)
        self.calls = 0

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
    m = measure(lambda: None, timer, Settings(min_samples=10, **FAST))
    assert m.converged and m.stop_reason == "noise target reached"
    assert m.stats.count == 10 and len(m.samples) == 10


def test_keeps_sampling_while_noisy_until_max_samples():
    rng = np.random.default_rng(0)
    timer = FakeTimer(rng.uniform(1.0, 3.0, 1000))
    m = measure(lambda: None, timer, Settings(min_samples=5, max_samples=40, max_time=1e9, **FAST))
    assert not m.converged and m.stop_reason == "max_samples" and m.stats.count == 40


def test_stops_at_max_time():
    timer = FakeTimer([1.0, 3.0] * 500)
    m = measure(lambda: None, timer, Settings(min_samples=5, max_samples=500, max_time=20.0, **FAST))
    assert m.stop_reason == "max_time" and m.stats.count == 10 and not m.converged  # 10 x 2 s


def test_noise_converges_once_outliers_are_a_minority():
    # A few slow outliers do not move the IQR: robust statistics.
    timer = FakeTimer([1.0] * 17 + [5.0] * 3 + [1.0] * 100)
    m = measure(lambda: None, timer, Settings(min_samples=20, **FAST))
    assert m.converged and m.stats.median == 1.0 and m.stats.max == 5.0


def test_warmup_runs_before_samples():
    calls = []
    timer = FakeTimer([1.0] * 100)
    m = measure(lambda: calls.append(1), timer, Settings(min_samples=10, min_warmup=3, **FAST))
    assert m.warmup_count == 3 and len(calls) == 3 + 10


def test_cold_mode_flushes_before_every_sample_outside_the_timing():
    events = []
    timer = FakeTimer([1.0] * 100)
    m = measure(lambda: events.append("run"), timer, Settings(min_samples=10, min_warmup=2, **FAST),
                cache="cold", flush=lambda: events.append("flush"))
    assert m.cache == "cold"
    timed = events[2:]  # after warm-up
    assert timed == ["flush", "run"] * 10


def test_cold_mode_needs_a_flush_and_cache_is_checked():
    with pytest.raises(ValueError, match="flush"):
        measure(lambda: None, HostTimer(), cache="cold")
    with pytest.raises(ValueError, match="cache must be one of"):
        measure(lambda: None, HostTimer(), cache="lukewarm")


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
