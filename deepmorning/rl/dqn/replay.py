"""Uniform experience replay (Mnih et al. 2013, Algorithm 1) on RLlib's ``EpisodeReplayBuffer``.

RLlib's buffer stores the sampled episodes, evicts the oldest beyond its capacity and
checkpoints its contents. Its own ``sample()`` builds one single-step episode object per
transition, which for a few thousand transitions per training iteration costs more than the
learning; :meth:`TransitionReplayBuffer.sample_transitions` instead returns the transitions
(s, a, r, s', terminal) as numpy arrays, drawn uniformly over all stored time steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer


class TransitionReplayBuffer(EpisodeReplayBuffer):
    """An ``EpisodeReplayBuffer`` that samples one-step transitions as numpy arrays."""

    def __init__(self, capacity: int = 10_000, *, seed: int | None = None, **kwargs: Any):
        super().__init__(capacity=capacity, **kwargs)
        self.rng = np.random.default_rng(seed)
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}

    def add(self, episodes: Any) -> None:
        episodes = episodes if isinstance(episodes, list) else [episodes]
        for eps in episodes:  # continued episodes change: drop their cached arrays
            idx = self.episode_id_to_index.get(eps.id_)
            if idx is not None:
                self._arrays.pop(idx, None)
        super().add(episodes)

    def _episode_arrays(self, eps_idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        arrays = self._arrays.get(eps_idx)
        if arrays is None:
            eps = self.episodes[eps_idx - self._num_episodes_evicted]
            arrays = (
                np.asarray(eps.get_observations()),  # len(eps) + 1 observations
                np.asarray(eps.get_actions()),
                np.asarray(eps.get_rewards(), dtype=np.float32),
                bool(eps.is_terminated),
            )
            self._arrays[eps_idx] = arrays
        return arrays

    def _forget_evicted(self) -> None:
        stale = [i for i in self._arrays if i < self._num_episodes_evicted]
        for i in stale:
            del self._arrays[i]

    def sample_transitions(self, num_items: int) -> dict[str, np.ndarray]:
        """``num_items`` transitions drawn uniformly (with replacement) from the buffer."""
        if not self._indices:
            raise ValueError("cannot sample from an empty replay buffer")
        self._forget_evicted()
        obs, next_obs, actions, rewards, terminateds = [], [], [], [], []
        for pick in self.rng.integers(len(self._indices), size=num_items):
            eps_idx, t = self._indices[pick]
            o, a, r, terminated = self._episode_arrays(eps_idx)
            obs.append(o[t])
            next_obs.append(o[t + 1])
            actions.append(a[t])
            rewards.append(r[t])
            terminateds.append(terminated and t == len(a) - 1)
        self.sampled_timesteps += num_items
        return {
            Columns.OBS: np.stack(obs),
            Columns.ACTIONS: np.asarray(actions),
            Columns.REWARDS: np.asarray(rewards, dtype=np.float32),
            Columns.NEXT_OBS: np.stack(next_obs),
            Columns.TERMINATEDS: np.asarray(terminateds, dtype=np.float32),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._arrays.clear()
