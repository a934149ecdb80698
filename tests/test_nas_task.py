"""The child task is importable without torch, so synthetic children run in small workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepmorning.platform.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import pickle, sys
from deepmorning.nas.task import ChildConfig, child_seed, run_child
cfg = pickle.loads(pickle.dumps(ChildConfig(trainer="sleep:0", threads=3, seed=2)))
arch = {"layers": [{"filter_height": 3, "filter_width": 5, "num_filters": 4,
                    "stride_height": 1, "stride_width": 1, "inputs": []}]}
out = run_child(5, arch, None, cfg)
assert out["reward"] == 1.0 and out["threads"] == 3 and out["device"] == "cpu", out
assert out["seed"] == child_seed(2, 5), out
print("torch" in sys.modules)
"""


def test_a_synthetic_child_never_imports_torch():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_history_rows_without_fsync_are_written(tmp_path):
    run = RunDir.create(tmp_path / "run", "nas", "t", {})
    run.append_rows("history.csv", [{"child_id": 0, "reward": 0.5}], durable=False)
    run.append_rows("history.csv", [{"child_id": 1, "reward": 0.25}], durable=False)
    df = run.read_table("history.csv")
    assert df["child_id"].tolist() == [0, 1] and df["reward"].tolist() == [0.5, 0.25]
