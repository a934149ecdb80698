"""Experiment tracking: TensorBoard event files in every run directory, MLflow on request.

Every job writes its per-step figures (NAS: one step per child; RL: one per training iteration,
at its env-step count) as TensorBoard scalars next to its CSV tables, so runs can be compared
with ``tensorboard --logdir runs/`` (several runs side by side) as well as with ``results``.
Ray Tune writes its own event files into each trial directory. The writer is
``tensorboardX``, which ``ray[tune]`` installs; a run at a URI mirrors the event files with the
rest of the directory.

With ``--mlflow [URI]`` the same figures also go to an MLflow run: the job's configuration
(flattened: ``child.epochs``) as params, every step's figures as metrics, at the end the
``summary.json`` numbers as ``summary/*`` metrics and the run directory's own files (CSV,
JSON, PNG, Markdown; not the checkpoints) as artifacts. The experiment is the kind of job
(``nas``, ``rl-dqn``, ``tune-srcnn``), the MLflow run is named after the run directory, and
``RUN/mlflow.json`` remembers it, so ``--resume`` continues the same MLflow run. A bare
``--mlflow`` logs where MLflow itself would: ``$MLFLOW_TRACKING_URI``, else MLflow's default
store in the working directory (MLflow 3: ``sqlite:///mlflow.db`` with artifacts in
``./mlruns``; MLflow 2: the ``./mlruns`` file store), so ``mlflow ui`` started in the same
directory shows the runs. MLflow is an optional extra (``pip install 'deepmorning[mlflow]'``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmorning.platform.errors import DeepmorningError, first_line

TENSORBOARD_DIR = "tensorboard"
MLFLOW_FILE = "mlflow.json"  # RUN/mlflow.json: the tracking URI and the MLflow run of a run
INSTALL = "pip install 'deepmorning[mlflow]'"
MLFLOW_HELP = (
    "Also log params, metrics and the run's files to MLflow: a tracking server URI "
    "(http://HOST:5000) or store (sqlite:///PATH.db); bare: MLflow's default in "
    "this directory (put --mlflow last, or write --mlflow=URI)."
)
ARTIFACT_SUFFIXES = (".csv", ".json", ".png", ".md")
PROBE_TIMEOUT_S = 5.0  # an unreachable tracking server is refused at once, not after retries
# MLflow retries a failed HTTP request 7 times with exponential backoff (minutes); a job that
# loses its tracking server mid-run should warn and go on instead (the user's env wins).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
MAX_PARAM_LENGTH = 6000  # MLflow >= 2.10 keeps param values up to this many characters


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (NaN, booleans and non-numbers are skipped)."""
    out = {}
    for tag, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(float(value)):
            out[tag] = float(value)
    return out


class TensorBoard:
    """Scalars of one run; numbers only (NaN and non-numbers are skipped)."""

    def __init__(self, run: Any) -> None:
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(run.path / TENSORBOARD_DIR), flush_secs=30)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        for tag, value in numbers(values).items():
            self._writer.add_scalar(tag, value, global_step=int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# -- MLflow ------------------------------------------------------------------------------------
def require_mlflow(why: str = "--mlflow") -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise DeepmorningError(f"{why} needs MLflow: {INSTALL}") from exc
    return mlflow


def mlflow_version() -> str:
    return require_mlflow().__version__


def resolve_uri(uri: str) -> str:
    """The tracking URI to store: ``''`` is MLflow's own default; local places made absolute
    (a resumed run may start from another directory)."""
    mlflow = require_mlflow()
    if not uri:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).absolute())
    if not urllib.parse.urlparse(uri).scheme and not uri.startswith("databricks"):
        return Path(uri).expanduser().absolute().as_uri()  # a plain path: a file store
    return uri


