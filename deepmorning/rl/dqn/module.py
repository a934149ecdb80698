"""The Q-networks of the DQN papers as an RLlib ``TorchRLModule`` with a target network.

* ``paper2013``: Mnih et al. 2013, Section 4.1 "Model Architecture": conv 16 8×8 stride 4,
  conv 32 4×4 stride 2, fully connected 256, one linear output per action (ReLU between).
* ``nature``: Mnih et al. 2015, Methods "Model architecture": conv 32 8×8/4, 64 4×4/2,
  64 3×3/1, fully connected 512, one linear output per action.
* ``mlp``: fully connected layers for vector observations (CartPole and friends).

Pixel inputs are uint8 frames (4×84×84) up to the network's first layer, which scales them
to [0, 1]; the convolutions run in the channels-last memory layout.
Action selection is ε-greedy: the exploration ε is annealed linearly with the env steps ``t``
(2015 Methods: 1.0 → 0.1 over the first million frames); inference uses a fixed ε
(``eval_epsilon``, 0.05 in both papers' evaluations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

Q_VALUES = "q_values"
NETWORKS = ("nature", "paper2013", "mlp")


def linear_epsilon(t: int, initial: float, final: float, anneal_steps: int) -> float:
    """ε after ``t`` env steps: linear from ``initial`` to ``final`` over ``anneal_steps``."""
    if anneal_steps <= 0:
        return final
    fraction = min(max(t, 0) / anneal_steps, 1.0)
    return initial + fraction * (final - initial)


def conv_net(in_channels: int, num_actions: int, network: str) -> nn.Module:
    """The 2013 or the Nature convolutional Q-network for 84×84 inputs."""
    if network == "paper2013":
        return nn.Sequential(
            nn.Conv2d(in_channels, 16, 8, stride=4), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 9 * 9, 256), nn.ReLU(),
            nn.Linear(256, num_actions),
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
        nn.Linear(512, num_actions),
    )


def mlp(in_features: int, num_actions: int, hiddens: Sequence[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for width in hiddens:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, num_actions))
    return nn.Sequential(*layers)


class PixelScale(nn.Module):
    """uint8 frames -> floats in [0, 1], in the channels-last layout the convolutions use.

    Frames stay uint8 from the replay to here (4× less memory to gather and move than
    floats); the conversion, the layout change and the scaling are one new tensor. The
    values are those of ``x.float() / 255`` (a test checks)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32, memory_format=torch.channels_last).div_(255.0)


class QModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Q(s, ·) for every discrete action; ``model_config`` picks the network and ε settings."""

    def setup(self) -> None:
        cfg = self.model_config
        if cfg.get("torch_threads"):
            # Small nets on CPU: one intra-op thread avoids spin-waiting on busy cores.
            torch.set_num_threads(int(cfg["torch_threads"]))
        self.network: str = cfg.get("network", "mlp")
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        num_actions = int(self.action_space.n)
        shape = self.observation_space.shape
        if self.network == "mlp":
            self.q_net = mlp(int(np.prod(shape)), num_actions, cfg.get("hiddens", (256, 256)))
        else:
            # Channels-last weights: oneDNN's convolutions run faster in that layout on a
            # CPU than in PyTorch's default NCHW (measured in docs/rl.md, "Learner").
            self.q_net = nn.Sequential(
                PixelScale(), conv_net(shape[0], num_actions, self.network),
            ).to(memory_format=torch.channels_last)
        self.epsilon_schedule = (
            float(cfg.get("epsilon_initial", 1.0)),
            float(cfg.get("epsilon_final", 0.1)),
            int(cfg.get("epsilon_anneal_steps", 1_000_000)),
        )
        self.eval_epsilon = float(cfg.get("eval_epsilon", 0.05))

    # -- networks ---------------------------------------------------------------------------
    def q_values(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        if self.network == "mlp":
            obs = obs.reshape(obs.shape[0], -1).float()
        return (self._target_q_net if target else self.q_net)(obs)

    def make_target_networks(self) -> None:
        self._target_q_net = make_target_network(self.q_net)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.q_net, self._target_q_net)]

    def forward_target(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {Q_VALUES: self.q_values(batch[Columns.OBS], target=True)}

    def get_non_inference_attributes(self) -> list[str]:
        return ["_target_q_net"]

    # -- forward passes ---------------------------------------------------------------------
    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {Q_VALUES: self.q_values(batch[Columns.OBS])}

    def _forward_exploration(self, batch: dict[str, Any], t: int = 0, **kwargs: Any):
        return self._epsilon_greedy(batch, linear_epsilon(t, *self.epsilon_schedule))

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._epsilon_greedy(batch, self.eval_epsilon)

    @torch.no_grad()  # acting never needs a graph
    def _epsilon_greedy(self, batch: dict[str, Any], epsilon: float) -> dict[str, Any]:
        q = self.q_values(batch[Columns.OBS])
        greedy = q.argmax(dim=-1)
        if epsilon <= 0.0:
            return {Columns.ACTIONS: greedy}
        random = torch.randint(0, q.shape[-1], greedy.shape, device=q.device)
        explore = torch.rand(greedy.shape, device=q.device) < epsilon
        return {Columns.ACTIONS: torch.where(explore, random, greedy)}

    def get_inference_action_dist_cls(self):
        return TorchCategorical

    def get_exploration_action_dist_cls(self):
        return TorchCategorical

    def get_train_action_dist_cls(self):
        return TorchCategorical


def is_discrete(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Discrete)
