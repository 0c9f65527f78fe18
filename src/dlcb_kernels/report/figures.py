"""The report's figures as PNG files: rooflines, horizontal grouped bar charts and line charts.
Every measured value may carry an interval (drawn as an error bar) and a shaky mark (hatched bar,
hollow point). matplotlib is optional (extra "plot"), imported only when a figure is drawn,
through predict.plot's loader."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..predict.plot import _pyplot

PROVIDER_MARKERS = {"ours": "o", "vendor": "^"}
# Op families in a fixed order, so that a family has the same colour in every roofline
FAMILY_ORDER = ("gemm", "conv fwd", "conv bwd_data", "conv bwd_filter", "rnn fwd", "rnn bwd", "memory fwd",
                "memory bwd")
_DPI = 110
_WIDTH_IN = 10.0
SHAKY_HATCH = "///"
_SHAKY_LEGEND = "hatched, ~ or *: shaky"
_ERROR_KW = {"elinewidth": 0.8, "capsize": 2}


@dataclass(frozen=True)
class RooflinePoint:
    """One ok record: where it sits (FLOP/byte, GFLOP/s), its op family and provider; interval is
    its GFLOP/s range (low, high) or None, shaky whether it is not to be taken as fact (drawn hollow)."""

    intensity: float
    gflops: float
    family: str
    provider: str
    interval: tuple | None = None
    shaky: bool = False


@dataclass(frozen=True)
class Ceiling:
    """A roof: kind "compute" (value in GFLOP/s) or "memory" (value in GB/s); measured roofs are
    drawn solid, theoretical ones dashed."""

    kind: str
    value: float
    measured: bool
    label: str


@dataclass
class BarPanel:
    """One subplot of horizontal bars: a group of bars per row, one bar per series.

    values[series][i] is row i's bar (None: no bar); marks[series][i] is text written where a
    bar is missing (e.g. "unavailable"); intervals[series][i] an optional (low, high) error bar;
    flags[series][i] an optional shaky mark ("~", "*"): the bar is hatched and the mark written
    after it.
    """

    title: str
    rows: list
    values: dict
    marks: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)


def _colours(names) -> dict:
    """A stable colour per name, in the order given (tab10, then tab20 for long lists)."""
    names = list(dict.fromkeys(names))
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def roofline(points: list, ceilings: list, path, title: str) -> Path:
    """Writes a log-log roofline: the ceilings as lines, the records as points (marker by
    provider, colour by op family)."""
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    for ceiling in ceilings:
        if ceiling.kind not in ("compute", "memory"):
            raise ValueError(f"ceiling kind must be 'compute' or 'memory', got {ceiling.kind!r}")
        if not ceiling.value > 0:
            raise ValueError(f"ceiling {ceiling.label!r} must be positive, got {ceiling.value!r}")
    points = [p for p in points if p.intensity > 0 and p.gflops > 0]
    if not points and not ceilings:
        raise ValueError("a roofline needs points or ceilings")
    path = Path(path)
    plt = _pyplot()
    from matplotlib.lines import Line2D

    compute = [c for c in ceilings if c.kind == "compute"]
    memory = [c for c in ceilings if c.kind == "memory"]
    top = max((c.value for c in compute), default=None)
    widest_bw = max((c.value for c in memory), default=None)
    ridges = [c.value / b.value for c in compute for b in memory]
    xs = [p.intensity for p in points] + ridges
    lows = [p.interval[0] if p.interval else p.gflops for p in points]
    highs = [p.interval[1] if p.interval else p.gflops for p in points]
    x_lo = min(xs, default=1.0) / 4
    x_hi = max(xs, default=100.0) * 4
    y_hi = max(highs + [c.value for c in compute] + [b.value * x_hi for b in memory if top is None],
               default=100.0) * 2
    y_lo = min(lows + [b.value * x_lo for b in memory], default=y_hi / 1e3) / 2

    fig, ax = plt.subplots(figsize=(_WIDTH_IN, 5.6))
    try:
        handles = []
        for c in compute:
            start = c.value / widest_bw if widest_bw else x_lo   # from where the widest roof meets it
            ax.plot([start, x_hi], [c.value, c.value], color="black", linewidth=1.6,
                    linestyle="-" if c.measured else "--")
            handles.append(Line2D([], [], color="black", linestyle="-" if c.measured else "--", label=c.label))
        for b in memory:
            end = top / b.value if top else x_hi
            ax.plot([x_lo, end], [b.value * x_lo, b.value * end], color="dimgray", linewidth=1.6,
                    linestyle="-" if b.measured else "--")
            handles.append(Line2D([], [], color="dimgray", linestyle="-" if b.measured else "--", label=b.label))
        present = {p.family for p in points}
        colours = _colours([*FAMILY_ORDER, *sorted(present - set(FAMILY_ORDER))])
        colours = {family: colour for family, colour in colours.items() if family in present}
        for (family, provider) in sorted({(p.family, p.provider) for p in points}):
            chosen = [p for p in points if p.family == family and p.provider == provider]
            colour = colours[family]
            _point_errors(ax, [(p.intensity, p.gflops, p.interval) for p in chosen], colour)
            ax.scatter([p.intensity for p in chosen], [p.gflops for p in chosen], s=36, alpha=0.85,
                       marker=PROVIDER_MARKERS.get(provider, "s"),
                       facecolors=["white" if p.shaky else colour for p in chosen],
                       edgecolors=[colour if p.shaky else "black" for p in chosen],
                       linewidths=[1.4 if p.shaky else 0.4 for p in chosen], zorder=3)
        for family, colour in colours.items():
            handles.append(Line2D([], [], marker="s", linestyle="", color=colour, label=family))
        for provider in sorted({p.provider for p in points}):
            handles.append(Line2D([], [], marker=PROVIDER_MARKERS.get(provider, "s"), linestyle="",
                                  color="lightgray", markeredgecolor="black", label=provider))
        if any(p.shaky for p in points):
            handles.append(_hollow_handle())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(y_lo, y_hi)
        _plain_log_ticks(ax.xaxis, x_hi / x_lo)
        _plain_log_ticks(ax.yaxis, y_hi / y_lo)
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
    finally:
        plt.close(fig)
    return path


def _point_errors(ax, points: list, colour) -> None:
    """Vertical error bars for the points [(x, y, (low, high) or None)] that have an interval."""
    with_interval = [(x, y, interval) for x, y, interval in points if interval]
    if with_interval:
        ax.errorbar([x for x, _, _ in with_interval], [y for _, y, _ in with_interval],
                    yerr=[[y - low for _, y, (low, _) in with_interval],
                          [high - y for _, y, (_, high) in with_interval]],
                    fmt="none", ecolor=colour, alpha=0.85, zorder=2, **_ERROR_KW)


def _hollow_handle():
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="black",
                  label="hollow: shaky")


def bar_panels(panels: list, path, title: str, xlabel: str, log_scale: bool = False,
               reference: float | None = None) -> Path:
    """Writes one subplot of horizontal grouped bars per panel, stacked vertically.

    With a reference (e.g. 1.0 for speed ratios) bars start at it and a line marks it; otherwise
    they start at 0 (linear) or below the smallest value (log)."""
    if not panels:
        raise ValueError("panels must not be empty")
    if not isinstance(title, str) or not isinstance(xlabel, str):
        raise TypeError("title and xlabel must be str")
    for panel in panels:
        for what in ("values", "intervals", "flags"):
            for series, values in getattr(panel, what).items():
                if len(values) != len(panel.rows):
                    raise ValueError(f"panel {panel.title!r}: series {series!r} has {len(values)} {what} for "
                                     f"{len(panel.rows)} rows")
    path = Path(path)
    plt = _pyplot()
    everything = [v for panel in panels for values in panel.values.values() for v in values if v is not None]
    if log_scale and any(v <= 0 for v in everything):
        raise ValueError("a log-scale bar chart needs positive values")
    # the error bars' ends, so that the axis holds them too
    ends = everything + [end for panel in panels for series, intervals in panel.intervals.items()
                         for value, interval in zip(panel.values[series], intervals)
                         if value is not None and interval for end in interval]
    if reference is not None:
        baseline = reference
    elif log_scale:
        baseline = 10 ** math.floor(math.log10(min(ends) / 2)) if ends else 1.0
    else:
        baseline = 0.0
    flagged = any(flag for panel in panels for flags in panel.flags.values() for flag in flags)
    colours = _colours(s for panel in panels for s in panel.values)
    heights = [max(1, len(p.rows)) * (0.2 * max(1, len(p.values)) + 0.25) + 0.8 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(_WIDTH_IN, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    try:
        for ax, panel in zip(axes[:, 0], panels):
            if ends:   # the same scale in every panel, set before the ticks are formatted
                hi = max(ends + [baseline])
                lo = min(ends + [baseline])
                if log_scale:   # room for the error bars' caps and the shaky marks after them
                    ax.set_xscale("log")
                    ax.set_xlim(lo / 1.5, hi * (2.2 if flagged else 1.6))
                else:
                    ax.set_xlim(min(0.0, lo), hi * (1.18 if flagged else 1.12) if hi > 0 else 1.0)
            _draw_panel(ax, panel, colours, baseline, log_scale)
            ax.set_xlabel(xlabel, fontsize=9)
            if reference is not None:
                ax.axvline(reference, color="black", linewidth=1.0)
        fig.suptitle(title, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / (sum(heights) + 0.6)))
        fig.savefig(path, dpi=_DPI)
    finally:
        plt.close(fig)
    return path


def _draw_panel(ax, panel: BarPanel, colours: dict, baseline: float, log_scale: bool) -> None:
    from matplotlib.patches import Patch

    series = list(panel.values)
    n = max(1, len(series))
    bar = 0.8 / n
    for j, name in enumerate(series):
        offsets = [i + (j - (n - 1) / 2) * bar for i in range(len(panel.rows))]
        values = panel.values[name]
        intervals = panel.intervals.get(name) or [None] * len(values)
        flags = panel.flags.get(name) or [None] * len(values)
        drawn = [(y, v, interval, flag) for y, v, interval, flag in zip(offsets, values, intervals, flags)
                 if v is not None]
        if drawn:
            xerr = None
            if any(interval for _, _, interval, _ in drawn):
                xerr = [[max(0.0, v - interval[0]) if interval else 0.0 for _, v, interval, _ in drawn],
                        [max(0.0, interval[1] - v) if interval else 0.0 for _, v, interval, _ in drawn]]
            bars = ax.barh([y for y, _, _, _ in drawn], [v - baseline for _, v, _, _ in drawn], height=bar * 0.9,
                           left=baseline, color=colours[name], xerr=xerr, error_kw=_ERROR_KW)
            for patch, (y, v, interval, flag) in zip(bars.patches, drawn):
                if flag:
                    patch.set_hatch(SHAKY_HATCH)
                    patch.set_edgecolor("black")
                    patch.set_linewidth(0.5)
                    ax.text(max(v, interval[1]) if interval else v, y, f" {flag}", va="center", fontsize=8,
                            fontweight="bold")
        for y, text in zip(offsets, panel.marks.get(name, [])):
            if text:
                ax.text(baseline * (1.08 if log_scale else 1.0), y, f" {name}: {text}", va="center",
                        fontsize=7, color="firebrick", style="italic")
    ax.set_yticks(range(len(panel.rows)), panel.rows, fontsize=8)
    ax.set_ylim(len(panel.rows) - 0.5, -0.5)   # first row on top
    if log_scale:
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        _plain_log_ticks(ax.xaxis, hi / lo)
    ax.set_title(panel.title, fontsize=10, loc="left")
    ax.grid(True, axis="x", which="both", alpha=0.25)
    handles = [Patch(color=colours[name], label=name) for name in series]
    if any(flag for flags in panel.flags.values() for flag in flags):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=SHAKY_HATCH, label=_SHAKY_LEGEND))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _plain_log_ticks(axis, span: float) -> None:
    """Log-axis ticks as plain numbers (0.5, 200, 1000) rather than powers of ten. A range of few
    decades gets minor ticks labelled too: all of them under 20×, the 2s and 5s under 1000×, so
    that no axis is left with a single number on it."""
    import math

    from matplotlib.ticker import FuncFormatter, NullFormatter

    def two_and_five(value, _):
        mantissa = round(value / 10 ** math.floor(math.log10(value)))
        return f"{value:g}" if mantissa in (2, 5) else ""

    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    if span < 20:
        axis.set_minor_formatter(plain)
    elif span < 1000:
        axis.set_minor_formatter(FuncFormatter(two_and_five))
    else:
        axis.set_minor_formatter(NullFormatter())
    axis.set_tick_params(which="minor", labelsize=7)


@dataclass(frozen=True)
class Series:
    """One line of a line chart: measured points (xs, ys) drawn with markers, or a model's curve
    drawn with `model_style` ("--", ":") and no markers. A measured point may have an interval
    (low, high) drawn as an error bar, and be shaky (drawn hollow)."""

    label: str
    xs: list
    ys: list
    model_style: str | None = None
    intervals: list | None = None
    shaky: list | None = None


def line_chart(series: list, path, title: str, xlabel: str, ylabel: str, log_y: bool = True) -> Path:
    """Lines over a log-x axis (message sizes), one colour per label: measured series with markers,
    model series in the colour of the measured series whose label starts with the same word."""
    if not series:
        raise ValueError("series must not be empty")
    for s in series:
        if len(s.xs) != len(s.ys) or not s.xs:
            raise ValueError(f"series {s.label!r} needs equal, non-empty xs and ys")
        for what in ("intervals", "shaky"):
            if getattr(s, what) is not None and len(getattr(s, what)) != len(s.xs):
                raise ValueError(f"series {s.label!r} needs as many {what} as points")
    path = Path(path)
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, LogLocator

    colours = _colours(s.label.split(" ")[0] for s in series)
    fig, ax = plt.subplots(figsize=(_WIDTH_IN * 0.75, 4.6))
    try:
        for s in series:
            colour = colours[s.label.split(" ")[0]]
            if s.model_style:
                ax.plot(s.xs, s.ys, linestyle=s.model_style, linewidth=1.3, color=colour, label=s.label)
            else:
                ax.plot(s.xs, s.ys, marker="o", markersize=3.5, linewidth=1.0, color=colour, label=s.label)
                _point_errors(ax, list(zip(s.xs, s.ys, s.intervals or [None] * len(s.xs))), colour)
                shaky = [(x, y) for x, y, unsure in zip(s.xs, s.ys, s.shaky or []) if unsure]
                if shaky:
                    ax.plot([x for x, _ in shaky], [y for _, y in shaky], marker="o", markersize=5,
                            linestyle="", markerfacecolor="white", markeredgecolor=colour, zorder=3)
        ax.set_xscale("log", base=2)
        # A labelled tick every ×16 (1, 16, 256, 4K, ...): every power of two would crowd the axis.
        ax.xaxis.set_major_locator(LogLocator(base=16))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _size_label(v)))
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        handles, _ = ax.get_legend_handles_labels()
        if any(s.shaky and any(s.shaky) for s in series):
            handles.append(_hollow_handle())
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        fig.savefig(path, dpi=_DPI)
    finally:
        plt.close(fig)
    return path


def _size_label(nbytes: float) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:g}{unit}"
    return f"{nbytes:g}"
