"""The control plane's hosting: many logical shards and replicas in a few processes (what lets
the paper's S = 20 / K = 100 fit on one machine) keep the paper's asynchrony."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
import ray

from deepmorning.nas import ps
from deepmorning.nas.config import ControllerConfig, NASConfig, quick
from deepmorning.nas.search import Search, journal_path
from deepmorning.nas.space import SearchSpace
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir


def _cfg(**overrides) -> NASConfig:
    cfg = quick().to_dict()
    trainer = overrides.pop("trainer", "synthetic")
    cfg.update(child_retries=0, **overrides)
    cfg["child"]["trainer"] = trainer
    return NASConfig.from_dict(cfg)


def test_logical_actors_are_spread_over_processes_in_contiguous_blocks():
    assert ps.hosted_by(10, 4) == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert ps.host_count(100, 0) == ps.AUTO_PROCESSES  # the paper's K: a few processes
    assert ps.host_count(2, 0) == 2 and ps.host_count(3, 8) == 3  # never more than actors
    with pytest.raises(DeepmorningError, match="must not be negative"):
        _cfg(replica_processes=-1)


def test_a_slow_replica_never_blocks_its_group_mates(ray_local, tmp_path):
    """K = 12 replicas in 3 processes (4 each), S = 4 shards in 2: child 0 (replica 0's first
    batch) waits until the test lets it go; meanwhile every other child, those of replica 0's
    group mates 1-3 included, is trained and pushed. Each shard keeps its own state file and
    applies every batch once."""
    gate = tmp_path / "release"
    cfg = _cfg(max_children=24, param_servers=4, controllers=12, children_per_controller=1,
               server_processes=2, replica_processes=3, trainer=f"wait:{gate}")
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False)
    pids = ray.get([r.host.pid.remote() for r in search.replicas])
    assert len(set(pids)) == 3 and len(set(pids[:4])) == 1  # replicas 0-3 share a process
    assert len({s for s in ray.get([s.pid.remote() for s in search.shards])}) == 2
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(search.run_search()), daemon=True)
    thread.start()
    history = run.path / "history.csv"
    deadline = time.time() + 300  # a deadlock fails here; nothing is timed
    while time.time() < deadline and not (
            history.exists() and len(history.read_text().splitlines()) >= 1 + 23):
        time.sleep(0.2)
    rows = pd.read_csv(history)
    assert sorted(rows.child_id) == list(range(1, 24))  # all but the slow child 0
    assert {1, 2, 3} <= set(rows.replica) and 0 not in set(rows.replica)
    gate.touch()
    thread.join(timeout=300)
    assert result["children"] == 24 and result["children_ok"] == 24

    events = [json.loads(line) for line in journal_path(run).read_text().splitlines()]
    batches = sorted(e["batch"] for e in events if e["e"] == "updated")
    assert batches == list(range(24))
    states = ray.get([s.get_state.remote() for s in search.shards])
    assert [st["applied"] for st in states] == [batches] * 4  # every shard, every batch once
    assert [st["version"] for st in states] == [24] * 4
    assert all((run.checkpoints / f"ps-{i}.pt").is_file() for i in range(4))


def test_a_replica_waiting_in_its_thread_does_not_hold_its_group(ray_local):
    """Two replicas in one process: while replica 0's call waits (its lock held, as if it
    were blocked on a server), replica 1 samples and closes batches; then replica 0 goes on.
    A group serving one call at a time would hang here (the ray.get below fails instead)."""
    space, cfg = SearchSpace(layers_start=3), ControllerConfig()
    shards, names = ps.start_servers(space, cfg, num_shards=2, apply_every=1, seed=0)
    first, second = ps.start_replicas(2, space, cfg, shards, names, "rl", seed=0, processes=1)
    assert first.host is second.host
    ray.get(first.host.__ray_call__.remote(lambda group: group.locks[0].acquire()))
    waiting = first.sample.remote(0, 2, 3)
    for batch in (1, 2):
        out = ray.get(second.sample.remote(batch, 2, 3), timeout=120)
        ray.get(second.update.remote(batch, out["archs"], [1.0, -1.0], out["params"]),
                timeout=120)
    assert ray.wait([waiting], timeout=0)[0] == []  # still waiting behind its own lock
    ray.get(first.host.__ray_call__.remote(lambda group: group.locks[0].release()))
    assert len(ray.get(waiting, timeout=120)["archs"]) == 2
    ray.kill(first.host)
    for shard in shards:
        ray.kill(shard.host)


@pytest.mark.slow  # minutes on 2 loaded CPUs; the paper's layout with instant children
def test_the_papers_layout_runs_in_a_few_processes(ray_local, tmp_path):
    """S = 20, K = 100, m = 8 (Zoph & Le 2017, Sec. 3.4): 800 children in flight, hosted in 4
    server and 4 replica processes; every child id once, every batch applied once per shard."""
    cfg = _cfg(max_children=800, param_servers=20, controllers=100, children_per_controller=8,
               cpus_per_child=0.125)
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False)
    hosts = {id(x.host): x.host for x in [*search.shards, *search.replicas]}
    assert len(hosts) == 2 * ps.AUTO_PROCESSES
    summary = search.run_search()
    assert summary["children"] == summary["children_ok"] == 800
    assert sorted(pd.read_csv(run.path / "history.csv").child_id) == list(range(800))
    states = ray.get([s.get_state.remote() for s in search.shards])
    assert all(st["applied"] == list(range(100)) for st in states)
