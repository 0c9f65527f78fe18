"""The OpenMP wait policy: chosen from the machine's load at the start of `dlcb bench`, applied
by starting the command again, recorded in the run; a policy the user set is never overridden."""

import json
import os
import subprocess
import sys
import time

import pytest

from dlcb_kernels import openmp_policy

IDLE = {"other_busy_cpus": 0.02, "steal_fraction": 0.0, "busy": False}
BUSY = {"other_busy_cpus": 0.98, "steal_fraction": 0.0, "busy": True}


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", openmp_policy.CHOICE_ENV,
                 openmp_policy.MACHINE_ENV, "OMP_PROC_BIND"):
        monkeypatch.delenv(name, raising=False)


def test_auto_keeps_the_runtime_default_when_idle_and_sleeps_when_busy(clean_env):
    assert openmp_policy.choose("auto", IDLE)[0] == "runtime"
    policy, why = openmp_policy.choose("auto", BUSY)
    assert policy == "passive" and "0.98 CPUs" in why
    assert openmp_policy.choose("auto", None)[0] == "runtime"
    assert openmp_policy.choose("passive", IDLE)[0] == "passive"
    assert openmp_policy.choose("runtime", BUSY)[0] == "runtime"
    with pytest.raises(ValueError, match="omp-wait"):
        openmp_policy.choose("eager", IDLE)


def test_a_policy_the_user_set_is_kept(clean_env, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    policy, why = openmp_policy.choose("passive", BUSY)
    assert policy == "user" and "OMP_WAIT_POLICY=ACTIVE" in why
    assert openmp_policy.restart_environment(policy, why, BUSY) is None


def test_restart_environment_carries_the_choice_and_the_sample(clean_env):
    env = openmp_policy.restart_environment("passive", "auto: busy", BUSY)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env[openmp_policy.CHOICE_ENV] == "auto: busy"
    assert json.loads(env[openmp_policy.MACHINE_ENV]) == BUSY
    assert openmp_policy.restart_environment("runtime", "idle", IDLE) is None


def test_binding_on_a_busy_machine_is_warned_about(clean_env, monkeypatch):
    assert openmp_policy.binding_warning(BUSY) is None
    monkeypatch.setenv("OMP_PROC_BIND", "close")
    assert "OMP_PROC_BIND=close" in openmp_policy.binding_warning(BUSY)
    assert openmp_policy.binding_warning(IDLE) is None


def test_describe_names_policy_binding_and_affinity(clean_env):
    info = openmp_policy.describe("because")
    assert info["wait_policy"] == "runtime default" and info["why"] == "because"
    assert info["affinity_cpus"] is None or len(info["affinity_cpus"]) >= 1


def test_bench_on_a_busy_machine_restarts_with_passive_waits_and_says_so(tmp_path):
    """The goal's hog: a second process busy on one core. The run says so at the start and in its
    summary, restarts under OMP_WAIT_POLICY=PASSIVE, and records why."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = tmp_path / "t.json"
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        result = subprocess.run([sys.executable, "-m", "dlcb_kernels", "bench", "--shape", "64x64x64", "--impl",
                                 "ours", "--max-time", "0.05", "--min-samples", "3", "--peak-store", "off",
                                 "-o", str(out)], capture_output=True, text=True, env=env, timeout=300)
    finally:
        hog.kill()
        hog.wait()
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    run = doc["runs"][0]
    if not run["machine_at_start"]["busy"]:
        pytest.skip("the busy loop did not register as other processes' CPU time here")
    assert "starting again with OMP_WAIT_POLICY=PASSIVE" in result.stderr
    assert "warning: the machine is busy" in result.stderr
    assert run["environment"]["openmp"]["wait_policy"] == "PASSIVE"
    assert "auto: other processes used" in run["environment"]["openmp"]["why"]
    assert "warning: run" in result.stdout and "the machine is busy" in result.stdout
    # no record of the run is shown without its flag
    assert all(r["conditions"]["contended"] for r in doc["records"] if r["status"] == "ok")
    assert "ok*" in result.stdout and " ok " not in result.stdout
