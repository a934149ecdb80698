"""NAS under faults, deterministically: a driver killed in each window of the journal, a killed
parameter server, a restarted replica, a slow replica; and the resource check's node types."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
import torch
from conftest import published_node_groups

from deepmorning.nas import ps
from deepmorning.nas.child import child_seed
from deepmorning.nas.config import ControllerConfig, NASConfig, quick
from deepmorning.nas.controller import Controller, reinforce_loss
from deepmorning.nas.search import Search, journal_path
from deepmorning.nas.space import Architecture, SearchSpace
from deepmorning.platform import capacity
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


def _cfg(**overrides) -> NASConfig:
    cfg = quick().to_dict()
    trainer = overrides.pop("trainer", "synthetic")
    cfg.update(child_retries=0, **overrides)
    cfg["child"]["trainer"] = trainer
    return NASConfig.from_dict(cfg)


def _events(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in journal_path(run).read_text().splitlines()]


def _server_states(search: Search) -> list[dict]:
    return ray.get([shard.get_state.remote() for shard in search.shards])


# -- the driver killed in each window -------------------------------------------------------------

class Killed(Exception):
    """Stands for kill -9 of the driver at an exact point."""


def _kill_after_event(search: Search, kind: str, nth: int = 1) -> None:
    record, seen = search.journal.record, []

    def wrapped(event):
        record(event)
        seen.append(event["e"])
        if seen.count(kind) == nth and event["e"] == kind:
            raise Killed(kind)

    search.journal.record = wrapped


def _kill_on_entry(search: Search, method: str, when=lambda payload: True) -> None:
    original = getattr(search, method)

    def wrapped(payload, ref):
        if when(payload):
            raise Killed(method)
        return original(payload, ref)

    setattr(search, method, wrapped)


def _die(search: Search) -> None:
    """What kill -9 leaves: calls already sent finish or not; actors go with the driver. We
    let them finish (the later of the two outcomes, so the servers have applied what they were
    sent) and then kill every actor, so the resumed driver starts from files alone."""
    if search.pending:
        ray.wait(list(search.pending), num_returns=len(search.pending), timeout=120)
    for actor in [*search.shards, *search.replicas]:
        ray.kill(actor.host, no_restart=True)  # the process hosting it
    search.journal.close()


def test_resume_after_a_kill_in_every_window_loses_no_child_slot(ray_local, tmp_path):
    """Killed (a) with a batch requested but not sampled, (b) with a child finished but not
    collected, (c) with an update applied by the servers but not confirmed: the resumed search
    fills every child id exactly once, retrains only the uncollected child and applies every
    update exactly once."""
    cfg = _cfg(max_children=6, param_servers=1, controllers=1, children_per_controller=2,
               cpus_per_child=2)
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    windows = [
        ("request", lambda s: _kill_after_event(s, "request")),
        ("child", lambda s: _kill_on_entry(s, "_on_child")),
        ("update", lambda s: _kill_on_entry(s, "_on_step", lambda p: p[0] is not None)),
    ]
    for number, (window, arm) in enumerate(windows):
        search = Search(cfg, run, resumed=number > 0)
        arm(search)
        with pytest.raises(Killed):
            search.run_search()
        events = _events(run)
        if window == "request":  # (a) the slots are the journal's before any sample exists
            assert [e["e"] for e in events] == ["request"] and events[0]["ids"] == [0, 1]
        before = pd.read_csv(run.path / "history.csv") if (run.path / "history.csv").exists() \
            else None
        _die(search)
    search = Search(cfg, run, resumed=True)
    summary = search.run_search()
    events = _events(run)
    history = pd.read_csv(run.path / "history.csv")
    assert sorted(history.child_id) == list(range(6))  # no hole, none twice
    assert summary["children"] == 6 and summary["children_ok"] == 6
    pd.testing.assert_frame_equal(history.head(len(before)), before)  # recorded rows kept
    children = [e["child_id"] for e in events if e["e"] == "child"]
    assert sorted(children) == list(range(6))
    requests = {}
    for e in events:
        if e["e"] == "request":  # a batch asked for again keeps its child ids
            assert requests.setdefault(e["batch"], e["ids"]) == e["ids"]
    assert sorted(requests) == [0, 1, 2]
    # (c) the re-sent update was ignored: 3 batches applied once each
    (state,) = _server_states(search)
    assert state["version"] == 3 and state["applied"] == [0, 1, 2]
    assert all(e["result"]["threads"] == 2 for e in events if e["e"] == "child")  # --cpus
    assert not list((run.checkpoints / "sampled").glob("*.pt"))  # closed batches cleaned up


# -- a slow replica, apply_every, seeds -----------------------------------------------------------

def test_a_slow_replica_never_blocks_a_fast_one(ray_local, tmp_path):
    """Child 0 (replica 0's first batch) waits until the test lets it go; meanwhile replica 1
    must run every other batch. Also: one open batch per replica, apply_every inside a search
    (with the leftover gradients applied at the end) and the children's seeds."""
    gate = tmp_path / "release"
    cfg = _cfg(max_children=10, param_servers=1, controllers=2, children_per_controller=2,
               apply_every=3, seed=5, trainer=f"wait:{gate}")
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(search.run_search()), daemon=True)
    thread.start()
    history = run.path / "history.csv"
    deadline = time.time() + 300  # a deadlock fails here; nothing is timed
    while time.time() < deadline and not (
            history.exists() and len(history.read_text().splitlines()) >= 1 + 9):
        time.sleep(0.2)
    rows = pd.read_csv(history)
    assert sorted(rows.child_id) == list(range(1, 10))  # all but the slow child 0
    assert set(rows.loc[rows.child_id >= 2, "replica"]) == {1}
    gate.touch()
    thread.join(timeout=300)
    assert result["children"] == 10

    events = _events(run)
    replica_of = {e["batch"]: e["replica"] for e in events if e["e"] == "request"}
    open_batch: dict[int, int] = {}
    for e in events:  # a replica samples its next batch only after its last one is closed
        if e["e"] == "sample":
            assert open_batch.get(replica_of[e["batch"]]) is None, e
            open_batch[replica_of[e["batch"]]] = e["batch"]
        elif e["e"] == "updated":
            assert open_batch.pop(replica_of[e["batch"]]) == e["batch"]
    (state,) = _server_states(search)
    # 5 gradients, G = 3: one step after the third, one for the 2 left over at the end
    assert (state["version"], state["waiting"], state["applied"]) == (2, [], [0, 1, 2, 3, 4])
    history_rows = pd.read_csv(history)
    assert (history_rows.seed == [child_seed(5, i) for i in history_rows.child_id]).all()


