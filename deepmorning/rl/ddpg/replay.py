"""Uniform transition replay on top of RLlib's ``EpisodeReplayBuffer``.

DDPG learns from single transitions ``(s, a, r, s', terminated)`` drawn uniformly from a buffer
of 10^6 (Lillicrap et al. 2015, section 7). RLlib's ``EpisodeReplayBuffer`` stores the episodes
and their uniform index; its ``sample()`` builds a new ``SingleAgentEpisode`` per drawn
transition, which costs more than the DDPG update itself on a CPU. ``sample_transitions`` draws
from the same index but reads numpy views of each stored episode, cached until the episode
grows or is evicted, so drawing thousands of transitions per training step stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer


class TransitionReplayBuffer(EpisodeReplayBuffer):
    """``EpisodeReplayBuffer`` plus a fast, vectorised ``sample_transitions(n)``."""

    def __init__(self, capacity: int = 1_000_000, *, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(capacity=capacity, **kwargs)
        self.rng = np.random.default_rng(seed)
        # episode id -> (length, obs[L+1], actions[L], rewards[L], terminated)
        self._cache: dict[str, tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]] = {}

    def add(self, episodes) -> None:
        evicted_before = self._num_episodes_evicted
        super().add(episodes)
        if self._num_episodes_evicted != evicted_before:
            live = self.episode_id_to_index
            self._cache = {k: v for k, v in self._cache.items() if k in live}

    def _arrays(self, episode) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, bool]:
        cached = self._cache.get(episode.id_)
        if cached is not None and cached[0] == len(episode):
            return cached
        obs = np.asarray(episode.get_observations(), dtype=np.float32)
        entry = (
            len(episode),
            obs.reshape(obs.shape[0], -1),
            np.asarray(episode.get_actions(), dtype=np.float32).reshape(len(episode), -1),
            np.asarray(episode.get_rewards(), dtype=np.float32),
            bool(episode.is_terminated),
        )
        self._cache[episode.id_] = entry
        return entry

    def sample_transitions(self, n: int) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly (with replacement) from every stored env step.

        Returns flat arrays under RLlib's column names: ``obs``, ``actions``, ``rewards``,
        ``new_obs`` and ``terminateds`` (true only on the last step of a terminated episode;
        a truncated episode's last step bootstraps as usual).
        """
        if not self._indices:
            raise ValueError("cannot sample from an empty replay buffer")
        picks = self.rng.integers(len(self._indices), size=n)
        # Group the draws by episode so that each episode is indexed once, vectorised.
        by_episode: dict[int, list[int]] = {}
        ts = np.empty(n, dtype=np.int64)
        for row, pick in enumerate(picks):
            eps_idx, t = self._indices[pick]
            ts[row] = t
            by_episode.setdefault(eps_idx, []).append(row)
        first = self._arrays(self.episodes[next(iter(by_episode)) - self._num_episodes_evicted])
        obs = np.empty((n, first[1].shape[1]), dtype=np.float32)
        next_obs = np.empty_like(obs)
        actions = np.empty((n, first[2].shape[1]), dtype=np.float32)
        rewards = np.empty(n, dtype=np.float32)
        terminateds = np.zeros(n, dtype=bool)
        for eps_idx, rows in by_episode.items():
            length, e_obs, e_act, e_rew, e_term = self._arrays(
                self.episodes[eps_idx - self._num_episodes_evicted]
            )
            rows_a = np.asarray(rows)
            t = ts[rows_a]
            obs[rows_a] = e_obs[t]
            next_obs[rows_a] = e_obs[t + 1]
            actions[rows_a] = e_act[t]
            rewards[rows_a] = e_rew[t]
            if e_term:
                terminateds[rows_a] = t == length - 1
        self.sampled_timesteps += n
        return {
            Columns.OBS: obs,
            Columns.ACTIONS: actions,
            Columns.REWARDS: rewards,
            Columns.NEXT_OBS: next_obs,
            Columns.TERMINATEDS: terminateds,
        }

    def set_state(self, state) -> None:
        self._cache = {}
        super().set_state(state)
