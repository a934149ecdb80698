"""Several Ray nodes on one machine (``ray.cluster_utils.Cluster``: a head and two worker raylets,
each a node with its own CPUs): where the NAS control plane runs, the storage guard, and what
each area does when a worker node is lost mid-run (NAS children, RL EnvRunners, Tune trials).

A node is lost the hard way: ``Cluster.remove_node(allow_graceful=False)`` SIGKILLs its raylet
and workers, as a crashed machine or a spot preemption without notice would. The cluster is this
module's own; it is stopped by ``Cluster.shutdown()``, which ends only the processes it started
(never ``ray stop``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray
import tune_toy
from conftest import run_cli

from deepmorning.nas.config import NASConfig, quick
from deepmorning.nas.search import Search, journal_path
from deepmorning.platform import remote, storage
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir

WORKER_NODES = 2
NODE_LOG = "TUNE_TOY_NODE_LOG"  # tests/tune_toy.py: one line per epoch with its node

ray.cloudpickle.register_pickle_by_value(tune_toy)  # the toy Tune model, without an import


#: Node death is noticed after this many missed health checks of this period (Ray's defaults,
#: 5 x 3 s, would add 15 s to every node-loss scenario).
FAST_HEALTH_CHECKS = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def nodes(_ray_session, tmp_path_factory) -> Iterator[Any]:
    """A head and two worker nodes, one CPU each; this process is connected to it. A test that
    loses a worker (:func:`lose`) gets a fresh one back before the next test starts. Workers
    inherit the environment of their raylet, so what they read from it is set here, first:
    ``TUNE_TOY_NODE_LOG`` (see :data:`NODE_LOG`)."""
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the embedded Ray of earlier in-process tests, if any
    node_log = tmp_path_factory.mktemp("multinode") / "epochs.log"
    saved = os.environ.get(NODE_LOG)
    os.environ[NODE_LOG] = str(node_log)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "_system_config": FAST_HEALTH_CHECKS})
    try:
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        yield cluster
    finally:
        ray.shutdown()  # a later in-process test starts its own embedded Ray again
        cluster.shutdown()
        if saved is None:
            os.environ.pop(NODE_LOG, None)
        else:
            os.environ[NODE_LOG] = saved


@pytest.fixture
def cluster(nodes) -> Iterator[str]:
    """The module's cluster (its address), topped up to its worker count after each test."""
    yield nodes.address
    while len(nodes.worker_nodes) < WORKER_NODES:
        nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()


def alive_nodes() -> list[str]:
    return sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])


def lose(nodes: Any, node_id: str) -> None:
    """Kill every process of worker node ``node_id`` at once (SIGKILL: a crashed or preempted
    machine, not a drained one) and wait until the cluster has noticed."""
    (node,) = [n for n in nodes.worker_nodes if n.node_id == node_id]
    nodes.remove_node(node, allow_graceful=False)
    deadline = time.monotonic() + 60
    while node_id in alive_nodes():
        assert time.monotonic() < deadline, f"node {node_id} still alive a minute after its loss"
        time.sleep(0.2)


def short(node_id: str) -> str:
    """A node id as the history's ``node`` column shows it (deepmorning.nas.task.node_label)."""
    return node_id[-12:]


def _node_of(actor) -> str:
    return ray.get(actor.__ray_call__.remote(
        lambda self: ray.get_runtime_context().get_node_id()))


