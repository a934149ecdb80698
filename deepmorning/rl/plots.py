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
    return [save(fig, run.path / "learning_curve.png")]
