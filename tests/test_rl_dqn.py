"""DQN on RLlib's new API stack: networks, loss, target network, ε, and the CLI end to end.

Real Ray, real RLlib, real environments; runs are tiny. Long runs are marked ``slow``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_cli, run_main
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

from deepmorning.platform.rundir import RunDir
from deepmorning.rl.dqn import build_config
from deepmorning.rl.dqn.learner import td_loss
from deepmorning.rl.dqn.module import Q_VALUES, QModule, linear_epsilon
from deepmorning.rl.dqn.presets import cartpole
from deepmorning.rl.gradients import SKIPPED

PIXELS = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
VECTOR = gym.spaces.Box(-5.0, 5.0, (4,), np.float32)
FAST_CARTPOLE = ["--set", "learning_starts=256", "--set", "num_envs=1", "--checkpoint-every", "2"]


def make_module(obs_space: gym.Space, n_actions: int, **model_config) -> QModule:
    spec = RLModuleSpec(module_class=QModule, observation_space=obs_space,
                        action_space=gym.spaces.Discrete(n_actions),
                        model_config={"torch_threads": 1, **model_config})
    module = spec.build()
    module.make_target_networks()
    return module


@pytest.mark.parametrize(
    ("network", "space", "n_actions", "first_layer"),
    [("paper2013", PIXELS, 6, (16, 4, 8, 8)), ("nature", PIXELS, 18, (32, 4, 8, 8)),
     ("mlp", VECTOR, 2, (256, 4))],
)
def test_q_values_have_one_column_per_action(network, space, n_actions, first_layer):
    module = make_module(space, n_actions, network=network)
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(5)]))
    q = module.forward_train({Columns.OBS: obs})[Q_VALUES]
    assert q.shape == (5, n_actions)
    assert module.forward_target({Columns.OBS: obs})[Q_VALUES].shape == (5, n_actions)
    weights = [p for p in module.q_net.parameters() if p.dim() > 1]
    assert tuple(weights[0].shape) == first_layer


def test_paper_networks_have_the_papers_layers():
    m2013 = make_module(PIXELS, 4, network="paper2013")
    nature = make_module(PIXELS, 4, network="nature")
    shapes = lambda m: [tuple(p.shape) for p in m.q_net.parameters() if p.dim() > 1]  # noqa: E731
    assert shapes(m2013) == [(16, 4, 8, 8), (32, 16, 4, 4), (256, 2592), (4, 256)]
    assert shapes(nature) == [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3), (512, 3136),
                              (4, 512)]


def test_pixel_networks_take_uint8_frames_to_the_first_layer_and_match_a_float_reference():
    """The conv nets read the uint8 frames themselves (scaled to [0, 1] at the first layer, in
    the channels-last layout): Q-values, the TD loss and its gradients are those of the same
    network in PyTorch's default layout fed ``frames.float() / 255``."""
    from types import SimpleNamespace

    from deepmorning.rl.dqn.learner import DQNLearner
    from deepmorning.rl.dqn.module import conv_net

    module = make_module(PIXELS, 6, network="nature")
    convs = [m for m in module.q_net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    reference, target = conv_net(4, 6, "nature"), conv_net(4, 6, "nature")
    reference.load_state_dict(module.q_net[1].state_dict())
    target.load_state_dict(module._target_q_net[1].state_dict())
    assert reference[0].weight.is_contiguous()  # the default layout
    rng = np.random.default_rng(0)
    frames = torch.as_tensor(rng.integers(0, 256, (8, 4, 84, 84), np.uint8))
    next_frames = torch.as_tensor(rng.integers(0, 256, (8, 4, 84, 84), np.uint8))
    batch = {Columns.OBS: frames, Columns.NEXT_OBS: next_frames,
             Columns.ACTIONS: torch.as_tensor(rng.integers(0, 6, 8)),
             Columns.REWARDS: torch.as_tensor(rng.normal(size=8).astype(np.float32)),
             Columns.TERMINATEDS: torch.as_tensor(rng.random(8) < 0.3)}
    config = SimpleNamespace(gamma=0.99, loss="huber", loss_reduction="mean")
    q = module.forward_train(batch)[Q_VALUES]
    _, _, loss = DQNLearner.td_terms(module, q, batch, config)
    loss.backward()
    q_ref = reference(frames.float() / 255.0)
    with torch.no_grad():
        y = batch[Columns.REWARDS] + 0.99 * (~batch[Columns.TERMINATEDS]) * target(
            next_frames.float() / 255.0).max(dim=1).values
    delta = y - q_ref.gather(1, batch[Columns.ACTIONS].unsqueeze(1)).squeeze(1)
    loss_ref = td_loss(delta, "huber")
    loss_ref.backward()
    assert torch.allclose(q, q_ref, rtol=1e-4, atol=1e-6)
    assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
    for ours, ref in zip(module.q_net[1].parameters(), reference.parameters(), strict=True):
        assert torch.allclose(ours.grad, ref.grad, rtol=1e-3, atol=1e-7)


def small_learner(**overrides):
    hp = cartpole() | {"hiddens": [8], "batch_size": 4} | overrides
    config = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": 0})
    config.environment(observation_space=VECTOR, action_space=gym.spaces.Discrete(2))
    return config.build_learner()


def random_batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        Columns.OBS: rng.normal(size=(n, 4)).astype(np.float32),
        Columns.ACTIONS: rng.integers(0, 2, n),
        Columns.REWARDS: rng.normal(size=n).astype(np.float32) * 3,
        Columns.NEXT_OBS: rng.normal(size=(n, 4)).astype(np.float32),
        Columns.TERMINATEDS: (rng.random(n) < 0.4).astype(np.float32),
    }


