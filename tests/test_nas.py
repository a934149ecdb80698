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
from conftest import run_cli, run_main

from deepmorning.nas import ps
from deepmorning.nas.child import (
    ChildConfig,
    ChildNet,
    child_device,
    child_seed,
    count_parameters,
    fit,
    run_child,
    synthetic_reward,
)
from deepmorning.nas.config import ControllerConfig, NASConfig, load_config, quick
from deepmorning.nas.controller import Controller, advantages_and_baseline, reinforce_loss
from deepmorning.nas.search import Search
from deepmorning.nas.space import Architecture, Layer, SearchSpace, chain_inputs, sample_uniform
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


def test_advantages_and_baseline_by_hand():
    """The search's own baseline: starts at the first reward, then b <- d b + (1 - d) R."""
    advantages, baseline = advantages_and_baseline([0.5, 0.9, 0.1], None, decay=0.9)
    # b: 0.5 -> 0.9*0.5+0.1*0.5 = 0.5 -> 0.9*0.5+0.1*0.9 = 0.54 -> 0.9*0.54+0.1*0.1 = 0.496
    assert np.allclose(advantages, [0.0, 0.4, 0.1 - 0.54])
    assert baseline == pytest.approx(0.496)
    again, after = advantages_and_baseline([1.0], baseline, decay=0.5)
    assert again == pytest.approx([1.0 - 0.496]) and after == pytest.approx(0.748)
    assert advantages_and_baseline([], 0.3, 0.9) == ([], 0.3)


def test_reinforce_raises_the_mean_reward_on_a_synthetic_task():
    """Reward = share of layers with filter height 3: REINFORCE with the search's own
    baseline code must learn to prefer 3."""
    torch.manual_seed(0)
    space = SearchSpace(layers_start=4)
    controller = Controller(space)
    opt = torch.optim.Adam(controller.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    baseline, rewards = None, []
    for _ in range(40):  # 40 batches of 8 = 320 samples
        samples = [controller.sample(4, gen) for _ in range(8)]
        batch = [synthetic_reward(s.arch) for s in samples]
        advantages, baseline = advantages_and_baseline(batch, baseline, decay=0.9)
        opt.zero_grad()
        reinforce_loss(samples, advantages).backward()
        opt.step()
        rewards.extend(batch)
    first, last = np.mean(rewards[:64]), np.mean(rewards[-64:])
    assert first < 0.4  # uniform over 4 heights: about 0.25
    assert last > first + 0.3, (first, last)


# -- architectures and children -----------------------------------------------------------------

def test_architecture_json_round_trip_and_summary():
    arch = Architecture((Layer(3, 5, 24), Layer(7, 1, 36, 2, 3, inputs=(0,)),
                         Layer(1, 1, 48, inputs=(0, 1))))
    again = Architecture.from_json(arch.to_json())
    assert again == arch
    assert arch.summary() == "L0 3x5x24 | L1 7x1x36 s2x3 <-[0] | L2 1x1x48 <-[0,1]"
    old = {"layers": [{"filter_height": 3, "filter_width": 3, "num_filters": 8, "stride": 2}]}
    assert Architecture.from_dict(old).layers[0].stride == (2, 2)  # runs saved before
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
                             rng.choice((1, 2, 3)), rng.choice((1, 2, 3)), inputs=inputs[i])
                       for i in range(n))
        arch = Architecture(layers)
        for shape in ((1, 8, 8), (3, 11, 7)):
            net = ChildNet(arch, shape, 10)
            assert net(torch.randn(2, *shape)).shape == (2, 10)
            assert [c.stride for c in net.convs] == [layer.stride for layer in layers]


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