# -- parameter servers and replicas ---------------------------------------------------------------

def test_a_killed_parameter_server_restarts_from_its_saved_state(ray_local, tmp_path):
    space, cfg = SearchSpace(layers_start=2), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=1, apply_every=2, seed=0,
                                     state_dir=tmp_path)
    initial = ps.initial_parameters(space, cfg, seed=0)
    ones = {k: np.ones_like(v) for k, v in initial.items()}
    assert ray.get(shards[0].push.remote(1, ones)) == 0  # waiting for a second gradient
    pid = ray.get(shards[0].pid.remote())
    os.kill(pid, signal.SIGKILL)  # a preempted node
    assert ray.get(shards[0].push.remote(1, ones)) == 0  # the same batch again: ignored
    assert ray.get(shards[0].pid.remote()) != pid  # a new process ...
    assert ray.get(shards[0].push.remote(2, ones)) == 1  # ... that kept the waiting gradient
    version, params = ray.get(shards[0].pull.remote())
    name = names[0][0]
    assert version == 1 and np.allclose(params[name], initial[name] - cfg.lr, atol=1e-6)


def test_the_pushed_gradient_is_the_gradient_at_the_sampling_parameters(ray_local, tmp_path):
    """Sample, restart the replica, move the servers' parameters, then update: the gradient
    pushed is the one at the parameters the batch was sampled with."""
    space, cfg = SearchSpace(layers_start=3), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=1, apply_every=100, seed=0,
                                     state_dir=tmp_path)  # gradients stay in `waiting`
    (replica,) = ps.start_replicas(1, space, cfg, shards, names, "rl", seed=0)
    batch = ray.get(replica.sample.remote(0, 3, 3))
    ray.kill(replica.host, no_restart=False)  # a restart forgets everything it held
    for shard in shards:  # other replicas' updates moved the parameters meanwhile
        state = ray.get(shard.get_state.remote())
        state["params"] = {k: v + 0.05 for k, v in state["params"].items()}
        ray.get(shard.set_state.remote(state))
    advantages = [1.0, -0.5, 0.25]
    ray.get(replica.update.remote(0, batch["archs"], advantages, batch["params"]))
    pushed = {}
    for shard in shards:
        (grads,) = ray.get(shard.get_state.remote())["waiting"]
        pushed.update(grads)

    def gradient_at(params: dict) -> dict[str, torch.Tensor]:
        controller = Controller(space)
        controller.load_state_dict({k: torch.tensor(np.array(v)) for k, v in params.items()})
        samples = [controller.score(Architecture.from_dict(a)) for a in batch["archs"]]
        reinforce_loss(samples, advantages).backward()
        return {k: p.grad if p.grad is not None else torch.zeros_like(p)
                for k, p in controller.named_parameters()}

    at_sampling = gradient_at(batch["params"])
    moved = {k: v + 0.05 for k, v in batch["params"].items()}
    at_current = gradient_at(moved)
    assert all(torch.allclose(pushed[k], at_sampling[k], atol=1e-6) for k in at_sampling)
    assert not all(torch.allclose(pushed[k], at_current[k], atol=1e-6) for k in at_current)
    with pytest.raises(ray.exceptions.RayTaskError, match="open"):  # one open batch
        ray.get([replica.sample.remote(1, 1, 3), replica.sample.remote(2, 1, 3)])


