"""Cost of one DQN gradient update on CartPole: ours (lean and RLlib's path) vs SB3's train().

    python benchmarks/dqn_update_cost.py --rounds 9 --out benchmarks/results/dqn_update_cost.json

Same process, same settings (the ``cartpole`` preset / the Zoo's: MLP 256-256, batch 64, Adam
2.3e-3, Huber, grad norm 10, 128 updates per call), each agent past ``learning_starts`` with a
replay of a few thousand CartPole steps. One round times one call of 128 updates of each
agent, in turn (ours lean, ours through RLlib's ``TorchLearner._update`` per step, SB3), so
the three see the same machine load; printed: the median over rounds of ms per update and,
a figure that does not depend on the load, Python function calls per update under cProfile.

Ours includes what ``learn_from_replay`` does per iteration (replay draw, the Learner call,
the weight sync to the EnvRunner); SB3's ``train()`` draws one minibatch per update itself.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dqn import sb3_model  # noqa: E402

UPDATES = 128
BATCH = 64


def agents(seed: int) -> dict:
    """name -> a function that takes one call of 128 updates."""
    from deepmorning.platform.runtime import connect
    from deepmorning.rl.dqn import build_config
    from deepmorning.rl.offpolicy import learn_from_replay
    from deepmorning.rl.registry import get

    model = sb3_model(seed)
    model.learn(2_048)
    connect(None, log_to_driver=False)
    hp = get("dqn").preset("cartpole")
    algo = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": seed}).build_algo()
    for _ in range(8):  # 2,048 env steps: past learning_starts (1,000)
        algo.train()
    learner = algo.learner_group._learner

    def ours(lean: bool):
        def call() -> None:
            learner.lean = lean
            learn_from_replay(algo, algo.replay, UPDATES, BATCH, algo.env_steps,
                              learner_splits=True)
        return call

    return {"ours_lean": ours(True), "ours_rllib_path": ours(False),
            "sb3": lambda: model.train(gradient_steps=UPDATES, batch_size=BATCH)}


def calls_per_update(call) -> float:
    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    return pstats.Stats(profile).total_calls / UPDATES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="raw results (JSON)")
    args = p.parse_args()
    runs = agents(args.seed)
    for call in runs.values():  # warm-up: optimizer state, allocator
        call()
    ms: dict[str, list[float]] = {name: [] for name in runs}
    load_start = os.getloadavg()
    for _ in range(args.rounds):
        for name, call in runs.items():
            t = time.perf_counter()
            call()
            ms[name].append(1000 * (time.perf_counter() - t) / UPDATES)
    calls = {name: calls_per_update(call) for name, call in runs.items()}
    record = {"rounds": args.rounds, "updates_per_call": UPDATES, "batch": BATCH,
              "load_start": load_start, "load_end": os.getloadavg(), "ms_per_update": ms,
              "median_ms_per_update": {k: statistics.median(v) for k, v in ms.items()},
              "calls_per_update": calls}
    for name in runs:
        print(f"{name:16} {record['median_ms_per_update'][name]:6.3f} ms/update (median of "
              f"{args.rounds}), {calls[name]:6.0f} Python calls/update")
    print(f"load average {load_start[0]:.1f} -> {record['load_end'][0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
