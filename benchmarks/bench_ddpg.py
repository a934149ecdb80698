"""Pendulum-v1: deepmorning's DDPG (RLlib new API stack) vs Stable-Baselines3 DDPG.

Both run the ``pendulum`` preset's hyperparameters (actor and critic Adam at 1e-3, no weight
decay, gamma 0.98, tau 0.005, batch 128, replay 2e5, 1,000 uniformly random warm-up steps and
learning from then on, one gradient step per env step, Gaussian noise with sigma 0.1 of the
half action range, 400-300 ReLU networks, one torch thread each). One known difference:
SB3's critic takes the action at its input layer, ours at the second layer (the paper's).

For each seed, every ``--eval-every`` env steps both are evaluated on ``--eval-episodes``
deterministic episodes; the clock stops while evaluating. Both evaluate alike: evaluation
number k of a seed resets its episodes with ``deepmorning.rl.runner.evaluation_seeds(seed, k,
episodes)``, the runner's protocol (fresh start states per evaluation, none shared between
seeds), so ours and SB3 play the same start states at the same evaluation. Reported per
seed: env steps and training wall-clock until the mean evaluation return first reaches
``--target`` (-200), and env steps/s over the training. The closing lines print ours/SB3
ratios of the medians.

    python benchmarks/bench_ddpg.py                 # 3 seeds, up to 30k steps each
    python benchmarks/bench_ddpg.py --seeds 0 --max-steps 10000   # a quick look
    python benchmarks/bench_ddpg.py --seeds 100 101 --csv benchmarks/results/ddpg_pendulum.csv

``--csv`` appends one row per evaluation (``kind=eval``) and one per finished run
(``kind=run``) as they happen, so a long run leaves its raw rows even if stopped.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV = "Pendulum-v1"
CSV_FIELDS = ("kind", "impl", "seed", "env_steps", "eval_return", "train_wall_s",
              "steps_to_target", "wall_to_target_s", "env_steps_per_s", "best_eval", "label")


def record(args: argparse.Namespace, **row: object) -> None:
    """Append one row to ``--csv`` (if given), flushed at once."""
    if not args.csv:
        return
    path = Path(args.csv)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({"label": args.label, **row})


@dataclass
class Outcome:
    name: str
    seed: int
    steps_to_target: int | None
    wall_to_target: float | None
    env_steps: int
    train_wall: float
    best_eval: float

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.train_wall if self.train_wall else math.nan


def overrides(args: argparse.Namespace) -> dict:
    """``--set KEY=VALUE`` pairs, parsed as the CLI's ``--set``."""
    from deepmorning.rl.cli import parse_overrides

    return parse_overrides(tuple(args.overrides))


