"""Scaling plots in the cookbook's style: batch time against the number of GPUs, one line per
per-GPU batch size. matplotlib is optional (extra "plot") and imported only here, when asked."""

from __future__ import annotations

from pathlib import Path

PLOT_INSTALL_HINT = "install dlcb-kernels[plot] (matplotlib) to write plots"


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"matplotlib is not installed: {PLOT_INSTALL_HINT}") from None
    matplotlib.use("Agg")   # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def plot_scaling(rows, path, title: str, scaling: str = "weak") -> Path:
    """Writes batch time (ms) against workers from data_parallel's rows, one line per batch:
    the per-worker batch for weak scaling, the global batch for strong scaling."""
    if scaling not in ("weak", "strong"):
        raise ValueError(f"scaling must be 'weak' or 'strong', got {scaling!r}")
    if not rows:
        raise ValueError("rows must not be empty")
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    path = Path(path)
    plt = _pyplot()
    lines: dict[int, list] = {}
    strong = scaling == "strong"
    for row in rows:
        lines.setdefault(row.global_batch if strong else row.batch, []).append(row)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    try:
        for batch, line in lines.items():
            line.sort(key=lambda row: row.workers)
            ax.plot([row.workers for row in line], [row.step_s * 1e3 for row in line], marker="o",
                    label=f"{'global' if strong else 'per-worker'} batch {batch}")
        workers = sorted({row.workers for row in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(p) for p in workers])
        ax.set_xlabel("workers (GPUs or hosts)")
        ax.set_ylabel("batch time (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