# -- node types the autoscaler can add ------------------------------------------------------------

@pytest.mark.parametrize("path, name", [("clusters/aws.yaml", "worker.gpu"),
                                        ("clusters/gcp.yaml", "worker_gpu"),
                                        ("clusters/kuberay/raycluster.yaml", "gpu")])
def test_gpu_children_are_accepted_when_the_autoscaler_can_add_gpus(path, name):
    types = capacity.node_types_from_file(REPO / path)
    gpu_types = [t for t in types if t.resources.get("GPU", 0) >= 1 and t.max_count != 0]
    assert [t.name for t in gpu_types] == [name]
    head_only = [{"CPU": 4, "GPU": 0}]  # GPU workers start at 0
    note = capacity.check_fits({"CPU": 1, "GPU": 1}, head_only, types, "child")
    assert note is not None and name in note and "\n" not in note
    with pytest.raises(DeepmorningError, match="no GPU"):
        capacity.check_fits({"CPU": 1, "GPU": 1}, head_only, [], "child")
    with pytest.raises(DeepmorningError, match="64 GPU"):
        capacity.check_fits({"CPU": 1, "GPU": 64}, head_only, types, "child")
    assert capacity.check_fits({"CPU": 1, "GPU": 0}, head_only, types, "child") is None


def test_a_missing_or_empty_cluster_config_is_one_line(tmp_path):
    with pytest.raises(DeepmorningError, match="/no/such.yaml") as info:
        capacity.node_types_from_file(Path("/no/such.yaml"))
    empty = tmp_path / "head-only.yaml"
    empty.write_text("cluster_name: x\navailable_node_types: {head: {resources: {CPU: 2}}}\n"
                     "head_node_type: head\n")
    with pytest.raises(DeepmorningError, match="no worker node types") as info2:
        capacity.node_types_from_file(empty)
    assert "\n" not in str(info.value) + str(info2.value)


def test_node_types_are_read_from_the_running_cluster(ray_local):
    """The autoscaler publishes its node groups in the GCS; the check reads them there."""
    from deepmorning.nas.cli import check_resources
    from deepmorning.platform.runtime import describe

    cfg = _cfg(gpus_per_child=1)
    with pytest.raises(DeepmorningError, match="no GPU"):
        check_resources(cfg, describe())
    with published_node_groups(**{"gpu-group": {"CPU": 8, "GPU": 1}}):
        note = check_resources(cfg, describe())
        assert "gpu-group" in note


# -- the recurrent-cell search ---------------------------------------------------------------------

def test_rnn_search_on_the_embedded_text_survives_a_killed_driver(ray_local, tmp_path):
    """`--space rnn` end to end with real language-model children on Python's help text: a
    driver killed with a child finished but not collected resumes without a hole, and the best
    cell is retrained for its test perplexity."""
    from deepmorning.nas.config import rnn_quick
    from deepmorning.nas.final import train_best
    from deepmorning.nas.search import load_data

    cfg = rnn_quick().to_dict()
    cfg.update(max_children=3, param_servers=1, controllers=1, data_limit=3000, child_retries=0)
    cfg["child"].update(batch_size=4)
    cfg["lm"].update(hidden=8, bptt=10)
    cfg = NASConfig.from_dict(cfg)
    data = load_data(cfg)
    run = RunDir.create(tmp_path / "rnn", "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False, data=data)
    calls = []
    _kill_on_entry(search, "_on_child", lambda p: calls.append(p) or len(calls) == 2)
    with pytest.raises(Killed):
        search.run_search()
    _die(search)
    assert len(pd.read_csv(run.path / "history.csv")) == 1
    summary = Search(cfg, run, resumed=True, data=data).run_search()
    history = pd.read_csv(run.path / "history.csv")
    assert sorted(history.child_id) == [0, 1, 2]
    assert history.summary.str.startswith("cell[").all()
    assert (history.val_ppl > 1).all()
    assert np.allclose(history.reward, 4.0 / history.val_ppl ** 2)
    assert summary["best_val_ppl"] == history.val_ppl.min() and "best_val_acc" not in summary
    for name in ("best.json", "summary.json", "rewards.png"):
        assert (run.path / name).is_file(), name

    final = train_best(RunDir.open(run.path), epochs=1, output=tmp_path / "final", gpus=0)
    assert final["test_ppl"] > 1 and final["architecture"].startswith("cell[")
