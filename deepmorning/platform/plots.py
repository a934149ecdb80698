"""Small matplotlib helpers shared by the areas' plotters (headless: the Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure(title: str, xlabel: str, ylabel: str, size: tuple[float, float] = (8, 4.5)):
    fig, ax = plt.subplots(figsize=size, dpi=110)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def line_plot(df, x: str, ys: Sequence[str], path: Path, title: str, ylabel: str = "",
              xlabel: str | None = None) -> Path | None:
    """Plot columns ``ys`` of ``df`` against ``x``; skip columns that are absent or empty."""
    present = [y for y in ys if y in df.columns and df[y].notna().any()]
    if df.empty or x not in df.columns or not present:
        return None
    fig, ax = figure(title, xlabel or x, ylabel or ", ".join(present))
    for y in present:
        ax.plot(df[x], df[y], label=y)
    if len(present) > 1:
        ax.legend()
    return save(fig, path)
