"""``deepmorning cluster selftest``: a short, real workload that checks a running cluster.

It runs one task pinned to every alive node (hostname, interpreter, Ray version, GPUs), applies
the shared-storage guard to an output path, and exports ``deepmorning_selftest_*`` metrics
through :class:`~deepmorning.platform.metrics.RunMetrics` for as long as asked, so the Ray
dashboard, Prometheus and the Grafana board in ``clusters/grafana/`` can be checked end to end.
"""

from __future__ import annotations

import os
import time
from typing import Any

from deepmorning.platform import remote
from deepmorning.platform.errors import DeepmorningError, first_line
from deepmorning.platform.metrics import RunMetrics
from deepmorning.platform.storage import check_shared_output


def _node_facts() -> dict[str, Any]:
    import socket
    import sys

    import ray

    return {
        "hostname": socket.gethostname(),
        "python": sys.executable,
        "ray": ray.__version__,
        "gpus": len(ray.get_gpu_ids()),
    }


def probe_nodes() -> list[dict[str, Any]]:
    """One zero-CPU task pinned to each alive node; its facts, one row per node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    remote = ray.remote(num_cpus=0)(_node_facts)
    refs = [
        remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            num_gpus=0,
        ).remote()
        for n in nodes
    ]
    facts = ray.get(refs, timeout=120)
    pairs = zip(nodes, facts, strict=True)
    return [{"ip": n.get("NodeManagerAddress", "?"), **f} for n, f in pairs]


def check_output(path: str) -> None:
    """The multi-node storage guard every job applies to its output path; a URI must take a
    file (written and deleted again) with this process's credentials."""
    check_shared_output(path)
    if remote.is_remote(path):
        mirror = remote.Mirror.of(path)
        probe = f"{mirror.root}/.deepmorning-selftest-{os.getpid()}"
        try:
            mirror.filesystem.create_dir(mirror.root, recursive=True)
            with mirror.filesystem.open_output_stream(probe) as fh:
                fh.write(b"ok")
            mirror.filesystem.delete_file(probe)
        except (OSError, ValueError) as exc:
            raise DeepmorningError(f"cannot write to {path}: {first_line(exc)}") from None


def export_metrics(run: str, nodes: int, duration: float) -> None:
    """Export selftest gauges and a counter once a second for ``duration`` seconds."""
    metrics = RunMetrics(run, "selftest", {
        "selftest_nodes": "nodes that answered the selftest",
        "selftest_elapsed_s": "seconds since the selftest started exporting",
        "selftest_ticks": "one per second of the selftest",
    })
    start = time.monotonic()
    metrics.set("selftest_nodes", nodes)
    while True:
        elapsed = time.monotonic() - start
        metrics.set("selftest_elapsed_s", elapsed)
        metrics.inc("selftest_ticks")
        if elapsed >= duration:
            break
        if int(elapsed) % 10 == 0:
            print(f"selftest: exporting metrics, {elapsed:.0f}/{duration:.0f}s", flush=True)
        time.sleep(1.0)
