"""Scalability models: interconnects, all-reduce, data-parallel overlap, SUMMA, `dlcb scale`, and the
Deep Learning Cookbook's worked examples reproduced from the models themselves."""

from __future__ import annotations

import argparse
import builtins
import json
import math
from types import SimpleNamespace

import pytest

from dlcb_kernels.models import MODELS
from dlcb_kernels.predict import cli_scale
from dlcb_kernels.predict.scaling import (
    INTERCONNECTS,
    Interconnect,
    StepProfile,
    allreduce_seconds,
    data_parallel,
    flops_profile,
    get_interconnect,
    interconnect_from_table,
    profile_from_prediction,
    step_seconds,
    summa_fc,
    summa_grids,
    summa_min_beta,
    summa_table,
    training_rate_needed,
)
from dlcb_kernels.table import new_table

K40_FLOPS = 4.29e12          # the cookbook: NVIDIA K40, FP32
V100_FLOPS = 15e12           # the cookbook: NVIDIA V100, FP32
LINK = Interconnect("test link", 0.0, 10.0, "10 B/s, no latency: hand-checkable")


# Interconnects ---------------------------------------------------------------------------------

def test_presets_state_per_direction_bandwidth_latency_and_source():
    assert INTERCONNECTS["pcie3"].beta_bytes_per_s == pytest.approx(15.75e9)
    assert INTERCONNECTS["ib56"].beta_bytes_per_s == 7e9
    assert INTERCONNECTS["100g"].beta_bytes_per_s == 12.5e9
    assert INTERCONNECTS["400g"].beta_bytes_per_s == 50e9
    # NVIDIA's per-GPU figures are both directions together; the model takes one direction.
    for name, total_gbs in (("nvlink1", 160), ("nvlink2", 300), ("nvlink3", 600), ("nvlink4", 900)):
        ic = INTERCONNECTS[name]
        assert ic.beta_bytes_per_s == total_gbs / 2 * 1e9
        assert f"{total_gbs} GB/s" in ic.source and "both directions" in ic.source
    for ic in INTERCONNECTS.values():
        assert 0 < ic.alpha_s <= 10e-6 and ic.beta_bytes_per_s > 0
        assert "assumption" in ic.source
    assert INTERCONNECTS["ib56"].alpha_s < INTERCONNECTS["pcie3"].alpha_s


def test_interconnect_validation():
    with pytest.raises(ValueError, match="beta_bytes_per_s"):
        Interconnect("x", 1e-6, 0, "")
    with pytest.raises(TypeError, match="alpha_s"):
        Interconnect("x", "1us", 1e9, "")
    with pytest.raises(ValueError, match="unknown interconnect 'pcie9'.*pcie3"):
        get_interconnect("pcie9")
    assert get_interconnect("NVLink2") is INTERCONNECTS["nvlink2"]


def test_interconnect_from_table_reads_allreduce_fits_and_says_when_absent():
    doc = new_table()
    with pytest.raises(ValueError, match="no measured all-reduce"):
        interconnect_from_table(doc)
    with pytest.raises(ValueError, match="no measured all-reduce"):
        get_interconnect("measured", doc)
    fit = {"collective": "allreduce", "backend": "nccl", "alpha_s": 8e-6, "beta_bytes_per_s": 90e9}
    other = {"collective": "broadcast", "backend": "nccl", "alpha_s": 1e-6, "beta_bytes_per_s": 1e9}
    doc["communication"] = [other, fit]
    ic = interconnect_from_table(doc)
    assert (ic.alpha_s, ic.beta_bytes_per_s) == (8e-6, 90e9) and "nccl" in ic.name
    doc["communication"] = {"fits": [fit, dict(fit, backend="gloo", beta_bytes_per_s=2e9)]}
    with pytest.raises(ValueError, match="backends gloo, nccl"):
        interconnect_from_table(doc)
    assert interconnect_from_table(doc, backend="gloo").beta_bytes_per_s == 2e9
    doc["communication"] = "fast"
    with pytest.raises(ValueError, match="list or a dict"):
        interconnect_from_table(doc)


