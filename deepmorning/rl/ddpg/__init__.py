"""DDPG (Lillicrap et al. 2015, "Continuous control with deep reinforcement learning").

RLlib dropped DDPG from its core (it moved to rllib_contrib in Ray 2.8, pinned to the old API
stack); this package is the paper's algorithm on RLlib's new API stack:

* ``module.py``: actor and critic (+ targets) as one ``TorchRLModule``;
* ``learner.py``: the two losses, two optimizers and soft target updates;
* ``noise.py``: Ornstein-Uhlenbeck / Gaussian exploration as an EnvRunner connector;
* ``deepmorning.rl.replay`` (shared with DQN): uniform transition sampling on RLlib's
  ``EpisodeReplayBuffer``;
* ``algorithm.py``: ``DDPGConfig`` and ``DDPG`` with its own ``training_step``;
* ``presets.py``: the paper's settings and a tuned ``pendulum`` preset.

Importing this package registers ``ddpg`` with :mod:`deepmorning.rl.registry`, so that
``deepmorning rl train ddpg --env Pendulum-v1`` and ``deepmorning rl evaluate`` work through the
shared runner. RLlib is imported only when a config is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from deepmorning.platform.errors import DeepmorningError
from deepmorning.rl import envs
from deepmorning.rl.ddpg.presets import PRESETS
from deepmorning.rl.registry import AlgoSpec, register


def default_preset(env_id: str) -> str:
    return "pendulum" if env_id.startswith("Pendulum") else "paper"


def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str) -> None:
    """DDPG acts in any Box action space and reads flat (Box) observations."""
    if not isinstance(action_space, gym.spaces.Box):
        raise DeepmorningError(
            f"DDPG needs a continuous (Box) action space, but {env_id} has {action_space}; "
            "use dqn for discrete actions"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise DeepmorningError(f"DDPG needs a Box observation space, but {env_id} has {obs_space}")


def build_config(run: Mapping[str, Any]):
    """An RLlib :class:`DDPGConfig` for a run config (env, hyperparameters, seed, resources)."""
    from deepmorning.rl.ddpg.algorithm import config_from_hyperparameters
    from deepmorning.rl.offpolicy import fault_tolerant

    config = config_from_hyperparameters(run["hyperparameters"], seed=run.get("seed"))
    config.environment(env=envs.register(), env_config={"id": run["env"], "train": True})
    config.env_runners(num_env_runners=run.get("num_env_runners", 0))
    fault_tolerant(config)  # a lost EnvRunner (its node) is restarted
    config.learners(num_learners=0, num_gpus_per_learner=run.get("num_gpus_per_learner", 0))
    return config


SPEC = register(
    AlgoSpec(
        name="ddpg",
        presets=PRESETS,
        defaults=PRESETS["paper"](),
        default_preset=default_preset,
        build_config=build_config,
        check_spaces=check_spaces,
        description="DDPG, Lillicrap et al. 2015",
    )
)


def __getattr__(name: str) -> Any:  # DDPG / DDPGConfig without importing RLlib up front
    if name in ("DDPG", "DDPGConfig"):
        from deepmorning.rl.ddpg import algorithm

        return getattr(algorithm, name)
    raise AttributeError(name)
