"""DDPG (Lillicrap et al. 2015) on RLlib's new API stack: networks, learner, noise, runs.

Unit tests build the RLModule and Learner directly (no Ray needed); the run tests drive the
real CLI (a fresh process with an embedded local Ray), as a user would.
"""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import run_cli, run_main
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns

from deepmorning.platform.errors import DeepmorningError
from deepmorning.rl.ddpg import check_spaces
from deepmorning.rl.ddpg.algorithm import DDPGConfig, check_env
from deepmorning.rl.ddpg.learner import ACTOR, CRITIC, soft_update
from deepmorning.rl.ddpg.module import FINAL_INIT, DDPGTorchRLModule
from deepmorning.rl.ddpg.noise import ExplorationNoise, OUNoise
from deepmorning.rl.ddpg.presets import PRESETS
from deepmorning.rl.replay import TransitionReplayBuffer

OBS = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
# Asymmetric, per-dimension bounds: scaling and shifting must both be right.
ACT = gym.spaces.Box(np.array([-1.0, 0.0, 2.0], np.float32), np.array([1.0, 5.0, 2.5], np.float32))


def make_module(batch_norm: bool = False, targets: bool = True) -> DDPGTorchRLModule:
    module = DDPGTorchRLModule(observation_space=OBS, action_space=ACT,
                               model_config={"batch_norm": batch_norm})
    if targets:
        module.make_target_networks()
    return module


# -- networks --------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm", [False, True])
def test_actor_output_within_bounds(batch_norm):
    torch.manual_seed(0)
    module = make_module(batch_norm)
    with torch.no_grad():  # push the tanh into saturation: outputs must still stay inside
        module.actor.out.weight.mul_(1e4)
    obs = torch.randn(512, 5) * 50
    actions = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS].numpy()
    assert actions.shape == (512, 3)
    low, high = ACT.low, ACT.high
    assert (actions >= low - 1e-6).all() and (actions <= high + 1e-6).all()
    # Saturated outputs reach both ends of every dimension: the scale is the full range.
    assert np.allclose(actions.min(0), low, atol=1e-3) and np.allclose(actions.max(0), high,
                                                                       atol=1e-3)


def test_critic_takes_action_at_layer_two():
    torch.manual_seed(0)
    critic = make_module().critic
    assert critic.fc1.in_features == 5  # the state alone
    assert critic.fc2.in_features == 400 + 3  # layer-1 features + the action
    seen = []
    critic.fc1.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].clone()))
    obs = torch.randn(8, 5)
    a1, a2 = torch.zeros(8, 3), torch.ones(8, 3)
    q1, q2 = critic(obs, a1), critic(obs, a2)
    assert torch.equal(seen[0], seen[1])  # layer one never sees the action
    assert not torch.allclose(q1, q2)  # but Q depends on it
    assert q1.shape == (8,)


def test_hidden_sizes_and_final_layer_init():
    module = make_module()
    assert (module.actor.fc1.out_features, module.actor.fc2.out_features) == (400, 300)
    assert (module.critic.fc1.out_features, module.critic.fc2.out_features) == (400, 300)
    for layer in (module.actor.out, module.critic.out):
        for tensor in (layer.weight, layer.bias):
            assert tensor.abs().max() <= FINAL_INIT
    # Hidden layers keep the (much wider) fan-in initialisation.
    assert module.actor.fc1.weight.abs().max() > 10 * FINAL_INIT


def test_inference_only_module_holds_the_actor_alone():
    module = DDPGTorchRLModule(observation_space=OBS, action_space=ACT, inference_only=True,
                               model_config={})
    assert hasattr(module, "actor") and not hasattr(module, "critic")
    full = make_module()
    state = full.get_state(inference_only=True)
    assert state and all(k.startswith("actor.") for k in state)
    module.set_state(state)  # the EnvRunner side accepts the learner's inference-only state