# All-reduce ------------------------------------------------------------------------------------

def test_allreduce_formulas():
    ic = Interconnect("x", 1e-6, 1e9, "")
    n = 4e6
    assert allreduce_seconds(n, 1, ic) == 0.0
    assert allreduce_seconds(n, 1, ic, "ps") == 0.0
    assert allreduce_seconds(n, 4, ic) == pytest.approx(2 * 3 * 1e-6 + 2 * 0.75 * n / 1e9)
    assert allreduce_seconds(n, 5, ic, "tree") == pytest.approx(2 * 3 * (1e-6 + n / 1e9))
    assert allreduce_seconds(n, 8, ic, "ps") == pytest.approx(2 * (1e-6 + 8 * n / 1e9))
    assert allreduce_seconds(n, 8, ic, "ps", shards=4) == pytest.approx(2 * (1e-6 + 2 * n / 1e9))
    # More shards than workers: each worker's own link is the bottleneck.
    assert allreduce_seconds(n, 2, ic, "ps", shards=8) == pytest.approx(2 * (1e-6 + n / 1e9))
    # The ring's bandwidth term approaches 2n/β whatever p: it is the one that scales.
    assert allreduce_seconds(n, 1024, Interconnect("y", 0.0, 1e9, "")) == pytest.approx(2 * n / 1e9, rel=1e-3)
    assert allreduce_seconds(n, 64, ic) < allreduce_seconds(n, 64, ic, "tree") < allreduce_seconds(n, 64, ic, "ps")


def test_allreduce_validation():
    ic = INTERCONNECTS["pcie3"]
    with pytest.raises(ValueError, match="algorithm"):
        allreduce_seconds(1, 2, ic, "butterfly")
    with pytest.raises(TypeError, match="p must be an int"):
        allreduce_seconds(1, 2.0, ic)
    with pytest.raises(ValueError, match="p must be >= 1"):
        allreduce_seconds(1, 0, ic)
    with pytest.raises(ValueError, match="nbytes"):
        allreduce_seconds(-1, 2, ic)
    with pytest.raises(TypeError, match="Interconnect"):
        allreduce_seconds(1, 2, "pcie3")


# Data parallelism ------------------------------------------------------------------------------

def test_overlap_timeline_by_hand():
    # forward 5 s; backward of the last layer 3 s (30 B), then of the first 2 s (10 B).
    profile = StepProfile(10.0, ((2.0, 10.0), (3.0, 30.0)))
    # p = 2 on 10 B/s: a ring all-reduce of n bytes takes n/10 s.
    # Last layer ready at 8, reduced 8..11; first layer ready at 10, waits for the link: 11..12.
    assert step_seconds(profile, 2, LINK) == (pytest.approx(12.0), pytest.approx(4.0))
    assert step_seconds(profile, 2, LINK, overlap=False) == (pytest.approx(14.0), pytest.approx(4.0))
    # One 40-byte bucket waits for the whole backward: no overlap left.
    assert step_seconds(profile, 2, LINK, bucket_bytes=40) == (pytest.approx(14.0), pytest.approx(4.0))
    # The optimizer update follows the last all-reduce.
    with_update = StepProfile(11.0, ((2.0, 10.0), (3.0, 30.0)), optimizer_seconds=1.0)
    assert step_seconds(with_update, 2, LINK)[0] == pytest.approx(13.0)
    # A link fast enough hides everything but the first layer's all-reduce.
    fast = Interconnect("fast", 0.0, 1000.0, "")
    assert step_seconds(profile, 2, fast)[0] == pytest.approx(10.0 + 10 / 1000)


