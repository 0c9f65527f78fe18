"""`dlcb report`: the page is valid HTML that references only embedded PNGs, every section is
built from a two-device table fixture, failures and empty tables are shown, inputs validated;
measured bars and points carry their quartile range, shaky records are marked, and tables of
schema version 1 still make a report."""

import base64
import dataclasses
import html
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from dlcb_kernels import cli
from dlcb_kernels.problems import ConvProblem, GemmProblem
from dlcb_kernels.report import cli_report, figures
from dlcb_kernels.report.html import PNG_MAGIC, Page, png_data_uri
from dlcb_kernels.results import Record
from dlcb_kernels.table import new_table, write_atomic

# small models and few workers keep the predictions fast
FAST = ["--models", "DeepMNIST,TextCNN", "--scaling-model", "DeepMNIST", "--batch", "4", "--workers", "1,2",
        "--weak-batch", "4", "--strong-batch", "8", "-q"]
VOID = {"meta", "img", "br", "hr", "link", "input"}
PROBLEMS = [GemmProblem(256, 256, 256), GemmProblem(512, 64, 512), GemmProblem(1024, 1024, 1024),
            ConvProblem(n=2, c=16, h=28, w=28, k=32, r=3, s=3, pad_h=1, pad_w=1),
            ConvProblem(n=2, c=32, h=14, w=14, k=32, r=1, s=1)]


def _record(problem, variant, provider, device_id, run_id, gflops, peak, status="ok", reason=None):
    record = {"run_id": run_id, "device_id": device_id, "op": problem.op, "problem": problem.key(),
              "params": problem.params(), "set": "synthetic", "implementation": f"{problem.op}/x/{variant}",
              "variant": variant, "provider": provider, "dtype": "float32", "cache": "warm", "threads": 2, "status": status,
              "reason": reason, "flops": problem.flops(), "bytes": problem.bytes_min(),
              "arithmetic_intensity": problem.flops() / problem.bytes_min()}
    if status == "ok":
        median = problem.flops() / gflops / 1e9
        record.update({"stats": {"median": median, "q1": median * 0.98, "q3": median * 1.02, "count": 5},
                       "gflops": gflops, "gbs": problem.bytes_min() / median / 1e9,
                       "peak": {"gflops": peak, "label": "fp32 measured peak"},
                       "percent_of_peak": 100.0 * gflops / peak, "vs_best_vendor": None})
    return record


def _table(device_id: str, name: str, speed: float, kind: str = "cpu") -> dict:
    """A one-device table: ours and a vendor on every problem, plus one failed and one
    unavailable record; `speed` scales every GFLOP/s (a second device)."""
    run_id = f"run-{device_id}"
    doc = new_table()
    doc["runs"].append({"run_id": run_id, "suite": "synthetic", "status": "complete",
                        "started": "2026-11-27T01:00:00+00:00", "finished": "2026-11-27T01:01:00+00:00",
                        "threads": 2, "caches": ["warm"],
                        "environment": {"python": "3.11.7", "platform": "Linux-test", "hostname": "testhost",
                                        "packages": {"dlcb-kernels": "0.1.0", "numpy": "2.0"},
                                        "build_revision": "abc123", "command": ["dlcb", "bench", "--suite", "x"]}})
    device = {"id": device_id, "kind": kind, "name": name, "hostname": "testhost",
              "peaks": {"fp32": {"theoretical_gflops": 220.0 * speed, "theoretical_formula": "synthetic",
                                 "measured_gflops": 200.0 * speed, "measured_summary": "synthetic probe"}}}
    if kind == "cpu":
        device.update({"clock": {"measured_ghz": 3.5, "reported_mhz": 2600.0, "max_mhz": None},
                       "memory": {"triad_gbs": 25.0 * speed}})
    else:
        device.update({"max_sm_clock_mhz": 1500.0, "sm_count": 80, "compute_capability": "9.0",
                       "memory": {"bandwidth_gbs": 900.0 * speed, "copy_gbs": 800.0 * speed}})
    doc["devices"].append(device)
    peak = device["peaks"]["fp32"]["measured_gflops"]
    for i, problem in enumerate(PROBLEMS):
        vendor = _record(problem, "vendorlib", "vendor", device_id, run_id, (60 + 20 * i) * speed, peak)
        ours = _record(problem, "ours", "ours", device_id, run_id, (70 + 15 * i) * speed, peak)
        speedup = ours["gflops"] / vendor["gflops"]
        ours["vs_best_vendor"] = {"implementation": vendor["implementation"], "variant": vendor["variant"],
                                  "time_ratio": 1 / speedup, "speedup": speedup}
        doc["records"] += [vendor, ours]
    doc["records"].append(_record(PROBLEMS[0], "brokenlib", "vendor", device_id, run_id, 0, peak, "failed",
                                  "max error 3.1 above tolerance 1e-4"))
    doc["records"].append(_record(PROBLEMS[3], "absentlib", "vendor", device_id, run_id, 0, peak, "unavailable",
                                  "unavailable: absentlib is not installed"))
    return doc


