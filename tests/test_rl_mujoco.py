"""DDPG on MuJoCo (Lillicrap et al. 2015, section 7's low-dimensional tasks) through the real CLI.

MuJoCo is the ``mujoco`` extra (``pip install 'deepmorning[mujoco]'``); the tests that need it
skip without it, and one checks the one-line error a user without it gets.
"""

from __future__ import annotations

import json
from pathlib import Path

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
                  "--output", str(tmp_path / "run"), env={"PYTHONPATH": path}, timeout=120,
                  cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("error: InvertedPendulum-v5 needs MuJoCo")
    assert "pip install 'deepmorning[mujoco]'" in lines[0]
    assert not (tmp_path / "run").exists()


def test_inverted_pendulum_paper_preset_runs_through_the_cli(tmp_path):
    """128 env steps of the documented MuJoCo command: run directory, the paper's
    hyperparameters in config.json, checkpoint, evaluation. (Sampling in the driver: a remote
    EnvRunner would add a worker that imports RLlib, torch and MuJoCo; DDPG's remote path is
    tested in test_rl_ddpg.py.)"""
    pytest.importorskip("mujoco")
    out = tmp_path / "run"
    res = run_cli("rl", "train", "ddpg", "--env", "InvertedPendulum-v5", "--preset", "paper",
                  "--set", "batch_norm=false", "--timesteps", "128", "--eval-episodes", "1",
                  "--output", str(out), timeout=300, cwd=tmp_path)  # MuJoCo logs to cwd
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["env"] == "InvertedPendulum-v5" and cfg["preset"] == "paper"
    assert cfg["hyperparameters"] == PRESETS["paper"]() | {"batch_norm": False}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 128 and summary["iterations"] == 2
    assert summary["eval_episodes"] == 1 and summary["eval_return_mean"] >= 0
    assert (out / "checkpoints" / "iter_000002").is_dir()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


# -- the bar (minutes: run with -m slow) ---------------------------------------------
#: Env steps within which InvertedPendulum-v5 must reach an evaluation mean of 900 (measured,
#: see the test's docstring and docs/ddpg.md, "MuJoCo").
INVERTED_PENDULUM_BUDGET = 42_500


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two to three runs of up to 42.5k steps on a busy 2-core machine
def test_inverted_pendulum_reaches_900_within_the_measured_budget(tmp_path, monkeypatch):
    """The ``paper`` preset without batch norm reaches a mean evaluation return >= 900 (10
    deterministic episodes every 2,500 env steps) within 42,500 env steps on at least two of
    seeds 0, 1, 2.

    Measured (docs/ddpg.md, "MuJoCo"), 0 EnvRunners, 2-core machine at load average 6-15:
    seed 0 reached 1000 at 32,512 env steps, seed 1 at 35,008, seed 2 at 37,504; the budget
    is the slowest seed's plus one evaluation interval, rounded up to whole evaluation
    intervals (17 x 2,500). A run given the budget as
    ``timesteps`` ends at the first 64-step iteration at or past it, so a seed that reaches 900
    at all did so within the budget. The test stops after two successes. With the paper's
    batch norm on, 1 of 5 seeds reached 900 within 60,000 env steps (docs/ddpg.md, "Batch
    norm"), hence ``batch_norm=false``.
    """
    pytest.importorskip("mujoco")
    import ray

    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to ./MUJOCO_LOG.TXT

    from deepmorning.rl.runner import TrainRequest, train

    reached = {}
    try:
        for seed in (0, 1, 2):
            summary = train(TrainRequest(
                algo="ddpg", env="InvertedPendulum-v5", preset="paper",
                overrides={"batch_norm": False}, timesteps=INVERTED_PENDULUM_BUDGET, seed=seed,
                eval_every=2_500, eval_episodes=10, stop_return=900.0, checkpoint_every=10**6,
                output=tmp_path / f"seed{seed}", quiet=True,
            ))
            assert summary["env_steps"] < INVERTED_PENDULUM_BUDGET + 64  # one iteration past
            reached[seed] = summary["stopped_at_return"]
            print(f"seed {seed}: reached 900 at {reached[seed]} env steps "
                  f"(best eval {summary['best_eval_return_mean']:.1f})")
            if sum(r is not None for r in reached.values()) >= 2:
                break
    finally:
        ray.shutdown()
    assert sum(r is not None for r in reached.values()) >= 2, reached


def test_the_stated_budget_and_plot_come_from_the_saved_runs(tmp_path):
    """docs/ddpg.md's budget is the slowest saved seed plus one evaluation interval, and the
    plot script draws every saved run (no MuJoCo needed: it reads benchmarks/results/)."""
    import importlib.util

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    script = root / "benchmarks" / "plot_ddpg_inverted_pendulum.py"
    spec = importlib.util.spec_from_file_location("plot_ddpg_ip", script)
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    first = {}
    for path in sorted(plot.RESULTS.glob("ddpg_inverted_pendulum_seed*.csv")):
        evals = pd.read_csv(path).dropna(subset=["eval_return_mean"])
        first[path.stem] = int(evals[evals["eval_return_mean"] >= 900]["env_steps"].iloc[0])
    assert len(first) == 3
    assert max(first.values()) + 2_500 <= INVERTED_PENDULUM_BUDGET
    batch_norm = sorted(plot.RESULTS.glob("ddpg_inverted_pendulum_batchnorm_seed*.csv"))
    assert len(batch_norm) == 5
    out = plot.main(tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
