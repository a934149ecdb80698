"""Evaluation curves of DDPG's ``paper`` preset on InvertedPendulum-v5, batch norm on and off.

Reads the raw ``progress.csv`` copies in ``benchmarks/results/`` (docs/ddpg.md, "MuJoCo") and
writes ``docs/img/ddpg_inverted_pendulum.png``::

    python benchmarks/plot_ddpg_inverted_pendulum.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GROUPS = {
    "paper preset, batch norm off": "ddpg_inverted_pendulum_seed*.csv",
    "paper preset exactly (batch norm on)": "ddpg_inverted_pendulum_batchnorm_seed*.csv",
}


def main(out: Path = ROOT / "docs" / "img" / "ddpg_inverted_pendulum.png") -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (title, pattern) in zip(axes, GROUPS.items(), strict=True):
        for path in sorted(RESULTS.glob(pattern)):
            rows = pd.read_csv(path).dropna(subset=["eval_return_mean"])
            seed = path.stem.rsplit("seed", 1)[1]
            ax.plot(rows["env_steps"], rows["eval_return_mean"], marker=".", label=f"seed {seed}")
        ax.axhline(900, color="grey", linestyle="--", linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("env steps")
        ax.legend(loc="center right", fontsize=8)
    axes[0].set_ylabel("evaluation return (10 episodes, no noise)")
    fig.suptitle("DDPG on InvertedPendulum-v5 (Lillicrap et al. 2015, section 7 settings)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    print(main())
