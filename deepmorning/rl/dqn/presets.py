"""Hyperparameter presets for DQN; each value's source is cited in the preset's docstring.

Environment steps are *agent* steps: on Atari one step is 4 emulator frames (frame skip 4).
Every Atari budget here (``timesteps``, ``replay_capacity``, ``learning_starts``,
``epsilon_anneal_steps``) reads the papers' "frames" as agent steps, as DeepMind's code does:
the Nature paper's "50 million frames (around 38 days of game experience)" is 50M agent steps
of 4 emulator frames each (200M frames at 60 Hz = 38.6 days), not 50M emulator frames.
"""

from __future__ import annotations

from typing import Any

#: DQNConfig attribute -> default (the Nature values; every one settable by ``--set``).
TRAINING_DEFAULTS: dict[str, Any] = {
    "network": "mlp",
    "hiddens": [256, 256],
    "loss": "huber",
    "loss_reduction": "mean",
    "optimizer": "rmsprop",
    "rmsprop_alpha": 0.95,
    "rmsprop_eps": 0.01,
    "adam_eps": 1e-8,
    "batch_size": 32,
    "replay_capacity": 1_000_000,
    "learning_starts": 50_000,
    "updates_per_env_step": 0.25,
    "env_steps_per_iteration": 1_000,
    "target_update_period": 10_000,
    "epsilon_initial": 1.0,
    "epsilon_final": 0.1,
    "epsilon_anneal_steps": 1_000_000,
    "eval_epsilon": 0.05,
    "store_buffer_in_checkpoints": False,
    "torch_threads": 1,
}
#: Every key ``--set`` reaches, with its default: the DQNConfig's own plus the runner's.
DEFAULTS: dict[str, Any] = TRAINING_DEFAULTS | {
    "lr": 2.5e-4, "gamma": 0.99, "grad_clip": None, "num_envs": 1, "eval_episodes": 10,
    "smoothing_episodes": 20,
    # Atari training samples from ale-py's C++ vector env ("native") or Gymnasium's wrapper
    # stack ("gymnasium"); the same data either way (deepmorning.rl.envs). Ignored off Atari.
    "atari_vector": "native",
}

ATARI_COMMON: dict[str, Any] = {
    "gamma": 0.99,
    # DeepMind's code adds the minibatch's gradients (no 1/32): with its RMSProp that is the
    # update the papers' learning rate was tuned for.
    "loss_reduction": "sum",
    "batch_size": 32,
    "optimizer": "rmsprop",
    "lr": 2.5e-4,
    "rmsprop_alpha": 0.95,
    "rmsprop_eps": 0.01,
    "epsilon_initial": 1.0,
    "epsilon_final": 0.1,
    "epsilon_anneal_steps": 1_000_000,
    "eval_epsilon": 0.05,
    "replay_capacity": 1_000_000,
    "eval_episodes": 30,  # Nature, Methods, "Evaluation procedure": 30 games of up to 5 min
    "grad_clip": None,
    # 1M steps are ~7 GB even as single 84×84 frames (deepmorning.rl.replay), too much to
    # pickle every few iterations: a resumed Atari run refills its buffer instead.
    "store_buffer_in_checkpoints": False,
    # Not a paper setting: environments stepped together by each EnvRunner, so that one
    # batched forward pass serves several envs. The replay ratio counts env steps, so the
    # update schedule per env step is the paper's.
    "num_envs": 4,
}


def nature() -> dict[str, Any]:
    """The Nature DQN (Mnih et al. 2015), Extended Data Table 1 unless noted.

    - network ``nature``: Methods, "Model architecture" (32/64/64 convs, fc 512).
    - batch_size 32: "minibatch size".
    - replay_capacity 1,000,000: "replay memory size".
    - target_update_period 10,000: "target network update frequency" (parameter updates, C).
    - gamma 0.99: "discount factor".
    - updates_per_env_step 0.25: "update frequency" 4 (one update per 4 agent actions).
    - optimizer RMSProp, lr 0.00025, rmsprop_alpha 0.95 ("squared gradient momentum"),
      rmsprop_eps 0.01 ("min squared gradient"), as DeepMind's code applies them: ε inside
      the square root, gradients added over the minibatch (``loss_reduction`` ``sum``).
    - epsilon 1.0 → 0.1 over 1,000,000 steps: "initial/final exploration",
      "final exploration frame".
    - learning_starts 50,000: "replay start size".
    - loss ``huber``: Methods, "Training details" (error term clipped to [−1, 1]).
    - eval_epsilon 0.05: Methods, "Evaluation procedure".
    - timesteps 50,000,000 agent steps: Methods, "Training details", "a total of 50 million
      frames (that is, around 38 days of game experience in total)"; 38 days only fit agent
      steps of 4 emulator frames each (50M × 4 / 60 Hz = 38.6 days), the same unit as the
      replay size, replay start and final exploration frame above.
    - noop starts (30) and frame skip 4 are applied by the environment (deepmorning.rl.envs).
    """
    return {
        **ATARI_COMMON,
        "network": "nature",
        "loss": "huber",
        "target_update_period": 10_000,
        "updates_per_env_step": 0.25,
        "learning_starts": 50_000,
        "env_steps_per_iteration": 1_000,
        "timesteps": 50_000_000,
    }


