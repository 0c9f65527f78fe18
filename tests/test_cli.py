"""The dlcb command line, run as a user would: in a subprocess."""

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dlcb_kernels import table

FAST = ["--min-samples", "3", "--max-time", "0.2"]


# Commands run from a neutral directory, as a user's would; the repository root works too (the
# package lives in src/, so nothing there shadows the installed one: see the test below).
NEUTRAL_DIR = Path(tempfile.gettempdir())
REPO_ROOT = Path(__file__).resolve().parents[1]


def dlcb(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "dlcb_kernels", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=NEUTRAL_DIR, **kwargs)


def test_help_lists_the_commands():
    out = dlcb("--help")
    assert out.returncode == 0
    for command in ("bench", "show", "devices", "merge"):
        assert command in out.stdout


@pytest.mark.parametrize("command", ["bench", "bench comm", "show", "devices", "merge", "models", "predict", "scale",
                                     "validate", "compare", "report"])
def test_every_command_has_help(command):
    # argparse %-formats help texts: a bare % in one crashed `dlcb compare --help`.
    out = dlcb(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: dlcb") and "Traceback" not in out.stderr


def test_bench_custom_shapes_writes_a_valid_table_and_csv(tmp_path):
    path = tmp_path / "run.json"
    out = dlcb("bench", "--shape", "96x80x70", "--shape", "33x65x17:TN", "--threads", "2", "--impl", "ours,numpy",
               *FAST, "-o", str(path))
    assert out.returncode == 0, out.stderr
    doc = table.load(path)
    assert doc["runs"][0]["status"] == "complete" and doc["runs"][0]["threads"] == 2
    records = doc["records"]
    assert {r["problem"] for r in records} == {"gemm 96x80x70 NN", "gemm 33x65x17 TN"}
    assert {r["provider"] for r in records} == {"ours", "vendor"}
    for r in records:
        assert r["status"] == "ok", r
        assert r["stats"]["count"] >= 3 and len(r["samples_ns"]) == r["stats"]["count"]
        assert r["gflops"] > 0 and r["percent_of_peak"] > 0 and "measured peak" in r["peak"]["label"]
        assert r["error"]["value"] <= r["error"]["tolerance"]
        if r["provider"] == "ours":
            assert r["vs_best_vendor"]["implementation"] == "gemm/cpu/numpy"
    assert doc["devices"][0]["peaks"]["fp32"]["measured_gflops"] > 0
    assert doc["runs"][0]["harness"]["overhead_s"]["median"] > 0
    assert path.with_suffix(".csv").read_text().count("\n") == len(records) + 1
    # progress went to stderr, the summary to stdout
    assert " 1/4 " in out.stderr and " 4/4 " in out.stderr and "left)" in out.stderr
    assert "geometric-mean speed" in out.stdout

    shown = dlcb("show", str(path))
    assert shown.returncode == 0 and "gemm 96x80x70 NN" in shown.stdout
    as_csv = dlcb("show", str(path), "--format", "csv")
    assert as_csv.stdout.splitlines()[0].startswith("device_id,op,problem")


def test_bench_conv_and_rnn_problems_against_every_vendor(tmp_path):
    path = tmp_path / "run.json"
    out = dlcb("bench", "--problem", "conv:n=2,c=8,h=12,w=12,k=16,r=3,s=3,pad_h=1,pad_w=1",
               "--problem", "conv:n=2,c=8,h=12,w=12,k=16,r=3,s=3,stride_h=2,stride_w=2,direction=bwd_filter",
               "--problem", "rnn:hidden=40,batch=3,timesteps=4,cell=gru",
               "--problem", "rnn:hidden=40,batch=3,timesteps=4,cell=lstm,direction=bwd",
               "--threads", "2", *FAST, "-o", str(path))
    assert out.returncode == 0, out.stderr
    records = table.load(path)["records"]
    assert {r["op"] for r in records} == {"conv", "rnn"}
    by_impl = {}
    for r in records:
        by_impl.setdefault(r["implementation"].split("/", 1)[1], []).append(r)
        if r["status"] == "unavailable":
            assert r["reason"].startswith("unavailable:")
            continue
        assert r["status"] == "ok", r
        assert r["algorithm"] and r["library"] and r["flops_full"] >= r["flops"]
    ours = [r for r in records if r["provider"] == "ours"]
    assert all(r["status"] == "ok" for r in ours + by_impl["cpu/numpy-im2col"] + by_impl["cpu/numpy"])
    assert all(r["implementation"].endswith(f"/cpu/ours-{r['kernel']['isa']}") for r in ours)
    gru = next(r for r in records if r["problem"] == "rnn gru fwd h40 n3 t4" and r["provider"] == "ours")
    assert gru["flops"] == 6 * 4 * 3 * 40 * 40 and gru["flops_full"] == 2 * gru["flops"]
    assert gru["vs_best_vendor"]["speedup"] > 0
    # onnxruntime has no backward: recorded as unavailable, not as a failure
    ort_bwd = [r for r in records if r["implementation"].endswith("onnxruntime") and "bwd" in r["problem"]]
    assert all(r["status"] == "unavailable" for r in ort_bwd)


def test_dlcb_isa_forces_every_kernel_and_is_recorded(tmp_path):
    import os

    import dlcb_kernels as dk

    isa = dk.available_isas()[-1]  # portable: every machine has it
    path = tmp_path / "forced.json"
    env = dict(os.environ, DLCB_ISA=isa)
    out = dlcb("bench", "--shape", "40x30x20", "--problem", "conv:n=1,c=4,h=9,w=9,k=8,r=3,s=3,pad_h=1,pad_w=1",
               "--problem", "rnn:hidden=16,batch=2,timesteps=3,cell=lstm", "--impl", "ours", "--threads", "1",
               *FAST, "-o", str(path), env=env)
    assert out.returncode == 0, out.stderr
    doc = table.load(path)
    assert doc["devices"][0]["kernels"]["default"] == isa
    assert doc["devices"][0]["kernels"]["forced_by"] == f"DLCB_ISA={isa}"
    assert isa in doc["devices"][0]["peaks"]["fp32"]["measured_summary"]
    for record in doc["records"]:
        assert record["status"] == "ok", record
        assert record["implementation"].endswith(f"ours-{isa}") and record["kernel"]["isa"] == isa
    assert f"{isa} " in path.with_suffix(".csv").read_text()


@pytest.mark.parametrize("value,message", [("sse9", "is not one of"), ("avx1024", "is not one of")])
def test_bad_dlcb_isa_is_one_error_line(value, message):
    import os

    out = dlcb("bench", "--shape", "8x8x8", env=dict(os.environ, DLCB_ISA=value))
    assert out.returncode == 1 and out.stderr.startswith("dlcb: error: DLCB_ISA=") and message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("spec,message", [
    ("conv:n=2,c=3", "missing"), ("fft:n=1", "expected OP:name=value"),
    ("conv:n=1,c=2,h=3,w=3,k=1,r=5,s=1", "does not fit"), ("rnn:hidden=8,batch=1,timesteps=1,cell=elman", "cell"),
    ("conv:n", "expected name=value"),
])
def test_bad_problem_specs_are_usage_errors(spec, message):
    out = dlcb("bench", "--problem", spec)
    assert out.returncode == 2 and message in out.stderr


def test_bench_cold_cache_labels_records(tmp_path):
    path = tmp_path / "cold.json"
    out = dlcb("bench", "--shape", "64x64x64", "--impl", "ours", "--cache", "both", *FAST, "-o", str(path))
    assert out.returncode == 0, out.stderr
    assert sorted(r["cache"] for r in table.load(path)["records"]) == ["cold", "warm"]


def test_interrupted_run_keeps_finished_records(tmp_path):
    path = tmp_path / "int.json"
    proc = subprocess.Popen([sys.executable, "-m", "dlcb_kernels", "bench", "--suite", "deepbench-train",
                             "--max-gflop", "0.05", *FAST, "-q", "-o", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=NEUTRAL_DIR)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if path.exists() and len(json.loads(path.read_text())["records"]) >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no records appeared")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    doc = table.load(path)
    assert doc["runs"][0]["status"] == "interrupted" and len(doc["records"]) >= 3
    assert "interrupted" in err and str(path.with_suffix(".csv")) in err
    csv_rows = path.with_suffix(".csv").read_text().splitlines()
    assert len(csv_rows) == 1 + len(doc["records"])  # the CSV of what finished, too
    assert path.stat().st_mode & 0o777 == 0o666 & ~table._umask()  # the user's umask, not mkstemp's 0600


def test_commands_run_from_the_repository_root():
    # `python -m dlcb_kernels ...` from a checkout once imported the source folder (no extension
    # there) and failed with a misleading circular-import error.
    out = subprocess.run([sys.executable, "-m", "dlcb_kernels", "--version"], capture_output=True, text=True,
                         timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0 and out.stdout.startswith("dlcb "), out.stderr
    out = subprocess.run([sys.executable, "-m", "dlcb_kernels", "validate", "--help"], capture_output=True,
                         text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr


def test_version():
    out = dlcb("--version")
    assert out.returncode == 0 and out.stdout.startswith("dlcb ")


def one_error_line(out):
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlcb: error: "), out.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["show", "{d}"], ["merge", "{d}", "-o", "{o}"], ["compare", "{d}", "{d}"],
                                     ["predict", "--table", "{d}", "--model", "DeepMNIST"]])
def test_a_directory_as_the_table_is_one_error_line(tmp_path, command):
    line = one_error_line(dlcb(*[a.format(d=tmp_path, o=tmp_path / "o.json") for a in command]))
    assert "is a directory" in line


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, small_table):
    (tmp_path / "file").write_text("x")
    for output in (tmp_path, tmp_path / "file" / "t.json"):
        line = one_error_line(dlcb("bench", "--shape", "8x8x8", *FAST, "-o", str(output)))
        assert str(output) in line
        one_error_line(dlcb("merge", str(small_table), "-o", str(output)))
        one_error_line(dlcb("compare", str(small_table), str(small_table), "-o", str(output)))


def test_deeply_nested_json_is_one_error_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    assert "nested too deeply" in one_error_line(dlcb("show", str(path)))


def test_a_closed_pipe_is_no_traceback(small_table):
    proc = subprocess.Popen([sys.executable, "-m", "dlcb_kernels", "show", str(small_table)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=NEUTRAL_DIR)
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize("edit,where", [
    (lambda d: d["records"][0].update(stats="fast"), "records[0].stats"),
    (lambda d: d["runs"][0].pop("run_id"), "runs[0] lacks the field 'run_id'"),
    (lambda d: d["records"][0].update(problem=7), "records[0].problem"),
    (lambda d: d["devices"][0].update(peaks="many"), "devices[0].peaks"),
    (lambda d: d["records"][0]["stats"].update(median=float("nan")), "records[0].stats.median must be a finite"),
    (lambda d: d["records"][0]["stats"].update(median=-1.0), "records[0].stats.median must be > 0"),
    (lambda d: d["records"][0]["stats"].update(median=0), "records[0].stats.median must be > 0"),
    (lambda d: d.update(schema_version=0), "schema_version must be >= 1"),
    (lambda d: d["records"][0].update(status="great"), "records[0].status must be one of"),
])
def test_tables_of_the_wrong_structure_are_refused_naming_the_field(tmp_path, small_table, edit, where):
    doc = json.loads(small_table.read_text())
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for command in (["show", str(bad)], ["predict", "--table", str(bad), "--model", "DeepMNIST"],
                    ["compare", str(small_table), str(bad)], ["report", str(bad), "-o", str(tmp_path / "report")]):
        assert where in one_error_line(dlcb(*command)), command


def test_killed_run_leaves_valid_json(tmp_path):
    path = tmp_path / "kill.json"
    proc = subprocess.Popen([sys.executable, "-m", "dlcb_kernels", "bench", "--suite", "deepbench-train",
                             "--max-gflop", "0.05", *FAST, "-q", "-o", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=NEUTRAL_DIR)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (path.exists() and len(table.load(path)["records"]) >= 2):
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    doc = table.load(path)  # valid JSON, valid schema, whatever moment the kill hit
    assert doc["runs"][0]["status"] == "running" and len(doc["records"]) >= 2


def test_devices_json_without_probes():
    out = dlcb("devices", "--no-measure", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["cpu"]["kind"] == "cpu" and doc["cuda"]["reason"]


def test_devices_text():
    out = dlcb("devices", "--threads", "1")
    assert out.returncode == 0 and "fp32 peak" in out.stdout and "GHz" in out.stdout


def test_merge(tmp_path):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.json"
        assert dlcb("bench", "--shape", "32x32x32", "--impl", "ours", *FAST, "-q", "-o", str(path)).returncode == 0
        paths.append(str(path))
    out = dlcb("merge", *paths, "-o", str(tmp_path / "all.json"))
    assert out.returncode == 0, out.stderr
    merged = table.load(tmp_path / "all.json")
    assert len(merged["runs"]) == 2 and len(merged["records"]) == 2


@pytest.mark.parametrize("args,message", [
    (["bench", "--threads", "0"], "expected an integer >= 1"),
    (["bench", "--shape", "3x4"], "expected MxNxK"),
    (["bench", "--shape", "3x4x0"], "must be >= 1"),
    (["bench", "--shape", "3x4x5:XX"], "layout must be"),
    (["bench", "--suite", "nope"], "invalid choice"),
    (["bench", "--noise", "-1"], "expected a number > 0"),
])
def test_bad_arguments_exit_2_with_a_message(args, message):
    out = dlcb(*args)
    assert out.returncode == 2 and message in out.stderr


def test_bad_impl_and_bad_table_exit_1(tmp_path):
    out = dlcb("bench", "--impl", "blas9000", "--shape", "8x8x8")
    assert out.returncode == 1 and "matches no implementation" in out.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    out = dlcb("show", str(bad))
    assert out.returncode == 1 and "not valid JSON" in out.stderr
    out = dlcb("show", str(tmp_path / "missing.json"))
    assert out.returncode == 1 and "no such table file" in out.stderr


def test_device_choice():
    out = dlcb("bench", "--device", "tpu", "--shape", "8x8x8")
    assert out.returncode == 1 and "device must be auto, cpu, cuda or cuda:N" in out.stderr
    from dlcb_kernels import cuda

    if not cuda.status().available:
        out = dlcb("bench", "--device", "cuda:0", "--shape", "8x8x8")
        assert out.returncode == 1 and "CUDA is unavailable" in out.stderr


def test_16_bit_problem_on_the_cpu_is_recorded_unavailable(tmp_path):
    # The CPU kernels are float32: a bfloat16 problem is an honest "unavailable", not a crash.
    path = tmp_path / "bf16.json"
    out = dlcb("bench", "--device", "cpu", "--problem", "gemm:m=16,n=16,k=16,dtype=bfloat16", "--impl", "ours,numpy",
               *FAST, "-o", str(path))
    assert out.returncode == 0, out.stderr
    records = table.load(path)["records"]
    assert records and all(r["status"] == "unavailable" and "does not support bfloat16" in r["reason"]
                           for r in records)


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    """A real table of a few small GEMMs (DeepMNIST's layer shapes at batch 16, every pass)."""
    path = tmp_path_factory.mktemp("predict") / "gemm.json"
    shapes = ["16x2500x784:NT", "16x784x2500", "2500x784x16:TN", "16x10x500:NT", "16x500x10", "10x500x16:TN"]
    args = [arg for shape in shapes for arg in ("--shape", shape)]
    out = dlcb("bench", "--device", "cpu", *args, "--impl", "ours,numpy", *FAST, "-o", str(path))
    assert out.returncode == 0, out.stderr
    return path


def test_models_command_lists_the_cookbook_figures():
    out = dlcb("models")
    assert out.returncode == 0, out.stderr
    for name in ("AlexNet", "ResNet152", "BERT-base", "DeepSpeech2"):
        assert name in out.stdout
    assert "60,965,224" in out.stdout and "25,557,096" in out.stdout
    out = dlcb("models", "--model", "nosuchnet")
    assert out.returncode == 1 and "nosuchnet" in out.stderr


def test_predict_and_scale_from_a_table(small_table, tmp_path):
    out = dlcb("predict", "--model", "deepmnist", "--table", str(small_table), "--batch", "16", "--json")
    assert out.returncode == 0, out.stderr
    prediction = json.loads(out.stdout)
    assert prediction["step_seconds"] > 0 and prediction["throughput"] > 0
    out = dlcb("predict", "--model", "deepmnist", "--table", str(small_table), "--batch", "16")
    assert out.returncode == 0 and "exact" in out.stdout
    plot = tmp_path / "scale.png"
    out = dlcb("scale", "--model", "deepmnist", "--table", str(small_table), "--workers", "1,2,4",
               "--batch", "16,32", "--interconnect", "ib56", "--plot", str(plot))
    pytest.importorskip("matplotlib")
    assert out.returncode == 0, out.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = dlcb("scale", "--model", "deepmnist", "--table", str(small_table), "--interconnect", "carrier-pigeon")
    assert out.returncode == 1 and "carrier-pigeon" in out.stderr


def test_bench_models_suite_takes_a_model_file_and_measures_its_training_passes(tmp_path):
    """The documented route for a user's own model: a model file wherever a model name goes."""
    from dlcb_kernels import models
    from dlcb_kernels.models.io import save_model

    model_file = tmp_path / "mine.json"
    save_model(models.MODELS["DeepMNIST"], model_file)
    out = tmp_path / "t.json"
    result = dlcb("bench", "--suite", "models", "--models", str(model_file), "--batch", "2", "--mode", "train",
                  "--impl", "ours", "--max-time", "0.02", "--min-samples", "3", "--peak-store", "off", "-q",
                  "-o", str(out))
    assert result.returncode == 0, result.stderr
    doc = table.load(out)
    ops = {(r["op"], r["params"].get("direction")) for r in doc["records"]}
    assert ("memory", "bwd") in ops and ("memory", "fwd") in ops and any(op == "gemm" for op, _ in ops)
    passes = {entry["pass"] for r in doc["records"] for entry in r["layers"]}
    assert {"fwd", "bwd_weights", "fwd train"} <= passes and "fwd infer" not in passes
    assert {r["set"] for r in doc["records"]} == {"models", "anchors"}   # anchors by default
    bad = dlcb("bench", "--suite", "quick", "--mode", "train", "-o", str(tmp_path / "x.json"))
    assert bad.returncode == 1 and "--mode is for the models suite" in bad.stderr
    bad = dlcb("bench", "--suite", "quick", "--no-anchors", "-o", str(tmp_path / "x.json"))
    assert bad.returncode == 1 and "--no-anchors is for the models suite" in bad.stderr
    # predict takes the batch the table measured and the runner it holds, every kernel timed
    predicted = dlcb("predict", "--model", str(model_file), "--table", str(out), "--mode", "train")
    assert predicted.returncode == 0, predicted.stderr
    assert "training step, batch 2" in predicted.stdout and "impl ours" in predicted.stdout
    assert "estimated" not in predicted.stderr
    other = dlcb("predict", "--model", str(model_file), "--table", str(out), "--mode", "train", "--batch", "64")
    assert other.returncode == 0 and "of the predicted step is estimated" in other.stderr
