"""Atari sampling: ale-py's native C++ vector env against the Gymnasium wrapper stack, in one run.

ALE/Pong-v5, the training pipeline (deepmorning.rl.envs), 4 envs stepped together (the Atari
presets' ``num_envs``), two levels:

* ``env``: the vector env alone, random actions, no RLlib, no network;
* ``sample``: pure sampling through DQN's own EnvRunner (the ``nature`` preset's config,
  ``SingleAgentEnvRunner.sample``: ε-greedy with the Nature Q-network's forward pass on every
  step, episodes built, nothing stored, no learning), as ``training_step`` samples with 0
  remote EnvRunners.

Both paths live in this one process and are measured **interleaved** (round r: Gymnasium, then
native, each for ``--steps`` env steps), so that a load change on a shared machine hits both
alike. Per path: env steps / wall second, and CPU milliseconds per env step from the process's
CPU time (``time.process_time``: all threads, the native env's C++ threads included), and the
ratios native / Gymnasium. Raw results go to ``benchmarks/results/atari_vector.json``.

    python benchmarks/bench_atari_vector.py                      # 3 rounds of 2,000 steps
    python benchmarks/bench_atari_vector.py --rounds 5 --steps 4000 --threads 2
    python benchmarks/bench_atari_vector.py --show               # the saved table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "atari_vector.json"
ENV = "ALE/Pong-v5"
PATHS = ("gymnasium", "native")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def env_stepper(vector: str, num_envs: int, threads: int) -> Callable[[int], int]:
    """A function stepping ``vector``'s vector env n times with random actions (returns env
    steps taken)."""
    import gymnasium as gym

    from deepmorning.rl import envs

    if vector == "native":
        env = envs.make_native_atari_vector(ENV, num_envs, num_threads=threads)
    else:
        env = gym.vector.SyncVectorEnv(
            [lambda: envs.make_env(ENV, train=True)] * num_envs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n_actions = int(env.single_action_space.n)

    def run(steps: int) -> int:
        for _ in range(-(-steps // num_envs)):
            env.step(rng.integers(0, n_actions, num_envs))
        return -(-steps // num_envs) * num_envs

    return run


def runner_sampler(vector: str, num_envs: int, threads: int) -> Callable[[int], int]:
    """A function sampling n env steps through DQN's EnvRunner on ``vector``'s env."""
    import logging

    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from deepmorning.rl import registry

    logging.getLogger("ray.rllib").setLevel(logging.ERROR)
    spec = registry.get("dqn")
    hp = spec.preset("nature") | {"num_envs": num_envs, "atari_vector": vector}
    config = spec.build_config({"env": ENV, "hyperparameters": hp, "seed": 0})
    config.environment(env_config=config.env_config | {"num_threads": threads})
    runner = SingleAgentEnvRunner(config=config)
    runner.sample(num_timesteps=num_envs * 8, explore=True)  # warm-up: reset, first passes

    def run(steps: int) -> int:
        episodes = runner.sample(num_timesteps=steps, explore=True)
        return sum(len(e) for e in episodes)

    return run


def measure(run: Callable[[int], int], steps: int) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = run(steps)
    return {"env_steps": done, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - cpu0}


def bench(level: str, args: argparse.Namespace) -> dict:
    make = env_stepper if level == "env" else runner_sampler
    runs = {v: make(v, args.num_envs, args.threads) for v in PATHS}
    rounds = []
    for r in range(args.rounds):
        load = loadavg()
        rounds.append({"round": r, "loadavg": load,
                       **{v: measure(runs[v], args.steps) for v in PATHS}})
        print(f"  {level} round {r}: load {load[0]:.1f}, " + ", ".join(
            f"{v} {rounds[-1][v]['env_steps'] / rounds[-1][v]['wall_s']:.0f} steps/s"
            for v in PATHS), flush=True)
    totals = {}
    for v in PATHS:
        steps = sum(x[v]["env_steps"] for x in rounds)
        wall = sum(x[v]["wall_s"] for x in rounds)
        cpu = sum(x[v]["cpu_s"] for x in rounds)
        totals[v] = {"env_steps": steps, "wall_s": wall, "cpu_s": cpu,
                     "env_steps_per_s": steps / wall, "cpu_ms_per_env_step": 1000 * cpu / steps}
    return {"level": level, "rounds": rounds, "totals": totals}


def table(results: list[dict]) -> str:
    rows = ["| level | Gymnasium env steps/s | native env steps/s | ratio | "
            "Gymnasium CPU ms/env step | native CPU ms/env step | ratio (CPU per step) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        g, n = res["totals"]["gymnasium"], res["totals"]["native"]
        rows.append(
            f"| {res['level']} | {g['env_steps_per_s']:.0f} | {n['env_steps_per_s']:.0f} | "
            f"×{n['env_steps_per_s'] / g['env_steps_per_s']:.2f} | "
            f"{g['cpu_ms_per_env_step']:.3f} | {n['cpu_ms_per_env_step']:.3f} | "
            f"×{g['cpu_ms_per_env_step'] / n['cpu_ms_per_env_step']:.2f} less |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2_000, help="env steps per path per round")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="C++ threads of the native env (the EnvRunner default: 1)")
    parser.add_argument("--levels", nargs="+", default=["env", "sample"],
                        choices=["env", "sample"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--show", action="store_true", help="print the saved table and exit")
    args = parser.parse_args()
    if args.show:
        print(table(json.loads(args.out.read_text())["results"]))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    results = [bench(level, args) for level in args.levels]
    print("\n" + table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "env": ENV, "args": {k: str(v) for k, v in vars(args).items()},
        "cpu_count": os.cpu_count(), "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "results": results}, indent=2) + "\n")
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