def paper2013() -> dict[str, Any]:
    """Playing Atari with Deep RL (Mnih et al. 2013).

    - network ``paper2013``: Section 4.1 (16 8×8/4, 32 4×4/2, fc 256).
    - batch_size 32, RMSProp, replay_capacity 1,000,000, epsilon 1 → 0.1 over the first
      million frames then fixed, 10M frames of training: Section 5, "Training and Stability".
    - target_update_period 1: the 2013 algorithm has no separate target network (Algorithm 1),
      so the target is the online network of the previous update.
    - loss ``mse``: Algorithm 1's squared error (rewards are clipped, errors are not).
    - updates_per_env_step 1.0: Algorithm 1 does one minibatch update per action.
    - gamma 0.99, lr 0.00025 and the RMSProp constants, learning_starts 50,000: not stated in
      the 2013 paper; the Nature paper's values (Extended Data Table 1).
    - eval_epsilon 0.05: Section 5.1.
    - timesteps 10,000,000 agent steps: Section 5, "we trained for a total of 10 million
      frames", in the unit of its "first million frames" of ε annealing and its replay
      memory "of one million most recent frames" (agent steps, as in the Nature preset).
    """
    return {
        **ATARI_COMMON,
        "network": "paper2013",
        "loss": "mse",
        "target_update_period": 1,
        "updates_per_env_step": 1.0,
        "learning_starts": 50_000,
        "env_steps_per_iteration": 1_000,
        "timesteps": 10_000_000,
    }


def cartpole() -> dict[str, Any]:
    """A fast CPU run on CartPole-v1, shrunk for a laptop (not a paper setting).

    The values are RL Baselines3 Zoo's tuned DQN for CartPole-v1 (hyperparams/dqn.yml):
    lr 2.3e-3 (Adam), batch 64, replay 100,000, learning_starts 1,000, gamma 0.99, an MLP
    256-256, 128 gradient steps every 256 env steps (updates_per_env_step 0.5), ε 1 → 0.04
    over the first 16% of 50,000 steps (8,000), gradient norm clipped at 10. The Zoo copies
    the target net every 256 env steps (SB3 counts its ``target_update_interval`` in env
    steps), i.e. once per 256-step rollout, before that rollout's 128 updates: here
    C = 128 updates, copied after the 128th, which leaves the same target for the same
    updates (measured, docs/rl.md "Why ours needed more env steps"). Huber loss as in the
    Nature paper.

    Not from the Zoo: 8 envs stepped together by the EnvRunner (one batched forward pass per
    step) and evaluation with ε = 0.05 as in the DQN papers. RLlib's EnvRunner costs more per
    step than SB3's loop when it steps one env; with 8 its acting is cheaper than SB3's
    (docs/rl.md). Measured on 2-3 seeds, the 8 envs do not cost env steps to reach 475 (docs/rl.md).
    An iteration may run up to 7 steps past 256 (a vector step is 8 env steps, fewer when a
    sub-env resets); the updates owed follow the steps taken (0.5 per step).
    """
    return {
        "network": "mlp",
        "hiddens": [256, 256],
        "gamma": 0.99,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 2.3e-3,
        "adam_eps": 1e-8,
        "loss": "huber",
        "grad_clip": 10.0,
        "replay_capacity": 100_000,
        "learning_starts": 1_000,
        "updates_per_env_step": 0.5,
        "env_steps_per_iteration": 256,
        "target_update_period": 128,
        "epsilon_initial": 1.0,
        "epsilon_final": 0.04,
        "epsilon_anneal_steps": 8_000,
        "eval_epsilon": 0.05,
        "eval_episodes": 10,
        "timesteps": 50_000,
        "store_buffer_in_checkpoints": True,
        "num_envs": 8,  # 8 CartPoles stepped together (32 steps each per iteration)
    }


def pong() -> dict[str, Any]:
    """Fast Pong from pixels on a laptop CPU, within about 1M agent steps (not a paper setting).

    The base is RL Baselines3 Zoo's tuned DQN for Atari (``hyperparams/dqn.yml``, ``atari``):
    Adam with lr 1e-4, batch 32, one update per 4 agent steps, the target copied every 1,000
    agent steps (= 250 updates), ε down to 0.01, gradient norm clipped at 10 (SB3's DQN
    default), Huber loss, the Nature network and preprocessing. The Zoo spends 10M steps; for a
    1M-step budget three values are shortened, as the fast Pong DQNs of the literature do
    (e.g. Lapan, *Deep Reinforcement Learning Hands-On*, ch. 6: ε to 0.01 over the first
    ~10^5 frames, replay start 10^4):

    - epsilon 1.0 → 0.01 over the first 100,000 agent steps (Zoo: 10% of 10M);
    - learning_starts 10,000 (Zoo: 100,000);
    - replay_capacity 100,000 (Zoo: 10,000 with its memory-optimized buffer).

    Evaluation keeps the Nature protocol (ε = 0.05, games of at most 5 minutes) with 5 games,
    not 30, so that an evaluation costs minutes, not an hour, on a CPU. A resumed run refills
    its replay (100k 84×84 frames are ~0.7 GB to pickle).
    """
    return {
        **ATARI_COMMON,
        "network": "nature",
        "loss": "huber",
        "loss_reduction": "mean",
        "optimizer": "adam",
        "lr": 1e-4,
        "adam_eps": 1e-8,
        "grad_clip": 10.0,
        "replay_capacity": 100_000,
        "learning_starts": 10_000,
        "updates_per_env_step": 0.25,
        "env_steps_per_iteration": 1_000,
        "target_update_period": 250,
        "epsilon_initial": 1.0,
        "epsilon_final": 0.01,
        "epsilon_anneal_steps": 100_000,
        "eval_episodes": 5,
        "timesteps": 1_000_000,
    }


PRESETS = {"nature": nature, "paper2013": paper2013, "cartpole": cartpole, "pong": pong}
