"""Environments for the RL algorithms: Gymnasium ids, and Atari with the DQN papers' preprocessing.

Atari (Mnih et al. 2013, Section 4.1; Nature 2015, Methods "Preprocessing" and "Training details"):

* ``AtariPreprocessing``: up to 30 no-op starts, frame skip 4 with the max over the last two
  frames, 84×84 grey frames (uint8); the ALE's own frame skip and sticky actions are turned off
  so that the wrapper does the papers' skipping on a deterministic emulator.
* life loss is a terminal state **for training only** (RLlib's ``EpisodicLifeEnv``: the game
  goes on after a lost life; only the learner sees ``terminated``). A truncated game (the ALE
  stops every game at 108,000 frames, 30 minutes) is really reset, which RLlib's wrapper
  does not do (it only knows ``terminated``).
* evaluation follows the Nature paper's protocol (Methods, "Evaluation procedure"): games of
  at most 5 minutes (18,000 frames, :data:`ATARI_EVAL_MAX_FRAMES`, counted by the ALE itself)
  with up to 30 no-op starts and ε = 0.05; the presets play 30 of them.
* rewards clipped to [-1, 1] (``ClipReward``) for training only; evaluation reports raw scores.
* ``FrameStackObservation``: the last 4 frames, giving observations of shape 4×84×84.

Every env runner builds its environments through :func:`env_creator`, registered with Tune under
:data:`ENV_NAME`; the environment id and the train/eval switch travel in ``env_config``.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from deepmorning.platform.errors import DeepmorningError

#: The name under which :func:`env_creator` is registered with Ray Tune.
ENV_NAME = "deepmorning-env"

#: Emulator frames after which an evaluation game is cut: 5 minutes at 60 Hz (Nature 2015,
#: Methods, "Evaluation procedure"). Training games keep the ALE's own cap of 108,000 frames.
ATARI_EVAL_MAX_FRAMES = 18_000

#: Emulator frames per agent step: "the agent sees and selects actions on every kth frame
#: instead of every frame ... k = 4" (Mnih et al. 2013, Section 5; Nature 2015, Methods).
FRAME_SKIP = 4

#: Frames per Atari observation: "the last 4 frames" (Mnih et al. 2015, Methods, "Preprocessing").
FRAME_STACK = 4


def register_atari() -> None:
    """Make the ``ALE/...`` ids known to Gymnasium (ale-py ships the ROMs)."""
    try:
        import ale_py
    except ImportError:  # pragma: no cover - ale-py is a dependency
        return
    gym.register_envs(ale_py)


def is_atari(env_id: str) -> bool:
    register_atari()
    spec = gym.spec(env_id)
    entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
    return env_id.startswith("ALE/") or "ale_py" in entry


def check_env_id(env_id: str) -> None:
    """Raise a one-line error for an id Gymnasium does not know."""
    register_atari()
    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise DeepmorningError(f"unknown environment id '{env_id}' ({exc})") from exc


def make_env(env_id: str, *, train: bool = True, **kwargs: Any) -> gym.Env:
    """Build ``env_id``; Atari ids get the papers' preprocessing (see the module docstring)."""
    check_env_id(env_id)
    if not is_atari(env_id):
        try:
            return gym.make(env_id, **kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise DeepmorningError(missing_dependency(env_id, exc)) from exc
    return make_atari(env_id, train=train, **kwargs)


def missing_dependency(env_id: str, exc: Exception) -> str:
    """One line naming what to install for ``env_id`` (MuJoCo: deepmorning's ``mujoco`` extra)."""
    spec = gym.spec(env_id)
    entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
    if "mujoco" in entry:
        return (f"{env_id} needs MuJoCo, which is not installed: "
                "pip install 'deepmorning[mujoco]'")
    return f"{env_id} needs a package that is not installed ({str(exc).strip()})"


def make_atari(env_id: str, *, train: bool = True, noop_max: int = 30,
               frame_stack: int = FRAME_STACK, **kwargs: Any) -> gym.Env:
    """The DQN papers' Atari pipeline from Gymnasium's (and RLlib's) wrappers."""
    from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation
    try:
        import cv2  # noqa: F401 - AtariPreprocessing resizes with OpenCV
    except ImportError as exc:
        raise DeepmorningError(
            "Atari preprocessing needs OpenCV: pip install opencv-python-headless "
            "(or gymnasium[other])"
        ) from exc

    kwargs.setdefault("repeat_action_probability", 0.0)  # the papers' deterministic ALE
    if not train:
        kwargs.setdefault("max_num_frames_per_episode", ATARI_EVAL_MAX_FRAMES)
    env = gym.make(env_id, frameskip=1, **kwargs)
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=FRAME_SKIP, screen_size=84,
                             terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if train:
        env = _episodic_life_class()(env)
        env = ClipReward(env, -1.0, 1.0)
    return FrameStackObservation(env, frame_stack)


@functools.cache
def _episodic_life_class() -> type:
    """RLlib's ``EpisodicLifeEnv`` that also really resets after a truncated game (imported
    lazily: RLlib is heavy). RLlib's wrapper only checks ``terminated``, so after the ALE's
    108k-frame cut it would keep stepping a finished game instead of starting a new one."""
    from ray.rllib.env.wrappers.atari_wrappers import EpisodicLifeEnv

    class TruncationAwareEpisodicLifeEnv(EpisodicLifeEnv):
        def step(self, action: Any):
            obs, reward, terminated, truncated, info = super().step(action)
            self.was_real_terminated = self.was_real_terminated or truncated
            return obs, reward, terminated, truncated, info

    return TruncationAwareEpisodicLifeEnv


def replay_frame_stack(env: Any, env_config: dict | None = None) -> int:
    """Frames per observation that a replay buffer may store once (0: store observations whole).

    ``env`` is what RLlib gets (a Gymnasium id, or :data:`ENV_NAME` with the id in
    ``env_config``); Atari observations stack the last :data:`FRAME_STACK` frames.
    """
    env_id = (env_config or {}).get("id", env) if env == ENV_NAME else env
    if not isinstance(env_id, str):
        return 0
    try:
        return FRAME_STACK if is_atari(env_id) else 0
    except gym.error.Error:  # not a Gymnasium id (e.g. a name registered with Tune)
        return 0


def env_creator(env_config: dict) -> gym.Env:
    """Tune env creator: ``env_config = {"id": ..., "train": bool}``."""
    return make_env(env_config["id"], train=env_config.get("train", True))


def register() -> str:
    """Register :func:`env_creator` with Ray Tune; returns the name to give RLlib."""
    from ray.tune.registry import register_env

    register_env(ENV_NAME, env_creator)
    return ENV_NAME


def spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    """(observation space, action space) of the training environment."""
    env = make_env(env_id, train=True)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()
