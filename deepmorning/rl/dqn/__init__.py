"""DQN (Mnih et al. 2013, "Playing Atari with Deep RL"; Mnih et al. 2015, Nature).

``algorithm.py`` (config + training_step), ``module.py`` (Q-networks, ε-greedy),
``learner.py`` (TD loss, target network), ``presets.py``; the uniform replay is shared with
DDPG (``deepmorning.rl.replay``).
Importing this package registers ``dqn`` with :mod:`deepmorning.rl.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from deepmorning.platform.errors import DeepmorningError
from deepmorning.rl import envs
from deepmorning.rl.dqn.presets import DEFAULTS, PRESETS
from deepmorning.rl.registry import AlgoSpec, register


def default_preset(env_id: str) -> str:
    return "nature" if envs.is_atari(env_id) else "cartpole"


def check_spaces(obs_space: gym.Space, action_space: gym.Space, env_id: str) -> None:
    if not isinstance(action_space, gym.spaces.Discrete):
        raise DeepmorningError(
            f"DQN needs a discrete action space, but {env_id} has {action_space}"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise DeepmorningError(f"DQN needs a Box observation space, but {env_id} has {obs_space}")


def env_config(env_id: str, hp: Mapping[str, Any]) -> dict[str, Any]:
    """The training EnvRunners' ``env_config``: Atari samples from ale-py's native vector env
    where ``atari_vector`` is ``native`` and the id allows it (deepmorning.rl.envs). A run
    config without the key (written before it existed) keeps the Gymnasium stack it ran on."""
    vector = hp.get("atari_vector", "gymnasium")
    if vector not in envs.ATARI_VECTORS:
        raise DeepmorningError(f"atari_vector must be one of {', '.join(envs.ATARI_VECTORS)}, "
                               f"not '{vector}'")
    config: dict[str, Any] = {"id": env_id, "train": True}
    if vector == "native" and envs.native_atari_applies(env_id):
        config["vector"] = "native"
    return config


def build_config(run: Mapping[str, Any]):
    """An RLlib :class:`DQNConfig` for a run config (env, hyperparameters, seed, resources)."""
    from deepmorning.rl.dqn.algorithm import HYPERPARAMETERS, DQNConfig
    from deepmorning.rl.offpolicy import fault_tolerant

    hp = dict(run["hyperparameters"])
    config = DQNConfig()
    training = {k: v for k, v in hp.items() if k in HYPERPARAMETERS}
    config.training(lr=hp["lr"], gamma=hp["gamma"], grad_clip=hp.get("grad_clip"),
                    grad_clip_by="global_norm", **training)
    config.environment(env=envs.register(), env_config=env_config(run["env"], hp))
    if config.env_config.get("vector") == "native":
        # RLlib then builds its vector env from the creator's vector entry point.
        config.env_runners(gym_env_vectorize_mode="vector_entry_point")
    config.env_runners(num_env_runners=run.get("num_env_runners", 0),
                       num_envs_per_env_runner=hp.get("num_envs", 1), num_cpus_per_env_runner=1,
                       batch_mode="truncate_episodes")
    config.env_runners(rollout_fragment_length=config.rollout_fragment_length_for())
    fault_tolerant(config)  # a lost EnvRunner (its node) is restarted
    config.learners(num_learners=0, num_gpus_per_learner=run.get("num_gpus_per_learner", 0))
    # RLlib's per-tensor finite checks cost a device sync each; DQNLearner.apply_gradients
    # skips a non-finite update whole instead (deepmorning.rl.gradients).
    config.framework("torch", torch_skip_nan_gradients=True)
    config.debugging(seed=run.get("seed"), log_level="ERROR")
    config.reporting(metrics_num_episodes_for_smoothing=hp.get("smoothing_episodes", 20))
    return config




SPEC = register(
    AlgoSpec(
        name="dqn",
        presets=PRESETS,
        defaults=DEFAULTS,
        default_preset=default_preset,
        build_config=build_config,
        check_spaces=check_spaces,
        description="DQN, Mnih et al. 2013 / Nature 2015",
    )
)
