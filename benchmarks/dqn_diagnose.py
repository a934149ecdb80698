"""Why does our DQN need more env steps than SB3 on CartPole? One variant, one seed per call.

    python benchmarks/dqn_diagnose.py ours --seed 0 --set num_envs=1 --out results.jsonl
    python benchmarks/dqn_diagnose.py sb3 --seed 0 --n-envs 8 --out results.jsonl

Both agents are driven here with the *same* evaluation (``bench_dqn.eps_greedy_returns``:
10 episodes, ε = 0.05 around the greedy action, the same reset seeds), evaluated after the
updates of the first 256-step rollout at or past each multiple of 5,000 env steps, and stop at
an evaluation mean of 475 or after ``--max-steps``. One JSON line per run goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dqn import EVAL_EVERY, TARGET, eps_greedy_returns, sb3_model  # noqa: E402


def ours(seed: int, overrides: dict, max_steps: int, evaluator: str) -> dict:
    import torch

    from deepmorning.platform.runtime import connect
    from deepmorning.rl.dqn import build_config
    from deepmorning.rl.registry import get
    from deepmorning.rl.runner import run_episodes

    connect(None, log_to_driver=False)
    hp = get("dqn").preset("cartpole") | overrides
    algo = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": seed}).build_algo()

    def greedy(obs):
        with torch.no_grad():
            q = algo.get_module().q_values(torch.as_tensor(obs[None]))
        return int(q.argmax(-1)[0])

    t0, steps, next_eval, hit, evals = time.monotonic(), 0, EVAL_EVERY, None, []
    while steps < max_steps:
        algo.train()
        steps = algo.env_steps
        if steps >= next_eval:
            next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY
            if evaluator == "runner":
                returns = run_episodes(algo.get_module(), "CartPole-v1", 10, seed)
            else:
                returns = eps_greedy_returns(greedy, "CartPole-v1", seed)
            evals.append((steps, statistics.mean(returns)))
            if evals[-1][1] >= TARGET:
                hit = (time.monotonic() - t0, steps)
                break
    wall = time.monotonic() - t0
    algo.stop()
    return {"wall_s": wall, "env_steps": steps, "steps_per_s": steps / wall,
            "time_to_target": hit[0] if hit else None,
            "steps_to_target": hit[1] if hit else None, "evals": evals}


def sb3(seed: int, n_envs: int, max_steps: int) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalAfterUpdates(BaseCallback):
        """Evaluates at the start of a rollout, i.e. after the previous rollout's updates."""

        def __init__(self) -> None:
            super().__init__()
            self.start, self.next_eval = time.monotonic(), EVAL_EVERY
            self.hit, self.evals = None, []

        def _on_step(self) -> bool:
            return self.hit is None

        def _on_rollout_start(self) -> None:
            steps = self.num_timesteps
            if steps < self.next_eval:
                return
            self.next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY

            def greedy(obs):
                return int(self.model.predict(obs, deterministic=True)[0])

            self.evals.append((steps, statistics.mean(
                eps_greedy_returns(greedy, "CartPole-v1", seed))))
            if self.evals[-1][1] >= TARGET:
                self.hit = (time.monotonic() - self.start, steps)

    model = sb3_model(seed, n_envs=n_envs, total_steps=max_steps)
    cb = EvalAfterUpdates()
    t0 = time.monotonic()
    model.learn(max_steps, callback=cb)
    wall = time.monotonic() - t0
    hit = cb.hit
    return {"wall_s": wall, "env_steps": model.num_timesteps,
            "steps_per_s": model.num_timesteps / wall,
            "time_to_target": hit[0] if hit else None,
            "steps_to_target": hit[1] if hit else None, "evals": cb.evals}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent", choices=["ours", "sb3"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="ours: KEY=VALUE (JSON value)")
    p.add_argument("--n-envs", type=int, default=1, help="sb3: vectorised envs")
    p.add_argument("--evaluator", choices=["common", "runner"], default="common")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--label", default="")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.agent == "ours":
        res = ours(args.seed, overrides, args.max_steps, args.evaluator)
    else:
        res = sb3(args.seed, args.n_envs, args.max_steps)
    row = {"label": args.label or args.agent, "agent": args.agent, "seed": args.seed,
           "overrides": overrides, "n_envs": args.n_envs, "evaluator": args.evaluator, **res}
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "evals"}), flush=True)


if __name__ == "__main__":
    main()