class _PageChecker(HTMLParser):
    """Tag balance, the document's skeleton, and every reference in the page."""

    def __init__(self):
        super().__init__()
        self.stack, self.counts, self.images, self.links = [], {}, [], []

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src"))
        if "href" in attrs:
            self.links.append(attrs["href"])
        assert tag == "img" or "src" not in attrs, f"<{tag}> has a src"
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        raise AssertionError(f"self-closing <{tag}/>")

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _check_page(out: Path) -> str:
    text = (out / "index.html").read_text(encoding="utf-8")
    checker = _PageChecker()
    checker.feed(text)
    checker.close()
    assert checker.stack == []
    assert checker.counts["html"] == checker.counts["head"] == checker.counts["body"] == 1
    assert "http://" not in text and "https://" not in text
    assert all(link.startswith("#") for link in checker.links)
    embedded = []
    for src in checker.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC)
        embedded.append(png)
    files = sorted(out.glob("*.png"))
    assert files and all(f.stat().st_size > 0 for f in files)
    # the PNGs beside the page are the images in it
    assert sorted(f.read_bytes() for f in files) == sorted(embedded)
    return text


@pytest.fixture
def drawn_figures(monkeypatch):
    """The figures the report draws, kept open for inspection instead of closed once saved."""
    import matplotlib.pyplot as plt

    close, kept = plt.close, []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for fig in kept:
        close(fig)


def _figure(kept: list, title: str):
    """The kept figure with this title (a bar chart's suptitle or a single plot's title)."""
    return next(fig for fig in kept if title in (fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)))


def _has_error_bars(ax) -> bool:
    from matplotlib.container import ErrorbarContainer

    return any(isinstance(c, ErrorbarContainer) for c in ax.containers)


def _hatched(fig) -> list:
    return [p for ax in fig.axes for p in ax.patches if p.get_hatch() == figures.SHAKY_HATCH]


@pytest.fixture
def two_devices(tmp_path):
    cpu = tmp_path / "cpu.json"
    gpu = tmp_path / "gpu.json"
    write_atomic(cpu, _table("cpu:test", "Test CPU", 1.0))
    gpu_doc = _table("cuda:0@test", "Test <GPU> & co", 8.0, kind="gpu")
    # an all-reduce fit, as `dlcb bench comm` writes it: the GPU's scaling uses it instead of the preset
    gpu_doc["communication"] = {"fits": [{"collective": "allreduce", "backend": "nccl", "ranks": 2,
                                          "alpha_s": 2e-5, "beta_bytes_per_s": 4e10}]}
    write_atomic(gpu, gpu_doc)
    return cpu, gpu


def test_report_of_two_devices_through_the_cli(two_devices, tmp_path):
    # run from outside the source tree, as test_cli does: a checkout without its built extension
    # must not shadow the installed package
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "dlcb_kernels", "report", *map(str, two_devices), "-o", str(out),
                           *FAST], check=False, capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "index.html")
    text = _check_page(out)
    names = {f.name for f in out.glob("*.png")}
    assert {"roofline-cpu-test-float32.png", "roofline-cuda-0-test-float32.png", "peak-cpu-test.png",
            "speedup-cpu-test.png", "devices.png", "predictions.png", "scaling-weak-cpu-test.png",
            "scaling-strong-cuda-0-test.png"} <= names
    # failures and unavailable records are listed with their reasons
    assert "max error 3.1 above tolerance 1e-4" in text and "absentlib is not installed" in text
    # table strings are escaped
    assert "Test &lt;GPU&gt; &amp; co" in text and "<GPU>" not in text
    for anchor in ("roofline", "peak", "vendor", "devices", "predictions", "scaling", "communication", "provenance"):
        assert f'id="{anchor}"' in text and f'href="#{anchor}"' in text
    assert "dlcb bench --suite x" in text and "DeepMNIST" in text and "TextCNN" in text
    assert "no theoretical memory bandwidth" in text   # the CPU block lacks it, and the page says so
    assert "Interconnect measured (nccl, 2 ranks)" in text and "preset --interconnect pcie3" in text


