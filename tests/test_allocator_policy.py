"""The C allocator's mode: steady (glibc tunables: no mapping of its own for any allocation, freed
memory kept) or the system's, probed rather than assumed, applied by starting the command again,
recorded in tables and validations."""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pytest

from dlcb_kernels import allocator_policy, table as table_module
from dlcb_kernels.predict import cli_validate

needs_glibc = pytest.mark.skipif(allocator_policy.glibc_version() is None, reason="the C library is not glibc >= 2.33")
STEADY_ENV = ":".join(allocator_policy.STEADY_TUNABLES)


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in (allocator_policy.TUNABLES_ENV, allocator_policy.CHOICE_ENV)}
    return {**env, **extra}


def _probe_in_child(env) -> str:
    code = "from dlcb_kernels import allocator_policy; print(allocator_policy.probe())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True).stdout.strip()


@needs_glibc
def test_probe_tells_the_steady_settings_from_the_default_and_from_half_of_them():
    assert _probe_in_child(_env()) == "system"
    assert _probe_in_child(_env(GLIBC_TUNABLES=STEADY_ENV)) == "steady"
    # either half alone leaves a large buffer faulted in afresh after a free
    for half in allocator_policy.STEADY_TUNABLES:
        assert _probe_in_child(_env(GLIBC_TUNABLES=half)) == "system"


def test_restart_environment_adds_the_tunables_after_the_users(monkeypatch):
    monkeypatch.setattr(allocator_policy, "probe", lambda: "system")
    monkeypatch.delenv(allocator_policy.CHOICE_ENV, raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    env = allocator_policy.restart_environment("steady")
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + STEADY_ENV
    assert env[allocator_policy.CHOICE_ENV] == "steady"
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert allocator_policy.restart_environment("steady")["GLIBC_TUNABLES"] == STEADY_ENV
    assert allocator_policy.restart_environment("system") is None      # never restarts
    with pytest.raises(ValueError, match="allocator must be one of steady, system"):
        allocator_policy.restart_environment("jemalloc")


def test_no_restart_where_already_steady_or_not_glibc_and_an_error_after_a_failed_one(monkeypatch):
    monkeypatch.delenv(allocator_policy.CHOICE_ENV, raising=False)
    for state in ("steady", "unknown"):
        monkeypatch.setattr(allocator_policy, "probe", lambda state=state: state)
        assert allocator_policy.restart_environment("steady") is None
    monkeypatch.setattr(allocator_policy, "probe", lambda: "system")
    monkeypatch.setenv(allocator_policy.CHOICE_ENV, "steady")
    with pytest.raises(ValueError, match="did not take the steady allocator's settings.*--allocator system"):
        allocator_policy.restart_environment("steady")


def test_apply_says_why_and_never_restarts_a_call_from_python(monkeypatch):
    monkeypatch.delenv(allocator_policy.CHOICE_ENV, raising=False)
    monkeypatch.setattr(allocator_policy.os, "execve", lambda *a: pytest.fail("restarted"))
    monkeypatch.setattr(allocator_policy, "probe", lambda: "system")
    assert "called from Python" in allocator_policy.apply("steady", may_restart=False, command="bench")
    assert "--allocator system" in allocator_policy.apply("system", may_restart=True, command="bench")
    monkeypatch.setattr(allocator_policy, "probe", lambda: "unknown")
    assert "not glibc" in allocator_policy.apply("steady", may_restart=True, command="bench")
    monkeypatch.setattr(allocator_policy, "probe", lambda: "steady")
    assert "already give it" in allocator_policy.apply("steady", may_restart=True, command="bench")
    monkeypatch.setenv(allocator_policy.CHOICE_ENV, "steady")
    assert "started again" in allocator_policy.apply("steady", may_restart=True, command="bench")


def test_table_state_is_steady_only_when_every_run_was():
    def run(state):
        return {"environment": {"allocator": {"state": state}}} if state else {"environment": {}}

    assert allocator_policy.table_state({"runs": [run("steady"), run("steady")]}) == "steady"
    assert allocator_policy.table_state({"runs": [run("steady"), run("system")]}) == "system"
    assert allocator_policy.table_state({"runs": [run("steady"), run(None)]}) == "system"   # an older table
    assert allocator_policy.table_state({"runs": []}) == "system"


@needs_glibc
@pytest.mark.parametrize("mode", ["steady", "system"])
def test_bench_runs_under_the_mode_it_was_given_and_records_it(tmp_path, mode):
    out = tmp_path / "t.json"
    result = subprocess.run([sys.executable, "-m", "dlcb_kernels", "bench", "--shape", "32x32x32", "--impl", "ours",
                             "--max-time", "0.05", "--min-samples", "3", "--peak-store", "off", "--allocator", mode,
                             "-o", str(out)], capture_output=True, text=True, env=_env(), timeout=300,
                            cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    recorded = json.loads(out.read_text())["runs"][0]["environment"]["allocator"]
    assert recorded["mode"] == mode and recorded["state"] == mode and recorded["glibc"]
    restarted = "starting again with GLIBC_TUNABLES=" in result.stderr
    assert restarted == (mode == "steady")
    if mode == "steady":
        assert recorded["tunables"] == STEADY_ENV and "started again" in recorded["why"]


def _table(tmp_path, state):
    doc = table_module.new_table()
    doc["runs"].append({"environment": {"allocator": {"state": state}}})
    path = tmp_path / f"{state}.json"
    table_module.write_atomic(path, doc)
    return doc


def test_validate_follows_the_tables_allocator_and_warns_when_the_runs_cannot(tmp_path, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    cli_validate.add_parser(parser.add_subparsers(dest="command"))
    monkeypatch.delenv(allocator_policy.CHOICE_ENV, raising=False)
    monkeypatch.setattr(allocator_policy, "probe", lambda: "system")
    args = parser.parse_args(["validate", "--table", "t.json"])
    assert args.allocator == "table"
    found = cli_validate._allocator(args, _table(tmp_path, "system"))
    assert (found["mode"], found["state"], found["table_state"]) == ("system", "system", "system")
    assert "warning" not in capsys.readouterr().err
    found = cli_validate._allocator(args, _table(tmp_path, "steady"))   # from Python: no restart
    assert (found["mode"], found["state"], found["table_state"]) == ("steady", "system", "steady")
    assert "called from Python" in found["why"]
    assert "measured under the steady allocator and the runs use the system one" in capsys.readouterr().err
    args = parser.parse_args(["validate", "--table", "t.json", "--allocator", "system"])
    assert cli_validate._allocator(args, _table(tmp_path, "system"))["mode"] == "system"
    with pytest.raises(SystemExit):
        parser.parse_args(["validate", "--table", "t.json", "--allocator", "tcmalloc"])