@pytest.mark.parametrize("loss", ["huber", "mse", "clipped_mse"])
def test_loss_matches_a_hand_computation(loss):
    learner = small_learner(loss=loss, gamma=0.9)
    module = learner.module["default_policy"].unwrapped()
    with torch.no_grad():  # make target and online nets differ
        for p in module._target_q_net.parameters():
            p.add_(0.5)
    raw = random_batch(6)
    batch = {k: torch.as_tensor(v) for k, v in raw.items()}
    fwd = module.forward_train(batch)
    got = learner.compute_loss_for_module(module_id="default_policy", config=learner.config,
                                          batch=batch, fwd_out=fwd)
    # By hand, with numpy: y = r + γ (1 - done) max_a' Q_target(s', a'), δ = y - Q(s, a).
    with torch.no_grad():
        q = module.q_net(batch[Columns.OBS]).numpy()
        q_next = module._target_q_net(batch[Columns.NEXT_OBS]).numpy()
    y = raw[Columns.REWARDS] + 0.9 * (1 - raw[Columns.TERMINATEDS]) * q_next.max(axis=1)
    delta = y - q[np.arange(6), raw[Columns.ACTIONS]]
    if loss == "huber":
        expected = np.where(np.abs(delta) <= 1, 0.5 * delta**2, np.abs(delta) - 0.5).mean()
    else:
        expected = (0.5 * delta**2).mean()
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_clipped_squared_error_has_the_clipped_gradient():
    delta = torch.tensor([-3.0, -0.5, 0.2, 2.0], requires_grad=True)
    td_loss(delta, "clipped_mse").backward()
    assert delta.grad.tolist() == pytest.approx([-0.25, -0.125, 0.05, 0.25])  # clip(δ)/4


def params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_target_network_is_copied_exactly_every_c_updates():
    learner = small_learner(target_update_period=3, batch_size=4, lr=0.05)
    module = learner.module["default_policy"].unwrapped()
    initial_target = params(module._target_q_net)

    def update(num_minibatches: int, seed: int) -> None:
        b = SampleBatch(random_batch(4 * num_minibatches, seed))
        learner.update(batch=MultiAgentBatch({"default_policy": b}, env_steps=len(b)),
                       minibatch_size=4, num_epochs=1, timesteps={})

    update(2, seed=1)  # updates 1, 2: target untouched while the online net moves
    assert same(params(module._target_q_net), initial_target)
    assert not same(params(module.q_net), initial_target)
    update(1, seed=2)  # update 3: copy
    assert same(params(module._target_q_net), params(module.q_net))
    copied = params(module._target_q_net)
    update(2, seed=3)  # updates 4, 5
    assert same(params(module._target_q_net), copied)
    update(1, seed=4)  # update 6: copy
    assert same(params(module._target_q_net), params(module.q_net))
    assert learner._num_updates == 6


