"""DQN benchmark: ours vs Stable-Baselines3 vs Tianshou vs RLlib's DQN, same hyperparameters.

    python benchmarks/bench_dqn.py --seeds 5 --skip rllib --only cartpole   # the ratio table
    python benchmarks/bench_dqn.py --only cartpole --seeds 2 --rllib-budget 300
    python benchmarks/bench_dqn.py --only pong

CartPole-v1: the ``cartpole`` preset (RL Baselines3 Zoo's tuned DQN: Adam 2.3e-3, batch 64,
replay 100k, 128 updates of 64 after every 256 env steps, target copied every 128 updates =
every 256 env steps, ε 1 → 0.04 over 8k steps, MLP 256-256 ReLU, Huber loss, grad norm 10)
for all four. Tianshou (2.0) runs in its own virtualenv (``--peer-python``, default
``/work/venv-peer/bin/python``; its pins would replace the project's pandas), started as a
subprocess per seed: ``benchmarks/peer_tianshou_dqn.py`` (same settings, same evaluation),
skipped with a note if that interpreter is missing. Update granularity: SB3
(``train_freq=256, gradient_steps=128``), Tianshou (a 256-step collect, then 128 updates), ours
and RLlib's DQN (``rollout_fragment_length=256, training_intensity=32``) all act 256 steps with
frozen weights, then take 128 updates. Ours steps 8 CartPoles together in its EnvRunner (32
steps each per rollout); SB3 and RLlib's DQN step one. RLlib's DQN runs with dueling,
double-Q, prioritized replay and noisy nets off, n-step 1, and ReLU layers like the others
(its default is tanh); it copies its target net after the first update of each rollout
instead of before it (RLlib checks the copy after each update call).

Evaluation is the same for all: 10 episodes, ε = 0.05 around the greedy action, the same reset
seeds, right after the updates of the first rollout that reaches each multiple of 5,000 env
steps (5,120, 10,240, ...). A run stops once an evaluation mean reaches 475, or after 100k env
steps (RLlib's DQN: or after its time budget). Clocks start after the agent is built and
include acting, learning and evaluating, for every agent. Per seed: env steps/s = env steps /
wall clock (total/total) and the wall clock to 475. Printed: the median over seeds, and the
ratios ours / peer (steps/s: > 1 is faster; time to 475: < 1 is sooner), and the CPU cost per
env step of each agent's own process (process CPU time from its first to its last rollout,
evaluations included; for ours without Ray's daemon processes), which the machine's load
does not change. Every run's raw figures go to ``--results`` (JSON), with the machine load
and the command.

ALE/Pong-v5: the Nature preset's update ratio (one update of 32 per 4 agent steps), Nature
network, same preprocessing for both; training env steps/s after ``learning_starts``, total
steps / total seconds for both. Ours steps 4 envs together per EnvRunner and takes an
iteration's 250 updates in one Learner call after its 1,000 steps (weights frozen meanwhile);
SB3 steps one env and updates every 4 steps.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 475.0
EVAL_EVERY = 5_000
EVAL_EPISODES = 10
MAX_STEPS = 100_000
EVAL_EPSILON = 0.05
RESULTS = Path(__file__).resolve().parent / "results" / "dqn.json"
PEER_PYTHON = Path("/work/venv-peer/bin/python")


def eps_greedy_returns(greedy_action, env_id: str, seed: int,
                       evaluation: int = 0) -> list[float]:
    """The common evaluation: ε = 0.05 around each agent's greedy action, from the start
    states of the runner's evaluation number ``evaluation`` (``runner.evaluation_seeds``)."""
    from deepmorning.rl import envs
    from deepmorning.rl.runner import evaluation_seeds

    rng = np.random.default_rng(seed)
    env = envs.make_env(env_id, train=False)
    returns = []
    for reset_seed in evaluation_seeds(seed, evaluation, EVAL_EPISODES):
        obs, _ = env.reset(seed=reset_seed)
        done, total = False, 0.0
        while not done:
            if rng.random() < EVAL_EPSILON:
                action = env.action_space.sample()
            else:
                action = greedy_action(obs)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def _record(wall: float, steps: int, hit: tuple[float, int] | None, eval_s: float,
            evals: list) -> dict:
    return {"wall_s": wall, "env_steps": steps, "steps_per_s": steps / wall,
            "time_to_target": hit[0] if hit else math.nan,
            "steps_to_target": hit[1] if hit else None, "eval_s": eval_s, "evals": evals}


