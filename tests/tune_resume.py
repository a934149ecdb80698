"""Run a Tune model's trainable through a failure and Tune's retry from the last checkpoint.

Model tests use this to prove ``trial.restore`` works: the retried trial must continue from its
checkpoint (report epoch 2 only) and end exactly where an uninterrupted trial ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from tune_step import fixed

from deepmorning.tuning import registry


def run_resumed(model_name: str, storage: Path, **overrides: Any):
    """Two trials of MODEL for 2 epochs, one of which fails after its first epoch's checkpoint.

    Tune retries the failed trial from that checkpoint (``FailureConfig(max_failures=1)``),
    so a trainable that honours ``trial.restore`` continues with epoch 2 and ends exactly where
    the uninterrupted trial ends. Returns {False: uninterrupted Result, True: resumed Result}.
    """
    model = registry.get(model_name)
    marker = storage / "failed-once"

    def flaky(config: dict[str, Any]) -> None:
        if config["flaky"] and not marker.exists():
            model.trainable({**config, "epochs": 1})
            marker.touch()
            raise RuntimeError("killed after the first epoch")
        model.trainable(config)

    config = {**fixed(dict(model.space)), **dict(model.quick), "seed": 0, **overrides,
              "epochs": 2, "flaky": tune.grid_search([False, True])}
    tuner = tune.Tuner(
        flaky,
        param_space=config,
        tune_config=tune.TuneConfig(metric=model.metric, mode=model.mode),
        run_config=tune.RunConfig(storage_path=str(storage), name="resume", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    grid = tuner.fit()
    assert marker.exists(), "the flaky trial never failed"
    results = {r.config["flaky"]: r for r in grid}
    for r in results.values():
        if r.error is not None:
            raise r.error
    return results
