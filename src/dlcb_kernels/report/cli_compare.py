"""`dlcb compare OLD NEW`: per problem, is NEW faster, slower or the same as OLD, from the two
runs' sample distributions; a non-zero exit status on a regression, for CI."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from ..argtypes import non_negative_int, positive_float, positive_int
from ..table import load, require_writable, write_text_atomic
from .compare import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    DEFAULT_THRESHOLD,
    MIN_RESAMPLES,
    REGRESSION_VERDICTS,
    CompareSettings,
    compare_tables,
)

EXIT_REGRESSION = 4

CSV_COLUMNS = ("old_device", "new_device", "op", "problem", "implementation", "dtype", "cache", "verdict",
               "ratio", "ci_low", "ci_high", "old_median_s", "new_median_s", "old_samples", "new_samples",
               "p_value", "basis", "note")


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 (exclusive), got {value}")
    return value


def _resamples(text: str) -> int:
    value = positive_int(text)
    if value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_RESAMPLES} resamples, got {value}")
    return value


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of names, got {text!r}")
    return names


def add_parser(subparsers) -> argparse.ArgumentParser:
    compare = subparsers.add_parser(
        "compare", help="compare two runs problem by problem: faster, slower, same or ambiguous",
        description="Matches the records of two throughput tables by (op, problem, implementation, dtype, "
                    "cache) and gives each pair the ratio of median times NEW/OLD with a bootstrap confidence "
                    "interval from the raw samples: faster when the whole interval is below 1/(1+threshold), "
                    "slower when it is above 1+threshold, same when it is inside, ambiguous otherwise. "
                    "Records in one table only or not ok in one are listed (new, removed, failed in new, ...). "
                    f"Exit status {EXIT_REGRESSION} when a problem got slower or started failing its correctness "
                    "check (a regression), 1 on bad input, else 0.")
    compare.add_argument("old", type=Path, help="the reference table (JSON)")
    compare.add_argument("new", type=Path, help="the table to judge against it (JSON)")
    compare.add_argument("--threshold", type=positive_float, default=DEFAULT_THRESHOLD,
                         help=f"relative change in time that counts (default: {DEFAULT_THRESHOLD}, i.e. "
                              f"{DEFAULT_THRESHOLD * 100:.0f}%%)")  # argparse %-formats help: %% is one %
    compare.add_argument("--confidence", type=_confidence, default=DEFAULT_CONFIDENCE,
                         help=f"of the bootstrap interval (default: {DEFAULT_CONFIDENCE})")
    compare.add_argument("--resamples", type=_resamples, default=DEFAULT_RESAMPLES,
                         help=f"bootstrap resamples per problem (default: {DEFAULT_RESAMPLES})")
    compare.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED,
                         help=f"of the bootstrap: the same seed gives the same intervals (default: {DEFAULT_SEED})")
    compare.add_argument("--device", action="append", default=None, metavar="ID|OLD_ID=NEW_ID",
                         help="compare only this device, or OLD's device OLD_ID with NEW's NEW_ID (repeatable). "
                              "Default: two tables of one device each are compared whatever the ids; tables "
                              "of several devices are paired by equal id")
    compare.add_argument("--ops", type=_names, default=None, metavar="OP,...",
                         help="only these ops (gemm, conv, rnn, memory; comm for the collective timings of "
                              "`dlcb bench comm`)")
    compare.add_argument("--impl", type=_names, default=None, metavar="NAME,...",
                         help="only these implementations: full (gemm/cpu/numpy) or short (numpy) names, or "
                              "providers (ours, vendor)")
    compare.add_argument("--format", choices=("md", "csv", "json"), default="md",
                         help="md: a Markdown table, the geometric means and a tally line; csv: one row per "
                              "problem; json: rows, geometric means, settings and tally (default: md)")
    compare.add_argument("-o", "--output", type=Path, default=None,
                         help="write the comparison to this file instead of stdout")
    return compare


def run(args) -> int:
    if args.output is not None:
        require_writable(args.output)
    old_doc, new_doc = load(args.old), load(args.new)
    settings = CompareSettings(threshold=args.threshold, confidence=args.confidence, resamples=args.resamples,
                               seed=args.seed)
    result = compare_tables(old_doc, new_doc, settings, devices=args.device, ops=args.ops, impls=args.impl)
    result = {"old": str(args.old), "new": str(args.new), **result}
    text = {"md": format_markdown, "csv": format_csv, "json": format_json}[args.format](result)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output, text)
        print(f"dlcb compare: {tally_line(result)} -> {args.output}", file=sys.stderr)
    return EXIT_REGRESSION if result["regressions"] else 0


def format_json(result: dict) -> str:
    return json.dumps(result, indent=1, allow_nan=False) + "\n"


def format_csv(result: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["rows"])
    return out.getvalue()


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds / 1e-9:.4g} ns"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _device_column(result: dict) -> bool:
    """Whether rows need to say their devices: several pairs, or devices one table only has."""
    pairs = {(row["old_device"], row["new_device"]) for row in result["rows"]}
    return len(pairs | {tuple(pair) for pair in result["device_pairs"]}) > 1


def _devices(row: dict) -> str:
    old_id, new_id = row["old_device"] or "-", row["new_device"] or "-"
    return old_id if old_id == new_id else f"{old_id} → {new_id}"


def tally_line(result: dict) -> str:
    settings = result["settings"]
    counts = ", ".join(f"{count} {name}" for name, count in result["tally"].items() if count)
    pairs = "; ".join(old if old == new else f"{old} → {new}" for old, new in result["device_pairs"])
    for side, name in (("old_device", "OLD"), ("new_device", "NEW")):
        paired = {pair[side == "new_device"] for pair in result["device_pairs"]}
        alone = dict.fromkeys(row[side] for row in result["rows"] if row[side] and row[side] not in paired)
        if alone:
            pairs += f" ({', '.join(alone)} only in {name})"
    regressions = result["regressions"]
    verdict = (f"{regressions} regression{'s' if regressions != 1 else ''} (exit status {EXIT_REGRESSION})"
               if regressions else "no regression")
    return (f"{result['old']} → {result['new']} on {pairs}: {counts or 'nothing to compare'}; {verdict}. "
            f"Threshold {settings['threshold']:.1%}, {settings['confidence']:.0%} bootstrap interval of the "
            f"median-time ratio ({settings['resamples']} resamples, seed {settings['seed']}).")


def format_markdown(result: dict) -> str:
    confidence = f"{result['settings']['confidence']:.0%}"
    with_devices = _device_column(result)
    header = (["device"] if with_devices else []) + [
        "op", "problem", "impl", "dtype", "cache", "old median", "new median", "new/old", f"{confidence} CI",
        "samples old/new", "p (rank test)", "verdict", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["rows"]:
        interval = "-" if row["ci_low"] is None else f"{row['ci_low']:.3f}–{row['ci_high']:.3f}"
        verdict = f"**{row['verdict']}**" if row["verdict"] in REGRESSION_VERDICTS else row["verdict"]
        cells = ([_devices(row)] if with_devices else []) + [
            row["op"], row["problem"], row["variant"], row["dtype"], row["cache"],
            _time(row["old_median_s"]), _time(row["new_median_s"]), _number(row["ratio"]), interval,
            f"{row['old_samples']}/{row['new_samples']}",
            "-" if row["p_value"] is None else f"{row['p_value']:.2g}", verdict, row["note"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if result["geomean"]:
        header = (["device"] if with_devices else []) + ["impl", "op", "problems", "geomean new/old"]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for group in result["geomean"]:
            cells = ([_devices(group)] if with_devices else []) + [
                group["variant"], group["op"], str(group["count"]), f"{group['geomean_ratio']:.3f}"]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", tally_line(result)]
    return "\n".join(lines) + "\n"