# -- learner ---------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_norm", [False, True])
def test_soft_update_moves_weights_by_exactly_tau_and_copies_running_statistics(batch_norm):
    torch.manual_seed(0)
    module = make_module(batch_norm)
    with torch.no_grad():
        for p in list(module.actor.parameters()) + list(module.critic.parameters()):
            p.add_(torch.randn_like(p))
        if batch_norm:
            module.actor.bn1.running_mean.add_(1.0)
            module.critic.input_norm.running_var.mul_(0.01)
    pairs = module.get_target_network_pairs()
    before = [{k: v.clone() for k, v in t.named_parameters()} for _, t in pairs]
    tau = 0.001
    soft_update(module, tau)
    for (main, target), old in zip(pairs, before, strict=True):
        main_params = dict(main.named_parameters())
        for name, new in target.named_parameters():
            expected = old[name] + tau * (main_params[name] - old[name])
            torch.testing.assert_close(new, expected, rtol=1e-6, atol=1e-7)
            if (main_params[name] - old[name]).abs().max() > 0:
                assert (new - old[name]).abs().max() > 0
        main_buffers = dict(main.named_buffers())
        for name, buffer in target.named_buffers():  # batch norm statistics: copied
            assert torch.equal(buffer, main_buffers[name]), name
    if batch_norm:
        assert torch.equal(module.target_critic.input_norm.running_var,
                           module.critic.input_norm.running_var)


def _learner(batch_norm: bool = False, **training):
    env = gym.make("Pendulum-v1")
    config = DDPGConfig().environment(observation_space=env.observation_space,
                                      action_space=env.action_space)
    config.training(batch_norm=batch_norm, **training)
    return config.build_learner()


def _batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        Columns.OBS: torch.randn(n, 3, generator=g),
        Columns.ACTIONS: torch.rand(n, 1, generator=g) * 4 - 2,
        Columns.REWARDS: torch.randn(n, generator=g),
        Columns.NEXT_OBS: torch.randn(n, 3, generator=g),
        Columns.TERMINATEDS: torch.rand(n, generator=g) < 0.1,
    }


def test_learner_optimizers_and_gradients_follow_the_paper():
    torch.manual_seed(0)
    learner = _learner()
    mid = DEFAULT_MODULE_ID
    optims = dict(learner.get_optimizers_for_module(mid))
    assert set(optims) == {ACTOR, CRITIC}
    assert optims[ACTOR].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert optims[ACTOR].param_groups[0]["weight_decay"] == 0
    # L2 1e-2 on the critic's weight matrices only; biases (and batch norm's scale and shift)
    # are not decayed.
    module = learner.module[mid]
    decayed = {id(p) for g in optims[CRITIC].param_groups if g["weight_decay"] > 0
               for p in g["params"]}
    assert sorted(g["weight_decay"] for g in optims[CRITIC].param_groups) == [0, 1e-2]
    assert all(g["lr"] == pytest.approx(1e-3) for g in optims[CRITIC].param_groups)
    assert decayed == {id(p) for n, p in module.critic.named_parameters() if n.endswith("weight")}

    batch = _batch()
    fwd = module.forward_train(batch)
    loss = learner.compute_loss_for_module(module_id=mid, config=learner.config, batch=batch,
                                           fwd_out=fwd)
    grads = learner.compute_gradients({mid: loss})

    # Hand computation: y = r + gamma (1 - done) Q'(s', mu'(s')), critic MSE, actor -Q(s, mu(s)).
    obs, act = batch[Columns.OBS], batch[Columns.ACTIONS]
    with torch.no_grad():
        q_next = module.target_critic(batch[Columns.NEXT_OBS],
                                      module.target_actor(batch[Columns.NEXT_OBS]))
        y = batch[Columns.REWARDS] + 0.99 * (~batch[Columns.TERMINATEDS]).float() * q_next
    critic_params = list(module.critic.parameters())
    actor_params = list(module.actor.parameters())
    critic_loss = ((y - module.critic(obs, act)) ** 2).mean()
    actor_loss = -module.critic(obs, module.actor(obs)).mean()
    want_critic = torch.autograd.grad(critic_loss, critic_params)
    want_actor = torch.autograd.grad(actor_loss, actor_params)
    for p, g in zip(critic_params + actor_params, want_critic + want_actor, strict=True):
        torch.testing.assert_close(grads[learner.get_param_ref(p)], g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_learner_update_changes_both_nets_and_soft_updates_targets(batch_norm):
    torch.manual_seed(0)
    learner = _learner(batch_norm, tau=0.5)
    module = learner.module[DEFAULT_MODULE_ID]
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    snap = {n: p.detach().clone() for n, p in module.named_parameters()}
    data = {k: v.numpy() for k, v in _batch(4 * 64).items()}
    learner.update(batch=MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(data)}, 256),
                   minibatch_size=64, num_epochs=1)
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, snap[n])}
    assert any(n.startswith("actor.") for n in changed)
    assert any(n.startswith("critic.") for n in changed)
    # Targets have no gradients; they move only through the soft update.
    assert any(n.startswith("target_critic.") for n in changed)
    assert not any(p.requires_grad for p in module.target_critic.parameters())
    assert not module.target_actor.training and not module.target_critic.training
    if batch_norm:  # the targets normalize with the online networks' running statistics
        assert not torch.equal(module.target_actor.bn1.running_mean,
                               torch.zeros_like(module.target_actor.bn1.running_mean))
        assert torch.equal(module.target_actor.bn1.running_mean, module.actor.bn1.running_mean)