def cpu_ms_per_step(marks: list[tuple[float, int]]) -> float:
    """CPU milliseconds of this process per env step between the first and the last
    (process CPU seconds, env steps) mark: a cost that does not depend on the machine's load
    (Ray's daemons, separate processes, are not in it)."""
    if len(marks) < 2 or marks[-1][1] <= marks[0][1]:
        return math.nan
    return 1000 * (marks[-1][0] - marks[0][0]) / (marks[-1][1] - marks[0][1])


# -- ours ------------------------------------------------------------------------------------
def run_ours(seed: int, workdir: Path) -> dict:
    """``deepmorning rl train dqn --env CartPole-v1`` as a user runs it (``rl.runner.train``:
    progress rows, TensorBoard, metrics), evaluated by the runner (ε = 0.05, RLModule
    ``forward_inference``, the same reset seeds as the common evaluation)."""
    import pandas as pd

    from deepmorning.rl import runner

    eval_s: list[float] = []
    evaluate = runner._evaluate_algo

    def timed_evaluate(*args, **kwargs):  # measured only: the time spent evaluating
        t = time.monotonic()
        try:
            return evaluate(*args, **kwargs)
        finally:
            eval_s.append(time.monotonic() - t)

    cpu_marks: list[tuple[float, int]] = []
    row = runner.progress_row

    def marked_row(*args, **kwargs):  # after each iteration: process CPU time, env steps
        out = row(*args, **kwargs)
        cpu_marks.append((time.process_time(), out["env_steps"]))
        return out

    runner._evaluate_algo, runner.progress_row = timed_evaluate, marked_row
    try:
        summary = runner.train(runner.TrainRequest(
            algo="dqn", env="CartPole-v1", preset="cartpole", timesteps=MAX_STEPS, seed=seed,
            eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, stop_return=TARGET,
            output=workdir / f"ours-{seed}", quiet=True, checkpoint_every=10_000,
        ))
    finally:
        runner._evaluate_algo, runner.progress_row = evaluate, row
    progress = pd.read_csv(workdir / f"ours-{seed}" / "progress.csv")
    evals = progress.dropna(subset=["eval_return_mean"])
    hit = evals[evals["eval_return_mean"] >= TARGET]
    # wall_s of the last row: training and evaluations. The final checkpoint and evaluation
    # after the loop are not counted (the last of ``eval_s``).
    return _record(summary["wall_s"], summary["env_steps"],
                   (float(hit["wall_s"].iloc[0]), int(hit["env_steps"].iloc[0]))
                   if not hit.empty else None, sum(eval_s[:-1]),
                   [[int(s), float(m)] for s, m in zip(evals["env_steps"],
                                                        evals["eval_return_mean"], strict=True)]
                   ) | {"cpu_ms_per_step": cpu_ms_per_step(cpu_marks)}


# -- Stable-Baselines3 -------------------------------------------------------------------------
def sb3_model(seed: int, n_envs: int = 1, total_steps: int = MAX_STEPS):
    """SB3's DQN with the Zoo's CartPole-v1 settings (``n_envs`` > 1: vectorised, the same
    256 env steps and 128 updates per rollout, the target copied every 256 env steps)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # as ours: small nets on a busy CPU
    env = gym.make("CartPole-v1") if n_envs == 1 else make_vec_env(
        "CartPole-v1", n_envs=n_envs, seed=seed)
    return DQN(
        "MlpPolicy", env, learning_rate=2.3e-3, batch_size=64,
        buffer_size=100_000, learning_starts=1_000, gamma=0.99, target_update_interval=256,
        train_freq=256 // n_envs, gradient_steps=128,
        exploration_fraction=8_000 / total_steps,
        exploration_initial_eps=1.0, exploration_final_eps=0.04, max_grad_norm=10,
        policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", verbose=0,
    )


def sb3_eval_callback(seed: int) -> Any:
    """SB3 callback: evaluates like ours every EVAL_EVERY env steps, stops at TARGET."""
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalAfterUpdates(BaseCallback):
        """Evaluates when a rollout starts, i.e. right after the last rollout's updates."""

        def __init__(self) -> None:
            super().__init__()
            self.start, self.next_eval = time.monotonic(), EVAL_EVERY
            self.hit: tuple[float, int] | None = None
            self.eval_s, self.evals = 0.0, []
            self.cpu_marks: list[tuple[float, int]] = []  # (process CPU s, env steps)

        def _on_step(self) -> bool:
            return self.hit is None

        def _on_rollout_start(self) -> None:
            steps = self.num_timesteps
            self.cpu_marks.append((time.process_time(), steps))
            if steps < self.next_eval:
                return
            self.next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY

            def greedy(obs):
                return int(self.model.predict(obs, deterministic=True)[0])

            t = time.monotonic()
            mean = statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed,
                                                      len(self.evals)))
            self.eval_s += time.monotonic() - t
            self.evals.append([steps, mean])
            if mean >= TARGET:
                self.hit = (time.monotonic() - self.start, steps)

    return EvalAfterUpdates()


