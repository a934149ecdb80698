"""The paper's last step: retrain the best architecture found, for longer, and test it.

Zoph & Le (2017, Sec. 4.1) retrain the best architectures after the search and report test
error. We train the best child of a search with the search's child settings for more epochs
(4x by default), as one Ray task that asks for a GPU when the cluster has one, and report
validation and test accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ray

from deepmorning.nas.child import ChildConfig, fit
from deepmorning.nas.config import NASConfig
from deepmorning.nas.space import Architecture
from deepmorning.platform import console
from deepmorning.platform.rundir import RunDir, open_or_create, read_json


def _train(arch_dict: dict, cfg: NASConfig, child: ChildConfig) -> dict[str, Any]:
    from deepmorning.nas.data import load_dataset

    data = load_dataset(cfg.dataset, seed=cfg.seed, limit=cfg.data_limit)
    return fit(Architecture.from_dict(arch_dict), data, child, test=True)


def train_best(source: RunDir, *, epochs: int | None, output: str | Path | None,
               gpus: bool) -> dict[str, Any]:
    cfg = NASConfig.from_dict(source.config)
    best = read_json(source.path / "best.json")
    child = dataclasses.replace(cfg.child, epochs=epochs or 4 * cfg.child.epochs,
                                trainer="torch", threads=max(1, int(cfg.cpus_per_child)))
    run, _ = open_or_create(
        group="nas", name="train",
        config={"search": source.location, "architecture": best["arch"],
                "child": dataclasses.asdict(child), "dataset": cfg.dataset},
        output=output or source.join("final"), resume=None,
    )
    arch = Architecture.from_dict(best["arch"])
    console.console.print(f"training {arch.summary()} for {child.epochs} epochs on "
                          f"{cfg.dataset}")
    task = ray.remote(_train).options(num_cpus=max(1, cfg.cpus_per_child),
                                      num_gpus=1 if gpus else 0)
    result = ray.get(task.remote(best["arch"], cfg, child))
    run.append_rows("train.csv", [{"epoch": i + 1, "val_acc": acc}
                                  for i, acc in enumerate(result["val_curve"])])
    summary = {
        "architecture": arch.summary(),
        "epochs": child.epochs,
        "params": result["params"],
        "val_acc": result["val_acc"],
        "test_acc": result["test_acc"],
        "search_val_acc": best.get("val_acc"),
    }
    from deepmorning.nas.plots import plot_run

    plot_run(run)
    run.finish(summary)
    console.print_kv("final training", summary)
    console.console.print(f"run directory: {run.location}")
    return summary
