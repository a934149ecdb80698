"""``deepmorning tune MODEL --mlflow``: one MLflow run per study, a child run per trial.

The study's own run (params: the run's config; at the end the summary figures and the run
directory's tables, plots and claim) is opened by :class:`deepmorning.platform.tracking.MLflowPlan`
like a NAS or RL run. :class:`MLflowTrials`, a Tune ``Callback`` run in the driver, gives every
trial a child run (tag ``mlflow.parentRunId``, named ``trial_<id>`` like its folder in
``RUN/tune``): the trial's config as params, every reported result as metrics at its
``training_iteration``, and when the trial ends its ``result.json``, ``progress.csv``,
``params.json`` (and ``error.txt``) as artifacts.

Ray's ``MLflowLoggerCallback`` logs a run per trial too, but with no parent run and a new run
for every trial of a resumed experiment; this one finds a resumed trial's run again (by its
``deepmorning.trial_id`` tag). Tune restores an experiment's callbacks with it, so a resumed
study logs where it logged before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.result import AUTO_RESULT_KEYS, TRAINING_ITERATION

from deepmorning.platform.tracking import MLflow

TRIAL_TAG = "deepmorning.trial_id"
TRIAL_FILES = (".json", ".csv", ".txt")


class MLflowTrials(Callback):
    """Child runs of the study's MLflow run ``parent_run_id``; see the module docstring."""

    def __init__(self, uri: str, parent_run_id: str, experiment_id: str) -> None:
        self.uri, self.parent_run_id, self.experiment_id = uri, parent_run_id, experiment_id
        self._parent: MLflow | None = None
        self._runs: dict[str, MLflow] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment
        return {
            "uri": self.uri,
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "_parent": None,
            "_runs": {},
        }

    def _known(self) -> dict[str, MLflow]:
        """The trials' runs, found again under the parent when the study is resumed."""
        if self._parent is None:
            self._parent = MLflow(self.uri, self.parent_run_id)
            found = self._parent.call(
                self._parent.client.search_runs,
                [self.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
            )
            for run in found or []:
                trial_id = run.data.tags.get(TRIAL_TAG)
                if trial_id:
                    self._runs[trial_id] = MLflow(self.uri, run.info.run_id)
        return self._runs

    def _run_of(self, trial: Any) -> MLflow | None:
        runs = self._known()
        if trial.trial_id not in runs:
            parent = self._parent
            created = parent.call(
                parent.client.create_run,
                self.experiment_id,
                run_name=f"trial_{trial.trial_id}",
                tags={"mlflow.parentRunId": self.parent_run_id, TRIAL_TAG: trial.trial_id},
            )
            if created is None:
                return None
            runs[trial.trial_id] = MLflow(self.uri, created.info.run_id)
            runs[trial.trial_id].params(trial.config)
        return runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_of(trial)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        run = self._run_of(trial)
        if run is not None:
            step = int(result.get(TRAINING_ITERATION, 0))
            run.scalars(step, {k: v for k, v in result.items() if k not in AUTO_RESULT_KEYS})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, "FAILED")

    def _end(self, trial: Any, status: str) -> None:
        run = self._run_of(trial)
        if run is None:
            return
        if trial.local_path and Path(trial.local_path).is_dir():
            run.artifacts(Path(trial.local_path), TRIAL_FILES)
        run.end(status)
