"""DDPG's actor and critic as one RLlib ``TorchRLModule`` (Lillicrap et al. 2015, section 7).

The paper's low-dimensional networks (section 7, "Experiment details"):

* two hidden layers of 400 and 300 ReLU units in both actor and critic;
* the actor ends in ``tanh``, scaled here to the action space's bounds;
* the action enters the critic only at its second hidden layer;
* the final layers are initialised uniformly in ``[-3e-3, 3e-3]`` (the hidden layers use
  PyTorch's default ``U(-1/sqrt(f), 1/sqrt(f))``, which is the paper's fan-in rule);
* batch normalization on the state input and all layers of the actor, and on all critic layers
  before the action input (switchable with ``batch_norm``).

The module implements RLlib's :class:`TargetNetworkAPI` (the Learner creates the target copies and
soft-updates them) and :class:`InferenceOnlyAPI` (EnvRunners build the actor only).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.typing import NetworkType
from torch import nn

#: Keys of ``forward_train``'s output, read by the Learner's loss.
Q_VALUES = "q_values"  # Q(s, a) for the replayed actions
Q_OF_POLICY = "q_of_policy"  # Q(s, mu(s)) for the actor loss
Q_TARGET_NEXT = "q_target_next"  # Q'(s', mu'(s')) from the target networks

#: Final-layer initialisation range (section 7).
FINAL_INIT = 3e-3


def _final_layer(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.uniform_(layer.weight, -FINAL_INIT, FINAL_INIT)
    nn.init.uniform_(layer.bias, -FINAL_INIT, FINAL_INIT)
    return layer


class Actor(nn.Module):
    """mu(s): ``obs -> [BN] -> 400 -> [BN] -> ReLU -> 300 -> [BN] -> ReLU -> tanh``, scaled."""

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hiddens: tuple[int, int],
                 batch_norm: bool) -> None:
        super().__init__()
        h1, h2 = hiddens
        act_dim = int(np.prod(action_space.shape))
        self.action_shape = tuple(action_space.shape)
        self.input_norm = nn.BatchNorm1d(obs_dim) if batch_norm else nn.Identity()
        self.fc1 = nn.Linear(obs_dim, h1)
        self.bn1 = nn.BatchNorm1d(h1) if batch_norm else nn.Identity()
        self.fc2 = nn.Linear(h1, h2)
        self.bn2 = nn.BatchNorm1d(h2) if batch_norm else nn.Identity()
        self.out = _final_layer(h2, act_dim)
        low = np.asarray(action_space.low, dtype=np.float32).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float32).reshape(-1)
        # Buffers, not parameters: they move with the module and land in its state.
        self.register_buffer("action_scale", torch.from_numpy((high - low) / 2.0))
        self.register_buffer("action_bias", torch.from_numpy((high + low) / 2.0))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(obs)
        x = torch.relu(self.bn1(self.fc1(x)))
        x = torch.relu(self.bn2(self.fc2(x)))
        action = torch.tanh(self.out(x)) * self.action_scale + self.action_bias
        return action.reshape(obs.shape[0], *self.action_shape)


class Critic(nn.Module):
    """Q(s, a): the state passes one layer alone; the action joins at the second layer."""

    def __init__(self, obs_dim: int, act_dim: int, hiddens: tuple[int, int],
                 batch_norm: bool) -> None:
        super().__init__()
        h1, h2 = hiddens
        self.act_dim = act_dim
        self.input_norm = nn.BatchNorm1d(obs_dim) if batch_norm else nn.Identity()
        self.fc1 = nn.Linear(obs_dim, h1)
        self.bn1 = nn.BatchNorm1d(h1) if batch_norm else nn.Identity()
        self.fc2 = nn.Linear(h1 + act_dim, h2)  # <- the action enters here (layer two)
        self.out = _final_layer(h2, 1)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.fc1(self.input_norm(obs))))
        x = torch.relu(self.fc2(torch.cat([x, action.reshape(-1, self.act_dim)], dim=-1)))
        return self.out(x).squeeze(-1)


class DDPGTorchRLModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Deterministic actor mu(s) and critic Q(s, a), with target copies on the Learner.

    ``model_config`` keys: ``actor_hiddens`` and ``critic_hiddens`` (default ``(400, 300)``),
    ``batch_norm`` (default ``False``; the ``paper`` preset turns it on).

    Both ``forward_inference`` and ``forward_exploration`` return the deterministic action
    ``mu(s)`` under ``Columns.ACTIONS``; exploration noise is added EnvRunner-side by
    :class:`deepmorning.rl.ddpg.noise.ExplorationNoise`, which keeps one noise process per
    episode.
    """

    def setup(self) -> None:
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(f"DDPG needs a Box action space, got {self.action_space}")
        cfg = self.model_config or {}
        obs_dim = int(np.prod(self.observation_space.shape))
        act_dim = int(np.prod(self.action_space.shape))
        batch_norm = bool(cfg.get("batch_norm", False))
        self.actor = Actor(obs_dim, self.action_space, tuple(cfg.get("actor_hiddens", (400, 300))),
                           batch_norm)
        # EnvRunners only act: they get the actor alone (InferenceOnlyAPI).
        if not self.inference_only:
            self.critic = Critic(obs_dim, act_dim, tuple(cfg.get("critic_hiddens", (400, 300))),
                                 batch_norm)

    # -- acting -------------------------------------------------------------------------------
    def _flat_obs(self, batch: dict[str, Any], key: str = Columns.OBS) -> torch.Tensor:
        obs = batch[key]
        return obs.reshape(obs.shape[0], -1).float()

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTIONS: self.actor(self._flat_obs(batch))}

    def _forward_exploration(self, batch: dict[str, Any], t: int = 0,
                             **kwargs) -> dict[str, Any]:
        """``mu(s)``; notes ``t``, the algorithm's env steps sampled so far as the EnvRunner
        passes them (RLlib's global, checkpointed count, broadcast to every EnvRunner after
        each iteration), for :class:`~deepmorning.rl.ddpg.noise.ExplorationNoise`'s warm-up."""
        self.exploration_t = int(t)
        return self._forward(batch, **kwargs)

    # -- learning -----------------------------------------------------------------------------
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = self._flat_obs(batch)
        return {
            Q_VALUES: self.critic(obs, batch[Columns.ACTIONS].float()),
            # The actor's objective: the critic's value of the actor's own action. The Learner
            # takes gradients of this only with respect to the actor's parameters.
            Q_OF_POLICY: self.critic(obs, self.actor(obs)),
            **self.forward_target(batch),
        }

    # -- TargetNetworkAPI ---------------------------------------------------------------------
    def make_target_networks(self) -> None:
        self.target_actor = make_target_network(self.actor).eval()
        self.target_critic = make_target_network(self.critic).eval()

    def train(self, mode: bool = True) -> DDPGTorchRLModule:
        """Switch train/eval mode; target networks always stay in eval mode.

        ``forward_train`` calls ``train()`` on every minibatch; walking all submodules each
        time is measurable at DDPG's update rate, so an unchanged mode returns at once.
        """
        if getattr(self, "_mode", None) == mode:
            return self
        super().train(mode)
        for name in ("target_actor", "target_critic"):
            if hasattr(self, name):
                getattr(self, name).eval()
        self._mode = mode
        return self

    def get_target_network_pairs(self) -> list[tuple[NetworkType, NetworkType]]:
        return [(self.actor, self.target_actor), (self.critic, self.target_critic)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Q'(s', mu'(s')). Target nets stay in eval mode: batch norm uses running statistics,
        which the soft update copies from the online networks (the weights it averages)."""
        next_obs = self._flat_obs(batch, Columns.NEXT_OBS)
        with torch.no_grad():
            q_next = self.target_critic(next_obs, self.target_actor(next_obs))
        return {Q_TARGET_NEXT: q_next}

    # -- InferenceOnlyAPI ---------------------------------------------------------------------
    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "target_actor", "target_critic"]