def test_unpredictable_device_and_one_device(tmp_path):
    doc = _table("cpu:test", "Test CPU", 1.0)
    doc["records"] = [r for r in doc["records"] if r["status"] != "ok"]
    path = tmp_path / "failed.json"
    write_atomic(path, doc)
    out = tmp_path / "report"
    assert cli.main(["report", str(path), "-o", str(out), *FAST]) == 0
    text = _check_page(out)
    assert "no usable records for device cpu:test" in text     # the predictor's reason, per model
    assert "no ok records to place on a roofline" in text
    assert "a side-by-side comparison needs two or more" in text
    assert "brokenlib" in text and "absentlib" in text


def test_table_without_records_still_gets_a_page(tmp_path):
    doc = _table("cpu:test", "Test CPU", 1.0)
    doc["records"] = []
    path = tmp_path / "empty.json"
    write_atomic(path, doc)
    out = tmp_path / "report"
    assert cli.main(["report", str(path), "-o", str(out), *FAST]) == 0
    text = (out / "index.html").read_text(encoding="utf-8")
    checker = _PageChecker()
    checker.feed(text)
    assert checker.stack == [] and checker.images == []
    assert "has no records" in text and "There are no records." in text


@pytest.mark.parametrize("case", ["missing", "not_table", "not_json", "output_is_file", "unknown_model",
                                  "interconnect", "strong_batch"])
def test_bad_inputs_are_cli_errors(case, two_devices, tmp_path, capsys):
    table = str(two_devices[0])
    out = str(tmp_path / "report")
    args = {"missing": [str(tmp_path / "nope.json"), "-o", out],
            "not_table": [str(tmp_path / "other.json"), "-o", out],
            "not_json": [str(tmp_path / "text.json"), "-o", out],
            "output_is_file": [table, "-o", table],
            "unknown_model": [table, "-o", out, "--models", "NoSuchNet"],
            "interconnect": [table, "-o", out, "--interconnect", "carrier-pigeon"],
            "strong_batch": [table, "-o", out, "--workers", "1,16", "--strong-batch", "8"]}[case]
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "text.json").write_text("not json")
    assert cli.main(["report", *args]) == 1
    assert capsys.readouterr().err.startswith("dlcb: error: ")
    assert not (tmp_path / "report").exists()   # nothing written for a report that cannot be made


def test_missing_file_through_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dlcb_kernels", "report", str(tmp_path / "nope.json"), "-o",
                           str(tmp_path / "out")], check=False, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 1
    assert "dlcb: error: no such table file" in proc.stderr


def test_page_pieces_validate_their_inputs(tmp_path):
    with pytest.raises(ValueError, match="not a PNG"):
        png_data_uri(b"GIF89a")
    with pytest.raises(TypeError, match="png must be bytes"):
        png_data_uri("data")
    page = Page("t")
    section = page.section("one", "One")
    with pytest.raises(ValueError, match="cells"):
        section.table(("a", "b"), [("only one",)])
    with pytest.raises(ValueError, match="anchor"):
        page.section("bad anchor", "x")
    with pytest.raises(ValueError, match="series 's' has 1 values for 2 rows"):
        figures.bar_panels([figures.BarPanel("p", ["a", "b"], {"s": [1.0]})], tmp_path / "x.png", "t", "x")
    with pytest.raises(ValueError, match="points or ceilings"):
        figures.roofline([], [], tmp_path / "r.png", "t")
    with pytest.raises(ValueError, match="ceiling kind"):
        figures.roofline([], [figures.Ceiling("cache", 1.0, True, "x")], tmp_path / "r.png", "t")