def test_step_profile_validation_and_scaling():
    with pytest.raises(ValueError, match="exceed step_seconds"):
        StepProfile(1.0, ((2.0, 10.0),))
    with pytest.raises(TypeError, match="backward\\[0\\]"):
        StepProfile(1.0, ([0.5, 10.0],))
    scaled = StepProfile(10.0, ((2.0, 10.0),), 1.0).scaled(3.0)
    assert scaled == StepProfile(30.0, ((6.0, 10.0),), 3.0)


def test_profile_from_prediction_expands_repeated_layers():
    # Times and weight bytes of an entry are summed over its occurrences.
    layer = SimpleNamespace(count=3, fwd_s=3.0, bwd_data_s=1.5, bwd_weights_s=0.75, memory_s=1.5,
                            weight_bytes=300)
    head = SimpleNamespace(count=1, fwd_s=0.1, bwd_data_s=0.0, bwd_weights_s=0.2, memory_s=0.0, weight_bytes=7)
    prediction = SimpleNamespace(mode="train", step_seconds=7.0, optimizer_seconds=0.05, layers=[layer, head])
    profile = profile_from_prediction(prediction)
    assert profile.backward == ((1.0, 100),) * 3 + ((0.2, 7),)
    assert profile.gradient_bytes == 307 and profile.optimizer_seconds == 0.05
    with pytest.raises(ValueError, match="training-step"):
        profile_from_prediction(SimpleNamespace(mode="infer"))


def _linear_model_fn(per_sample_s=1e-3, weight_bytes=1e6, layers=4):
    def fn(batch):
        part = per_sample_s * batch / 3 / layers     # backward takes 2/3 of the step
        return StepProfile(per_sample_s * batch, tuple((2 * part, weight_bytes / layers) for _ in range(layers)))
    return fn


def test_data_parallel_weak_and_strong_rows():
    ic = INTERCONNECTS["pcie3"]
    weak = data_parallel(_linear_model_fn(), [2, 4], [32], ic)   # 1 not asked: still the reference
    assert [(r.workers, r.batch, r.global_batch) for r in weak] == [(2, 32, 64), (4, 32, 128)]
    for row in weak:
        t1 = 32e-3
        assert row.efficiency == pytest.approx(t1 / row.step_s)
        assert row.speedup == pytest.approx(row.workers * t1 / row.step_s)
        assert row.throughput == pytest.approx(row.global_batch / row.step_s)
        assert row.step_s >= row.compute_s and 0 < row.efficiency < 1
    strong = data_parallel(_linear_model_fn(), [1, 2, 3, 4], [12], ic, scaling="strong")
    assert [(r.batch, r.global_batch) for r in strong] == [(12, 12), (6, 12), (4, 12), (3, 12)]
    t1 = strong[0].step_s
    assert strong[0].efficiency == 1.0 and strong[0].speedup == 1.0
    for row in strong[1:]:
        assert row.speedup == pytest.approx(t1 / row.step_s)
        assert row.efficiency == pytest.approx(t1 / (row.workers * row.step_s))
    with pytest.raises(ValueError, match="global batch 2 over 4 workers"):
        data_parallel(_linear_model_fn(), [4], [2], ic, scaling="strong")
    with pytest.raises(ValueError, match="scaling"):
        data_parallel(_linear_model_fn(), [1], [2], ic, scaling="medium")
    with pytest.raises(TypeError, match="callable"):
        data_parallel(None, [1], [2], ic)
    with pytest.raises(ValueError, match="p_list"):
        data_parallel(_linear_model_fn(), [], [2], ic)


def test_overlap_never_slower_and_bigger_batches_scale_better():
    ic = INTERCONNECTS["ib56"]
    fn = _linear_model_fn(per_sample_s=2e-4, weight_bytes=50e6)
    overlapped = data_parallel(fn, [1, 2, 4, 8], [16, 32, 64, 128], ic)
    serial = data_parallel(fn, [1, 2, 4, 8], [16, 32, 64, 128], ic, overlap=False)
    for a, b in zip(overlapped, serial):
        assert a.compute_s <= a.step_s <= b.step_s
    at8 = [row.efficiency for row in overlapped if row.workers == 8]
    assert at8 == sorted(at8)            # per-worker batch 16 -> 128: more compute per byte moved


