"""What every trainable does the same way: device, seeding, threads, report and restore.

A trainable reads top to bottom with these::

    def train(config):
        dev = trial.device()
        trial.seed_everything(config["seed"])
        model, opt = build(config), ...
        state = trial.restore()                    # None on a fresh start
        start = 0
        if state:
            model.load_state_dict(state["model"]); trial.load_optimizer(opt, state["opt"])
            start = state["epoch"]
        for epoch in range(start + 1, config["epochs"] + 1):
            ...
            trial.report({"epoch": epoch, "psnr": p},
                         {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch})

Checkpoints are one ``state.pt`` file written with ``torch.save`` and read back with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "state.pt"


def device() -> torch.device:
    """CUDA when Ray gave this trial a GPU (``--gpus-per-trial`` > 0), else CPU.

    Ray does not hide GPUs from trials that asked for none, so a visible GPU alone is not
    enough: a zero-GPU trial stays on the CPU.
    """
    import ray

    try:
        gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    except Exception:  # noqa: BLE001 - outside a Ray worker
        gpus = []
    if gpus and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def set_threads(cpus: float | None = None) -> None:
    """Use as many torch threads as CPUs the trial was given (Ray sets OMP_NUM_THREADS)."""
    n = cpus or int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    torch.set_num_threads(max(1, int(n)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def report(metrics: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> None:
    """``ray.tune.report`` the metrics, with ``state`` as the trial's checkpoint if given."""
    from ray import tune

    clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    if state is None:
        tune.report(clean)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(dict(state), Path(tmp) / STATE_FILE)
        tune.report(clean, checkpoint=tune.Checkpoint.from_directory(tmp))


def restore() -> dict[str, Any] | None:
    """The state of the trial's latest checkpoint, or None on a fresh start."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        return load_state(Path(path))


def load_optimizer(opt: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Load an optimizer's saved moments but keep the hyperparameters the config just gave it.

    ``Optimizer.load_state_dict`` also restores each group's ``lr``, ``weight_decay``, betas…
    from the checkpoint, which would undo what PBT changed when it copied a better trial's
    checkpoint into this one with a mutated config (Jaderberg et al. 2017, "exploit/explore").
    """
    fresh = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    opt.load_state_dict(dict(saved))
    for group, hyper in zip(opt.param_groups, fresh, strict=True):
        group.update(hyper)


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read ``state.pt`` from a checkpoint directory (safe: ``weights_only=True``)."""
    file = Path(path) / STATE_FILE
    return torch.load(file, map_location=map_location, weights_only=True)
