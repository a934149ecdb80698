"""The shared replay buffer (deepmorning/rl/replay.py): bootstrapping, checkpoints, eviction
and the single-frame Atari storage against the real ALE pipeline."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode

from deepmorning.rl import envs
from deepmorning.rl.replay import TransitionReplayBuffer


def episode(start: float, length: int, *, terminated: bool = False, truncated: bool = False,
            ) -> SingleAgentEpisode:
    """Observations start, start+1, ...; action t = t; reward t = start + t / 10."""
    return SingleAgentEpisode(
        observations=[np.array([start + t], np.float32) for t in range(length + 1)],
        actions=list(range(length)),
        rewards=[start + t / 10 for t in range(length)],
        terminated=terminated, truncated=truncated, len_lookback_buffer=0,
    )


def everything(buf: TransitionReplayBuffer) -> dict[str, np.ndarray]:
    """Every stored transition, in storage order."""
    lengths = [len(e) for e in buf.episodes]
    return buf.gather(np.repeat(np.arange(len(lengths)), lengths),
                      np.concatenate([np.arange(n) for n in lengths]))


def test_terminated_episodes_do_not_bootstrap_and_truncated_ones_do():
    buf = TransitionReplayBuffer(capacity=100, seed=0)
    buf.add([episode(0.0, 5, terminated=True), episode(100.0, 4, truncated=True),
             episode(200.0, 3)])  # the last one is still running
    out = buf.sample_transitions(2_000)
    obs = out[Columns.OBS][:, 0]
    np.testing.assert_array_equal(out[Columns.NEXT_OBS][:, 0], obs + 1)
    np.testing.assert_allclose(out[Columns.REWARDS], obs / 10 + np.floor(obs / 100) * 90,
                               rtol=1e-6)
    np.testing.assert_array_equal(out[Columns.ACTIONS], obs % 100)
    # Only the last step of the terminated episode (s=4 -> s'=5) is terminal.
    np.testing.assert_array_equal(out[Columns.TERMINATEDS], obs == 4)
    assert set(obs) == set(range(5)) | set(range(100, 104)) | set(range(200, 203))


def test_draws_are_uniform_over_steps_not_episodes():
    buf = TransitionReplayBuffer(capacity=100, seed=1)
    buf.add([episode(0.0, 1, terminated=True), episode(100.0, 9, terminated=True)])
    obs = buf.sample_transitions(20_000)[Columns.OBS][:, 0]
    assert abs(np.mean(obs < 100) - 0.1) < 0.01  # 1 of 10 steps, not 1 of 2 episodes


def test_chunks_of_a_running_episode_are_joined_and_old_episodes_evicted():
    buf = TransitionReplayBuffer(capacity=12, seed=0)
    first = episode(0.0, 5)
    buf.add(first)
    buf.sample_transitions(8)  # caches the 5-step episode's arrays
    rest = first.cut()
    for t in range(6, 9):
        rest.add_env_step(np.array([float(t)], np.float32), t - 1, t / 10,
                          terminated=t == 8)
    buf.add(rest)
    np.testing.assert_array_equal(everything(buf)[Columns.OBS][:, 0], np.arange(8))
    buf.add(episode(100.0, 6, terminated=True))  # 14 steps > 12: the oldest episode goes
    assert buf.get_num_timesteps() == 6 and buf.get_num_episodes() == 1
    assert set(buf.sample_transitions(500)[Columns.OBS][:, 0]) == set(range(100, 106))


def test_checkpoint_round_trip_restores_contents_and_sampling_stream():
    buf = TransitionReplayBuffer(capacity=100, seed=3)
    running = episode(0.0, 6)
    buf.add([running, episode(100.0, 4, terminated=True), episode(200.0, 3, truncated=True)])
    buf.sample_transitions(10)
    state = pickle.loads(pickle.dumps(buf.get_state()))

    restored = TransitionReplayBuffer(capacity=100, seed=99)
    restored.add(episode(500.0, 7))  # restoring replaces whatever was there
    restored.set_state(state)
    assert restored.get_num_timesteps() == 13 and restored.sampled_timesteps == 10
    for key, value in everything(buf).items():
        np.testing.assert_array_equal(everything(restored)[key], value)
    a, b = buf.sample_transitions(64), restored.sample_transitions(64)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # The running episode goes on after the restore.
    more = running.cut()
    more.add_env_step(np.array([7.0], np.float32), 6, 0.6, terminated=True)
    restored.add(more)
    assert restored.get_num_timesteps() == 14 and restored.get_num_episodes() == 3
    with pytest.raises(ValueError, match="frame_stack"):
        TransitionReplayBuffer(frame_stack=4).set_state(state)


def record_pong(steps: int, chunk: int) -> tuple[list[SingleAgentEpisode], list[np.ndarray]]:
    """Random play through the papers' Pong pipeline (games cut at 480 emulator frames, so
    several episodes start within ``steps``), recorded as RLlib's EnvRunner does: chunks of at
    most ``chunk`` steps. Returns the chunks and every (obs, next obs) pair's stacks."""
    env = envs.make_env("ALE/Pong-v5", train=True, max_num_frames_per_episode=480)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    chunks, current = [], SingleAgentEpisode(observations=[obs], len_lookback_buffer=0)
    stacks = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        stacks.append((obs, next_obs))
        current.add_env_step(next_obs, action, reward, terminated=terminated,
                             truncated=truncated)
        obs = next_obs
        if terminated or truncated:
            chunks.append(current)
            obs, _ = env.reset()
            current = SingleAgentEpisode(observations=[obs], len_lookback_buffer=0)
        elif len(current) == chunk:
            chunks.append(current)
            current = current.cut()
    chunks.append(current)
    env.close()
    return [c.to_numpy() for c in chunks if len(c)], stacks


