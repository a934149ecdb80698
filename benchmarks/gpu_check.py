"""The GPU figures a user wants, in one command (< 10 minutes on one GPU), to a JSON file:

* NAS: children per hour per GPU, torch children on half a GPU each (two per GPU);
* RL: DQN Learner updates per second on the GPU (a short Pong run) and DDPG's on Pendulum;
* Tune: the wall time of one trial per model with ``--gpus-per-trial 0.5``.

    python benchmarks/gpu_check.py --output gpu_check.json   # then: pytest -m gpu

Each part runs through the CLI as a user would, with its own time limit; a part that fails or
runs out of time is recorded with its error and the rest go on. Not yet run on a GPU: the
development machine has none (docs/clusters.md says so).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PART_LIMIT_S = 150  # NAS and each RL run; each Tune model gets TUNE_LIMIT_S
TUNE_LIMIT_S = 40


def cli(args: list[str], limit: float) -> tuple[float, str]:
    """Run ``python -m deepmorning ARGS``; (wall seconds, stderr tail) or raise."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "deepmorning", *args], capture_output=True,
                          text=True, timeout=limit)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return time.monotonic() - start, proc.stdout


def nas(work: Path) -> dict[str, Any]:
    import torch

    out = work / "nas"
    cli(["nas", "search", "--preset", "quick", "--max-children", "8", "-S", "1", "-K", "2",
         "-m", "4", "--gpus-per-child", "0.5", "--cpus-per-child", "1", "--output", str(out)],
        PART_LIMIT_S)
    summary = json.loads((out / "summary.json").read_text())
    gpus = max(1, torch.cuda.device_count())
    return {"children_per_hour": summary["children_per_hour"],
            "children_per_hour_per_gpu": summary["children_per_hour"] / gpus,
            "gpus": gpus, "gpus_per_child": 0.5}


def rl(work: Path, algo: str, env: str, extra: list[str]) -> dict[str, Any]:
    import pandas as pd

    out = work / algo
    cli(["rl", "train", algo, "--env", env, "--timesteps", "5000", "--num-gpus-per-learner",
         "1", "--eval-episodes", "1", *extra, "--output", str(out)], PART_LIMIT_S)
    progress = pd.read_csv(out / "progress.csv")
    summary = json.loads((out / "summary.json").read_text())
    hp = json.loads((out / "config.json").read_text())["hyperparameters"]
    figures = {"env_steps": summary["env_steps"], "wall_s": summary["wall_s"],
               "env_steps_per_s": summary["env_steps_per_s"]}
    learning = progress[progress["env_steps"] > int(hp.get("learning_starts", 0))]
    # the replay ratio: DQN's updates_per_env_step, DDPG's updates_per_step
    ratio = float(hp.get("updates_per_env_step", hp.get("updates_per_step", 1.0)))
    if len(learning) > 1:  # updates owed for the steps of the learning iterations, per second
        steps = learning["env_steps"].iloc[-1] - learning["env_steps"].iloc[0]
        seconds = learning["wall_s"].iloc[-1] - learning["wall_s"].iloc[0]
        figures["learner_updates_per_s"] = round(steps * ratio / max(seconds, 1e-9), 1)
    return figures


def tune(work: Path) -> dict[str, Any]:
    from deepmorning.tuning import registry

    times: dict[str, Any] = {}
    for model in sorted(registry.names()):
        try:
            wall, _ = cli(["tune", model, "--num-samples", "1", "--max-epochs", "1",
                           "--gpus-per-trial", "0.5", "--output", str(work / f"tune-{model}")],
                          TUNE_LIMIT_S)
            times[model] = {"trial_wall_s": round(wall, 1)}
        except Exception as exc:  # noqa: BLE001 - record and go on
            times[model] = {"error": str(exc)[:300]}
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="gpu_check.json")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device here; run this on a GPU machine",
              file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0),
                               "torch": torch.__version__}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parts = {"nas": lambda: nas(work),
                 "dqn_pong": lambda: rl(work, "dqn", "ALE/Pong-v5",
                                        ["--set", "learning_starts=1000"]),
                 "ddpg_pendulum": lambda: rl(work, "ddpg", "Pendulum-v1", []),
                 "tune": lambda: tune(work)}
        for name, part in parts.items():
            try:
                figures[name] = part()
            except Exception as exc:  # noqa: BLE001 - one part's failure is a figure too
                figures[name] = {"error": str(exc)[:300]}
            print(f"{name}: {figures[name]}", flush=True)
    figures["total_wall_s"] = round(time.monotonic() - started, 1)
    Path(args.output).write_text(json.dumps(figures, indent=1))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
