"""Several Ray nodes on one machine (``ray.cluster_utils.Cluster``: a head and two worker raylets,
each a node with its own CPUs): where the NAS control plane runs, and the storage guard.

The cluster is this module's own; it is stopped by ``Cluster.shutdown()``, which ends only the
processes it started (never ``ray stop``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from conftest import run_cli

from deepmorning.nas.config import NASConfig, quick
from deepmorning.nas.search import Search, journal_path
from deepmorning.platform import remote, storage
from deepmorning.platform.errors import DeepmorningError
from deepmorning.platform.rundir import RunDir

WORKER_NODES = 2


@pytest.fixture(scope="module")
def cluster(_ray_session) -> Iterator[str]:
    """A head and two worker nodes, one CPU each; this process is connected to it."""
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the embedded Ray of earlier in-process tests, if any
    nodes = Cluster(initialize_head=True,
                    head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(WORKER_NODES):
            nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, log_to_driver=False, configure_logging=False)
        yield nodes.address
    finally:
        ray.shutdown()  # a later in-process test starts its own embedded Ray again
        nodes.shutdown()


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