def optimizer_state(learner) -> list[torch.Tensor]:
    return [v.clone() for optim in learner._optimizer_parameters
            for state in optim.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)]


def minibatch_results(hp: dict, raw: dict[str, np.ndarray]):
    """The same batch through RLlib's path (``lean = False``: RLlib's minibatch iterator
    calls ``TorchLearner._update`` per minibatch) and through the lean loop of one
    ``DQNLearner._update`` call (what ``DQN.training_step`` does), from the same weights."""
    learners = []
    for lean, minibatch_size in ((False, hp["batch_size"]), (True, None)):
        torch.manual_seed(0)
        learner = small_learner(**hp)
        learner.lean = lean
        b = SampleBatch({k: v.copy() for k, v in raw.items()})
        result = learner.update(batch=MultiAgentBatch({"default_policy": b}, env_steps=len(b)),
                                minibatch_size=minibatch_size, num_epochs=1, timesteps={})
        learners.append((learner, result))
    return learners


@pytest.mark.parametrize("overrides", [
    {"grad_clip": 0.05},  # the cartpole preset's Adam + Huber, the gradient clip active
    {"loss": "clipped_mse", "grad_clip": None},
    {"optimizer": "rmsprop", "loss": "mse", "loss_reduction": "sum", "grad_clip": None},
], ids=["adam-huber-clipped", "clipped-mse", "paper-rmsprop-sum-mse"])
def test_lean_update_takes_the_same_steps_as_rllibs_learner_path(overrides):
    """DQN.training_step hands the Learner all of an iteration's minibatches at once; the lean
    loop of DQNLearner._update must take the gradient steps RLlib's own path takes
    (forward_train, compute_losses, compute_gradients, postprocess_gradients = the clip,
    apply_gradients), one per ``batch_size`` slice, in order, with the target copied every C
    steps: weights and optimizer state end bit for bit where RLlib's leave them. It reports
    the mean of its steps' losses where RLlib's path reports the last one."""
    hp = {"target_update_period": 2, "batch_size": 4, "lr": 0.05, **overrides}
    raw = random_batch(4 * 5, seed=7)
    (stock, stock_result), (lean, lean_result) = minibatch_results(hp, raw)
    a, w = stock.module["default_policy"], lean.module["default_policy"]
    assert lean._num_updates == stock._num_updates == 5
    assert same(params(w.q_net), params(a.q_net))
    assert same(params(w._target_q_net), params(a._target_q_net))  # copied after step 4
    assert not same(params(w._target_q_net), params(w.q_net))  # and not after step 5
    assert same(optimizer_state(lean), optimizer_state(stock))
    # The losses RLlib's path computes step by step, replayed on a fresh learner:
    torch.manual_seed(0)
    replay = small_learner(**hp)
    replay.lean = False
    losses = [replay._update({"default_policy": {k: torch.as_tensor(v[i:i + 4])
                                                 for k, v in raw.items()}})[1]["default_policy"]
              for i in range(0, 20, 4)]
    reported = lean_result["default_policy"]["total_loss"].peek()
    assert reported == pytest.approx(float(torch.stack(losses).detach().mean()), rel=1e-6)
    assert stock_result["default_policy"]["total_loss"].peek() == pytest.approx(
        float(losses[-1].detach()), rel=1e-6)
    for key in ("q_mean", "td_error_abs_mean"):
        assert np.isfinite(lean_result["default_policy"][key].peek())


def test_lean_update_skips_a_nonfinite_step_as_rllibs_path_does():
    """A NaN reward in the third minibatch: that step is skipped whole (no weight, no
    optimizer state moves) and counted, by the lean loop as by RLlib's path; the others are
    taken."""
    raw = random_batch(4 * 5, seed=7)
    raw[Columns.REWARDS][9] = np.nan
    hp = {"target_update_period": 2, "batch_size": 4, "lr": 0.05, "grad_clip": 0.05}
    (stock, stock_result), (lean, lean_result) = minibatch_results(hp, raw)
    assert same(params(lean.module["default_policy"].q_net),
                params(stock.module["default_policy"].q_net))
    assert same(optimizer_state(lean), optimizer_state(stock))
    assert all(torch.isfinite(p).all() for p in params(lean.module["default_policy"].q_net))
    assert lean_result[SKIPPED].peek() == stock_result[SKIPPED].peek() == 1
    assert lean._num_updates == 5


