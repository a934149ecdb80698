"""The README's RL lines as a newcomer runs them: from an empty directory, default ``runs/``.

Each line is started through the real CLI, killed with SIGKILL once its first checkpoint is on
disk, resumed with ``--resume runs/<dir>`` (a relative path) and evaluated with ``rl evaluate
runs/<dir>``. Only ``--timesteps`` (and ``--checkpoint-every``) are added to keep it short.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli

README_LINES = {
    # deepmorning rl train dqn --env CartPole-v1 --eval-every 5000
    "dqn": ["rl", "train", "dqn", "--env", "CartPole-v1", "--eval-every", "5000",
            "--timesteps", "6000"],
    # deepmorning rl train ddpg --env Pendulum-v1 --eval-every 1000 --stop-return -200
    "ddpg": ["rl", "train", "ddpg", "--env", "Pendulum-v1", "--eval-every", "1000",
             "--stop-return", "-200", "--timesteps", "2000"],
}


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"  # Ray writes ~/.ray/auth_token: never into the real home
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "COLUMNS": "160"}
    env.pop("RAY_ADDRESS", None)
    return env


def _start_and_kill_after_first_checkpoint(args: list[str], cwd: Path, env: dict) -> Path:
    """Start ``deepmorning ARGS`` in ``cwd``; SIGKILL it once a checkpoint is complete."""
    proc = subprocess.Popen([sys.executable, "-m", "deepmorning", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            done = [p for p in cwd.glob("runs/*/checkpoints/iter_*")
                    if not p.name.endswith(".tmp")]
            if done:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint:\n{proc.stderr.read()}")
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint appeared within 300 s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
        proc.wait()
    (run,) = (cwd / "runs").iterdir()
    return run


@pytest.mark.parametrize("algo", sorted(README_LINES))
def test_readme_rl_line_survives_kill_resume_and_evaluate_from_relative_runs(algo, tmp_path):
    env = _env(tmp_path)
    run = _start_and_kill_after_first_checkpoint(README_LINES[algo] + ["--checkpoint-every", "2"],
                                                 tmp_path, env)
    assert not (run / "summary.json").exists()
    relative = f"runs/{run.name}"
    before = pd.read_csv(run / "progress.csv")
    (ckpt,) = [p for p in (run / "checkpoints").glob("iter_*") if not p.name.endswith(".tmp")][:1]
    ckpt_iter = int(ckpt.name.removeprefix("iter_"))
    ckpt_steps = int(before.loc[before.iteration == ckpt_iter, "env_steps"].iloc[0])

    res = run_cli("rl", "train", algo, "--resume", relative, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "(resumed)" in res.stdout.replace("\n", "")
    after = pd.read_csv(run / "progress.csv")
    # the rows up to the checkpoint are kept as they were; training continued from its steps
    kept = after[after.iteration <= ckpt_iter]
    pd.testing.assert_frame_equal(kept.reset_index(drop=True),
                                  before[before.iteration <= ckpt_iter].reset_index(drop=True))
    assert list(after.iteration) == list(range(1, len(after) + 1))  # none lost, none repeated
    first_new = after[after.iteration == ckpt_iter + 1].iloc[0]
    per_iteration = ckpt_steps / ckpt_iter
    assert ckpt_steps < first_new.env_steps <= ckpt_steps + 2 * per_iteration
    summary = pd.read_json(run / "summary.json", typ="series")
    assert summary["iterations"] == after.iteration.iloc[-1]
    # no evaluation was kept from before the kill: the best one is still a number afterwards
    assert before.loc[before.iteration <= ckpt_iter, "eval_return_mean"].isna().all()
    assert pd.notna(summary["best_eval_return_mean"])

    res = run_cli("rl", "evaluate", relative, "--episodes", "2", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "over 2 episodes" in res.stdout.replace("\n", " ")
    assert "Deprecat" not in res.stdout + res.stderr  # RLlib's notice about its own internals
