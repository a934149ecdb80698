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
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dqn import EVAL_EVERY, TARGET, eps_greedy_returns, sb3_eval_callback, sb3_model  # noqa: E402


def ours(seed: int, overrides: dict, max_steps: int, evaluator: str,
         reseed_at_eval: bool = False) -> dict:
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
    other, off_clock = [], 0.0  # the other evaluator's verdict, its time off the clock
    while steps < max_steps:
        algo.train()
        steps = algo.env_steps
        if steps >= next_eval:
            next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY
            if reseed_at_eval:  # the evaluation before issue 12 part 2 reseeded the driver's
                torch.manual_seed(seed)  # global RNG, which the local EnvRunner's ε draws use
            common = statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed,
                                                        len(evals)))
            t1 = time.monotonic()
            runner = statistics.mean(run_episodes(algo.get_module(), "CartPole-v1", 10, seed,
                                                  len(evals)))
            off_clock += time.monotonic() - t1
            mean, alt = (runner, common) if evaluator == "runner" else (common, runner)
            evals.append((steps, mean))
            other.append((steps, alt))
            if mean >= TARGET:
                hit = (time.monotonic() - t0 - off_clock, steps)
                break
    wall = time.monotonic() - t0 - off_clock
    algo.stop()
    return {"wall_s": wall, "env_steps": steps, "steps_per_s": steps / wall,
            "time_to_target": hit[0] if hit else None,
            "steps_to_target": hit[1] if hit else None, "evals": evals,
            "evals_other_evaluator": other}


def sb3(seed: int, n_envs: int, max_steps: int) -> dict:
    model = sb3_model(seed, n_envs=n_envs, total_steps=max_steps)
    cb = sb3_eval_callback(seed)
    t0 = time.monotonic()
    model.learn(max_steps, callback=cb)
    wall = time.monotonic() - t0
    hit = cb.hit
    return {"wall_s": wall, "env_steps": model.num_timesteps,
            "steps_per_s": model.num_timesteps / wall,
            "time_to_target": hit[0] if hit else None,
            "steps_to_target": hit[1] if hit else None, "evals": cb.evals}


