"""TensorBoard event files in the run directory, read back from the files themselves."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import pytest

from deepmorning.nas.config import NASConfig, quick
from deepmorning.nas.search import Search
from deepmorning.platform.rundir import RunDir
from deepmorning.platform.tracking import TENSORBOARD_DIR


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value)]`` from every event file (TFRecord framing, Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            record = data[offset + 12:offset + 12 + length]
            offset += 12 + length + 4
            event = Event.FromString(record)
            for value in event.summary.value:
                scalars[value.tag].append((event.step, value.simple_value))
    return scalars


def test_a_nas_search_writes_tensorboard_scalars_per_child(ray_local, tmp_path):
    cfg = quick().to_dict()
    cfg.update(max_children=6, child_retries=0, param_servers=1, controllers=1)
    cfg["child"]["trainer"] = "synthetic"
    cfg = NASConfig.from_dict(cfg)
    run = RunDir.create(tmp_path / "run", "nas", "search", cfg.to_dict())
    summary = Search(cfg, run, resumed=False).run_search()
    scalars = read_scalars(run.path / TENSORBOARD_DIR)
    rewards = sorted(scalars["nas/reward"])
    assert [step for step, _ in rewards] == list(range(6))  # one point per child, by child id
    history = run.read_table("history.csv").sort_values("child_id")
    assert [round(v, 5) for _, v in rewards] == [round(v, 5) for v in history["reward"]]
    best = max(v for _, v in scalars["nas/best_reward"])  # TensorBoard stores float32
    assert best == pytest.approx(summary["best_reward"], rel=1e-6)
    assert {"nas/val_acc", "nas/baseline", "nas/children_done"} <= set(scalars)