def test_without_skip_connections_the_child_is_a_chain():
    """The paper's base case: layer i reads layer i-1 (not n one-layer nets on the image)."""
    space = SearchSpace(skip_connections=False, num_filters=(4, 6, 8))
    samplers = [lambda n, g: Controller(space).sample(n, g).arch,
                lambda n, g: sample_uniform(space, n, random.Random(0))]
    for sample in samplers:
        arch = sample(4, torch.Generator().manual_seed(0))
        assert [layer.inputs for layer in arch.layers] == [chain_inputs(i) for i in range(4)]
        assert arch.is_valid(space)
        net = ChildNet(arch, (1, 8, 8), 10)
        assert net.convs[0].in_channels == 1
        for i in range(1, 4):
            assert net.convs[i].in_channels == arch.layers[i - 1].num_filters
        assert net.unused == [3] and net.classifier.in_features == arch.layers[3].num_filters
    lonely = Architecture((Layer(3, 3, 4), Layer(3, 3, 4)))  # two layers on the image
    assert not lonely.is_valid(space)


def test_stride_height_and_width_are_predicted_separately():
    space = SearchSpace(strides=(1, 2, 3))
    names = [name for name, _ in space.token_choices()]
    assert names == ["filter_height", "filter_width", "stride_height", "stride_width",
                     "num_filters"]  # Fig. 2 of the paper
    controller = Controller(space)
    gen = torch.Generator().manual_seed(0)
    strides = {layer.stride for _ in range(30) for layer in controller.sample(4, gen).arch.layers}
    assert any(h != w for h, w in strides)


@pytest.mark.parametrize("field", ["filter_heights", "filter_widths", "num_filters", "strides"])
def test_duplicate_choice_values_are_rejected(field, tmp_path):
    with pytest.raises(ValueError, match="twice"):
        SearchSpace(**{field: (3, 5, 3)})
    bad = tmp_path / "space.json"
    bad.write_text(json.dumps({"space": {field: [3, 5, 3]}}))
    with pytest.raises(DeepmorningError, match="twice"):
        load_config("quick", bad)