def test_frame_stacks_rebuilt_from_single_frames_equal_the_real_ale_pipeline():
    chunks, stacks = record_pong(steps=400, chunk=37)
    episode_ids = {c.id_ for c in chunks}
    assert len(episode_ids) >= 3  # episode starts are part of what is compared
    buf = TransitionReplayBuffer(capacity=10_000, frame_stack=4, seed=0)
    buf.add(chunks)
    assert buf.get_num_timesteps() == 400
    # One 84x84 frame per step, plus the 3 older frames of each episode's first stack.
    stored = sum(e.observations.data.nbytes for e in buf.episodes)
    assert stored == (400 + 4 * len(episode_ids)) * 84 * 84
    out = everything(buf)  # storage order is the order played (episodes are sequential)
    assert out[Columns.OBS].shape == (400, 4, 84, 84) and out[Columns.OBS].dtype == np.uint8
    for i, (obs, next_obs) in enumerate(stacks):
        np.testing.assert_array_equal(out[Columns.OBS][i], obs, err_msg=f"step {i}")
        np.testing.assert_array_equal(out[Columns.NEXT_OBS][i], next_obs, err_msg=f"step {i}")
    # At an episode start the stack is the reset frame four times (FrameStackObservation).
    start = out[Columns.OBS][0]
    assert all(np.array_equal(start[j], start[3]) for j in range(3))
    # The frames survive a checkpoint.
    restored = TransitionReplayBuffer(capacity=10_000, frame_stack=4)
    restored.set_state(pickle.loads(pickle.dumps(buf.get_state())))
    np.testing.assert_array_equal(everything(restored)[Columns.NEXT_OBS], out[Columns.NEXT_OBS])


def test_only_atari_gets_single_frame_storage():
    assert envs.replay_frame_stack(envs.ENV_NAME, {"id": "ALE/Pong-v5"}) == 4
    assert envs.replay_frame_stack("ALE/Breakout-v5") == 4
    assert envs.replay_frame_stack(envs.ENV_NAME, {"id": "CartPole-v1"}) == 0
    assert envs.replay_frame_stack("not-a-gym-id") == 0
    with pytest.raises(ValueError, match="frame_stack=4"):
        TransitionReplayBuffer(frame_stack=4).add(episode(0.0, 3))


def test_dqn_on_atari_stores_single_frames(ray_local):
    from deepmorning.rl import registry

    spec = registry.get("dqn")
    hp = spec.preset("nature") | {"num_envs": 1, "env_steps_per_iteration": 40,
                                  "learning_starts": 32, "replay_capacity": 1_000}
    algo = spec.build_config({"env": "ALE/Pong-v5", "hyperparameters": hp, "seed": 0}
                             ).build_algo()
    try:
        algo.train()
        assert algo.replay.frame_stack == 4 and algo.gradient_updates == 10
        frames = algo.replay.episodes[0].observations.data
        assert frames.shape == (40 + 4, 84, 84) and frames.dtype == np.uint8
    finally:
        algo.stop()


def test_ddpg_paper_preset_checkpoints_its_replay_at_most_every_50k_steps():
    from deepmorning.rl.ddpg.presets import PRESETS
    from deepmorning.rl.runner import _checkpoint_due

    def due_at(preset: str) -> list[int]:
        cfg = {"checkpoint_every": 10, "hyperparameters": PRESETS[preset]()}
        steps_per_iteration = cfg["hyperparameters"]["rollout_fragment_length"]
        last, saved = 0, []
        for iteration in range(1, 2_001):
            row = {"iteration": iteration, "env_steps": iteration * steps_per_iteration}
            if _checkpoint_due(row, cfg, last):
                last = row["env_steps"]
                saved.append(last)
        return saved

    paper = due_at("paper")  # 64 steps per iteration: 128,000 steps
    assert paper == [50_560, 101_120]  # not every 640 steps
    assert due_at("pendulum")[:3] == [2_000, 4_000, 6_000]  # small replay: every 10 iterations


def test_evicted_episodes_leave_no_cached_arrays_behind():
    buf = TransitionReplayBuffer(capacity=30, seed=0)
    for i in range(20):
        if i:
            buf.sample_transitions(64)  # caches views of every stored episode
        buf.add(episode(100.0 * i, 10, terminated=True))
        live = {e.id_ for e in buf.episodes}
        assert len(live) == min(i + 1, 3)
        assert set(buf._arrays) <= live  # nothing keeps an evicted episode's memory alive
