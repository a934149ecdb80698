"""The paper's last step: retrain the best architecture found, for longer, and test it.

Zoph & Le (2017, Sec. 4.1) retrain the best architectures after the search and report test
error (test perplexity for a recurrent cell, Sec. 4.2). We train the best child of a search with
the search's child settings for more epochs (4x by default), as one Ray task that asks for a GPU
when the cluster has one (and then fails rather than fall back to the CPU if torch cannot use
it), and report validation and test accuracy (perplexity for a cell) of one model: the weights
of the epoch whose validation figure is reported (``val_epoch``; for a CNN the best of the last
``reward_window`` epochs, as in the search's reward; for a cell the lowest perplexity), not a
validation figure picked across epochs beside the last epoch's test figure.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ray
import torch

from deepmorning.nas.child import ChildConfig, child_seed, fit
from deepmorning.nas.config import NASConfig
from deepmorning.nas.space import Architecture
from deepmorning.nas.spaces import arch_from_dict
from deepmorning.platform import console
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir, open_or_create, read_json


def _train(arch_dict: dict, cfg: NASConfig, child: ChildConfig) -> dict[str, Any]:
    if cfg.search_space == "rnn":  # a cell: a language model, scored by perplexity
        from deepmorning.nas.cell import CellArchitecture
        from deepmorning.nas.child import child_device
        from deepmorning.nas.lm import fit_lm
        from deepmorning.nas.text import load_corpus

        corpus = load_corpus(cfg.dataset, limit=cfg.data_limit)
        torch.set_num_threads(max(1, child.threads))
        return fit_lm(CellArchitecture.from_dict(arch_dict), corpus, child, cfg.lm,
                      child_device(child.gpus), test=True)
    from deepmorning.nas.data import load_dataset

    data = load_dataset(cfg.dataset, seed=cfg.seed, limit=cfg.data_limit)
    return fit(Architecture.from_dict(arch_dict), data, child, test=True)


def train_best(source: RunDir, *, epochs: int | None, output: str | Path | None,
               gpus: int) -> dict[str, Any]:
    cfg = NASConfig.from_dict(source.config)
    best = read_json(source.path / "best.json")
    child = dataclasses.replace(cfg.child, epochs=epochs or 4 * cfg.child.epochs,
                                trainer="torch", threads=max(1, int(cfg.cpus_per_child)),
                                gpus=gpus, seed=child_seed(cfg.seed, int(best["child_id"])))
    run, _ = open_or_create(
        group="nas", name="train",
        config={"search": source.location, "architecture": best["arch"],
                "child": dataclasses.asdict(child), "dataset": cfg.dataset},
        output=output or source.join("final"), resume=None,
    )
    arch = arch_from_dict(best["arch"])
    console.console.print(f"training {arch.summary()} for {child.epochs} epochs on "
                          f"{cfg.dataset}")
    task = ray.remote(_train).options(num_cpus=max(1, cfg.cpus_per_child), num_gpus=gpus)
    try:
        result = ray.get(task.remote(best["arch"], cfg, child))
    except ray.exceptions.RayTaskError as exc:  # e.g. a GPU torch cannot use: one line
        raise DeepmorningError(f"final training failed: {str(exc).strip().splitlines()[-1]}"
                               ) from None
    metric = "ppl" if cfg.search_space == "rnn" else "acc"
    run.append_rows("train.csv", [{"epoch": i + 1, f"val_{metric}": value}
                                  for i, value in enumerate(result["val_curve"])])
    summary = {
        "architecture": arch.summary(),
        "epochs": child.epochs,
        "params": result["params"],
        f"val_{metric}": result[f"val_{metric}"],
        f"test_{metric}": result[f"test_{metric}"],
        "val_epoch": result["val_epoch"],  # the epoch whose weights both figures are of
        f"search_val_{metric}": best.get(f"val_{metric}"),
    }
    from deepmorning.nas.plots import plot_run

    plot_run(run)
    run.finish(summary)
    console.print_kv("final training", summary)
    console.console.print(f"validation and test {metric} are of the same model: the weights "
                          f"after epoch {summary['val_epoch']} of {child.epochs}")
    console.console.print(f"run directory: {run.location}")
    return summary
