"""Plots of a NAS run: rewards over the search, and accuracy against model size."""

from __future__ import annotations

from pathlib import Path

from deepmorning.platform.plots import figure, save
from deepmorning.platform.rundir import RunDir


def plot_run(run: RunDir) -> list[Path]:
    """Draw the plots of a search run (history.csv) or a final-training run (train.csv)."""
    train = run.read_table("train.csv")
    if not train.empty:
        column = "val_ppl" if "val_ppl" in train else "val_acc"
        label = "validation perplexity" if column == "val_ppl" else "validation accuracy"
        fig, ax = figure("Final training of the best architecture", "epoch", label)
        ax.plot(train["epoch"], train[column], marker="o")
        return [save(fig, run.path / "train_curve.png")]
    df = run.read_table("history.csv")
    if df.empty:
        return []
    ok = df[df["status"] == "ok"].sort_values("child_id")
    paths = []
    if not ok.empty:
        fig, ax = figure("Reward per child (Zoph & Le 2017 search)", "child id (order sampled)",
                         "reward")
        ax.scatter(ok["child_id"], ok["reward"], s=12, alpha=0.6, label="child reward")
        ax.plot(ok["child_id"], ok["reward"].cummax(), color="C1", label="running best")
        if ok["baseline"].notna().any():
            ax.plot(ok["child_id"], ok["baseline"], color="C2", label="baseline (EMA)")
        window = max(2, len(ok) // 10)
        ax.plot(ok["child_id"], ok["reward"].rolling(window, min_periods=1).mean(), color="C3",
                alpha=0.8, label=f"mean of last {window}")
        ax.legend()
        paths.append(save(fig, run.path / "rewards.png"))
        if ok["params"].astype(float).gt(0).any() and ok["val_acc"].notna().any():
            fig, ax = figure("Validation accuracy vs parameters", "parameters",
                             "validation accuracy")
            sc = ax.scatter(ok["params"], ok["val_acc"], c=ok["child_id"], cmap="viridis", s=16)
            fig.colorbar(sc, ax=ax, label="child id")
            ax.set_xscale("log")
            paths.append(save(fig, run.path / "accuracy_vs_params.png"))
    return paths