def test_communication_measurements_get_bandwidth_and_fit_figures(tmp_path, drawn_figures):
    from dlcb_kernels.comm.fit import fit_collective

    doc = _table("cpu:test", "Test CPU", 1.0)
    measurements = []
    for collective, latency, per_byte in (("allreduce", 3e-6, 1 / 2e9), ("broadcast", 1e-6, 1 / 8e9)):
        for nbytes in (2 ** k for k in range(3, 25)):
            median = latency + nbytes * per_byte
            measurements.append({"collective": collective, "backend": "mpi", "ranks": 2, "nbytes": nbytes,
                                 "status": "ok", "stats": {"median": median, "q1": median * 0.97,
                                                           "q3": median * 1.04},
                                 "converged": nbytes != 1 << 20, "algbw_gbs": nbytes / median / 1e9,
                                 "busbw_gbs": nbytes / median / 1e9})
    measurements.append({"collective": "allreduce", "backend": "mpi", "ranks": 2, "nbytes": 1 << 26,
                         "status": "failed", "reason": "wrong result: max |error| 3 on the worst rank"})
    fits = [fit_collective(measurements, c, "mpi", 2, 1024, 64 << 20) for c in ("allreduce", "broadcast")]
    doc["communication"] = {"measurements": measurements, "fits": fits}
    path = tmp_path / "comm.json"
    write_atomic(path, doc)
    out = tmp_path / "report"
    assert cli.main(["report", str(path), "-o", str(out), "--models", "none", "--scaling-model", "none"]) == 0
    text = _check_page(out)
    names = {f.name for f in out.glob("*.png")}
    assert {"comm-busbw-mpi-2-rank-s-comm.png", "comm-allreduce-fit-mpi-2-rank-s-comm.png"} <= names
    assert 'id="communication"' in text and "wrong result: max |error| 3" in text
    for title in ("bus bandwidth, mpi, 2 rank(s), comm", "all-reduce time and its fits, mpi, 2 rank(s), comm"):
        ax = _figure(drawn_figures, title).axes[0]
        assert _has_error_bars(ax)
        assert "hollow: shaky" in {t.get_text() for t in ax.get_legend().get_texts()}
    assert "ring: t = 2·α + 1·n/β" in text and "binomial tree" in text


def test_a_report_says_when_no_table_has_communication_measurements(two_devices, tmp_path):
    out = tmp_path / "report"
    assert cli.main(["report", *map(str, two_devices), "-o", str(out), "--models", "none",
                     "--scaling-model", "none"]) == 0
    assert "No table holds communication measurements" in _check_page(out)


def test_intervals_come_from_the_quartiles():
    ours = Record.from_json(_record(PROBLEMS[0], "ours", "ours", "cpu:test", "run", 100.0, 200.0))
    vendor = Record.from_json(_record(PROBLEMS[0], "vendorlib", "vendor", "cpu:test", "run", 50.0, 200.0))
    # throughput = work / time: the slow quartile gives the low end
    low, high = cli_report.throughput_interval(ours.gflops, ours)
    assert low == pytest.approx(ours.flops / ours.stats.q3 / 1e9)
    assert high == pytest.approx(ours.flops / ours.stats.q1 / 1e9)
    low, high = cli_report.throughput_interval(ours.percent_of_peak, ours)
    assert low < ours.percent_of_peak < high
    low, high = cli_report.speedup_interval(ours, vendor)
    assert low == pytest.approx(vendor.stats.q1 / ours.stats.q3)
    assert high == pytest.approx(vendor.stats.q3 / ours.stats.q1)
    assert low < 2.0 < high
    assert cli_report.speedup_interval(ours, None) is None
    no_quartiles = ours.replace(stats=dataclasses.replace(ours.stats, q1=None))
    assert cli_report.throughput_interval(ours.gflops, no_quartiles) is None
    assert cli_report.speedup_interval(no_quartiles, vendor) is None


def test_noise_marks_of_records_and_pairs():
    steady = Record.from_json(_record(PROBLEMS[0], "ours", "ours", "cpu:test", "run", 100.0, 200.0))
    unconverged = steady.replace(converged=False)
    contended = steady.replace(conditions={"contended": True})
    assert cli_report.noise_mark(steady) == "" and not steady.shaky
    assert cli_report.noise_mark(unconverged) == "~" and cli_report.noise_mark(contended) == "*"
    assert cli_report.noise_mark(unconverged, contended) == "~*"   # a ratio is as shaky as either record