def test_cartpole_schedule_is_128_updates_per_256_env_steps_and_a_copy_per_128(ray_local):
    """The ``cartpole`` preset's schedule, SB3's ``train_freq=256, gradient_steps=128,
    target_update_interval=256``: no update before ``learning_starts``, then after every 256
    env steps 128 updates (acting weights fixed in between) and one target copy per 128."""
    hp = cartpole() | {"hiddens": [8], "learning_starts": 512, "num_envs": 1}
    algo = build_config({"env": "CartPole-v1", "hyperparameters": hp, "seed": 0}).build_algo()
    try:
        learner = algo.learner_group._learner
        module = learner.module["default_policy"]
        lean_calls, lean_update = [], learner._lean_update
        learner._lean_update = lambda *a, **k: lean_calls.append(1) or lean_update(*a, **k)
        seen = []
        for _ in range(4):
            acting = params(algo.env_runner.module.q_net)
            algo.train()
            seen.append((algo.env_steps, algo.gradient_updates, learner._num_updates))
            if algo.gradient_updates:  # weights sent to the EnvRunner after the updates
                assert not same(params(algo.env_runner.module.q_net), acting)
        assert [s[0] for s in seen] == [256, 512, 768, 1024]
        assert [s[1] for s in seen] == [0, 128, 256, 384]  # replay holds 512 from iteration 2
        assert all(s[1] == s[2] for s in seen)
        assert len(lean_calls) == 3  # one lean Learner call per iteration that learns
        assert same(params(module._target_q_net), params(module.q_net))  # copied after 384
        assert algo.replay.get_num_timesteps() == 1024
    finally:
        algo.stop()


def test_evaluation_runs_in_eval_mode_and_restores_training_mode():
    """The evaluation puts the module in eval mode once (not twice per step, as RLlib's
    forward_inference alone would switch it) and gives it back in the mode it had."""
    from deepmorning.rl.runner import run_episodes

    module = make_module(VECTOR, 2, network="mlp", hiddens=[8])
    switches = []
    module.train = lambda mode=True, _train=module.train: switches.append(mode) or _train(mode)
    module.train()
    switches.clear()
    returns = run_episodes(module, "CartPole-v1", episodes=2, seed=0)
    assert sum(returns) > 2  # two episodes of several steps each
    assert switches.count(True) == 1 and module.training  # restored once, at the end
    module.eval()
    switches.clear()
    run_episodes(module, "CartPole-v1", episodes=1, seed=0)
    assert True not in switches and not module.training  # an eval-mode module stays so


def test_epsilon_is_annealed_linearly_then_fixed():
    assert linear_epsilon(0, 1.0, 0.1, 1000) == 1.0
    assert linear_epsilon(500, 1.0, 0.1, 1000) == pytest.approx(0.55)
    assert linear_epsilon(1000, 1.0, 0.1, 1000) == pytest.approx(0.1)
    assert linear_epsilon(10**7, 1.0, 0.1, 1000) == pytest.approx(0.1)


def test_exploration_uses_the_schedule_and_inference_uses_eval_epsilon():
    module = make_module(VECTOR, 4, network="mlp", epsilon_initial=1.0, epsilon_final=0.0,
                         epsilon_anneal_steps=100, eval_epsilon=0.0)
    obs = torch.zeros((2000, 4))
    greedy = module.forward_train({Columns.OBS: obs})[Q_VALUES].argmax(-1)
    early = module.forward_exploration({Columns.OBS: obs}, t=0)[Columns.ACTIONS]
    late = module.forward_exploration({Columns.OBS: obs}, t=100)[Columns.ACTIONS]
    half = module.forward_exploration({Columns.OBS: obs}, t=50)[Columns.ACTIONS]
    assert (early != greedy).float().mean() > 0.6  # ε = 1: uniform, 3/4 differ
    assert torch.equal(late, greedy)  # ε = 0 after annealing
    assert 0.25 < (half != greedy).float().mean() < 0.5  # ε = 0.5: 3/8 differ
    assert torch.equal(module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS], greedy)


