"""TensorBoard event files in every run directory (``RUN/tensorboard/``).

Every job writes its per-step figures (NAS: one step per child; RL: one per training iteration,
at its env-step count) as TensorBoard scalars next to its CSV tables, so runs can be compared
with ``tensorboard --logdir runs/`` (several runs side by side) as well as with ``results``.
Ray Tune writes its own event files into each trial directory. The writer is
``tensorboardX``, which ``ray[tune]`` installs; a run at a URI mirrors the event files with the
rest of the directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

TENSORBOARD_DIR = "tensorboard"


class TensorBoard:
    """Scalars of one run; numbers only (NaN and non-numbers are skipped)."""

    def __init__(self, run: Any) -> None:
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(run.path / TENSORBOARD_DIR), flush_secs=30)

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        for tag, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                self._writer.add_scalar(tag, float(value), global_step=int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
