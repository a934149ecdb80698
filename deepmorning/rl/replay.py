"""Uniform experience replay for DQN and DDPG on RLlib's ``EpisodeReplayBuffer``.

Both papers learn from single transitions ``(s, a, r, s', terminal)`` drawn uniformly from the
last 10^6 environment steps (Mnih et al. 2015, Methods "Training details" and Algorithm 1;
Lillicrap et al. 2015, section 7). RLlib's ``EpisodeReplayBuffer`` does the bookkeeping: it
stores the sampled episodes (concatenating the chunks of an ongoing one), evicts the oldest
beyond ``capacity`` and checkpoints its contents through ``get_state``/``set_state``.

What this subclass adds:

* :meth:`TransitionReplayBuffer.sample_transitions` draws ``n`` transitions as numpy arrays
  under RLlib's column names. RLlib's own ``sample()`` builds one ``SingleAgentEpisode`` per
  drawn transition, which costs more than the learning. Here the draw is vectorised (one
  ``searchsorted`` over the episodes' cumulative lengths) and the gather is one numpy
  fancy-index per episode drawn, on arrays cached until the episode grows or is evicted.
* A terminated episode's last step does not bootstrap (``terminateds`` is true); a truncated
  one's does (a time limit is not a terminal state of the MDP).
* Episodes are stored compactly: observations, actions and rewards as numpy arrays (float64
  as float32, what the networks read anyway), no infos or extra model outputs (which the
  losses never read).
* ``frame_stack=k`` (Atari): the observation at each step is the stack of the last ``k``
  frames, but only the newest frame is stored, as in DeepMind's replay memory ("the last 4
  frames", Mnih et al. 2015, Methods). The stacks are rebuilt at sample time. Each episode
  also keeps the ``k - 1`` older frames of its first stack (its lookback), so the rebuilt
  stacks are exactly what the environment produced, including at episode starts (Gymnasium's
  ``FrameStackObservation`` repeats the reset frame there). A 10^6-step Atari replay thus
  holds 10^6 × 84×84 bytes (7 GB) of frames instead of 4× that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.utils import force_list
from ray.rllib.utils.replay_buffers.episode_replay_buffer import EpisodeReplayBuffer


@dataclass
class _EpisodeArrays:
    """numpy views of one stored episode (no copies: the episode owns the memory)."""

    length: int
    obs: np.ndarray  # length + 1 observations, or length + k frames with ``frame_stack=k``
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool


class TransitionReplayBuffer(EpisodeReplayBuffer):
    """``EpisodeReplayBuffer`` with vectorised uniform ``sample_transitions(n)``.

    Args:
        capacity: environment steps kept (the oldest whole episodes are evicted beyond it).
        frame_stack: ``k > 1`` for observations that are stacks of the last ``k`` frames
            (stack axis first, e.g. 4×84×84): only the newest frame per step is stored.
        seed: seed of the sampling RNG.
    """

    def __init__(self, capacity: int = 1_000_000, *, frame_stack: int = 0,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(capacity=capacity, **kwargs)
        self.frame_stack = frame_stack if frame_stack > 1 else 0
        self.rng = np.random.default_rng(seed)
        self._arrays: dict[str, _EpisodeArrays] = {}  # episode id -> cached views
        self._starts: np.ndarray | None = None  # first flat step index of each episode

    # -- adding ------------------------------------------------------------------------------
    def add(self, episodes: Any) -> None:
        """Store episode chunks (new episodes or continuations of stored ones)."""
        evicted = self._num_episodes_evicted
        for episode in force_list(episodes):
            if len(episode) == 0:
                continue
            # One at a time: whether a chunk starts a stored episode (and so needs its
            # older frames) must be decided after the previous chunk's evictions.
            super().add(self._compact(episode))
            self._arrays.pop(episode.id_, None)  # its views would keep the old arrays alive
        self._starts = None
        if self._num_episodes_evicted != evicted:  # free the evicted episodes' memory
            live = self.episode_id_to_index
            self._arrays = {k: v for k, v in self._arrays.items() if k in live}

    def _compact(self, episode: SingleAgentEpisode) -> SingleAgentEpisode:
        """A copy of ``episode`` holding only what the losses read, as numpy arrays."""
        obs = _as_float32_if_floating(np.asarray(episode.get_observations()))
        lookback = 0
        if self.frame_stack:
            if obs.ndim < 2 or obs.shape[1] != self.frame_stack:
                raise ValueError(f"frame_stack={self.frame_stack} needs observations of shape "
                                 f"(frames, ...) with {self.frame_stack} frames, got "
                                 f"{obs.shape[1:]}")
            frames = obs[:, -1]  # the newest frame of each stack
            if episode.id_ not in self.episode_id_to_index:
                # First chunk stored of this episode: keep the older frames of its first
                # stack, exactly as the environment stacked them.
                frames = np.concatenate([obs[0, :-1], frames])
                lookback = self.frame_stack - 1
            obs = np.ascontiguousarray(frames)
        return SingleAgentEpisode(
            id_=episode.id_,
            observations=InfiniteLookbackBuffer(obs, lookback=lookback),
            actions=InfiniteLookbackBuffer(
                _as_float32_if_floating(np.asarray(episode.get_actions()))),
            rewards=InfiniteLookbackBuffer(np.asarray(episode.get_rewards(), np.float32)),
            infos=[{}] * len(episode.get_observations()),
            terminated=episode.is_terminated,
            truncated=episode.is_truncated,
            t_started=episode.t_started,
            len_lookback_buffer=0,
        )

    # -- sampling ----------------------------------------------------------------------------
    def sample_transitions(self, n: int) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly (with replacement) from every stored env step.

        Returns arrays under RLlib's column names: ``obs``, ``actions``, ``rewards``,
        ``new_obs`` and ``terminateds`` (true only on the last step of a terminated episode;
        a truncated episode's last step bootstraps from ``new_obs`` as usual).
        """
        total = self.get_num_timesteps()
        if total == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        starts = self._episode_starts()
        steps = self.rng.integers(total, size=n)
        episode = np.searchsorted(starts, steps, side="right") - 1
        self.sampled_timesteps += n
        return self.gather(episode, steps - starts[episode])

    def gather(self, episode: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Transitions at steps ``t`` of the stored episodes ``episode`` (deque positions)."""
        n = len(t)
        order = np.argsort(episode, kind="stable")
        drawn, first = np.unique(episode[order], return_index=True)
        bounds = np.append(first, n)
        out: dict[str, np.ndarray] = {}
        for j, e in enumerate(drawn):
            rows = order[bounds[j]:bounds[j + 1]]
            arrays = self._episode_arrays(int(e))
            ts = t[rows]
            if not out:
                out = self._empty_batch(arrays, n)
            out[Columns.OBS][rows] = self._observations(arrays, ts)
            out[Columns.NEXT_OBS][rows] = self._observations(arrays, ts + 1)
            out[Columns.ACTIONS][rows] = arrays.actions[ts]
            out[Columns.REWARDS][rows] = arrays.rewards[ts]
            if arrays.terminated:
                out[Columns.TERMINATEDS][rows] = ts == arrays.length - 1
        return out

    def _observations(self, arrays: _EpisodeArrays, ts: np.ndarray) -> np.ndarray:
        if not self.frame_stack:
            return arrays.obs[ts]
        # Observation t is frames t .. t+k-1 (the first k-1 frames are the lookback).
        return arrays.obs[ts[:, None] + np.arange(self.frame_stack)]

    def _empty_batch(self, arrays: _EpisodeArrays, n: int) -> dict[str, np.ndarray]:
        obs_shape = arrays.obs.shape[1:]
        if self.frame_stack:
            obs_shape = (self.frame_stack, *obs_shape)
        obs_dtype = _float32_if_floating(arrays.obs.dtype)
        return {
            Columns.OBS: np.empty((n, *obs_shape), obs_dtype),
            Columns.NEXT_OBS: np.empty((n, *obs_shape), obs_dtype),
            Columns.ACTIONS: np.empty((n, *arrays.actions.shape[1:]),
                                      _float32_if_floating(arrays.actions.dtype)),
            Columns.REWARDS: np.empty(n, np.float32),
            Columns.TERMINATEDS: np.zeros(n, bool),
        }

    def _episode_starts(self) -> np.ndarray:
        """Flat index of each stored episode's first step (deque order), plus the total."""
        if self._starts is None:
            lengths = np.fromiter((len(e) for e in self.episodes), np.int64, len(self.episodes))
            self._starts = np.concatenate([[0], np.cumsum(lengths)])
        return self._starts

    def _episode_arrays(self, position: int) -> _EpisodeArrays:
        episode = self.episodes[position]
        arrays = self._arrays.get(episode.id_)
        if arrays is None or arrays.length != len(episode):
            arrays = _EpisodeArrays(
                length=len(episode),
                obs=np.asarray(episode.observations.data),  # incl. the lookback frames
                actions=np.asarray(episode.actions.data),
                rewards=np.asarray(episode.rewards.data, np.float32),
                terminated=bool(episode.is_terminated),
            )
            self._arrays[episode.id_] = arrays
        return arrays

    # -- checkpoints -------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return super().get_state() | {"frame_stack": self.frame_stack,
                                      "rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("frame_stack", 0) != self.frame_stack:
            raise ValueError(f"replay state has frame_stack={state.get('frame_stack', 0)}, "
                             f"this buffer {self.frame_stack}")
        self.episodes.clear()  # RLlib's set_state only fills an empty buffer
        super().set_state(state)
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        self._arrays = {}
        self._starts = None


def _as_float32_if_floating(array: np.ndarray) -> np.ndarray:
    """float64 observations and actions (MuJoCo's) are stored as the float32 the nets read."""
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _float32_if_floating(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if np.issubdtype(dtype, np.floating) else dtype
