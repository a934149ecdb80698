"""DDPG on MuJoCo (Lillicrap et al. 2015, section 7's low-dimensional tasks) through the real CLI.

MuJoCo is the ``mujoco`` extra (``pip install 'deepmorning[mujoco]'``); the tests that need it
skip without it, and one checks the one-line error a user without it gets.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from deepmorning.rl.ddpg.presets import PRESETS


def test_missing_mujoco_is_one_error_line_naming_the_extra(tmp_path):
    """A ``mujoco`` package that fails to import stands in for an installation without it."""
    fake = tmp_path / "site" / "mujoco"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mujoco')\n")
    import os

    path = os.pathsep.join(p for p in (str(fake.parent), os.environ.get("PYTHONPATH")) if p)
    res = run_cli("rl", "train", "ddpg", "--env", "InvertedPendulum-v5", "--timesteps", "64",
                  "--output", str(tmp_path / "run"), env={"PYTHONPATH": path}, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("error: InvertedPendulum-v5 needs MuJoCo")
    assert "pip install 'deepmorning[mujoco]'" in lines[0]
    assert not (tmp_path / "run").exists()


def test_inverted_pendulum_paper_preset_runs_through_the_cli(tmp_path):
    """A few hundred steps of the documented MuJoCo command: run directory, the paper's
    hyperparameters in config.json, checkpoint, evaluation, on one remote EnvRunner."""
    pytest.importorskip("mujoco")
    out = tmp_path / "run"
    res = run_cli("rl", "train", "ddpg", "--env", "InvertedPendulum-v5", "--preset", "paper",
                  "--set", "batch_norm=false", "--timesteps", "256", "--eval-episodes", "1",
                  "--num-env-runners", "1", "--output", str(out), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["env"] == "InvertedPendulum-v5" and cfg["preset"] == "paper"
    assert cfg["num_env_runners"] == 1
    assert cfg["hyperparameters"] == PRESETS["paper"]() | {"batch_norm": False}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 256 and summary["iterations"] == 4
    assert summary["eval_episodes"] == 1 and summary["eval_return_mean"] >= 0
    assert (out / "checkpoints" / "iter_000004").is_dir()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