def run_ours(seed: int, args: argparse.Namespace) -> Outcome:
    import ray

    from deepmorning.platform.runtime import connect
    from deepmorning.rl import registry, runner

    connect(None, num_cpus=2, include_dashboard=False, log_to_driver=False)
    spec = registry.get("ddpg")
    run_cfg = {"env": ENV, "seed": seed, "num_env_runners": 0, "num_gpus_per_learner": 0,
               "hyperparameters": {**spec.preset("pendulum"), **overrides(args)}}
    algo = spec.build_config(run_cfg).build_algo()
    steps, train_wall, best = 0, 0.0, -math.inf
    next_eval, evaluations = args.eval_every, 0
    reached: tuple[int, float] | None = None
    try:
        while steps < args.max_steps:
            t0 = time.perf_counter()
            result = algo.train()
            train_wall += time.perf_counter() - t0
            steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
            if steps >= next_eval:
                next_eval = (steps // args.eval_every + 1) * args.eval_every
                mean = float(np.mean(runner.run_episodes(algo.get_module(), ENV,
                                                         args.eval_episodes, seed, evaluations)))
                evaluations += 1
                best = max(best, mean)
                print(f"  ours  seed={seed} steps={steps:6d} eval={mean:8.1f} "
                      f"train_wall={train_wall:6.1f}s", flush=True)
                record(args, kind="eval", impl="ours", seed=seed, env_steps=steps,
                       eval_return=round(mean, 2), train_wall_s=round(train_wall, 2))
                if mean >= args.target:
                    reached = (steps, train_wall)
                    break
    finally:
        algo.stop()
        ray.shutdown()
    return Outcome("ours", seed, *(reached or (None, None)), steps, train_wall, best)


def run_sb3(seed: int, args: argparse.Namespace) -> Outcome:
    import gymnasium as gym
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    from deepmorning.rl.ddpg.presets import pendulum
    from deepmorning.rl.runner import evaluation_seeds

    torch.set_num_threads(1)
    hp = pendulum()
    env = gym.make(ENV)
    eval_env = gym.make(ENV)
    n_act = env.action_space.shape[0]
    model = DDPG(
        "MlpPolicy", env, seed=seed, device="cpu", verbose=0,
        learning_rate=hp["critic_lr"], buffer_size=hp["replay_capacity"],
        learning_starts=hp["learning_starts"], batch_size=hp["train_batch_size"],
        tau=hp["tau"], gamma=hp["gamma"], train_freq=1, gradient_steps=1,
        # SB3 adds the noise in its [-1, 1]-scaled action space: sigma is in half-ranges too.
        action_noise=NormalActionNoise(np.zeros(n_act), hp["noise_sigma"] * np.ones(n_act)),
        policy_kwargs={"net_arch": list(hp["actor_hiddens"])},
    )
    assert hp["actor_lr"] == hp["critic_lr"], "SB3 has one learning rate for both nets"

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.train_wall, self.t0 = 0.0, time.perf_counter()
            self.best, self.reached = -math.inf, None
            self.next_eval, self.evaluations = args.eval_every, 0

        def evaluate(self) -> float:
            """Deterministic episodes from the runner's start states for this evaluation."""
            returns = []
            for reset_seed in evaluation_seeds(seed, self.evaluations, args.eval_episodes):
                obs, _ = eval_env.reset(seed=reset_seed)
                total, done = 0.0, False
                while not done:
                    action, _ = self.model.predict(obs, deterministic=True)
                    obs, reward, terminated, truncated, _ = eval_env.step(action)
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
            self.evaluations += 1
            return float(np.mean(returns))

        def _on_step(self) -> bool:
            steps = self.num_timesteps
            if steps < self.next_eval:
                return True
            self.train_wall += time.perf_counter() - self.t0
            self.next_eval += args.eval_every
            mean = self.evaluate()
            self.best = max(self.best, float(mean))
            print(f"  sb3   seed={seed} steps={steps:6d} eval={mean:8.1f} "
                  f"train_wall={self.train_wall:6.1f}s", flush=True)
            record(args, kind="eval", impl="sb3", seed=seed, env_steps=steps,
                   eval_return=round(mean, 2), train_wall_s=round(self.train_wall, 2))
            if mean >= args.target:
                self.reached = (steps, self.train_wall)
                return False
            self.t0 = time.perf_counter()
            return True

    clock = Clock()
    model.learn(total_timesteps=args.max_steps, callback=clock)
    if clock.reached is None:
        clock.train_wall += time.perf_counter() - clock.t0
    env.close()
    eval_env.close()
    return Outcome("sb3", seed, *(clock.reached or (None, None)), int(model.num_timesteps),
                   clock.train_wall, clock.best)


def _median(values: list[float | None]) -> float:
    """Median over seeds; a seed that never reached the target counts as +inf."""
    return statistics.median([math.inf if v is None else v for v in values])


def table(path: str) -> None:
    """A markdown table of a ``--csv`` file's finished runs, seed by seed, and the medians."""
    import pandas as pd

    runs = pd.read_csv(path)
    runs = runs[runs["kind"] == "run"]
    print("| seed | ours: env steps to −200 | SB3 | ours: wall to −200 (s) | SB3 | "
          "ours: env steps/s | SB3 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    by = {(r.impl, r.seed): r for r in runs.itertuples()}
    seeds = sorted({s for _, s in by})

    def cell(impl: str, seed: int, field: str, fmt: str) -> str:
        r = by.get((impl, seed))
        v = None if r is None else getattr(r, field)
        return "not reached" if r is not None and pd.isna(v) else (
            "–" if r is None else format(v, fmt))
    for seed in seeds:
        print(f"| {seed} | " + " | ".join(
            cell(impl, seed, field, fmt)
            for field, fmt in (("steps_to_target", ",.0f"), ("wall_to_target_s", ".1f"),
                               ("env_steps_per_s", ".1f")) for impl in ("ours", "sb3")) + " |")
    medians = []
    for field in ("steps_to_target", "wall_to_target_s", "env_steps_per_s"):
        for impl in ("ours", "sb3"):
            col = runs[runs["impl"] == impl][field]
            fill = 0.0 if field == "env_steps_per_s" else math.inf
            medians.append(statistics.median(col.fillna(fill)) if len(col) else math.nan)
    print("| median | " + " | ".join(f"{m:,.1f}" for m in medians) + " |")
    for impl in ("ours", "sb3"):
        r = runs[runs["impl"] == impl]
        print(f"{impl}: reached {r['steps_to_target'].notna().sum()}/{len(r)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=30_000)
    parser.add_argument("--eval-every", type=int, default=1_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--target", type=float, default=-200.0)
    parser.add_argument("--csv", default=None, help="append raw rows here as they happen")
    parser.add_argument("--label", default="", help="free text stored in every CSV row")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a pendulum preset value on our side (a variant)")
    parser.add_argument("--only", choices=("ours", "sb3"), default=None)
    parser.add_argument("--table", default=None, metavar="CSV",
                        help="print a markdown table of a --csv file's runs and exit")
    args = parser.parse_args()
    if args.table:
        table(args.table)
        return

    outcomes: list[Outcome] = []
    for seed in args.seeds:
        for name, run in (("ours", run_ours), ("sb3", run_sb3)):
            if args.only not in (None, name):
                continue
            o = run(seed, args)
            outcomes.append(o)
            record(args, kind="run", impl=o.name, seed=o.seed, env_steps=o.env_steps,
                   train_wall_s=round(o.train_wall, 2), steps_to_target=o.steps_to_target,
                   wall_to_target_s=(round(o.wall_to_target, 2)
                                     if o.wall_to_target is not None else None),
                   env_steps_per_s=round(o.steps_per_s, 1), best_eval=round(o.best_eval, 2))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")

    print(f"\n{ENV}, target mean eval return >= {args.target} "
          f"({args.eval_episodes} episodes every {args.eval_every} steps, max {args.max_steps})")
    print(f"{'impl':5} {'seed':>4} {'steps_to_target':>15} {'wall_to_target_s':>16} "
          f"{'env_steps/s':>11} {'best_eval':>9}")
    for o in outcomes:
        print(f"{o.name:5} {o.seed:4d} {o.steps_to_target or '-':>15} "
              f"{(f'{o.wall_to_target:.1f}' if o.wall_to_target else '-'):>16} "
              f"{o.steps_per_s:11.1f} {o.best_eval:9.1f}")
    ours = [o for o in outcomes if o.name == "ours"]
    sb3 = [o for o in outcomes if o.name == "sb3"]
    if not ours or not sb3:
        return
    reached = {n: sum(o.steps_to_target is not None for o in g) for n, g in
               (("ours", ours), ("sb3", sb3))}
    print(f"reached target: ours {reached['ours']}/{len(ours)}, sb3 {reached['sb3']}/{len(sb3)}")
    for label, key in (("env steps to target", "steps_to_target"),
                       ("wall-clock to target", "wall_to_target")):
        a = _median([getattr(o, key) for o in ours])
        b = _median([getattr(o, key) for o in sb3])
        print(f"ratio ours/sb3, median {label}: {a / b:.2f}  (ours {a:.1f}, sb3 {b:.1f})")
    a = statistics.median(o.steps_per_s for o in ours)
    b = statistics.median(o.steps_per_s for o in sb3)
    print(f"ratio ours/sb3, median env steps/s: {a / b:.2f}  (ours {a:.1f}, sb3 {b:.1f})")


if __name__ == "__main__":
    main()