# Model parallelism: SUMMA ----------------------------------------------------------------------

def test_summa_cookbook_example_pays_at_300_not_at_30_gbs():
    """The cookbook's model-parallel example: FC layer n = 2000, b = 10, γ = 15 TFLOPS, FP32 words,
    β = 300 vs 30 GB/s (bandwidth only: α = 0)."""
    n, b = 2000, 10
    nvlink = Interconnect("300 GB/s", 0.0, 300e9, "cookbook example")
    pcie = Interconnect("30 GB/s", 0.0, 30e9, "cookbook example")
    single = summa_fc(n, b, 1, (1, 1), V100_FLOPS, nvlink)
    assert single.step_s == pytest.approx(2 * n * n * b / V100_FLOPS) == pytest.approx(5.333e-6, rel=1e-3)
    fast = {row.grid: row for row in summa_table(n, b, [2, 4, 8], V100_FLOPS, nvlink)}
    slow = {row.grid: row for row in summa_table(n, b, [2, 4, 8], V100_FLOPS, pcie)}
    # 1×p grids broadcast only activation panels: ⌈log₂p⌉·n·b·4 bytes (80 KB per doubling).
    assert fast[(1, 4)].comm_s == pytest.approx(2 * n * b * 4 / 300e9)
    assert [round(fast[(1, p)].speedup, 2) for p in (2, 4, 8)] == [1.82, 2.86, 3.64]
    assert [round(slow[(1, p)].speedup, 2) for p in (2, 4, 8)] == [1.0, 0.8, 0.62]
    assert all(fast[(1, p)].pays for p in (2, 4, 8)) and not any(slow[(1, p)].pays for p in (2, 4, 8))
    # Grids with r > 1 broadcast weight panels (n²/c words per level): never pay at b = 10.
    assert not any(row.pays for grid, row in fast.items() if grid[0] > 1)
    # Break-even: β > ⌈log₂p⌉·w·γ / (2n(1 - 1/p)); p = 2 gives w·γ/n = 30 GB/s exactly.
    assert summa_min_beta(n, b, (1, 2), V100_FLOPS) == pytest.approx(30e9)
    assert summa_min_beta(n, b, (1, 4), V100_FLOPS) == pytest.approx(40e9)
    assert summa_min_beta(n, b, (1, 8), V100_FLOPS) == pytest.approx(3 * 4 * 15e12 / (2 * n * 7 / 8))
    # A 1 µs message latency alone exceeds the whole 5.3 µs layer's saving on 1×p grids.
    assert summa_min_beta(n, b, (1, 4), V100_FLOPS, alpha_s=1e-6) == math.inf


def test_summa_larger_layers_and_batches_pay_on_slower_links():
    assert summa_min_beta(8000, 10, (1, 4), V100_FLOPS) < summa_min_beta(2000, 10, (1, 4), V100_FLOPS)
    # Weight-moving grids need a large batch to amortize the weights.
    assert summa_min_beta(2000, 10, (2, 2), V100_FLOPS) > 1e12
    assert summa_min_beta(2000, 4096, (2, 2), V100_FLOPS) < 300e9


def test_summa_validation():
    assert summa_grids(6) == [(1, 6), (2, 3), (3, 2), (6, 1)]
    with pytest.raises(ValueError, match="grid 2x2 has 4 processes, not p = 8"):
        summa_fc(2000, 10, 8, (2, 2), V100_FLOPS, LINK)
    with pytest.raises(TypeError, match="grid"):
        summa_fc(2000, 10, 4, [2, 2], V100_FLOPS, LINK)
    with pytest.raises(ValueError, match="panel 3000 is wider"):
        summa_fc(2000, 10, 4, (2, 2), V100_FLOPS, LINK, panel=3000)