def test_the_control_plane_runs_on_the_drivers_node(cluster, tmp_path, monkeypatch):
    """A search at a URI on three nodes: every parameter server and controller replica is on
    the driver's node, where the run's local working copy (and so each server's state file)
    is; children may go anywhere. Without the pin Ray spreads these zero-CPU actors over the
    nodes (about 1 in 240 placements of 5 actors would land all on one node by chance)."""
    monkeypatch.setenv(remote.STAGING_ENV, str(tmp_path / "staging"))
    alive = [n for n in ray.nodes() if n["Alive"]]
    assert len(alive) == 1 + WORKER_NODES
    cfg = quick().to_dict()
    cfg.update(max_children=6, param_servers=2, controllers=3, children_per_controller=2,
               cpus_per_child=1, child_retries=0)
    cfg["child"]["trainer"] = "synthetic"
    cfg = NASConfig.from_dict(cfg)
    target = tmp_path / "bucket" / "nas"
    run = RunDir.create(f"file://{target}", "nas", "search", cfg.to_dict())
    search = Search(cfg, run, resumed=False)
    summary = search.run_search()

    driver = ray.get_runtime_context().get_node_id()
    placed = [_node_of(actor.host) for actor in [*search.shards, *search.replicas]]
    assert placed == [driver] * (cfg.param_servers + cfg.controllers)
    assert summary["children"] == 6 and summary["children_ok"] == 6
    for i in range(cfg.param_servers):  # each server's state reached the URI
        assert (target / "checkpoints" / f"ps-{i}.pt").is_file()
    events = [json.loads(line) for line in journal_path(run).read_text().splitlines()]
    assert sorted(e["child_id"] for e in events if e["e"] == "child") == list(range(6))


