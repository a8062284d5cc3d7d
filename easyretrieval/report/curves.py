"""Training curves as one PNG: panels of (x, y) series drawn with matplotlib (no display needed)."""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from easyretrieval.atomic_files import write_atomic  # noqa: E402


@dataclass
class Panel:
    """One plot: `series` maps a label to its points (x, y); markers when the points are few (epochs)."""

    title: str
    xlabel: str
    series: Dict[str, Sequence[Tuple[float, float]]] = field(default_factory=dict)
    log_y: bool = False


def plot_curves(path: str, panels: List[Panel], title: str = "") -> str:
    """Draw the panels side by side into `path` (PNG, written atomically); empty panels are skipped."""
    panels = [p for p in panels if any(len(points) for points in p.series.values())]
    if not panels:
        raise ValueError("no points to plot")
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for label, points in panel.series.items():
            if not len(points):
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=label, marker="o" if len(points) <= 30 else None, linewidth=1.2)
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        if panel.log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    try:
        write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    finally:
        plt.close(figure)
    return path
