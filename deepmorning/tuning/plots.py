"""Plots of a Tune run, drawn from its tables alone (``deepmorning results plot DIR``).

- ``curves.png``: the metric per epoch of every trial; the best trial in bold. In a claim study
  each arm has its colour, seeds are thin lines and the arm's mean over seeds is thick.
- ``claim.png`` (studies): the metric of every seed per arm (dots) and the arm's mean ± std
  (bar), the comparison the claim is about at a glance.

The model's own pictures (from the best checkpoint) are written by the runner, not here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepmorning.platform import plots
from deepmorning.platform.rundir import RunDir

EPOCHS = "epochs.csv"
CLAIM = "claim.csv"
MAX_LEGEND = 12  # trials named in the legend of curves.png


def plot_run(run: RunDir) -> list[Path]:
    """Redraw the run's PNGs; returns the paths written."""
    cfg = run.config
    metric, mode = cfg["metric"], cfg["mode"]
    epochs = run.read_table(EPOCHS)
    written = []
    best = _best_trial(run)
    labels = trial_labels(run.read_table("results.csv"), cfg.get("searched", []))
    if cfg.get("study"):
        path = study_curves(epochs, metric, run.path / "curves.png",
                            f"{cfg['model']} · {cfg['study']}: {metric} per epoch")
        written.append(path)
        claim = run.read_table(CLAIM)
        # the claim is judged on the study's metric (e.g. basics/batchnorm: steps_to_target)
        written.append(claim_plot(claim, cfg.get("study_metric", metric),
                                  cfg.get("study_mode", mode), run.path / "claim.png",
                                  f"{cfg['model']} · {cfg['study']}"))
    else:
        written.append(curves(epochs, metric, mode, run.path / "curves.png",
                              f"{cfg['model']}: {metric} per epoch of each trial", best, labels))
    return [p for p in written if p is not None]


def _best_trial(run: RunDir) -> str | None:
    path = run.path / "best.json"
    if not path.is_file():
        return None
    from deepmorning.platform.rundir import read_json

    return read_json(path).get("trial_id")


def trial_labels(results: pd.DataFrame, searched: list[str]) -> dict[str, str]:
    """trial id -> "lr=0.01 steps=8" (its searched values), for the legend."""
    labels = {}
    for row in results.to_dict("records") if not results.empty else []:
        values = [f"{k}={_short(row[f'config/{k}'])}" for k in searched if f"config/{k}" in row]
        labels[str(row["trial_id"])] = " ".join(values)
    return labels


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def curves(epochs: pd.DataFrame, metric: str, mode: str, path: Path, title: str,
           best: str | None = None, labels: dict[str, str] | None = None) -> Path | None:
    if epochs.empty or metric not in epochs or "epoch" not in epochs:
        return None
    fig, ax = plots.figure(title, "epoch", f"{metric} ({'higher' if mode == 'max' else 'lower'}"
                           " is better)")
    labels = labels or {}
    trials = list(epochs.groupby("trial_id", sort=False))
    legend = len(trials) <= MAX_LEGEND
    for trial, part in trials:
        part = part.sort_values("epoch")
        text = f"{trial} {labels.get(str(trial), '')}".strip()
        if str(trial) == str(best):
            ax.plot(part["epoch"], part[metric], "o-", color="black", lw=2.5, ms=4, zorder=3,
                    label=f"best: {text}")
        else:
            ax.plot(part["epoch"], part[metric], "o-", lw=1, ms=3, alpha=0.7,
                    label=text if legend else None)
    _integer_epochs(ax, epochs["epoch"])
    if legend or best is not None:
        ax.legend(loc="best", fontsize="small")
    return plots.save(fig, path)


def _integer_epochs(ax, epochs: pd.Series) -> None:
    from matplotlib.ticker import MaxNLocator

    first, last = int(epochs.min()), int(epochs.max())
    if last - first <= 15:
        ax.set_xticks(range(first, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(first - 0.5, last + 0.5)


def study_curves(epochs: pd.DataFrame, metric: str, path: Path, title: str) -> Path | None:
    if epochs.empty or metric not in epochs or "arm" not in epochs:
        return None
    fig, ax = plots.figure(title, "epoch", metric)
    colours = plots.plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, part) in enumerate(epochs.groupby("arm", sort=False)):
        colour = colours[i % len(colours)]
        for _, seed_part in part.groupby("seed"):
            seed_part = seed_part.sort_values("epoch")
            ax.plot(seed_part["epoch"], seed_part[metric], color=colour, lw=0.8, alpha=0.4)
        mean = part.groupby("epoch")[metric].mean()
        ax.plot(mean.index, mean.values, "o-", color=colour, lw=2.5, ms=4,
                label=f"{arm} (mean of {part['seed'].nunique()} seeds)")
    _integer_epochs(ax, epochs["epoch"])
    ax.legend(loc="best")
    return plots.save(fig, path)


def claim_plot(claim: pd.DataFrame, metric: str, mode: str, path: Path, title: str
               ) -> Path | None:
    if claim.empty or metric not in claim:
        return None
    done = claim[claim["status"] == "TERMINATED"] if "status" in claim else claim
    arms = list(dict.fromkeys(claim["arm"]))
    fig, ax = plots.figure(title, "arm", f"{metric} ({'higher' if mode == 'max' else 'lower'} "
                           "is better)", size=(max(4.0, 1.6 * len(arms) + 2), 4.5))
    for i, arm in enumerate(arms):
        values = pd.to_numeric(done.loc[done["arm"] == arm, metric], errors="coerce").dropna()
        if values.empty:
            continue
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.bar(i, values.mean(), yerr=std, width=0.6, alpha=0.35, capsize=6)
        ax.scatter([i] * len(values), values, color="black", zorder=3, s=18)
    ax.set_xticks(range(len(arms)), arms)
    return plots.save(fig, path)
