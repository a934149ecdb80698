"""Run a Tune model's trainable for a short step through a real ``ray.tune.Tuner``.

Model tests use this before (and independently of) the study runner: it proves the trainable
follows the contract of :mod:`deepmorning.tuning.registry` — it reports ``epoch`` and the
model's metric each epoch through ``ray.tune.report`` and leaves a checkpoint that
:func:`deepmorning.tuning.trial.load_state` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from deepmorning.tuning import registry


def fixed(space: dict[str, Any]) -> dict[str, Any]:
    """The space with every searched domain replaced by a sample (seeded by the caller)."""
    return {k: (v.sample() if isinstance(v, tune.search.sample.Domain) else v)
            for k, v in space.items()}


def run_step(model_name: str, storage: Path, **overrides: Any):
    """One trial of MODEL with its quick overrides plus ``overrides``; returns the Result."""
    model = registry.get(model_name)
    config = {**fixed(dict(model.space)), **dict(model.quick), "seed": 0, **overrides}
    tuner = tune.Tuner(
        model.trainable,
        param_space=config,
        tune_config=tune.TuneConfig(metric=model.metric, mode=model.mode, num_samples=1),
        run_config=tune.RunConfig(storage_path=str(storage), name="step", verbose=0),
    )
    grid = tuner.fit()
    result = grid[0]
    if result.error is not None:
        raise result.error
    return result
