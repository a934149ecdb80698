"""Cost of one Nature-CNN DQN update on a CPU: our Learner vs Stable-Baselines3's ``train()``.

    python benchmarks/bench_dqn_learner.py --rounds 7 --updates 32 \\
        --out benchmarks/results/dqn_learner.json

Both sides in one process, same settings: the ``pong`` preset (Mnih et al. 2015's network on
4×84×84 uint8 frames, batch 32, Adam lr 1e-4, Huber loss, gradient norm clipped at 10) and
SB3's ``DQN("CnnPolicy")`` with the same values (its NatureCNN is the same network: three
convs 32/64/64, fc 512). Each replay holds ``--replay`` steps of random frames (what the
pixels show does not change the arithmetic), past ``learning_starts``.

One round times one call of ``--updates`` updates on each side, in turn, so both see the same
machine load (the machine may be busy: a ratio of interleaved rounds is still meaningful).
Ours is what ``DQN.training_step`` does for them: :func:`learn_from_replay` (the replay draw
of all the call's minibatches, one Learner call that takes the steps, the weight sync to the
EnvRunner); SB3's ``train(gradient_steps=U)`` draws one minibatch per update itself. Torch's
intra-op threads are set to ``--threads`` before each side's call (the setting is
process-wide). Printed: the median over rounds of ms per update, both, and the ratio, in
wall-clock and in CPU time of the process (``time.process_time``). On a shared, overloaded
machine the wall-clock mostly measures the wait for a core; with one torch thread the CPU time
is the cost of the update itself and barely depends on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ENV = "ALE/Pong-v5"
FRAMES = (4, 84, 84)
NUM_ACTIONS = 6  # Pong's minimal action set
EPISODE = 1_000  # steps per synthetic episode in the replays


def pong_hp() -> dict:
    from deepmorning.rl.registry import get

    return get("dqn").preset("pong")


def ours(seed: int, replay_steps: int, lean: bool = True) -> Callable[[int], None]:
    """A function taking ``n`` of our updates, as ``DQN.training_step`` does."""
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    from deepmorning.platform.runtime import connect
    from deepmorning.rl.dqn import build_config
    from deepmorning.rl.offpolicy import learn_from_replay

    connect(None, log_to_driver=False)
    hp = pong_hp()
    run = {"env": ENV, "hyperparameters": hp, "seed": seed, "num_env_runners": 0}
    algo = build_config(run).build_algo()
    rng = np.random.default_rng(seed)
    for start in range(0, replay_steps, EPISODE):
        n = min(EPISODE, replay_steps - start)
        algo.replay.add(SingleAgentEpisode(
            observations=list(rng.integers(0, 256, (n + 1, *FRAMES), np.uint8)),
            actions=list(rng.integers(0, NUM_ACTIONS, n)),
            rewards=list(rng.choice([-1.0, 0.0, 1.0], n)),
            terminated=True, len_lookback_buffer=0))
    learner = algo.learner_group._learner
    learner.lean = lean

    def call(n: int) -> None:
        learn_from_replay(algo, algo.replay, n, hp["batch_size"], replay_steps,
                          learner_splits=True)
    return call


def sb3(seed: int, replay_steps: int) -> Callable[[int], None]:
    """A function taking ``n`` of SB3's updates (``DQN.train``)."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger

    hp = pong_hp()

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, FRAMES, np.uint8)
        action_space = gym.spaces.Discrete(NUM_ACTIONS)

    model = DQN("CnnPolicy", Frames(), seed=seed, device="cpu", verbose=0,
                learning_rate=hp["lr"], buffer_size=replay_steps, batch_size=hp["batch_size"],
                gamma=hp["gamma"], max_grad_norm=hp["grad_clip"],
                learning_starts=0, optimize_memory_usage=False)
    rb = model.replay_buffer
    rng = np.random.default_rng(seed)
    rb.observations[:] = rng.integers(0, 256, rb.observations.shape, np.uint8)
    rb.next_observations[:] = rng.integers(0, 256, rb.next_observations.shape, np.uint8)
    rb.actions[:] = rng.integers(0, NUM_ACTIONS, rb.actions.shape)
    rb.rewards[:] = rng.choice([-1.0, 0.0, 1.0], rb.rewards.shape)
    rb.dones[:] = rng.random(rb.dones.shape) < 1.0 / EPISODE
    rb.full, rb.pos = True, 0
    model.set_logger(Logger(folder=None, output_formats=[]))  # what learn() would set up

    def call(n: int) -> None:
        model.train(gradient_steps=n, batch_size=hp["batch_size"])
    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--updates", type=int, default=32, help="updates per call")
    p.add_argument("--replay", type=int, default=10_000, help="steps in each replay")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads, both sides")
    p.add_argument("--rllib-path", action="store_true",
                   help="ours through RLlib's TorchLearner._update per step, not the lean loop")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="", help="free text stored in the JSON")
    p.add_argument("--out", type=Path, default=None, help="raw results (JSON)")
    args = p.parse_args()

    import torch

    sides = {"ours": ours(args.seed, args.replay, lean=not args.rllib_path),
             "sb3": sb3(args.seed, args.replay)}
    for call in sides.values():  # warm-up: optimizer state, allocator, caches
        torch.set_num_threads(args.threads)
        call(4)
    ms: dict[str, list[float]] = {name: [] for name in sides}
    cpu_ms: dict[str, list[float]] = {name: [] for name in sides}
    load_start = os.getloadavg()
    for _ in range(args.rounds):
        for name, call in sides.items():
            torch.set_num_threads(args.threads)
            t, c = time.perf_counter(), time.process_time()
            call(args.updates)
            ms[name].append(1000 * (time.perf_counter() - t) / args.updates)
            cpu_ms[name].append(1000 * (time.process_time() - c) / args.updates)
    median = {k: statistics.median(v) for k, v in ms.items()}
    cpu = {k: statistics.median(v) for k, v in cpu_ms.items()}
    record = {"label": args.label, "rounds": args.rounds, "updates_per_call": args.updates,
              "threads": args.threads, "lean": not args.rllib_path, "replay": args.replay,
              "torch": torch.__version__, "load_start": load_start,
              "load_end": os.getloadavg(), "ms_per_update": ms, "median_ms_per_update": median,
              "cpu_ms_per_update": cpu_ms, "median_cpu_ms_per_update": cpu,
              "ratio_ours_over_sb3": median["ours"] / median["sb3"],
              "cpu_ratio_ours_over_sb3": cpu["ours"] / cpu["sb3"]}
    for name in sides:
        print(f"{name:5} {median[name]:8.1f} ms/update wall, {cpu[name]:7.1f} ms CPU "
              f"(medians of {args.rounds} rounds of {args.updates} updates)")
    print(f"ratio ours/sb3: wall {record['ratio_ours_over_sb3']:.3f}, CPU "
          f"{record['cpu_ratio_ours_over_sb3']:.3f}  threads={args.threads}  "
          f"load average {load_start[0]:.1f} -> {record['load_end'][0]:.1f}")
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
