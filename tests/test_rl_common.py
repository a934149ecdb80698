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


@pytest.mark.parametrize("preset", ["nature", "paper2013", "cartpole"])
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


def test_a_misspelled_setting_fails_before_anything_runs(tmp_path):
    from conftest import run_cli

    res = run_cli("rl", "train", "dqn", "--env", "CartPole-v1", "--set", "loss=hubr",
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
