"""``deepmorning cluster up clusters/fake.yaml`` -> a GPU-child NAS job -> ``cluster down``,
on Ray's fake multi-node autoscaler (every "node" a raylet on this machine; the GPU node type
declares GPUs for scheduling, nothing has CUDA). Minutes: ``pytest -m fakecluster``.

What it exercises: our head start on free ports, the autoscaler adding ``worker.gpu`` nodes
from zero for children asking for 0.5 GPU, Ray assigning each child a GPU id (two children per
GPU), the job through the Jobs API, and ``down`` leaving no process. What it does not: CUDA
(the ``gpu-ids`` trainer reports the ids Ray gave it and never touches a device), SSH, a cloud.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, run_cli

from deepmorning.ops import fake_cluster

pytestmark = pytest.mark.fakecluster


def test_cluster_up_gpu_job_down_on_the_fake_autoscaler(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    config = str(REPO / "clusters" / "fake.yaml")
    assert run_cli("cluster", "validate", config, env=env).returncode == 0
    up = run_cli("cluster", "up", config, env=env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((home / ".deepmorning" / "fake-clusters" /
                        "deepmorning-fake.json").read_text())
    try:
        out = tmp_path / "nas"
        job = run_cli("job", "submit", "--address", state["dashboard_url"], "--", "nas",
                      "search", "--trainer", "gpu-ids", "--gpus-per-child", "0.5",
                      "--cpus-per-child", "0.5", "-S", "1", "-K", "1", "-m", "4",
                      "--max-children", "8", "--cluster-config", config,
                      "--output", str(out), env=env, timeout=600)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "SUCCEEDED" in job.stdout
        history = pd.read_csv(out / "history.csv")
        assert sorted(history["child_id"]) == list(range(8))
        assert (history["status"] == "ok").all()
        # every child got a GPU id from Ray, on a node the autoscaler added (not the head)
        assert history["device"].str.fullmatch(r"ray-gpus:\d").all()
        head_id = "f" * 51 + "00000"
        assert not history["node"].str.contains(f"/{head_id[-12:]}/").any()
    finally:
        down = run_cli("cluster", "down", config, env=env, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not fake_cluster.cluster_pids(state["temp_dir"], state["gcs_address"])
    assert not Path(state["temp_dir"]).exists()
