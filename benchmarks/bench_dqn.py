"""DQN benchmark: ours vs Stable-Baselines3 vs RLlib's built-in DQN, same hyperparameters.

    python benchmarks/bench_dqn.py                     # CartPole (3 seeds) + Pong
    python benchmarks/bench_dqn.py --only cartpole --seeds 1 --rllib-budget 60

CartPole-v1: the ``cartpole`` preset (RL Baselines3 Zoo's tuned DQN: Adam 2.3e-3, batch 64,
replay 100k, 128 updates of 64 every 256 steps, target copied once per 256 steps, ε 1 → 0.04
over 8k steps, MLP 256-256, Huber loss, grad norm 10) for all three. RLlib's DQN runs with
dueling, double-Q and prioritized replay off and n-step 1. Every 5,000 env steps each agent is
evaluated the same way (10 episodes, greedy with ε = 0.05, the DQN papers' protocol); a run stops
when the mean reaches 475 or after 100k steps (RLlib's DQN: or after ``--rllib-budget`` s).
Printed: env steps/s (training wall clock, evaluations included) and the wall clock to 475,
mean over seeds, and ratios ours / peer.

ALE/Pong-v5: the Nature preset's update ratio (one update of 32 per 4 agent steps), Nature
network, same preprocessing for both; printed: training env steps/s, ours vs SB3.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 475.0
EVAL_EVERY = 5_000
EVAL_EPISODES = 10
MAX_STEPS = 100_000
EVAL_EPSILON = 0.05


def eps_greedy_returns(greedy_action, env_id: str, seed: int) -> list[float]:
    """The common evaluation: ε = 0.05 around each agent's greedy action."""
    from deepmorning.rl import envs

    rng = np.random.default_rng(seed)
    env = envs.make_env(env_id, train=False)
    returns = []
    for i in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=seed + 10_000 + i)
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


# -- ours ------------------------------------------------------------------------------------
def run_ours(seed: int, workdir: Path) -> dict:
    from deepmorning.rl.runner import TrainRequest, train

    summary = train(TrainRequest(
        algo="dqn", env="CartPole-v1", preset="cartpole", timesteps=MAX_STEPS, seed=seed,
        eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, stop_return=TARGET,
        output=workdir / f"ours-{seed}", quiet=True, checkpoint_every=10_000,
    ))
    import pandas as pd

    progress = pd.read_csv(workdir / f"ours-{seed}" / "progress.csv")
    hit = progress[progress["eval_return_mean"] >= TARGET]
    return {
        "steps_per_s": summary["env_steps"] / summary["wall_s"],
        "time_to_target": float(hit["wall_s"].iloc[0]) if not hit.empty else math.nan,
        "steps_to_target": int(hit["env_steps"].iloc[0]) if not hit.empty else None,
    }


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


def run_sb3(seed: int) -> dict:
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalStop(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.start = time.monotonic()
            self.hit: tuple[float, int] | None = None

        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY:
                return True

            def greedy(obs):
                return int(self.model.predict(obs, deterministic=True)[0])

            mean = statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed))
            if mean >= TARGET:
                self.hit = (time.monotonic() - self.start, self.num_timesteps)
                return False
            return True

    model = sb3_model(seed)
    cb = EvalStop()
    t0 = time.monotonic()
    model.learn(MAX_STEPS, callback=cb)
    wall = time.monotonic() - t0
    return {
        "steps_per_s": model.num_timesteps / wall,
        "time_to_target": cb.hit[0] if cb.hit else math.nan,
        "steps_to_target": cb.hit[1] if cb.hit else None,
    }


# -- RLlib's built-in DQN ----------------------------------------------------------------------
def run_rllib(seed: int, budget_s: float) -> dict:
    import torch
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    config = (
        DQNConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0, rollout_fragment_length=4)
        .training(
            lr=2.3e-3, gamma=0.99, train_batch_size_per_learner=64, n_step=1,
            double_q=False, dueling=False, num_atoms=1, noisy=False,
            replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
            target_network_update_freq=256, num_steps_sampled_before_learning_starts=1_000,
            epsilon=[(0, 1.0), (8_000, 0.04)], training_intensity=32, grad_clip=10.0,
            grad_clip_by="global_norm", td_error_loss_fn="huber",
        )
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[256, 256],
                                                   head_fcnet_hiddens=[]))
        .debugging(seed=seed, log_level="ERROR")
    )
    algo = config.build_algo()
    torch.set_num_threads(1)
    module = algo.get_module()

    def greedy(obs):
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
        return int(out[Columns.ACTIONS][0])

    t0, steps, next_eval, hit = time.monotonic(), 0, EVAL_EVERY, None
    while steps < MAX_STEPS and time.monotonic() - t0 < budget_s:
        result = algo.train()
        steps = int(result["env_runners"]["num_env_steps_sampled_lifetime"])
        if steps >= next_eval:
            next_eval += EVAL_EVERY
            module = algo.get_module()
            if statistics.mean(eps_greedy_returns(greedy, "CartPole-v1", seed)) >= TARGET:
                hit = (time.monotonic() - t0, steps)
                break
    wall = time.monotonic() - t0
    algo.stop()
    return {"steps_per_s": steps / wall, "time_to_target": hit[0] if hit else math.nan,
            "steps_to_target": hit[1] if hit else None, "budget_hit": hit is None
            and steps < MAX_STEPS}