# The cookbook's worked examples from the model zoo ---------------------------------------------

def test_resnet152_epoch_per_hour_needs_about_140_tflops():
    """3 × 11.3e9 × 14e6 ≈ 5e17 'FLOP' per epoch (the cookbook counts MACs), ≈ 140 T per second for an hour."""
    macs = MODELS["ResNet152"].macs_per_sample()
    assert macs == pytest.approx(11.282e9, rel=1e-3)
    per_epoch = training_rate_needed(macs, 14_000_000, 1.0)
    assert per_epoch == pytest.approx(4.74e17, rel=1e-3)
    assert round(per_epoch, -17) == 5e17
    rate = training_rate_needed(macs, 14_000_000, 3600)
    assert rate == pytest.approx(131.6e12, rel=1e-3)       # from 11.282 GMACs; 5e17/3600 = 139 T
    assert 130e12 < rate < 140e12 and 5e17 / 3600 == pytest.approx(140e12, rel=0.01)
    # Counting a MAC as 2 FLOPs doubles it: 263 TFLOPS, ~61 K40s at their peak.
    real = training_rate_needed(macs, 14_000_000, 3600, ops_per_mac=2)
    assert real == pytest.approx(263.2e12, rel=1e-3)
    assert math.ceil(real / K40_FLOPS) == 62


# Compute to weights (MACs per trainable weight): FC-heavy ≈ 1, conv-heavy 10-230.
FC_HEAVY = ("DeepMNIST", "EnglishAcoustic")
CONV_HEAVY = ("GoogLeNet", "ResNet50", "ResNet152", "VGG16")


def _k40_rows(name, ic, overlap, workers=(1, 2, 4, 8), batches=(32,), algorithm="ring"):
    model = MODELS[name]
    # Simple compute model: 2·3·MACs per sample at half a K40's peak (an assumption).
    return data_parallel(lambda batch: flops_profile(model, batch, K40_FLOPS, efficiency=0.5),
                         list(workers), list(batches), ic, overlap=overlap, algorithm=algorithm)


def _at_8(name, ic, overlap=False, algorithm="ring"):
    return _k40_rows(name, ic, overlap, workers=(1, 8), algorithm=algorithm)[-1]


def _efficiency_at_8(name, ic, overlap=False, algorithm="ring"):
    return _at_8(name, ic, overlap, algorithm).efficiency


@pytest.mark.parametrize("overlap", [False, True])
def test_k40_fc_heavy_models_need_the_fast_link(overlap):
    """K40 + PCIe v3 (15.75 GB/s) vs InfiniBand FDR (7 GB/s), ring all-reduce, per-GPU batch 32:
    how much slower the 8-GPU step is on the slower link."""
    pcie, ib = INTERCONNECTS["pcie3"], INTERCONNECTS["ib56"]
    slowdown = {name: _at_8(name, ib, overlap).step_s / _at_8(name, pcie, overlap).step_s
                for name in FC_HEAVY + CONV_HEAVY + ("AlexNet",)}
    # The slower link never helps (beyond IB's smaller latency on the one exposed bucket).
    assert min(slowdown.values()) > 0.999
    # FC-heavy models run about twice as slow on the link of half the bandwidth: the all-reduce is
    # their step. Conv-heavy ones lose at most 6% (none with overlap); AlexNet, with its 3 FC
    # layers holding 96% of its weights, sits between.
    assert min(slowdown[name] for name in FC_HEAVY) > 1.9
    assert max(slowdown[name] for name in CONV_HEAVY) < (1.06 if not overlap else 1.001)
    assert 1.2 < slowdown["AlexNet"] < 1.9
    # FC-heavy models barely scale on either link: each GPU's 1-3 ms step moves 48-139 MB.
    assert max(_efficiency_at_8(name, pcie, overlap) for name in FC_HEAVY) < 0.2


