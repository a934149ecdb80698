"""``--mlflow``: NAS, RL and Tune runs logged to real MLflow stores and a real tracking server,
read back with ``MlflowClient`` as a user's ``mlflow ui`` would see them.

MLflow 3 refuses its file store unless ``MLFLOW_ALLOW_FILE_STORE=true``; the file-store tests
set it, the bare ``--mlflow`` test uses MLflow's own default (``sqlite:///mlflow.db`` in the
working directory), and the server test a real ``mlflow server`` on loopback.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import ray.cloudpickle
import tune_toy
from conftest import REPO, free_port, run_cli

from deepmorning.nas.config import NASConfig, quick
from deepmorning.nas.search import Search
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir
from deepmorning.platform.tracking import (
    HTTP_DEFAULTS,
    MLFLOW_FILE,
    MLflow,
    prepare_mlflow,
    resolve_uri,
)
from deepmorning.tuning import registry, runner
from deepmorning.tuning.mlflow_trials import TRIAL_TAG, MLflowTrials

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

ray.cloudpickle.register_pickle_by_value(tune_toy)  # in-process runs: workers need no import
FAST_CARTPOLE = ["--set", "learning_starts=256", "--set", "num_envs=1", "--checkpoint-every", "2"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"  # Ray and MLflow write under ~: never into the real home
    home.mkdir(exist_ok=True)
    path = os.pathsep.join([str(REPO / "tests"), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {
        **os.environ,
        "HOME": str(home),
        "COLUMNS": "160",
        "PYTHONPATH": path,
        registry.MODULES_ENV: tune_toy.__name__,
        **extra,
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _one_run(cwd: Path) -> Path:
    (run,) = (cwd / "runs").iterdir()
    return run


def _steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def _one_error_line(res) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    return lines[0]


# -- a local store -----------------------------------------------------------------------------
def test_a_nas_search_logs_params_per_child_metrics_and_files(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    cfg = quick().to_dict()
    cfg.update(max_children=6, child_retries=0, param_servers=1, controllers=1)
    cfg["child"]["trainer"] = "synthetic"
    cfg = NASConfig.from_dict(cfg)
    run = RunDir.create(tmp_path / "nas-run", "nas", "search", cfg.to_dict())
    plan = prepare_mlflow(store, "nas")
    plan.start(run, cfg.to_dict())
    summary = Search(cfg, run, resumed=False).run_search()

    stored = json.loads((run.path / MLFLOW_FILE).read_text())
    client = MlflowClient(store)
    logged = client.get_run(stored["run_id"])
    assert logged.info.status == "FINISHED" and logged.info.run_name == "nas-run"
    assert client.get_experiment(logged.info.experiment_id).name == "nas"
    assert logged.data.params["max_children"] == "6"
    assert logged.data.params["child.trainer"] == "synthetic"  # the config, flattened
    rewards = _steps(client, stored["run_id"], "nas/reward")
    history = run.read_table("history.csv").sort_values("child_id")
    assert [s for s, _ in rewards] == list(range(6))  # one step per child, like TensorBoard
    assert [round(v, 5) for _, v in rewards] == [round(v, 5) for v in history["reward"]]
    assert logged.data.metrics["summary/best_reward"] == pytest.approx(summary["best_reward"])
    assert {"history.csv", "config.json", "summary.json", "rewards.png"} <= _artifacts(
        client, stored["run_id"]
    )


def test_an_rl_run_logs_each_iteration_at_its_env_steps(tmp_path):
    store = (tmp_path / "mlruns").as_uri()
    res = run_cli(
        "rl",
        "train",
        "dqn",
        "--env",
        "CartPole-v1",
        "--timesteps",
        "768",
        *FAST_CARTPOLE,
        f"--mlflow={store}",
        cwd=tmp_path,
        env=_env(tmp_path, MLFLOW_ALLOW_FILE_STORE="true"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    run = _one_run(tmp_path)
    run_id = json.loads((run / MLFLOW_FILE).read_text())["run_id"]
    assert f"run {run_id}" in res.stdout  # said where it logs
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # reading a file store back, in this process
    try:
        client = MlflowClient(store)
        logged = client.get_run(run_id)
        progress = pd.read_csv(run / "progress.csv")
        returns = _steps(client, run_id, "rl/episode_return_mean")
        artifacts = _artifacts(client, run_id)
        experiment = client.get_experiment(logged.info.experiment_id).name
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.name
    assert experiment == "rl-dqn"
    assert logged.data.params["env"] == "CartPole-v1"
    assert logged.data.params["hyperparameters.learning_starts"] == "256"
    assert [s for s, _ in returns] == list(progress["env_steps"]) == [256, 512, 768]
    assert {"progress.csv", "summary.json", "config.json", "learning_curve.png"} <= artifacts
    assert "checkpoints" not in artifacts  # not the checkpoints


def test_a_bare_mlflow_tune_run_logs_a_study_run_and_a_child_run_per_trial(tmp_path):
    res = run_cli("tune", "toy", "--num-samples", "2", "--mlflow", cwd=tmp_path, env=_env(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's own default, where `mlflow ui` looks
    run = _one_run(tmp_path)
    stored = json.loads((run / MLFLOW_FILE).read_text())
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(stored["run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == run.name
    assert client.get_experiment(parent.info.experiment_id).name == "tune-toy"
    assert parent.data.params["model"] == "toy" and "space.lr.uniform" in parent.data.params
    summary = json.loads((run / "summary.json").read_text())
    assert parent.data.metrics["summary/best_value"] == pytest.approx(summary["best_value"])
    assert {"results.csv", "epochs.csv", "best.json", "summary.json"} <= _artifacts(
        client, parent.info.run_id
    )

    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    results = pd.read_csv(run / "results.csv")
    assert sorted(c.info.run_name for c in children) == sorted(
        f"trial_{t}" for t in results["trial_id"]
    )
    for child in children:
        assert child.info.status == "FINISHED"
        assert float(child.data.params["lr"]) > 0  # the trial's config
        losses = _steps(client, child.info.run_id, "loss")
        assert [s for s, _ in losses] == [1, 2, 3]  # every epoch's report
        assert {"progress.csv", "result.json"} <= _artifacts(client, child.info.run_id)


@pytest.mark.slow  # a second Tune run; the NAS resume below covers the default suite
def test_a_resumed_tune_study_logs_to_its_runs_again(ray_local, tmp_path, monkeypatch):
    """Failed trials leave the study unfinished; ``--resume`` restarts them as new trials (they
    fail again) under the same study run: Tune restores the MLflow callback with the experiment.
    A trial that continues (same id) finds its run again."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, out = (tmp_path / "mlruns").as_uri(), tmp_path / "run"
    first = runner.TuneRequest(
        model="toy",
        output=out,
        quiet=True,
        num_samples=2,
        sets=("fail=true",),
        mlflow=store,
        given=frozenset({"num_samples", "mlflow"}),
    )
    with pytest.raises(DeepmorningError, match="no trial finished"):
        runner.run(first)
    parent_id = json.loads((out / MLFLOW_FILE).read_text())["run_id"]
    client = MlflowClient(store)
    parent = client.get_run(parent_id)
    children = f"tags.mlflow.parentRunId = '{parent_id}'"
    before = client.search_runs([parent.info.experiment_id], filter_string=children)
    assert len(before) == 2 and {r.info.status for r in before} == {"FAILED"}
    assert {"error.txt", "params.json"} <= _artifacts(client, before[0].info.run_id)

    again = runner.TuneRequest(model="toy", resume=out, quiet=True, given=frozenset({"resume"}))
    with pytest.raises(DeepmorningError, match="no trial finished"):
        runner.run(again)
    after = client.search_runs([parent.info.experiment_id], filter_string=children)
    per_trial = Counter(r.data.tags[TRIAL_TAG] for r in after)
    assert set(per_trial.values()) == {1}  # one run per trial
    assert {r.info.run_id for r in before} <= {r.info.run_id for r in after}
    assert set(pd.read_csv(out / "results.csv").trial_id) <= set(per_trial)
    assert {r.info.run_id for r in client.search_runs([parent.info.experiment_id])} == {
        parent_id,
        *(r.info.run_id for r in after),
    }  # the same study run, no second one

    callback = pickle.loads(pickle.dumps(MLflowTrials(store, parent_id, parent.info.experiment_id)))
    old = before[0]
    trial = SimpleNamespace(trial_id=old.data.tags[TRIAL_TAG], config={})
    assert callback._run_of(trial).run_id == old.info.run_id  # found again, not a new run


