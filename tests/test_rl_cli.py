"""The README's RL lines as a newcomer runs them: from an empty directory, default ``runs/``.

Each line is started through the real CLI, killed with SIGKILL once its first checkpoint is on
disk, resumed with ``--resume runs/<dir>`` (a relative path) and evaluated with ``rl evaluate
runs/<dir>``. Only ``--timesteps`` (and ``--checkpoint-every``) are added to keep it short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import torch
from conftest import published_node_groups, run_cli, run_main

from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir
from deepmorning.platform.runtime import Connection
from deepmorning.rl import runner

README_LINES = {
    # deepmorning rl train dqn --env CartPole-v1 --eval-every 5000
    # --timesteps 5000: training stops at the iteration that passes 5,000 steps, which is also
    # the one that evaluates (the evaluation after the resume that the test asserts)
    "dqn": ["rl", "train", "dqn", "--env", "CartPole-v1", "--eval-every", "5000",
            "--timesteps", "5000"],
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


# -- the job around the training: resources, --resume flags, Ray shut down --------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_learner_without_a_gpu_here_is_one_line_and_ray_is_shut_down(tmp_path, capsys):
    """The Learner runs in the driver: ``--num-gpus-per-learner 1`` on a CPU machine is one
    line (was RLlib's AssertionError, status 1, and a run directory left behind)."""
    code, _, err = run_main(capsys, "rl", "train", "dqn", "--env", "CartPole-v1",
                                 "--num-gpus-per-learner", "1", "--output", str(tmp_path / "run"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: the learner asks for 1 GPU but runs in this driver")
    assert not (tmp_path / "run").exists()
    assert not ray.is_initialized()  # the command shuts down the Ray it started, on error too


def test_env_runners_are_checked_against_the_autoscalers_node_types(ray_local):
    """Each EnvRunner asks for 1 CPU: on a CPU-less head it waits for a worker type the
    autoscaler can add, and is refused when there is none (the check NAS and Tune use)."""
    head_only = Connection("cluster", "", None, ray.__version__,
                           nodes=[{"cpus": 0.0, "gpus": 0.0}])
    cfg = {"num_env_runners": 2, "num_gpus_per_learner": 0}
    with pytest.raises(DeepmorningError, match="each EnvRunner asks for 1 CPU"):
        runner.check_resources(cfg, head_only)
    with published_node_groups(cpu={"CPU": 4}):
        note = runner.check_resources(cfg, head_only)
    assert note is not None and "'cpu'" in note
    assert runner.check_resources({**cfg, "num_env_runners": 0}, head_only) is None


def test_flags_given_with_resume_are_named_and_ray_is_shut_down(tmp_path, capsys):
    """``--resume`` keeps the stored configuration and says which flags it ignores (the
    warning NAS and Tune give); the same --env is no change. Ray is shut down at the end."""
    req = runner.TrainRequest(algo="dqn", env="CartPole-v1", timesteps=256, eval_episodes=2)
    cfg = runner.resolve_config(req)
    run = RunDir.create(tmp_path / "run", "rl", "dqn-cartpole-v1", cfg)  # stopped at once
    code, _, err = run_main(capsys, "rl", "train", "dqn", "--env", "Pendulum-v1", "--resume",
                            str(run.path))
    assert code == 2 and "is a run on CartPole-v1, not Pendulum-v1" in err
    code, _, err = run_main(capsys, "rl", "train", "dqn", "--env", "CartPole-v1", "--resume",
                            str(run.path), "--timesteps", "5", "--seed", "3", "--set", "lr=0.1")
    assert code == 0, err
    assert "warning: resuming uses the run's stored configuration; ignoring --seed, --set, " \
        "--timesteps" in err
    assert json.loads((run.path / "summary.json").read_text())["env_steps"] >= 256
    assert not ray.is_initialized()