def run_sb3(seed: int) -> dict:
    model = sb3_model(seed)
    cb = sb3_eval_callback(seed)
    t0 = time.monotonic()
    model.learn(MAX_STEPS, callback=cb)
    wall = time.monotonic() - t0
    steps = cb.hit[1] if cb.hit else model.num_timesteps  # it stops one step after the hit
    return _record(wall, steps, cb.hit, cb.eval_s, cb.evals) | {
        "cpu_ms_per_step": cpu_ms_per_step(cb.cpu_marks)}


# -- Tianshou, in its own virtualenv ------------------------------------------------------------
def run_tianshou(seed: int, workdir: Path, python: Path) -> dict:
    """``peer_tianshou_dqn.py`` under Tianshou's interpreter; its JSON record."""
    import subprocess

    out = workdir / f"tianshou-{seed}.json"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([str(python), str(Path(__file__).with_name("peer_tianshou_dqn.py")),
                    "--seed", str(seed), "--out", str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


# -- RLlib's built-in DQN ----------------------------------------------------------------------
def run_rllib(seed: int, budget_s: float) -> dict:
    import torch
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    config = (
        DQNConfig()
        .environment("CartPole-v1")
        # 256 steps per rollout; with training_intensity 32 (replayed / sampled steps) and
        # batches of 64 RLlib then takes 128 updates per rollout, as SB3 and ours.
        .env_runners(num_env_runners=0, rollout_fragment_length=256)
        .training(
            lr=2.3e-3, gamma=0.99, train_batch_size_per_learner=64, n_step=1,
            double_q=False, dueling=False, num_atoms=1, noisy=False,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
            target_network_update_freq=256, num_steps_sampled_before_learning_starts=1_000,
            epsilon=[(0, 1.0), (8_000, 0.04)], training_intensity=32, grad_clip=10.0,
            grad_clip_by="global_norm", td_error_loss_fn="huber",
        )
        .rl_module(model_config=DefaultModelConfig(
            fcnet_hiddens=[256, 256], fcnet_activation="relu", head_fcnet_hiddens=[]))
        .debugging(seed=seed, log_level="ERROR")
    )
    algo = config.build_algo()
    torch.set_num_threads(1)

    def greedy(obs):
        with torch.no_grad():
            out = algo.get_module().forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
        return int(out[Columns.ACTIONS][0])

    t0, steps, next_eval, hit, eval_s, evals = time.monotonic(), 0, EVAL_EVERY, None, 0.0, []
    while steps < MAX_STEPS and time.monotonic() - t0 < budget_s:
        result = algo.train()
        steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        if steps >= next_eval:
            next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY
            t = time.monotonic()
            mean = statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed,
                                                      len(evals)))
            eval_s += time.monotonic() - t
            evals.append([steps, mean])
            if mean >= TARGET:
                hit = (time.monotonic() - t0, steps)
                break
    wall = time.monotonic() - t0
    algo.stop()
    return _record(wall, steps, hit, eval_s, evals) | {
        "budget_s": budget_s, "budget_hit": hit is None and steps < MAX_STEPS}


