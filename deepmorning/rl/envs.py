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

Training on Atari may instead sample from ale-py's own C++ vector environment
(``ale_py.vector_env.AtariVectorEnv``, :func:`make_native_atari_vector`; hyperparameter
``atari_vector``), which does the same preprocessing in C++ (the same ALE frames, the same
OpenCV ``INTER_AREA`` resize) and is wrapped so that observations, rewards, ``terminated``,
``truncated`` and the autoreset steps are those of the Gymnasium stack above
(``tests/test_rl_envs.py`` compares them step by step). Differences that remain: the no-op
count at a reset is drawn from another RNG and is 0-29 emulator frames instead of 1-30 (both
"up to 30", Nature Methods); the infos carry ``env_id`` and no ``seeds``. Evaluation keeps the
Gymnasium stack (raw scores, 18,000-frame games).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

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

#: Values of the ``atari_vector`` hyperparameter: which vector env samples Atari for training.
ATARI_VECTORS = ("native", "gymnasium")

#: Gymnasium ``ALE/...`` spec kwargs the native vector env reproduces; an id with any other
#: (``mode``, ``difficulty``, ...) keeps the Gymnasium stack.
_NATIVE_SPEC_KWARGS = {"game", "obs_type", "repeat_action_probability", "full_action_space",
                       "frameskip", "max_num_frames_per_episode"}


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


def env_creator(env_config: dict) -> gym.Env | gym.vector.VectorEnv:
    """Tune env creator: ``env_config = {"id": ..., "train": bool}``, optionally ``"vector":
    "native"``, ``"num_threads"`` (native only) and ``"noop_max"`` (Atari).

    RLlib's EnvRunner calls it with ``num_envs`` added when the config's
    ``gym_env_vectorize_mode`` is ``vector_entry_point`` (RLlib registers the creator as the
    id's Gymnasium ``vector_entry_point``): then it returns the native Atari vector env.
    """
    kwargs = {"noop_max": int(env_config["noop_max"])} if "noop_max" in env_config else {}
    if "num_envs" in env_config and env_config.get("vector") == "native":
        return make_native_atari_vector(env_config["id"], int(env_config["num_envs"]),
                                        num_threads=int(env_config.get("num_threads", 1)),
                                        **kwargs)
    return make_env(env_config["id"], train=env_config.get("train", True), **kwargs)


def native_atari_applies(env_id: str) -> bool:
    """Whether :func:`make_native_atari_vector` reproduces ``env_id``'s training pipeline."""
    if not is_atari(env_id):
        return False
    spec = gym.spec(env_id)
    return (set(spec.kwargs) <= _NATIVE_SPEC_KWARGS and "game" in spec.kwargs
            and spec.kwargs.get("obs_type", "rgb") in ("rgb", "grayscale")
            and spec.max_episode_steps is None)


def make_native_atari_vector(env_id: str, num_envs: int, *, noop_max: int = 30,
                             num_threads: int = 1,
                             **kwargs: Any) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id``'s *training* pipeline in ale-py's C++ vector env.

    The options are those of :func:`make_atari` with ``train=True``: frame skip 4 with the max
    of the last two frames, 84×84 grey, 4 stacked frames, up to 30 no-op frames at a reset,
    rewards clipped to [-1, 1], a deterministic ALE (no sticky actions), no FIRE at reset,
    games cut at the spec's frame cap (108,000). A life loss is reported as ``terminated``
    while the game goes on (``life_loss_info``, not ale-py's ``episodic_life``, which would
    restart the whole game); :class:`GymnasiumAtariSteps` then makes the step after it the
    no-op step of RLlib's ``EpisodicLifeEnv`` and fills the frame stacks at episode starts as
    ``FrameStackObservation`` does. ``num_threads`` C++ threads step the envs (1: the
    EnvRunner's one CPU). ``kwargs`` (e.g. ``max_num_frames_per_episode``) go to
    ``AtariVectorEnv``.
    """
    if not native_atari_applies(env_id):
        raise DeepmorningError(f"{env_id} cannot use ale-py's native vector env "
                               "(set atari_vector=gymnasium)")
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode

    spec = gym.spec(env_id)
    options: dict[str, Any] = {
        "max_num_frames_per_episode": spec.kwargs.get("max_num_frames_per_episode", 108_000),
        "full_action_space": spec.kwargs.get("full_action_space", False),
    } | kwargs
    env = AtariVectorEnv(
        spec.kwargs["game"], num_envs, num_threads=num_threads, batch_size=0,
        repeat_action_probability=0.0, autoreset_mode=AutoresetMode.NEXT_STEP,
        frameskip=4, maxpool=True, grayscale=True, img_height=84, img_width=84,
        stack_num=FRAME_STACK, noop_max=noop_max, use_fire_reset=False,
        episodic_life=False, life_loss_info=True, reward_clipping=True, **options)
    return GymnasiumAtariSteps(env)


class GymnasiumAtariSteps(gym.vector.VectorWrapper):
    """ale-py's ``AtariVectorEnv`` (with ``life_loss_info``) stepping like the Gymnasium stack.

    Three things differ in the bare C++ env and are made equal here, on numpy arrays only:

    * in the first 3 observations of an episode its frame stack holds zeros (after a reset)
      or the previous life's frames (after a lost life) before the episode's first frame,
      where ``FrameStackObservation`` repeats that first frame: they are replaced by it;
    * after a lost life (``terminated`` with lives left) it goes on with the agent's next
      action, where RLlib's ``EpisodicLifeEnv`` resets with one no-op step (action 0); that
      action is replaced by 0, and the observation after it starts a new frame stack;
    * rewards come as int32: they are returned as float64, as a Gymnasium vector env does.
    """

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        n = env.num_envs
        self._done = np.zeros(n, dtype=bool)  # the previous step ended an episode
        self._life_lost = np.zeros(n, dtype=bool)  # ... by a lost life, the game going on
        self._lives = np.zeros(n, dtype=np.int64)
        # Steps since each env's episode started (its first observation: 0), up to the stack.
        self._age = np.zeros(n, dtype=np.int64)
        self._stack = int(env.single_observation_space.shape[0])

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._done[:] = False
        self._life_lost[:] = False
        self._lives[:] = info["lives"]
        self._age[:] = 0
        self._pad_episode_starts(obs)
        return obs, info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                          dict[str, Any]]:
        actions = np.asarray(actions).astype(np.int64, copy=False)
        if self._life_lost.any():
            actions = np.where(self._life_lost, 0, actions)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        # The first observation of an episode (a reset, or the no-op step after a lost life).
        self._age = np.where(self._done, 0, self._age + 1)
        self._pad_episode_starts(obs)
        lives = info["lives"]
        # RLlib's EpisodicLifeEnv's test: fewer lives, but some left (the game goes on).
        self._life_lost = terminated & ~truncated & (lives > 0) & (lives < self._lives)
        self._done = terminated | truncated
        self._lives[:] = lives
        return obs, reward.astype(np.float64), terminated, truncated, info

    def _pad_episode_starts(self, obs: np.ndarray) -> None:
        """In the first ``stack - 1`` observations of an episode, put the episode's first frame
        where the C++ stack holds zeros (after a reset) or the last life's frames."""
        for i in np.flatnonzero(self._age < self._stack - 1):
            first = self._stack - 1 - self._age[i]  # where the episode's first frame sits
            obs[i, :first] = obs[i, first]


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
