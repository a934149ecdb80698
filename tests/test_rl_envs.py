"""Atari training sampling: ale-py's native C++ vector env against the Gymnasium wrapper stack.

Both pipelines get the same seed and the same action sequence and are compared step by step
(observations, rewards, terminated, truncated), exactly: the same ALE frames, the same OpenCV
``INTER_AREA`` resize, so no tolerance is needed. The no-op starts are turned off
(``noop_max=0``) for the comparison because the two draw their no-op counts from different
RNGs (and ranges, see the last test).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from deepmorning.rl import envs

pytest.importorskip("cv2")


def both(env_id: str, num_envs: int, **kwargs) -> tuple[gym.vector.VectorEnv, ...]:
    """(Gymnasium stack in a SyncVectorEnv as RLlib builds it, native vector env)."""
    gymnasium = gym.vector.SyncVectorEnv(
        [lambda: envs.make_env(env_id, train=True, noop_max=0, **kwargs)] * num_envs)
    native = envs.make_native_atari_vector(env_id, num_envs, noop_max=0, **kwargs)
    return gymnasium, native


def step_both(env_id: str, steps: int, num_envs: int = 1, **kwargs) -> dict[str, int]:
    """Step both pipelines with one random action sequence; assert every step is equal and
    return what happened (so a test can check its events were covered)."""
    gymnasium, native = both(env_id, num_envs, **kwargs)
    seen = {"life_lost": 0, "game_over": 0, "truncated": 0, "rewards": 0}
    try:
        obs_g, info_g = gymnasium.reset(seed=0)
        obs_n, _ = native.reset(seed=0)
        np.testing.assert_array_equal(obs_n, obs_g)
        lives = info_g["lives"]
        actions = np.random.default_rng(0).integers(0, gymnasium.single_action_space.n,
                                                    (steps, num_envs))
        for t, action in enumerate(actions):
            got_g = gymnasium.step(action)
            got_n = native.step(action)
            names = ("obs", "reward", "terminated", "truncated")
            for name, g, n in zip(names, got_g[:4], got_n[:4], strict=True):
                np.testing.assert_array_equal(n, g, err_msg=f"{name} at step {t}")
            _, reward, terminated, truncated, info_g = got_g
            lost = terminated & (info_g["lives"] > 0) & (info_g["lives"] < lives)
            seen["life_lost"] += int(lost.sum())
            seen["game_over"] += int((terminated & ~lost).sum())
            seen["truncated"] += int(truncated.sum())
            seen["rewards"] += int((reward != 0).sum())
            lives = info_g["lives"]
    finally:
        gymnasium.close()
        native.close()
    return seen


def test_native_equals_gymnasium_through_lost_lives_and_game_over():
    """Breakout: a lost life is terminal while the game goes on (the next step is a no-op and
    starts a new frame stack), game over resets; rewards are clipped alike."""
    seen = step_both("ALE/Breakout-v5", 330)
    assert seen["life_lost"] >= 4 and seen["game_over"] >= 1 and seen["rewards"] >= 1, seen


def test_native_equals_gymnasium_through_truncation_and_rewards():
    """Pong with games cut at 400 frames: truncation, the reset after it, ±1 rewards, two envs
    stepped together."""
    seen = step_both("ALE/Pong-v5", 220, num_envs=2, max_num_frames_per_episode=400)
    assert seen["truncated"] >= 4 and seen["rewards"] >= 1, seen


def test_rllib_env_runner_samples_the_same_episodes_from_both():
    """The DQN config's EnvRunner hosts the native env (RLlib's ``vector_entry_point`` mode)
    and samples the same episodes as with the Gymnasium stack."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from deepmorning.rl import registry

    spec = registry.get("dqn")
    sampled = {}
    for vector in ("gymnasium", "native"):
        hp = spec.preset("nature") | {"num_envs": 2, "atari_vector": vector}
        config = spec.build_config({"env": "ALE/Breakout-v5", "hyperparameters": hp, "seed": 0})
        config.environment(env_config=config.env_config | {"noop_max": 0})
        runner = SingleAgentEnvRunner(config=config)
        try:
            runner.env.action_space.seed(0)
            sampled[vector] = runner.sample(num_timesteps=200, random_actions=True)
            kind = type(runner.env.unwrapped).__name__
            assert kind == ("AtariVectorEnv" if vector == "native" else "SyncVectorEnv")
        finally:
            runner.stop()
    gymnasium, native = sampled["gymnasium"], sampled["native"]
    assert len(native) == len(gymnasium) and sum(e.is_terminated for e in native) >= 3
    for g, n in zip(gymnasium, native, strict=True):
        assert (n.is_terminated, n.is_truncated) == (g.is_terminated, g.is_truncated)
        for get in ("get_observations", "get_actions", "get_rewards"):
            np.testing.assert_array_equal(np.asarray(getattr(n, get)()),
                                          np.asarray(getattr(g, get)()), err_msg=get)


def test_noop_starts_differ_only_in_their_range_and_rng():
    """The one documented difference: at a reset the native env plays 0-29 no-op frames, the
    Gymnasium stack 1-30 (both "up to 30", Nature Methods), from different RNGs."""
    native = envs.make_native_atari_vector("ALE/Pong-v5", 4)
    native.reset(seed=0)  # seeded once; unseeded resets go on drawing (no ROM reload)
    frames = np.concatenate([native.reset()[1]["episode_frame_number"] for _ in range(10)])
    native.close()
    assert frames.min() >= 0 and frames.max() <= 29 and len(set(frames)) > 10
    gymnasium = envs.make_env("ALE/Pong-v5", train=True)
    gymnasium.reset(seed=0)
    frames = [gymnasium.reset()[1]["episode_frame_number"] for _ in range(40)]
    gymnasium.close()
    assert min(frames) >= 1 and max(frames) <= 30


def test_atari_vector_choice_reaches_the_env_runners():
    from deepmorning.platform.errors import DeepmorningError
    from deepmorning.rl.dqn import env_config

    assert env_config("ALE/Pong-v5", {"atari_vector": "native"})["vector"] == "native"
    assert "vector" not in env_config("ALE/Pong-v5", {"atari_vector": "gymnasium"})
    assert "vector" not in env_config("ALE/Pong-v5", {})  # run configs from before the key
    assert "vector" not in env_config("CartPole-v1", {"atari_vector": "native"})
    with pytest.raises(DeepmorningError, match="atari_vector must be one of"):
        env_config("ALE/Pong-v5", {"atari_vector": "cpp"})