# -- Pong --------------------------------------------------------------------------------------
def pong(steps: int, learning_starts: int, workdir: Path) -> dict:
    import pandas as pd
    import torch
    from stable_baselines3 import DQN

    from deepmorning.rl import envs
    from deepmorning.rl.runner import TrainRequest, train

    overrides = {"learning_starts": learning_starts, "replay_capacity": 20_000,
                 "env_steps_per_iteration": 1_000, "eval_episodes": 1}
    train(TrainRequest(algo="dqn", env="ALE/Pong-v5", preset="nature", timesteps=steps,
                       overrides=overrides, quiet=True, output=workdir / "ours-pong",
                       checkpoint_every=10_000))
    progress = pd.read_csv(workdir / "ours-pong" / "progress.csv")
    before = progress[progress["env_steps"] <= learning_starts].iloc[-1]
    last = progress.iloc[-1]  # total steps / total seconds after learning starts
    ours = (last["env_steps"] - before["env_steps"]) / (last["wall_s"] - before["wall_s"])

    torch.set_num_threads(1)
    model = DQN("CnnPolicy", envs.make_env("ALE/Pong-v5", train=True), learning_rate=2.5e-4,
                batch_size=32, buffer_size=20_000, learning_starts=learning_starts,
                train_freq=4, gradient_steps=1, target_update_interval=10_000,
                exploration_fraction=1.0, optimize_memory_usage=False, device="cpu",
                policy_kwargs={"normalize_images": True}, verbose=0)
    model.learn(learning_starts)
    t0 = time.monotonic()
    model.learn(steps - learning_starts, reset_num_timesteps=False)
    sb3 = (steps - learning_starts) / (time.monotonic() - t0)
    return {"ours": float(ours), "sb3": sb3, "steps": steps, "learning_starts": learning_starts}


# -- report ------------------------------------------------------------------------------------
def median(xs: list[float]) -> float:
    """Median with an unreached target (NaN) counted as never: +inf."""
    return statistics.median([math.inf if math.isnan(x) else x for x in xs]) if xs else math.nan


def cartpole_table(results: dict[str, list[dict]]) -> dict:
    print("\nCartPole-v1, same hyperparameters, median over seeds")
    print(f"{'agent':6} {'env steps/s':>12} {'s to 475':>10} {'steps to 475':>13} "
          f"{'reached':>8} {'CPU ms/step':>12}")
    summary: dict[str, dict] = {}
    for name, runs in results.items():
        if not runs:
            continue
        steps = [r["steps_to_target"] for r in runs]
        summary[name] = {
            "steps_per_s": median([r["steps_per_s"] for r in runs]),
            "time_to_target": median([r["time_to_target"] for r in runs]),
            "steps_to_target": median([math.nan if s is None else s for s in steps]),
            "reached": sum(s is not None for s in steps), "seeds": len(runs),
            "cpu_ms_per_step": median([r.get("cpu_ms_per_step", math.nan) for r in runs])}
        s = summary[name]
        print(f"{name:6} {s['steps_per_s']:12.1f} {s['time_to_target']:10.1f} "
              f"{s['steps_to_target']:13.0f} {s['reached']:>5}/{len(runs)} "
              f"{s['cpu_ms_per_step']:12.3f}")
    ratios = {}
    for peer in ("sb3", "tianshou", "rllib"):
        if "ours" not in summary or peer not in summary:
            continue
        sps = summary["ours"]["steps_per_s"] / summary[peer]["steps_per_s"]
        ttt = summary["ours"]["time_to_target"] / summary[peer]["time_to_target"]
        ratios[peer] = {"steps_per_s_ours_over_peer": sps, "time_to_475_ours_over_peer": ttt}
        print(f"ours vs {peer}: env steps/s ours/{peer} x{sps:.2f} (>= 1: ours faster); "
              f"wall clock to {TARGET:g} ours/{peer} x{ttt:.2f} (<= 1: ours sooner)")
        if len(results["ours"]) == len(results[peer]):  # seed by seed, the same seeds
            pairs = list(zip(results["ours"], results[peer], strict=True))
            ratios[peer]["per_seed_steps_per_s"] = [o["steps_per_s"] / q["steps_per_s"]
                                                    for o, q in pairs]
            ratios[peer]["per_seed_time_to_475"] = [o["time_to_target"] / q["time_to_target"]
                                                    for o, q in pairs]
            print("  per seed, env steps/s:", " ".join(
                f"x{r:.2f}" for r in ratios[peer]["per_seed_steps_per_s"]),
                "; time to 475:", " ".join(
                f"x{r:.2f}" for r in ratios[peer]["per_seed_time_to_475"]))
    return {"summary": summary, "ratios": ratios}


def load() -> list[float]:
    return list(os.getloadavg())


