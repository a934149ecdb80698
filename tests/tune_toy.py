"""A tiny Tune model for the runner's tests: 1-D linear regression by SGD, seconds per trial.

Loaded with ``DEEPMORNING_TUNE_MODULES=tune_toy`` (and ``tests/`` on ``PYTHONPATH``), it follows
the trainable contract of :mod:`deepmorning.tuning.registry` like a real model: seeded data,
one report per epoch with a checkpoint, restore from the latest checkpoint, pictures from a
checkpoint. ``TUNE_TOY_LOG`` names a file that gets one line per epoch actually trained
(``trial_id epoch``), so tests can tell a resumed trial from a re-run one (``TUNE_TOY_NODE_LOG``:
the same lines with the Ray node id added); ``sleep`` slows an
epoch down so a test can kill the driver mid-run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ray import tune

from deepmorning.tuning import registry, trial, verdict

SPACE = {
    "epochs": 4,
    "lr": tune.loguniform(1e-3, 0.3),
    "steps": tune.choice([2, 8]),
    "slope": 3.0,
    "sleep": 0.0,
    "fail": False,
}
QUICK = {"epochs": 3}


def data(seed: int, slope: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(64, 1, generator=g) * 2 - 1
    return x, slope * x + 0.05 * torch.randn(64, 1, generator=g)


def _log(epoch: int) -> None:
    path = os.environ.get("TUNE_TOY_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{tune.get_context().get_trial_id()} {epoch}\n")
    path = os.environ.get("TUNE_TOY_NODE_LOG")
    if path:  # the same with the Ray node the epoch ran on
        import ray

        with open(path, "a") as fh:
            fh.write(f"{tune.get_context().get_trial_id()} {epoch} "
                     f"{ray.get_runtime_context().get_node_id()}\n")


def train(config: dict[str, Any]) -> None:
    dev = trial.device()
    trial.set_threads()
    trial.seed_everything(config["seed"])
    x, y = (t.to(dev) for t in data(config["seed"], config["slope"]))
    model = torch.nn.Linear(1, 1).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    start = 0
    state = trial.restore()
    if state:
        model.load_state_dict(state["model"])
        trial.load_optimizer(opt, state["opt"])
        start = int(state["epoch"])
    if config["fail"]:
        raise RuntimeError("toy failure on purpose")
    for epoch in range(start + 1, config["epochs"] + 1):
        for _ in range(config["steps"]):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        with torch.no_grad():
            loss = torch.nn.functional.mse_loss(model(x), y).item()
        time.sleep(config["sleep"])
        _log(epoch)
        trial.report({"epoch": epoch, "loss": loss, "weight": model.weight.item(),
                      "device": dev.type, "lr_used": opt.param_groups[0]["lr"]},
                     {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch})


def pictures(config: Mapping[str, Any], checkpoint: Path, folder: Path, tag: str) -> list[Path]:
    """The fitted line over the data, from the checkpoint's weights."""
    from deepmorning.platform import plots

    state = trial.load_state(checkpoint)
    x, y = data(config["seed"], config["slope"])
    model = torch.nn.Linear(1, 1)
    model.load_state_dict(state["model"])
    fig, ax = plots.figure(f"toy fit ({tag}, epoch {state['epoch']})", "x", "y")
    ax.scatter(x.squeeze(), y.squeeze(), s=8)
    xs = torch.linspace(-1, 1, 20).unsqueeze(1)
    with torch.no_grad():
        ax.plot(xs.squeeze(), model(xs).squeeze(), color="black")
    return [plots.save(fig, folder / f"toy-{tag}.png")]


def _large_lr_wins(results: Any) -> verdict.Outcome:
    return verdict.paired(results, "loss", "large", "small", mode="min")


STUDIES = {
    "lr": registry.Study(
        name="lr", claim="A larger step size fits the line in fewer steps.",
        arms={"small": {"lr": 0.003}, "large": {"lr": 0.2}}, metric="loss", mode="min",
        paper="toy study: no paper (the runner's test)", verdict=_large_lr_wins,
        base={"steps": 4}, paper_scale={"epochs": 6}, columns=("weight",)),
}

MODEL = registry.register(registry.TuneModel(
    name="toy", description="1-D linear regression by SGD (the runner's test model)",
    paper="none", trainable=train, space=SPACE, metric="loss", mode="min", quick=QUICK,
    studies=STUDIES, pictures=pictures))