def probe_server(uri: str) -> None:
    """Refuse an HTTP tracking URI nothing answers at, in seconds (MLflow's server answers
    ``GET /health``)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # something answers (a proxy, an older server): MLflow's own calls decide
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeepmorningError(
            f"--mlflow {uri}: no MLflow tracking server answers there ({first_line(str(reason))})"
        ) from exc


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@dataclass
class MLflowPlan:
    """Where a job will log, checked before it starts; :meth:`start` opens the MLflow run."""

    uri: str
    experiment: str
    run_id: str | None = None  # set when a resumed run continues its MLflow run

    def start(self, run: Any, params: Mapping[str, Any]) -> MLflow:
        """Create the MLflow run (params logged, ``RUN/mlflow.json`` written) or reopen the one
        a resumed run logged to."""
        from deepmorning.platform.console import console

        if self.run_id is not None:
            console.print(f"MLflow: continuing run {self.run_id} at {self.uri}")
            logger = MLflow(self.uri, self.run_id)
            logger.call(logger.client.update_run, self.run_id, status="RUNNING")
            return logger
        client = _client(self.uri)
        experiment_id = _experiment_id(client, self.experiment)
        created = client.create_run(
            experiment_id, run_name=run.path.name, tags={"deepmorning.run_dir": run.location}
        )
        logger = MLflow(self.uri, created.info.run_id)
        logger.params(params)
        self.run_id = created.info.run_id
        run.write_json(
            MLFLOW_FILE,
            {
                "tracking_uri": self.uri,
                "experiment": self.experiment,
                "experiment_id": experiment_id,
                "run_id": self.run_id,
            },
        )
        console.print(f"MLflow: experiment {self.experiment}, run {self.run_id} at {self.uri}")
        return logger


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name)


def stored_mlflow(run_path: Path) -> dict[str, Any] | None:
    path = Path(run_path) / MLFLOW_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def prepare_mlflow(flag: str | None, experiment: str, run: Any = None) -> MLflowPlan | None:
    """Check ``--mlflow`` (``None``: not given, ``''``: bare) before any work; one
    :class:`DeepmorningError` line when MLflow is missing or the store does not answer.

    A resumed ``run`` that logged to MLflow goes on logging to the same MLflow run, whatever
    the flag says (its stored configuration wins, as for every other setting).
    """
    stored = stored_mlflow(run.path) if run is not None else None
    if stored is None and flag is None:
        return None
    if stored is not None:
        require_mlflow(f"{run.location} logs to MLflow ({MLFLOW_FILE}); resuming it")
        plan = MLflowPlan(stored["tracking_uri"], stored["experiment"], stored["run_id"])
        if flag and resolve_uri(flag) != plan.uri:
            from deepmorning.platform.console import warn

            warn(f"{run.location} goes on logging to its MLflow run at {plan.uri}")
    else:
        plan = MLflowPlan(resolve_uri(flag or ""), experiment)
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database..."
        logging.getLogger(name).setLevel(logging.WARNING)
    probe_server(plan.uri)
    try:
        client = _client(plan.uri)
        if plan.run_id is not None:
            client.get_run(plan.run_id)
        else:
            client.get_experiment_by_name(plan.experiment)  # creates a local store
    except Exception as exc:  # noqa: BLE001 - MLflow's store errors: one line for the user
        if "MLFLOW_ALLOW_FILE_STORE" in str(exc):  # MLflow 3 keeps its file store for old runs
            raise DeepmorningError(
                f"--mlflow {plan.uri}: MLflow {mlflow_version()} refuses a file store unless "
                "MLFLOW_ALLOW_FILE_STORE=true is set; set it or use sqlite:///PATH.db"
            ) from exc
        raise DeepmorningError(f"--mlflow {plan.uri}: {first_line(str(exc))}") from exc
    return plan


def flatten(config: Mapping[str, Any]) -> dict[str, str]:
    """``{"child": {"epochs": 1}}`` -> ``{"child.epochs": "1"}``: MLflow params, as text
    (lists and empty mappings as JSON), cut at MLflow's length limit."""
    from deepmorning.platform.results import flatten as flatten_keys  # rich, run dirs: lazily

    return {name: (json.dumps(value, default=str) if isinstance(value, (list, tuple, Mapping))
                   else str(value))[:MAX_PARAM_LENGTH]
            for name, value in flatten_keys(config, keep_empty=True).items()}


def mlflow_key(name: str) -> str:
    """A name MLflow accepts as a param or metric key (letters, digits, ``_-. /``)."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)[:250]


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MLflow:
    """One MLflow run, logged to with ``MlflowClient`` (no global active run).

    Tracking must not cost the job: a failing call (a server gone mid-run) is one warning,
    and the run goes on without MLflow.
    """

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri, self.run_id = uri, run_id
        self.client = _client(uri)
        self.failed = False

    @classmethod
    def open(cls, run: Any) -> MLflow | None:
        stored = stored_mlflow(run.path)
        return cls(stored["tracking_uri"], stored["run_id"]) if stored else None

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or ``None`` once MLflow has failed."""
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking is not worth the run
            from deepmorning.platform.console import warn

            self.failed = True
            warn(f"MLflow logging to {self.uri} stopped: {first_line(str(exc))}")
            return None

    def params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(mlflow_key(k), v) for k, v in flatten(config).items()]
        for chunk in _chunks(params, 100):
            self.call(self.client.log_batch, self.run_id, params=chunk)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), v, now, int(step)) for k, v in numbers(values).items()]
        for chunk in _chunks(metrics, 1000):
            self.call(self.client.log_batch, self.run_id, metrics=chunk)

    def artifacts(self, folder: Path, suffixes: tuple[str, ...] = ARTIFACT_SUFFIXES) -> None:
        """The files directly in ``folder`` with these suffixes (not its subfolders)."""
        for path in sorted(Path(folder).iterdir()):
            if path.is_file() and path.suffix in suffixes:
                self.call(self.client.log_artifact, self.run_id, str(path))

    def finish(
        self, folder: Path, summary: Mapping[str, Any] | None = None, status: str = "FINISHED"
    ) -> None:
        if summary:
            self.scalars(0, {f"summary/{k}": v for k, v in summary.items()})
        self.artifacts(folder)
        self.end(status)

    def end(self, status: str = "FINISHED") -> None:
        self.call(self.client.set_terminated, self.run_id, status)


class Trackers:
    """What a job logs its figures to: TensorBoard always, MLflow when the run has an MLflow
    run (``RUN/mlflow.json``, written by :meth:`MLflowPlan.start`)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.tensorboard = TensorBoard(run)
        self.mlflow = MLflow.open(run)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        self.tensorboard.scalars(step, values)
        if self.mlflow is not None:
            self.mlflow.scalars(step, values)

    def flush(self) -> None:
        self.tensorboard.flush()

    def close(self) -> None:
        """TensorBoard's last events, before the run directory's final sync."""
        self.tensorboard.close()

    def finish(self, summary: Mapping[str, Any]) -> None:
        """After ``run.finish``: MLflow gets the summary figures and the run's files."""
        if self.mlflow is not None:
            self.mlflow.finish(self.run.path, summary)