def concurrent(args: argparse.Namespace) -> None:
    """Ours and SB3 side by side on the 2 cores, one seed at a time, then the same table."""
    import subprocess

    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "load_at_start": load()}
    results: dict[str, list[dict]] = {"ours": [], "sb3": []}
    workdir = Path(tempfile.mkdtemp(prefix="bench-dqn-pairs-"))
    for seed in range(args.seed_from, args.seed_from + args.seeds):
        children = {}
        for name in results:
            skip = [f"--skip={other}" for other in ("ours", "sb3", "tianshou", "rllib")
                    if other != name]
            out = workdir / f"{name}-{seed}.json"
            children[name] = (out, subprocess.Popen(
                [sys.executable, __file__, "--only", "cartpole", "--seeds", "1",
                 "--seed-from", str(seed), *skip, "--results", str(out)],
                stdout=subprocess.DEVNULL))
        for name, (out, child) in children.items():
            if child.wait() != 0:
                raise SystemExit(f"error: the {name} run of seed {seed} failed")
            results[name] += json.loads(out.read_text())["cartpole"]["runs"][name]
            print(f"{name:5} {seed}", {k: v for k, v in results[name][-1].items()
                                       if k != "evals"}, flush=True)
    record["cartpole"] = {"runs": results, **cartpole_table(results)}
    record["load_at_end"] = load()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(f"raw results: {args.results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rllib-budget", type=float, default=180.0,
                        help="seconds per seed for RLlib's built-in DQN; at least 1.5x the "
                        "time ours took on the same seed in any case")
    parser.add_argument("--only", choices=["cartpole", "pong"], default=None)
    parser.add_argument("--skip", choices=["ours", "sb3", "tianshou", "rllib"], action="append",
                        default=[])
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON,
                        help="interpreter of Tianshou's virtualenv")
    parser.add_argument("--pong-steps", type=int, default=4_000)
    parser.add_argument("--pong-learning-starts", type=int, default=1_000)
    parser.add_argument("--results", type=Path, default=RESULTS, help="raw results (JSON)")
    parser.add_argument("--seed-from", type=int, default=0, help="first seed")
    parser.add_argument("--concurrent", action="store_true",
                        help="CartPole: run ours and SB3 at the same time, one process each, "
                        "seed by seed (both see the same machine load)")
    args = parser.parse_args()
    if args.concurrent:
        concurrent(args)
        return

    from deepmorning.platform.runtime import connect

    connect(None, log_to_driver=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dqn-"))
    record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "load_at_start": load()}
    if args.only != "pong":
        results: dict[str, list[dict]] = {"ours": [], "sb3": [], "tianshou": [], "rllib": []}
        if "tianshou" not in args.skip and not args.peer_python.exists():
            print(f"note: {args.peer_python} not found, Tianshou skipped (docs/rl.md)")
            args.skip.append("tianshou")
        for seed in range(args.seed_from, args.seed_from + args.seeds):  # interleaved per seed
            for name in ("ours", "sb3", "tianshou", "rllib"):
                if name in args.skip:
                    continue
                before = load()
                if name == "ours":
                    res = run_ours(seed, workdir)
                elif name == "sb3":
                    res = run_sb3(seed)
                elif name == "tianshou":
                    res = run_tianshou(seed, workdir, args.peer_python)
                else:
                    ours_s = [r["wall_s"] for r in results["ours"] if r["seed"] == seed]
                    res = run_rllib(seed, max([args.rllib_budget, *(1.5 * s for s in ours_s)]))
                res |= {"seed": seed, "load_before": before, "load_after": load()}
                results[name].append(res)
                print(f"{name:5} {seed}", {k: v for k, v in res.items() if k != "evals"},
                      flush=True)
        record["cartpole"] = {"runs": results, **cartpole_table(results)}
    if args.only != "cartpole":
        res = pong(args.pong_steps, args.pong_learning_starts, workdir)
        res["ratio"] = res["ours"] / res["sb3"]
        record["pong"] = res
        print(f"\nALE/Pong-v5, Nature preset, 1 update of 32 per 4 steps (ours: 4 envs per "
              f"EnvRunner, 250 updates per 1,000-step iteration; SB3: 1 env, 1 update per "
              f"4 steps): training env steps/s (total/total) ours {res['ours']:.1f}, "
              f"sb3 {res['sb3']:.1f}, ratio x{res['ratio']:.2f}")
    record["load_at_end"] = load()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(record, indent=1, default=float) + "\n")
    print(f"raw results: {args.results}")


if __name__ == "__main__":
    main()
