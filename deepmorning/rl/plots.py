"""Learning curves of ``rl`` runs (``deepmorning results plot DIR`` calls :func:`plot_run`)."""

from __future__ import annotations

from pathlib import Path

from deepmorning.platform.plots import figure, save
from deepmorning.platform.rundir import RunDir


def plot_run(run: RunDir) -> list[Path]:
    """``learning_curve.png``: training episode return (line) and evaluations (markers)."""
    df = run.read_table("progress.csv")
    if df.empty or "env_steps" not in df.columns:
        return []
    cfg = run.config
    fig, ax = figure(f"{cfg.get('algo', 'rl')} on {cfg.get('env', '?')}", "env steps", "return")
    train = df.dropna(subset=["episode_return_mean"])
    ax.plot(train["env_steps"], train["episode_return_mean"], label="training episodes")
    if "eval_return_mean" in df.columns:
        ev = df.dropna(subset=["eval_return_mean"])
        if not ev.empty:
            ax.errorbar(ev["env_steps"], ev["eval_return_mean"], yerr=ev["eval_return_std"],
                        marker="o", capsize=3, label="evaluation")
    ax.legend()
    _wall_clock_axis(ax, df)
    return [save(fig, run.path / "learning_curve.png")]


def _wall_clock_axis(ax, df) -> None:
    """A top axis in wall-clock hours (the run's own ``wall_s``, resumes included), so one plot
    answers both "after how many steps" and "after how long"."""
    import numpy as np

    if "wall_s" not in df.columns or len(df) < 2:
        return
    steps = df["env_steps"].to_numpy(dtype=float)
    hours = df["wall_s"].to_numpy(dtype=float) / 3600.0
    if not (np.all(np.diff(steps) > 0) and np.all(np.diff(hours) >= 0)):
        return
    top = ax.secondary_xaxis("top", functions=(lambda x: np.interp(x, steps, hours),
                                               lambda h: np.interp(h, hours, steps)))
    top.set_xlabel("wall-clock hours")
