"""NAS: controller, child builder, parameter servers, the search on Ray, resume, failures."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from conftest import run_cli

from deepmorning.nas import ps
from deepmorning.nas.child import ChildNet, count_parameters, synthetic_reward
from deepmorning.nas.config import ControllerConfig, NASConfig, load_config, quick
from deepmorning.nas.controller import Controller, reinforce_loss
from deepmorning.nas.search import Search
from deepmorning.nas.space import Architecture, Layer, SearchSpace, sample_uniform
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir

SPACES = [SearchSpace(), SearchSpace(strides=(1, 2, 3)),
          SearchSpace(skip_connections=False, strides=(1, 2))]


# -- controller -------------------------------------------------------------------------------

@pytest.mark.parametrize("space", SPACES)
def test_controller_samples_only_valid_architectures(space):
    controller = Controller(space)
    gen = torch.Generator().manual_seed(0)
    for num_layers in (1, 2, 6, 10):
        for _ in range(10):
            arch = controller.sample(num_layers, gen).arch
            assert len(arch) == num_layers
            assert arch.is_valid(space), arch.summary()
            assert arch.layers[0].inputs == ()


@pytest.mark.parametrize("space", SPACES)
def test_sampling_and_scoring_agree_on_log_prob_and_entropy(space):
    controller = Controller(space)
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        sample = controller.sample(7, gen)
        scored = controller.score(sample.arch)
        assert torch.allclose(sample.log_prob, scored.log_prob, atol=1e-5)
        assert torch.allclose(sample.entropy, scored.entropy, atol=1e-5)
        assert sample.log_prob < 0


def test_controller_uses_paper_initialisation():
    controller = Controller(SearchSpace())
    values = torch.cat([p.flatten() for p in controller.parameters()])
    assert values.abs().max() <= 0.08
    assert controller.lstm.hidden_size == 35 and controller.lstm.num_layers == 2


def test_reinforce_raises_the_mean_reward_on_a_synthetic_task():
    """Reward = share of layers with filter height 3: REINFORCE must learn to prefer 3."""
    torch.manual_seed(0)
    space = SearchSpace(layers_start=4)
    controller = Controller(space)
    opt = torch.optim.Adam(controller.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    baseline, rewards = None, []
    for _ in range(40):  # 40 batches of 8 = 320 samples
        samples = [controller.sample(4, gen) for _ in range(8)]
        batch = [synthetic_reward(s.arch) for s in samples]
        if baseline is None:
            baseline = float(np.mean(batch))
        advantages = [r - baseline for r in batch]
        baseline = 0.9 * baseline + 0.1 * float(np.mean(batch))
        opt.zero_grad()
        reinforce_loss(samples, advantages).backward()
        opt.step()
        rewards.extend(batch)
    first, last = np.mean(rewards[:64]), np.mean(rewards[-64:])
    assert first < 0.4  # uniform over 4 heights: about 0.25
    assert last > first + 0.3, (first, last)


# -- architectures and children -----------------------------------------------------------------

def test_architecture_json_round_trip_and_summary():
    arch = Architecture((Layer(3, 5, 24), Layer(7, 1, 36, stride=2, inputs=(0,)),
                         Layer(1, 1, 48, inputs=(0, 1))))
    again = Architecture.from_json(arch.to_json())
    assert again == arch
    assert arch.summary() == "L0 3x5x24 | L1 7x1x36 s2 <-[0] | L2 1x1x48 <-[0,1]"
    with pytest.raises(ValueError):
        Architecture.from_dict({"layers": [{"filter_height": 3, "filter_width": 3,
                                            "num_filters": 24, "inputs": [0]}]})


def test_child_builder_handles_every_skip_pattern_and_stride():
    rng = random.Random(0)
    n = 4
    pairs = [(i, j) for i in range(n) for j in range(i)]
    for mask in itertools.product([0, 1], repeat=len(pairs)):  # all 64 skip patterns
        inputs = {i: tuple(j for (ii, j), m in zip(pairs, mask, strict=True) if ii == i and m)
                  for i in range(n)}
        layers = tuple(Layer(rng.choice((1, 3, 5, 7)), rng.choice((1, 3, 5, 7)), 4,
                             stride=rng.choice((1, 2, 3)), inputs=inputs[i]) for i in range(n))
        arch = Architecture(layers)
        for shape in ((1, 8, 8), (3, 11, 7)):
            net = ChildNet(arch, shape, 10)
            assert net(torch.randn(2, *shape)).shape == (2, 10)


def test_child_concatenates_inputs_and_unused_outputs():
    arch = Architecture((Layer(3, 3, 4), Layer(3, 3, 5), Layer(1, 1, 6, inputs=(0, 1))))
    net = ChildNet(arch, (1, 8, 8), 10)
    assert net.convs[2].in_channels == 4 + 5  # inputs concatenated on depth
    assert net.unused == [2]  # layers 0 and 1 feed layer 2
    assert net.classifier.in_features == 6
    lonely = ChildNet(Architecture((Layer(3, 3, 4), Layer(3, 3, 5))), (1, 8, 8), 10)
    assert lonely.convs[1].in_channels == 1  # no input: the image
    assert lonely.classifier.in_features == 4 + 5
    assert count_parameters(lonely) > 0


def test_uniform_sampling_covers_the_space():
    space = SearchSpace(strides=(1, 2, 3))
    rng = random.Random(0)
    archs = [sample_uniform(space, 5, rng) for _ in range(200)]
    assert all(a.is_valid(space) for a in archs)
    heights = {layer.filter_height for a in archs for layer in a.layers}
    assert heights == set(space.filter_heights)


def test_depth_schedule_follows_the_paper():
    space = SearchSpace()
    assert [space.num_layers(i) for i in (0, 1599, 1600, 3200, 12799)] == [6, 6, 8, 10, 20]


def test_config_presets_and_errors(tmp_path):
    assert NASConfig().param_servers == 20 and NASConfig().controllers == 100
    assert quick().children_per_controller == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DeepmorningError, match="malformed"):
        load_config("quick", bad)
    bad.write_text(json.dumps({"no_such_key": 1}))
    with pytest.raises(DeepmorningError, match="no_such_key"):
        load_config("quick", bad)
    with pytest.raises(DeepmorningError, match="unknown preset"):
        load_config("huge")


# -- parameter servers on Ray -------------------------------------------------------------------

def test_parameter_servers_round_trip_and_apply_gradients(ray_local):
    space, cfg = SearchSpace(), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=3, apply_every=1, seed=0)
    initial = ps.initial_parameters(space, cfg, seed=0)
    assert sorted(n for group in names for n in group) == sorted(initial)
    pulled = {}
    for version, params in ray.get([s.pull.remote() for s in shards]):
        assert version == 0
        pulled.update(params)
    assert all(np.array_equal(pulled[k], initial[k]) for k in initial)

    grads = {k: np.ones_like(initial[k]) for k in names[0]}
    assert ray.get(shards[0].push.remote(7, grads)) == 1
    assert ray.get(shards[0].push.remote(7, grads)) == 1  # duplicate batch ignored
    _, after = ray.get(shards[0].pull.remote())
    name = names[0][0]
    assert np.allclose(after[name], initial[name] - cfg.lr, atol=1e-6)  # Adam's first step

    state = ray.get(shards[0].get_state.remote())
    restored, _ = ps.start_servers(space, cfg, 3, 1, seed=0,
                                   states=[state] + ray.get([s.get_state.remote()
                                                             for s in shards[1:]]))
    version, again = ray.get(restored[0].pull.remote())
    assert version == 1 and np.array_equal(again[name], after[name])


def test_servers_wait_for_apply_every_gradients(ray_local):
    space, cfg = SearchSpace(), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=1, apply_every=2, seed=0)
    grads = {k: np.ones_like(v) for k, v in ps.initial_parameters(space, cfg, 0).items()}
    assert ray.get(shards[0].push.remote(0, grads)) == 0
    assert ray.get(shards[0].push.remote(1, grads)) == 1


def test_replica_survives_a_restart(ray_local):
    space, cfg = SearchSpace(layers_start=3), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=2, apply_every=1, seed=0)
    (replica,) = ps.start_replicas(1, space, cfg, shards, names, "rl", seed=0)
    batch = ray.get(replica.sample.remote(0, 2, 3))
    ray.kill(replica, no_restart=False)
    version = ray.get(replica.update.remote(0, batch["archs"], [1.0, -1.0]))
    assert version == 2  # both shards applied the gradient after the restart


# -- the search -------------------------------------------------------------------------------

def _cfg(**overrides) -> NASConfig:
    cfg = quick().to_dict()
    cfg.update(max_children=8, child_retries=0, **overrides)
    cfg["child"]["trainer"] = overrides.pop("trainer", "synthetic")
    return NASConfig.from_dict(cfg)


def test_a_failing_child_does_not_stop_the_search(ray_local, tmp_path):
    cfg = _cfg()
    cfg.child.trainer = "fail:3"
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    summary = Search(cfg, run, resumed=False).run_search()
    history = pd.read_csv(run.path / "history.csv")
    failed = set(history.loc[history.status == "failed", "child_id"])
    assert failed == {0, 3, 6}
    assert summary["children_failed"] == 3 and summary["children_ok"] == 5
    assert history.loc[history.status == "failed", "error"].str.contains("on purpose").all()
    assert run.is_finished()


def test_random_strategy_runs_the_same_budget(ray_local, tmp_path):
    cfg = _cfg(strategy="random")
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    summary = Search(cfg, run, resumed=False).run_search()
    assert summary["children"] == 8 and summary["strategy"] == "random"


def test_search_on_digits_writes_the_run_directory(tmp_path):
    out = tmp_path / "search"
    res = run_cli("nas", "search", "--max-children", "4", "--child-epochs", "1",
                  "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert "best architecture" in res.stdout
    for name in ("config.json", "history.csv", "best.json", "summary.json", "rewards.png",
                 "accuracy_vs_params.png", "checkpoints/search.pt"):
        assert (out / name).is_file(), name
    history = pd.read_csv(out / "history.csv")
    assert sorted(history.child_id) == [0, 1, 2, 3]
    assert set(history.status) == {"ok"} and history.params.gt(0).all()
    assert history.val_acc.between(0, 1).all()
    assert np.allclose(history.reward, history.val_acc ** 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["children_ok"] == 4 and 0 < summary["best_val_acc"] <= 1
    Architecture.from_dict(json.loads((out / "best.json").read_text())["arch"])

    shown = run_cli("results", "show", str(out))
    assert shown.returncode == 0 and "best_reward" in shown.stdout

    final = run_cli("nas", "train", str(out), "--epochs", "2")
    assert final.returncode == 0, final.stderr
    final_summary = json.loads((out / "final" / "summary.json").read_text())
    assert 0 <= final_summary["test_acc"] <= 1 and final_summary["epochs"] == 2
    assert (out / "final" / "train_curve.png").is_file()

    again = run_cli("nas", "search", "--output", str(out))
    assert again.returncode == 2 and "finished" in again.stderr


def test_resume_after_a_killed_driver_loses_nothing(tmp_path):
    out = tmp_path / "search"
    args = [sys.executable, "-m", "deepmorning", "nas", "search", "--trainer", "sleep:1.5",
            "--max-children", "12", "--output", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    history = out / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) >= 4:
            break
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray, at once
    proc.wait()
    before = pd.read_csv(history)
    assert 3 <= len(before) < 12
    assert not (out / "summary.json").exists()

    res = run_cli("nas", "search", "--resume", str(out))
    assert res.returncode == 0, res.stderr
    after = pd.read_csv(history)
    assert sorted(after.child_id) == list(range(12))  # none lost, none trained twice
    pd.testing.assert_frame_equal(after.head(len(before)), before)
    assert json.loads((out / "summary.json").read_text())["children"] == 12


@pytest.mark.parametrize("args, fragment", [
    (["--dataset", "cifar10:/no/such/dir"], "/no/such/dir"),
    (["--dataset", "imagenet"], "imagenet"),
    (["--max-children", "0"], "--max-children"),
    (["--preset", "giant"], "giant"),
    (["--strategy", "evolution"], "evolution"),
    (["--resume", "/no/such/run"], "/no/such/run"),
])
def test_bad_search_input_is_one_line(args, fragment):
    res = run_cli("nas", "search", *args)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_gpus_asked_on_a_cpu_cluster_is_one_line(tmp_path):
    res = run_cli("nas", "search", "--gpus-per-child", "0.5", "--output", str(tmp_path / "r"))
    assert res.returncode == 2 and "no GPU" in res.stderr