# -- exploration -----------------------------------------------------------------------------
def test_ou_noise_reverts_to_its_mean():
    theta, sigma = 0.15, 0.2
    # Many processes started far from the mean: E[x_t] = x0 (1 - theta)^t.
    proc = OUNoise((20_000,), theta=theta, sigma=sigma, rng=np.random.default_rng(0),
                   x0=np.full(20_000, 3.0))
    for t in range(1, 31):
        x = proc.sample()
        assert x.mean() == pytest.approx(3.0 * (1 - theta) ** t, abs=0.02)
    # One long path: stationary around mu with the AR(1) variance, lag-1 autocorrelation
    # 1 - theta, and increments pulled back towards the mean (slope -theta).
    proc = OUNoise((1,), theta=theta, sigma=sigma, rng=np.random.default_rng(1))
    path = np.array([proc.sample()[0] for _ in range(100_000)])
    assert abs(path.mean()) < 0.03
    assert path.std() == pytest.approx(sigma / math.sqrt(1 - (1 - theta) ** 2), rel=0.05)
    assert np.corrcoef(path[:-1], path[1:])[0, 1] == pytest.approx(1 - theta, abs=0.02)
    slope = np.polyfit(path[:-1], np.diff(path), 1)[0]
    assert slope == pytest.approx(-theta, abs=0.02)


class _FakeModule:
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def __init__(self, t: int = 0) -> None:
        self.exploration_t = t  # the algorithm's env steps sampled so far


class _Episode:
    def __init__(self, id_: str, is_reset: bool = True) -> None:
        self.id_, self.is_reset = id_, is_reset


def _step(piece: ExplorationNoise, eps_ids: list[str], explore: bool = True, t: int = 0,
          episodes: list | None = None) -> dict:
    batch = {Columns.ACTIONS: {(e,): [np.zeros(1, np.float32)] for e in eps_ids}}
    episodes = [_Episode(e) for e in eps_ids] if episodes is None else episodes
    return piece(rl_module=_FakeModule(t), batch=batch, episodes=episodes, explore=explore,
                 shared_data={})[Columns.ACTIONS]


def test_exploration_noise_is_kept_per_episode_and_reset_for_a_new_one():
    piece = ExplorationNoise(noise_type="ou", sigma=0.2, theta=0.15, seed=0)
    # The reference: one OU process carried over 20 steps of episode "a", then a fresh one
    # for episode "b" (the environment was reset), drawing from the same generator.
    rng = np.random.default_rng(0)
    ref_a = OUNoise((1,), theta=0.15, sigma=0.2, rng=rng)
    want_a = [np.clip(2.0 * ref_a.sample()[0], -2, 2) for _ in range(20)]
    want_b = np.clip(2.0 * OUNoise((1,), theta=0.15, sigma=0.2, rng=rng).sample()[0], -2, 2)

    got_a = [float(_step(piece, ["a"])[("a",)][0][0]) for _ in range(20)]
    np.testing.assert_allclose(got_a, want_a, rtol=1e-5)  # state carried across calls
    got_b = float(_step(piece, ["b"])[("b",)][0][0])
    assert got_b == pytest.approx(want_b, rel=1e-5)  # new episode: process starts at mu
    assert set(piece._processes) == {"b"}  # the finished episode's process is dropped
    # Evaluation (explore=False): no noise at all.
    assert float(_step(piece, ["b"], explore=False)[("b",)][0][0]) == 0.0


