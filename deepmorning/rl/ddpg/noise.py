"""Exploration for DDPG: Ornstein-Uhlenbeck noise kept per episode, on the EnvRunner side.

Lillicrap et al. (2015), section 3: "we constructed an exploration policy mu' by adding noise
sampled from a noise process N to our actor policy, mu'(s_t) = mu(s_t | theta_t) + N", and
section 7: "we used an Ornstein-Uhlenbeck process (Uhlenbeck & Ornstein, 1930) with theta = 0.15
and sigma = 0.2", chosen for temporally correlated exploration in physical control problems.

The noise lives in a module-to-env connector piece, :class:`ExplorationNoise`: the RLModule
returns the deterministic ``mu(s)``; this piece adds noise while exploring (never during
evaluation), clips to the action bounds, and keeps one process per episode ID, so each vector
sub-environment has its own process, carried across ``sample()`` calls and reset at every new
episode. Noise is in units of half the action range (``sigma = 0.2`` means 20% of the way from
the centre to a bound), so one setting fits any Box space.

The optional uniformly random warm-up follows the algorithm's global env-step count (the
``t`` RLlib passes to ``forward_exploration``, kept in checkpoints and broadcast to every
EnvRunner), not a count of its own: N EnvRunners take ``random_steps`` random steps together,
not N times as many, and a resumed run does not warm up again. An action that a vector env
discards (the step after an episode ended, which only resets that sub-environment) gets no
noise: no draw is spent on it and no process advances.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule


class OUNoise:
    """Discretised Ornstein-Uhlenbeck process ``dx = theta (mu - x) dt + sigma sqrt(dt) dW``.

    ``sample()`` advances one step and returns the new ``x``. ``dt = 1`` (the default) gives
    the form most DDPG code uses: ``x += theta (mu - x) + sigma N(0, 1)``.
    """

    def __init__(self, shape: tuple[int, ...], theta: float = 0.15, sigma: float = 0.2,
                 mu: float = 0.0, dt: float = 1.0, rng: np.random.Generator | None = None,
                 x0: np.ndarray | None = None) -> None:
        self.shape = tuple(shape)
        self.theta, self.sigma, self.mu, self.dt = theta, sigma, mu, dt
        self.rng = rng if rng is not None else np.random.default_rng()
        self.x = np.full(self.shape, mu, dtype=np.float64) if x0 is None else np.array(x0, float)

    def reset(self) -> None:
        self.x = np.full(self.shape, self.mu, dtype=np.float64)

    def sample(self) -> np.ndarray:
        dx = self.theta * (self.mu - self.x) * self.dt
        dx = dx + self.sigma * np.sqrt(self.dt) * self.rng.standard_normal(self.shape)
        self.x = self.x + dx
        return self.x.copy()


class GaussianNoise:
    """Uncorrelated ``N(0, sigma^2)`` noise (the option most later DDPG/TD3 code uses)."""

    def __init__(self, shape: tuple[int, ...], sigma: float = 0.1,
                 rng: np.random.Generator | None = None) -> None:
        self.shape = tuple(shape)
        self.sigma = sigma
        self.rng = rng if rng is not None else np.random.default_rng()

    def reset(self) -> None:
        pass

    def sample(self) -> np.ndarray:
        return self.sigma * self.rng.standard_normal(self.shape)


NOISE_TYPES = ("ou", "gaussian")


def make_noise(kind: str, shape: tuple[int, ...], *, sigma: float, theta: float, dt: float,
               rng: np.random.Generator) -> OUNoise | GaussianNoise:
    if kind == "ou":
        return OUNoise(shape, theta=theta, sigma=sigma, dt=dt, rng=rng)
    if kind == "gaussian":
        return GaussianNoise(shape, sigma=sigma, rng=rng)
    raise ValueError(f"unknown noise type {kind!r}; choose one of {', '.join(NOISE_TYPES)}")


class ExplorationNoise(ConnectorV2):
    """Module-to-env piece: ``a = clip(mu(s) + scale * noise_episode, low, high)`` when exploring.

    Also takes uniformly random actions while the algorithm's env steps sampled so far
    (``rl_module.exploration_t``, see the module docstring) are below ``random_steps`` (0 in the
    paper preset), a common warm-up that fills the replay buffer with diverse transitions.
    With ``explore=False`` (evaluation) actions pass through unchanged.

    ``rng`` is the noise's generator; the algorithm checkpoints its state per EnvRunner
    (:meth:`get_random_state`), so a resumed run goes on with new draws.
    """

    def __init__(self, input_observation_space: gym.Space | None = None,
                 input_action_space: gym.Space | None = None, *, noise_type: str = "ou",
                 sigma: float = 0.2, theta: float = 0.15, dt: float = 1.0,
                 random_steps: int = 0, seed: int | list[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(input_observation_space, input_action_space, **kwargs)
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {noise_type!r}")
        self.noise_type, self.sigma, self.theta, self.dt = noise_type, sigma, theta, dt
        self.random_steps = int(random_steps)
        self.rng = np.random.default_rng(seed)
        self._processes: dict[Any, OUNoise | GaussianNoise] = {}

    def _bounds(self, rl_module: RLModule) -> tuple[np.ndarray, np.ndarray]:
        space = rl_module.action_space
        return (np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32))

    def __call__(self, *, rl_module: RLModule, batch: dict[str, Any], episodes: list,
                 explore: bool | None = None, shared_data: dict | None = None,
                 **kwargs: Any) -> Any:
        if not explore or Columns.ACTIONS not in batch:
            return batch
        low, high = self._bounds(rl_module)
        scale = (high - low) / 2.0
        warm_up = getattr(rl_module, "exploration_t", self.random_steps) < self.random_steps
        # The episodes that will take these actions. A sub-env whose episode just ended still
        # gets an action (under the ended episode's ID), which the vector env discards while
        # it resets that sub-env: it gets no noise.
        live = {episode.id_ for episode in episodes if episode.is_reset}
        seen: set = set()

        def perturb(action: np.ndarray, eps_id: Any, *args: Any) -> np.ndarray:
            if eps_id not in live:
                return action
            seen.add(eps_id)
            if warm_up:
                return self.rng.uniform(low, high).astype(np.float32)
            process = self._processes.get(eps_id)
            if process is None:  # a new episode starts with a fresh (reset) process
                process = make_noise(self.noise_type, low.shape, sigma=self.sigma,
                                     theta=self.theta, dt=self.dt, rng=self.rng)
                self._processes[eps_id] = process
            noisy = np.asarray(action, dtype=np.float32) + scale * process.sample()
            return np.clip(noisy, low, high).astype(np.float32)

        self.foreach_batch_item_change_in_place(batch, column=Columns.ACTIONS, func=perturb)
        # Episodes that did not act in this call have ended: drop their processes.
        for eps_id in list(self._processes):
            if eps_id not in seen:
                del self._processes[eps_id]
        return batch

    # The noise generator's state is checkpointed per EnvRunner by the algorithm
    # (deepmorning.rl.offpolicy), not as connector state: RLlib checkpoints the connectors of
    # the local EnvRunner only and broadcasts them to all, which would give every EnvRunner
    # the same draws. Running processes are not kept (a resumed run starts new episodes).
    def get_random_state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_random_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state