def test_a_zero_gpu_child_hides_gpus_and_uses_its_cpus(monkeypatch):
    """Ray does not hide GPUs from a task that asked for none: the child does it itself."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a GPU the child was not given
    arch = Architecture((Layer(3, 3, 4),)).to_dict()
    try:
        result = run_child(7, arch, None, ChildConfig(trainer="synthetic", threads=2, gpus=0,
                                                      seed=3))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert result["device"] == "cpu" and result["threads"] == 2
        assert result["seed"] == child_seed(3, 7)  # follows --seed
    finally:
        torch.set_num_threads(1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_a_gpu_child_never_falls_back_to_the_cpu():
    with pytest.raises(RuntimeError, match="cannot use CUDA"):
        child_device(1.0)
    assert child_device(0) == torch.device("cpu")


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
    assert SearchSpace(layers_start=3, layers_every=1, layers_max=4).num_layers(9) == 4


@pytest.mark.parametrize("cap", [0, 2])
def test_a_depth_cap_below_the_first_depth_is_rejected(cap, tmp_path):
    """``layers_max: 0`` once meant "no cap"; now a cap means what it says, and one below
    ``layers_start`` (0 included) is a configuration error; no cap is null / left out."""
    bad = tmp_path / "depth.json"
    bad.write_text(json.dumps({"space": {"layers_start": 3, "layers_max": cap}}))
    with pytest.raises(DeepmorningError, match="layers_max"):
        load_config("quick", bad)
    bad.write_text(json.dumps({"space": {"layers_max": None}}))
    assert load_config("quick", bad).space.num_layers(10**6) > 10**4  # null: no cap


def test_more_parameter_servers_than_controller_tensors_is_rejected():
    """A shard holds whole tensors: 22 in the CNN controller, 21 in the cell controller."""
    for space, limit in (("cnn", 22), ("rnn", 21)):
        cfg = load_config("quick", space=space).to_dict()
        cfg["param_servers"] = limit
        assert NASConfig.from_dict(cfg).param_servers == limit
        cfg["param_servers"] = limit + 1
        with pytest.raises(DeepmorningError, match=f"at most {limit}$"):
            NASConfig.from_dict(cfg)


# -- random streams ------------------------------------------------------------------------------

def test_stream_seeds_of_different_run_seeds_never_coincide():
    """Every (run seed, purpose, index) has its own stream: 40 run seeds x 500 batches and
    children, no two alike; child 1_000_003 of seed s is not child 0 of seed s + 1."""
    from deepmorning.nas.task import STREAM_CHILD, STREAM_SAMPLE, stream_seed

    seeds = [stream_seed(s, purpose, i) for s in range(40)
             for purpose in (STREAM_SAMPLE, STREAM_CHILD) for i in range(500)]
    assert len(set(seeds)) == len(seeds)
    assert ps.batch_stream(4, 9) == stream_seed(4, STREAM_SAMPLE, 9) == ps.batch_stream(4, 9)
    assert child_seed(0, 1_000_003) != child_seed(1, 0)
    assert child_seed(5, 7) == stream_seed(5, STREAM_CHILD, 7)
    with pytest.raises(ValueError, match="negative"):
        stream_seed(-1, STREAM_SAMPLE, 0)


@pytest.mark.parametrize("strategy", ["random", "rl"])
def test_two_run_seeds_share_no_sampling_stream(ray_local, strategy):
    """Replica 1 of seed 0 once sampled exactly what replica 0 of seed 1 sampled (its seed was
    ``seed + k``). Now a batch's architectures are a function of (run seed, batch id): the same
    for a seed whichever replica samples it, and no batch of seed 0 is one of seed 1's. The
    replicas of both seeds pull the same parameters, so only the streams can tell them apart."""
    space, cfg = SearchSpace(layers_start=4), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=1, apply_every=1, seed=0)
    archs: dict[tuple[int, int, int], list[dict]] = {}
    replicas = {0: ps.start_replicas(2, space, cfg, shards, names, strategy, seed=0),
                1: ps.start_replicas(1, space, cfg, shards, names, strategy, seed=1)}
    for seed, group in replicas.items():
        for k, replica in enumerate(group):
            for batch in (0, 1):  # a depth per child: [3, 4, 4] (the schedule can step in one)
                out = ray.get(replica.sample.remote(batch, 3, [3, 4, 4]))
                ray.get(replica.update.remote(batch, [], [], None))  # close it
                archs[(seed, k, batch)] = out["archs"]
    for replica in [*replicas[0], *replicas[1]]:
        ray.kill(replica.host)  # the process hosting it (and its group mates)
    assert all([len(a["layers"]) for a in batch] == [3, 4, 4] for batch in archs.values())
    for batch in (0, 1):  # reproducible for the seed, whichever replica samples the batch
        assert archs[(0, 0, batch)] == archs[(0, 1, batch)]
    seed0 = {json.dumps(v) for (seed, _, _), v in archs.items() if seed == 0}
    seed1 = {json.dumps(v) for (seed, _, _), v in archs.items() if seed == 1}
    assert len(seed0) == len(seed1) == 2 and not seed0 & seed1  # replica 1 of 0 is not 0 of 1


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

def test_parameter_servers_round_trip_and_apply_gradients(ray_local, tmp_path):
    space, cfg = SearchSpace(), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=3, apply_every=1, seed=0,
                                     state_dir=tmp_path)
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
    version, both = ray.get(shards[0].push_pull.remote(7, grads))  # push, then pull: one trip
    assert version == 1 and all(np.array_equal(both[k], after[k]) for k in after)

    restored, _ = ps.start_servers(space, cfg, 3, 1, seed=0, state_dir=tmp_path)  # resume
    version, again = ray.get(restored[0].pull.remote())
    assert version == 1 and np.array_equal(again[name], after[name])


def test_servers_wait_for_apply_every_gradients(ray_local):
    space, cfg = SearchSpace(), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=1, apply_every=2, seed=0)
    grads = {k: np.ones_like(v) for k, v in ps.initial_parameters(space, cfg, 0).items()}
    assert ray.get(shards[0].push.remote(0, grads)) == 0
    assert ray.get(shards[0].push.remote(1, grads)) == 1


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


def test_the_depth_schedule_applies_to_each_child(ray_local, tmp_path):
    """m = 2 does not divide layers_every = 3: batch [2, 3] straddles the step, and child 3
    must get the new depth (it once got child 2's). (Random search: the test below.)"""
    cfg = _cfg(param_servers=1, controllers=1, children_per_controller=2)
    cfg.space = SearchSpace(num_filters=(4, 8), layers_start=2, layers_step=1, layers_every=3)
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    Search(cfg, run, resumed=False).run_search()
    history = pd.read_csv(run.path / "history.csv").sort_values("child_id")
    assert history.num_layers.tolist() == [2, 2, 2, 3, 3, 3, 4, 4]
    assert history.num_layers.tolist() == [cfg.space.num_layers(i) for i in history.child_id]


def test_a_journal_with_one_depth_per_batch_still_replays(tmp_path):
    from deepmorning.nas.search import Journal

    path = tmp_path / "journal.jsonl"
    path.write_text(json.dumps({"e": "request", "batch": 0, "replica": 0, "ids": [0, 1],
                                "layers": 3, "t": 0.1}) + "\n")
    journal = Journal(path)
    assert journal.batches[0].num_layers == [3, 3]
    journal.close()


def test_final_training_tests_the_model_its_validation_figure_is_of():
    """``nas train`` reports validation and test accuracy of one model: the weights of the
    epoch with the best validation accuracy in the reward window, not the last epoch's."""
    from deepmorning.nas.data import load_dataset

    data = load_dataset("digits", limit=200)
    arch = Architecture((Layer(3, 3, 4),))
    cfg = ChildConfig(epochs=5, batch_size=32, seed=2)  # validation peaks at epoch 3 of 5
    result = fit(arch, data, cfg, test=True)
    epoch = result["val_epoch"]
    assert epoch < cfg.epochs and result["val_acc"] == result["val_curve"][epoch - 1]
    shorter = fit(arch, data, ChildConfig(epochs=epoch, batch_size=32, seed=2), test=True)
    assert shorter["val_curve"][-1] == result["val_acc"]  # the same weights: trained as far
    assert shorter["test_acc"] == result["test_acc"]
    last = fit(arch, data, ChildConfig(epochs=5, batch_size=32, seed=2, reward_window=1),
               test=True)  # the window is the last epoch: its own weights
    assert last["val_epoch"] == 5 and last["val_acc"] == result["val_curve"][-1]


def test_search_on_digits_writes_the_run_directory(tmp_path):
    out = tmp_path / "search"
    res = run_cli("nas", "search", "--max-children", "4", "--child-epochs", "1",
                  "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert "best architecture" in res.stdout
    for name in ("config.json", "history.csv", "best.json", "summary.json", "rewards.png",
                 "accuracy_vs_params.png", "checkpoints/journal.jsonl"):
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
    assert "device: CPU" in final.stdout  # said, never silent
    final_summary = json.loads((out / "final" / "summary.json").read_text())
    assert 0 <= final_summary["test_acc"] <= 1 and final_summary["epochs"] == 2
    assert (out / "final" / "train_curve.png").is_file()

    again = run_cli("nas", "search", "--output", str(out))
    assert again.returncode == 2 and "finished" in again.stderr


@pytest.mark.slow  # kills at a moment chosen by timing; the windows are tested deterministically
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
    (["-S", "23", "--trainer", "synthetic"], "at most 22"),  # before Ray: no traceback
    (["--space", "rnn", "-S", "22", "--trainer", "synthetic"], "at most 21"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_search_input_is_one_line(capsys, args, fragment):
    res = run_main(capsys, "nas", "search", *args)  # refused before Ray: in this process
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], res.stderr
    assert "Traceback" not in res.stderr


def test_gpus_asked_on_a_cpu_cluster_is_one_line(tmp_path):
    res = run_cli("nas", "search", "--gpus-per-child", "0.5", "--output", str(tmp_path / "r"))
    assert res.returncode == 2 and "no GPU" in res.stderr