def test_exploration_noise_one_process_per_environment():
    piece = ExplorationNoise(noise_type="ou", sigma=0.2, theta=0.15, seed=0)
    outs = [_step(piece, ["a", "b"]) for _ in range(50)]
    a = np.array([o[("a",)][0][0] for o in outs])
    b = np.array([o[("b",)][0][0] for o in outs])
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.5  # independent processes, not one shared


def test_exploration_noise_clips_to_the_bounds_and_warms_up_randomly():
    piece = ExplorationNoise(noise_type="gaussian", sigma=5.0, random_steps=50, seed=0)
    values = [float(_step(piece, ["a"], t=t)[("a",)][0][0]) for t in range(300)]
    assert min(values) >= -2.0 and max(values) <= 2.0
    # The warm-up follows the algorithm's env-step count, not the piece's own calls.
    quiet = ExplorationNoise(noise_type="gaussian", sigma=0.0, random_steps=50, seed=0)
    assert float(_step(quiet, ["a"], t=49)[("a",)][0][0]) != 0.0  # uniform random
    assert float(_step(quiet, ["a"], t=50)[("a",)][0][0]) == 0.0  # the actor's action


def test_exploration_noise_skips_the_action_a_vector_env_discards():
    """After an episode ends, the next vector step still computes an action for that sub-env
    (under the ended episode's ID) which the env discards while it resets: no noise drawn."""
    piece = ExplorationNoise(noise_type="gaussian", sigma=0.2, seed=0)
    reference = ExplorationNoise(noise_type="gaussian", sigma=0.2, seed=0)
    # Sub-env "a" ended; its new episode "a2" is not reset yet. Sub-env "b" goes on.
    out = _step(piece, ["a", "b"], episodes=[_Episode("a2", is_reset=False), _Episode("b")])
    assert float(out[("a",)][0][0]) == 0.0  # passed through untouched
    want_b = float(_step(reference, ["b"])[("b",)][0][0])
    assert float(out[("b",)][0][0]) == pytest.approx(want_b)  # "a" drew nothing before "b"
    assert set(piece._processes) == {"b"}


# -- replay ----------------------------------------------------------------------------------
def test_transition_replay_matches_the_stored_episodes():
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    eps = SingleAgentEpisode(observations=[np.array([float(t)], np.float32) for t in range(6)],
                             actions=[np.array([t + 0.5], np.float32) for t in range(5)],
                             rewards=[10.0 + t for t in range(5)], terminated=True,
                             len_lookback_buffer=0)
    buf = TransitionReplayBuffer(capacity=100, seed=0)
    buf.add(eps.to_numpy())
    out = buf.sample_transitions(500)
    t = out[Columns.OBS][:, 0].astype(int)
    assert set(t) == set(range(5))
    np.testing.assert_allclose(out[Columns.NEXT_OBS][:, 0], t + 1)
    np.testing.assert_allclose(out[Columns.ACTIONS][:, 0], t + 0.5)
    np.testing.assert_allclose(out[Columns.REWARDS], 10.0 + t)
    np.testing.assert_array_equal(out[Columns.TERMINATEDS], t == 4)


# -- configuration and errors ----------------------------------------------------------------
def test_presets_paper_values_and_pendulum_differences():
    paper, pend = PRESETS["paper"](), PRESETS["pendulum"]()
    assert (paper["actor_lr"], paper["critic_lr"], paper["critic_weight_decay"]) == (1e-4, 1e-3,
                                                                                     1e-2)
    assert (paper["tau"], paper["gamma"], paper["train_batch_size"]) == (1e-3, 0.99, 64)
    assert paper["replay_capacity"] == 1_000_000 and paper["noise_type"] == "ou"
    assert (paper["ou_theta"], paper["noise_sigma"]) == (0.15, 0.2)
    assert set(pend) == set(paper)
    differing = {k for k in paper if paper[k] != pend[k]}
    doc = PRESETS["pendulum"].__doc__
    for key in differing - {"learning_starts", "timesteps"}:
        assert key.split("_")[0] in doc  # each difference is explained in the docstring


