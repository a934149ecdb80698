"""Tianshou's DQN on CartPole-v1 with bench_dqn.py's settings, in Tianshou's own virtualenv.

    /work/venv-peer/bin/python benchmarks/peer_tianshou_dqn.py --seed 0 --out run.json

Tianshou 2.0 pins pandas < 3 and an older filelock, which would replace the project's, so it
lives in a separate virtualenv (``/work/venv-peer``) that reads the project's packages (torch
2.13 CPU included) through a ``.pth`` file and adds only Tianshou and its pins
(docs/rl.md, "A third peer"). ``bench_dqn.py`` starts this script as a subprocess per seed
and reads back the JSON record (the same fields as its own runs).

Settings as the other agents (``cartpole`` preset, RL Baselines3 Zoo): MLP 256-256 ReLU,
Adam 2.3e-3, batch 64, replay 100k, 1,000 uniformly random steps first, then rollouts of 256
env steps with frozen weights followed by 128 updates, target copied every 128 updates
(before each rollout's updates, as SB3), ε 1 → 0.04 over 8,000 env steps (set per rollout),
Huber loss (δ = 1), gradient norm clipped at 10, plain DQN (no double Q, n-step 1), one env,
one torch thread. Evaluation: ``bench_dqn.eps_greedy_returns`` (ε = 0.05, the runner's reset
seeds) right after the updates of the rollout that reaches each multiple of 5,000 steps;
stop at a mean of 475 or after 100k steps.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dqn import (  # noqa: E402
    EVAL_EVERY,
    MAX_STEPS,
    TARGET,
    _record,
    cpu_ms_per_step,
    eps_greedy_returns,
)

ROLLOUT, UPDATES, BATCH, LEARNING_STARTS = 256, 128, 64, 1_000


def run(seed: int) -> dict:
    import gymnasium as gym
    import torch
    from tianshou.algorithm.modelfree.dqn import DQN, DiscreteQLearningPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)

    class QNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 256),
                                     nn.ReLU(), nn.Linear(256, 2))

        def forward(self, obs, state=None, info=None):
            return self.net(torch.as_tensor(np.asarray(obs), dtype=torch.float32)), state

    class ClippedDQN(DQN):
        """Tianshou's DQN with SB3's gradient norm clip (its DQN takes none)."""

        def _create_policy_optimizer(self, optim):
            return self._create_optimizer(self.policy, optim, max_grad_norm=10.0)

    env = DummyVectorEnv([lambda: gym.make("CartPole-v1")])
    env.seed(seed)
    model = QNet()
    policy = DiscreteQLearningPolicy(model=model, action_space=gym.spaces.Discrete(2),
                                     eps_training=1.0, eps_inference=1.0)
    algo = ClippedDQN(policy=policy, optim=AdamOptimizerFactory(lr=2.3e-3), gamma=0.99,
                      target_update_freq=UPDATES, is_double=False, huber_loss_delta=1.0)
    buffer = VectorReplayBuffer(100_000, 1)
    collector = Collector(algo, env, buffer, exploration_noise=True)
    collector.reset()

    def greedy(obs) -> int:
        with torch.no_grad():
            return int(model(obs[None])[0].argmax())

    start, steps, hit = time.monotonic(), 0, None
    next_eval, eval_s, evals, cpu_marks = EVAL_EVERY, 0.0, [], []
    policy.is_within_training_step = True
    collector.collect(n_step=LEARNING_STARTS, random=True)
    steps = LEARNING_STARTS
    while steps < MAX_STEPS and hit is None:
        cpu_marks.append((time.process_time(), steps))
        eps = max(0.04, 1.0 - (1.0 - 0.04) * steps / 8_000)
        policy.set_eps_training(eps)
        policy.set_eps_inference(eps)
        model.eval()
        collector.collect(n_step=ROLLOUT)
        steps += ROLLOUT
        model.train()
        for _ in range(UPDATES):
            algo.update(buffer=buffer, sample_size=BATCH)
        if steps >= next_eval:
            next_eval = (steps // EVAL_EVERY + 1) * EVAL_EVERY
            t = time.monotonic()
            model.eval()
            mean = statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed, len(evals)))
            eval_s += time.monotonic() - t
            evals.append([steps, mean])
            print(f"  tianshou seed={seed} steps={steps} eval={mean:.1f} "
                  f"wall={time.monotonic() - start:.0f}s", file=sys.stderr, flush=True)
            if mean >= TARGET:
                hit = (time.monotonic() - start, steps)
    wall = time.monotonic() - start
    return _record(wall, steps, hit, eval_s, evals) | {
        "cpu_ms_per_step": cpu_ms_per_step(cpu_marks), "seed": seed}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    result = run(args.seed)
    args.out.write_text(json.dumps(result, default=float) + "\n")
    print({k: v for k, v in result.items() if k != "evals"},
          "hit" if not math.isnan(result["time_to_target"]) else "no hit")


if __name__ == "__main__":
    main()