def test_a_tune_study_started_without_mlflow_cannot_add_it_on_resume(ray_local, tmp_path,
                                                                     monkeypatch):
    """Tune restores a study with the callbacks it started with, so ``--resume RUN --mlflow``
    on a study started without it is refused before any work, and nothing is logged."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out, store = tmp_path / "run", tmp_path / "mlruns"
    first = runner.TuneRequest(model="toy", output=out, quiet=True, num_samples=1,
                               sets=("fail=true",), given=frozenset({"num_samples"}))
    with pytest.raises(DeepmorningError, match="no trial finished"):
        runner.run(first)
    state = sorted(p.name for p in out.rglob("*"))
    again = runner.TuneRequest(model="toy", resume=out, quiet=True, mlflow=store.as_uri(),
                               given=frozenset({"resume", "mlflow"}))
    with pytest.raises(DeepmorningError, match="was started without it"):
        runner.run(again)
    assert not (out / MLFLOW_FILE).exists()
    assert sorted(p.name for p in out.rglob("*")) == state  # the run directory untouched
    assert [e.name for e in MlflowClient(store.as_uri()).search_experiments()] == ["Default"]


def test_a_bare_flag_follows_mlflow_tracking_uri_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///store.db")
    assert resolve_uri("") == f"sqlite:///{tmp_path / 'store.db'}"
    assert resolve_uri("mlruns") == (tmp_path / "mlruns").as_uri()  # a path: a file store
    assert resolve_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_http_retries_are_kept_short_and_a_lost_server_is_one_warning(
    tmp_path, monkeypatch, capsys
):
    for key in HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    prepare_mlflow((tmp_path / "mlruns").as_uri(), "nas")
    assert {k: os.environ[k] for k in HTTP_DEFAULTS} == HTTP_DEFAULTS
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no backoff in this test
    lost = MLflow(f"http://127.0.0.1:{free_port()}", "0" * 32)  # nothing listens there
    lost.scalars(1, {"nas/reward": 0.5})
    lost.scalars(2, {"nas/reward": 0.6})  # no second warning, no exception
    lost.finish(tmp_path)
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "MLflow" in ln]
    assert len(warnings) == 1 and warnings[0].startswith("warning: MLflow logging to http://")


# -- a real tracking server --------------------------------------------------------------------
@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free loopback port (SQLite backend, proxied artifacts)."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(tmp_path),
        cwd=tmp_path,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("mlflow server did not answer within 180 s")
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_a_killed_and_resumed_nas_search_logs_one_run_to_a_tracking_server(mlflow_server, tmp_path):
    """Child 0 waits for a file, so the search cannot finish before it is killed."""
    gate = tmp_path / "gate"
    args = [
        "nas",
        "search",
        "--trainer",
        f"wait:{gate}",
        "--max-children",
        "4",
        "-S",
        "1",
        "-K",
        "2",
        "-m",
        "1",
        "--output",
        "runs/nas",
        "--mlflow",
        mlflow_server,
    ]
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepmorning", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    history = tmp_path / "runs" / "nas" / "history.csv"
    deadline = time.time() + 300
    try:
        while not (history.is_file() and len(history.read_text().splitlines()) >= 3):
            if proc.poll() is not None:
                pytest.fail(f"the search ended before it was killed:\n{proc.stderr.read()}")
            if time.time() > deadline:
                pytest.fail("no two children finished within 300 s")
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
        proc.wait()
    run_id = json.loads((tmp_path / "runs" / "nas" / MLFLOW_FILE).read_text())["run_id"]
    client = MlflowClient(mlflow_server)
    assert client.get_run(run_id).info.status == "RUNNING"  # killed: not finished

    gate.touch()
    res = run_cli("nas", "search", "--resume", "runs/nas", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"continuing run {run_id}" in res.stdout
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED"
    assert [s for s, _ in _steps(client, run_id, "nas/reward")] == [0, 1, 2, 3]
    runs = client.search_runs([logged.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # the resume logged to the same run
    assert {"history.csv", "summary.json"} <= _artifacts(client, run_id)  # through the server


# -- errors ------------------------------------------------------------------------------------
NO_MLFLOW = (
    "import sys; sys.modules['mlflow'] = None; from deepmorning.cli import main; "
    "sys.argv[0] = 'deepmorning'; main()"
)


def test_without_mlflow_installed_the_flag_is_one_line(tmp_path):
    env = _env(tmp_path, RAY_TMPDIR=str(tmp_path / "raytmp"))
    args = ["nas", "search", "--trainer", "synthetic", "--mlflow"]
    proc = subprocess.run(
        [sys.executable, "-c", NO_MLFLOW, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    line = _one_error_line(proc)
    assert line == "error: --mlflow needs MLflow: pip install 'deepmorning[mlflow]'"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "raytmp").exists()


def test_an_unreachable_tracking_server_is_one_line_before_any_work(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = _env(tmp_path, RAY_TMPDIR=str(tmp_path / "raytmp"))
    line = _one_error_line(
        run_cli("tune", "toy", "--mlflow", closed, cwd=tmp_path, env=env, timeout=300)
    )
    assert "no MLflow tracking server answers" in line and closed in line
    assert not (tmp_path / "runs").exists() and not (tmp_path / "raytmp").exists()


def test_a_file_store_without_mlflows_opt_in_is_one_line(tmp_path):
    env = _env(tmp_path, RAY_TMPDIR=str(tmp_path / "raytmp"))
    env.pop("MLFLOW_ALLOW_FILE_STORE", None)
    line = _one_error_line(
        run_cli(
            "nas",
            "search",
            "--trainer",
            "synthetic",
            "--mlflow",
            str(tmp_path / "mlruns"),
            cwd=tmp_path,
            env=env,
        )
    )
    assert "MLFLOW_ALLOW_FILE_STORE=true" in line and "sqlite:///" in line
    assert not (tmp_path / "runs").exists()