def test_k40_larger_models_scale_better():
    """Efficiency at 8 GPUs rises with compute per weight (MACs per trainable parameter)."""
    names = FC_HEAVY + ("AlexNet",) + CONV_HEAVY
    for ic in (INTERCONNECTS["pcie3"], INTERCONNECTS["ib56"]):
        ranked = sorted(names, key=lambda name: MODELS[name].macs_per_sample() / MODELS[name].params("trainable"))
        efficiency = [_efficiency_at_8(name, ic) for name in ranked]
        assert efficiency == pytest.approx(sorted(efficiency), abs=0.01), list(zip(ranked, efficiency))
        assert efficiency[-1] > 0.9 and efficiency[0] < 0.2


def test_k40_pcie_behind_one_host_link_scales_worse_than_infiniband():
    """With a parameter server on the host, all 8 GPUs share its one PCIe link (8n per direction) and
    scale worse than a ring over InfiniBand (2·(7/8)·n over 7 GB/s): the PCIe topology matters."""
    for name in FC_HEAVY + ("AlexNet", "VGG16"):
        shared_pcie = _efficiency_at_8(name, INTERCONNECTS["pcie3"], algorithm="ps")
        assert shared_pcie < _efficiency_at_8(name, INTERCONNECTS["ib56"])


def test_flops_profile_counts_three_passes_and_trainable_weights():
    model = MODELS["VGG16"]
    profile = flops_profile(model, 8, K40_FLOPS)
    assert profile.step_seconds == pytest.approx(3 * 2 * model.macs_per_sample() * 8 / K40_FLOPS)
    assert profile.gradient_bytes == 4 * model.params("trainable")
    with pytest.raises(ValueError, match="efficiency must be <= 1"):
        flops_profile(model, 8, K40_FLOPS, efficiency=2)


# `dlcb scale` ----------------------------------------------------------------------------------

def _table_file(tmp_path):
    doc = new_table()
    doc["devices"].append({"id": "gpu0", "peaks": {"fp32": {"theoretical_gflops": 15000.0,
                                                            "theoretical_formula": "test device"}}})
    path = tmp_path / "table.json"
    path.write_text(json.dumps(doc))
    return path


def _run(monkeypatch, capsys, argv):
    # The step comes from the simple compute model at V100 peak instead of the table's records.
    monkeypatch.setattr(cli_scale, "_prediction_fn",
                        lambda model, doc, args: lambda batch: flops_profile(model, batch, V100_FLOPS))
    parser = argparse.ArgumentParser(prog="dlcb")
    cli_scale.add_parser(parser.add_subparsers(dest="command"))
    status = cli_scale.run(parser.parse_args(["scale", *argv]))
    return status, capsys.readouterr()


def test_cli_prints_the_table(tmp_path, monkeypatch, capsys):
    table = _table_file(tmp_path)
    status, out = _run(monkeypatch, capsys, ["--model", "deepmnist", "--table", str(table), "--workers", "1,2,4,8",
                                             "--batch", "16,128", "--interconnect", "ib56"])
    assert status == 0
    lines = out.out.splitlines()
    assert "DeepMNIST: weak scaling, ring all-reduce overlapped" in lines[0] and "7 GB/s" in lines[0]
    assert "InfiniBand FDR" in lines[1]
    assert "batch time ms" in lines[2] and "efficiency" in lines[2]
    assert len(lines) == 3 + 8
    assert lines[3].split()[:3] == ["1", "16", "16"] and lines[3].split()[-1] == "100.0%"


def test_cli_json_gamma_and_strong_scaling(tmp_path, monkeypatch, capsys):
    table = _table_file(tmp_path)
    argv = ["--model", "ResNet50", "--table", str(table), "--workers", "1,4", "--batch", "64",
            "--scaling", "strong", "--no-overlap", "--algorithm", "tree", "--json"]
    _, plain = _run(monkeypatch, capsys, argv)
    _, k40 = _run(monkeypatch, capsys, [*argv, "--gamma", "4.29"])
    plain, k40 = json.loads(plain.out), json.loads(k40.out)
    assert plain["settings"]["overlap"] is False and plain["settings"]["algorithm"] == "tree"
    assert [row["batch"] for row in plain["rows"]] == [64, 16]
    assert k40["settings"]["compute_scale"] == pytest.approx(15 / 4.29)
    assert k40["rows"][0]["step_s"] == pytest.approx(plain["rows"][0]["step_s"] * 15 / 4.29)