def test_several_learners_are_refused_with_one_line():
    """The Learner's autograd.grad path bypasses DDP's all-reduce: several Learners would each
    follow their own shard's gradients, so the config refuses them."""
    config = DDPGConfig().environment("Pendulum-v1").learners(num_learners=2)
    with pytest.raises(DeepmorningError, match="one Learner.*got 2"):
        config.validate()
    DDPGConfig().environment("Pendulum-v1").learners(num_learners=1).validate()


def test_discrete_action_space_is_refused():
    with pytest.raises(DeepmorningError, match="continuous"):
        check_env("CartPole-v1")
    with pytest.raises(DeepmorningError, match="continuous"):
        check_spaces(OBS, gym.spaces.Discrete(2), "X")


def test_cli_discrete_env_is_a_one_line_error(tmp_path, capsys):
    res = run_main(capsys, "rl", "train", "ddpg", "--env", "CartPole-v1", "--output",
                   str(tmp_path / "run"))  # refused before Ray: in this process
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: DDPG needs a continuous")
    assert not (tmp_path / "run").exists()


def test_cli_unknown_preset_is_a_one_line_error(tmp_path, capsys):
    res = run_main(capsys, "rl", "train", "ddpg", "--env", "Pendulum-v1", "--preset", "nope",
                   "--output", str(tmp_path / "run"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: unknown preset 'nope'")


# -- end to end on a real local Ray ----------------------------------------------------------
def test_short_pendulum_run_writes_its_run_directory_and_evaluates(tmp_path):
    out = tmp_path / "run"
    res = run_cli("rl", "train", "ddpg", "--env", "Pendulum-v1", "--timesteps", "600",
                  "--eval-episodes", "2", "--checkpoint-every", "2",
                  "--set", "learning_starts=200", "--set", "random_steps=200",
                  "--output", str(out), timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("run.json", "config.json", "progress.csv", "summary.json",
                 "learning_curve.png"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["algo"] == "ddpg" and cfg["preset"] == "pendulum"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 600 and summary["iterations"] == 3
    rows = (out / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3
    checkpoints = sorted((out / "checkpoints").iterdir())
    assert checkpoints and checkpoints[-1].name == "iter_000003"
    assert json.loads((out / "run.json").read_text())["status"] == "finished"

    # Checkpoint -> evaluate: the restored actor is the trained one (deterministic policy,
    # same seeds), so `rl evaluate` reproduces the run's final evaluation exactly.
    ev = run_cli("rl", "evaluate", str(out), "--episodes", "2", timeout=300)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert f"return {summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}" \
        in ev.stdout


@pytest.fixture(scope="module")
def local_ray():
    """An embedded Ray of our own (address="local": never attach to another cluster)."""
    import ray

    from deepmorning.platform.runtime import connect

    connect(None, num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_checkpoint_restores_weights_replay_and_counters(local_ray, tmp_path):
    from deepmorning.rl.ddpg.algorithm import config_from_hyperparameters

    hp = PRESETS["pendulum"]() | {"learning_starts": 100, "random_steps": 100,
                                  "rollout_fragment_length": 100}
    config = config_from_hyperparameters(hp, seed=3).environment("Pendulum-v1")
    algo = config.build_algo()
    try:
        for _ in range(2):
            algo.train()
        assert len(algo.local_replay_buffer) == 200
        # The EnvRunner's pipeline carries our noise piece.
        pieces = [c for c in algo.env_runner._module_to_env.connectors
                  if isinstance(c, ExplorationNoise)]
        assert len(pieces) == 1
        algo.save_to_path(str(tmp_path / "ckpt"))
        weights = algo.learner_group.get_weights()[DEFAULT_MODULE_ID]
    finally:
        algo.stop()
    restored = config.build_algo()
    try:
        restored.restore_from_path(str(tmp_path / "ckpt"))
        assert restored.iteration == 2
        # The warm-up clock, the algorithm's env steps sampled, is part of the checkpoint.
        assert restored.env_runner.num_env_steps_sampled_lifetime == 200
        assert len(restored.local_replay_buffer) == 200  # the experience survives a resume
        again = restored.learner_group.get_weights()[DEFAULT_MODULE_ID]
        assert set(again) == set(weights)  # incl. the target networks
        for key, value in weights.items():
            np.testing.assert_array_equal(again[key], value)
        # The EnvRunner acts with the restored actor (and holds nothing but the actor).
        runner_state = restored.get_module().get_state()
        assert runner_state and all(k.startswith("actor.") for k in runner_state)
        for key, value in runner_state.items():
            np.testing.assert_array_equal(value, weights[key])
        restored.local_replay_buffer.sample_transitions(64)
    finally:
        restored.stop()


# -- the bar (minutes: run with -m slow) ---------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(3600)  # three runs of up to 30k steps each on a 2-core machine
@pytest.mark.parametrize("num_env_runners", [0, 1])
def test_pendulum_reaches_minus_200_within_30k_steps_on_two_of_three_seeds(tmp_path,
                                                                           num_env_runners):
    import ray

    from deepmorning.rl.runner import TrainRequest, train

    reached = {}
    try:
        for seed in (0, 1, 2):
            summary = train(TrainRequest(
                algo="ddpg", env="Pendulum-v1", preset="pendulum", timesteps=30_000,
                seed=seed, eval_every=1_000, eval_episodes=10, stop_return=-200.0,
                checkpoint_every=1_000, output=tmp_path / f"seed{seed}", quiet=True,
                num_env_runners=num_env_runners,
            ))
            reached[seed] = summary["stopped_at_return"]
            print(f"seed {seed}: reached -200 at {reached[seed]} env steps "
                  f"(final eval {summary['eval_return_mean']:.1f})")
    finally:
        ray.shutdown()
    assert sum(r is not None and r <= 30_000 for r in reached.values()) >= 2, reached


def test_remote_env_runners_warm_up_once_on_the_global_clock_and_not_again_on_resume(
        local_ray, tmp_path):
    """The warm-up follows the algorithm's env steps sampled (checkpointed, broadcast to every
    EnvRunner), not a count kept by each EnvRunner: a remote EnvRunner acts with the actor
    after ``random_steps`` and, after a resume, takes no random steps again."""
    from ray.rllib.core.columns import Columns

    from deepmorning.rl.ddpg.algorithm import config_from_hyperparameters

    hp = PRESETS["pendulum"]() | {"learning_starts": 10**9, "random_steps": 100,
                                  "rollout_fragment_length": 100, "noise_sigma": 0.0}
    config = config_from_hyperparameters(hp, seed=0).environment("Pendulum-v1")
    config.env_runners(num_env_runners=1)
    algo = config.build_algo()

    def clock(runner):
        return runner.num_env_steps_sampled_lifetime

    def action_error(runner):  # sampled actions vs. the runner's own actor, noise sigma 0
        import torch

        episodes = runner.sample(num_timesteps=50, random_actions=False)
        worst = 0.0
        for episode in episodes:
            n = len(episode)
            obs = np.asarray(episode.get_observations(slice(0, n)), dtype=np.float32)
            actions = np.asarray(episode.get_actions(slice(0, n)))
            with torch.no_grad():
                mu = runner.module.forward_inference({Columns.OBS: torch.as_tensor(obs)})
            expected = np.clip(mu[Columns.ACTIONS].numpy(), -2.0, 2.0)
            worst = max(worst, float(np.abs(actions - expected).max()))
        return worst

    try:
        for _ in range(3):  # 300 env steps on the remote EnvRunner, 3 state broadcasts
            algo.train()
        (steps,) = algo.env_runner_group.foreach_env_runner(clock, local_env_runner=False)
        assert steps >= 300
        (error,) = algo.env_runner_group.foreach_env_runner(action_error,
                                                            local_env_runner=False)
        assert error < 1e-5  # the actor's actions, not uniform random ones
        algo.save_to_path(str(tmp_path / "ckpt"))
    finally:
        algo.stop()
    resumed = config.build_algo()
    try:
        resumed.restore_from_path(str(tmp_path / "ckpt"))
        (steps,) = resumed.env_runner_group.foreach_env_runner(clock, local_env_runner=False)
        assert steps >= 300  # the fresh remote EnvRunner got the run's clock
        # Its first steps after the resume: the actor's, no second warm-up.
        (error,) = resumed.env_runner_group.foreach_env_runner(action_error,
                                                               local_env_runner=False)
        assert error < 1e-5
    finally:
        resumed.stop()