# -- the CLI end to end ----------------------------------------------------------------------
def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_env_continuous_env_and_bad_preset_are_one_line_errors(tmp_path, capsys):
    def main(*args: str):  # refused before Ray: in this process
        return run_main(capsys, *args)

    assert "unknown environment id" in one_error_line(
        main("rl", "train", "dqn", "--env", "NoSuchEnv-v9", "--output", str(tmp_path / "a")))
    assert "discrete action space" in one_error_line(
        main("rl", "train", "dqn", "--env", "Pendulum-v1", "--output", str(tmp_path / "b")))
    assert "unknown preset 'fast'" in one_error_line(
        main("rl", "train", "dqn", "--env", "CartPole-v1", "--preset", "fast",
             "--output", str(tmp_path / "c")))
    assert "unknown hyperparameter 'nope'" in one_error_line(
        main("rl", "train", "dqn", "--env", "CartPole-v1", "--set", "nope=1",
             "--output", str(tmp_path / "d")))
    assert "unknown algorithm" in one_error_line(
        main("rl", "train", "a2c", "--env", "CartPole-v1"))
    assert not any((tmp_path / d).exists() for d in "abcd")


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rl") / "dqn-cartpole"
    res = run_cli("rl", "train", "dqn", "--env", "CartPole-v1", "--timesteps", "1536",
                  "--eval-every", "768", "--eval-episodes", "3", *FAST_CARTPOLE,
                  "--output", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_cartpole_run_writes_its_run_directory(cartpole_run):
    progress = pd.read_csv(cartpole_run / "progress.csv")
    assert list(progress["iteration"]) == [1, 2, 3, 4, 5, 6]
    assert list(progress["env_steps"]) == [256 * i for i in range(1, 7)]
    assert progress["loss"].notna().sum() >= 4  # learning started after 256 steps
    assert progress["eval_return_mean"].notna().sum() == 2
    summary = json.loads((cartpole_run / "summary.json").read_text())
    assert summary["env_steps"] == 1536 and summary["eval_episodes"] == 3
    assert (cartpole_run / "learning_curve.png").stat().st_size > 0
    assert (Path(summary["checkpoint"]) / "learner_group").is_dir()


def _restored_algo(checkpoint: Path):
    from ray.rllib.algorithms.algorithm import Algorithm

    from deepmorning.rl import envs

    envs.register()  # the env creator the run registered in its own process
    return Algorithm.from_checkpoint(str(checkpoint))


def test_checkpoint_evaluate_round_trip(cartpole_run, ray_local):
    res = run_cli("rl", "evaluate", str(cartpole_run), "--episodes", "2")
    assert res.returncode == 0, res.stderr
    assert "over 2 episodes" in res.stdout and "±" in res.stdout
    from deepmorning.rl.runner import checkpoints, evaluate, load_module

    summary = json.loads((cartpole_run / "summary.json").read_text())
    restored = evaluate(cartpole_run, episodes=3, seed=0)
    assert restored["checkpoint"] == summary["checkpoint"]
    # Returns can agree for different weights: compare the networks themselves. The module
    # `evaluate` loads computes the Q-values of the algorithm RLlib restores from the run's
    # final checkpoint, and not those of the one before it (the weights moved in between).
    older, latest = checkpoints(RunDir.open(cartpole_run))[-2:]
    assert str(latest) == summary["checkpoint"]
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))
    with torch.no_grad():
        loaded = load_module(latest).q_values(obs)
        algo = _restored_algo(latest)
        try:
            reference = algo.get_module().q_values(obs)
        finally:
            algo.stop()
        before = load_module(older).q_values(obs)
    torch.testing.assert_close(loaded, reference)
    assert not torch.allclose(loaded, before)


def _algo_state(checkpoint: Path) -> dict:
    algo = _restored_algo(checkpoint)
    try:
        return {"env_steps": algo.env_steps, "gradient_updates": algo.gradient_updates,
                "replay": algo.replay.get_num_timesteps(),
                "epsilon_clock": algo.env_runner.num_env_steps_sampled_lifetime}
    finally:
        algo.stop()