# -- Pong --------------------------------------------------------------------------------------
def pong(steps: int, learning_starts: int, workdir: Path) -> dict:
    import torch
    from stable_baselines3 import DQN

    from deepmorning.rl import envs
    from deepmorning.rl.runner import TrainRequest, train

    overrides = {"learning_starts": learning_starts, "replay_capacity": 20_000,
                 "env_steps_per_iteration": 1_000, "eval_episodes": 1}
    t0 = time.monotonic()
    summary = train(TrainRequest(algo="dqn", env="ALE/Pong-v5", preset="nature",
                                 timesteps=steps, overrides=overrides, quiet=True,
                                 output=workdir / "ours-pong", checkpoint_every=10_000))
    import pandas as pd

    progress = pd.read_csv(workdir / "ours-pong" / "progress.csv")
    learning = progress[progress["env_steps"] > learning_starts]
    ours = float(learning["env_steps_per_s"].mean())
    del t0, summary

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
    return {"ours": ours, "sb3": sb3}


def fmt(xs: list[float]) -> str:
    good = [x for x in xs if not math.isnan(x)]
    return f"{statistics.mean(good):.1f}" if good else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rllib-budget", type=float, default=180.0,
                        help="seconds per seed for RLlib's built-in DQN")
    parser.add_argument("--only", choices=["cartpole", "pong"], default=None)
    parser.add_argument("--skip", choices=["ours", "sb3", "rllib"], action="append", default=[])
    parser.add_argument("--pong-steps", type=int, default=4_000)
    parser.add_argument("--pong-learning-starts", type=int, default=1_000)
    args = parser.parse_args()

    from deepmorning.platform.runtime import connect

    connect(None, log_to_driver=False)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dqn-"))
    if args.only != "pong":
        results: dict[str, list[dict]] = {"ours": [], "sb3": [], "rllib": []}
        for seed in range(args.seeds):
            if "ours" not in args.skip:
                results["ours"].append(run_ours(seed, workdir))
                print("ours ", seed, results["ours"][-1], flush=True)
            if "sb3" not in args.skip:
                results["sb3"].append(run_sb3(seed))
                print("sb3  ", seed, results["sb3"][-1], flush=True)
            if "rllib" not in args.skip:
                results["rllib"].append(run_rllib(seed, args.rllib_budget))
                print("rllib", seed, results["rllib"][-1], flush=True)
        print("\nCartPole-v1, same hyperparameters, mean over seeds")
        print(f"{'agent':6} {'env steps/s':>12} {'s to 475':>10} {'reached':>8}")
        sps, ttt = {}, {}
        for name, runs in results.items():
            if not runs:
                continue
            sps[name] = statistics.mean(r["steps_per_s"] for r in runs)
            times = [r["time_to_target"] for r in runs]
            ttt[name] = statistics.mean([t for t in times if not math.isnan(t)] or [math.nan])
            reached = sum(not math.isnan(t) for t in times)
            print(f"{name:6} {sps[name]:12.1f} {fmt(times):>10} {reached:>5}/{len(runs)}")
        for peer in ("sb3", "rllib"):
            if "ours" not in sps or peer not in sps:
                continue
            line = f"ours vs {peer}: env steps/s x{sps['ours'] / sps[peer]:.2f}"
            if math.isnan(ttt[peer]):
                line += f"; {peer} did not reach {TARGET:g} within its budget"
            else:  # > 1: ours reaches the target sooner
                line += f"; wall clock to {TARGET:g}: {peer}/ours x{ttt[peer] / ttt['ours']:.2f}"
            print(line)
    if args.only != "cartpole":
        res = pong(args.pong_steps, args.pong_learning_starts, workdir)
        ratio = res["ours"] / res["sb3"]
        print(f"\nALE/Pong-v5, Nature preset, 1 update of 32 per 4 steps: training env steps/s "
              f"ours {res['ours']:.1f}, sb3 {res['sb3']:.1f}, ratio x{ratio:.2f}")


if __name__ == "__main__":
    main()
