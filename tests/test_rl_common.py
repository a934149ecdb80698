"""Policies both RL algorithms share: non-finite updates, evaluation's randomness, acting."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from deepmorning.rl.gradients import SKIPPED

VECTOR = gym.spaces.Box(-5.0, 5.0, (4,), np.float32)


def dqn_learner():
    from deepmorning.rl.dqn import build_config
    from deepmorning.rl.dqn.presets import cartpole

    hp = cartpole() | {"hiddens": [8], "batch_size": 4}
    config = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": 0})
    config.environment(observation_space=VECTOR, action_space=gym.spaces.Discrete(2))
    return config.build_learner()


def ddpg_learner():
    from deepmorning.rl.ddpg.algorithm import DDPGConfig

    env = gym.make("Pendulum-v1")
    config = DDPGConfig().environment(observation_space=env.observation_space,
                                      action_space=env.action_space)
    return config.build_learner()


def snapshot(learner) -> list[torch.Tensor]:
    """Every parameter and every optimizer state tensor."""
    tensors = [p.detach().clone() for p in learner._params.values()]
    for optim in learner._optimizer_parameters:
        for state in optim.state.values():
            tensors += [v.clone() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors


def grads(learner, value: float | None) -> dict:
    """Gradients for every parameter: ones, with one NaN/inf entry if ``value`` is given."""
    out = {pid: torch.ones_like(p) for pid, p in learner._params.items()}
    if value is not None:
        first = next(iter(out))
        out[first].view(-1)[0] = value
    return out


@pytest.mark.parametrize("make", [dqn_learner, ddpg_learner], ids=["dqn", "ddpg"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nonfinite_update_is_skipped_whole(make, bad):
    learner = make()
    learner.apply_gradients(grads(learner, None))  # one good step: optimizer state exists
    before = snapshot(learner)
    learner.apply_gradients(grads(learner, bad))
    after = snapshot(learner)
    assert len(before) == len(after)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert learner.metrics.peek(SKIPPED) == 1
    learner.apply_gradients(grads(learner, None))  # and a finite one is applied again
    assert not all(torch.equal(a, b) for a, b in zip(after, snapshot(learner), strict=True))


def test_evaluation_does_not_reseed_the_global_rng():
    """With 0 EnvRunners the driver explores: an evaluation must not replay its random stream."""
    from deepmorning.rl.runner import run_episodes

    learner = dqn_learner()
    module = learner.module["default_policy"].unwrapped()
    module.eval_epsilon = 0.5  # the evaluation policy draws random numbers too
    torch.manual_seed(123)
    torch.rand(7)
    expected_next = torch.rand(5, generator=torch.Generator().set_state(torch.get_rng_state()))
    run_episodes(module, "CartPole-v1", episodes=1, seed=0)
    assert torch.equal(torch.rand(5), expected_next)
    # and the evaluation itself is reproducible
    a = run_episodes(module, "CartPole-v1", episodes=2, seed=0)
    assert a == run_episodes(module, "CartPole-v1", episodes=2, seed=0)


def test_acting_builds_no_autograd_graph():
    learner = dqn_learner()
    module = learner.module["default_policy"].unwrapped()
    seen = []
    module.q_net.register_forward_hook(lambda m, i, out: seen.append(out.requires_grad))
    obs = {Columns.OBS: torch.zeros(3, 4)}
    module.forward_exploration(obs, t=0)
    module.forward_inference(obs)
    assert seen == [False, False]
    module.forward_train(obs)  # training still builds one
    assert seen[-1] is True


def _documented_dqn_keys() -> list[str]:
    """The keys docs/rl.md promises ``--set`` reaches."""
    import re
    from pathlib import Path

    text = Path(__file__).resolve().parents[1].joinpath("docs", "rl.md").read_text()
    para = text[text.index("Hyperparameters (`--set KEY=VALUE`)"):]
    para = para[:para.index("\n\n")]
    para = re.sub(r"\([^)]*\)", "", para)  # drop the values listed in parentheses
    return re.findall(r"`([a-z_0-9]+)`", para)


@pytest.mark.parametrize("preset", ["nature", "paper2013", "cartpole", "pong"])
def test_set_reaches_every_documented_dqn_key_in_every_preset(preset):
    from deepmorning.rl.dqn.presets import DEFAULTS
    from deepmorning.rl.runner import TrainRequest, resolve_config

    keys = _documented_dqn_keys() + ["torch_threads"]
    assert len(keys) >= 18
    env = "CartPole-v1" if preset == "cartpole" else "ALE/Pong-v5"
    for key in keys:
        value = 2 if key == "torch_threads" else DEFAULTS[key]
        cfg = resolve_config(TrainRequest(algo="dqn", env=env, preset=preset,
                                          overrides={key: value}))
        assert cfg["hyperparameters"][key] == value


def test_a_misspelled_setting_fails_before_anything_runs(tmp_path, capsys):
    from conftest import run_main

    res = run_main(capsys, "rl", "train", "dqn", "--env", "CartPole-v1", "--set", "loss=hubr",
                   "--output", str(tmp_path / "run"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: invalid dqn configuration: loss must be one of huber, clipped_mse, mse, "
        "got 'hubr'"]
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


# -- evaluation start states -----------------------------------------------------------------
def test_evaluation_seeds_are_fresh_per_evaluation_and_disjoint_across_training_seeds():
    from deepmorning.rl.runner import evaluation_seeds

    runs = {seed: [evaluation_seeds(seed, k, 10) for k in range(20)] for seed in (20, 21, 22)}
    for evals in runs.values():
        assert evals[0] != evals[1]  # every evaluation plays new start states
        assert len({s for ev in evals for s in ev}) == 20 * 10
    drawn = [{s for ev in evals for s in ev} for evals in runs.values()]
    assert not drawn[0] & drawn[1] and not drawn[1] & drawn[2] and not drawn[0] & drawn[2]
    assert evaluation_seeds(20, 3, 10) == runs[20][3]  # a stream, reproducible


class _RecordResets(gym.Wrapper):
    """A real evaluation env that notes the seed of every reset."""

    seeds: list = []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return super().reset(seed=seed, options=options)


def test_evaluations_follow_the_stream_and_a_resume_continues_it(tmp_path, monkeypatch,
                                                                 ray_local):
    """Every evaluation of a run (periodic and final) resets with the next evaluation's seeds,
    and a resumed run goes on from the evaluations its checkpoint had done."""
    import shutil

    from deepmorning.rl import envs
    from deepmorning.rl.runner import TrainRequest, evaluation_seeds, train

    make_env = envs.make_env

    def recording_make_env(env_id, *, train=True, **kwargs):
        env = make_env(env_id, train=train, **kwargs)
        return env if train else _RecordResets(env)

    monkeypatch.setattr(envs, "make_env", recording_make_env)
    run = tmp_path / "run"
    request = dict(algo="ddpg", env="Pendulum-v1", timesteps=600, eval_every=200,
                   eval_episodes=2, checkpoint_every=2, seed=20, quiet=True,
                   overrides={"learning_starts": 10**6})  # acting and evaluating only
    _RecordResets.seeds = []
    train(TrainRequest(output=run, **request))
    expected = [s for k in range(4) for s in evaluation_seeds(20, k, 2)]
    assert _RecordResets.seeds == expected  # 3 periodic evaluations and the final one
    # Killed after iteration 3 but before its checkpoint: resume from iteration 2, whose
    # two evaluations were done; iteration 3's (number 2) and the final one (3) are redone.
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "iter_000003")
    _RecordResets.seeds = []
    train(TrainRequest(resume=run, **request))
    assert _RecordResets.seeds == expected[2 * 2:]


# -- random state on resume ------------------------------------------------------------------
def _acting_algo(algo_name: str):
    """0 EnvRunners, one env, no learning: what the EnvRunner draws is all that varies."""
    if algo_name == "dqn":
        from deepmorning.rl.dqn import build_config
        from deepmorning.rl.dqn.presets import cartpole

        hp = cartpole() | {"num_envs": 1, "env_steps_per_iteration": 100,
                           "learning_starts": 10**9, "hiddens": [8]}
        config = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": 3})
        return config.build_algo(), lambda a: a.replay
    from deepmorning.rl.ddpg.algorithm import config_from_hyperparameters
    from deepmorning.rl.ddpg.presets import pendulum

    # One 200-step Pendulum episode per iteration: the checkpoint falls between episodes.
    hp = pendulum() | {"learning_starts": 10**9, "random_steps": 0,
                       "rollout_fragment_length": 200, "actor_hiddens": [8, 8],
                       "critic_hiddens": [8, 8]}
    config = config_from_hyperparameters(hp, seed=3).environment("Pendulum-v1")
    return config.build_algo(), lambda a: a.local_replay_buffer


def _new_episodes(replay, before: set) -> list:
    return [e for e in replay.episodes if e.id_ not in before]


def _start_and_actions(episode, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(episode.get_observations(0)),
            np.asarray(episode.get_actions(slice(0, n))))


@pytest.mark.parametrize("algo_name", ["dqn", "ddpg"])
def test_a_resumed_run_does_not_replay_its_first_start_states_and_exploration(
        algo_name, tmp_path, ray_local):
    """The env generators, the torch RNG behind ε and DDPG's noise generator are checkpointed:
    after a resume the EnvRunner goes on drawing, it does not start over from the seed."""
    algo, replay_of = _acting_algo(algo_name)
    try:
        for _ in range(2):
            algo.train()
        first = _start_and_actions(replay_of(algo).episodes[0])
        algo.save_to_path(str(tmp_path / "ckpt"))
        before = {e.id_ for e in replay_of(algo).episodes}
        algo.train()
        uninterrupted = _start_and_actions(_new_episodes(replay_of(algo), before)[0])
    finally:
        algo.stop()
    resumed, _ = _acting_algo(algo_name)
    try:
        resumed.restore_from_path(str(tmp_path / "ckpt"))
        resumed.train()
        after = _start_and_actions(_new_episodes(replay_of(resumed), before)[0])
    finally:
        resumed.stop()
    n = min(len(first[1]), len(after[1]))
    assert not np.array_equal(after[0], first[0])  # not the run's first start state
    assert not np.array_equal(after[1][:n], first[1][:n])  # nor its first ε draws / noise
    if algo_name == "ddpg":  # between episodes, a resume goes on exactly as the run would
        np.testing.assert_array_equal(after[0], uninterrupted[0])
        np.testing.assert_array_equal(after[1], uninterrupted[1])