# -- mechanics: target-copy schedule, initialisation, replay draws, where the time goes -------
def mechanics(seed: int, num_envs: int, iterations: int) -> dict:
    """Measured on one short run of each agent (no training to 475)."""
    import numpy as np
    import stable_baselines3.dqn.dqn as sb3_dqn

    import deepmorning.rl.dqn.algorithm as our_algorithm
    import deepmorning.rl.dqn.learner as our_learner
    from deepmorning.rl.dqn import build_config
    from deepmorning.rl.registry import get

    out: dict = {}
    # SB3: which update count each target copy follows; where its time goes.
    model = sb3_model(seed)
    sb3_init = _weight_stats(model.q_net.q_net[0].weight)
    sb3_copies: list[int] = []
    polyak = sb3_dqn.polyak_update

    def recording_polyak(*args, **kwargs):
        new = not sb3_copies or sb3_copies[-1] != (model.num_timesteps, model._n_updates)
        if model.num_timesteps > model.learning_starts and new:  # params, then BN stats
            sb3_copies.append((model.num_timesteps, model._n_updates))
        return polyak(*args, **kwargs)

    sb3_dqn.polyak_update = recording_polyak
    model.learn(1280)  # past learning_starts, as ours below
    with timed_calls(model, ("collect_rollouts", "train")) as times:
        t0 = time.perf_counter()
        model.learn(iterations * 256, reset_num_timesteps=False)
        wall = time.perf_counter() - t0
    sb3_dqn.polyak_update = polyak
    out["sb3"] = {"target_copy_at_env_step_after_update": sb3_copies[:4],
                  "s_per_256_steps": {"total": wall / iterations,
                                      **{k: v / iterations for k, v in times.items()},
                                      "rest": (wall - sum(times.values())) / iterations},
                  "init_first_layer": sb3_init}

    # ours
    hp = get("dqn").preset("cartpole") | {"num_envs": num_envs}
    algo = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": seed}).build_algo()
    learner = algo.learner_group._learner
    ours_init = _weight_stats(algo.get_module().q_net[0].weight)
    our_copies: list[int] = []
    copy = our_learner.update_target_network

    def recording_copy(**kwargs):
        our_copies.append((algo.env_steps, learner._num_updates))
        return copy(**kwargs)

    our_learner.update_target_network = recording_copy
    for _ in range(5):
        algo.train()
    with timed_calls(our_algorithm, ("sample_into_replay", "learn_from_replay")) as totals:
        t0 = time.perf_counter()
        for _ in range(iterations):
            algo.train()
        wall = time.perf_counter() - t0
    our_learner.update_target_network = copy
    # replay: uniform over the stored steps? terminal transitions drawn as often as stored?
    replay = algo.replay
    starts = replay._episode_starts()
    drawn = replay.rng.integers(replay.get_num_timesteps(), size=200_000)
    counts = np.bincount(drawn, minlength=replay.get_num_timesteps())
    batch = replay.sample_transitions(200_000)
    stored_terminal = sum(bool(e.is_terminated) for e in replay.episodes)
    out["ours"] = {"target_copy_at_env_step_after_update": our_copies[:4],
                   "s_per_256_steps": {"total": wall / iterations,
                                       **{k: v / iterations for k, v in totals.items()},
                                       "rest": (wall - sum(totals.values())) / iterations},
                   "init_first_layer": ours_init,
                   "replay_steps": int(starts[-1]),
                   "replay_draw_count_cv": float(counts.std() / counts.mean()),
                   "replay_draw_count_cv_expected": float(1 / np.sqrt(counts.mean())),
                   "terminal_fraction_drawn": float(batch["terminateds"].mean()),
                   "terminal_fraction_stored": stored_terminal / int(starts[-1])}
    out["init_bound"] = 0.5  # torch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in 4
    algo.stop()
    return out


@contextlib.contextmanager
def timed_calls(owner: Any, names: tuple[str, ...]) -> Iterator[dict[str, float]]:
    """Replace each ``owner.<name>`` (a method of an object, a function of a module) by a
    wrapper that adds its seconds to the yielded ``{name: seconds}``; the originals are put
    back on exit."""
    totals = dict.fromkeys(names, 0.0)
    originals = {name: getattr(owner, name) for name in names}

    def timed(name: str, function: Callable) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            result = function(*args, **kwargs)
            totals[name] += time.perf_counter() - t
            return result
        return call

    for name, function in originals.items():
        setattr(owner, name, timed(name, function))
    try:
        yield totals
    finally:
        for name, function in originals.items():
            setattr(owner, name, function)


def _weight_stats(weight) -> dict:
    w = weight.detach()
    return {"std": float(w.std()), "absmax": float(w.abs().max()), "mean": float(w.mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agent", choices=["ours", "sb3", "mechanics"])
    p.add_argument("--iterations", type=int, default=20, help="mechanics: timed rollouts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="ours: KEY=VALUE (JSON value)")
    p.add_argument("--n-envs", type=int, default=1, help="sb3: vectorised envs")
    p.add_argument("--evaluator", choices=["common", "runner"], default="common")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--reseed-at-eval", action="store_true",
                   help="ours: torch.manual_seed(seed) in the driver at every evaluation")
    p.add_argument("--label", default="")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.agent == "mechanics":
        res = mechanics(args.seed, int(overrides.get("num_envs", 1)), args.iterations)
    elif args.agent == "ours":
        res = ours(args.seed, overrides, args.max_steps, args.evaluator, args.reseed_at_eval)
    else:
        res = sb3(args.seed, args.n_envs, args.max_steps)
    row = {"label": args.label or args.agent, "agent": args.agent, "seed": args.seed,
           "overrides": overrides, "n_envs": args.n_envs, "evaluator": args.evaluator, **res}
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps({k: v for k, v in row.items() if k != "evals"}), flush=True)


if __name__ == "__main__":
    main()