def test_a_local_output_is_refused_with_a_second_node(cluster, tmp_path, monkeypatch):
    """The storage guard against a real multi-node cluster, in process and through the CLI."""
    monkeypatch.delenv(storage.SHARED_PATHS_ENV, raising=False)
    fstype = storage.filesystem_of(tmp_path)[1]
    if fstype in storage.SHARED_FS_TYPES:
        pytest.skip(f"{tmp_path} is on a shared filesystem ({fstype}) here")
    assert storage.cluster_node_count() == 1 + WORKER_NODES
    with pytest.raises(DeepmorningError, match=f"cluster has {1 + WORKER_NODES} nodes"):
        storage.check_shared_output(tmp_path / "runs")
    storage.check_shared_output("s3://bucket/runs")  # a bucket passes
    monkeypatch.setenv(storage.SHARED_PATHS_ENV, str(tmp_path))
    storage.check_shared_output(tmp_path / "runs")  # so does a path declared shared
    monkeypatch.delenv(storage.SHARED_PATHS_ENV)

    out = tmp_path / "runs" / "nas"
    res = run_cli("--address", cluster, "nas", "search", "--trainer", "synthetic",
                  "-S", "1", "-K", "1", "-m", "1", "--max-children", "1", "--output", str(out),
                  timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error: output path" in res.stderr and f"{1 + WORKER_NODES} nodes" in res.stderr
    assert not Path(out).exists()  # refused before anything was written


def _nas_config(**overrides: Any) -> NASConfig:
    cfg = quick().to_dict()
    cfg["child"]["trainer"] = overrides.pop("trainer", "synthetic")
    cfg.update(overrides)
    return NASConfig.from_dict(cfg)


def _when(ready, then) -> threading.Thread:
    """Run ``then()`` in a thread once ``ready()`` is true (a deterministic trigger)."""
    def watch() -> None:
        while not ready():
            time.sleep(0.05)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _when_journaled(path: Path, event: str, then) -> threading.Thread:
    """Run ``then()`` in a thread once the journal at ``path`` holds an ``event`` line."""
    return _when(lambda: path.is_file() and f'"e":"{event}"' in path.read_text(), then)


@pytest.mark.nodeloss
def test_nas_children_spread_and_a_lost_node_costs_only_its_running_children(
        nodes, cluster, tmp_path, monkeypatch):
    """A search at a URI whose first batch fills every CPU of the cluster (three 3-second
    children, one CPU each, three one-CPU nodes: one child per node), and a worker node killed
    while they run. The child on the lost node is retried on a surviving node; the search
    finishes with every child id filled once, all ok, and the history's ``node`` column names
    the nodes that did the work, never the lost one (nothing finished there)."""
    monkeypatch.setenv(remote.STAGING_ENV, str(tmp_path / "staging"))
    head = ray.get_runtime_context().get_node_id()
    before = alive_nodes()
    doomed = next(n for n in before if n != head)
    cfg = _nas_config(max_children=6, param_servers=1, controllers=1,
                      children_per_controller=3, cpus_per_child=1, child_retries=2,
                      trainer="sleep:2")
    run = RunDir.create(f"file://{tmp_path / 'bucket' / 'nas'}", "nas", "search", cfg.to_dict())
    # 1 s after the first batch's children were launched: each holds its node's only CPU
    killer = _when_journaled(journal_path(run), "sample",
                             lambda: (time.sleep(1.0), lose(nodes, doomed)))
    summary = Search(cfg, run, resumed=False).run_search()
    killer.join(timeout=60)

    assert doomed not in alive_nodes()
    assert summary["children"] == 6 and summary["children_ok"] == 6
    history = run.read_table("history.csv")
    assert sorted(history["child_id"]) == list(range(6))  # none lost, none twice
    assert (history["status"] == "ok").all()
    ran_on = {label.split("/")[1] for label in history["node"]}
    assert short(doomed) not in ran_on
    assert ran_on <= {short(n) for n in before} and len(ran_on) == 2  # spread over both left
    events = [json.loads(line) for line in journal_path(run).read_text().splitlines()]
    assert sorted(e["child_id"] for e in events if e["e"] == "child") == list(range(6))


def _actors(class_name: str) -> list[str]:
    """Nodes of the alive actors of ``class_name``, read from the GCS."""
    from ray._private.state import actors

    return [a["Address"]["NodeID"] for a in actors().values()
            if a["State"] == "ALIVE" and class_name in a["ActorClassName"]]


def _actors_on_workers(class_name: str, head: str) -> list[str]:
    """Nodes (not the head) of the alive actors of ``class_name``."""
    return [node for node in _actors(class_name) if node != head]


def _when_rows(path: Path, rows: int, then) -> threading.Thread:
    """Run ``then()`` in a thread once the CSV at ``path`` has ``rows`` data rows."""
    return _when(lambda: path.is_file() and len(path.read_text().splitlines()) > rows, then)


@pytest.mark.nodeloss
def test_dqn_keeps_training_when_an_env_runners_node_is_lost(nodes, cluster, tmp_path,
                                                             monkeypatch):
    """DQN on CartPole with two remote EnvRunners (one CPU each; the head has one CPU, so at
    least one is on a worker node). After the second progress row that worker node is
    killed: RLlib samples from the EnvRunner left, Ray restarts the lost one on the node with
    a free CPU (deepmorning.rl.offpolicy.fault_tolerance), and the run reaches its step budget
    with one progress row per iteration, in order, env steps strictly increasing."""
    from deepmorning.rl.runner import TrainRequest, train

    monkeypatch.setenv(storage.SHARED_PATHS_ENV, str(tmp_path))  # one disk for every "node"
    head = ray.get_runtime_context().get_node_id()
    out = tmp_path / "dqn"
    lost: list[str] = []
    back: list[list[str]] = []

    def lose_a_runners_node() -> None:
        lost.append(_actors_on_workers("EnvRunner", head)[0])
        lose(nodes, lost[0])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the lost EnvRunner restarted elsewhere
            alive = _actors("EnvRunner")
            if len(alive) == 2:
                back.append(alive)
                return
            time.sleep(0.2)

    killer = _when_rows(out / "progress.csv", 2, lose_a_runners_node)
    summary = train(TrainRequest(
        algo="dqn", env="CartPole-v1", timesteps=256 * 10, num_env_runners=2,
        output=out, eval_episodes=1, checkpoint_every=100, address=cluster, quiet=True,
        overrides={"learning_starts": 256, "num_envs": 1}))
    killer.join(timeout=60)

    assert lost and lost[0] not in alive_nodes()
    progress = RunDir.open(out).read_table("progress.csv")
    assert list(progress["iteration"]) == list(range(1, len(progress) + 1))
    assert progress["env_steps"].is_monotonic_increasing and progress["env_steps"].is_unique
    assert summary["env_steps"] >= 256 * 10 and len(progress) >= 4
    assert back and lost[0] not in back[0]  # two EnvRunners again, none on the lost node


def _tune_study(out: Path, address: str) -> tuple[dict, pd.DataFrame]:
    """The toy model's ``lr`` study (two arms, one seed: two one-CPU trials of 4 epochs of
    about a second each), run in this process on the cluster."""
    from deepmorning.tuning import runner

    req = runner.TuneRequest(model="toy", study="lr", seeds=1, max_epochs=4, output=out,
                             sets=("sleep=1.0",), address=address, quiet=True)
    summary = runner.run(req)
    return summary, pd.read_csv(out / runner.RESULTS)


def _epochs_by_trial(log: Path) -> dict[str, list[tuple[int, str]]]:
    trained: dict[str, list[tuple[int, str]]] = {}
    for line in log.read_text().splitlines():
        trial_id, epoch, node = line.split()
        trained.setdefault(trial_id, []).append((int(epoch), node))
    return trained


@pytest.mark.nodeloss
def test_a_tune_trial_on_a_lost_node_resumes_from_its_checkpoint_elsewhere(
        nodes, cluster, tmp_path, monkeypatch):
    """The toy ``lr`` study with its run directory on the disk every "node" shares (declared
    with DEEPMORNING_SHARED_PATHS). Once a trial on a worker node has checkpointed its second
    epoch, that node is killed: Tune restarts the trial on a surviving node from its latest
    checkpoint (not from epoch 1), and the study's results equal those of an uninterrupted
    run of the same study (the toy trainable is deterministic)."""
    monkeypatch.setenv(storage.SHARED_PATHS_ENV, str(tmp_path))
    head = ray.get_runtime_context().get_node_id()
    log = Path(os.environ[NODE_LOG])  # set before the cluster started: its workers see it
    log.unlink(missing_ok=True)
    lost: list[str] = []

    def lose_a_trials_node() -> None:
        deadline = time.monotonic() + 300
        while not lost and time.monotonic() < deadline:
            if log.is_file():
                for epochs in _epochs_by_trial(log).values():
                    epoch, node = epochs[-1]
                    if node != head and epoch >= 2:
                        lost.append(node)
                        break
            time.sleep(0.05)
        if lost:
            lose(nodes, lost[0])

    killer = threading.Thread(target=lose_a_trials_node, daemon=True)
    killer.start()
    summary, lossy = _tune_study(tmp_path / "lossy", cluster)
    killer.join(timeout=60)
    assert lost and lost[0] not in alive_nodes()
    assert summary["errored"] == 0
    trained = _epochs_by_trial(log)
    (moved,) = [t for t, epochs in trained.items() if any(n == lost[0] for _, n in epochs)]
    before = [e for e, n in trained[moved] if n == lost[0]]
    after = [e for e, n in trained[moved] if n != lost[0]]
    assert after and after[0] > 1 and after[0] <= max(before) + 1  # from its checkpoint
    assert after[-1] == 4

    log.unlink()
    _, calm = _tune_study(tmp_path / "calm", cluster)
    columns = ["arm", "seed", "lr", "epoch", "loss", "weight"]
    columns = [c for c in columns if c in calm.columns]
    assert {"loss", "weight", "epoch"} <= set(columns)
    key = [c for c in ("arm", "seed") if c in columns]
    pd.testing.assert_frame_equal(lossy[columns].sort_values(key).reset_index(drop=True),
                                  calm[columns].sort_values(key).reset_index(drop=True))