def test_cli_user_errors(tmp_path, monkeypatch, capsys):
    table = _table_file(tmp_path)
    with pytest.raises(ValueError, match="no measured all-reduce"):
        _run(monkeypatch, capsys, ["--model", "vgg16", "--table", str(table), "--interconnect", "measured"])
    with pytest.raises(SystemExit):
        _run(monkeypatch, capsys, ["--model", "vgg16", "--table", str(table), "--workers", "0,2"])


def test_cli_plot(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    table, png = _table_file(tmp_path), tmp_path / "vgg16.png"
    status, out = _run(monkeypatch, capsys, ["--model", "vgg16", "--table", str(table), "--plot", str(png)])
    assert status == 0 and png.read_bytes().startswith(b"\x89PNG") and "plot written" in out.out


def test_cli_without_matplotlib_prints_the_table_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    table, png = _table_file(tmp_path), tmp_path / "vgg16.png"
    status, out = _run(monkeypatch, capsys, ["--model", "vgg16", "--table", str(table), "--plot", str(png)])
    assert status == 1 and not png.exists()
    assert "efficiency" in out.out and "install dlcb-kernels[plot]" in out.err


def test_cli_end_to_end_with_the_predictor(tmp_path, capsys):
    """DeepMNIST predicted from a table holding its own GEMMs (at half of a 100 GFLOP/s peak)."""
    from dlcb_kernels import records, table
    from dlcb_kernels.predict import predict_model

    impl = SimpleNamespace(name="gemm/cpu/test", variant="test", provider="vendor", backend="cpu")
    doc = new_table()
    doc["runs"].append({"run_id": "run0"})
    doc["devices"].append({"id": "cpu:test", "kind": "cpu", "name": "synthetic CPU",
                           "peaks": {"fp32": {"measured_gflops": 100.0, "measured_summary": "synthetic",
                                              "theoretical_gflops": 200.0, "theoretical_formula": "synthetic"}},
                           "memory": {"triad_gbs": 20.0}})
    model = MODELS["DeepMNIST"]
    problems = {problem.key(): problem for layer in model.kernel_layers()
                for pass_ in ("fwd", "bwd_data", "bwd_weights") for problem, _ in layer.kernel_problems(16, pass_)}
    for problem in problems.values():
        seconds = problem.flops() / 50e9
        rec = records.base_record(problem, impl, run_id="run0", device_id="cpu:test", cache="warm",
                                  threads=1).to_json()
        rec.update(stats={"median": seconds, "q1": seconds, "q3": seconds, "rel_noise": 0.01, "count": 10},
                   gflops=50.0)
        doc["records"].append(rec)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table.validate(doc)))

    parser = argparse.ArgumentParser(prog="dlcb")
    cli_scale.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["scale", "--model", "DeepMNIST", "--table", str(path), "--workers", "1,2",
                              "--batch", "16", "--interconnect", "100g", "--json"])
    assert cli_scale.run(args) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    single = predict_model(model, table.load(path), batch=16)
    assert rows[0]["step_s"] == pytest.approx(single.step_seconds)
    # 2 workers all-reduce 48 MB of gradients over 12.5 GB/s: at least 3.8 ms more per step.
    gradient_bytes = 4 * model.params("trainable")
    assert rows[1]["allreduce_s"] >= allreduce_seconds(gradient_bytes, 2, INTERCONNECTS["100g"]) * 0.999
    assert rows[1]["step_s"] > rows[0]["step_s"]
