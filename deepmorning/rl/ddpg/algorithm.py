"""DDPG (Lillicrap et al. 2015) as an RLlib ``Algorithm`` on the new API stack.

One :meth:`DDPG.training_step` runs Algorithm 1 of the paper in a batch:

1. every EnvRunner steps its environments ``rollout_fragment_length`` times with the noisy
   actor ``mu(s) + N`` (:class:`~deepmorning.rl.ddpg.noise.ExplorationNoise`);
2. the new transitions go into the replay buffer (RLlib's ``EpisodeReplayBuffer``);
3. the Learner takes ``updates_per_step`` gradient steps per new env step (the paper: one),
   each on its own uniformly drawn minibatch, followed by a soft target update; all the
   minibatches of one training step go to the Learner in one ``update`` call, so RLlib's
   per-call overhead is paid once per training step rather than once per gradient step;
4. the new actor weights go back to the EnvRunners.

Steps 1, 2 and 4 and the single Learner call are shared with DQN (``deepmorning.rl.offpolicy``).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.connectors.module_to_env import NormalizeAndClipActions
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

from deepmorning.platform.errors import DeepmorningError
from deepmorning.rl import envs
from deepmorning.rl.ddpg.noise import NOISE_TYPES, ExplorationNoise
from deepmorning.rl.offpolicy import (
    RUNNER_RANDOM_STATE,
    gather_random_states,
    learn_from_replay,
    restore_random_states,
    sample_into_replay,
    updates_owed,
)
from deepmorning.rl.replay import TransitionReplayBuffer

NUM_GRADIENT_UPDATES_LIFETIME = "num_gradient_updates_lifetime"


def check_env(env: Any, env_config: dict | None = None) -> gym.spaces.Box | None:
    """Make ``env`` once and return its action space; one-line errors for what DDPG can't use.

    Only Gymnasium ids (strings) are checked; other env specs (callables, names registered
    with Ray Tune such as the shared runner's ``deepmorning-env``) are left to RLlib.
    """
    if not isinstance(env, str):
        return None
    from ray.tune.registry import ENV_CREATOR, _global_registry

    if _global_registry.contains(ENV_CREATOR, env):
        return None
    try:
        probe = gym.make(env, **(env_config or {}))
    except gym.error.DependencyNotInstalled as exc:
        raise DeepmorningError(envs.missing_dependency(env, exc)) from exc
    except gym.error.Error as exc:
        raise DeepmorningError(f"unknown environment '{env}' ({exc})") from exc
    try:
        space = probe.action_space
    finally:
        probe.close()
    if not isinstance(space, gym.spaces.Box):
        raise DeepmorningError(
            f"DDPG needs a continuous (Box) action space, but {env} has {space}; "
            "use DQN for discrete actions"
        )
    return space


class DDPGConfig(AlgorithmConfig):
    """DDPG's settings; the defaults are the paper's (Lillicrap et al. 2015, section 7).

    ========================================  =============  ===============================
    setting                                   default        paper
    ========================================  =============  ===============================
    ``actor_lr`` / ``critic_lr``              1e-4 / 1e-3    Adam, 1e-4 and 1e-3
    ``critic_weight_decay``                   1e-2           L2 weight decay on Q, 1e-2
    ``gamma``                                 0.99           discount 0.99
    ``tau``                                   1e-3           soft target updates, 0.001
    ``train_batch_size_per_learner``          64             minibatch 64
    ``replay_capacity``                       1e6            replay buffer 10^6
    ``actor_hiddens`` / ``critic_hiddens``    (400, 300)     400 and 300 ReLU units
    ``batch_norm``                            True           batch norm (low-dim. inputs)
    ``noise_type``, ``ou_theta``,             "ou", 0.15,    Ornstein-Uhlenbeck,
    ``noise_sigma``                           0.2            theta 0.15, sigma 0.2
    ``updates_per_step``                      1.0            one update per env step
    ========================================  =============  ===============================

    Not from the paper: ``rollout_fragment_length`` (env steps per EnvRunner per training
    step: how much work is batched per call), ``random_steps`` (uniform random warm-up
    actions, 0 here) and ``num_steps_sampled_before_learning_starts`` (64: the first update
    needs one minibatch).
    """

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DDPG)
        # -- training (section 7) --
        self.actor_lr = 1e-4
        self.critic_lr = 1e-3
        self.lr = None  # two optimizers with their own rates; RLlib's single lr is unused
        self.critic_weight_decay = 1e-2
        self.gamma = 0.99
        self.tau = 1e-3
        self.train_batch_size_per_learner = 64
        self.replay_capacity = 1_000_000
        self.actor_hiddens: tuple[int, int] = (400, 300)
        self.critic_hiddens: tuple[int, int] = (400, 300)
        self.batch_norm = True
        self.noise_type = "ou"
        self.noise_sigma = 0.2
        self.ou_theta = 0.15
        self.ou_dt = 1.0
        self.random_steps = 0
        self.updates_per_step = 1.0
        self.num_steps_sampled_before_learning_starts = 64
        self.store_buffer_in_checkpoints = True
        # -- env runners --
        self.rollout_fragment_length = 64
        # The actor's tanh output is already scaled to the bounds, and ExplorationNoise clips.
        self.normalize_actions = False
        self.clip_actions = False

    def training(self, *, actor_lr: float = NotProvided, critic_lr: float = NotProvided,
                 critic_weight_decay: float = NotProvided, tau: float = NotProvided,
                 replay_capacity: int = NotProvided, actor_hiddens: tuple = NotProvided,
                 critic_hiddens: tuple = NotProvided, batch_norm: bool = NotProvided,
                 noise_type: str = NotProvided, noise_sigma: float = NotProvided,
                 ou_theta: float = NotProvided, ou_dt: float = NotProvided,
                 random_steps: int = NotProvided, updates_per_step: float = NotProvided,
                 num_steps_sampled_before_learning_starts: int = NotProvided,
                 store_buffer_in_checkpoints: bool = NotProvided,
                 **kwargs: Any) -> DDPGConfig:
        super().training(**kwargs)
        for name, value in dict(
            actor_lr=actor_lr, critic_lr=critic_lr, critic_weight_decay=critic_weight_decay,
            tau=tau, replay_capacity=replay_capacity, actor_hiddens=actor_hiddens,
            critic_hiddens=critic_hiddens, batch_norm=batch_norm, noise_type=noise_type,
            noise_sigma=noise_sigma, ou_theta=ou_theta, ou_dt=ou_dt, random_steps=random_steps,
            updates_per_step=updates_per_step,
            num_steps_sampled_before_learning_starts=num_steps_sampled_before_learning_starts,
            store_buffer_in_checkpoints=store_buffer_in_checkpoints,
        ).items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def validate(self) -> None:
        super().validate()
        if self.noise_type not in NOISE_TYPES:
            raise DeepmorningError(
                f"unknown noise type '{self.noise_type}'; choose one of {', '.join(NOISE_TYPES)}"
            )
        if not 0.0 < self.tau <= 1.0:
            raise DeepmorningError(f"tau must be in (0, 1], got {self.tau}")
        if self.updates_per_step <= 0:
            raise DeepmorningError(f"updates_per_step must be > 0, got {self.updates_per_step}")
        if self.num_learners > 1:
            # DDPGTorchLearner.compute_gradients takes each loss's gradients with
            # torch.autograd.grad, which DistributedDataParallel's all-reduce never sees (it
            # hooks backward()): every Learner would step on its own shard's gradients alone.
            raise DeepmorningError(
                f"DDPG trains with one Learner (num_learners 0 or 1), got {self.num_learners}: "
                "its per-loss gradients (torch.autograd.grad) bypass the gradient all-reduce "
                "that several Learners need"
            )
        if not self.in_evaluation:
            check_env(self.env, self.env_config)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from deepmorning.rl.ddpg.module import DDPGTorchRLModule

        return RLModuleSpec(module_class=DDPGTorchRLModule)

    def get_default_learner_class(self) -> type:
        from deepmorning.rl.ddpg.learner import DDPGTorchLearner

        return DDPGTorchLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {
            "actor_hiddens": tuple(self.actor_hiddens),
            "critic_hiddens": tuple(self.critic_hiddens),
            "batch_norm": self.batch_norm,
        }

    def build_module_to_env_connector(self, env=None, spaces=None):
        """RLlib's module-to-env pipeline plus our exploration noise before the action clip."""
        pipeline = super().build_module_to_env_connector(env, spaces)
        seed = self.seed
        if seed is not None and self.num_env_runners > 0:
            # Every remote EnvRunner builds its own piece from this same config: give each
            # its own noise stream (reproducible runs sample in the driver, 0 EnvRunners).
            seed = [seed, os.getpid()]
        noise = ExplorationNoise(
            noise_type=self.noise_type, sigma=self.noise_sigma, theta=self.ou_theta,
            dt=self.ou_dt, random_steps=self.random_steps, seed=seed,
        )
        if self.add_default_connectors_to_module_to_env_pipeline:
            pipeline.insert_before(NormalizeAndClipActions, noise)
        else:
            pipeline.append(noise)
        return pipeline


#: Preset key -> DDPGConfig attribute, for the keys whose names differ.
_RENAMED = {
    "train_batch_size": "train_batch_size_per_learner",
    "learning_starts": "num_steps_sampled_before_learning_starts",
}
#: Preset keys that are not DDPGConfig.training() settings.
_NOT_TRAINING = ("rollout_fragment_length", "num_envs", "timesteps", "eval_episodes",
                 "checkpoint_min_steps")


def config_from_hyperparameters(hp: dict[str, Any], seed: int | None = None) -> DDPGConfig:
    """A :class:`DDPGConfig` from a preset's hyperparameters (see ``presets.py``)."""
    training = {_RENAMED.get(k, k): v for k, v in hp.items() if k not in _NOT_TRAINING}
    config = DDPGConfig().training(**training)
    if "rollout_fragment_length" in hp:
        config.env_runners(rollout_fragment_length=int(hp["rollout_fragment_length"]))
    if "num_envs" in hp:
        config.env_runners(num_envs_per_env_runner=int(hp["num_envs"]))
    config.debugging(seed=seed, log_level="ERROR")
    return config


class DDPG(Algorithm):
    """Deep Deterministic Policy Gradient: sample, store, learn in batches, sync weights."""

    @classmethod
    def get_default_config(cls) -> DDPGConfig:
        return DDPGConfig()

    def _create_local_replay_buffer_if_necessary(self, config):
        return None  # made in setup(): RLlib's factory does not know our buffer class

    def setup(self, config: AlgorithmConfig) -> None:
        super().setup(config)
        self.local_replay_buffer = TransitionReplayBuffer(
            capacity=int(self.config.replay_capacity), seed=self.config.seed
        )
        self._updates_owed = 0.0

    def training_step(self) -> None:
        cfg = self.config
        # 1) Act in the environments with the noisy actor; 2) store the transitions.
        new_steps = sample_into_replay(self, self.local_replay_buffer)
        lifetime = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME),
                                     default=0)
        if lifetime < cfg.num_steps_sampled_before_learning_starts:
            return
        # 3) `updates_per_step` minibatch updates per new env step, in one Learner call;
        # 4) the new actor goes to the EnvRunners.
        num_updates, self._updates_owed = updates_owed(self._updates_owed, new_steps,
                                                       cfg.updates_per_step)
        if num_updates == 0:
            return
        learn_from_replay(self, self.local_replay_buffer, num_updates,
                          cfg.train_batch_size_per_learner, lifetime, cfg.num_learners)
        self.metrics.log_value(NUM_GRADIENT_UPDATES_LIFETIME, num_updates,
                               reduce="lifetime_sum")

    # The replay buffer travels with checkpoints so that a resumed run keeps its experience.
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self.config.store_buffer_in_checkpoints and self.local_replay_buffer is not None:
            state["replay_buffer"] = self.local_replay_buffer.get_state()
        state[RUNNER_RANDOM_STATE] = gather_random_states(self)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "replay_buffer" in state and self.local_replay_buffer is not None:
            self.local_replay_buffer.set_state(state["replay_buffer"])
        restore_random_states(self, state.get(RUNNER_RANDOM_STATE))