def test_bars_and_points_carry_error_bars_and_shaky_records_are_marked(tmp_path, drawn_figures):
    doc = _table("cpu:test", "Test CPU", 1.0)
    gemm_small, gemm_flat = PROBLEMS[0].key(), PROBLEMS[1].key()
    unconverged = next(r for r in doc["records"] if r["variant"] == "ours" and r["problem"] == gemm_small)
    unconverged["converged"] = False
    contended = next(r for r in doc["records"] if r["variant"] == "vendorlib" and r["problem"] == gemm_flat)
    contended["conditions"] = {"contended": True}
    path = tmp_path / "shaky.json"
    write_atomic(path, doc)
    out = tmp_path / "report"
    assert cli.main(["report", str(path), "-o", str(out), "--models", "none", "--scaling-model", "none"]) == 0
    text = _check_page(out)

    peak = _figure(drawn_figures, "cpu:test (Test CPU): % of peak")
    speedup = _figure(drawn_figures, "cpu:test (Test CPU): ours vs the best vendor")
    for fig in (peak, speedup):
        assert fig.axes and all(_has_error_bars(ax) for ax in fig.axes)
        marks = sorted(t.get_text().strip() for ax in fig.axes for t in ax.texts
                       if t.get_text().strip() in ("~", "*", "~*"))
        assert marks == ["*", "~"]
    assert len(_hatched(peak)) == 2            # the two shaky records
    assert len(_hatched(speedup)) == 2         # the pairs built on them
    roofline = _figure(drawn_figures, "cpu:test (Test CPU), float32")
    assert _has_error_bars(roofline.axes[0])
    faces = [tuple(face[:3]) for c in roofline.axes[0].collections for face in c.get_facecolors()]
    assert faces.count((1.0, 1.0, 1.0)) == 2   # white: the two shaky records drawn hollow

    # the page says what the marks mean, and how many records carry them
    assert html.escape(cli_report.NOISE_LEGEND) in text
    assert "1 ok*" in text and "1 ok~" in text
    assert "2 shaky (hatched)" in text and "2 shaky pair(s) (hatched)" in text and "2 shaky (hollow)" in text


def test_predicted_throughputs_keep_their_uncertainty_bars(two_devices, tmp_path, drawn_figures):
    out = tmp_path / "report"
    assert cli.main(["report", *map(str, two_devices), "-o", str(out), *FAST]) == 0
    predictions = _figure(drawn_figures, "Predicted throughput per device")
    assert all(_has_error_bars(ax) for ax in predictions.axes)
    assert not _hatched(predictions)


def test_tables_of_schema_version_1_still_make_a_report(tmp_path, drawn_figures):
    """Version 1 records have no variant: reading them derives it from the implementation name."""
    paths = []
    for device_id, name, speed in (("cpu:old", "Old CPU", 1.0), ("cpu:older", "Older CPU", 0.5)):
        doc = _table(device_id, name, speed)
        doc["schema_version"] = 1
        for record in doc["records"]:
            del record["variant"]
            if record.get("vs_best_vendor"):
                del record["vs_best_vendor"]["variant"]
        paths.append(tmp_path / f"{device_id.replace(':', '-')}.json")
        write_atomic(paths[-1], doc)
    out = tmp_path / "report"
    assert cli.main(["report", *map(str, paths), "-o", str(out), "--models", "none", "--scaling-model", "none"]) == 0
    text = _check_page(out)
    assert "GFLOP/s (ours)" in text and "GFLOP/s (vendorlib)" in text   # the devices table names variants
    speedup = _figure(drawn_figures, "cpu:old (Old CPU): ours vs the best vendor")
    rows = [label.get_text() for ax in speedup.axes for label in ax.get_yticklabels()]
    assert rows and all(row.endswith(" vs vendorlib") for row in rows)
    peak = _figure(drawn_figures, "cpu:old (Old CPU): % of peak")
    legend = {t.get_text() for ax in peak.axes for t in ax.get_legend().get_texts()}
    assert {"ours", "vendorlib", "brokenlib", "absentlib"} <= legend
    devices = _figure(drawn_figures, "Devices side by side")
    assert all(_has_error_bars(ax) for ax in devices.axes)
