"""DQN (Mnih et al. 2013; Nature 2015) as our own RLlib algorithm on the new API stack.

Read top to bottom:

1. :class:`DQNConfig` holds the papers' hyperparameters (see ``presets.py`` for sources).
2. :meth:`DQN.training_step` is Algorithm 1 of the papers, batched: the EnvRunners act
   ε-greedily for ``env_steps_per_iteration`` steps, the transitions go into uniform replay,
   and once ``learning_starts`` steps are stored the Learner runs
   ``updates_per_env_step × steps`` minibatch updates in *one* call (one minibatch per
   gradient step, the target network copied every C updates inside the Learner). The new
   weights then go back to the EnvRunners. Doing a whole iteration's updates per call keeps
   RLlib's per-call overhead (connectors, metrics, remote calls) off every single step.
3. The networks live in ``module.py`` (RLModule), the loss in ``learner.py`` (Learner); the
   act/store/learn steps DQN shares with DDPG in ``deepmorning.rl.offpolicy``, the replay in
   ``deepmorning.rl.replay``.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from deepmorning.rl import envs
from deepmorning.rl.dqn.learner import LOSSES, OPTIMIZERS, REDUCTIONS, DQNLearner
from deepmorning.rl.dqn.module import NETWORKS, QModule
from deepmorning.rl.dqn.presets import TRAINING_DEFAULTS
from deepmorning.rl.offpolicy import (
    RUNNER_RANDOM_STATE,
    gather_random_states,
    learn_from_replay,
    restore_random_states,
    sample_into_replay,
    updates_owed,
)
from deepmorning.rl.replay import TransitionReplayBuffer

REPLAY_STATE = "dqn_replay_buffer"
COUNTERS_STATE = "dqn_counters"

#: DQNConfig attribute -> default; every one can be set through ``DQNConfig.training()``.
HYPERPARAMETERS: dict[str, Any] = TRAINING_DEFAULTS
MODULE_KEYS = ("network", "hiddens", "epsilon_initial", "epsilon_final",
               "epsilon_anneal_steps", "eval_epsilon", "torch_threads")


class DQNConfig(AlgorithmConfig):
    """Configuration of :class:`DQN`; defaults are the Nature paper's (``presets.nature``)."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DQN)
        for name, value in HYPERPARAMETERS.items():
            setattr(self, name, value)
        self.lr = 2.5e-4
        self.gamma = 0.99
        self.grad_clip = None

    def training(self, **kwargs: Any) -> DQNConfig:
        """RLlib's ``training()`` plus every key of :data:`HYPERPARAMETERS`."""
        ours = {k: kwargs.pop(k) for k in list(kwargs) if k in HYPERPARAMETERS}
        super().training(**kwargs)
        for name, value in ours.items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def validate(self) -> None:
        super().validate()
        for name, allowed in (("loss", LOSSES), ("optimizer", OPTIMIZERS),
                              ("network", NETWORKS), ("loss_reduction", REDUCTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if self.target_update_period < 1:
            raise ValueError("target_update_period must be >= 1")
        if self.updates_per_env_step < 0:
            raise ValueError("updates_per_env_step must be >= 0")

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {k: getattr(self, k) for k in MODULE_KEYS}

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=QModule)

    def get_default_learner_class(self) -> type:
        return DQNLearner

    def rollout_fragment_length_for(self) -> int:
        """Steps each EnvRunner (and each of its vector envs) samples per iteration."""
        runners = max(self.num_env_runners, 1) * max(self.num_envs_per_env_runner, 1)
        return max(1, self.env_steps_per_iteration // runners)


class DQN(Algorithm):
    """Deep Q-learning with experience replay and a target network (the papers' Algorithm 1)."""

    @classmethod
    def get_default_config(cls) -> DQNConfig:
        return DQNConfig()

    def setup(self, config: DQNConfig) -> None:
        super().setup(config)
        # Atari: one 84×84 frame stored per step, the 4-frame stacks rebuilt when sampled.
        frame_stack = envs.replay_frame_stack(config.env, config.env_config)
        self.replay = TransitionReplayBuffer(capacity=config.replay_capacity,
                                             frame_stack=frame_stack, seed=config.seed)
        self.env_steps = 0  # agent steps sampled, the clock of ε and learning_starts
        self.gradient_updates = 0
        self._update_credit = 0.0  # fractional updates carried to the next iteration

    def training_step(self) -> None:
        steps = sample_into_replay(self, self.replay)
        self.env_steps += steps
        if self.replay.get_num_timesteps() < self.config.learning_starts:
            return  # (also true after resuming a run whose checkpoint holds no replay)
        num_updates, self._update_credit = updates_owed(
            self._update_credit, steps, self.config.updates_per_env_step)
        if num_updates:
            learn_from_replay(self, self.replay, num_updates, self.config.batch_size,
                              self.env_steps, learner_splits=True)
            self.gradient_updates += num_updates
        self.metrics.log_value("replay_size", self.replay.get_num_timesteps(), window=1)

    # -- checkpoints: RLlib saves runners, learner and metrics; we add counters and replay ----
    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().get_state(*args, **kwargs)
        state[COUNTERS_STATE] = {
            "env_steps": self.env_steps,
            "gradient_updates": self.gradient_updates,
            "update_credit": self._update_credit,
        }
        if self.config.store_buffer_in_checkpoints:
            state[REPLAY_STATE] = self.replay.get_state()
        state[RUNNER_RANDOM_STATE] = gather_random_states(self)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        counters = state.get(COUNTERS_STATE)
        if counters:
            self.env_steps = int(counters["env_steps"])
            self.gradient_updates = int(counters["gradient_updates"])
            self._update_credit = float(counters["update_credit"])
        if REPLAY_STATE in state:
            self.replay.set_state(state[REPLAY_STATE])
        restore_random_states(self, state.get(RUNNER_RANDOM_STATE))