def test_resume_continues_without_losing_or_repeating_rows(cartpole_run, tmp_path, ray_local):
    run = tmp_path / "interrupted"
    shutil.copytree(cartpole_run, run)
    # Simulate a driver killed after iteration 6 but before its checkpoint and summary.
    (run / "summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "iter_000006")
    res = run_cli("rl", "train", "dqn", "--resume", str(run))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(resumed)" in res.stdout.replace("\n", "")
    summary = json.loads((run / "summary.json").read_text())
    progress = pd.read_csv(run / "progress.csv")
    assert list(progress["iteration"]) == [1, 2, 3, 4, 5, 6]
    assert progress["env_steps"].is_monotonic_increasing
    assert summary["env_steps"] == 1536 and summary["iterations"] == 6
    assert (run / "checkpoints" / "iter_000006").is_dir()
    # Resumed from iteration 4, with its replay buffer, counters and ε clock: the run ends
    # where the uninterrupted one ended (a lost buffer or a reset clock would show here).
    resumed_from = _algo_state(run / "checkpoints" / "iter_000004")
    assert resumed_from["replay"] == resumed_from["epsilon_clock"] == 1024
    resumed = _algo_state(run / "checkpoints" / "iter_000006")
    uninterrupted = _algo_state(cartpole_run / "checkpoints" / "iter_000006")
    assert resumed == uninterrupted
    assert resumed["replay"] == resumed["epsilon_clock"] == resumed["env_steps"] == 1536


def test_a_finished_run_cannot_be_resumed(cartpole_run):
    line = one_error_line(run_cli("rl", "train", "dqn", "--env", "CartPole-v1",
                                  "--resume", str(cartpole_run)))
    assert "already finished" in line


# -- Atari -------------------------------------------------------------------------------------
def _random_rewards(env, steps: int) -> list[float]:
    env.reset(seed=0)
    env.action_space.seed(0)
    return [env.step(env.action_space.sample())[1] for _ in range(steps)]


def test_atari_pipeline_gives_4x84x84_frames_and_clipped_rewards():
    """Space Invaders pays 5-30 points an invader: clipping has something to clip (Pong's
    rewards are already ±1)."""
    pytest.importorskip("cv2")
    from deepmorning.rl import envs

    train_env = envs.make_env("ALE/SpaceInvaders-v5", train=True)
    obs, _ = train_env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    eval_env = envs.make_env("ALE/SpaceInvaders-v5", train=False)
    assert eval_env.observation_space.shape == (4, 84, 84)
    raw = _random_rewards(eval_env, 400)
    assert max(raw) > 1.0  # evaluation reports raw scores
    clipped = _random_rewards(train_env, 400)
    assert set(clipped) <= {-1.0, 0.0, 1.0} and 1.0 in clipped
    train_env.close()
    eval_env.close()


def test_atari_games_are_cut_where_the_papers_cut_them():
    """Evaluation: 5 minutes (18,000 frames, Nature Methods); training: the ALE's 108,000."""
    pytest.importorskip("cv2")
    from deepmorning.rl import envs

    for train, frames in ((False, 18_000), (True, 108_000)):
        env = envs.make_env("ALE/Pong-v5", train=train)
        assert env.unwrapped.ale.getInt("max_num_frames_per_episode") == frames
        wrapper, limits = env, []
        while hasattr(wrapper, "env"):  # no agent-step TimeLimit cuts games any earlier
            limits += [wrapper] if isinstance(wrapper, gym.wrappers.TimeLimit) else []
            wrapper = wrapper.env
        assert limits == []
        env.close()


def test_a_truncated_training_game_is_really_reset():
    """Life loss is terminal for training, but a truncated game must start anew on reset."""
    pytest.importorskip("cv2")
    from deepmorning.rl import envs

    env = envs.make_env("ALE/Pong-v5", train=True, max_num_frames_per_episode=400)
    env.reset(seed=0)
    truncated, steps = False, 0
    while not truncated:
        _, _, _, truncated, _ = env.step(0)
        steps += 1
    assert steps <= 400 // 4 + 1
    env.reset(seed=1)
    assert env.unwrapped.ale.getEpisodeFrameNumber() < 400  # a new game, not the old one
    env.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_pong_runs_end_to_end_with_the_nature_preset(tmp_path):
    pytest.importorskip("cv2")
    out = tmp_path / "pong"
    res = run_cli("rl", "train", "dqn", "--env", "ALE/Pong-v5", "--preset", "nature",
                  "--timesteps", "2000", "--set", "learning_starts=1000",
                  "--set", "replay_capacity=5000", "--set", "env_steps_per_iteration=500",
                  "--set", "eval_episodes=1", "--output", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    progress = pd.read_csv(out / "progress.csv")
    assert progress["env_steps"].iloc[-1] == 2000
    assert progress["loss"].notna().any()
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["network"] == "nature"


@pytest.mark.slow
@pytest.mark.timeout(3600)  # three runs of up to 100k steps on a busy 2-core machine
def test_cartpole_reaches_475_within_100k_steps_on_two_of_three_seeds(tmp_path):
    reached = []
    for seed in (0, 1, 2):
        out = tmp_path / f"seed{seed}"
        res = run_cli("rl", "train", "dqn", "--env", "CartPole-v1", "--timesteps", "100000",
                      "--seed", str(seed), "--eval-every", "5000", "--stop-return", "475",
                      "--output", str(out), timeout=3000)
        assert res.returncode == 0, res.stderr[-3000:]
        reached.append(json.loads((out / "summary.json").read_text())["best_eval_return_mean"]
                       >= 475)
    assert sum(reached) >= 2, reached


def test_deepmind_rmsprop_matches_the_papers_update_not_torchs():
    from deepmorning.rl.dqn.learner import DeepMindRMSprop

    grads = [torch.tensor([0.5, -2.0, 1e-3]), torch.tensor([0.4, -1.0, 2e-3])]
    w = torch.zeros(3, requires_grad=True)
    opt = DeepMindRMSprop([w], lr=0.1, alpha=0.95, eps=0.01)
    g = g2 = np.zeros(3)
    expected = np.zeros(3)
    for grad in grads:  # by hand: g, g2 running means; step lr ∇ / sqrt(g2 - g² + ε)
        w.grad = grad.clone()
        opt.step()
        d = grad.numpy().astype(np.float64)
        g, g2 = 0.95 * g + 0.05 * d, 0.95 * g2 + 0.05 * d**2
        expected -= 0.1 * d / np.sqrt(g2 - g**2 + 0.01)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-5)
    # torch's centered RMSprop puts ε outside the root: a different step
    v = torch.zeros(3, requires_grad=True)
    ref = torch.optim.RMSprop([v], lr=0.1, alpha=0.95, eps=0.01, centered=True)
    for grad in grads:
        v.grad = grad.clone()
        ref.step()
    assert not np.allclose(v.detach().numpy(), expected, rtol=1e-3)


def test_summed_loss_is_batch_size_times_the_mean():
    delta = torch.tensor([-3.0, -0.5, 0.2, 2.0])
    for kind in ("huber", "clipped_mse", "mse"):
        assert td_loss(delta, kind, "sum").item() == pytest.approx(4 * td_loss(delta, kind).item())


def test_atari_presets_use_deepminds_optimizer_and_summed_loss():
    from deepmorning.rl.dqn.learner import DeepMindRMSprop
    from deepmorning.rl.dqn.presets import nature, paper2013

    for preset in (nature(), paper2013()):
        assert preset["optimizer"] == "rmsprop" and preset["loss_reduction"] == "sum"
        assert (preset["lr"], preset["rmsprop_alpha"], preset["rmsprop_eps"]) == (2.5e-4, 0.95,
                                                                                  0.01)
    learner = small_learner(optimizer="rmsprop")
    (optim,) = learner._optimizer_parameters
    assert isinstance(optim, DeepMindRMSprop)


def test_atari_budgets_count_agent_steps_in_every_preset():
    """The papers' "frames" are agent steps for every budget, `timesteps` included: the Nature
    paper's "50 million frames (around 38 days of game experience)" are 38 days only as agent
    steps of 4 emulator frames at 60 Hz."""
    from deepmorning.rl.dqn.presets import nature, paper2013
    from deepmorning.rl.envs import FRAME_SKIP

    n, p = nature(), paper2013()
    days = n["timesteps"] * FRAME_SKIP / 60 / 86_400
    assert 37.5 < days < 39.5
    assert n["timesteps"] == 50_000_000 and p["timesteps"] == 10_000_000
    for preset in (n, p):  # "final exploration frame" 1M and "replay memory" 1M: same unit
        assert preset["epsilon_anneal_steps"] == preset["replay_capacity"] == 1_000_000
        assert preset["timesteps"] // preset["epsilon_anneal_steps"] in (50, 10)
