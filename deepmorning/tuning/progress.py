"""The live line of a Tune run (trials running/done, best so far, ETA) and its dashboard gauges.

Tune's own output (the experiment banner and the periodic tables of every trial) is replaced:
:class:`SilentReporter` reports nothing, and :class:`TuneProgress`, a Tune ``Callback`` run in
the driver, draws one :class:`deepmorning.platform.console.ProgressLine` and drives the
``deepmorning_tune_*`` gauges of :mod:`deepmorning.platform.metrics`.

Both objects go into the RunConfig that Tune pickles into the experiment folder, so they hold
only plain data until :meth:`TuneProgress.setup`; a restored run gets them back fresh. The
counts are recomputed from Tune's list of trials at every step, so they include the trials a
resumed run finished before it was killed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

from ray.tune import Callback
from ray.tune.progress_reporter import ProgressReporter

DONE_STATES = ("TERMINATED", "ERROR")


def quiet_tune(debug: bool = False) -> None:
    """Use Tune's classic output engine, where a ProgressReporter decides what is printed
    (the new engine prints its banner and tables even at ``verbose=0``), and drop Tune's
    warning about frequent experiment snapshots: with a checkpoint every epoch and a few kept
    per trial they are what makes ``--resume`` exact, and they cost milliseconds here."""
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not debug:  # a failed trial is one warning line (its traceback is in its error.txt)
        logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


class SilentReporter(ProgressReporter):
    """Tune's progress reporter that never reports: :class:`TuneProgress` does it instead."""

    def should_report(self, trials: list, done: bool = False) -> bool:
        return False

    def report(self, trials: list, done: bool, *sys_info: Any) -> None:
        return None


def trial_work(trial: Any, epochs: int) -> int:
    """Epochs a trial has done; a finished one (even stopped early) counts in full."""
    if trial.status in DONE_STATES:
        return epochs
    return int((trial.last_result or {}).get("epoch", 0) or 0)


def best_value(trials: list, metric: str, mode: str) -> float:
    """The best value of ``metric`` any trial has reported (NaN before the first report)."""
    values = []
    for trial in trials:
        analysis = getattr(trial, "metric_analysis", {}).get(metric)
        if analysis and mode in analysis:
            values.append(float(analysis[mode]))
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan
    return max(values) if mode == "max" else min(values)


def fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class TuneProgress(Callback):
    """Live line and gauges; see the module docstring."""

    def __init__(self, description: str, metric: str, mode: str, epochs: int, run_name: str,
                 every_s: float = 0.5, log_every: float = 10.0) -> None:
        self.description = description
        self.metric, self.mode, self.epochs = metric, mode, max(1, int(epochs))
        self.run_name = run_name
        self.every_s, self.log_every = every_s, log_every
        self.total = 0
        self._line: Any = None
        self._gauges: Any = None
        self._started = 0.0
        self._work_at_start: int | None = None
        self._last = 0.0
        self._shown: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_line=None, _gauges=None, _work_at_start=None, _shown=None)
        return state

    # -- Tune's hooks -------------------------------------------------------------------------
    def setup(self, stop: Any = None, num_samples: Any = None, total_num_samples: Any = None,
              **info: Any) -> None:
        from deepmorning.platform.console import ProgressLine
        from deepmorning.platform.metrics import RunMetrics

        self.total = int(total_num_samples or num_samples or 0)
        self._started = time.monotonic()
        self._line = ProgressLine(self.total, self.description, self.log_every).__enter__()
        self._gauges = RunMetrics(self.run_name, "tune", {
            "tune_trials_done": "finished trials of the Tune run",
            "tune_trials_running": "trials running now",
            "tune_trials_total": "trials the Tune run will make",
            "tune_best_metric": "best value of the run's metric so far",
        })

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.update(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.update(trials, force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.update(trials, force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.update(trials, force=True)
        self.close()

    # -- drawing ------------------------------------------------------------------------------
    def figures(self, trials: list) -> dict[str, Any]:
        """Counts, best so far and ETA from Tune's trials (pure: tested on its own)."""
        total = max(self.total, len(trials))
        done = sum(t.status in DONE_STATES for t in trials)
        running = sum(t.status == "RUNNING" for t in trials)
        errored = sum(t.status == "ERROR" for t in trials)
        work = sum(trial_work(t, self.epochs) for t in trials)
        if self._work_at_start is None:
            self._work_at_start = work
        elapsed = time.monotonic() - self._started
        gained = work - self._work_at_start
        remaining = total * self.epochs - work
        eta = remaining * elapsed / gained if gained > 0 else math.nan
        return {"done": done, "running": running, "errored": errored, "total": total,
                "best": best_value(trials, self.metric, self.mode),
                "eta": 0.0 if remaining <= 0 else eta}

    def update(self, trials: list, force: bool = False) -> None:
        now = time.monotonic()
        if self._line is None or (not force and now - self._last < self.every_s):
            return
        self._last = now
        f = self.figures(trials)
        best = f["best"] if math.isfinite(f["best"]) else "-"
        fields = {"running": f["running"], f"best {self.metric}": best, "eta": fmt_eta(f["eta"])}
        if f["errored"]:
            fields["errors"] = f["errored"]
        if force and (f["done"], fields) == self._shown:
            return  # the same line again (a trial's end and the experiment's end)
        self._shown = (f["done"], fields)
        self._line.update(f["done"], **fields)
        gauges = self._gauges
        gauges.set("tune_trials_done", f["done"])
        gauges.set("tune_trials_running", f["running"])
        gauges.set("tune_trials_total", f["total"])
        if math.isfinite(f["best"]):
            gauges.set("tune_best_metric", f["best"])

    def close(self) -> None:
        if self._line is not None:
            self._line.__exit__(None, None, None)
            self._line = None
