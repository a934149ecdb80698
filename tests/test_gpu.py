"""GPU checks for the day a GPU is at hand: ``pytest -m gpu`` (skipped where torch sees no
CUDA device, with the reason). Figures (children/hour/GPU, Learner updates/s, Tune trial time):
``python benchmarks/gpu_check.py``. Not yet run on a GPU: the development machine has none.

Each check is a short real run through the CLI, as a user would start it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_cli

from deepmorning.tuning import registry

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs CUDA: torch sees no GPU on this machine"),
]

TUNE_MODELS = sorted(registry.names())


@pytest.fixture(scope="module")
def gpu_search(tmp_path_factory) -> Path:
    """A NAS search whose torch children take half a GPU each: two children per GPU."""
    out = tmp_path_factory.mktemp("gpu") / "nas"
    res = run_cli("nas", "search", "--preset", "quick", "--max-children", "4", "-S", "1",
                  "-K", "1", "-m", "4", "--gpus-per-child", "0.5", "--cpus-per-child", "1",
                  "--output", str(out), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_nas_children_share_a_gpu(gpu_search):
    history = pd.read_csv(gpu_search / "history.csv")
    assert sorted(history["child_id"]) == [0, 1, 2, 3]
    assert (history["status"] == "ok").all()
    assert history["device"].str.startswith("cuda").all()


def test_nas_train_retrains_the_best_child_on_the_gpu(gpu_search, tmp_path):
    res = run_cli("nas", "train", str(gpu_search), "--epochs", "1",
                  "--output", str(tmp_path / "final"), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "cuda" in res.stdout


@pytest.mark.parametrize("algo, env, extra", [
    ("dqn", "ALE/Pong-v5", ["--set", "learning_starts=1000"]),
    ("ddpg", "Pendulum-v1", []),
])
def test_rl_learner_on_the_gpu(algo, env, extra, tmp_path):
    out = tmp_path / algo
    res = run_cli("rl", "train", algo, "--env", env, "--timesteps", "3000",
                  "--num-gpus-per-learner", "1", "--eval-episodes", "1", *extra,
                  "--output", str(out), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    progress = pd.read_csv(out / "progress.csv")
    assert progress["loss"].notna().any()  # the Learner updated, on the GPU
    assert json.loads((out / "summary.json").read_text())["env_steps"] >= 3000


@pytest.mark.parametrize("model", TUNE_MODELS)
def test_one_tune_trial_per_model_on_half_a_gpu(model, tmp_path):
    out = tmp_path / model
    res = run_cli("tune", model, "--num-samples", "1", "--max-epochs", "1",
                  "--gpus-per-trial", "0.5", "--output", str(out), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 1 and (results["status"] == "TERMINATED").all()
